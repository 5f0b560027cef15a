"""The mirror: a real PyTorch RNN whose state is handled by hand the way Keras handles it.

`KerasStateful` is a public, trainable `torch.nn.Module` that applies Keras's state rules
by itself (it never reads the schedule): stateless calls start from zeros; stateful calls
start from the layer's state, which holds the previous call's final states (detached, so
no gradient crosses a call) and is zeroed only by `reset_state()`; a stateful call with
another batch size raises what Keras raises. `run_mirror` drives it like Keras's
fit/evaluate/predict loops with the user's reset callback. Inputs are made a few batches
at a time from the seed, never for the whole dataset.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .memory import INPUT_GROUP_VALUES
from .schedule import FACTS, Call, Invocation, KerasStateError, first_trace_error, iter_invocations, keras_error
from .spec import Backend, KerasVersion, Phase, ResetKind, Spec
from .workflow import Kind, Op

States = tuple[torch.Tensor, ...]  # in the cell's order: (h, c) for an LSTM, (h,) otherwise


@dataclass(frozen=True)
class CallRecord:
    """One call of the mirror. States are tuples in the cell's order (h, c for an LSTM),
    each of shape (layers * directions, slots, units), as torch's RNN modules take them."""

    call: Call
    initial: States  # the very tensors passed to the RNN as its initial state
    final: States  # final states, as the layer keeps them
    output: torch.Tensor  # last timestep's output per slot (both directions concatenated)


_MASK32 = 0xFFFFFFFF


def _fmix32(z: Any) -> Any:
    """Murmur3's finaliser on 32-bit values held in int64 tensors (or Python ints).

    A bijection of [0, 2**32); multipliers stay below 2**31 so no product overflows int64.
    Augmented assignments work in place on tensors (no temporaries per pass) and rebind ints.
    """
    z ^= z >> 16
    z *= 0x45D9F3B
    z &= _MASK32
    z ^= z >> 16
    z *= 0x45D9F3B
    z &= _MASK32
    z ^= z >> 16
    return z


_PHASE_SALT = {Phase.TRAIN: 0x1B873593, Phase.VALIDATION: 0x5A3B2C1D, Phase.PREDICT: 0x27D4EB2F,
               Phase.EVALUATE: 0x165667B1}


def batch_inputs(spec: Spec, phase: Phase, samples: np.ndarray, device: torch.device) -> torch.Tensor:
    """Inputs of shape (len(samples), T, F), uniform in [-1, 1), for these samples of this phase.

    Counter-based (a hash of seed, phase, sample and cell) rather than a seeded generator,
    so that a sample's data depends only on its index, whatever batch or epoch holds it.
    """
    salt = _fmix32((spec.seed ^ _PHASE_SALT[phase]) & _MASK32)
    first = int(samples[0])
    if len(samples) == 1 or bool((np.diff(samples) == 1).all()):
        # Contiguous samples (no shuffle): made on the device, no copy from the host to wait for.
        per_sample = torch.arange(first, first + len(samples), dtype=torch.int64, device=device)
    else:
        per_sample = torch.as_tensor(samples, dtype=torch.int64, device=device)
    per_sample = _fmix32(((per_sample & _MASK32) * 0x2C1B3C6D ^ salt) & _MASK32)
    cells = torch.arange(spec.timesteps * spec.features, dtype=torch.int64, device=device)
    keys = per_sample[:, None] + cells[None, :] * 0x61C88647
    keys &= _MASK32
    values: torch.Tensor = _fmix32(keys).to(torch.float32)
    return values.mul_(2.0 / 2**32).sub_(1.0).view(len(samples), spec.timesteps, spec.features)


def build_rnn(spec: Spec, device: torch.device) -> nn.RNNBase:
    """The torch module for the spec's cell, depth and direction, with weights drawn from
    the seed, without touching torch's global RNG. A stack of Keras layers (each returning
    sequences into the next) is exactly torch's multi-layer module without dropout."""
    with torch.random.fork_rng(devices=[]):  # the module's own initialisation draws from it
        module: nn.RNNBase = getattr(nn, spec.cell.torch_name)(
            spec.features, spec.units, num_layers=spec.layers, bidirectional=spec.bidirectional, batch_first=True)
    generator = torch.Generator().manual_seed(spec.seed)
    bound = 1.0 / spec.units**0.5
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.empty_like(parameter).uniform_(-bound, bound, generator=generator))
    return module.to(device).eval()


def forward(module: nn.RNNBase, x: torch.Tensor, initial: States | None = None) -> tuple[torch.Tensor, States]:
    """Run the module; states always as a tuple, whether it takes (h, c) or h alone."""
    hx = None if initial is None else initial if len(initial) == 2 else initial[0]
    output, final = module(x, hx)
    return output, tuple(final) if isinstance(final, tuple) else (final,)


class KerasStateful(nn.Module):
    """A torch RNN (`nn.LSTM`, `nn.GRU` or `nn.RNN`, batch_first) with the state handling of
    Keras's recurrent layers (keras/src/layers/rnn/rnn.py), for every layer and direction.

    Stateful (the default): the state holds `batch_size` slots, starts as zeros, and slot i
    of each call starts from slot i's final state of the previous call, detached, so that
    gradients flow within a call and never across one (truncated backpropagation through
    time, as Keras's state variables give). `reset_state()` zeroes it; a call with another
    batch size raises `KerasStateError` (a ValueError) with Keras's message. The state is
    a buffer (None, meaning zeros, until first read): it follows `.to(device)` and, as in
    Keras, is not saved in `state_dict()`.
    Stateless: every call starts from zeros, whatever its batch size. `keras` and `backend`
    choose the wording of the error, as that Keras raises it.

    `forward` returns what the wrapped module returns: `(output, h_n)`, or
    `(output, (h_n, c_n))` for an LSTM, so it replaces the module in existing code.
    """

    def __init__(self, rnn: nn.RNNBase, batch_size: int | None = None, *, stateful: bool = True,
                 keras: KerasVersion | str = KerasVersion.THREE, backend: Backend | str | None = None):
        super().__init__()
        if not isinstance(rnn, (nn.LSTM, nn.GRU, nn.RNN)):
            raise TypeError(f"expected an nn.LSTM, nn.GRU or nn.RNN, got {type(rnn).__name__}")
        if not rnn.batch_first:
            raise ValueError("the RNN must be built with batch_first=True, as Keras's inputs are")
        if getattr(rnn, "proj_size", 0):
            raise ValueError("an LSTM with proj_size has no Keras counterpart")
        if stateful and (batch_size is None or batch_size < 1):
            raise ValueError("a stateful layer needs a fixed, positive batch_size, as Keras's "
                             "Input(batch_shape=...) gives it")
        self.rnn = rnn
        self._batch_size = batch_size
        self.stateful = stateful
        self.keras = KerasVersion(keras)
        self.backend = Backend(backend or (Backend.TENSORFLOW if self.keras == KerasVersion.TWO else Backend.TORCH))
        self.state_names = ("h", "c") if isinstance(rnn, nn.LSTM) else ("h",)  # its buffers
        if stateful:
            # Keras creates the state variables at build, as zeros of the fixed batch size. Here
            # None stands for those zeros until they are read: a call Keras refuses (a batch of
            # another size) then allocates nothing, however large the batch size.
            for name in self.state_names:
                self.register_buffer(name, None, persistent=False)

    @property
    def batch_size(self) -> int | None:
        """Fixed at construction, as Keras's Input(batch_shape=...)."""
        return self._batch_size

    @property
    def states(self) -> States:
        """The state each slot holds now (stateful only), in the cell's order."""
        if not self.stateful:
            # Not AttributeError: nn.Module would turn it into "no attribute 'states'".
            raise TypeError("a stateless layer holds no state between calls")
        if getattr(self, self.state_names[0]) is None:
            for name, zeros in zip(self.state_names, self._zeros(self.batch_size or 0)):
                setattr(self, name, zeros)
        return tuple(getattr(self, name) for name in self.state_names)

    def _zeros(self, slots: int) -> States:
        rnn = self.rnn
        shape = (rnn.num_layers * (2 if rnn.bidirectional else 1), slots, rnn.hidden_size)
        weight = rnn.weight_hh_l0
        assert isinstance(weight, torch.Tensor)
        return tuple(weight.new_zeros(shape) for _ in self.state_names)

    def set_states(self, states: States) -> None:
        """Give every slot these states (as Keras 3's `layer.states[i].assign(v)`), in the
        cell's order, each of shape (layers * directions, batch_size, units); kept detached."""
        if not self.stateful:
            raise TypeError("a stateless layer holds no state between calls")
        for name, current, state in zip(self.state_names, self.states, states, strict=True):
            if state.shape != current.shape:
                raise ValueError(f"{name} must have shape {tuple(current.shape)}, got {tuple(state.shape)}")
            setattr(self, name, state.detach())

    def reset_state(self) -> None:
        """Zero every slot of every layer and direction, as Keras's `layer.reset_state()`.
        New tensors, so states read before the reset keep their values."""
        if self.stateful:
            for name in self.state_names:
                setattr(self, name, None)  # zeros, made when next read

    def call(self, x: torch.Tensor, initial_state: States | None = None) -> tuple[torch.Tensor, States, States]:
        """One call: (output, initial states, final states), the initial ones being the very
        tensors passed to the RNN; the final ones keep their graph. `initial_state` (stateless
        only): start from these states instead of zeros, as Keras's `initial_state=` argument."""
        slots = x.shape[0]
        if initial_state is not None:
            if self.stateful:
                raise ValueError("a stateful layer starts from its own state: initial_state is for stateless ones")
            initial = initial_state
        elif not self.stateful:
            initial = self._zeros(slots)
        elif slots != self.batch_size:
            kind, message, _ = keras_error(FACTS[self.keras, self.backend], self.batch_size or 0, slots,
                                           self.rnn.hidden_size)
            raise KerasStateError(kind, message)
        else:
            initial = self.states
            if torch.is_grad_enabled():
                # A state left by a call under torch.inference_mode() (say, validation) cannot
                # take part in a backward pass; an ordinary copy can.
                initial = tuple(state.clone() if state.is_inference() else state for state in initial)
        output, final = forward(self.rnn, x, initial)
        if self.stateful:
            # Keras assigns the final states to non-trainable variables: the next call sees
            # constants, so no gradient crosses a call boundary.
            for name, state in zip(self.state_names, final):
                setattr(self, name, state.detach())
        return output, initial, final

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | States]:
        output, _, final = self.call(x)
        return output, final if len(final) == 2 else final[0]


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


class _ResetCallback:
    """The user's reset callback, as a Keras user writes it, hooked where Keras calls it."""

    def __init__(self, spec: Spec):
        self.reset = spec.reset

    def resets_before(self, invocation: Invocation, call: Call) -> bool:
        """Whether a hook that resets runs before this call: fit's on_epoch_begin and
        on_train_batch_begin, on_test_begin (fit's validation, evaluate), on_predict_begin."""
        kind = invocation.op.kind
        if kind.one_batch:
            return False  # train_on_batch and its kin run no callbacks
        if call.phase == Phase.TRAIN:
            return ((self.reset.kind == ResetKind.EPOCH and call.batch == 0)
                    or (self.reset.kind == ResetKind.EVERY and call.batch % self.reset.every == 0))
        if call.batch:
            return False
        return self.reset.predict if call.phase == Phase.PREDICT else self.reset.validation


class _Compiled:
    """TensorFlow's compiled functions, per model: a kind of call traces its function the first
    time it runs on that model, and the trace keeps the batch dimension when each of the call's
    batches has the same size; Keras's own check then sees the batch size."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.functions = FACTS[spec.keras, spec.backend].traces
        self.fixes_short_predict = FACTS[spec.keras, spec.backend].predict_fixes_short
        self.traced: set[str] = set()  # the functions the model in use has traced

    def new_model(self) -> None:
        self.traced = set()

    def first_trace_fixes(self, layer: KerasStateful, invocation: Invocation, call: Call) -> bool:
        op = invocation.op
        if self.functions is None or call.batch or call.phase == Phase.TRAIN and call.epoch != op.initial_epoch:
            return False
        function = self.functions["validation" if call.phase == Phase.VALIDATION else str(op.kind)]
        if function in self.traced:
            return False
        self.traced.add(function)
        if op.kind.one_batch:
            return True
        size = op.batch_size or layer.batch_size or 1
        samples = op.samples
        if op.kind == Kind.FIT:
            training = self.spec.fit_split(op)
            samples = training if call.phase == Phase.TRAIN else self.spec.fit_validation(op)
        return samples % size == 0 or self.fixes_short_predict and op.kind == Kind.PREDICT and samples < size


def _like(module: nn.RNNBase) -> nn.RNNBase:
    """A new module of the same build, its own fresh weights (as a newly built Keras model)."""
    made = getattr(nn, type(module).__name__)(module.input_size, module.hidden_size, num_layers=module.num_layers,
                                              bidirectional=module.bidirectional, batch_first=True)
    weight = module.weight_hh_l0
    assert isinstance(weight, torch.Tensor)
    return made.to(weight.device).eval()  # type: ignore[no-any-return]


def _switch(layer: KerasStateful, op: Op) -> KerasStateful:
    """The model a twin or a save/load round trip gives: a new module, built for its batch
    size, given the weights (set_weights, or what torch.save wrote and torch.load read back)."""
    module = _like(layer.rnn)
    if op.kind == Kind.TWIN:
        module.load_state_dict(layer.rnn.state_dict())
        batch_size = op.batch_size
    else:
        saved = io.BytesIO()
        torch.save(layer.state_dict(), saved)  # the state buffers are not persistent: not saved
        saved.seek(0)
        loaded = KerasStateful(module, layer.batch_size, stateful=layer.stateful, keras=layer.keras,
                               backend=layer.backend)
        loaded.load_state_dict(torch.load(saved, weights_only=True))
        return loaded
    return KerasStateful(module, batch_size, stateful=layer.stateful, keras=layer.keras, backend=layer.backend)


@torch.no_grad()
def run_mirror(spec: Spec, device: torch.device | None = None) -> Generator[CallRecord, None, None]:
    """Every layer call of the workflow, in order, with the user's reset callback; raises
    KerasStateError at the call where Keras raises, after yielding the calls before it."""
    device = device or torch.device("cpu")
    layer = KerasStateful(build_rnn(spec, device), spec.batch_size, stateful=spec.stateful, keras=spec.keras,
                          backend=spec.backend)
    callback = _ResetCallback(spec)
    compiled = _Compiled(spec)
    returned: list[States] = []  # per batch, the states the last predict returned (carried by hand)
    for invocation, calls in iter_invocations(spec):
        op = invocation.op
        if op.kind == Kind.RESET_STATE:
            layer.reset_state()
        elif op.kind in (Kind.TWIN, Kind.SAVE_AND_LOAD):
            layer = _switch(layer, op)
            compiled.new_model()
        predicts = spec.hand_carried and op.kind in (Kind.PREDICT, Kind.PREDICT_ON_BATCH)
        made: list[States] = []
        for call, x in _with_inputs(spec, calls, device):
            if callback.resets_before(invocation, call):
                layer.reset_state()
            if compiled.first_trace_fixes(layer, invocation, call) and spec.stateful and len(x) != layer.batch_size:
                raise KerasStateError(*first_trace_error(spec, FACTS[spec.keras, spec.backend], layer.batch_size or 0,
                                                         len(x))[:2])
            if spec.stateful and spec.backend == Backend.TENSORFLOW and len(x) == 1:
                # TensorFlow adds a lone sample's input projections to every row of the state:
                # each slot runs that sample from its own state.
                x = x.expand(layer.batch_size or 1, -1, -1)
            if op.hand_carried and returned:
                output, initial, final = layer.call(x, returned[call.batch])
            else:
                output, initial, final = layer.call(x)
            if spec.stateful and spec.backend == Backend.JAX:
                # JAX's stateless train/test/predict steps drop the state variables' assignments.
                layer.set_states(initial)
            if predicts:
                made.append(final)
            yield CallRecord(call, initial, final, output[:, -1])
        if predicts:
            returned = made


def _with_inputs(spec: Spec, calls: Iterator[Call], device: torch.device) -> Iterator[tuple[Call, torch.Tensor]]:
    """The calls with their inputs, made a few batches at a time (per data, as they come)."""
    per_call = spec.largest_batch * spec.timesteps * spec.features
    group = max(1, INPUT_GROUP_VALUES // per_call)
    for stream, same in itertools.groupby(calls, key=lambda call: call.stream):
        while chunk := list(itertools.islice(same, group)):
            inputs = batch_inputs(spec, stream, np.concatenate([call.samples for call in chunk]), device)
            yield from zip(chunk, torch.split(inputs, [len(call.samples) for call in chunk]))
