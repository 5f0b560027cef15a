"""The table view: a rich table of the steps (the middle folded past `max_rows`), then what
closes every rich view (summary, Keras, error, evidence, claims, verdict, advice).

Every view takes the steps one at a time (`add`) as whoever runs the inspection hands them
over, then the finished report (`finish`): output starts before the run ends, memory does
not grow with the number of steps, and no view ever runs anything itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from rich import box
from rich.console import Console, Group, JustifyMethod
from rich.table import Table
from rich.text import Text

from ..check.inspection import TORCH_OBSERVER, Report, StepResult
from ..core.facts import facts_for
from ..core.words import plural
from .cells import FoldedRows, check_mark, step_cells, step_columns
from .glyphs import ASCII, UNICODE, Glyphs, choose_glyphs

if TYPE_CHECKING:
    from ..check.against import KerasComparison


class View(Protocol):
    """An output: fed each step result, then the report."""

    def add(self, result: StepResult) -> None: ...

    def finish(self, report: Report) -> None: ...


def show(report: Report, view: View) -> None:
    """Render a report whose steps were kept (`Inspection.run()`)."""
    for result in report.steps:
        view.add(result)
    view.finish(report)


def _row(result: StepResult, marks: Glyphs) -> list[Text]:
    # Text, never markup: a call's label may come from a saved file, and "[" is text there.
    cells = [Text(cell) for cell in step_cells(result, marks)]
    cells[-3] = Text(cells[-3].plain, style="bold red" if result.step.raises else "")  # slots started from
    cells[-1] = check_mark(result, marks)
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
    if report.observer == TORCH_OBSERVER:
        title = f"Steps of your PyTorch loop, seen by {TORCH_OBSERVER}"
    elif report.observer:
        title = f"Steps of your model on {name}, seen by {report.observer}"
    elif report.dry_run:
        title = f"Steps of {name} (dry run: predicted, not run)"
    else:
        title = f"Steps of {name}, checked on a PyTorch {report.spec.layer_name}"
    table = Table(title=title, title_justify="left")
    justified: dict[str, JustifyMethod] = {"step": "right", "max |h0|": "right", "ok": "center"}
    columns = [(name, justified.get(name, "left")) for name in step_columns(report.spec.padded)]
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
        table.add_row(*rows.fold_cells(marks, report.spec.padded), style="dim italic")
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
