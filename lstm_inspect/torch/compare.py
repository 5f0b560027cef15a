"""Whether a watched PyTorch loop does what a Keras setup does: call for call, each slot starting
where Keras's schedule (core/schedule.py) starts it, from zeros or from slot j of the call before;
or the first call that differs, and why."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any, Protocol

from ..check.inspection import StepResult
from ..core.choices import Phase
from ..core.facts import facts_for
from ..core.schedule import Step, keras_steps
from ..core.spec import Spec
from ..core.words import plural


class Watched(Protocol):
    """What a comparison reads of a TorchProbe."""

    modules: list[tuple[str, Any]]
    shapes: list[tuple[int, ...]]
    findings: list[Any]

    def steps(self) -> Iterator[StepResult]: ...


@dataclass(frozen=True)
class Comparison:
    """`matches`: every call agreed; else `first_difference` is the index of the first that did not."""

    matches: bool
    calls: int  # the calls compared
    first_difference: int | None
    text: str

    def __bool__(self) -> bool:
        return self.matches

    def __str__(self) -> str:
        return self.text


def compare(probe: Watched, spec: Spec) -> Comparison:
    name = (f"{facts_for(spec).name}, {'stateful' if spec.stateful else 'stateless'}, "
            f"shuffle={spec.shuffle.keras_value!r}, reset={spec.reset}")
    layout = _batch_first_difference(probe, spec)
    if layout:
        return Comparison(False, 0, 0, f"your loop is not {name}: {layout}")
    reordered = next((finding for finding in probe.findings if finding.key == "shuffled"), None)
    index = -1
    for index, (ours, theirs) in enumerate(zip_longest(probe.steps(), keras_steps(spec))):
        if ours is None or theirs is None:
            more = "your loop stops" if ours is None else "your loop makes more calls"
            total = index if theirs is None else sum(1 for _ in probe.steps())
            return Comparison(False, index, index, f"your loop is not {name}: {more} after {plural(index, 'call')}, "
                              f"Keras's {'has ' + plural(index, 'step') if theirs is None else 'goes on'} "
                              f"(your loop made {plural(total, 'call')})")
        why = _difference(ours.step, theirs)
        if reordered is not None and not spec.shuffle and ours.step.call.label == reordered.call:
            why = "your rows come in another order than in the first pass, where Keras's shuffle=False keeps it"
        if why:
            return Comparison(False, index, index, f"your loop is not {name}: call {index} ({ours.step.call.label}, "
                              f"Keras's {theirs.call.label}) differs: {why}")
    calls = index + 1
    return Comparison(True, calls, None, f"your loop is {name}: {plural(calls, 'call')} agree slot for slot")


def _batch_first_difference(probe: Watched, spec: Spec) -> str:
    """A module without batch_first given (B, T, F) inputs reads them as T = B steps of batch T."""
    b, t = spec.batch_size, spec.timesteps
    for (_, module), shape in zip(probe.modules, probe.shapes[:1]):
        if not module.batch_first and len(shape) == 3 and shape[:2] == (b, t) and b != t:
            return (f"your {type(module).__name__} is batch_first=False and reads x of {shape} as {b} steps of a "
                    f"batch of {t}, so the state flows from sample to sample; build it with batch_first=True")
    return ""


def _difference(ours: Step, theirs: Step) -> str:
    """Why an observed step does not start its slots as Keras's does, or ""."""
    if theirs.error is not None:
        return f"Keras raises there: {theirs.error.message}"
    if (ours.call.phase == Phase.TRAIN) != (theirs.call.phase == Phase.TRAIN):
        return f"Keras {'trains' if theirs.call.phase == Phase.TRAIN else 'does not train'} there"
    assert ours.source_slot is not None and theirs.source_slot is not None
    if len(ours.source_slot) != len(theirs.source_slot):
        return f"Keras's batch holds {len(theirs.source_slot)} slots, your call {len(ours.source_slot)}"
    for slot, (found, expected) in enumerate(zip(ours.source_slot.tolist(), theirs.source_slot.tolist())):
        if found != expected:
            return f"slot {slot} starts {_start(expected, 'Keras')}, in your loop {_start(found, '')}"
    return ""


def _start(source: int, who: str) -> str:
    where = {-1: "from zeros", -2: "from other states"}.get(source, f"from slot {source} of the call before")
    return f"{where} in {who}" if who else where
