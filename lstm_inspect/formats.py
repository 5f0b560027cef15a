"""Output for documents and scripts: GitHub markdown, CSV (one row per step and slot), and
safe writing of exported files."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable
from typing import TextIO

from .inspection import Report, StepResult
from .render import FoldedRows, choose_glyphs, step_cells, summary_text


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(_escape(cell) for cell in cells) + " |\n"


class MarkdownWriter:
    """GitHub markdown: the steps (folded past `max_rows`), summary, error, evidence, claims,
    verdict; headed by `command`, the command line that made it."""

    def __init__(self, out: TextIO, max_rows: int, command: str):
        self.out, self.command = out, command
        self.marks = choose_glyphs(out)
        self.rows = FoldedRows(max_rows)

    def add(self, result: StepResult) -> None:
        self.rows.add(result)

    def finish(self, report: Report) -> None:
        out, rows = self.out, self.rows
        rows.finish()
        out.write(f"`{self.command}`\n\n")
        out.write(_markdown_row(["step", "call", "samples", "slots started from", "max |h0|", "ok"]))
        out.write("|---:|---|---|---|---:|:---:|\n")
        for result in rows.head:
            out.write(_markdown_row(step_cells(result, self.marks)))
        if rows.folded:
            out.write(_markdown_row(rows.fold_cells(self.marks) + ["", ""]))
        for result in rows.tail:
            out.write(_markdown_row(step_cells(result, self.marks)))
        out.write(f"\n{summary_text(report).plain}\n")
        if report.error:
            out.write(f"\n**Keras raises {report.error.type} at step {report.error.step}:** "
                      f"{_escape(report.error.message)}  \nFix: {report.fix}\n")
        if report.evidence:
            out.write("\n| evidence | measured | pass | what it shows |\n|---|---:|:---:|---|\n")
            for item in report.evidence:
                measured = "" if item.value is None else f"{item.value:.1e}"
                passed = {True: "pass", False: "FAIL", None: "n/a"}[item.passed]
                out.write(_markdown_row([item.title, measured, passed, item.detail]))
        if report.claims:
            out.write("\n| claim | verdict | because |\n|---|:---:|---|\n")
            for claim in report.claims:
                out.write(_markdown_row([claim.text, "TRUE" if claim.true else "FALSE", claim.because]))
        out.write(f"\n**Verdict:** {report.verdict}\n")
        if report.advice:
            out.write("\n## Advice\n\n" + "".join(f"- **{item.key}**: {_escape(item.text)}\n"
                                                    for item in report.advice))


CSV_COLUMNS = ["phase", "epoch", "batch", "slot", "sample", "start", "verified", "call"]


class CsvWriter:
    """One row per step and slot, written as the steps come."""

    def __init__(self, out: TextIO):
        self.writer = csv.writer(out, lineterminator="\n")
        self.writer.writerow(CSV_COLUMNS)

    def add(self, result: StepResult) -> None:
        call = result.step.call
        starts = result.step.start_labels() or ["raises"] * len(call.samples)
        verified = "" if result.verified is None else str(result.verified).lower()
        self.writer.writerows([call.phase.value, call.epoch, call.batch, slot, sample, start, verified, call.segment]
                              for slot, (sample, start) in enumerate(zip(call.slot_samples.tolist(), starts)))

    def finish(self, report: Report) -> None:
        """Nothing follows the rows."""


def check_writable(path: str) -> str | None:
    """Why `path` cannot be written, or None; checked before any work is done, down to a real
    file made and removed beside it (permissions alone do not tell: /proc, read-only mounts)."""
    try:
        directory = os.path.dirname(os.path.abspath(path))
    except OSError:
        return "the working directory no longer exists"
    if path.endswith((os.sep, "/")) or os.path.isdir(path):
        return f"{path} names a directory, not a file"
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
        # The file is replaced by a rename: never do that to a device, a pipe or a link.
        return f"{path} exists and is not a regular file"
    if not os.path.isdir(directory):
        return f"no such directory: {directory}"
    try:
        if len(os.fsencode(os.path.basename(path))) > os.pathconf(directory, "PC_NAME_MAX"):
            return f"the file name is longer than {directory} allows"
        handle, probe = tempfile.mkstemp(dir=directory, prefix=".lstm-inspect-", suffix=".tmp")
    except OSError as failed:
        return f"cannot write in {directory}: {failed.strerror or failed}"
    try:
        os.close(handle)
    finally:
        os.unlink(probe)
    return None


def write_atomically(path: str, text: str | Iterable[str]) -> None:
    """Write to a temporary file beside `path`, then rename: never a half-written file. `text`:
    the content, or its pieces one after another (written as they come)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".lstm-inspect-", suffix=".tmp")
    except OSError as failed:
        raise OSError(failed.errno, failed.strerror, path) from failed  # the user's path, not ours
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 is for secrets, not reports
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            for piece in [text] if isinstance(text, str) else text:
                file.write(piece)
        os.replace(temporary, path)
    except BaseException as failed:
        os.unlink(temporary)
        if isinstance(failed, OSError):
            raise OSError(failed.errno, failed.strerror, path) from failed  # the user's path, not ours
        raise
