"""The exit-code policy: what a finished report, and the CI expectations, make the command exit with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..check.inspection import Report
from ..core.words import plural

EXIT_OK, EXIT_MISMATCH, EXIT_KERAS_RAISES = 0, 1, 3  # 2, usage errors, is click's
EXIT_OUTPUT = 74  # the output could not be written (sysexits' EX_IOERR)


EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_TERMINATED = 141, 130, 143  # as a shell reports those signals


@dataclass(frozen=True)
class Expectations:
    """What a CI script asserts about the run; None means "not asserted"."""

    reset_events: int | None = None
    slot_resets: int | None = None
    slot_carries: int | None = None
    error: bool | None = None
    strict: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Expectations:
        return cls(params["expect_resets"], params["expect_slot_resets"], params["expect_carries"],
                   params["expect_error"], params["strict"])

    def failures(self, report: Report) -> list[str]:
        summary = report.summary
        checks = [("reset events", self.reset_events, summary.reset_events, "reset event", None),
                  ("slot resets", self.slot_resets, summary.slot_resets, "slot reset", None),
                  ("slot carries", self.slot_carries, summary.slot_carries, "slot carry", "slot carries")]
        failed = []
        for name, expected, actual, _, _ in checks:
            if expected is not None and expected != actual:
                others = ", ".join(plural(count, one, many) for other, _, count, one, many in checks if other != name)
                failed.append(f"expected {expected:,} {name}, found {actual:,} ({others})")
        raised = report.error is not None
        if self.error is not None and self.error != raised:
            found = f"an error at step {report.error.step}" if report.error else "no error"
            failed.append(f"expected Keras {'to raise' if self.error else 'not to raise'}, found {found}")
        if report.keras is not None and not report.keras.agree:
            failed.append(f"real Keras disagrees: {report.keras.summary_line()}")
        if self.strict and report.warnings:
            failed.append(f"--strict: {plural(len(report.warnings), 'warning')}")
        return failed

    def exit_code(self, report: Report, failures: list[str]) -> int:
        if failures or not report.ok:
            return EXIT_MISMATCH
        if report.error and not self.error:
            return EXIT_KERAS_RAISES  # unless Keras raising was the expected answer
        return EXIT_OK
