"""Padded sequences (--lengths, --pad, --mask): each sample's valid timesteps, the rest padding
(zeros, as keras.utils.pad_sequences writes it), after them ('post', pad_sequences's default is
'pre') or before them ('pre'), and whether the model masks it (keras.layers.Masking(0.0) before
the recurrent layers).
Measured on Keras 3.15.1 (torch, TensorFlow, JAX): with the mask, a masked step holds the state
(post or pre, the final h and c equal an unpadded run's), a unidirectional layer's sequence
output repeats the last valid output there, a Bidirectional one's is zeros on both directions,
and a stateful layer carries the state of each slot's last valid step into the next batch.
Without it the padding runs as input and moves the state."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .choices import Cell, Phase
from .digits import MAX_DIGITS, is_number, too_long
from .errors import SpecError

PADS = ("post", "pre")
DEFAULT_PAD = "post"
MAX_CYCLE = 10_000  # lengths a list may give (a longer list is data: --data)


@dataclass(frozen=True)
class Lengths:
    """Each sample's valid timesteps: a list cycled over the samples of each phase (sample i takes
    cycle[i % len(cycle)]), or drawn between `low` and `high` inclusive from the seed, per sample.
    Empty: every sample whole (no padding)."""

    cycle: tuple[int, ...] = ()
    low: int = 0
    high: int = 0

    def __bool__(self) -> bool:
        return bool(self.cycle) or self.high > 0

    def __str__(self) -> str:
        if self.cycle:
            return ",".join(str(length) for length in self.cycle)
        return f"{self.low}-{self.high}" if self else ""

    @classmethod
    def parse(cls, text: str) -> Lengths:
        """`5,3,4` (a list, cycled) or `2-5` (drawn); "" for none."""
        text = text.strip()
        if not text:
            return cls()
        if "-" in text:
            parts = [part.strip() for part in text.split("-")]
            if len(parts) != 2:
                raise SpecError("lengths", "{lengths} is a list (5,3,4) or a range A-B (2-5), got {got!r}", got=text)
            low, high = (_length(part, text) for part in parts)
            if low > high:
                raise SpecError("lengths", "{lengths} A-B needs A <= B, got {got!r}", got=text)
            return cls(low=low, high=high)
        parts = [part.strip() for part in text.split(",")]
        if len(parts) > MAX_CYCLE:
            raise SpecError("lengths", f"{{lengths}} lists at most {MAX_CYCLE:,} lengths; give --data for more")
        return cls(cycle=tuple(_length(part, text) for part in parts))

    @property
    def longest(self) -> int:
        return max(self.cycle) if self.cycle else self.high

    @property
    def shortest(self) -> int:
        return min(self.cycle) if self.cycle else self.low

    def of(self, seed: int, phase: Phase, samples: np.ndarray) -> np.ndarray:
        """The valid lengths of these samples of this phase (int64): a sample's own, whatever batch
        or epoch holds it (a hash of seed, phase and index, not a generator's sequence)."""
        index = np.asarray(samples, dtype=np.int64)
        if self.cycle:
            return np.asarray(self.cycle, dtype=np.int64)[index % len(self.cycle)]
        key = np.uint64((seed << 32) ^ zlib.crc32(phase.value.encode()))
        with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as the hash wants
            mixed = _splitmix64(index.astype(np.uint64) ^ key)
        span = np.uint64(self.high - self.low + 1)
        drawn: np.ndarray = (mixed % span).astype(np.int64) + self.low
        return drawn


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = z ^ (z >> np.uint64(31))
    return mixed


def _length(part: str, text: str) -> int:
    if not is_number(part):
        raise SpecError("lengths", "{lengths} takes whole numbers: a list (5,3,4) or a range A-B (2-5), got {got!r}",
                        got=text)
    if too_long(part):
        raise SpecError("lengths", f"{{lengths}} has at most {MAX_DIGITS} digits a length")
    return int(part)


class Spec(Protocol):
    """What these rules read of a spec.Spec (which checks itself with them: no import back)."""

    @property
    def lengths(self) -> Lengths: ...
    @property
    def pad(self) -> str: ...
    @property
    def mask(self) -> bool: ...
    @property
    def timesteps(self) -> int: ...
    @property
    def cell(self) -> Cell: ...
    @property
    def replicas(self) -> int: ...


def check_lengths(spec: Spec) -> None:
    """Lengths within the sequence, and the padding settings given with them."""
    if not spec.lengths:
        if spec.pad != DEFAULT_PAD:
            raise SpecError("pad", "{pad} says where the padding goes: give {lengths} too")
        if not spec.mask:
            raise SpecError("mask", "{mask} feeds the padding unmasked: give {lengths} too (without it no sample "
                            "is padded)")
        return
    if spec.pad not in PADS:
        raise SpecError("pad", "{pad} is post or pre, got {got!r}", got=spec.pad)
    if spec.lengths.shortest < 1:
        raise SpecError("lengths", "{lengths} are at least 1: a sample of no valid step runs nothing (Keras's mask "
                        "then holds the state through all of it)")
    if spec.lengths.longest > spec.timesteps:
        raise SpecError("lengths", f"{{lengths}} {spec.lengths}: a length of {spec.lengths.longest:,} is longer "
                        f"than the {spec.timesteps:,} timesteps of {{shape}}")
    if spec.cell.convolutional:
        raise SpecError("lengths", "{lengths} with {cell} convlstm2d is not followed yet: padding is followed for "
                        "LSTM, GRU and SimpleRNN")
    if spec.replicas > 1:
        raise SpecError("lengths", "{lengths} with {replicas} is not followed yet")
