"""Output for documents and scripts: GitHub markdown, and CSV (one row per step and slot)."""

from __future__ import annotations

import csv
from typing import TextIO

from ..check.inspection import Report, StepResult
from .cells import FoldedRows, step_cells, step_columns
from .glyphs import choose_glyphs
from .table import summary_text


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
        padded = report.spec.padded
        columns = step_columns(padded)
        out.write(_markdown_row(columns))
        rules = {"step": "---:", "max |h0|": "---:", "ok": ":---:"}
        out.write("|" + "|".join(rules.get(name, "---") for name in columns) + "|\n")
        for result in rows.head:
            out.write(_markdown_row(step_cells(result, self.marks)))
        if rows.folded:
            out.write(_markdown_row(rows.fold_cells(self.marks, padded) + ["", ""]))
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
    """One row per step and slot, written as the steps come; `padded` (--lengths): a last column
    of each slot's valid timesteps."""

    def __init__(self, out: TextIO, padded: bool = False):
        self.writer = csv.writer(out, lineterminator="\n")
        self.writer.writerow(CSV_COLUMNS + ["valid_steps"] * padded)

    def add(self, result: StepResult) -> None:
        call = result.step.call
        starts = result.step.start_labels() or ["raises"] * len(call.samples)
        verified = "" if result.verified is None else str(result.verified).lower()
        rows = ([call.phase.value, call.epoch, call.batch, slot, sample, start, verified, call.segment]
                for slot, (sample, start) in enumerate(zip(call.slot_samples.tolist(), starts)))
        if result.lengths is None:
            self.writer.writerows(rows)
        else:
            self.writer.writerows(row + [length] for row, length in zip(rows, result.lengths.tolist()))

    def finish(self, report: Report) -> None:
        """Nothing follows the rows."""
