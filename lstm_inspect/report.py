"""Prediction against observation: the schedule's steps checked on the mirror's tensors.

`Inspection` is one streaming pass: iterate it for the step results (one at a time,
nothing kept but the previous call's final states), then read `summary`, `error`,
`verdict` and `exit_code`. This module never imports torch: a dry run stays fast, and
the comparisons use tensor methods on the records the mirror hands over.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .claims import Claim, Landmarks, judge
from .schedule import KerasError, Step, fix_for_partial_batch, predict_steps, predicted_error
from .spec import KerasVersion, ResetKind, Spec

EXIT_OK, EXIT_MISMATCH, EXIT_KERAS_RAISES = 0, 1, 3  # 2, usage errors, is the command line's


@dataclass(frozen=True)
class Observed:
    zero_slots: int  # slots whose initial states (every tensor, layer, direction) are all zeros
    carried_slots: int  # other slots whose initial states equal the previous call's final ones there
    max_abs_h0: float  # over every initial state tensor
    differing: tuple[str, ...] = ()  # when not verified: the tensors, by layer and direction, at fault

    def to_json(self) -> dict:
        fields = {"zero_slots": self.zero_slots, "carried_slots": self.carried_slots,
                  "max_abs_h0": self.max_abs_h0}
        return {**fields, "differing": list(self.differing)} if self.differing else fields


@dataclass(frozen=True)
class StepResult:
    step: Step
    observed: Observed | None  # None on a dry run and for the call where Keras raises
    verified: bool | None  # None when nothing was observed


@dataclass
class Summary:
    steps: int = 0
    reset_events: int = 0  # steps where any slot started from zeros
    slot_resets: int = 0
    slot_carries: int = 0
    checked_steps: int = 0  # steps whose start was read from the mirror's tensors
    verified: bool | None = None
    tensors_checked: list[str] = field(default_factory=list)  # e.g. "h[layer 0, backward]"

    def add(self, result: StepResult) -> None:
        self.steps += 1
        self.checked_steps += result.observed is not None
        if result.step.raises:
            return
        self.slot_resets += result.step.zero_slots
        self.slot_carries += result.step.carried_slots
        self.reset_events += result.step.zero_slots > 0

    def to_json(self) -> dict:
        return {"steps": self.steps, "reset_events": self.reset_events, "slot_resets": self.slot_resets,
                "tensors_checked": self.tensors_checked,
                "slot_carries": self.slot_carries, "checked_steps": self.checked_steps,
                "verified": self.verified}


def observe(step: Step, record, previous) -> tuple[Observed, bool]:
    """Read the initial state the mirror really passed and check it against the prediction.

    Every state tensor (h, and c for an LSTM) of every layer and direction is checked, and
    exactly: a carried state is the same values, not close ones.
    """
    initial = record.initial
    # Per slot: the largest |value| over every tensor, layer, direction and unit.
    row_max = initial[0].abs().amax(dim=(0, 2))
    for tensor in initial[1:]:
        row_max = row_max.maximum(tensor.abs().amax(dim=(0, 2)))
    zero = row_max == 0
    predicted_zero = step.source_slot < 0
    comparable = previous is not None and previous.final[0].shape == initial[0].shape
    zero_slots, max_abs, identical = _read_back(initial, previous.final if comparable else None, row_max, zero)
    same_slot = None
    if identical or zero_slots == len(zero):  # a slot all zeros counts as reset, never as carried
        carried_slots = len(zero) - zero_slots
    elif comparable:
        same_slot = ~zero
        for tensor, before in zip(initial, previous.final):
            same_slot &= (tensor == before).all(dim=2).all(dim=0)
        carried_slots = int(same_slot.sum())
    else:
        carried_slots = 0
    if step.source is None:
        verified = zero_slots == len(zero)
    elif previous is None or previous.call.index != step.source.index:
        verified = False
    elif same_slot is None and comparable and np.array_equal(step.source_slot, np.arange(len(zero))):
        verified = carried_slots == len(zero)
    else:
        carried = np.flatnonzero(~predicted_zero)
        sources = step.source_slot[carried]
        verified = (bool(zero[predicted_zero].all())
                    and all(bool((tensor[:, carried] == before[:, sources]).all())
                            for tensor, before in zip(initial, previous.final)))
    return Observed(zero_slots, carried_slots, max_abs), verified


def _read_back(initial, before, row_max, zero) -> tuple[int, float, bool]:
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


def differing_tensors(spec: Spec, step: Step, record, previous) -> tuple[str, ...]:
    """Which state tensors, layer by layer and direction by direction, break the prediction
    (only asked for a step that failed, so its cost does not matter)."""
    names = iter(tensor_names(spec))
    carried = np.flatnonzero(step.source_slot >= 0)
    zeros = np.flatnonzero(step.source_slot < 0)
    usable = previous is not None and step.source is not None and previous.call.index == step.source.index
    found = []
    for index, tensor in enumerate(record.initial):
        for row in range(tensor.shape[0]):
            name = next(names)
            wrong = bool(tensor[row, zeros].any()) if len(zeros) else False
            if len(carried):
                before = previous.final[index][row, step.source_slot[carried]] if usable else None
                wrong = wrong or before is None or not bool((tensor[row, carried] == before).all())
            if wrong:
                found.append(name)
    return tuple(found)


def tensor_names(spec: Spec) -> list[str]:
    """Every state tensor a slot holds, in the mirror's order."""
    directions = ["forward", "backward"] if spec.bidirectional else [""]
    return [f"{name}[layer {layer}{', ' + direction if direction else ''}]"
            for name in spec.cell.state_names for layer in range(spec.layers) for direction in directions]


def warnings_for(spec: Spec) -> list[str]:
    """Setups that run in Keras without a word but rarely do what their author meant."""
    if not spec.stateful:
        return []
    found = []
    if spec.shuffle and spec.carries:
        found.append("shuffle is on with a stateful layer: Keras still carries state slot by slot, "
                     "so each slot continues an unrelated sample; use --no-shuffle (shuffle=False), "
                     "as the layer's docs ask")
    if spec.epochs > 1 and spec.reset.kind == ResetKind.NEVER:
        found.append("states are carried across epochs: nothing resets them at an epoch boundary; "
                     "use --reset epoch (a callback resetting the RNN layers in on_epoch_begin)")
    if spec.bidirectional:
        found.append("stateful Bidirectional: the backward direction carries the state it had at the "
                     "previous batch's first timestep, so consecutive batches are not one long "
                     "bidirectional sequence (see the continuation evidence)")
    if spec.val_samples:
        found.append("validation runs through the training state: it starts from the state training "
                     "left and leaves its own state for what comes next")
    if spec.predict_samples:
        found.append("predict starts from the state fit left: reset the layer before predict "
                     "if its sequences do not continue the training data")
    return found


@dataclass
class Inspection:
    """One pass over Keras's steps for `spec`, checked on the mirror unless `dry_run`."""

    spec: Spec
    dry_run: bool = False
    device: str = "cpu"
    with_evidence: bool = False
    evidence_batch: int = 0
    max_steps: int | None = None  # check only the first steps on tensors; predict the rest
    summary: Summary = field(default_factory=Summary)
    error: KerasError | None = None
    mismatches: int = 0
    first_difference: tuple[int, tuple[str, ...]] | None = None  # step, and the tensors at fault
    evidence: list = field(default_factory=list)  # evidence.EvidenceItem, after the steps
    landmarks: Landmarks = field(default_factory=Landmarks)

    @property
    def warnings(self) -> list[str]:
        return warnings_for(self.spec)

    def __iter__(self) -> Iterator[StepResult]:
        if not self.dry_run:
            self.summary.tensors_checked = tensor_names(self.spec)
        for result in (self._predicted() if self.dry_run else self._checked()):
            self.summary.add(result)
            self.landmarks.add(result.step)
            self.mismatches += result.verified is False
            if self.first_difference is None and result.observed is not None and result.observed.differing:
                self.first_difference = (result.step.call.index, result.observed.differing)
            yield result
        if not self.dry_run:
            self.summary.verified = self.mismatches == 0
            if self.with_evidence:
                from .evidence import gather  # needs torch, like the run

                self.evidence = gather(self.spec, self.evidence_batch, self.landmarks.longest_chain, self.device)

    def _predicted(self, steps: Iterable[Step] | None = None) -> Iterator[StepResult]:
        for step in predict_steps(self.spec) if steps is None else steps:
            if step.raises:
                self.error = predicted_error(step, self.spec)
            yield StepResult(step, None, None)

    def _checked(self) -> Iterator[StepResult]:
        from . import run  # torch is imported here, only when the run needs it

        records = run.run_mirror(self.spec, run.resolve_device(self.device))
        previous = None
        steps = predict_steps(self.spec)
        for step in steps:
            if step.call.index == self.max_steps:
                records.close()
                yield from self._predicted(itertools.chain([step], steps))
                return
            try:
                record = next(records, None)
            except run.KerasStateError as raised:
                self.error = KerasError(step.call.index, raised.keras_type, str(raised))
                predicted = predicted_error(step, self.spec) if step.raises else None
                yield StepResult(step, None, None if predicted == self.error else False)
                return
            if step.raises or record is None:
                # The mirror ran a call where Keras raises (or stopped early): a disagreement.
                if step.raises:
                    self.error = predicted_error(step, self.spec)
                yield StepResult(step, None, False)
                return
            observed, verified = observe(step, record, previous)
            if not verified:
                observed = dataclasses.replace(observed, differing=differing_tensors(self.spec, step, record, previous))
            yield StepResult(step, observed, verified)
            previous = record
        try:
            if next(records, None) is not None:
                self.mismatches += 1  # the mirror made more calls than Keras does
        except run.KerasStateError:
            self.mismatches += 1  # ... and raised where Keras does not

    @property
    def claims(self) -> list[Claim]:
        return judge(self.spec, self.landmarks, {item.key: item.value for item in self.evidence})

    @property
    def evidence_failed(self) -> bool:
        return any(item.passed is False for item in self.evidence)

    @property
    def exit_code(self) -> int:
        if self.mismatches or self.evidence_failed:
            return EXIT_MISMATCH
        return EXIT_KERAS_RAISES if self.error else EXIT_OK

    @property
    def fix(self) -> str | None:
        return fix_for_partial_batch(self.spec) if self.error else None

    @property
    def verdict(self) -> str:
        return verdict(self.spec, self.summary, self.error)


@dataclass(frozen=True)
class Expectations:
    """What a CI script asserts about the run; None means "not asserted"."""

    reset_events: int | None = None
    slot_resets: int | None = None
    slot_carries: int | None = None
    error: bool | None = None

    def failures(self, inspection: Inspection) -> list[str]:
        summary = inspection.summary
        checks = [("reset events", self.reset_events, summary.reset_events, "reset event", None),
                  ("slot resets", self.slot_resets, summary.slot_resets, "slot reset", None),
                  ("slot carries", self.slot_carries, summary.slot_carries, "slot carry", "slot carries")]
        failed = []
        for name, expected, actual, _, _ in checks:
            if expected is not None and expected != actual:
                others = ", ".join(plural(count, one, many) for other, _, count, one, many in checks if other != name)
                failed.append(f"expected {expected:,} {name}, found {actual:,} ({others})")
        raised = inspection.error is not None
        if self.error is not None and self.error != raised:
            failed.append(f"expected Keras {'to raise' if self.error else 'not to raise'}, "
                          f"found {'an error at step %d' % inspection.error.step if raised else 'no error'}")
        return failed


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count:,} times")


def _version(spec: Spec) -> str:
    return "Keras 3" if spec.keras == KerasVersion.THREE else "Keras 2 (tf-keras)"


def verdict(spec: Spec, summary: Summary, error: KerasError | None) -> str:
    """The answer for this setup, in one or two plain sentences (three with an error)."""
    batches = math.ceil(spec.samples / spec.batch_size)
    if not spec.stateful:
        other_phases = [name for name, count in (("validation", spec.val_samples),
                                                 ("predict", spec.predict_samples)) if count]
        text = (f"{_version(spec)}, stateless {spec.layer_name}: states are reset after every batch, "
                f"{_times(batches)} per epoch; each batch holds up to {spec.batch_size:,} independent "
                f"states, one per sequence, so every one of the {spec.samples:,} sequences starts "
                "from zeros and nothing passes between sequences.")
        if other_phases:
            text += f" {' and '.join(other_phases).capitalize()} batches start from zeros too."
        return text
    text = (f"{_version(spec)}, stateful {spec.layer_name}: Keras never resets the state inside fit, "
            f"validation or predict; slot i of each batch starts from the final state of slot i of the previous "
            f"call, so sample j+{spec.batch_size:,} continues sample j ({spec.batch_size:,} parallel "
            "streams), "
            "not the last sample of the previous batch.")
    if spec.reset.kind == ResetKind.NEVER:
        text += " Nothing resets it here: each slot's state runs on through every phase."
    elif spec.reset.kind == ResetKind.EPOCH:
        text += (" Your callback zeroes all slots before each epoch's first batch, so each slot "
                 f"carries through the epoch's {plural(batches, 'training batch', 'training batches')}.")
    else:
        text += (f" Your callback zeroes all slots before every training batch whose index is a "
                 f"multiple of {spec.reset.every}, so each slot carries through at most "
                 f"{plural(spec.reset.every, 'training batch', 'training batches')}.")
    if spec.layers > 1:
        text += f" Each of the {spec.layers} layers keeps its own state per slot, reset and carried together."
    if spec.bidirectional:
        text += (" Both directions carry, but the backward one carries the state it had at the previous "
                 "batch's first timestep: this is not one long bidirectional pass.")
    if spec.shuffle and spec.carries:
        text += " Shuffle is on, so a slot carries its state into an unrelated sample."
    if error:
        text += (f" But Keras raises {error.type} at step {error.step}: a stateful layer needs every "
                 f"batch to hold exactly {spec.batch_size:,} samples.")
    return text
