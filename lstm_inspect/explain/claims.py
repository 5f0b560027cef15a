"""The common claims about Keras's state, judged TRUE or FALSE for this setup.

Each judgement cites what decides it: a step of the schedule (checked on the tensors)
or an evidence item. `Landmarks` picks those steps out of the stream as it passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.backwards import padding_runs_first, stacked_backwards, where_padding_runs
from ..core.choices import Phase, ResetKind
from ..core.facts import facts_for, given_states_win
from ..core.lengths import frames_caveat
from ..core.schedule import Step
from ..core.spec import Spec
from ..core.words import Terms
from .verdict import slot_counts, stateful_does_nothing


@dataclass(frozen=True)
class Claim:
    text: str
    true: bool
    because: str

    def to_json(self) -> dict[str, Any]:
        return {"claim": self.text, "verdict": "TRUE" if self.true else "FALSE", "because": self.because}


class Landmarks:
    """The few steps the claims cite, collected while the steps stream past."""

    def __init__(self) -> None:
        self.first_carry: Step | None = None
        self.epoch_start: Step | None = None  # first training step of epoch 1
        self.other_phase: Step | None = None  # first validation, evaluate or predict call after another
        self.longest_chain = 0  # most consecutive calls a slot's state runs through without a reset
        self._chain = 0

    def add(self, step: Step) -> None:
        if step.raises:
            return
        self._chain = self._chain + 1 if step.carried_slots else 1
        self.longest_chain = max(self.longest_chain, self._chain)
        call = step.call
        if self.first_carry is None and step.carried_slots:
            self.first_carry = step
        if self.epoch_start is None and call.phase == Phase.TRAIN and call.epoch == 1 and call.batch == 0:
            self.epoch_start = step
        if self.other_phase is None and call.phase != Phase.TRAIN and call.index > 0 and call.batch == 0:
            self.other_phase = step


def _started(step: Step) -> str:
    if step.source is not None and step.carried_slots:
        return f"step {step.call.index} ({step.call.label}) {', '.join(slot_counts(step))} from {step.source.label}"
    return f"step {step.call.index} ({step.call.label}) started all {step.zero_slots:,} slots from zeros"


def judge(spec: Spec, landmarks: Landmarks, evidence: dict[str, float | None], terms: Terms = Terms()) -> list[Claim]:
    """`evidence` maps evidence keys to measured values (None where one does not apply); `terms`
    names settings."""
    independence = evidence.get("batch_independence")
    within_batch = Claim("State is kept between the samples of a batch", False,
                         f"each sample rerun alone gives its in-batch output (max diff {independence:.1e}, "
                         "evidence 1): the samples of a batch are independent slots"
                         if independence is not None else
                         "each sample has its own slot; measured by evidence 1 on a real run")
    return [*_reset_claims(spec, landmarks), within_batch, _last_into_first(spec, landmarks, terms),
            _epoch_end(spec, landmarks, terms), _fresh_phases(spec, landmarks, terms),
            *(_padding_claims(spec, evidence.get("masking"), terms) if spec.padded else [])]


def _padding_claims(spec: Spec, moved: float | None, terms: Terms) -> list[Claim]:
    """What people say of padded sequences, for this setup's padding and mask (measured: core/lengths.py)."""
    measured = f" (max |final state - unpadded run's| {moved:.1e}, evidence 4)" if moved is not None else ""
    if spec.mask and stacked_backwards(spec):
        return [Claim("Padding does not change the state", False,
                      "stacked go_backwards layers are each given the mask unflipped while their inputs come flipped: "
                      f"above the first layer it masks other steps than the padding{measured}")]
    if spec.mask:
        unchanged = Claim("Padding does not change the state", True,
                          f"the mask skips it: a masked step holds the state, so each sample ends as unpadded"
                          f"{measured}")
        if spec.bidirectional:
            zeros = Claim("Masked steps output zeros", True, "Keras 3's Bidirectional sets zero_output_for_mask on "
                          "both directions (tf-keras's likewise): return_sequences gives zeros at masked steps")
        elif padding_runs_first(spec):
            zeros = Claim("Masked steps output zeros", True, f"{_how_padded(spec)}: every masked step runs before "
                          "the first valid one, where Keras has no output to repeat and gives zeros")
        else:
            zeros = Claim("Masked steps output zeros", False, "a masked step repeats the last valid output (zeros "
                          "only with zero_output_for_mask=True, or before the first valid step)")
        step = "first valid step, which runs last" if spec.go_backwards else "last valid step"
        last = Claim("The final state is the state after the last timestep, padding included", False,
                     f"masked steps are skipped: it is the state after each sample's {step}")
        return [unchanged, zeros, last]
    padding = "the zeros" if spec.data_mask is None else f"the steps of {spec.mask_value!r}"
    return [Claim("Padding does not change the state", False,
                  f"nothing masks it: {padding} run as input and move the state{measured}; "
                  f"keras.layers.Masking(mask_value={spec.mask_value!r}) before the layer "
                  f"({terms.setting('mask', True)}) skips them{frames_caveat(spec)}"),
            Claim("Masked steps output zeros", False, "nothing is masked: each padded step gives an output of its "
                                                      f"own, computed from {padding}"),
            Claim("The final state is the state after the last timestep, padding included", True,
                  "nothing masks the padding: the state runs on through it"
                  + (", " if padding_runs_first(spec) else " ") + where_padding_runs(spec))]


def _how_padded(spec: Spec) -> str:
    """How the padding comes to run first (padding_runs_first)."""
    if spec.data_mask is not None:
        place = "after" if spec.go_backwards else "before"
        return (f"the data's masked steps all lie {place} each row's valid ones"
                + ", which run backwards" * spec.go_backwards)
    return "post-padded and run backwards" if spec.go_backwards else "pre-padded"


def _carries_nothing(spec: Spec) -> str | None:
    """Why no call passes state to another, if none does: stateless, or a backend that drops it."""
    if not spec.any_stateful and spec.hand_carried:
        return None  # the user carries the states, from call to call
    if given_states_win(spec):
        return None if spec.hand_carried else ("every call is given zeros as its initial states (initial_state=), "
                                                "which Keras 3 starts from instead of the carried state")
    if not spec.any_stateful:
        return "a stateless layer starts every call, in every phase, from zeros"
    if not facts_for(spec).carries:
        return f"{stateful_does_nothing(spec)}: every call starts from zeros"
    return None


def _reset_claims(spec: Spec, landmarks: Landmarks) -> list[Claim]:
    """"Reset after each batch" and "each sequence starts from zeros": one fact, two wordings."""
    if _carries_nothing(spec):
        return [Claim("States are reset after each batch", True,
                      "every step started all its slots from zeros (see the table)"),
                Claim("Each sequence starts from zeros (reset after each sample)", True,
                      "the same fact seen from the other side: one slot per sequence, and "
                      "every slot of every batch starts from zeros")]
    # A callback resetting before every training batch does not run for validation or predict.
    every_batch = spec.reset.kind == ResetKind.EVERY and spec.reset.every == 1 and landmarks.first_carry is None
    carry = landmarks.first_carry
    cited = _started(carry) if carry else "nothing was carried in this run"
    never = "Keras never resets a stateful layer" if spec.any_stateful else "you carry the states by hand"
    return [Claim("States are reset after each batch", every_batch,
                  "only because your callback resets before every batch" if every_batch
                  else f"{never}: {cited}"),
            Claim("Each sequence starts from zeros (reset after each sample)", every_batch,
                  "your callback zeroes every slot before each batch" if every_batch
                  else f"a slot continues the state of the sample before it: {cited}")]


def _last_into_first(spec: Spec, landmarks: Landmarks, terms: Terms) -> Claim:
    carry = landmarks.first_carry
    source = carry.source if carry else None
    one_slot = source is not None and spec.batch_size == 1
    if carry is not None and source is not None and not one_slot:
        slot0_sample = int(carry.call.slot_samples[0])
        last_of_source = f"{source.phase}:{source.samples[-1]}"
        mapping = (f"slot i continues slot i: at step {carry.call.index} sample {slot0_sample} in slot 0 "
                   f"starts from {(carry.start_labels() or ['?'])[0]}, not from {last_of_source}, the last "
                   "sample of the previous batch")
    elif one_slot:
        mapping = (f"with {terms.setting('batch_size', 1)} the only slot is both the last and the first: "
                   "here, and only here, the claim holds")
    else:
        mapping = "nothing is carried between batches at all" if _carries_nothing(spec) else \
            "slot i continues slot i of the previous call (no carry happened in this run)"
    return Claim("Stateful carries the last sample of one batch into the first of the next", one_slot, mapping)


def _epoch_end(spec: Spec, landmarks: Landmarks, terms: Terms) -> Claim:
    claim = "States are reset at the end of each epoch"
    if _carries_nothing(spec):
        return Claim(claim, True, "they are reset after every batch, the epoch's last one included")
    if spec.reset.kind in (ResetKind.EPOCH, ResetKind.EVERY):
        return Claim(claim, True, f"only by your {terms.setting('reset', str(spec.reset))} callback, at the "
                                  "next epoch's first batch")
    more = (f"fit(epochs=2) in {terms.name('workflow')}" if spec.workflow is not None
            else terms.setting('epochs', 2))
    return Claim(claim, False, _started(landmarks.epoch_start) if landmarks.epoch_start else
                 f"nothing in fit resets a stateful layer (one epoch here: add {more} to see it)")


def _fresh_phases(spec: Spec, landmarks: Landmarks, terms: Terms) -> Claim:
    claim = "Validation and predict start from a fresh state"
    reason = _carries_nothing(spec)
    if reason:
        return Claim(claim, True, reason)
    other = landmarks.other_phase
    if other is not None and not other.carried_slots and (spec.reset.validation or spec.reset.predict):
        return Claim(claim, True, f"only because your callback resets in on_test_begin or on_predict_begin: "
                                  f"{_started(other)}")
    more = (f"an evaluate or predict after another call in {terms.name('workflow')}" if spec.workflow is not None
            else f"{terms.name('val_samples')} or {terms.name('predict_samples')}")
    return Claim(claim, False, _started(other) if other else
                 f"Keras does not reset before evaluate or predict (add {more} to see it)")
