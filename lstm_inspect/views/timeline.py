"""The timeline view: one row per slot, one column per step, a glyph for each slot's start.

Built from the stream of steps while keeping only the columns it will show (the first and
last steps that fit the width), so a million-step schedule folds in constant memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rich.console import Console, Group
from rich.text import Text

from ..check.inspection import Report, StepResult
from ..core.choices import Phase
from ..core.schedule import Start
from ..core.spec import Spec
from .cells import HeadAndTail
from .glyphs import ASCII, EMPTY, RAISES, Glyphs, choose_glyphs
from .table import closing_parts

STYLES = {Start.ZEROS.value: "green", Start.CONTINUED.value: "blue", Start.UNRELATED.value: "yellow",
          RAISES: "bold red", EMPTY: ""}

LABEL_WIDTH = 28
MAX_SLOT_ROWS = 16  # above this, show the first and last slots and fold the middle
HEAD_SLOTS = 3


@dataclass(frozen=True)
class Column:
    index: int
    phase: Phase
    epoch: int
    segment: str  # the call's phase and epoch, e.g. "train e0"
    kinds: np.ndarray  # Start value (or RAISES / EMPTY) of each slot the grid shows (_shown_slots)


def _column(result: StepResult, slots: int) -> Column:
    step = result.step
    kinds = np.full(slots, EMPTY, dtype=object)
    if step.raises:
        kinds[:] = RAISES
    else:
        kinds[:len(step.call.slot_samples)] = step.start_kinds()
    return Column(step.call.index, step.call.phase, step.call.epoch, step.call.segment, kinds)


class _Columns(HeadAndTail[Column]):
    """The first `head` and last `tail` columns of the stream, plus what the middle hides."""

    def __init__(self, head: int, tail: int):
        super().__init__(head, tail)
        self.hidden = 0
        self.total = 0
        # Whether the folded middle slots (HEAD_SLOTS..slots-2) share one start in every step.
        self.middle_uniform = True

    def add(self, item: Column) -> Column | None:
        """`item` holds every slot's start; only the shown slots' are kept (a million slots
        would make each kept column megabytes)."""
        self.total += 1
        middle = item.kinds[HEAD_SLOTS:-1]
        if len(middle) and self.middle_uniform:
            self.middle_uniform = bool((middle == middle[0]).all())
        shown = item.kinds[_shown_slots(len(item.kinds))]
        dropped = super().add(Column(item.index, item.phase, item.epoch, item.segment, shown))
        self.hidden += dropped is not None
        return dropped


def _shown_slots(slots: int) -> list[int]:
    """The slots the grid draws: all, or the first few, one for the folded middle, and the last."""
    if slots <= MAX_SLOT_ROWS:
        return list(range(slots))
    return [*range(HEAD_SLOTS), HEAD_SLOTS, slots - 1]


def _slot_rows(slots: int) -> list[tuple[str, int | None]]:
    """(label, slot shown on that row); None marks the folded middle row."""
    if slots <= MAX_SLOT_ROWS:
        return [(f"slot {slot}", slot) for slot in range(slots)]
    return ([(f"slot {slot}", slot) for slot in range(HEAD_SLOTS)]
            + [(f"slots {HEAD_SLOTS}-{slots - 2}", None), (f"slot {slots - 1}", slots - 1)])


def _fitting_columns(width: int) -> tuple[int, int]:
    """(label width, how many step columns fit the width)."""
    label_width = LABEL_WIDTH if width >= 3 * LABEL_WIDTH else max(8, width // 3)
    # Two characters a step and room for phase boundaries: about three a step, to be safe.
    return label_width, max(4, (width - label_width - 8) // 3)


class _Grid:
    """The lines of the grid: a cell per shown column, a boundary where the call or epoch changes."""

    def __init__(self, shown: list[Column | None], label_width: int, glyphs: Glyphs):
        self.shown, self.label_width, self.glyphs = shown, label_width, glyphs

    def cells(self, render_cell: Callable[[Column], Text]) -> Text:
        line = Text(no_wrap=True, overflow="crop")
        previous = None
        for column in self.shown:
            if column is None:
                line.append(self.glyphs.gap + " ", style="dim")
            else:
                if previous is not None and previous.segment != column.segment:
                    line.append(self.glyphs.boundary, style="dim")
                line.append_text(render_cell(column))
            previous = column
        return line

    def row(self, label: str, render_cell: Callable[[Column], Text]) -> Text:
        row = Text(label[:self.label_width].ljust(self.label_width), no_wrap=True, overflow="crop")
        return row.append_text(self.cells(render_cell))


def build_timeline(report: Report, columns: _Columns, label_width: int, glyphs: Glyphs) -> Group:
    slots = report.spec.largest_batch
    shown: list[Column | None] = list(columns.head) + ([None] if columns.hidden else []) + list(columns.tail)
    grid = _Grid(shown, label_width, glyphs)
    lines = [_segment_header(shown, glyphs, label_width),
             grid.row("phase (train/val/predict)", lambda column: Text(column.phase.value[0] + " ", style="dim")),
             grid.row("step (last digit)", lambda column: Text(f"{column.index % 10} ", style="dim"))]
    for label, slot in _slot_rows(slots):
        if slot is None and not columns.middle_uniform:
            lines.append(Text(f"{label}: {slots - HEAD_SLOTS - 1:,} slots hidden (patterns differ)",
                              style="dim"))
            continue
        if slot is None:
            label, slot = f"{label} (same pattern)", HEAD_SLOTS
        position = _shown_slots(slots).index(slot)
        lines.append(grid.row(label, _slot_cells(position, glyphs)))
    notes = []
    if columns.hidden:
        notes.append(f"{columns.hidden:,} of {columns.total:,} steps hidden ({glyphs.gap})")
    if slots > MAX_SLOT_ROWS:
        notes.append(f"{slots - HEAD_SLOTS - 1:,} middle slots folded into one row")
    parts = [Text("Timeline: where each slot's state starts, step by step", style="bold"), *lines]
    if notes:
        parts.append(Text("; ".join(notes), style="dim"))
    parts.append(_legend(glyphs))
    return Group(*parts, *closing_parts(report, plain=glyphs is ASCII))


def _legend(glyphs: Glyphs) -> Text:
    legend = Text()
    for kind, words in ((Start.ZEROS.value, "reset to zeros"),
                        (Start.CONTINUED.value, "carried from the same slot's previous sample (the layout "
                                                "Keras expects: sample i+B continues sample i)"),
                        (Start.UNRELATED.value, "carried from an unrelated sample (shuffle, epoch or phase "
                                                "boundary)"),
                        (RAISES, "Keras raises here")):
        legend.append(glyphs.of(kind), style=STYLES[kind])
        legend.append(f" {words}\n")
    legend.append(f"{glyphs.boundary} phase or epoch boundary", style="dim")
    return legend


def _slot_cells(position: int, glyphs: Glyphs) -> Callable[[Column], Text]:
    """The cells of one slot's row: `position` is its place among the slots each column keeps."""
    return lambda column: _cell(column.kinds[position], glyphs)


def _cell(kind: str, glyphs: Glyphs) -> Text:
    return Text(glyphs.of(kind) + " ", style=STYLES[kind])


def _segment_header(shown: list[Column | None], glyphs: Glyphs, label_width: int) -> Text:
    """Phase and epoch names above the columns where each segment starts: "train e0" where
    it fits, "t0" where only that fits."""
    segments: list[list] = []  # [first column, width in characters]
    previous = None
    for column in shown:
        if column is None:
            segments.append([None, 2])
        elif previous is not None and previous.segment == column.segment:
            segments[-1][1] += 2
        else:
            gap = len(glyphs.boundary) if previous is not None else 0
            segments.append([column, 2 + gap])
        previous = column
    header = Text(" " * label_width, no_wrap=True, overflow="crop")
    for column, width in segments:
        name = ""
        if column is not None:
            name = next((text for text in (column.segment, *_short(column)) if len(text) < width), "")
        header.append(name.ljust(width), style="bold")
    return header


def _short(column: Column) -> tuple[str, ...]:
    """Shorter names of a segment, longest first: for the second call of its kind on a model "t#2"
    (repeated calls, a manual epoch loop, told apart), then "t0" (train, epoch 0), or "p"."""
    plain = column.phase.value[0] + ("" if column.phase == Phase.PREDICT else str(column.epoch))
    numbered = re.search(r"#(\d+)", column.segment)
    return (f"{column.phase.value[0]}#{numbered.group(1)}", plain) if numbered else (plain,)


class TimelineView:
    """The grid of slots by steps, keeping only the columns that fit the console's width."""

    def __init__(self, console: Console, spec: Spec, ascii_only: bool = False):
        self.console = console
        self.glyphs = choose_glyphs(console, ascii_only)
        self.slots = spec.largest_batch
        self.label_width, fitting = _fitting_columns(console.width)
        self.columns = _Columns(head=fitting // 2, tail=fitting - fitting // 2)

    def add(self, result: StepResult) -> None:
        self.columns.add(_column(result, self.slots))

    def finish(self, report: Report) -> None:
        self.console.print(build_timeline(report, self.columns, self.label_width, self.glyphs))
