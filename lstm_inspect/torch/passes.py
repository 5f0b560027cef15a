"""Epochs in a plain loop, told from the data alone: a row seen before begins the next pass over
the data (an epoch), and a pass whose batches hold other rows than the first pass's, in its place,
has been reordered (a shuffling DataLoader). Rows are known by a hash of their bytes, for the first
`LIMIT` rows only: past them the passes go uncounted, and memory stays bounded."""

from __future__ import annotations

import numpy as np

LIMIT = 200_000  # rows whose hashes are kept (some 16 bytes each in the arrays, more in the set)


class Passes:
    """The passes over one module's data in one phase."""

    def __init__(self) -> None:
        self.first: list[np.ndarray] = []  # the first pass's batches, each its rows' hashes
        self.seen: set[int] = set()
        self.kept = 0
        self.epoch = 0
        self.batch = 0
        self.counting = True

    def place(self, rows: np.ndarray | None) -> tuple[int, int, bool]:
        """This call's epoch and batch within it, and whether its rows are the first pass's
        batch of that place in another order or other rows of the data."""
        if rows is None or not self.counting:
            self.batch += 1
            return self.epoch, self.batch - 1, False
        hashes = np.array([hash(row.tobytes()) for row in rows], dtype=np.int64)
        if self.epoch == 0 and int(hashes[0]) in self.seen:
            self.epoch, self.batch = 1, 0
        elif self.epoch > 0 and self.batch == len(self.first):
            self.epoch, self.batch = self.epoch + 1, 0
        if self.epoch == 0:
            self._keep(hashes)
            self.batch += 1
            return 0, self.batch - 1, False
        expected = self.first[self.batch] if self.batch < len(self.first) else None
        reordered = expected is not None and not np.array_equal(hashes, expected) and all(
            int(value) in self.seen for value in hashes)
        self.batch += 1
        return self.epoch, self.batch - 1, reordered

    def _keep(self, hashes: np.ndarray) -> None:
        if self.kept + len(hashes) > LIMIT:
            self.counting = False  # too many rows to tell passes apart: every call is in epoch 0
            self.first, self.seen = [], set()
            return
        self.first.append(hashes)
        self.seen.update(int(value) for value in hashes)
        self.kept += len(hashes)
