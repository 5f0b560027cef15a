"""The mirror: a real PyTorch RNN whose state is handled by hand the way Keras handles it.

`KerasStateRNN` applies Keras's state rules by itself (it never reads the schedule):
stateless calls start from zeros; stateful calls start from the layer's state variables,
which hold the previous call's final states (detached) and are zeroed only by
`reset_state()`; a stateful call with another batch size raises what Keras raises.
`run_mirror` drives it like Keras's fit/evaluate/predict loops with the user's reset
callback. Inputs are made a few batches at a time from the seed, never for the whole
dataset.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .schedule import Call, iter_calls, keras_error
from .spec import Cell, Phase, Spec


class KerasStateError(ValueError):
    """What Keras raises for a stateful call whose batch size differs from the state's;
    `keras_type` is the name of Keras's own exception class for the chosen version."""

    def __init__(self, keras_type: str, message: str):
        super().__init__(message)
        self.keras_type = keras_type


@dataclass(frozen=True)
class CallRecord:
    """One call of the mirror. States are tuples in the cell's order (h, c for an LSTM),
    each of shape (layers * directions, slots, units), as torch's RNN modules take them."""

    call: Call
    initial: tuple[torch.Tensor, ...]  # the very tensors passed to the RNN as its initial state
    final: tuple[torch.Tensor, ...]  # final states, as the layer keeps them
    output: torch.Tensor  # last timestep's output per slot (both directions concatenated)


_MASK32 = 0xFFFFFFFF


def _fmix32(z):
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


_PHASE_SALT = {Phase.TRAIN: 0x1B873593, Phase.VALIDATION: 0x5A3B2C1D, Phase.PREDICT: 0x27D4EB2F}


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
    values = _fmix32(keys).to(torch.float32)
    return values.mul_(2.0 / 2**32).sub_(1.0).view(len(samples), spec.timesteps, spec.features)


_TORCH_MODULES = {Cell.LSTM: nn.LSTM, Cell.GRU: nn.GRU, Cell.RNN: nn.RNN}


def build_rnn(spec: Spec, device: torch.device) -> nn.RNNBase:
    """The torch module for the spec's cell, depth and direction, with weights drawn from
    the seed, without touching torch's global RNG. A stack of Keras layers (each returning
    sequences into the next) is exactly torch's multi-layer module without dropout."""
    with torch.random.fork_rng(devices=[]):  # the module's own initialisation draws from it
        module = _TORCH_MODULES[spec.cell](spec.features, spec.units, num_layers=spec.layers,
                                           bidirectional=spec.bidirectional, batch_first=True)
    generator = torch.Generator().manual_seed(spec.seed)
    bound = 1.0 / spec.units**0.5
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.empty_like(parameter).uniform_(-bound, bound, generator=generator))
    return module.to(device).eval()


def forward(module: nn.RNNBase, x: torch.Tensor,
            initial: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Run the module; states always as a tuple, whether it takes (h, c) or h alone."""
    hx = None if initial is None else initial if len(initial) == 2 else initial[0]
    output, final = module(x, hx)
    return output, tuple(final) if isinstance(final, tuple) else (final,)


class KerasStateRNN:
    """A torch RNN module with the state handling of Keras's RNN layers
    (keras/src/layers/rnn/rnn.py), for every layer and direction at once."""

    def __init__(self, module: nn.RNNBase, spec: Spec):
        self.module = module
        self.spec = spec
        self.states: tuple[torch.Tensor, ...] | None = None
        if spec.stateful:
            # Keras creates the state variables at build, with the fixed batch size, as zeros.
            self.reset_state()

    def _zeros(self, slots: int) -> tuple[torch.Tensor, ...]:
        weight = self.module.weight_hh_l0
        shape = (self.spec.layers * self.spec.directions, slots, self.spec.units)
        return tuple(weight.new_zeros(shape) for _ in self.spec.cell.state_names)

    def reset_state(self) -> None:
        self.states = self._zeros(self.spec.batch_size)

    @torch.no_grad()
    def __call__(self, call: Call, x: torch.Tensor) -> CallRecord:
        slots = x.shape[0]
        if self.spec.stateful:
            if slots != self.spec.batch_size:
                raise KerasStateError(*keras_error(self.spec, slots))
            initial = self.states
        else:
            initial = self._zeros(slots)
        output, final = forward(self.module, x, initial)
        if self.spec.stateful:
            # Keras assigns the final states to non-trainable variables: the next call
            # sees constants, so no gradient crosses a batch boundary (truncated BPTT).
            self.states = tuple(state.detach() for state in final)
        return CallRecord(call, initial, final, output[:, -1])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def mirror_records(spec: Spec, device: torch.device | None = None, limit: int | None = None) -> list[CallRecord]:
    """The mirror's calls as a list (the first `limit` only, if given), up to where it raises."""
    records = []
    try:
        records.extend(itertools.islice(run_mirror(spec, device), limit))
    except KerasStateError:
        pass
    return records


def run_mirror(spec: Spec, device: torch.device | None = None) -> Iterator[CallRecord]:
    """Every call fit (+ validation) and predict make, in order; raises KerasStateError
    at the call where Keras raises, after yielding the calls before it."""
    device = device or torch.device("cpu")
    layer = KerasStateRNN(build_rnn(spec, device), spec)
    for call, x in _calls_with_inputs(spec, device):
        if call.phase == Phase.TRAIN:
            # The user's callback: on_epoch_begin, then on_train_batch_begin.
            if call.batch == 0 and spec.reset.resets_on_epoch_begin():
                layer.reset_state()
            if spec.reset.resets_on_train_batch_begin(call.batch):
                layer.reset_state()
        yield layer(call, x)


# Inputs are hashed for a few calls at a time, up to this many values: a handful of kernel
# launches instead of a dozen per call (what costs on a GPU), memory still a few batches.
INPUT_GROUP_VALUES = 1 << 20


def _calls_with_inputs(spec: Spec, device: torch.device) -> Iterator[tuple[Call, torch.Tensor]]:
    per_call = spec.batch_size * spec.timesteps * spec.features
    group = max(1, INPUT_GROUP_VALUES // per_call)
    for phase, calls in itertools.groupby(iter_calls(spec), key=lambda call: call.phase):
        while chunk := list(itertools.islice(calls, group)):
            inputs = batch_inputs(spec, phase, np.concatenate([call.samples for call in chunk]), device)
            yield from zip(chunk, inputs.split([len(call.samples) for call in chunk]))
