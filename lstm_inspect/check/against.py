"""Real Keras's run as data, and its comparison with the schedule and the mirror, step by step:
the schedule's starts against Keras's, the mirror's tensors against Keras's. Plain numpy: the
oracle (`lstm_inspect.keras.oracle`) runs Keras and hands its run over in these types."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.choices import Phase
from ..core.facts import KerasError
from ..core.order import Call
from ..core.schedule import Step, keras_steps
from ..core.spec import Spec

if TYPE_CHECKING:
    from ..mirror.run import CallRecord  # imports torch, which a dry run never needs


@dataclass
class KerasCall:
    """One layer call as Keras made it. States are tuples in the cell's order (h, c for an
    LSTM), each stacked over the RNN layers in torch's order (layer by layer, forward then
    backward): shape (layers * directions, slots, units)."""

    phase: Phase
    epoch: int
    batch: int
    samples: np.ndarray
    stream: Phase = Phase.TRAIN  # the data the samples index, as the schedule's call says
    initial: tuple[np.ndarray, ...] | None = None
    final: tuple[np.ndarray, ...] | None = None
    # Stateless, first call only: the model's output for its first slots' samples, each run
    # alone (a batch of one, from zeros), for comparison with their outputs inside the batch.
    alone_output: np.ndarray | None = None

    @property
    def slot_samples(self) -> np.ndarray:
        """The sample each state row ran: one lone sample runs in every row where TensorFlow
        broadcasts it."""
        rows = len(self.samples) if self.initial is None else self.initial[0].shape[1]
        return np.repeat(self.samples, rows) if len(self.samples) == 1 else self.samples

    def to_json(self) -> dict[str, Any]:
        def arrays(states: tuple[np.ndarray, ...] | None) -> list[Any] | None:
            return None if states is None else [state.tolist() for state in states]

        return {"phase": self.phase.value, "epoch": self.epoch, "batch": self.batch,
                "samples": self.samples.tolist(), "stream": self.stream.value, "initial": arrays(self.initial),
                "final": arrays(self.final),
                "alone_output": None if self.alone_output is None else self.alone_output.tolist()}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> KerasCall:
        def arrays(states: list[Any] | None) -> tuple[np.ndarray, ...] | None:
            return None if states is None else tuple(np.array(state, dtype=np.float32) for state in states)

        alone = item["alone_output"]
        return cls(Phase(item["phase"]), item["epoch"], item["batch"], np.array(item["samples"], dtype=np.int64),
                   Phase(item["stream"]), arrays(item["initial"]), arrays(item["final"]),
                   None if alone is None else np.array(alone, dtype=np.float32))

    def output(self, directions: int) -> np.ndarray:
        """The model's output inside the batch: the last layer's final h, directions side by side."""
        assert self.final is not None, "the call did not complete"
        return np.concatenate(list(self.final[0][-directions:]), axis=1)


@dataclass
class KerasRun:
    version: str
    backend: str
    calls: list[KerasCall] = field(default_factory=list)
    error_step: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    predict_rows: int | None = None  # rows predict returned
    error_in_batch: bool = False  # the raising call had begun (its batch-begin callback ran)

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "backend": self.backend, "calls": [call.to_json() for call in self.calls],
                "error_step": self.error_step, "error_type": self.error_type, "error_message": self.error_message,
                "predict_rows": self.predict_rows, "error_in_batch": self.error_in_batch}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> KerasRun:
        return cls(item["version"], item["backend"], [KerasCall.from_json(call) for call in item["calls"]],
                   item["error_step"], item["error_type"], item["error_message"], item["predict_rows"],
                   item["error_in_batch"])

    @property
    def completed(self) -> list[KerasCall]:
        return [call for call in self.calls if call.final is not None]

    def start_labels(self) -> list[list[str]]:
        """Per completed call, each slot's start as the schedule writes it: "zeros" or
        "<data>:<sample>" of the slot of an earlier call (the one before first, then back
        from there) whose final states (every tensor, layer and direction) equal it exactly
        ("?" if none does)."""
        labels = []
        done: list[KerasCall] = []
        for call in self.completed:
            assert call.initial is not None
            slots = []
            for slot in range(call.initial[0].shape[1]):
                start = [state[:, slot] for state in call.initial]
                if not any(state.any() for state in start):
                    slots.append("zeros")
                    continue
                slots.append(next((found for before in reversed(done) if (found := _carried_from(before, slot, start))),
                                  "?"))
            labels.append(slots)
            done.append(call)
        return labels


def _carried_from(before: KerasCall, slot: int, start: list[np.ndarray]) -> str | None:
    """"<data>:<sample>" of the row of `before` whose final states equal `start`, if one does."""
    assert before.final is not None
    rows = before.final[0].shape[1]
    # Slot i first: where Keras carries from, so the search is short when it does.
    for j in [slot] * (slot < rows) + list(range(rows)):
        if all(np.array_equal(state[:, j], now) for state, now in zip(before.final, start)):
            return f"{before.stream}:{before.slot_samples[j]}"
    return None


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


def compare(spec: Spec, observed: KerasRun, mirror: list[CallRecord]) -> KerasComparison:
    """Every call Keras completed against the schedule's step and the mirror's call (`mirror`: its
    calls up to where it raises) of the same index."""
    schedule = list(keras_steps(spec))
    planned = [step for step in schedule if not step.raises]
    raising = [step.error for step in schedule if step.error is not None]
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
