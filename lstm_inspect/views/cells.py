"""A step as the cells of a row, for every tabular format; long streams folded in constant memory."""

from __future__ import annotations

from collections import Counter, deque
from typing import Generic, TypeVar

import numpy as np
from rich.text import Text

from ..check.inspection import StepResult
from ..core.schedule import Start, Step
from ..core.words import plural
from ..explain.verdict import slot_counts
from .glyphs import UNICODE, Glyphs

T = TypeVar("T")
FEW_SLOTS = 4  # a step of at most this many slots lists each one's valid length


def format_samples(samples: np.ndarray, marks: Glyphs = UNICODE) -> str:
    """"0-199" for a contiguous run, else the first few and the count."""
    if len(samples) == 1:
        return str(samples[0])
    first, last = int(samples[0]), int(samples[-1])
    if last - first == len(samples) - 1 and np.all(np.diff(samples) == 1):
        return f"{first}-{last}"
    head = ", ".join(str(s) for s in samples[:2].tolist())
    return f"{head}, {marks.more} ({len(samples):,})"


def format_lengths(lengths: np.ndarray) -> str:
    """Each slot's valid timesteps: "5" when all have as many, "5, 3, 4" for a few slots, else the
    range "2-5" (JSON gives them all)."""
    low, high = int(lengths.min()), int(lengths.max())
    if low == high:
        return str(low)
    return ", ".join(str(length) for length in lengths.tolist()) if len(lengths) <= FEW_SLOTS else f"{low}-{high}"


def describe_start(step: Step) -> str:
    """What the slots started from, e.g. "reset x200" or "carried x4 from train e0 b2"."""
    if step.raises:
        assert step.error is not None
        return f"raises: {step.error.cause or plural(len(step.call.samples), 'sample')}"
    parts = slot_counts(step)
    if step.source is not None and step.carried_slots and step.source_slot is not None:
        carried = 1 if step.zero_slots else 0  # the carried part follows the reset one
        unrelated = int(np.count_nonzero(step.start_kinds()[step.source_slot >= 0] == Start.UNRELATED.value))
        parts[carried] += f" from {step.source.label}"
        if unrelated == step.carried_slots:
            parts[carried] += " (unrelated)"
        elif unrelated:
            parts[carried] += f" ({unrelated:,} unrelated)"
    return ", ".join(parts)


def _fold_key(step: Step) -> str:
    """The kind of a step, without its indices, for the row that stands for folded steps."""
    if step.raises:
        return f"{step.call.phase} raising"
    return f"{step.call.phase} ({', '.join(slot_counts(step))})"


class HeadAndTail(Generic[T]):
    """The first `head` and last `tail` items of a stream, in constant memory."""

    def __init__(self, head: int, tail: int):
        self.head_size = head
        self.head: list[T] = []
        self.tail: deque[T] = deque(maxlen=tail)

    def add(self, item: T) -> T | None:
        """Keep `item`; return the one it pushes out of the middle, if any."""
        if len(self.head) < self.head_size:
            self.head.append(item)
            return None
        dropped = self.tail[0] if len(self.tail) == self.tail.maxlen else None
        self.tail.append(item)
        return dropped


class FoldedRows(HeadAndTail[StepResult]):
    """Keeps the first and last rows of a long stream and counts the kinds in between."""

    def __init__(self, max_rows: int):
        # One row more than shown when folding: the fold row takes its place only if needed.
        super().__init__(max_rows // 2, max_rows - max_rows // 2)
        self.folded: Counter[str] = Counter()

    def add(self, item: StepResult) -> StepResult | None:
        dropped = super().add(item)
        if dropped is not None:
            self.folded[_fold_key(dropped.step)] += 1
        return dropped

    def finish(self) -> None:
        """Make room for the fold row, if anything was folded."""
        if self.folded:
            self.folded[_fold_key(self.tail.popleft().step)] += 1

    def fold_cells(self, marks: Glyphs = UNICODE, padded: bool = False) -> list[str]:
        """The fold row's first cells (through "slots started from"); `padded` as in step_columns."""
        total = sum(self.folded.values())
        kinds = ", ".join(f"{count:,} {key}" for key, count in self.folded.items())
        return [marks.more, f"{total:,} more steps", "", *[""] * padded, kinds]


def check_mark(result: StepResult, marks: Glyphs) -> Text:
    if result.verified is None:
        return Text(marks.none if result.step.raises else "")
    return Text(marks.ok, style="green") if result.verified else Text(marks.bad, style="bold red")


def step_columns(padded: bool) -> list[str]:
    """The names of step_cells's cells; `padded`: the spec pads (--lengths)."""
    return ["step", "call", "samples", *["valid steps"] * padded, "slots started from", "max |h0|", "ok"]


def step_cells(result: StepResult, marks: Glyphs = UNICODE) -> list[str]:
    """The text of a step's row, for every tabular format (named by step_columns)."""
    call = result.step.call
    observed = "" if result.observed is None else f"{result.observed.max_abs_initial:.3g}"
    if result.step.seen_on_model:
        samples = plural(len(call.samples), "slot")  # a real model's data indices are not seen
    elif call.broadcast:
        samples = f"{call.samples[0]} in all {call.broadcast:,} slots"
    else:
        samples = format_samples(call.samples, marks)
    lengths = [] if result.lengths is None else [format_lengths(result.lengths)]
    return [str(call.index), call.label, samples, *lengths, describe_start(result.step),
            observed, check_mark(result, marks).plain]
