"""A report shown where people look at it: in a notebook (`_repr_html_`: the steps as an HTML
table, then the summary, verdict and advice), in any rich console (`__rich_console__`: what the
command line prints), printed (`Report.show`), or as a page of its own (`HtmlPage`, --html: the
diagram, then the same HTML). Importing this module plugs the first three into
check.inspection.DISPLAYS."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from rich.console import Group

from ..check.inspection import DISPLAYS, Report, StepResult
from ..core.spec import Spec
from ..core.words import plural
from .cells import FoldedRows, step_cells, step_columns
from .console import make_console
from .table import TableView, View, build_table, closing_parts, show
from .timeline import TimelineView

if TYPE_CHECKING:
    from .diagram import Diagram


def new_diagram(title: str) -> Diagram:
    """A Diagram, its module loaded only when one is drawn (its XML escaping loads urllib, 9 ms of a
    --dry-run's start-up, which loads no torch)."""
    from .diagram import Diagram

    return Diagram(title)


def _rows(report: Report, max_rows: int) -> FoldedRows:
    rows = FoldedRows(max_rows)
    for result in report.steps:
        rows.add(result)
    rows.finish()
    return rows


def rich_group(report: Report, max_rows: int = 40) -> Group:
    """The table of the kept steps and the closing parts, as one rich renderable."""
    return Group(build_table(report, _rows(report, max_rows)), *closing_parts(report))


def html(report: Report, max_rows: int = 40) -> str:
    """The report as HTML: the diagram of its kept steps, then real tables and paragraphs, every text
    escaped (a saved run's labels are data)."""
    diagram = new_diagram("the state flow, step by step")
    for result in report.steps:
        diagram.add(result)
    diagram.finish(report)
    drawing = diagram.svg() if report.steps else ""
    return "<div class=\"lstm-inspect\">" + drawing + "".join(body(report, _rows(report, max_rows))) + "</div>"


def body(report: Report, rows: FoldedRows) -> list[str]:
    """The steps' table, the summary, the evidence and claims, warnings, verdict and advice, as HTML."""
    columns = step_columns(report.spec.padded)
    shown = [step_cells(result) for result in rows.head]
    if rows.folded:
        shown.append([*rows.fold_cells(padded=report.spec.padded), *[""] * 2])
    shown += [step_cells(result) for result in rows.tail]
    parts = [f"<p><b>{escape(repr(report)[1:-1])}</b></p>"]
    if shown:
        parts.append(_table(columns, shown))
    summary = report.summary
    parts.append(f"<p>{plural(summary.steps, 'step')}: {plural(summary.reset_events, 'reset event')}, "
                 f"{plural(summary.slot_resets, 'slot reset')}, "
                 f"{plural(summary.slot_carries, 'slot carry', 'slot carries')}.</p>")
    if report.evidence:
        parts.append(_table(["evidence", "measured", "pass", "what it shows"], [
            [item.title, "-" if item.value is None else f"{item.value:.1e}",
             "n/a" if item.passed is None else "pass" if item.passed else "FAIL", item.detail]
            for item in report.evidence]))
    if report.claims:
        parts.append(_table(["claim", "verdict", "because"], [
            [claim.text, "TRUE" if claim.true else "FALSE", claim.because] for claim in report.claims]))
    parts += [f"<p>&#9888; {escape(warning)}</p>" for warning in report.warnings]
    parts.append(f"<p><b>Verdict:</b> {escape(report.verdict)}</p>")
    if report.advice:
        parts.append(_table(["about", "what to do"], [[item.key, item.text] for item in report.advice]))
    return parts


def _table(columns: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in columns)
    cells = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>"


PAGE_STYLE = """body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1f2328; background: #fff; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #d0d7de; padding: 3px 8px;
vertical-align: top; text-align: left; } th { background: #f6f8fa; }
@media (prefers-color-scheme: dark) { body { color: #e6edf3; background: #0d1117; }
th, td { border-color: #30363d; } th { background: #161b22; } }"""


class HtmlPage:
    """--html: a page of its own, fed the steps as they stream: the diagram, then the tables as
    HTML tables, the verdict and advice as text."""

    def __init__(self, title: str, max_rows: int) -> None:
        self.title, self.rows, self.diagram = title, FoldedRows(max_rows), new_diagram(title)
        self.report: Report | None = None

    def add(self, result: StepResult) -> None:
        self.rows.add(result)
        self.diagram.add(result)

    def finish(self, report: Report) -> None:
        self.rows.finish()
        self.diagram.finish(report)
        self.report = report

    def page(self) -> str:
        assert self.report is not None, "the page is written once the report is there"
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{escape(self.title)}</title><style>{PAGE_STYLE}</style></head><body>\n"
                f"{self.diagram.svg()}" + "".join(body(self.report, self.rows))
                + "</body></html>\n")


def printed_view(view: str, spec: Spec, max_rows: int, console: Any = None) -> View:
    """The table (or `view="timeline"`) printing to `console` (a new one on stdout by default), as
    the command line prints it: what both a report's show() and the probes' report() print with."""
    if view not in ("table", "timeline"):
        raise ValueError(f"view is 'table' or 'timeline', got {view!r}")
    console = console or make_console()
    return TimelineView(console, spec) if view == "timeline" else TableView(console, max_rows)


def show_report(report: Report, view: str = "table", max_rows: int = 40, console: Any = None) -> None:
    """Print the report as the command line does, from its kept steps."""
    show(report, printed_view(view, report.spec, max_rows, console))


DISPLAYS.update(rich=rich_group, html=html, show=show_report)
