"""The steps Keras takes, and what it does with each slot's state (pure numpy, no torch).

`keras_steps` adds Keras's state rules to the data order (`order.iter_invocations`): each slot
starts from zeros or from the previous call's final state of the same slot; a stateful call
with a batch that is not exactly the state's batch size raises, and that step carries the
error. Lazy: one batch at a time. The rules come from `facts` and `hooks`.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from .choices import Phase
from .facts import (
    OPEN_TRACE_WHY,
    Facts,
    KerasError,
    Traces,
    facts_for,
    first_trace_error,
    keras_error,
    validation_split_message,
)
from .hooks import resets_before
from .order import Call, Invocation, iter_invocations
from .spec import Spec
from .workflow import Kind, Op


class Start(StrEnum):
    ZEROS = "zeros"
    CONTINUED = "continued"  # from sample j - B of the same data: the layout Keras expects
    UNRELATED = "unrelated"  # carried from any other sample (shuffle, epoch or phase boundary)


@dataclass(frozen=True, eq=False)
class Step:
    """A call with the predicted start of every slot."""

    call: Call
    source: Call | None  # the call whose final states the carried slots start from
    source_slot: np.ndarray | None  # per slot: slot of `source`, -1 for zeros; None if Keras raises
    error: KerasError | None = None  # what Keras raises at this step, instead of running it
    stride: int = 0  # how far back in its data a carried sample's state comes from (0: the source's size)
    # What a run must keep to check the steps after this one: whether a later step may start
    # from this call's final states, and the earliest call whose final states one still may.
    kept: bool = True
    keep_from: int = 0
    given: bool = False  # a stateful layer's slots that start from zeros start from zeros it was given (initial_state=)

    def __post_init__(self) -> None:
        if (self.error is None) == (self.source_slot is None):
            raise ValueError("a step either raises (error) or starts its slots (source_slot), not both")

    @property
    def raises(self) -> bool:
        return self.error is not None

    @functools.cached_property
    def zero_slots(self) -> int:  # read by every view and count of the step: counted once
        return 0 if self.source_slot is None else int(np.count_nonzero(self.source_slot < 0))

    @property
    def carried_slots(self) -> int:
        return 0 if self.source_slot is None else len(self.source_slot) - self.zero_slots

    @property
    def other_slots(self) -> int:
        """Slots starting from neither zeros nor a carried state: only a real model shows them."""
        return 0

    @property
    def seen_on_model(self) -> bool:
        """Read from a real model (StateProbe), whose data indices are unknown: `samples` are slots."""
        return False

    def start_labels(self) -> list[str] | None:
        """Per slot: "zeros" or "<data>:<sample>" of the sample whose final state it starts from."""
        if self.source_slot is None:
            return None
        if self.source is None:
            return [Start.ZEROS.value] * len(self.source_slot)
        data, sources = str(self.source.stream), self.source.slot_samples
        return [f"{data}:{sources[s]}" if s >= 0 else Start.ZEROS.value for s in self.source_slot.tolist()]

    def start_kinds(self) -> np.ndarray:
        """Per slot Start value (as strings); callers skip raising steps. A carry continues its
        sample where it comes from the same data, `stride` samples back, and not across fit's
        epochs (each epoch runs the data again)."""
        assert self.source_slot is not None, "a raising step starts no slot"
        kinds = np.full(len(self.source_slot), Start.ZEROS.value, dtype=object)
        carried = self.source_slot >= 0
        if self.source is None or not carried.any():
            return kinds
        kinds[carried] = Start.UNRELATED.value
        source, call = self.source, self.call
        broadcast = source.broadcast or call.broadcast
        # steps_per_epoch: a pass over the training data may go on into the next epoch.
        same_pass = source.invocation != call.invocation or source.epoch == call.epoch or (
            source.phase == call.phase == Phase.TRAIN and source.data_pass == call.data_pass)
        if source.stream == call.stream and same_pass and not broadcast:
            predecessor = source.samples[self.source_slot[carried]]
            layout = predecessor == call.samples[carried] - (self.stride or len(source.samples))
            kinds[np.flatnonzero(carried)[layout]] = Start.CONTINUED.value
        return kinds


def keras_steps(spec: Spec) -> Iterator[Step]:
    """Keras's steps for the setup, each slot's start predicted; ends with the raising step
    (its `error` set) when Keras would raise."""
    facts = facts_for(spec)
    hand_carry = spec.hand_carried
    held: Call | None = None  # the call whose final states the model's state holds
    zeroed: frozenset[int] = frozenset()  # the slots of them reset_state(slots=...) zeroed since
    returned: list[Call] = []  # the calls of the last predict, whose states it returned
    ends: list[int] = []  # where each of them ends among its samples
    traces = Traces(facts)  # TensorFlow: the model's compiled functions traced so far
    for invocation, calls in iter_invocations(spec):
        op = invocation.op
        if not op.kind.runs_batches:
            # reset_state(), and a new model (twin, loaded), start from zeros; reset_state(slots=...)
            # those slots only (Keras: state.assign(state * keep)).
            held, zeroed = (held, zeroed | set(op.slots)) if op.slots and held is not None else (None, frozenset())
            if op.kind != Kind.RESET_STATE:
                traces.new_model()
            continue
        if empty := spec.empty_split_part(op):
            yield _split_refused(spec, op, next(calls), empty)
            return
        predicts = op.kind in (Kind.PREDICT, Kind.PREDICT_ON_BATCH) and hand_carry
        made: list[Call] = []
        at = 0  # where the call's first sample is among the invocation's
        for call in calls:
            # What a checking run keeps: the held state; with states carried by hand, the last
            # predict's calls (still read) and this predict's (read by the next).
            first = min([c.index for c in returned[:1] + made[:1]], default=call.index)
            fixed = traces.fixes_call(op, call, spec.samples_of(op, call.phase), op.batch_size or invocation.batch_size)
            step = _step(spec, facts, invocation, call, held, (returned, ends, at), fixed,
                         kept=invocation.stateful or predicts, keep_from=first if hand_carry else call.index)
            yield _zeroed(step, held, zeroed)
            if step.raises:
                return
            held, zeroed = step.call, frozenset()
            at += len(call.samples)
            if predicts:
                made.append(step.call)
        if predicts:
            returned, ends = made, list(itertools.accumulate(len(call.samples) for call in made))


def _step(spec: Spec, facts: Facts, invocation: Invocation, call: Call, held: Call | None,
          handed: tuple[list[Call], list[int], int], fixed: bool | None, kept: bool, keep_from: int) -> Step:
    """`handed`: the calls of the last predict, whose states it returned, where each ends among
    its samples, and where `call`'s first sample is among its invocation's."""
    op, model_batch, stateful = invocation.op, invocation.batch_size, invocation.stateful
    returned, ends, at = handed
    slots = len(call.samples)
    if stateful and model_batch == 1 and fixed is False and facts.one_row_state_loop_error:
        return Step(call, None, None, dataclasses.replace(_raised(spec, facts, invocation, call), why=OPEN_TRACE_WHY))
    if stateful and slots != model_batch:
        if fixed:
            kind, message, pattern = first_trace_error(spec, facts, model_batch, slots)
            # TensorFlow traces inside the batch: after its begin callback.
            when = f"inside the first batch, after its {_BATCH_BEGIN[call.phase]} callback" if call.index == 0 else ""
            return Step(call, None, None, KerasError(call.index, kind, message, pattern, when))
        if slots == 1 and facts.broadcasts_one:
            call = dataclasses.replace(call, broadcast=model_batch)
        else:
            return Step(call, None, None, _raised(spec, facts, invocation, call))
    resets = resets_before(spec.reset, op.kind, call.phase, call.batch)
    # Given states (the model takes them as inputs) win over the carry, but in tf-keras, which
    # keeps its own while they are not all zeros (held since the last reset).
    carry_wins = not spec.takes_states or facts.carry_beats_given_states
    if stateful and facts.carries and held is not None and not resets and carry_wins:
        return Step(call, held, np.arange(model_batch), kept=kept, keep_from=keep_from)
    if op.hand_carried and returned:
        # Sample k starts from the states the previous predict returned for its sample k, in the
        # batch of it that holds k (Spec: one batch holds the whole of each batch of this one).
        source, first = _holding(returned, ends, at)
        return Step(call, source, np.arange(at - first, at - first + slots), stride=op.samples, kept=kept,
                    keep_from=keep_from)
    return Step(call, None, np.full(len(call.slot_samples), -1), kept=kept, keep_from=keep_from,
                given=stateful and spec.takes_states)


def _zeroed(step: Step, held: Call | None, zeroed: frozenset[int]) -> Step:
    """The step with the slots a reset_state(slots=...) zeroed starting from zeros, where it
    carries the state the model holds (not states given or handed back)."""
    if not zeroed or step.source is not held or step.source_slot is None:
        return step
    source_slot = step.source_slot.copy()
    source_slot[[slot for slot in zeroed if slot < len(source_slot)]] = -1
    return dataclasses.replace(step, source=None if bool((source_slot < 0).all()) else held, source_slot=source_slot)


def _holding(calls: list[Call], ends: list[int], at: int) -> tuple[Call, int]:
    """The call of `calls` (batches in order, ending at `ends` among their samples) that holds
    sample `at` of theirs, and where its first sample is."""
    batch = bisect.bisect_right(ends, at)
    return calls[batch], ends[batch - 1] if batch else 0


_BATCH_BEGIN = {Phase.TRAIN: "on_train_batch_begin", Phase.VALIDATION: "on_test_batch_begin",
                Phase.EVALUATE: "on_test_batch_begin", Phase.PREDICT: "on_predict_batch_begin"}


def _split_refused(spec: Spec, op: Op, call: Call, empty: str) -> Step:
    """The fit whose validation_split leaves its `empty` part no sample: Keras raises at its start."""
    message = validation_split_message(spec.samples, op.validation_split)
    return Step(call, None, None, KerasError(
        call.index, "ValueError", message, re.escape(message), "as fit starts, before any batch or callback",
        why=f"{op} leaves no {empty} sample of the {spec.samples:,}", cause="validation_split"))


def _raised(spec: Spec, facts: Facts, invocation: Invocation, call: Call) -> KerasError:
    kind, message, pattern = keras_error(facts, invocation.batch_size, len(call.samples), spec.state_shape)
    when = ""
    if call.index == 0:  # the very first batch is already too small
        name = invocation.op.kind
        # predict builds nothing first: it raises in its batch 0 on every backend.
        before = facts.raises_before_first_batch and call.phase != Phase.PREDICT
        when = (f"while {name} builds its step function, before any batch begins" if before
                else f"inside the first batch, after its {_BATCH_BEGIN[call.phase]} callback")
    return KerasError(call.index, kind, message, pattern, when)
