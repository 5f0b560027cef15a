"""Reading the mirror's tensors and checking them against the schedule's prediction.

Every state tensor (h, and c for an LSTM) of every layer and direction is checked, and
exactly: a carried state is the same values, not close ones. `Window` checks a run of plain
steps (each from zeros, or carrying every slot of the call just before) a few hundred at a
time, in a few tensor operations; `observe` any step on its own. Tensor methods only, on the
records the mirror hands over, but for stacking a window: torch is loaded then, by the run.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.schedule import Step
from ..core.spec import Spec

if TYPE_CHECKING:
    from ..mirror.module import States
    from ..mirror.run import CallRecord


@dataclass(frozen=True)
class Observed:
    zero_slots: int  # slots whose initial states (every tensor, layer, direction) are all zeros
    carried_slots: int  # other slots whose initial states equal the previous call's final ones there
    max_abs_initial: float  # over every initial state tensor (h, and c for an LSTM)
    differing: tuple[str, ...] = ()  # when not verified: the tensors, by layer and direction, at fault

    def to_json(self) -> dict[str, Any]:
        fields = {"zero_slots": self.zero_slots, "carried_slots": self.carried_slots,
                  "max_abs_h0": self.max_abs_initial}  # schema 1 keeps its first name
        return {**fields, "differing": list(self.differing)} if self.differing else fields



def observe(step: Step, record: CallRecord, previous: CallRecord | None) -> tuple[Observed, bool]:
    """Read the initial state the mirror really passed and check it against the prediction."""
    source_slot = step.source_slot
    assert source_slot is not None, "a raising step runs no call to observe"  # pragma: no mutate (words for us)
    initial = _flat(record.initial)
    # Per slot: the largest |value| over every tensor, layer, direction and unit.
    row_max = initial[0].abs().amax(dim=(0, 2))
    for tensor in initial[1:]:
        row_max = row_max.maximum(tensor.abs().amax(dim=(0, 2)))
    zero = row_max == 0
    predicted_zero = source_slot < 0
    final = _flat(previous.final) if previous is not None else None
    before = final if final is not None and final[0].shape == initial[0].shape else None
    zero_slots, max_abs, identical = _read_back(initial, before, row_max, zero)
    same_slot = None
    if identical or zero_slots == len(zero):  # a slot all zeros counts as reset, never as carried
        carried_slots = len(zero) - zero_slots
    elif before is not None:
        same_slot = ~zero
        for tensor, last in zip(initial, before):
            same_slot &= (tensor == last).all(dim=2).all(dim=0)
        carried_slots = int(same_slot.sum())
    else:
        carried_slots = 0
    if len(zero) != len(source_slot):
        verified = False  # the mirror ran another number of slots than Keras runs (a broadcast where none is)
    elif step.source is None:
        verified = zero_slots == len(zero)
    elif previous is None or previous.call.index != step.source.index:
        verified = False
    elif same_slot is None and before is not None and np.array_equal(source_slot, np.arange(len(zero))):
        # Bit for bit the previous final states: carried, a slot whose state stayed zeros too (say,
        # masked at every step from zeros).
        verified = identical
    else:
        carried = np.flatnonzero(~predicted_zero)
        sources = source_slot[carried]
        verified = (bool(zero[predicted_zero].all())
                    and all(bool((tensor[:, carried] == last[:, sources]).all())
                            for tensor, last in zip(initial, final or ())))
    return Observed(zero_slots, carried_slots, max_abs), verified


# Steps checked together: enough that a loop of small calls pays a few tensor operations per
# window, not per step; few enough that the records held and the results' delay stay small. A
# window of large states holds fewer: at most WINDOW_VALUES state values (2 MB of float32 held and
# stacked), so that memory stays flat whatever the batch size, and the window's copies stay small
# beside the cache the layer's own work runs in (a larger one slowed bench part (a) by some 10%).
WINDOW = 256
WINDOW_VALUES = 1 << 17


@dataclass(frozen=True)
class Checked:
    """A step of a window, checked: the call before it (its source when it carries) and the finding."""

    step: Step
    record: CallRecord
    previous: CallRecord
    observed: Observed
    verified: bool


class Window:
    """Plain steps, checked together when the window is full or a step that is not plain comes.

    A plain step starts every slot from zeros, or carries every slot from the same slot of the
    call just before; its states have that call's shape. Checked as `observe` checks it: the
    same counts, maximum and verdict, from stacked tensors read back once."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.records: list[CallRecord] = []
        self.previous: list[CallRecord] = []

    def takes(self, step: Step, record: CallRecord, source: CallRecord | None, last: CallRecord | None) -> bool:
        """Whether `step` is plain (`source`: the record it carries from, `last`: the call before)."""
        source_slot = step.source_slot
        if source_slot is None or last is None:
            return False
        shape = record.initial[0].shape
        if len(source_slot) != shape[1] or any(a.shape != b.shape for a, b in zip(record.initial, last.final)):
            return False  # the first call of a model of another batch size
        if self.records and self.records[0].initial[0].shape != shape:
            return False
        if step.source is None:
            return True
        return (source is last and step.source.index == last.call.index
                and source_slot.tobytes() == _identity(len(source_slot)).tobytes())

    def add(self, step: Step, record: CallRecord, last: CallRecord) -> bool:
        """Hold a plain step; whether the window is full."""
        self.steps.append(step)
        self.records.append(record)
        self.previous.append(last)
        held = len(self.steps) * sum(state.numel() for state in record.initial)
        return len(self.steps) >= WINDOW or held >= WINDOW_VALUES

    def flush(self) -> Iterator[Checked]:
        """The held steps, checked, in order; the window empty again."""
        if not self.steps:
            return
        import torch  # loaded already: the run that made the records needs it

        steps, records, previous = self.steps, self.records, self.previous
        self.steps, self.records, self.previous = [], [], []
        row_max = same = None
        for index in range(len(records[0].initial)):
            initial = _rows(torch.stack([record.initial[index] for record in records]))
            before = _rows(torch.stack([record.final[index] for record in previous]))
            tensor_max = initial.abs().amax(dim=(1, 3))  # (steps, slots)
            tensor_same = (initial == before).all(dim=3).all(dim=1)
            row_max = tensor_max if row_max is None else row_max.maximum(tensor_max)
            same = tensor_same if same is None else same & tensor_same
        assert row_max is not None and same is not None
        zero = row_max == 0
        columns = zero.sum(dim=1), row_max.amax(dim=1), same.all(dim=1), (same & ~zero).sum(dim=1)
        # One read back for the window (on a GPU, one wait for the device).
        stats = torch.stack([column.to(row_max.dtype) for column in columns], dim=1).tolist()
        slots = records[0].initial[0].shape[1]
        for step, record, before_it, (zeros, max_abs, identical, same_nonzero) in zip(steps, records, previous,
                                                                                         stats):
            zero_slots = int(zeros)
            carried = slots - zero_slots if identical or zero_slots == slots else int(same_nonzero)
            verified = zero_slots == slots if step.source is None else bool(identical)
            yield Checked(step, record, before_it, Observed(zero_slots, carried, max_abs), verified)


def _rows(states: Any) -> Any:
    """Stacked states (steps, layers * directions, slots, ...) with each slot's values in one row."""
    return states if states.dim() == 4 else states.flatten(3)


@functools.cache
def _identity(slots: int) -> np.ndarray:
    """0, 1, ..., slots - 1: each slot from the same slot."""
    return np.arange(slots)


def _flat(states: States) -> States:
    """Each slot's state as one row of values: a ConvLSTM2D's image too."""
    return tuple(state.flatten(2) for state in states)


def _read_back(initial: States, before: States | None, row_max: Any, zero: Any) -> tuple[int, float, bool]:
    """(zero slots, max |initial state|, whether every tensor is bit for bit `before`).

    On a GPU each value read back waits for the device, so everything is reduced there and
    read back at once; on the CPU one fused torch.equal per tensor is cheapest.
    """
    if not initial[0].is_cuda:
        identical = before is not None and all(t.equal(p) for t, p in zip(initial, before))
        return int(zero.sum()), float(row_max.max()), identical
    stats = row_max.new_zeros(3)
    stats[0] = zero.sum()
    stats[1] = row_max.max()
    if before is not None:
        same = (initial[0] == before[0]).all()
        for tensor, previous in zip(initial[1:], before[1:]):
            same &= (tensor == previous).all()
        stats[2] = same
    zeros, max_abs, same = stats.tolist()
    return int(zeros), max_abs, same == 1.0


def differing_tensors(spec: Spec, step: Step, record: CallRecord, previous: CallRecord | None) -> tuple[str, ...]:
    """Which state tensors, layer by layer and direction by direction, break the prediction
    (only asked for a step that failed, so its cost does not matter)."""
    source_slot = step.source_slot
    assert source_slot is not None, "a raising step runs no call to observe"  # pragma: no mutate (words for us)
    names = iter(tensor_names(spec))
    carried = np.flatnonzero(source_slot >= 0)
    zeros = np.flatnonzero(source_slot < 0)
    usable = previous if previous is not None and step.source is not None \
        and previous.call.index == step.source.index else None
    found = []
    for index, tensor in enumerate(record.initial):
        for row in range(tensor.shape[0]):
            name = next(names)
            wrong = bool(tensor[row, zeros].any()) if len(zeros) else False
            if len(carried):
                before = usable.final[index][row, source_slot[carried]] if usable is not None else None
                wrong = wrong or before is None or not bool((tensor[row, carried] == before).all())
            if wrong:
                found.append(name)
    return tuple(found)


def tensor_names(spec: Spec) -> list[str]:
    """Every state tensor a slot holds, in the mirror's order."""
    directions = ["forward", "backward"] if spec.bidirectional else [""]
    return [f"{name}[layer {layer}{', ' + direction if direction else ''}]"
            for name in spec.cell.state_names for layer in range(spec.layers) for direction in directions]
