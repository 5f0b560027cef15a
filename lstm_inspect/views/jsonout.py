"""JSON output (schema 1), written step by step: the steps array is never held in memory."""

from __future__ import annotations

import json
from typing import Any, TextIO

from ..check.inspection import Report, StepResult
from ..core.spec import Spec

SCHEMA_VERSION = 1


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
    if result.lengths is not None:  # each slot's valid timesteps (--lengths); the range with --no-slots
        lengths = result.lengths.tolist()
        item.update(lengths=lengths) if slots else item.update(shortest=min(lengths), longest=max(lengths))
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
