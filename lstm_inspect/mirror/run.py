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

import numpy as np
import torch
from torch import nn

from ..core.facts import FACTS, KerasStateError, Traces, first_trace_error, keras_error
from ..core.hooks import resets_before
from ..core.order import Call, iter_invocations
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
    loaded.load_state_dict(torch.load(saved, weights_only=True))
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
        if op.hand_carried and self.returned is not None:
            # Keras slices the states handed back as it slices the inputs: sample k takes row k.
            handed = tuple(state[:, at:at + len(x)].contiguous() for state in self.returned)
            output, initial, final = layer.call(x, handed, mask)
        elif spec.takes_states:  # the model takes its states as inputs: zeros where the call names none
            output, initial, final = layer.call(x, layer.zeros(len(x)), mask)
        else:
            output, initial, final = layer.call(x, mask=mask)
        if before is not None:
            layer.set_states(before)  # JAX's stateless steps drop the state variables' assignments
        return CallRecord(call, initial, final, output[:, -1])


@torch.no_grad()
def run_mirror(spec: Spec, device: torch.device | None = None) -> Generator[CallRecord, None, None]:
    """Every layer call of the workflow, in order, with the user's reset callback; raises
    KerasStateError at the call where Keras raises, after yielding the calls before it."""
    device = device or torch.device("cpu")
    loop = _Loop(spec, device)
    for invocation, calls in iter_invocations(spec):
        op = invocation.op
        if op.kind in MODEL_CHANGES:
            loop.change_model(op)
        predicts = spec.hand_carried and op.kind in (Kind.PREDICT, Kind.PREDICT_ON_BATCH)
        made: list[States] = []
        at = 0
        for call, x, mask in _with_inputs(spec, calls, device):
            record = loop.run(op, call, x, mask, at)
            at += len(call.samples)
            if predicts:
                made.append(record.final)
            yield record
        if predicts:
            loop.returned = tuple(torch.cat(states, dim=1) for states in zip(*made, strict=True))


def _with_inputs(spec: Spec, calls: Iterator[Call], device: torch.device
                 ) -> Iterator[tuple[Call, torch.Tensor, torch.Tensor | None]]:
    """The calls with their inputs and the model's mask of them, made a few batches at a time
    (per data, as they come)."""
    per_call = max(1, spec.largest_batch) * spec.timesteps * spec.step_values  # a workflow may make no layer call
    group = max(1, INPUT_GROUP_VALUES // per_call)
    for stream, same in itertools.groupby(calls, key=lambda call: call.stream):
        while chunk := list(itertools.islice(same, group)):
            samples = np.concatenate([call.samples for call in chunk])
            sizes = [len(call.samples) for call in chunk]
            x, mask = padded_batch(spec, stream, samples, device)
            masks = [None] * len(chunk) if mask is None else torch.split(mask, sizes)
            yield from zip(chunk, torch.split(x, sizes), masks)
