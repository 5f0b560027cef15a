"""Data laid out for a stateful layer: row j+B continues row j.

Keras carries slot i of one batch into slot i of the next, so with batch size B the sample in
row j+B must be the window that follows row j's in the same series. `stateful_layout` cuts
long series into windows of T steps and orders them that way. Pure numpy.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Layout:
    """Windows ordered for a stateful layer of batch size `batch_size`.

    `x` (and `y`): one row per window; row j+B continues row j. `source[j]`: (series, first
    step) of row j's window, the inverse mapping. `reset_every`: batches per group of B series;
    reset the state every that many batches (a series ends there), e.g. `--reset every:K` with
    K = reset_every, counting from each epoch's batch 0."""

    x: np.ndarray
    y: np.ndarray | None
    source: np.ndarray
    batch_size: int
    reset_every: int  # the windows of each series

    def to_series(self, rows: np.ndarray) -> np.ndarray:
        """Per-row values (in x's order) back in (series, window) order: the inverse of the layout."""
        out = np.empty((len(rows) // self.reset_every, self.reset_every, *rows.shape[1:]), dtype=rows.dtype)
        out[self.source[:, 0], self.source[:, 1] // self.x.shape[1]] = rows
        return out


def stateful_layout(series: Any, timesteps: int, batch_size: int, targets: Any = None) -> Layout:
    """Cut `series` into windows of `timesteps` steps, ordered so that row j+B continues row j.

    `series`: (S, L, F) for S series of L steps ((S, L, H, W, C) for a ConvLSTM2D's images),
    (L, F) or (L,) for one long series, which is
    cut into B streams of L // B steps. Each series gives L // T windows (a remainder is
    dropped, as drop_remainder does). Series are taken B at a time, slot i holding series
    g*B + i; S must be a multiple of B (pad with series of your own, or choose B dividing S).
    `targets` (shaped like `series`, without the features or with them): each window's target
    is its value at the window's last step, as for a model returning its last output."""
    data = np.asarray(series)
    for name, value in (("timesteps", timesteps), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    goal = None if targets is None else np.asarray(targets)
    if data.ndim in (1, 2):  # one long series: B streams, one per slot
        length = data.shape[0] // batch_size
        if length < timesteps:
            raise ValueError(f"one series of {data.shape[0]:,} steps cut into {batch_size:,} streams leaves "
                             f"{length:,} steps each, fewer than a window of {timesteps:,}")
        data = data[:length * batch_size].reshape(batch_size, length, *data.shape[1:])
        goal = None if goal is None else goal[:length * batch_size].reshape(batch_size, length, *goal.shape[1:])
    if data.ndim == 2:
        data = data[..., None]
    if goal is not None and goal.shape[:2] != data.shape[:2]:
        raise ValueError(f"targets must have a value per series and step, shape {data.shape[:2]} (then any "
                         f"features), got {goal.shape}")
    if data.ndim == 4:  # one series of images, or series of 2-D steps: it cannot tell which
        raise ValueError(f"series of shape {data.shape} has 4 axes: give series of images as (series, steps, H, W, C) "
                         "(series[None] for one long series, then one slot's) or series of features as "
                         "(series, steps, features)")
    if data.ndim not in (3, 5):
        raise ValueError(f"series must be (series, steps, features), (series, steps, H, W, C) of images, "
                         f"(steps, features) or (steps,), got {data.shape}")
    count, length = data.shape[:2]
    if count % batch_size:
        raise ValueError(f"{count:,} series do not fill batches of {batch_size:,}: slot i holds series i of each "
                         f"group of {batch_size:,}; choose a batch size dividing {count:,}")
    windows = length // timesteps
    if windows < 1:
        raise ValueError(f"series of {length:,} steps hold no window of {timesteps:,}")
    groups = count // batch_size
    # (group, window, slot) -> row: groups one after another, window by window, slot by slot.
    group, window, slot = np.meshgrid(np.arange(groups), np.arange(windows), np.arange(batch_size), indexing="ij")
    which = (group * batch_size + slot).ravel()
    first = (window * timesteps).ravel()
    steps = first[:, None] + np.arange(timesteps)
    x = data[which[:, None], steps]
    y = None if goal is None else goal[which, first + timesteps - 1]
    return Layout(x, y, np.stack([which, first], axis=1), batch_size, windows)
