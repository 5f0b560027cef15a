"""Reading the mirror's tensors and checking them against the schedule's prediction.

Every state tensor (h, and c for an LSTM) of every layer and direction is checked, and
exactly: a carried state is the same values, not close ones. Tensor methods only, on the
records the mirror hands over: this module never imports torch itself.
"""

from __future__ import annotations

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
    assert source_slot is not None, "a raising step runs no call to observe"
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
    assert source_slot is not None, "a raising step runs no call to observe"
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
