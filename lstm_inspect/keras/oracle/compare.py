"""Real Keras against the schedule and the mirror, step by step: the schedule's starts against
Keras's, the mirror's tensors against Keras's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...core.choices import Phase
from ...core.facts import KerasError
from ...core.order import Call
from ...core.schedule import Step, keras_steps
from ...core.spec import Spec
from .process import run_keras_isolated, runs_here
from .runs import KerasCall
from .session import run_keras

if TYPE_CHECKING:
    from ...mirror.run import CallRecord  # imports torch, which a dry run never needs

# The same float32 state through Keras's and PyTorch's LSTM kernels differs by ~1e-7 (the
# semantics doc measured 3e-8); a state taken from the wrong slot, or not reset, differs by
# ~1e-1. Anything between is a bug worth seeing, not rounding.
TOLERANCE = 1e-5


@dataclass(frozen=True, eq=False)
class StepComparison:
    """One call Keras completed, next to the schedule's step and the mirror's call."""

    phase: Phase
    epoch: int
    batch: int
    samples: np.ndarray
    start: list[str]  # each slot's start, read from Keras's tensors (KerasRun.start_labels)
    predicted: list[str] | None  # the schedule's start_labels(); None if it has no such step
    state_diff: float | None  # max |initial states Keras - mirror|; None if the mirror has no such call
    output_diff: float | None  # max |final states Keras - mirror| (every tensor, layer, direction)
    batch_independence_diff: float | None  # stateless first call: max |in its batch - alone|

    @property
    def agree(self) -> bool:
        """Keras starts every slot where the schedule says, and the mirror holds Keras's
        numbers: a step whose labels match but whose tensors differ is not an agreement."""
        return (self.start == self.predicted and self.state_diff is not None
                and max(self.state_diff, self.output_diff or 0.0, self.batch_independence_diff or 0.0) < TOLERANCE)

    def to_json(self, slots: bool = True) -> dict[str, Any]:
        """`slots=False` (--no-slots): the per-slot arrays left out, as in the mirror's steps."""
        item: dict[str, Any] = {"phase": self.phase.value, "epoch": self.epoch, "batch": self.batch}
        if slots:
            item.update(samples=self.samples.tolist(), start=self.start)
        return {**item, "state_diff": self.state_diff, "output_diff": self.output_diff, "agree": self.agree}


@dataclass(frozen=True, eq=False)
class KerasComparison:
    """Real Keras against the schedule and the mirror; `agree` is the verdict."""

    version: str
    backend: str
    steps: list[StepComparison]
    error: KerasError | None  # what Keras raised, at the index of the call that raised
    schedule_error: KerasError | None  # the schedule's
    planned_steps: int  # steps the schedule completes before any raise
    mirror_steps: int  # calls the mirror completed

    @property
    def error_agrees(self) -> bool:
        if self.error is None or self.schedule_error is None:
            return self.error is None and self.schedule_error is None
        # Keras wraps the message ("Exception encountered when calling LSTM.call()...").
        return ((self.error.step, self.error.type) == (self.schedule_error.step, self.schedule_error.type)
                and self.schedule_error.matches(self.error.message))

    @property
    def same_length(self) -> bool:
        return len(self.steps) == self.planned_steps == self.mirror_steps

    @property
    def agree(self) -> bool:
        return all(step.agree for step in self.steps) and self.same_length and self.error_agrees

    @property
    def max_state_diff(self) -> float:
        return max((step.state_diff for step in self.steps if step.state_diff is not None), default=0.0)

    @property
    def max_output_diff(self) -> float:
        return max((step.output_diff for step in self.steps if step.output_diff is not None), default=0.0)

    def summary_line(self) -> str:
        agreeing = sum(step.agree for step in self.steps)
        line = (f"Keras {self.version} ({self.backend}): {agreeing}/{len(self.steps)} steps agree, "
                f"max state diff {self.max_state_diff:.1g}")
        independence = [step.batch_independence_diff for step in self.steps
                        if step.batch_independence_diff is not None]
        if independence:
            line += f", in batch vs alone {max(independence):.1g}"
        if not self.same_length:
            line += f"; the schedule plans {self.planned_steps} steps, the mirror ran {self.mirror_steps}"
        if self.error or self.schedule_error:
            line += f"; raises {_describe(self.error)}" if self.error else "; does not raise"
            line += ", as predicted" if self.error_agrees else f", predicted {_describe(self.schedule_error)}"
        return line

    def to_json(self, slots: bool = True) -> dict:
        return {"version": self.version, "backend": self.backend,
                "steps": [step.to_json(slots) for step in self.steps], "agree": self.agree,
                "max_state_diff": self.max_state_diff, "max_output_diff": self.max_output_diff,
                "error": self.error.to_json() if self.error else None}


def _describe(error: KerasError | None) -> str:
    return f"{error.type} at step {error.step}" if error else "no error"


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    # In float64, so that the difference of two float32 values is itself exact.
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def _same_call(call: KerasCall, other: Call) -> bool:
    return ((call.phase, call.epoch, call.batch) == (other.phase, other.epoch, other.batch)
            and np.array_equal(call.samples, other.samples))


def _compare_step(call: KerasCall, start: list[str], step: Step | None,
                  record: CallRecord | None, directions: int) -> StepComparison:
    predicted = step.start_labels() if step is not None and _same_call(call, step.call) else None
    state_diff = output_diff = None
    if record is not None and _same_call(call, record.call):
        assert call.initial is not None and call.final is not None
        state_diff = max(_max_diff(keras, mirror.cpu().numpy())
                         for keras, mirror in zip(call.initial, record.initial))
        # Keras's outputs are not visible inside fit; its final states are, and they are
        # what the outputs are made of (every layer and direction).
        output_diff = max(_max_diff(keras, mirror.cpu().numpy())
                          for keras, mirror in zip(call.final, record.final))
    independence = None
    if call.alone_output is not None:
        inside = call.output(directions)
        independence = _max_diff(inside[:len(call.alone_output)], call.alone_output)
    return StepComparison(call.phase, call.epoch, call.batch, call.samples, start, predicted,
                          state_diff, output_diff, independence)


def compare_with_keras(spec: Spec) -> KerasComparison:
    """Run the setup through real Keras and through the mirror, and compare every call
    Keras completed with the schedule's step and the mirror's call of the same index."""
    from ...mirror.run import mirror_records

    (observed,) = [run_keras(spec)] if runs_here(spec) else run_keras_isolated([spec])
    schedule = list(keras_steps(spec))
    planned = [step for step in schedule if not step.raises]
    raising = [step.error for step in schedule if step.error is not None]
    mirror = mirror_records(spec)  # up to where it raises; the error compared is the one Keras raised
    steps = [_compare_step(call, start, planned[i] if i < len(planned) else None,
                           mirror[i] if i < len(mirror) else None, spec.directions)
             for i, (call, start) in enumerate(zip(observed.completed, observed.start_labels()))]
    error = None
    if observed.error_type is not None:
        assert observed.error_step is not None and observed.error_message is not None
        error = KerasError(observed.error_step, observed.error_type, observed.error_message)
    return KerasComparison(observed.version, observed.backend, steps, error,
                           raising[0] if raising else None,
                           len(planned), len(mirror))
