"""The mirror's run: `KerasStateful` driven like Keras's fit, evaluate and predict loops, with
the user's reset callback called in Keras's hooks, every model change of the workflow (a twin,
a saved and loaded model) made for real, and Keras's errors raised where Keras raises them.
Inputs are made a few batches at a time from the seed, never for the whole dataset."""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.choices import Cell
from ..core.facts import FACTS, KerasStateError, Traces, first_trace_error, keras_error, validation_split_message
from ..core.hooks import resets_before
from ..core.order import Call, Invocation, iter_invocations
from ..core.spec import Spec
from ..core.workflow import Kind, Op
from ..data.memory import INPUT_GROUP_VALUES
from .conv import ConvLSTM2D
from .inputs import build_rnn, padded_batch
from .module import KerasStateful, Recurrent, States


@dataclass(frozen=True)
class CallRecord:
    """One call of the mirror. States are tuples in the cell's order (h, c for an LSTM), each of
    shape (layers * directions, slots, units) as torch's RNN modules take them, or a ConvLSTM2D's
    (layers, slots, H', W', filters)."""

    call: Call
    initial: States  # the very tensors passed to the RNN as its initial state
    final: States  # final states, as the layer keeps them
    output: torch.Tensor  # last timestep's output per slot (both directions concatenated)


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def mirror_records(spec: Spec, device: torch.device | None = None, limit: int | None = None) -> list[CallRecord]:
    """The mirror's calls as a list (the first `limit` only, if given), up to where it raises."""
    records: list[CallRecord] = []
    with contextlib.suppress(KerasStateError):
        records.extend(itertools.islice(run_mirror(spec, device), limit))
    return records


def _like(module: Recurrent) -> Recurrent:
    """A new module of the same build, its own fresh weights (as a newly built Keras model)."""
    weight = module.weight_hh_l0
    assert isinstance(weight, torch.Tensor)
    if isinstance(module, ConvLSTM2D):
        return module.like().to(weight.device).eval()
    made = getattr(nn, type(module).__name__)(module.input_size, module.hidden_size, num_layers=module.num_layers,
                                              bidirectional=module.bidirectional, batch_first=True)
    return made.to(weight.device).eval()  # type: ignore[no-any-return]


def _twin(layer: KerasStateful, op: Op) -> KerasStateful:
    """A new model built for the twin's batch size (stateful or not, as asked), given the weights
    (set_weights), never the states."""
    module = _like(layer.rnn)
    module.load_state_dict(layer.rnn.state_dict())
    stateful = layer.stateful if op.stateful is None else op.stateful
    return KerasStateful(module, op.batch_size, stateful=stateful, keras=layer.keras, backend=layer.backend,
                         go_backwards=layer.go_backwards)


def _saved_and_loaded(layer: KerasStateful, op: Op) -> KerasStateful:
    """The model torch.save wrote and torch.load read back: the state buffers are not persistent."""
    saved = io.BytesIO()
    torch.save(layer.state_dict(), saved)
    saved.seek(0)
    loaded = KerasStateful(_like(layer.rnn), layer.batch_size, stateful=layer.stateful, keras=layer.keras,
                           backend=layer.backend, go_backwards=layer.go_backwards)
    # (torch 2.6 and later default to weights_only=True: said for the older ones the range admits)
    loaded.load_state_dict(torch.load(saved, weights_only=True))  # pragma: no mutate
    return loaded


def _reset(layer: KerasStateful, op: Op) -> KerasStateful:
    layer.reset_state(op.slots or None)
    return layer


# What each call that runs no data does to the model in use (the others run it as it is).
MODEL_CHANGES: dict[Kind, Callable[[KerasStateful, Op], KerasStateful]] = {
    Kind.RESET_STATE: _reset, Kind.TWIN: _twin, Kind.SAVE_AND_LOAD: _saved_and_loaded}


class _Loop:
    """The mirror's Keras-like loop over the workflow: the model in use, its compiled functions
    (TensorFlow), and the states the last predict returned (carried by hand)."""

    def __init__(self, spec: Spec, device: torch.device):
        self.spec, self.facts = spec, FACTS[spec.keras, spec.backend]
        self.layer = KerasStateful(build_rnn(spec, device), spec.batch_size, stateful=spec.stateful,
                                   keras=spec.keras, backend=spec.backend, go_backwards=spec.go_backwards)
        self.traces = Traces(self.facts)
        self.returned: States | None = None  # the states the last predict returned, for each of its samples
        self.one_thread = device.type == "cpu" and call_work(spec) < SMALL_CALL_WORK

    def change_model(self, op: Op) -> None:
        self.layer = MODEL_CHANGES[op.kind](self.layer, op)
        if op.kind != Kind.RESET_STATE:
            self.traces.new_model()

    def run(self, op: Op, call: Call, x: torch.Tensor, mask: torch.Tensor | None = None, at: int = 0) -> CallRecord:
        """One layer call: the user's callback in Keras's hooks, Keras's checks, then the layer;
        `mask`: the model's mask of the padding, if any; `at`: where its first sample is among
        its invocation's (for states handed back)."""
        spec, layer = self.spec, self.layer
        if resets_before(spec.reset, op.kind, call.phase, call.batch):
            layer.reset_state()
        size = op.batch_size or layer.batch_size or 1
        fixed = self.traces.fixes_call(op, call, spec.samples_of(op, call.phase), size)
        if layer.stateful and layer.batch_size == 1 and fixed is False and self.facts.one_row_state_loop_error:
            raise KerasStateError(*keras_error(self.facts, 1, len(x), spec.state_shape)[:2])  # a trace left open
        if layer.stateful and len(x) != layer.batch_size:
            if fixed:
                raise KerasStateError(*first_trace_error(spec, self.facts, layer.batch_size or 0, len(x))[:2])
            if len(x) == 1 and self.facts.broadcasts_one:
                # TensorFlow adds a lone sample's input projections to every row of the state:
                # each slot runs that sample from its own state.
                x = x.expand(layer.batch_size or 1, *x.shape[1:])
                mask = None if mask is None else mask.expand(len(x), -1)
        before = layer.states if layer.stateful and not self.facts.carries else None
        given = None
        if op.hand_carried and self.returned is not None:
            # Keras slices the states handed back as it slices the inputs: sample k takes row k.
            given = tuple(state[:, at:at + len(x)].contiguous() for state in self.returned)
        elif spec.takes_states:  # the model takes its states as inputs: zeros where the call names none
            given = layer.zeros(len(x))
        if self.one_thread:
            output, initial, final = _on_one_thread(layer, x, given, mask)
        else:
            output, initial, final = layer.call(x, given, mask)
        if before is not None:
            layer.set_states(before)  # JAX's stateless steps drop the state variables' assignments
        return CallRecord(call, initial, final, output[:, -1])


# Below this many multiply-adds a call runs on one CPU thread. A small call's matrix products are
# too small to share, and threads that went to sleep while Python worked between calls take
# longer to wake than the call takes: measured with 2 threads, a batch of one of 8 units ran in
# 99 us, against 63 us on one; batches up to 256 x 50 steps of 64 units were faster on one too.
SMALL_CALL_WORK = 1 << 24


def call_work(spec: Spec) -> int:
    """Multiply-adds of the matrix products of the spec's largest call (every gate, step, layer and
    direction); a ConvLSTM2D's convolutions count as large."""
    if spec.frame is not None:
        return SMALL_CALL_WORK
    gates = {Cell.LSTM: 4, Cell.GRU: 3}.get(spec.cell, 1)
    directions = 2 if spec.bidirectional else 1
    return (max(1, spec.largest_batch) * spec.timesteps * gates * spec.units * (spec.features + spec.units)
            * spec.layers * directions)


def _on_one_thread(layer: KerasStateful, x: torch.Tensor, given: States | None,
                   mask: torch.Tensor | None) -> tuple[torch.Tensor, States, States]:
    """layer.call on one intra-op thread, the caller's thread count restored after (it costs 0.1 us)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return layer.call(x, given, mask)
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def run_mirror(spec: Spec, device: torch.device | None = None) -> Generator[CallRecord, None, None]:
    """Every layer call of the workflow, in order, with the user's reset callback; raises
    KerasStateError at the call where Keras raises, after yielding the calls before it."""
    device = device or torch.device("cpu")
    loop = _Loop(spec, device)
    current: Invocation | None = None
    predicts = False
    made: list[States] = []
    at = 0
    for invocation, call, x, mask in _with_inputs(spec, device):
        if invocation is not current:  # the workflow's next call
            if predicts:
                loop.returned = tuple(torch.cat(states, dim=1) for states in zip(*made, strict=True))
            current, op = invocation, invocation.op
            if spec.empty_split_part(op):
                raise KerasStateError("ValueError", validation_split_message(spec.samples, op.validation_split))
            if op.kind in MODEL_CHANGES:
                loop.change_model(op)
            predicts = spec.hand_carried and op.kind in (Kind.PREDICT, Kind.PREDICT_ON_BATCH)
            made, at = [], 0
        if call is None:
            continue
        record = loop.run(current.op, call, x, mask, at)
        at += len(call.samples)
        if predicts:
            made.append(record.final)
        yield record


# Calls whose inputs are made together: enough that a loop of one-sample calls makes its inputs in
# a few tensor operations, not a few per call; few enough that the calls read ahead stay small.
MOST_CALLS_AHEAD = 1024
# On the CPU, inputs made ahead are read from memory, not from the cache: calls are grouped only
# while their inputs stay this small (256 KB). Bench part (a)'s calls of 102,400 values each ran
# some 6% faster made one at a time than ten together (INPUT_GROUP_VALUES, kept on a GPU, where
# what counts is the kernel launches).
CPU_GROUP_VALUES = 1 << 16


def _with_inputs(spec: Spec, device: torch.device) -> Iterator[tuple[Invocation, Call | None, Any, Any]]:
    """Each call of the workflow (first as itself, with no layer call), then its layer calls with
    their inputs and the model's mask of them. Inputs are made for a few layer calls at a time,
    across the workflow's calls (a serving loop of one-sample predicts), per data, as they come."""
    per_call = max(1, spec.largest_batch) * spec.timesteps * spec.step_values  # a workflow may make no layer call
    most_values = CPU_GROUP_VALUES if device.type == "cpu" else INPUT_GROUP_VALUES
    group = min(MOST_CALLS_AHEAD, max(1, most_values // per_call))
    entries = itertools.chain.from_iterable(
        itertools.chain([(invocation, None)], ((invocation, call) for call in calls))
        for invocation, calls in iter_invocations(spec))
    chunk: list[tuple[Invocation, Call | None]] = []
    stream, calls = None, 0  # the chunk's data, and its layer calls
    for invocation, call in entries:
        if call is not None:
            if calls and (calls == group or call.stream != stream):
                yield from _made(spec, chunk, device)
                chunk, calls = [], 0
            stream, calls = call.stream, calls + 1
        chunk.append((invocation, call))
    yield from _made(spec, chunk, device)


def _made(spec: Spec, chunk: list[tuple[Invocation, Call | None]], device: torch.device
          ) -> Iterator[tuple[Invocation, Call | None, Any, Any]]:
    """The chunk's entries, each layer call with its inputs and mask (all of one data)."""
    calls = [call for _, call in chunk if call is not None]
    if not calls:
        yield from ((invocation, None, None, None) for invocation, _ in chunk)
        return
    sizes = [len(call.samples) for call in calls]
    parts = sizes[0] if len(set(sizes)) == 1 else sizes  # torch splits in equal parts ten times faster
    x, mask = padded_batch(spec, calls[0].stream, np.concatenate([call.samples for call in calls]), device)
    inputs = iter(zip(torch.split(x, parts), [None] * len(calls) if mask is None else torch.split(mask, parts)))
    for invocation, call in chunk:
        yield (invocation, None, None, None) if call is None else (invocation, call, *next(inputs))
