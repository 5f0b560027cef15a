"""Output for documents and scripts: GitHub markdown, CSV (one row per step and slot), and
safe writing of exported files."""

from __future__ import annotations

import csv
import os
import tempfile
from typing import TextIO

from .render import ASCII_MARKS, UNICODE_MARKS, FoldedRows, can_encode, step_cells, summary_text
from .report import Inspection


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(_escape(cell) for cell in cells) + " |\n"


def write_markdown(inspection: Inspection, out: TextIO, max_rows: int) -> None:
    marks = UNICODE_MARKS if can_encode(out, "✓✗—…") else ASCII_MARKS
    rows = FoldedRows(max_rows)
    for result in inspection:
        rows.add(result)
    rows.finish()
    out.write(f"`lstm-inspect {inspection.spec.command_line()}`\n\n")
    out.write(_markdown_row(["step", "call", "samples", "slots started from", "max |h0|", "ok"]))
    out.write("|---:|---|---|---|---:|:---:|\n")
    for result in rows.head:
        out.write(_markdown_row(step_cells(result, marks)))
    if rows.folded:
        out.write(_markdown_row(rows.fold_cells(marks) + ["", ""]))
    for result in rows.tail:
        out.write(_markdown_row(step_cells(result, marks)))
    out.write(f"\n{summary_text(inspection).plain}\n")
    if inspection.error:
        out.write(f"\n**Keras raises {inspection.error.type} at step {inspection.error.step}:** "
                  f"{_escape(inspection.error.message)}  \nFix: {inspection.fix}\n")
    if inspection.evidence:
        out.write("\n| evidence | measured | pass | what it shows |\n|---|---:|:---:|---|\n")
        for item in inspection.evidence:
            measured = "" if item.value is None else f"{item.value:.1e}"
            passed = {True: "pass", False: "FAIL", None: "n/a"}[item.passed]
            out.write(_markdown_row([item.title, measured, passed, item.detail]))
    if inspection.with_evidence:
        out.write("\n| claim | verdict | because |\n|---|:---:|---|\n")
        for claim in inspection.claims:
            out.write(_markdown_row([claim.text, "TRUE" if claim.true else "FALSE", claim.because]))
    out.write(f"\n**Verdict:** {inspection.verdict}\n")


CSV_COLUMNS = ["phase", "epoch", "batch", "slot", "sample", "start", "verified"]


def write_csv(inspection: Inspection, out: TextIO) -> None:
    """One row per step and slot, written as the steps come."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for result in inspection:
        call = result.step.call
        starts = result.step.start_labels() or ["raises"] * len(call.samples)
        verified = "" if result.verified is None else str(result.verified).lower()
        writer.writerows([call.phase.value, call.epoch, call.batch, slot, sample, start, verified]
                         for slot, (sample, start) in enumerate(zip(call.samples.tolist(), starts)))


def check_writable(path: str) -> str | None:
    """Why `path` cannot be written, or None; checked before any work is done."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return f"{path} is a directory"
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isfile(path)):
        # The file is replaced by a rename: never do that to a device, a pipe or a link.
        return f"{path} exists and is not a regular file"
    if not os.path.isdir(directory):
        return f"no such directory: {directory}"
    if not os.access(directory, os.W_OK):
        return f"cannot write in {directory}"
    return None


def write_atomically(path: str, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: never a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".lstm-inspect-", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 is for secrets, not reports
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
