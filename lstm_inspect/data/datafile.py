"""The user's own data file (`--data`): opened memory-mapped and checked, and what its rows show.

`continuity` reads the rows a chunk at a time and finds the sliding windows it can see exactly:
whether row j+1 (or row j+B, which a stateful layer carries into) is row j moved s steps on.
Pure numpy.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import stat
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from ..core.errors import SpecError
from .memory import rooms


@dataclass(frozen=True)
class Continuity:
    """What a data file's rows show: `stride` s > 0 where each row is the row before moved s
    steps on (x[j+1, :-s] == x[j, s:] for every j: sliding windows of one series), and
    `slot_stride` the same between row j and row j+B (what a stateful layer carries). Where most
    neighbouring rows, not all, are so: `series` (see Series)."""

    rows: int
    stride: int | None
    slot_stride: int | None
    path: str = ""  # the file read, when there is one
    series: Series | None = None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "rows": self.rows, "stride": self.stride, "slot_stride": self.slot_stride,
                "series": None if self.series is None else dataclasses.asdict(self.series)}


@dataclass(frozen=True)
class Series:
    """Sliding windows of several series, one series after another: `overlapping` of the rows - 1
    neighbouring pairs (more than half) are row j moved `stride` steps on; `windows` rows per
    series where every series has as many (None where they differ)."""

    stride: int
    overlapping: int
    windows: int | None


def _shift(x: Any, gap: int, chunk_rows: int) -> int | None:
    """The s (0 < s < T) with x[j+gap, :-s] == x[j, s:] for every row j, read a chunk at a time;
    None if there is none (or fewer than gap+1 rows)."""
    rows, timesteps = x.shape[0], x.shape[1]
    if rows <= gap or timesteps < 2:
        return None
    for stride in _overlaps(np.asarray(x[0]), np.asarray(x[gap])):
        if all(_chunk_shifted(x, start, min(rows, start + chunk_rows + gap), gap, stride)
               for start in range(0, rows - gap, chunk_rows)):
            return stride
    return None


def _overlaps(first: np.ndarray, later: np.ndarray) -> list[int]:
    """Every s (0 < s < T) with later[:-s] == first[s:], smallest first, in time linear in T: the
    lengths L = T - s where a prefix of `later` equals a suffix of `first`, read off the prefix
    function (Knuth-Morris-Pratt) of later's steps, a separator, then first's steps."""
    timesteps = len(first)
    symbols = _step_symbols(np.concatenate([later, first]))
    sequence = [*symbols[:timesteps], -1, *symbols[timesteps:]]
    prefix = [0] * len(sequence)
    for i in range(1, len(sequence)):
        k = prefix[i - 1]
        while k and sequence[i] != sequence[k]:
            k = prefix[k - 1]
        prefix[i] = k + (sequence[i] == sequence[k])
    found, length = [], prefix[-1]
    while length:
        found.append(timesteps - length)
        length = prefix[length - 1]
    return sorted(stride for stride in found if 0 < stride < timesteps)


def _step_symbols(steps: np.ndarray) -> list[int]:
    """Each timestep (its features) as a number, equal where np.array_equal holds: -0.0 as 0.0, and
    a step holding NaN equal to none (numbers below -1, each its own)."""
    flat = np.ascontiguousarray(np.asarray(steps).reshape(len(steps), -1) + 0.0)
    as_bytes = flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()
    symbols = np.unique(as_bytes, return_inverse=True)[1].astype(np.int64)
    unequal = np.isnan(flat).any(axis=1)
    symbols[unequal] = -2 - np.flatnonzero(unequal)
    result: list[int] = symbols.tolist()
    return result


def _chunk_shifted(x: Any, start: int, stop: int, gap: int, stride: int) -> bool:
    chunk = rows_between(x, start, stop)
    return bool(np.array_equal(chunk[gap:, :-stride], chunk[:-gap, stride:]))


def rows_between(x: Any, start: int, stop: int) -> np.ndarray:
    """Rows start..stop-1 of `x`. A memory-mapped file's are read from the file: slicing the map
    would leave every page read resident, and the process would grow to the file's size."""
    filename = _mapped_file(x)
    if filename is None:
        return np.asarray(x[start:stop])
    with open(filename, "rb") as file:
        return _read_run(x, file, start, stop)


def read_rows(x: Any, indices: np.ndarray) -> np.ndarray:
    """Rows `indices` of `x`, in that order, a mapped file's read from the file (see rows_between),
    one read per run of consecutive rows."""
    filename = _mapped_file(x)
    if filename is None or not len(indices):
        return np.asarray(x[indices])
    wanted, back = np.unique(indices, return_inverse=True)
    breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
    with open(filename, "rb") as file:
        runs = [_read_run(x, file, int(run[0]), int(run[-1]) + 1) for run in np.split(wanted, breaks)]
    return np.concatenate(runs)[back]


def _mapped_file(x: Any) -> str | None:
    """The file of a memory map as np.load gives it (a slice of one keeps its parent's offset)."""
    filename = getattr(x, "filename", None)
    if not isinstance(x, np.memmap) or not isinstance(x.base, mmap.mmap) or not filename or not x.flags.c_contiguous:
        return None
    return str(filename)


def _read_run(x: np.memmap, file: BinaryIO, start: int, stop: int) -> np.ndarray:
    row_bytes = x.dtype.itemsize * int(np.prod(x.shape[1:], dtype=np.int64))
    file.seek(x.offset + start * row_bytes)
    chunk = np.frombuffer(file.read((stop - start) * row_bytes), dtype=x.dtype)
    return chunk.reshape(stop - start, *x.shape[1:])


def continuity(x: Any, batch_size: int, chunk_rows: int = 4096, path: str = "") -> Continuity:
    """Read `x` (rows, T, F), memory-mapped or not, a chunk of rows at a time."""
    stride = _shift(x, 1, chunk_rows)
    return Continuity(int(x.shape[0]), stride, _shift(x, batch_size, chunk_rows) if batch_size > 1 else None,
                      path, None if stride is not None else _series(x, chunk_rows))


FIRST_PAIRS = 64  # the neighbouring pairs searched for a stride to count: the first series' windows


def _series(x: Any, chunk_rows: int) -> Series | None:
    """Most, not all, neighbouring rows overlap: the stride most pairs share (among those of the
    first overlapping pair), how many, and the rows per series when every run is as long."""
    rows = x.shape[0]
    if rows < 3 or x.shape[1] < 2:
        return None
    strides = next((found for j in range(min(rows - 1, FIRST_PAIRS))
                    if (found := _overlaps(np.asarray(x[j]), np.asarray(x[j + 1])))), [])
    counted = [_runs(x, stride, chunk_rows) for stride in strides]
    best = max(counted, default=None, key=lambda found: found.overlapping)
    return best if best is not None and 2 * best.overlapping > rows - 1 else None


def _runs(x: Any, stride: int, chunk_rows: int) -> Series:
    """The pairs (row j, row j+1) where row j+1 is row j moved `stride` steps on, and the rows per
    run of such pairs, in one pass a chunk at a time (no per-row record is kept)."""
    rows = x.shape[0]
    overlapping, run_start, lengths = 0, 0, set[int]()
    for start in range(0, rows - 1, chunk_rows):
        chunk = rows_between(x, start, min(rows, start + chunk_rows + 1))
        shifted = (chunk[1:, :-stride] == chunk[:-1, stride:]).reshape(len(chunk) - 1, -1).all(axis=1)
        overlapping += int(shifted.sum())
        starts = np.flatnonzero(~shifted) + start + 1  # the rows that start a new run
        if len(starts) and len(lengths) < 2:  # two lengths already: the runs differ, and that is all we say
            lengths.update(np.unique(np.diff(starts, prepend=run_start)).tolist())
        run_start = int(starts[-1]) if len(starts) else run_start
    lengths.add(rows - run_start)
    return Series(stride, overlapping, lengths.pop() if len(lengths) == 1 else None)


def open_data(path: str, key: str | None = None) -> np.ndarray:
    """The array in a .npy file, memory-mapped (never read whole), or `key` of a .npz file (read
    whole: numpy maps no member of an archive). ValueError with one line saying what is wrong (a
    SpecError naming the field `key` where the key is at fault)."""
    regular_file(path)
    try:
        with open(path, "rb") as file:
            if file.read(2) == b"PK":  # a zip: .npz
                return _npz_member(path, key)
            if key is not None:
                raise SpecError("key", "{path} is a .npy file: it holds one array, and {key} names one of a .npz",
                                path=path)
            file.seek(0)
            _check_npy_header(path, file)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        mapped: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
        return mapped
    except (ValueError, OSError) as error:
        raise ValueError(f"{path} is not a .npy or .npz file ({error})") from None


def regular_file(path: str) -> None:
    """ValueError unless `path` is a regular file: a FIFO would block the read forever, a device
    (/dev/zero) never end it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise ValueError(f"{path} is {what}: give a file saved by numpy (or by probe.save)")


def _check_npy_header(path: str, file: BinaryIO) -> None:
    """The header of a .npy file: readable, with a shape of sizes >= 0, and the file as long as it says."""
    try:
        version = np.lib.format.read_magic(file)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(file)
    except Exception as error:  # numpy's header parser raises what its tokenizer raises (TokenError, ...)
        raise ValueError(f"{path} is not a .npy or .npz file ({error})") from None
    if any(size < 0 for size in shape):
        raise ValueError(f"{path} is damaged: its header announces the shape {tuple(shape)}")
    needed = file.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    file.seek(0, 2)
    if file.tell() < needed:
        raise ValueError(f"{path} is cut short: {file.tell():,} bytes of the {needed:,} its header announces")


def _npz_member(path: str, key: str | None) -> np.ndarray:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a .npy or .npz file ({error})") from None
    with archive:
        if key is None:
            raise SpecError("key", "{path} is a .npz archive: name its array with {key} (it holds {names})",
                            path=path, names=", ".join(archive.files) or "none")
        if key not in archive.files:
            raise ValueError(f"{path} has no array {key!r} (it holds {', '.join(archive.files) or 'none'})")
        member = f"{key}.npy" if f"{key}.npy" in archive.zip.namelist() else key
        unpacked = archive.zip.getinfo(member).file_size
        room = min((found.bytes for found in rooms()), default=None)
        if room is not None and 2 * unpacked > room:
            raise ValueError(f"{path}: array {key!r} takes {unpacked:,} bytes once read, more than half of the "
                             f"{room:,} this process may hold (numpy maps no array of a .npz): save it with "
                             "numpy.save as a .npy file, which is memory-mapped")
        try:
            array = archive[key]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            if "allow_pickle" in str(error):
                raise ValueError(f"{path}: array {key!r} holds Python objects, which only unpickling would read: "
                                 "save numbers (a float array)") from None
            raise ValueError(f"{path}: array {key!r} cannot be read ({error}): the file may be cut short") from None
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{path}: {key!r} is not an array saved by numpy (no .npy member)")
    return array
