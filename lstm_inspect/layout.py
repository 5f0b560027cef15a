"""Data laid out for a stateful layer: row j+B continues row j, and what a file's rows do.

Keras carries slot i of one batch into slot i of the next, so with batch size B the sample in
row j+B must be the window that follows row j's in the same series. `stateful_layout` cuts
long series into windows of T steps and orders them that way; `continuity` reads a data file's
rows (memory-mapped, a chunk at a time) and finds the sliding windows it can see exactly.
Pure numpy.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Any

import numpy as np

from .memory import rooms


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

    `series`: (S, L, F) for S series of L steps, (L, F) or (L,) for one long series, which is
    cut into B streams of L // B steps. Each series gives L // T windows (a remainder is
    dropped, as drop_remainder does). Series are taken B at a time, slot i holding series
    g*B + i; S must be a multiple of B (pad with series of your own, or choose B dividing S).
    `targets` (shaped like `series`, without the features or with them): each window's target
    is its value at the window's last step, as for a model returning its last output."""
    data = np.asarray(series)
    if timesteps < 1 or batch_size < 1:
        raise ValueError("timesteps and batch_size must be positive")
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
    if data.ndim != 3:
        raise ValueError(f"series must be (series, steps, features), (steps, features) or (steps,), got {data.shape}")
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
    which = (group * batch_size + slot).reshape(-1)
    first = (window * timesteps).reshape(-1)
    steps = first[:, None] + np.arange(timesteps)
    x = data[which[:, None], steps]
    y = None if goal is None else goal[which, first + timesteps - 1]
    return Layout(x, y, np.stack([which, first], axis=1), batch_size, windows)


@dataclass(frozen=True)
class Continuity:
    """What a data file's rows show: `stride` s > 0 where each row is the row before moved s
    steps on (x[j+1, :-s] == x[j, s:] for every j: sliding windows of one series), and
    `slot_stride` the same between row j and row j+B (what a stateful layer carries)."""

    rows: int
    stride: int | None
    slot_stride: int | None
    path: str = ""  # the file read, when there is one

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "rows": self.rows, "stride": self.stride, "slot_stride": self.slot_stride}


def _shift(x: Any, gap: int, chunk_rows: int) -> int | None:
    """The s (0 < s < T) with x[j+gap, :-s] == x[j, s:] for every row j, read a chunk at a time;
    None if there is none (or fewer than gap+1 rows)."""
    rows, timesteps = x.shape[0], x.shape[1]
    if rows <= gap or timesteps < 2:
        return None
    first, later = np.asarray(x[0]), np.asarray(x[gap])
    candidates = [s for s in range(1, timesteps) if np.array_equal(later[:-s], first[s:])]
    for stride in candidates:
        if all(_chunk_shifted(x, start, min(rows, start + chunk_rows + gap), gap, stride)
               for start in range(0, rows - gap, chunk_rows)):
            return stride
    return None


def _chunk_shifted(x: Any, start: int, stop: int, gap: int, stride: int) -> bool:
    chunk = _rows(x, start, stop)
    return bool(np.array_equal(chunk[gap:, :-stride], chunk[:-gap, stride:]))


def _rows(x: Any, start: int, stop: int) -> np.ndarray:
    """Rows start..stop-1 of `x`. A memory-mapped file's are read from the file: slicing the map
    would leave every page read resident, and the process would grow to the file's size."""
    filename = getattr(x, "filename", None)
    # Only the map itself, as np.load gives it: a slice of it keeps the parent's offset.
    if not isinstance(x, np.memmap) or not isinstance(x.base, mmap.mmap) or not filename or not x.flags.c_contiguous:
        return np.asarray(x[start:stop])
    row_bytes = x.dtype.itemsize * int(np.prod(x.shape[1:], dtype=np.int64))
    with open(filename, "rb") as file:
        file.seek(x.offset + start * row_bytes)
        chunk = np.frombuffer(file.read((stop - start) * row_bytes), dtype=x.dtype)
    return chunk.reshape(stop - start, *x.shape[1:])


def continuity(x: Any, batch_size: int, chunk_rows: int = 4096, path: str = "") -> Continuity:
    """Read `x` (rows, T, F), memory-mapped or not, a chunk of rows at a time."""
    return Continuity(int(x.shape[0]), _shift(x, 1, chunk_rows), _shift(x, batch_size, chunk_rows)
                      if batch_size > 1 else None, path)


def open_data(path: str, key: str | None = None) -> np.ndarray:
    """The array in a .npy file, memory-mapped (never read whole), or `key` of a .npz file (read
    whole: numpy maps no member of an archive). ValueError with one line saying what is wrong."""
    try:
        with open(path, "rb") as file:
            start = file.read(6)
            file.seek(0)
            if start[:2] == b"PK":  # a zip: .npz
                return _npz_member(path, key)
            if key is not None:
                raise ValueError(f"{path} is a .npy file: it holds one array, and --data-key names one of a .npz")
            try:
                version = np.lib.format.read_magic(file)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(file)
            except (ValueError, OSError, SyntaxError, EOFError) as error:
                raise ValueError(f"{path} is not a .npy or .npz file ({error})") from None
            needed = file.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            file.seek(0, 2)
            if file.tell() < needed:
                raise ValueError(f"{path} is cut short: {file.tell():,} bytes of the {needed:,} its header announces")
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        mapped: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
        return mapped
    except (ValueError, OSError) as error:
        raise ValueError(f"{path} is not a .npy or .npz file ({error})") from None


def _npz_member(path: str, key: str | None) -> np.ndarray:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise ValueError(f"{path} is not a .npy or .npz file ({error})") from None
    with archive:
        if key is None:
            raise ValueError(f"{path} is a .npz archive: name its array with --data-key (it holds "
                             f"{', '.join(archive.files) or 'none'})")
        if key not in archive.files:
            raise ValueError(f"{path} has no array {key!r} (it holds {', '.join(archive.files) or 'none'})")
        unpacked = archive.zip.getinfo(f"{key}.npy").file_size
        room = min((found.bytes for found in rooms()), default=None)
        if room is not None and unpacked > room // 2:
            raise ValueError(f"{path}: array {key!r} takes {unpacked:,} bytes once read, more than half of the "
                             f"{room:,} this process may hold (numpy maps no array of a .npz): save it with "
                             "numpy.save as a .npy file, which is memory-mapped")
        try:
            return np.asarray(archive[key])
        except (ValueError, OSError, EOFError) as error:
            raise ValueError(f"{path}: array {key!r} cannot be read ({error}): the file may be cut short") from None
