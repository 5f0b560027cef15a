"""A finished Report shown where people look at it: in a notebook (`_repr_html_`: the steps as an
HTML table, then the summary, verdict and advice), in any rich console (`__rich_console__`: what
the command line prints), or printed (`Report.show`). Importing this module plugs them into
check.inspection.DISPLAYS."""

from __future__ import annotations

from html import escape
from typing import Any

from rich.console import Group

from ..check.inspection import DISPLAYS, Report
from ..core.words import plural
from .cells import FoldedRows, step_cells, step_columns
from .console import make_console
from .table import TableView, View, build_table, closing_parts, show
from .timeline import TimelineView


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
    """The report as HTML: real tables and paragraphs, every text escaped (a saved run's labels are data)."""
    rows = _rows(report, max_rows)
    columns = step_columns(report.spec.padded)
    body = [step_cells(result) for result in rows.head]
    if rows.folded:
        body.append([*rows.fold_cells(padded=report.spec.padded), *[""] * 2])
    body += [step_cells(result) for result in rows.tail]
    parts = [f"<p><b>{escape(repr(report)[1:-1])}</b></p>"]
    if body:
        parts.append(_table(columns, body))
    summary = report.summary
    parts.append(f"<p>{plural(summary.steps, 'step')}: {plural(summary.reset_events, 'reset event')}, "
                 f"{plural(summary.slot_resets, 'slot reset')}, "
                 f"{plural(summary.slot_carries, 'slot carry', 'slot carries')}.</p>")
    parts += [f"<p>&#9888; {escape(warning)}</p>" for warning in report.warnings]
    parts.append(f"<p><b>Verdict:</b> {escape(report.verdict)}</p>")
    if report.advice:
        parts.append(_table(["about", "what to do"], [[item.key, item.text] for item in report.advice]))
    return "<div class=\"lstm-inspect\">" + "".join(parts) + "</div>"


def _table(columns: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in columns)
    cells = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>"


def show_report(report: Report, view: str = "table", max_rows: int = 40, console: Any = None) -> None:
    """Print the report as the command line does, from its kept steps."""
    if view not in ("table", "timeline"):
        raise ValueError(f"view is 'table' or 'timeline', got {view!r}")
    console = console or make_console()
    shown: View = TimelineView(console, report.spec) if view == "timeline" else TableView(console, max_rows)
    show(report, shown)


DISPLAYS.update(rich=rich_group, html=html, show=show_report)
