"""Turning an Inspection into output: a rich table, or JSON streamed step by step.

Both renderers consume the inspection's steps as they come, so output starts before the
run ends and memory does not grow with the number of steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from collections import Counter, deque
from typing import TextIO

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .report import Inspection, StepResult, plural
from .schedule import Start, Step

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Marks:
    ok: str
    bad: str
    none: str
    more: str


UNICODE_MARKS = Marks("✓", "✗", "—", "…")
ASCII_MARKS = Marks("ok", "X", "-", "...")


def format_samples(samples: np.ndarray, marks: Marks = UNICODE_MARKS) -> str:
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
        return f"raises: {len(step.call.samples):,} samples"
    parts = _counts(step)
    if step.carried_slots:
        unrelated = int(np.count_nonzero(step.start_kinds() == Start.UNRELATED.value))
        parts[-1] += f" from {step.source.label}"
        if unrelated == step.carried_slots:
            parts[-1] += " (unrelated)"
        elif unrelated:
            parts[-1] += f" ({unrelated:,} unrelated)"
    return ", ".join(parts)


def _counts(step: Step) -> list[str]:
    return ([f"reset x{step.zero_slots:,}"] if step.zero_slots else []) + (
        [f"carried x{step.carried_slots:,}"] if step.carried_slots else [])


def _fold_key(step: Step) -> str:
    """The kind of a step, without its indices, for the row that stands for folded steps."""
    if step.raises:
        return f"{step.call.phase} raising"
    return f"{step.call.phase} ({', '.join(_counts(step))})"


class FoldedRows:
    """Keeps the first and last rows of a long stream and counts the kinds in between."""

    def __init__(self, max_rows: int):
        self.head_size = max_rows // 2
        # One row more than shown when folding: the fold row takes its place only if needed.
        self.tail: deque[StepResult] = deque(maxlen=max_rows - self.head_size)
        self.head: list[StepResult] = []
        self.folded: Counter[str] = Counter()

    def add(self, result: StepResult) -> None:
        if len(self.head) < self.head_size:
            self.head.append(result)
            return
        if len(self.tail) == self.tail.maxlen:
            self.folded[_fold_key(self.tail[0].step)] += 1
        self.tail.append(result)

    def finish(self) -> None:
        """Make room for the fold row, if anything was folded."""
        if self.folded:
            self.folded[_fold_key(self.tail.popleft().step)] += 1

    def fold_cells(self, marks: Marks = UNICODE_MARKS) -> list[str]:
        total = sum(self.folded.values())
        kinds = ", ".join(f"{count:,} {key}" for key, count in self.folded.items())
        return [marks.more, f"{total:,} more steps", "", kinds]


def _check_mark(result: StepResult, marks: Marks) -> Text:
    if result.verified is None:
        return Text(marks.none if result.step.raises else "")
    return Text(marks.ok, style="green") if result.verified else Text(marks.bad, style="bold red")


def step_cells(result: StepResult, marks: Marks = UNICODE_MARKS) -> list[str]:
    """The text of a step's row, for every tabular format."""
    call = result.step.call
    observed = "" if result.observed is None else f"{result.observed.max_abs_h0:.3g}"
    return [str(call.index), call.label, format_samples(call.samples, marks), describe_start(result.step),
            observed, _check_mark(result, marks).plain]


def _row(result: StepResult, marks: Marks) -> list:
    cells = step_cells(result, marks)
    cells[3] = Text(cells[3], style="bold red" if result.step.raises else "")
    cells[5] = _check_mark(result, marks)
    return cells


def _keras_cell(keras, index: int, marks: Marks) -> Text:
    """Real Keras's view of a step: agreement and max |h0 Keras - h0 mirror|."""
    if index < len(keras.steps):
        step = keras.steps[index]
        diff = "" if step.state_diff is None else f" {step.state_diff:.0e}"
        return Text(marks.ok + diff, style="green") if step.agree else Text(marks.bad + diff, style="bold red")
    if keras.error and keras.error.step == index:
        return Text(f"raises {marks.ok if keras.error_agrees else marks.bad}",
                    style="green" if keras.error_agrees else "bold red")
    return Text(marks.none)


def build_table(inspection: Inspection, max_rows: int, keras=None, marks: Marks = UNICODE_MARKS) -> Table:
    table = Table(title=f"Keras's steps, checked on a PyTorch {inspection.spec.layer_name}" if not inspection.dry_run
                  else "Keras's steps (dry run: predicted, not run)", title_justify="left")
    columns = [("step", "right"), ("call", "left"), ("samples", "left"), ("slots started from", "left"),
               ("max |h0|", "right"), ("ok", "center")] + [("Keras", "left")] * (keras is not None)
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    rows = FoldedRows(max_rows)
    for result in inspection:
        rows.add(result)
    rows.finish()

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


def _keras_text(keras) -> Text:
    text = Text(keras.summary_line() + ".", style="green" if keras.agree else "bold red")
    if keras.error:
        text.append(f"\nKeras itself raised {keras.error.type} at step {keras.error.step}:\n  ")
        text.append(keras.error.message.strip().replace("\n", "\n  "))
    return text


def summary_text(inspection: Inspection) -> Text:
    summary = inspection.summary
    text = Text()
    text.append(f"{plural(summary.steps, 'step')}: {plural(summary.reset_events, 'reset event')}, "
                f"{plural(summary.slot_resets, 'slot reset')}, {plural(summary.slot_carries, 'slot carry', 'slot carries')}. ")
    if summary.verified is None:
        text.append("Dry run: predicted from Keras's rules, not checked on tensors.", style="yellow")
    elif summary.verified and summary.checked_steps < summary.steps - bool(inspection.error):
        text.append(f"The first {plural(summary.checked_steps, 'step')} verified on the tensors; the "
                    "rest predicted from Keras's rules (--max-steps).", style="green")
    elif summary.verified:
        text.append("Every step verified on the tensors.", style="green")
    else:
        text.append(f"{plural(inspection.mismatches, 'step differs', 'steps differ')} from Keras's rules: "
                    "the mirror is wrong.", style="bold red")
        if inspection.first_difference:
            index, names = inspection.first_difference
            text.append(f" First at step {index}, in {', '.join(names)}.", style="bold red")
    if summary.tensors_checked:
        spec = inspection.spec
        text.append(f" Checked per slot: {' and '.join(spec.cell.state_names)}"
                    + (f" of all {spec.layers} layers" if spec.layers > 1 else "")
                    + (" in both directions" if spec.bidirectional else "") + ".")
    return text


def _error_text(inspection: Inspection) -> Text:
    error = inspection.error
    text = Text()
    text.append(f"Keras raises {error.type} at step {error.step}", style="bold red")
    text.append(" (after the steps before it ran):\n")
    text.append("  " + error.message.replace("\n", "\n  ") + "\n")
    text.append("Fix: ", style="bold")
    text.append(inspection.fix)
    return text


def _evidence_table(inspection: Inspection) -> Table:
    table = Table(title="Evidence, measured on the tensors", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("evidence")
    table.add_column("measured", justify="right")
    table.add_column("pass", justify="center")
    table.add_column("what it shows", overflow="fold")
    for number, item in enumerate(inspection.evidence, start=1):
        passed = Text("n/a", style="dim") if item.passed is None else (
            Text("pass", style="green") if item.passed else Text("FAIL", style="bold red"))
        measured = "-" if item.value is None else f"{item.value:.1e}"
        table.add_row(str(number), item.title, measured, passed, item.detail)
    return table


def _claims_table(inspection: Inspection) -> Table:
    table = Table(title="Claims people make, judged for this setup", title_justify="left")
    table.add_column("claim", ratio=2, overflow="fold")
    table.add_column("verdict", justify="center")
    table.add_column("because", ratio=3, overflow="fold")
    for claim in inspection.claims:
        verdict = Text("TRUE", style="bold green") if claim.true else Text("FALSE", style="bold red")
        table.add_row(claim.text, verdict, claim.because)
    return table


def closing_parts(inspection: Inspection, keras=None, plain: bool = False) -> list:
    """What follows the steps in every rich view: summary, Keras, error, evidence, claims, verdict.
    `plain`: ASCII boxes."""
    parts = [summary_text(inspection)]
    if keras is not None:
        parts.append(_keras_text(keras))
    if inspection.error:
        parts.append(_error_text(inspection))
    tables = ([_evidence_table(inspection)] if inspection.evidence else []) + (
        [_claims_table(inspection)] if inspection.with_evidence else [])
    for table in tables:
        if plain:
            table.box = box.ASCII
        parts.append(table)
    verdict = Text()
    verdict.append("Verdict: ", style="bold")
    verdict.append(inspection.verdict)
    parts.append(verdict)
    return parts


def render_table(inspection: Inspection, console: Console, max_rows: int, keras=None,
                 ascii_only: bool = False) -> None:
    """`keras`: an oracle.KerasComparison of the same setup, shown beside the mirror."""
    plain = ascii_only or not can_encode(console, "✓✗—…│━┃")
    table = build_table(inspection, max_rows, keras, ASCII_MARKS if plain else UNICODE_MARKS)
    if plain:
        table.box = box.ASCII
    console.print(Group(table, *closing_parts(inspection, keras, plain)))


def can_encode(stream, text: str) -> bool:
    """Whether a console or a text stream can write `text` in its encoding."""
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def step_to_json(result: StepResult, slots: bool = True) -> dict:
    """`slots=False` (--no-slots) replaces the per-slot arrays by counts, for huge runs."""
    step, call = result.step, result.step.call
    item = {"phase": str(call.phase), "epoch": call.epoch, "batch": call.batch}
    if slots:
        item.update(samples=call.samples.tolist(), start=step.start_labels())
    else:
        item.update(slots=len(call.samples), zero_slots=step.zero_slots, carried_slots=step.carried_slots)
    if result.observed is not None:
        item["observed"] = result.observed.to_json()
    item["verified"] = result.verified
    return item


def write_json(inspection: Inspection, out: TextIO, keras=None, slots: bool = True) -> None:
    """Schema 1, written step by step (the steps array is never held in memory)."""
    out.write('{"schema": %d, "spec": %s, "steps": [' % (SCHEMA_VERSION, json.dumps(inspection.spec.to_json())))
    for index, result in enumerate(inspection):
        out.write(("" if index == 0 else ", ") + "\n  " + json.dumps(step_to_json(result, slots)))
    tail = {"summary": inspection.summary.to_json(),
            "error": {**inspection.error.to_json(), "fix": inspection.fix} if inspection.error else None,
            "warnings": inspection.warnings,
            "verdict": inspection.verdict,
            "evidence": [item.to_json() for item in inspection.evidence],
            "claims": [claim.to_json() for claim in inspection.claims] if inspection.with_evidence else []}
    if keras is not None:
        tail["keras"] = keras.to_json(slots)
    out.write("\n], " + json.dumps(tail)[1:] + "\n")
