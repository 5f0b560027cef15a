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

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .choices import Backend, Cell, Phase
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


@dataclass(frozen=True)
class MaskLayout:
    """Where the masked steps of a data file's rows fall, each row counted once: only after its
    last valid step (`post`), only before its first (`pre`), at both ends (`ends`), between valid
    steps (`middle`), or everywhere (`empty`); and the fewest and most valid steps of a row."""

    rows: int = 0
    post: int = 0
    pre: int = 0
    ends: int = 0
    middle: int = 0
    empty: int = 0
    shortest: int = 0
    longest: int = 0

    @property
    def padded(self) -> int:
        """Rows with a masked step."""
        return self.post + self.pre + self.ends + self.middle + self.empty


def describe_layout(mask: DataMask, timesteps: int) -> str:
    """Where the data's masked steps fall, in a sentence's words (no capital, no full stop)."""
    layout = mask.layout
    kinds = [(layout.post, "after their valid steps"), (layout.pre, "before their valid steps"),
             (layout.middle, "between valid steps"), (layout.ends, "at both ends"), (layout.empty, "at every step")]
    where = ", ".join(f"{count:,} {place}" for count, place in kinds if count)
    rows = f"{layout.rows:,} row" + "s" * (layout.rows != 1)
    if not layout.padded:
        return f"no step of {mask.path}'s {rows} has every feature equal to {mask.value!r}: nothing is masked"
    kept = (f"{layout.shortest:,}" if layout.shortest == layout.longest
            else f"{layout.shortest:,} to {layout.longest:,}")
    have = "has" if layout.padded == 1 else "have"
    return (f"{layout.padded:,} of {mask.path}'s {rows} {have} steps whose every feature is {mask.value!r} ({where}); "
            f"a row keeps {kept} of its {timesteps:,} timesteps")


@dataclass(frozen=True)
class DataMask:
    """--mask-value V with --data: each sample's mask read from the user's x, as
    keras.layers.Masking(mask_value=V) computes it (a step is masked where every feature equals V);
    sample i of any phase reads row i % rows. `layout`: what the rows showed when read."""

    path: str
    value: float = 0.0
    key: str = ""
    layout: MaskLayout = MaskLayout()

    @classmethod
    def of(cls, given: DataMask | Mapping[str, Any]) -> DataMask:
        """From itself or from what to_json wrote (a mapping, its layout one too)."""
        if isinstance(given, DataMask):
            return given
        if not isinstance(given, Mapping) or not isinstance(given.get("path"), str):
            raise SpecError("data_mask", "{data_mask} is a DataMask or a mapping with its path, got {got!r}", got=given)
        layout = given.get("layout") or {}
        try:
            return cls(given["path"], float(given.get("value", 0.0)), str(given.get("key") or ""),
                       MaskLayout(**{name: int(count) for name, count in layout.items()}))
        except (TypeError, ValueError):
            raise SpecError("data_mask", "{data_mask}: a value, a key and a layout of counts, got {got!r}",
                            got=given) from None


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
    @property
    def samples(self) -> int: ...
    @property
    def padding(self) -> str: ...
    @property
    def backend(self) -> Backend: ...
    @property
    def data_mask(self) -> DataMask | None: ...


def check_lengths(spec: Spec) -> None:
    """Lengths within the sequence, or the mask read from the data, and the padding settings given
    with them."""
    if spec.data_mask is not None:
        _check_data_mask(spec, spec.data_mask)
        return
    if not spec.lengths:
        if spec.pad != DEFAULT_PAD:
            raise SpecError("pad", "{pad} says where the padding goes: give {lengths} too")
        if not spec.mask:
            raise SpecError("mask", "{mask} feeds the padding unmasked: give {lengths} (or {data_mask} with "
                            "--data) too (without it no sample is padded)")
        return
    if spec.pad not in PADS:
        raise SpecError("pad", "{pad} is post or pre, got {got!r}", got=spec.pad)
    if spec.lengths.shortest < 1:
        raise SpecError("lengths", "{lengths} are at least 1: a sample of no valid step runs nothing (Keras's mask "
                        "then holds the state through all of it)")
    if spec.lengths.longest > spec.timesteps:
        raise SpecError("lengths", f"{{lengths}} {spec.lengths}: a length of {spec.lengths.longest:,} is longer "
                        f"than the {spec.timesteps:,} timesteps of {{shape}}")
    if spec.cell.convolutional and spec.mask:
        _check_masked_frames(spec)


def frames_caveat(spec: Spec) -> str:
    """What a ConvLSTM2D needs before Masking can help it (see _check_masked_frames); "" otherwise."""
    if not spec.cell.convolutional:
        return ""
    return (" (a ConvLSTM2D takes Masking's per-pixel mask with padding=\"same\" only, and not on JAX: elsewhere "
            "Keras raises)")


def _check_masked_frames(spec: Spec) -> None:
    """Masking before a ConvLSTM2D computes its mask per pixel, (batch, T, H, W) (`any` over the
    channels), and the layer's loop applies it to its state frames. Measured (Keras 3.15.1 and
    tf-keras 2): with padding="same" a padded frame masked whole holds the state, as a sequence's
    mask does, on torch, TensorFlow and tf-keras; with padding="valid" the frames differ and every
    Keras raises in the layer's first call, and JAX raises either way."""
    if spec.padding == "valid":
        raise SpecError("lengths", "{lengths} with {cell} convlstm2d, padding=\"valid\", masked: Keras raises in the "
                        "layer's first call (Masking's mask is per pixel, H x W, and the states are the smaller "
                        "frames \"valid\" leaves); give {padding} same, or {mask}")
    if spec.backend == Backend.JAX:
        raise SpecError("lengths", "{lengths} with {cell} convlstm2d, masked, on {backend} jax: Keras raises in the "
                        "layer's first call (\"Incompatible shapes for broadcasting\": its per-pixel mask against "
                        "the states); use torch or TensorFlow, or give {mask}")


def _check_data_mask(spec: Spec, mask: DataMask) -> None:
    if spec.lengths:
        raise SpecError("data_mask", "{data_mask} reads each sample's mask from the data: give it or {lengths}, "
                        "not both")
    if spec.pad != DEFAULT_PAD:
        raise SpecError("pad", "{pad} places made padding: with {data_mask} the masked steps are where the data "
                        "has them")
    if mask.layout.rows != spec.samples:
        raise SpecError("data_mask", f"{{data_mask}} read {mask.layout.rows:,} rows, not the {spec.samples:,} samples "
                        "of {shape}: read it with lstm_inspect.data.masks.read_mask(path, value) from the file of x")
    if math.isnan(mask.value):
        raise SpecError("data_mask", "{data_mask} nan masks nothing: Masking compares with !=, and a NaN equals no "
                        "value, not even itself")
    if spec.cell.convolutional:
        raise SpecError("data_mask", "{data_mask} with {cell} convlstm2d is not followed yet: the data's masks are "
                        "followed for LSTM, GRU and SimpleRNN (made padding, --lengths, for ConvLSTM2D too)")
