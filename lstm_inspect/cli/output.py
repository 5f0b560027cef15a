"""Where and how the report is shown: the view for --format and --view, the exports, --emit."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from ..check.inspection import Inspection, Report, StepResult
from ..core.spec import Spec
from ..emit.snippets import keras_snippet, torch_snippet
from ..views.console import make_console
from ..views.files import write_atomically
from ..views.formats import CsvWriter, MarkdownWriter
from ..views.jsonout import JsonWriter
from ..views.notebook import HtmlPage, new_diagram
from ..views.table import TableView, View
from ..views.timeline import TimelineView
from .io import discard_stdout, output_failed, stdout_open
from .options import (
    Emit,
    OutputFormat,
    ViewName,
)
from .progress import stepped
from .setup import command_line

if TYPE_CHECKING:
    from ..views.diagram import Diagram


@dataclass(frozen=True)
class Output:
    """Where and how the report is shown."""

    output_format: OutputFormat
    view: ViewName
    ascii_only: bool
    svg: str | None
    html: str | None
    max_rows: int
    no_slots: bool
    quiet: bool
    diagram: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Output:
        return cls(OutputFormat(params["output_format"]), ViewName(params["view"]), params["ascii_only"],
                   params["svg"], params["html"], params["max_rows"], params["no_slots"], params["quiet"],
                   params["diagram"])

    def make_view(self, spec: Spec, observer: str = "") -> tuple[View, Console | None]:
        """The view, and the console to export from (--svg, --html)."""
        if self.quiet:
            return _Discard(), None
        if self.output_format == OutputFormat.JSON:
            return JsonWriter(sys.stdout, spec, slots=not self.no_slots, observer=observer), None
        if self.output_format == OutputFormat.MARKDOWN:
            return MarkdownWriter(sys.stdout, self.max_rows, f"lstm-inspect {command_line(spec)}"), None
        if self.output_format == OutputFormat.CSV:
            return CsvWriter(sys.stdout, padded=spec.padded), None
        console = make_console(record=bool(self.svg))
        if self.view == ViewName.TIMELINE:
            return TimelineView(console, spec, self.ascii_only), console
        return TableView(console, self.max_rows, self.ascii_only), console

    def export(self, console: Console | None, spec: Spec, drawn: Drawn) -> None:
        if drawn.diagram is not None and self.diagram:
            write_atomically(self.diagram, drawn.diagram.svg())
        if drawn.page is not None and self.html:
            write_atomically(self.html, drawn.page.page())
        if console is not None and self.svg:
            title = f"lstm-inspect {command_line(spec)}"
            room = max(20, console.width - 12)  # the window's width, less its buttons: a longer title runs over them
            svg = console.export_svg(title=title if len(title) <= room else title[:room - 1] + "…", clear=False)
            write_atomically(self.svg, _OFFLINE_FONTS.sub("", svg))


# rich's SVG fetches its font from a CDN where none is installed: self-contained, it names the
# local font and falls back to the monospace one, as offline it would anyway.
_OFFLINE_FONTS = re.compile(r',\s*url\("https?://[^"]*"\) format\("[^"]*"\)')


@dataclass(frozen=True)
class Drawn:
    """The exports fed the steps beside the view: the diagram (--diagram) and the page (--html)."""

    diagram: Diagram | None
    page: HtmlPage | None

    @classmethod
    def asked(cls, output: Output, spec: Spec) -> Drawn:
        title = f"lstm-inspect {command_line(spec)}"
        return cls(new_diagram(title) if output.diagram else None,
                   HtmlPage(title, output.max_rows) if output.html else None)

    def add(self, result: StepResult) -> None:
        for export in (self.diagram, self.page):
            if export is not None:
                export.add(result)

    def finish(self, report: Report) -> None:
        for export in (self.diagram, self.page):
            if export is not None:
                export.finish(report)


class _Discard:
    """--quiet: the run goes on, nothing is shown."""

    def add(self, result: StepResult) -> None:
        pass

    def finish(self, report: Report) -> None:
        pass


@dataclass(frozen=True)
class Replayed:
    """A saved run, shown as an Inspection is: its steps (read as they are shown), then its report."""

    results: Iterator[StepResult]
    report: Report

    def __iter__(self) -> Iterator[StepResult]:
        return self.results


def show(inspection: Inspection | Replayed, output: Output, spec: Spec, observer: str = "",
         progress: int | None = None) -> Report:
    """Feed the view every step, then the report, and write the exports. Any failure to write
    ends the command with one line and a non-zero code; the exports are written whatever
    happens to standard output. `progress`: the steps' total, for a bar on stderr (progress.py)."""
    closed = not output.quiet and not stdout_open()
    if closed:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the exports' sake; the process ends below)
    console: Console | None = None
    drawn = Drawn.asked(output, spec)
    try:
        view, console = output.make_view(spec, observer)  # JSON and CSV write their heads at once
        for result in stepped(inspection, progress):
            view.add(result)
            drawn.add(result)
        view.finish(inspection.report)
        drawn.finish(inspection.report)
        if sys.stdout is not None:
            sys.stdout.flush()  # buffered bytes fail here, not silently at exit
    except BrokenPipeError:
        output.export(console, spec, drawn)
        raise  # InspectCommand: 141
    except OSError as failed:
        discard_stdout()
        with contextlib.suppress(OSError):
            output.export(console, spec, drawn)
        output_failed(failed.strerror or str(failed))
    try:
        output.export(console, spec, drawn)
    except OSError as failed:
        output_failed(f"{failed.filename or 'an export'}: {failed.strerror or failed}")
    if closed:
        output_failed("standard output is closed")
    return inspection.report


def print_snippet(spec: Spec, emit: Emit) -> None:
    if not stdout_open():
        output_failed("standard output is closed")
    if spec.stateful and spec.shuffle and spec.workflow is None:
        click.echo("note: the snippet fits with shuffle=False, as a stateful layer needs "
                   "(slot i of batch k+1 continues slot i of batch k)", err=True)
    snippet = keras_snippet if emit == Emit.KERAS else torch_snippet
    click.echo(snippet(spec, command_line(spec)), nl=False)
