"""Turning a run into output: a rich table, or JSON written step by step.

Every view takes the steps one at a time (`add`) as whoever runs the inspection hands them
over, then the finished report (`finish`): output starts before the run ends, memory does
not grow with the number of steps, and no view ever runs anything itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TextIO, TypeVar

import numpy as np
from rich import box
from rich.console import Console, Group, JustifyMethod
from rich.table import Table
from rich.text import Text

from .inspection import Report, StepResult
from .schedule import Start, Step, facts_for
from .spec import Spec, plural
from .verdict import slot_counts

if TYPE_CHECKING:
    from .oracle import KerasComparison


T = TypeVar("T")


class View(Protocol):
    """An output: fed each step result, then the report."""

    def add(self, result: StepResult) -> None: ...

    def finish(self, report: Report) -> None: ...


def show(report: Report, view: View) -> None:
    """Render a report whose steps were kept (`Inspection.run()`)."""
    for result in report.steps:
        view.add(result)
    view.finish(report)


SCHEMA_VERSION = 1


RAISES = "raises"  # a call where Keras raises
EMPTY = "empty"  # a slot the call does not fill (a stateless partial batch)


@dataclass(frozen=True)
class Glyphs:
    """Every mark a view draws, in Unicode or in plain ASCII."""

    ok: str
    bad: str
    none: str
    more: str  # a table row or list that stands for folded items
    zeros: str  # timeline cells, one character each
    continued: str
    unrelated: str
    raises: str
    boundary: str
    gap: str  # the timeline's folded columns

    def of(self, kind: str) -> str:
        """A timeline cell: a Start value, RAISES or EMPTY."""
        return {Start.ZEROS.value: self.zeros, Start.CONTINUED.value: self.continued,
                Start.UNRELATED.value: self.unrelated, RAISES: self.raises, EMPTY: " "}[kind]


UNICODE = Glyphs("✓", "✗", "—", "…", "○", "─", "╳", "!", "│", "…")
ASCII = Glyphs("ok", "X", "-", "...", "o", "-", "x", "!", "|", "~")
_BOXES = "│━┃"  # rich's table borders


def choose_glyphs(stream: Any, ascii_only: bool = False) -> Glyphs:
    """ASCII when asked for, or when the stream's encoding cannot write the Unicode marks."""
    unicode = "".join(str(value) for value in dataclasses.astuple(UNICODE)) + _BOXES
    return ASCII if ascii_only or not can_encode(stream, unicode) else UNICODE


def format_samples(samples: np.ndarray, marks: Glyphs = UNICODE) -> str:
    """"0-199" for a contiguous run, else the first few and the count."""
    if len(samples) == 1:
        return str(samples[0])
    first, last = int(samples[0]), int(samples[-1])
    if last - first == len(samples) - 1 and np.all(np.diff(samples) == 1):
        return f"{first}-{last}"
    head = ", ".join(str(s) for s in samples[:2].tolist())
    return f"{head}, {marks.more} ({len(samples):,})"


def describe_start(step: Step) -> str:
    """What the slots started from, e.g. "reset x200" or "carried x4 from train e0 b2"."""
    if step.raises:
        return f"raises: {plural(len(step.call.samples), 'sample')}"
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

    def fold_cells(self, marks: Glyphs = UNICODE) -> list[str]:
        total = sum(self.folded.values())
        kinds = ", ".join(f"{count:,} {key}" for key, count in self.folded.items())
        return [marks.more, f"{total:,} more steps", "", kinds]


def _check_mark(result: StepResult, marks: Glyphs) -> Text:
    if result.verified is None:
        return Text(marks.none if result.step.raises else "")
    return Text(marks.ok, style="green") if result.verified else Text(marks.bad, style="bold red")


def step_cells(result: StepResult, marks: Glyphs = UNICODE) -> list[str]:
    """The text of a step's row, for every tabular format."""
    call = result.step.call
    observed = "" if result.observed is None else f"{result.observed.max_abs_initial:.3g}"
    if result.step.seen_on_model:
        samples = plural(len(call.samples), "slot")  # a real model's data indices are not seen
    elif call.broadcast:
        samples = f"{call.samples[0]} in all {call.broadcast:,} slots"
    else:
        samples = format_samples(call.samples, marks)
    return [str(call.index), call.label, samples, describe_start(result.step),
            observed, _check_mark(result, marks).plain]


def _row(result: StepResult, marks: Glyphs) -> list[str | Text]:
    cells: list[str | Text] = list(step_cells(result, marks))
    cells[3] = Text(str(cells[3]), style="bold red" if result.step.raises else "")
    cells[5] = _check_mark(result, marks)
    return cells


def _keras_cell(keras: KerasComparison, index: int, marks: Glyphs) -> Text:
    """Real Keras's view of a step: agreement and max |h0 Keras - h0 mirror|."""
    if index < len(keras.steps):
        step = keras.steps[index]
        diff = "" if step.state_diff is None else f" {step.state_diff:.0e}"
        return Text(marks.ok + diff, style="green") if step.agree else Text(marks.bad + diff, style="bold red")
    if keras.error and keras.error.step == index:
        return Text(f"raises {marks.ok if keras.error_agrees else marks.bad}",
                    style="green" if keras.error_agrees else "bold red")
    return Text(marks.none)


def build_table(report: Report, rows: FoldedRows, marks: Glyphs = UNICODE) -> Table:
    keras = report.keras
    name = facts_for(report.spec).name
    if report.observer:
        title = f"Steps of your model on {name}, seen by {report.observer}"
    elif report.dry_run:
        title = f"Steps of {name} (dry run: predicted, not run)"
    else:
        title = f"Steps of {name}, checked on a PyTorch {report.spec.layer_name}"
    table = Table(title=title, title_justify="left")
    columns: list[tuple[str, JustifyMethod]] = [
        ("step", "right"), ("call", "left"), ("samples", "left"), ("slots started from", "left"),
        ("max |h0|", "right"), ("ok", "center")]
    if keras is not None:
        columns.append(("Keras", "left"))
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")

    def add(result: StepResult) -> None:
        cells = _row(result, marks)
        if keras is not None:
            cells.append(_keras_cell(keras, result.step.call.index, marks))
        table.add_row(*cells)

    for result in rows.head:
        add(result)
    if rows.folded:
        table.add_row(*rows.fold_cells(marks), style="dim italic")
    for result in rows.tail:
        add(result)
    return table


def _keras_text(keras: KerasComparison) -> Text:
    text = Text(keras.summary_line() + ".", style="green" if keras.agree else "bold red")
    if keras.error:
        text.append(f"\nKeras itself raised {keras.error.type} at step {keras.error.step}:\n  ")
        text.append(keras.error.message.strip().replace("\n", "\n  "))
    return text


def summary_text(report: Report) -> Text:
    summary = report.summary
    text = Text()
    text.append(f"{plural(summary.steps, 'step')}: {plural(summary.reset_events, 'reset event')}, "
                f"{plural(summary.slot_resets, 'slot reset')}, "
                f"{plural(summary.slot_carries, 'slot carry', 'slot carries')}. ")
    if report.observer:
        text.append(f"Read from your model's own state tensors by {report.observer}.", style="green")
    elif summary.verified is None:
        text.append("Dry run: predicted from Keras's rules, not checked on tensors.", style="yellow")
    elif summary.verified and summary.checked_steps < summary.steps - bool(report.error):
        text.append(f"The first {plural(summary.checked_steps, 'step')} verified on the tensors; the "
                    f"rest predicted from Keras's rules ({report.terms.name('max_steps')}).", style="green")
    elif summary.verified:
        text.append("Every step verified on the tensors.", style="green")
    else:
        text.append(f"{plural(report.mismatches, 'step differs', 'steps differ')} from Keras's rules: "
                    "the mirror is wrong.", style="bold red")
        if report.first_difference:
            index, names = report.first_difference
            text.append(f" First at step {index}, in {', '.join(names)}.", style="bold red")
    if summary.tensors_checked:
        spec = report.spec
        text.append(f" Checked per slot: {' and '.join(spec.cell.state_names)}"
                    + (f" of all {spec.layers} layers" if spec.layers > 1 else "")
                    + (" in both directions" if spec.bidirectional else "") + ".")
    return text


def _error_text(report: Report) -> Text:
    error = report.error
    assert error is not None and report.fix is not None
    text = Text()
    text.append(f"Keras raises {error.type} at step {error.step}", style="bold red")
    text.append(" (after the steps before it ran):\n")
    text.append("  " + error.message.replace("\n", "\n  ") + "\n")
    text.append("Fix: ", style="bold")
    text.append(report.fix)
    return text


def _evidence_table(report: Report) -> Table:
    table = Table(title="Evidence, measured on the tensors", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("evidence")
    table.add_column("measured", justify="right")
    table.add_column("pass", justify="center")
    table.add_column("what it shows", overflow="fold")
    for number, item in enumerate(report.evidence, start=1):
        passed = Text("n/a", style="dim") if item.passed is None else (
            Text("pass", style="green") if item.passed else Text("FAIL", style="bold red"))
        measured = "-" if item.value is None else f"{item.value:.1e}"
        table.add_row(str(number), item.title, measured, passed, item.detail)
    return table


def _claims_table(report: Report) -> Table:
    table = Table(title="Claims people make, judged for this setup", title_justify="left")
    table.add_column("claim", ratio=2, overflow="fold")
    table.add_column("verdict", justify="center")
    table.add_column("because", ratio=3, overflow="fold")
    for claim in report.claims:
        verdict = Text("TRUE", style="bold green") if claim.true else Text("FALSE", style="bold red")
        table.add_row(claim.text, verdict, claim.because)
    return table


def closing_parts(report: Report, plain: bool = False) -> list[Any]:
    """What follows the steps in every rich view: summary, Keras, error, evidence, claims, verdict.
    `plain`: ASCII boxes."""
    parts: list[Any] = [summary_text(report)]
    if report.keras is not None:
        parts.append(_keras_text(report.keras))
    if report.error:
        parts.append(_error_text(report))
    tables = ([_evidence_table(report)] if report.evidence else []) + (
        [_claims_table(report)] if report.claims else [])
    for table in tables:
        if plain:
            table.box = box.ASCII
        parts.append(table)
    verdict = Text()
    verdict.append("Verdict: ", style="bold")
    verdict.append(report.verdict)
    parts.append(verdict)
    if report.advice:
        advice = Table(title="Advice", title_justify="left", box=box.ASCII if plain else box.HEAVY_HEAD)
        advice.add_column("about", overflow="fold")
        advice.add_column("what to do", overflow="fold")
        for item in report.advice:
            advice.add_row(Text(item.key), Text(item.text))  # Text: "[i]" is code here, not markup
        parts.append(advice)
    return parts


class TableView:
    """The table of steps (the middle folded past `max_rows`), then the closing parts."""

    def __init__(self, console: Console, max_rows: int, ascii_only: bool = False):
        self.console = console
        self.glyphs = choose_glyphs(console, ascii_only)
        self.rows = FoldedRows(max_rows)

    def add(self, result: StepResult) -> None:
        self.rows.add(result)

    def finish(self, report: Report) -> None:
        self.rows.finish()
        plain = self.glyphs is ASCII
        table = build_table(report, self.rows, self.glyphs)
        if plain:
            table.box = box.ASCII
        self.console.print(Group(table, *closing_parts(report, plain)))


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """rich exits with 1 here; the command answers every closed pipe alike (141)."""
        raise BrokenPipeError


# A width of 0 (COLUMNS=0) prints nothing at all: take the width of a terminal of unknown size.
DEFAULT_WIDTH = 80


def make_console(stderr: bool = False, record: bool = False) -> Console:
    """rich decides colour from the terminal; NO_COLOR (https://no-color.org) turns off every
    escape code, bold and italic included, not only the colours rich drops for it."""
    if os.environ.get("NO_COLOR"):
        console = _Console(stderr=stderr, highlight=False, record=record, color_system=None)
    else:
        console = _Console(stderr=stderr, highlight=False, record=record)
    if console.width < 1:
        console.width = DEFAULT_WIDTH
    return console


def can_encode(stream: Any, text: str) -> bool:
    """Whether a console or a text stream can write `text` in its encoding."""
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def step_to_json(result: StepResult, slots: bool = True) -> dict[str, Any]:
    """`slots=False` (--no-slots) replaces the per-slot arrays by counts, for huge runs."""
    step, call = result.step, result.step.call
    item: dict[str, Any] = {"call": call.segment, "phase": str(call.phase), "epoch": call.epoch,
                            "batch": call.batch}
    if call.stream != call.phase:
        item["data"] = str(call.stream)  # fit's validation_split: the last training samples
    if slots:
        item.update(samples=call.slot_samples.tolist(), start=step.start_labels())
    else:
        item.update(slots=len(call.slot_samples), zero_slots=step.zero_slots, carried_slots=step.carried_slots)
    if call.broadcast:
        item["broadcast"] = True  # one sample, run in every slot (TensorFlow), where Keras raises elsewhere
    if result.observed is not None:
        item["observed"] = result.observed.to_json()
    item["verified"] = result.verified
    return item


class JsonWriter:
    """Schema 1, written step by step (the steps array is never held in memory)."""

    def __init__(self, out: TextIO, spec: Spec, slots: bool = True, observer: str = ""):
        self.out, self.slots, self.count = out, slots, 0
        seen = f'"observed_by": {json.dumps(observer)}, ' if observer else ""  # a StateProbe run: --replay reads it
        out.write(f'{{"schema": {SCHEMA_VERSION}, {seen}"spec": {json.dumps(spec.to_json())}, "steps": [')

    def add(self, result: StepResult) -> None:
        self.out.write(("" if self.count == 0 else ", ") + "\n  " + json.dumps(step_to_json(result, self.slots)))
        self.count += 1

    def finish(self, report: Report) -> None:
        tail = {"summary": report.summary.to_json(),
                "error": {**report.error.to_json(), "fix": report.fix} if report.error else None,
                "warnings": list(report.warnings),
                "verdict": report.verdict,
                "evidence": [item.to_json() for item in report.evidence],
                "claims": [claim.to_json() for claim in report.claims],
                "advice": [item.to_json() for item in report.advice]}
        if report.data is not None:
            tail["data"] = report.data.to_json()
        if report.keras is not None:
            tail["keras"] = report.keras.to_json(self.slots)
        self.out.write("\n], " + json.dumps(tail)[1:] + "\n")
