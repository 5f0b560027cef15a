"""The mirror: a real PyTorch LSTM whose state is handled by hand the way Keras handles it.

`KerasStateLSTM` applies Keras's state rules by itself (it never reads the schedule):
stateless calls start from zeros; stateful calls start from the layer's state variables,
which hold the previous call's final states (detached) and are zeroed only by
`reset_state()`; a stateful call with another batch size raises Keras's ValueError.
`run_mirror` drives it like Keras's fit/evaluate/predict loops with the user's reset
callback. Inputs are made per batch from the seed, never for the whole dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .schedule import Call, iter_calls, stateful_batch_mismatch_message
from .spec import Phase, Spec


class KerasStateError(ValueError):
    """What Keras raises for a stateful call whose batch size differs from the state's."""


@dataclass(frozen=True)
class CallRecord:
    call: Call
    h0: torch.Tensor  # the very tensors passed to nn.LSTM as its initial state
    c0: torch.Tensor
    hn: torch.Tensor  # final states, as the layer keeps them
    cn: torch.Tensor
    output: torch.Tensor  # last timestep's output per slot


_MASK32 = 0xFFFFFFFF


def _fmix32(z):
    """Murmur3's finaliser on 32-bit values held in int64 tensors (or Python ints).

    A bijection of [0, 2**32); multipliers stay below 2**31 so no product overflows int64.
    """
    z = ((z ^ (z >> 16)) * 0x45D9F3B) & _MASK32
    z = ((z ^ (z >> 16)) * 0x45D9F3B) & _MASK32
    return z ^ (z >> 16)


_PHASE_SALT = {Phase.TRAIN: 0x1B873593, Phase.VALIDATION: 0x5A3B2C1D, Phase.PREDICT: 0x27D4EB2F}


def batch_inputs(spec: Spec, phase: Phase, samples: np.ndarray, device: torch.device) -> torch.Tensor:
    """Inputs of shape (len(samples), T, F), uniform in [-1, 1), for these samples of this phase.

    Counter-based (a hash of seed, phase, sample and cell) rather than a seeded generator,
    so that a sample's data depends only on its index, whatever batch or epoch holds it.
    """
    salt = _fmix32((spec.seed ^ _PHASE_SALT[phase]) & _MASK32)
    per_sample = torch.as_tensor(samples, dtype=torch.int64, device=device)
    per_sample = _fmix32(((per_sample & _MASK32) * 0x2C1B3C6D ^ salt) & _MASK32)
    cells = torch.arange(spec.timesteps * spec.features, dtype=torch.int64, device=device)
    keys = (per_sample[:, None] + cells[None, :] * 0x61C88647) & _MASK32
    values = _fmix32(keys).to(torch.float32) * (2.0 / 2**32) - 1.0
    return values.view(len(samples), spec.timesteps, spec.features)


def build_lstm(spec: Spec, device: torch.device) -> nn.LSTM:
    """An nn.LSTM with weights drawn from the seed, without touching torch's global RNG."""
    with torch.random.fork_rng(devices=[]):  # nn.LSTM's own initialisation draws from it
        lstm = nn.LSTM(spec.features, spec.units, batch_first=True)
    generator = torch.Generator().manual_seed(spec.seed)
    bound = 1.0 / spec.units**0.5
    with torch.no_grad():
        for parameter in lstm.parameters():
            parameter.copy_(torch.empty_like(parameter).uniform_(-bound, bound, generator=generator))
    return lstm.to(device).eval()


class KerasStateLSTM:
    """nn.LSTM with the state handling of a Keras 3 RNN layer (keras/src/layers/rnn/rnn.py)."""

    def __init__(self, lstm: nn.LSTM, stateful: bool, batch_size: int):
        self.lstm = lstm
        self.stateful = stateful
        self.batch_size = batch_size
        self.states: tuple[torch.Tensor, torch.Tensor] | None = None
        if stateful:
            # Keras creates the state variables at build, with the fixed batch size, as zeros.
            self.reset_state()

    def _zeros(self, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.lstm.weight_hh_l0
        shape = (slots, self.lstm.hidden_size)
        return (weight.new_zeros(shape), weight.new_zeros(shape))

    def reset_state(self) -> None:
        self.states = self._zeros(self.batch_size)

    @torch.no_grad()
    def __call__(self, call: Call, x: torch.Tensor) -> CallRecord:
        slots = x.shape[0]
        if self.stateful:
            if slots != self.batch_size:
                raise KerasStateError(stateful_batch_mismatch_message(self.batch_size, slots))
            h0, c0 = self.states
        else:
            h0, c0 = self._zeros(slots)
        output, (hn, cn) = self.lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)))
        hn, cn = hn[0], cn[0]
        if self.stateful:
            # Keras assigns the final states to non-trainable variables: the next call
            # sees constants, so no gradient crosses a batch boundary (truncated BPTT).
            self.states = (hn.detach(), cn.detach())
        return CallRecord(call, h0, c0, hn, cn, output[:, -1])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def run_mirror(spec: Spec, device: torch.device | None = None) -> Iterator[CallRecord]:
    """Every call fit (+ validation) and predict make, in order; raises KerasStateError
    at the call where Keras raises, after yielding the calls before it."""
    device = device or torch.device("cpu")
    layer = KerasStateLSTM(build_lstm(spec, device), spec.stateful, spec.batch_size)
    for call in iter_calls(spec):
        if call.phase == Phase.TRAIN:
            # The user's callback: on_epoch_begin, then on_train_batch_begin.
            if call.batch == 0 and spec.reset.resets_on_epoch_begin():
                layer.reset_state()
            if spec.reset.resets_on_train_batch_begin(call.batch):
                layer.reset_state()
        yield layer(call, batch_inputs(spec, call.phase, call.samples, device))
