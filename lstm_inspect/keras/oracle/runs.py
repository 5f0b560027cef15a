"""What real Keras did, call by call: each layer call's initial and final states as Keras's own
tensors hold them, and what it raised. Plain data (numpy), carried between processes as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.choices import Phase


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


class OracleError(RuntimeError):
    """The process running real Keras failed (not Keras raising inside the run: that is observed)."""
