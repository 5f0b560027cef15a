"""The mirror's inputs and weights, made from the seed alone: a sample's data depend only on its
index (a counter-based hash), whatever batch or epoch holds it, and the weights are drawn
without touching torch's global random state."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.choices import Phase
from ..core.facts import facts_for
from ..core.spec import Spec
from ..data.masks import kept_steps_of
from .conv import ConvLSTM2D
from .module import Recurrent

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


def _fmix32_bits(z: Any) -> Any:
    """_fmix32 on int32 tensors holding the 32 bits: half the memory traffic of int64. A product
    wraps modulo 2**32, as the bits want; a shift is arithmetic, so its sign bits are masked off."""
    z ^= (z >> 16) & 0xFFFF
    z *= 0x45D9F3B
    z ^= (z >> 16) & 0xFFFF
    z *= 0x45D9F3B
    z ^= (z >> 16) & 0xFFFF
    return z


_PHASE_SALT = {Phase.TRAIN: 0x1B873593, Phase.VALIDATION: 0x5A3B2C1D, Phase.PREDICT: 0x27D4EB2F,
               Phase.EVALUATE: 0x165667B1}


def batch_inputs(spec: Spec, phase: Phase, samples: np.ndarray, device: torch.device) -> torch.Tensor:
    """These samples' inputs (see padded_batch)."""
    return padded_batch(spec, phase, samples, device)[0]


def padded_batch(spec: Spec, phase: Phase, samples: np.ndarray, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """These samples' inputs, and the mask the model computes of them (see model_mask)."""
    x, valid = inputs_and_padding(spec, phase, samples, device)
    return x, valid if spec.mask else None


def inputs_and_padding(spec: Spec, phase: Phase, samples: np.ndarray, device: torch.device
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Inputs of shape (len(samples), T, F), or (len(samples), T, H, W, C) for ConvLSTM2D, uniform
    in [-1, 1), for these samples of this phase, zero where padded; and their valid steps (see
    valid_steps), whether the model masks them or not.

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
    cells = torch.arange(spec.timesteps * spec.step_values, dtype=torch.int64, device=device)
    cells = (cells * 0x61C88647 & _MASK32).to(torch.int32)
    keys = per_sample.to(torch.int32)[:, None] + cells[None, :]  # the sum's low 32 bits
    values: torch.Tensor = _fmix32_bits(keys).view(torch.uint32).to(torch.float32)
    values = values.mul_(2.0 / 2**32).sub_(1.0).view(len(samples), spec.timesteps, spec.step_values)
    valid = valid_steps(spec, phase, samples, device)
    if valid is not None:
        values.mul_(valid[..., None])  # the padding: zeros, as keras.utils.pad_sequences writes it
        if spec.data_mask is not None and spec.data_mask.value != 0.0:
            values.add_((~valid[..., None]) * spec.data_mask.value)  # the data's masked steps hold V
    return values.view(len(samples), spec.timesteps, *spec.step_shape), valid


def valid_steps(spec: Spec, phase: Phase, samples: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """Which timesteps of these samples hold data (True) rather than padding, (len(samples), T):
    made (lengths), or the data's own mask (--mask-value); None where no sample is padded."""
    if not spec.padded:
        return None
    if spec.data_mask is not None:
        return torch.as_tensor(kept_steps_of(spec.data_mask, samples), device=device)
    lengths = torch.as_tensor(spec.lengths.of(spec.seed, phase, samples), device=device)
    steps = torch.arange(spec.timesteps, device=device)
    if spec.pad == "post":
        return steps[None, :] < lengths[:, None]
    return steps[None, :] >= spec.timesteps - lengths[:, None]


def model_mask(spec: Spec, phase: Phase, samples: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """The mask the model computes (Masking(0.0): a step is masked where it is padding); None
    where it masks nothing (no padding, or --no-mask feeding it as input)."""
    return padded_batch(spec, phase, samples, device)[1]


def build_rnn(spec: Spec, device: torch.device) -> Recurrent:
    """The torch module for the spec's cell, depth and direction, with weights drawn from
    the seed, without touching torch's global RNG. A stack of Keras layers (each returning
    sequences into the next) is exactly torch's multi-layer module without dropout."""
    module: Recurrent
    with torch.random.fork_rng(devices=[]):  # the module's own initialisation draws from it
        if spec.frame is not None:
            module = ConvLSTM2D(spec.features, spec.units, spec.kernel, spec.frame, padding=spec.padding,
                                num_layers=spec.layers, recurrent_activation=facts_for(spec).convlstm_gate,
                                data_format=spec.data_format)
        else:
            module = getattr(nn, spec.cell.torch_name)(
                spec.features, spec.units, num_layers=spec.layers, bidirectional=spec.bidirectional,
                batch_first=True)
    generator = torch.Generator().manual_seed(spec.seed)
    # A ConvLSTM2D's gate sums K x K pixels: all its weights are drawn smaller in proportion.
    bound = 1.0 / (spec.units * spec.kernel**2 if spec.frame is not None else spec.units)**0.5
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.empty_like(parameter).uniform_(-bound, bound, generator=generator))
    return module.to(device).eval()
