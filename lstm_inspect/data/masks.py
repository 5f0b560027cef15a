"""--mask-value V with --data: the mask keras.layers.Masking(mask_value=V) computes from the user's
rows (a step is kept where any feature differs from V, as its `any(inputs != mask_value, axis=-1)`),
read a chunk of rows at a time, or for the rows a batch runs. Pure numpy."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..core.choices import Phase
from ..core.lengths import DataMask, MaskLayout
from ..core.spec import Spec
from .datafile import open_data, read_rows, rows_between

CHUNK_ROWS = 4096


def kept_steps(rows: np.ndarray, value: float) -> np.ndarray:
    """(rows, T): True where a step is kept, False where every feature equals `value`, compared in
    float32 as Keras compares them (it casts x to float32 before Masking runs)."""
    kept: np.ndarray = (rows.astype(np.float32, copy=False) != np.float32(value)).any(axis=-1)
    return kept


def read_mask(path: str, value: float, key: str | None = None, chunk_rows: int = CHUNK_ROWS) -> DataMask:
    """The mask of the file's rows, and where their masked steps fall (see MaskLayout)."""
    return layout_of(_opened(path, key), value, path, key, chunk_rows)


def layout_of(x: Any, value: float, path: str, key: str | None = None, chunk_rows: int = CHUNK_ROWS) -> DataMask:
    """`x` (rows, T, F), memory-mapped or not, read a chunk of rows at a time."""
    rows, timesteps = int(x.shape[0]), int(x.shape[1])
    counts = dict.fromkeys(("post", "pre", "ends", "middle", "empty"), 0)
    shortest, longest = timesteps, 0
    for start in range(0, rows, chunk_rows):
        kept = kept_steps(rows_between(x, start, min(rows, start + chunk_rows)), value)
        valid = kept.sum(axis=1)
        some = valid > 0
        first = kept.argmax(axis=1)
        last = timesteps - 1 - kept[:, ::-1].argmax(axis=1)
        middle = some & (last - first + 1 > valid)
        before, after = some & ~middle & (first > 0), some & ~middle & (last < timesteps - 1)
        for name, rows_of_kind in (("post", after & ~before), ("pre", before & ~after), ("ends", before & after),
                                   ("middle", middle), ("empty", ~some)):
            counts[name] += int(rows_of_kind.sum())
        shortest, longest = min(shortest, int(valid.min())), max(longest, int(valid.max()))
    return DataMask(path, float(value), key or "", MaskLayout(rows, **counts, shortest=shortest, longest=longest))


def kept_steps_of(mask: DataMask, samples: np.ndarray) -> np.ndarray:
    """(len(samples), T): the kept steps of these samples, sample i reading row i % rows."""
    x = _opened(mask.path, mask.key or None)
    return kept_steps(read_rows(x, np.asarray(samples, dtype=np.int64) % len(x)), mask.value)


@functools.lru_cache(maxsize=4)
def _opened(path: str, key: str | None) -> np.ndarray:
    """Opened once per file (a .npz's member is read whole: reread for every batch it would cost
    the file each time)."""
    return open_data(path, key)


def valid_lengths(spec: Spec, phase: Phase, samples: np.ndarray) -> np.ndarray:
    """How many valid (kept) steps each of these samples holds (int64): its made length, or what
    the data's mask keeps of its row."""
    if spec.data_mask is not None:
        counted: np.ndarray = kept_steps_of(spec.data_mask, samples).sum(axis=1)
        return counted
    return spec.lengths.of(spec.seed, phase, samples)
