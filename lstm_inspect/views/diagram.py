"""The state-flow diagram (`--diagram FILE.svg`): drawn, not captured. One lane per slot, one
column per step, each cell naming its sample; an arrow into each carried cell from the cell whose
final state it starts from (a continuation of the same data solid, an unrelated carry dashed), a
reset marked "0", the raising step marked; every column headed by its call (so that repeated calls
are told apart), long runs and many slots folded with the fold marked, and a legend.

Plain SVG written with the standard library (rects, lines and text need no drawing package), and
self-contained: generic font families, no network address, colours that read on white and, under
prefers-color-scheme: dark, on black. Every cell has a <title> for hover text. Built from the
stream of steps keeping only the columns it draws, in constant memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from ..check.inspection import Report, StepResult
from ..core.schedule import Start
from ..core.words import plural
from .cells import HeadAndTail

MAX_COLUMNS = 24  # steps drawn: the first and last halves of this, the middle folded
MAX_LANES = 8  # slots drawn: the first ones and the last, the middle folded past this
HEAD_LANES = 3
LABEL, WIDTH, HEIGHT, TOP = 96, 100, 34, 96  # lane label width, column width, lane height, header height

STYLE = """
svg { background: #ffffff; }
text { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11px; fill: #1f2328; }
.title { font-size: 13px; font-weight: bold; }
.dim { fill: #57606a; }
.cell { fill: #f6f8fa; stroke: #8c959f; }
.zeros { fill: #dafbe1; stroke: #1a7f37; }
.raises { fill: #ffebe9; stroke: #cf222e; }
.continued { stroke: #0969da; stroke-width: 1.6; fill: none; marker-end: url(#head-continued); }
.unrelated { stroke: #bc4c00; stroke-width: 1.6; fill: none; stroke-dasharray: 4 3; marker-end: url(#head-unrelated); }
.boundary { stroke: #8c959f; stroke-dasharray: 2 3; }
.fold { fill: none; stroke: #8c959f; stroke-dasharray: 1 3; }
#head-continued path { fill: #0969da; } #head-unrelated path { fill: #bc4c00; }
@media (prefers-color-scheme: dark) {
  svg { background: #0d1117; } text { fill: #e6edf3; } .dim { fill: #9198a1; }
  .cell { fill: #161b22; stroke: #6e7681; } .zeros { fill: #033a16; stroke: #3fb950; }
  .raises { fill: #490202; stroke: #f85149; }
  .continued { stroke: #4493f8; } .unrelated { stroke: #db6d28; }
  #head-continued path { fill: #4493f8; } #head-unrelated path { fill: #db6d28; }
}
"""


@dataclass(frozen=True)
class _Cell:
    sample: str  # what the slot runs: its sample ("train:4"), or its slot on a real model
    kind: str  # Start value, or "raises"
    source_slot: int  # the slot of the source step it starts from; -1 for zeros
    hover: str


@dataclass(frozen=True)
class _Column:
    index: int
    label: str
    segment: str
    source: int | None  # the step index its carried slots start from
    source_label: str
    cells: tuple[_Cell | None, ...]  # per drawn lane (None: the slot is not in this call)


def _lanes(slots: int) -> list[int | None]:
    """The slots drawn, in order; None marks the folded middle."""
    if slots <= MAX_LANES:
        return list(range(slots))
    return [*range(HEAD_LANES), None, slots - 1]


class Diagram:
    """A view: fed every step result, then the report; `svg()` is the drawing."""

    def __init__(self, title: str = "") -> None:
        self.title = title
        self.columns: HeadAndTail[_Column] = HeadAndTail(MAX_COLUMNS // 2, MAX_COLUMNS - MAX_COLUMNS // 2)
        self.total = 0
        self.slots = 0
        self.report: Report | None = None

    def add(self, result: StepResult) -> None:
        step = result.step
        if not self.slots:
            self.slots = len(step.call.slot_samples)
        self.total += 1
        self.columns.add(_column(result, _lanes(self.slots)))

    def finish(self, report: Report) -> None:
        self.report = report

    def svg(self) -> str:
        columns = [*self.columns.head, *self.columns.tail]
        folded = self.total - len(columns)
        lanes = _lanes(self.slots)
        drawn = len(columns) + bool(folded)
        width = LABEL + drawn * WIDTH + 24
        height = TOP + len(lanes) * HEIGHT + 100
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                 f'viewBox="0 0 {width} {height}" role="img">',
                 f"<title>{escape(self.title or 'lstm-inspect state flow')}</title>", f"<style>{STYLE}</style>",
                 _markers(), *_title_lines(self.title, width)]
        parts += _lane_labels(lanes, self.slots)
        x_of: dict[int, float] = {}
        x = LABEL
        for position, column in enumerate(columns):
            if folded and position == len(self.columns.head):
                parts += _fold_column(x, lanes, folded)
                x += WIDTH
            x_of[column.index] = x
            x += WIDTH
        previous = None
        for column in columns:
            parts += _column_parts(column, x_of, lanes, previous)
            previous = column
        parts += _legend(_y(len(lanes)) + 24, self.report)
        parts.append("</svg>")
        return "\n".join(parts) + "\n"


def _column(result: StepResult, lanes: list[int | None]) -> _Column:
    step = result.step
    call = step.call
    if step.raises:
        cells: tuple[_Cell | None, ...] = tuple(
            _Cell("raises", "raises", -1, f"step {call.index}, {call.label}: Keras raises here"
                  + (f" ({step.error.type})" if step.error else "")) for _ in lanes)
        return _Column(call.index, call.label, call.segment, None, "", cells)
    assert step.source_slot is not None
    kinds, labels = step.start_kinds(), step.start_labels() or []
    samples = call.slot_samples
    made: list[_Cell | None] = []
    for slot in lanes:
        shown = slot if slot is not None else HEAD_LANES  # the folded middle: its first slot stands for it
        if shown >= len(samples):
            made.append(None)
            continue
        sample = f"slot {shown}" if step.seen_on_model else f"{call.stream}:{samples[shown]}"
        start = "zeros" if kinds[shown] == Start.ZEROS.value else f"the final state of {labels[shown]}"
        hover = (f"step {call.index}, {call.label}, slot {shown}: {sample}, starts from {start}"
                 + (f" ({kinds[shown]})" if kinds[shown] != Start.ZEROS.value else ""))
        made.append(_Cell(sample, str(kinds[shown]), int(step.source_slot[shown]), hover))
    source = step.source.index if step.source is not None else None
    return _Column(call.index, call.label, call.segment, source, step.source.label if step.source else "",
                   tuple(made))


def _y(lane: int) -> float:
    return TOP + lane * HEIGHT


def _title_lines(title: str, width: int) -> list[str]:
    """The command, wrapped to the drawing's width (never clipped)."""
    per_line = max(20, int((width - 16) / 8.2))  # 13px bold monospace: about 8 pixels a character
    words, lines, line = title.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > per_line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines += [line] if line else []
    return [f'<text class="title" x="8" y="{18 + 16 * row}">{escape(text)}</text>'
            for row, text in enumerate(lines[:3])]


def _markers() -> str:
    heads = "".join(f'<marker id="head-{kind}" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
                    f'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z"/></marker>'
                    for kind in ("continued", "unrelated"))
    return f"<defs>{heads}</defs>"


def _lane_labels(lanes: list[int | None], slots: int) -> list[str]:
    return [f'<text class="dim" x="8" y="{_y(lane) + 20}">'
            f'{escape(f"slot {slot}" if slot is not None else f"slots {HEAD_LANES}-{slots - 2}")}</text>'
            for lane, slot in enumerate(lanes)]


def _fold_column(x: float, lanes: list[int | None], folded: int) -> list[str]:
    parts = [f'<text class="dim" x="{x + 4}" y="{TOP - 10}">… {folded:,}</text>',
             f'<text class="dim" x="{x + 4}" y="{TOP - 24}">steps</text>']
    for lane in range(len(lanes)):
        parts.append(f'<rect class="fold" x="{x + 4}" y="{_y(lane) + 4}" width="{WIDTH - 18}" height="{HEIGHT - 10}">'
                     f"<title>{folded:,} steps folded</title></rect>")
    return parts


def _column_parts(column: _Column, x_of: dict[int, float], lanes: list[int | None],
                  previous: _Column | None) -> list[str]:
    x = x_of[column.index]
    call = column.segment if len(column.segment) <= 13 else column.segment[:12] + "…"
    batch = column.label[len(column.segment):].strip()
    parts = [f'<text x="{x + 2}" y="{TOP - 24}"><title>{escape(column.label)}</title>{escape(call)}</text>',
             f'<text class="dim" x="{x + 2}" y="{TOP - 10}">{escape(f"{batch}, step {column.index}")}</text>']
    if previous is not None and previous.segment != column.segment:
        parts.append(f'<line class="boundary" x1="{x - 8}" y1="{TOP - 40}" x2="{x - 8}" '
                     f'y2="{_y(len(lanes))}"/>')
    for lane, cell in enumerate(column.cells):
        if cell is None:
            continue
        style = "raises" if cell.kind == "raises" else "zeros" if cell.kind == Start.ZEROS.value else "cell"
        top = _y(lane) + 4
        parts.append(f'<g><title>{escape(cell.hover)}</title><rect class="{style}" x="{x}" y="{top}" '
                     f'width="{WIDTH - 14}" height="{HEIGHT - 10}" rx="3"/>'
                     f'<text x="{x + 4}" y="{top + 16}">{escape(("0 " if style == "zeros" else "") + cell.sample)}'
                     "</text></g>")
        parts += _arrow(column, cell, lane, lanes, x_of)
    return parts


def _arrow(column: _Column, cell: _Cell, lane: int, lanes: list[int | None], x_of: dict[int, float]) -> list[str]:
    """From the cell whose final state this one starts from; from the left edge, labelled, where
    that cell is folded away."""
    if cell.source_slot < 0 or column.source is None or cell.kind == "raises":
        return []
    kind = Start.CONTINUED.value if cell.kind == Start.CONTINUED.value else Start.UNRELATED.value
    to_x, to_y = x_of[column.index], _y(lane) + HEIGHT / 2 - 1
    source_lane = next((index for index, slot in enumerate(lanes) if slot == cell.source_slot),
                       lane if lanes[lane] is None else None)
    if column.source in x_of and source_lane is not None:
        from_x, from_y = x_of[column.source] + WIDTH - 14, _y(source_lane) + HEIGHT / 2 - 1
        return [f'<path class="{kind}" d="M{from_x},{from_y} L{to_x - 1},{to_y}"/>']
    return [f'<path class="{kind}" d="M{to_x - 12},{to_y} L{to_x - 1},{to_y}">'
            f"<title>from {quoteattr(column.source_label)[1:-1]}, not drawn</title></path>"]


def _legend(y: float, report: Report | None) -> list[str]:
    entries = [("continued", "carried, continuing its data (sample j+B after j)"),
               ("unrelated", "carried into an unrelated sample (shuffle, epoch or phase boundary)")]
    parts = []
    for row, (kind, text) in enumerate(entries):
        parts += [f'<path class="{kind}" d="M8,{y + 16 * row} L40,{y + 16 * row}"/>',
                  f'<text x="48" y="{y + 4 + 16 * row}">{escape(text)}</text>']
    parts += [f'<rect class="zeros" x="8" y="{y + 24}" width="32" height="12" rx="2"/>',
              f'<text x="48" y="{y + 34}">0: reset to zeros; a red cell: Keras raises there</text>']
    if report is not None:
        summary = report.summary
        parts.append(f'<text class="dim" x="8" y="{y + 52}">{plural(summary.steps, "step")}, '
                     f'{plural(summary.reset_events, "reset event")}, {plural(summary.slot_resets, "slot reset")}, '
                     f'{plural(summary.slot_carries, "slot carry", "slot carries")}</text>')
    return parts
