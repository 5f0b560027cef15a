"""The steps Keras takes, and what it does with each slot's state (pure numpy, no torch).

Two layers: `iter_calls` is Keras's data order (which samples fill which batch, in which
phase); `keras_steps` adds Keras's state rules on top (each slot starts from zeros or
from the previous call's final state of the same slot; a stateful call with a batch
that is not exactly the state's batch size raises, and that step carries the error).
Both are lazy: one batch at a time. `FACTS` holds what each Keras does on each backend,
as measured; every backend-specific rule is read from there.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from .spec import Backend, KerasVersion, Phase, ResetKind, Shuffle, Spec, Terms


def stateful_batch_mismatch_message(expected: int, received: int) -> str:
    """Keras 3 (torch backend), keras/src/layers/rnn/rnn.py: a stateful call whose batch
    size differs from the state's."""
    return (
        "If an RNN is stateful, the batch size of the input sequences must be the same as "
        "the batch size of the initial state. \n"
        f"- Expected batch size: {expected}\n"
        f"- Received batch size: {received}"
    )


@dataclass(frozen=True)
class Facts:
    """What one Keras, on one backend, does with a stateful layer inside fit, evaluate and
    predict, as measured with real Keras (`measured_on`); the conformance tests re-measure it."""

    keras: KerasVersion
    backend: Backend
    measured_on: str  # the versions the facts were measured with
    keras_version: str  # Keras's own version among them
    carries: bool  # each call starts from the previous call's final state (else from zeros)
    broadcasts_one: bool  # a stateful batch of one sample runs in every slot instead of raising
    error_type: str  # what a stateful batch of another size raises
    raises_before_first_batch: bool  # N < B: raised while fit builds its step, before batch 0 begins
    # predict traces its first batch's shape: a short first batch raises Keras's own ValueError
    predict_checks_first_batch: bool = False

    @property
    def name(self) -> str:
        """E.g. "Keras 3 (jax)" or "Keras 2 (tf-keras)"."""
        return "Keras 2 (tf-keras)" if self.keras == KerasVersion.TWO else f"Keras 3 ({self.backend})"


FACTS = {
    (KerasVersion.THREE, Backend.TORCH): Facts(
        KerasVersion.THREE, Backend.TORCH, "Keras 3.15.1, torch 2.13.0", "3.15.1",
        carries=True, broadcasts_one=False, error_type="ValueError", raises_before_first_batch=True),
    # TensorFlow adds the lone sample's projections to every state row: broadcasting, no error,
    # in a compiled step (Keras's default; with run_eagerly=True Keras raises its ValueError).
    (KerasVersion.THREE, Backend.TENSORFLOW): Facts(
        KerasVersion.THREE, Backend.TENSORFLOW, "Keras 3.15.1, tensorflow-cpu 2.21.0", "3.15.1",
        carries=True, broadcasts_one=True, error_type="InvalidArgumentError", raises_before_first_batch=False,
        predict_checks_first_batch=True),
    # The state variables are created untracked, so JAX's stateless train, test and predict
    # steps drop their assignments: every call starts from the zeros they were created with.
    (KerasVersion.THREE, Backend.JAX): Facts(
        KerasVersion.THREE, Backend.JAX, "Keras 3.15.1, jax 0.10.2", "3.15.1",
        carries=False, broadcasts_one=False, error_type="ValueError", raises_before_first_batch=True),
    (KerasVersion.TWO, Backend.TENSORFLOW): Facts(
        KerasVersion.TWO, Backend.TENSORFLOW, "tf-keras 2.21.0, tensorflow-cpu 2.21.0", "2.21.0",
        carries=True, broadcasts_one=True, error_type="InvalidArgumentError", raises_before_first_batch=False),
}


def facts_for(spec: Spec) -> Facts:
    return FACTS[spec.keras, spec.backend]


def keeps_state(spec: Spec) -> bool:
    """Whether any state passes from one call to another inside fit, evaluate and predict."""
    return spec.stateful and facts_for(spec).carries and spec.carries


def broadcast_phases(spec: Spec) -> list[Phase]:
    """The phases whose last batch is a lone sample that TensorFlow broadcasts into every slot
    (stateful only), up to the first batch that raises instead."""
    if not (spec.stateful and facts_for(spec).broadcasts_one and spec.batch_size > 1):
        return []
    found = []
    for phase, count in ((Phase.TRAIN, spec.samples), (Phase.VALIDATION, spec.val_samples),
                         (Phase.PREDICT, spec.predict_samples)):
        remainder = count % spec.batch_size
        first_short = count < spec.batch_size and phase == Phase.PREDICT and facts_for(spec).predict_checks_first_batch
        if remainder > 1 or first_short:
            break  # Keras raises at this phase's last batch
        if remainder == 1:
            found.append(phase)
    return found


def keras_error(facts: Facts, expected: int, received: int, units: int) -> tuple[str, str, str]:
    """(type, message, pattern) of what Keras raises for a stateful batch of `received`
    samples when the state holds `expected`; real Keras's message contains a match of
    `pattern`. TensorFlow's shape check names whichever node fails first: the order of the
    two shapes and their width (the units, or an LSTM's four gates) vary."""
    if facts.error_type == "InvalidArgumentError":
        message = (f"Incompatible shapes between the {received}-sample batch and the {expected}-row state "
                   f"(TensorFlow's shape check, e.g. \"Incompatible shapes: [{received},{units}] vs. "
                   f"[{expected},{units}]\")")
        sizes = f"({received}|{expected})"
        return facts.error_type, message, rf"Incompatible shapes: \[{sizes},\d+\] vs\. \[{sizes},\d+\]"
    message = stateful_batch_mismatch_message(expected, received)
    return facts.error_type, message, re.escape(message)


class KerasStateError(ValueError):
    """What Keras raises for a stateful call whose batch size differs from the state's; a
    ValueError, as in Keras 3. `keras_type` names Keras's own exception class."""

    def __init__(self, keras_type: str, message: str):
        super().__init__(message)
        self.keras_type = keras_type


@dataclass(frozen=True)
class KerasError:
    """What Keras raises, and at which step. `pattern`: a regular expression that real Keras's
    message contains a match of (its own message, escaped, when it does not vary)."""

    step: int
    type: str
    message: str
    pattern: str = ""
    when: str = ""  # where in the step it is raised, when that is worth saying

    def matches(self, message: str) -> bool:
        return re.search(self.pattern or re.escape(self.message), message) is not None

    def to_json(self) -> dict[str, Any]:
        found = {"step": self.step, "type": self.type, "message": self.message}
        return {**found, "when": self.when} if self.when else found


@dataclass(frozen=True, eq=False)
class Call:
    """One call of the recurrent layer, as Keras's fit/evaluate/predict loops make it."""

    index: int
    phase: Phase
    epoch: int
    batch: int
    samples: np.ndarray  # the batch's samples: data indices within the phase's own data
    broadcast: int = 0  # TensorFlow: the state rows a lone sample runs in (every slot), else 0

    @property
    def slot_samples(self) -> np.ndarray:
        """The sample each slot runs."""
        return np.repeat(self.samples, self.broadcast) if self.broadcast else self.samples

    @property
    def segment(self) -> str:
        """The phase and epoch, e.g. "train e0"; predict runs once, so "predict" alone."""
        return "predict" if self.phase == Phase.PREDICT else f"{self.phase} e{self.epoch}"

    @property
    def label(self) -> str:
        """The call, e.g. "train e0 b3" or "predict b1"."""
        return f"{self.segment} b{self.batch}"


def training_batches(spec: Spec, epoch: int) -> Iterator[np.ndarray]:
    """The samples of each training batch of one epoch, in Keras's order, one batch at a time
    (views of one order array: 4 bytes a sample, whatever the number of batches).

    shuffle=True: a new permutation every epoch, cut into batches. shuffle="batch": each
    batch-sized chunk shuffled within itself; Keras 2 also shuffles the order of the chunks,
    the partial one included (it may come first), Keras 3 keeps it.
    """
    dtype = np.int32 if spec.samples < 2**31 else np.int64
    order = np.arange(spec.samples, dtype=dtype)
    rng = np.random.default_rng([spec.seed, epoch])
    if spec.shuffle == Shuffle.TRUE:
        rng.shuffle(order)  # in place: the same permutation as rng.permutation, 4 bytes a sample
    chunks = spec.batches_per_epoch
    chunk_order: Iterable[int] = range(chunks)
    if spec.shuffle == Shuffle.BATCH and spec.keras == KerasVersion.TWO:
        chunk_order = rng.permutation(chunks)
    for chunk in chunk_order:
        samples = order[chunk * spec.batch_size:(chunk + 1) * spec.batch_size]
        yield rng.permutation(samples) if spec.shuffle == Shuffle.BATCH else samples


def _phase_batches(spec: Spec) -> Iterator[tuple[Phase, int, int, np.ndarray]]:
    # Validation and predict data are never shuffled by Keras.
    for epoch in range(spec.epochs):
        for batch, samples in enumerate(training_batches(spec, epoch)):
            yield Phase.TRAIN, epoch, batch, samples
        if spec.val_samples:
            yield from _in_order(Phase.VALIDATION, epoch, spec.val_samples, spec.batch_size)
    if spec.predict_samples:
        yield from _in_order(Phase.PREDICT, 0, spec.predict_samples, spec.batch_size)


def _in_order(phase: Phase, epoch: int, count: int, batch_size: int
              ) -> Iterator[tuple[Phase, int, int, np.ndarray]]:
    """Unshuffled batches, made one at a time."""
    for batch, start in enumerate(range(0, count, batch_size)):
        yield phase, epoch, batch, np.arange(start, min(start + batch_size, count))


def iter_calls(spec: Spec) -> Iterator[Call]:
    for index, (phase, epoch, batch, samples) in enumerate(_phase_batches(spec)):
        yield Call(index, phase, epoch, batch, samples)


class Start(StrEnum):
    ZEROS = "zeros"
    CONTINUED = "continued"  # from sample j - B of the same phase and epoch: the layout Keras expects
    UNRELATED = "unrelated"  # carried from any other sample (shuffle, epoch or phase boundary)


@dataclass(frozen=True, eq=False)
class Step:
    """A call with the predicted start of every slot."""

    call: Call
    source: Call | None  # the call whose final states the carried slots start from
    source_slot: np.ndarray | None  # per slot: slot of `source`, -1 for zeros; None if Keras raises
    error: KerasError | None = None  # what Keras raises at this step, instead of running it

    def __post_init__(self) -> None:
        if (self.error is None) == (self.source_slot is None):
            raise ValueError("a step either raises (error) or starts its slots (source_slot), not both")

    @property
    def raises(self) -> bool:
        return self.error is not None

    @property
    def zero_slots(self) -> int:
        return 0 if self.source_slot is None else int(np.count_nonzero(self.source_slot < 0))

    @property
    def carried_slots(self) -> int:
        return 0 if self.source_slot is None else len(self.source_slot) - self.zero_slots

    def start_labels(self) -> list[str] | None:
        """Per slot: "zeros" or "<phase>:<sample>" of the sample whose final state it starts from."""
        if self.source_slot is None:
            return None
        if self.source is None:
            return [Start.ZEROS.value] * len(self.source_slot)
        phase, sources = self.source.phase.value, self.source.slot_samples
        return [f"{phase}:{sources[s]}" if s >= 0 else Start.ZEROS.value for s in self.source_slot.tolist()]

    def start_kinds(self) -> np.ndarray:
        """Per slot Start value (as strings); callers skip raising steps."""
        assert self.source_slot is not None, "a raising step starts no slot"
        kinds = np.full(len(self.source_slot), Start.ZEROS.value, dtype=object)
        carried = self.source_slot >= 0
        if self.source is None or not carried.any():
            return kinds
        kinds[carried] = Start.UNRELATED.value
        broadcast = self.source.broadcast or self.call.broadcast
        if self.source.segment == self.call.segment and not broadcast:
            predecessor = self.source.samples[self.source_slot[carried]]
            layout = predecessor == self.call.samples[carried] - len(self.source.samples)
            kinds[np.flatnonzero(carried)[layout]] = Start.CONTINUED.value
        return kinds


def _resets_before(spec: Spec, call: Call) -> bool:
    """Whether the user's reset callback zeroes the state before this call: on_epoch_begin
    (before batch 0), or on_train_batch_begin for batch indices that are multiples of K.
    Validation and predict run no training hooks."""
    if call.phase != Phase.TRAIN:
        return False
    if spec.reset.kind == ResetKind.EPOCH:
        return call.batch == 0
    return spec.reset.kind == ResetKind.EVERY and call.batch % spec.reset.every == 0


def keras_steps(spec: Spec) -> Iterator[Step]:
    """Keras's steps for the setup, each slot's start predicted; ends with the raising step
    (its `error` set) when Keras would raise."""
    facts = facts_for(spec)
    previous: Call | None = None
    for call in iter_calls(spec):
        slots = len(call.samples)
        if spec.stateful and slots != spec.batch_size:
            if _checked_by_keras(facts, call):
                message = stateful_batch_mismatch_message(spec.batch_size, slots)
                yield Step(call, None, None, KerasError(call.index, "ValueError", message, re.escape(message)))
                return
            if slots == 1 and facts.broadcasts_one:
                call = dataclasses.replace(call, broadcast=spec.batch_size)
            else:
                yield Step(call, None, None, _raised(spec, facts, call))
                return
        if spec.stateful and facts.carries and previous is not None and not _resets_before(spec, call):
            yield Step(call, previous, np.arange(spec.batch_size))
        else:
            yield Step(call, None, np.full(len(call.slot_samples), -1))
        previous = call


def _checked_by_keras(facts: Facts, call: Call) -> bool:
    """A short batch Keras's own check sees (where TensorFlow's shapes would not)."""
    return facts.predict_checks_first_batch and call.phase == Phase.PREDICT and call.batch == 0


def _raised(spec: Spec, facts: Facts, call: Call) -> KerasError:
    kind, message, pattern = keras_error(facts, spec.batch_size, len(call.samples), spec.units)
    when = ""
    if call.index == 0:  # N < B: the very first batch is already too small
        when = ("while fit builds its step function, before any batch begins" if facts.raises_before_first_batch
                else "inside the first batch, after its on_train_batch_begin callback")
    return KerasError(call.index, kind, message, pattern, when)


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _either(separator: str, last: str, words: list[str]) -> str:
    return words[0] if len(words) == 1 else separator.join(words[:-1]) + last + words[-1]


def fix_for_partial_batch(spec: Spec, terms: Terms = Terms()) -> str:
    """How to make every stateful call hold exactly B samples, as Keras requires."""
    sizes = {terms.name("samples"): spec.samples, terms.name("val_samples"): spec.val_samples,
             terms.name("predict_samples"): spec.predict_samples}
    sizes = {name: size for name, size in sizes.items() if size}
    common = math.gcd(*sizes.values())
    divisors = _divisors(common)
    below = [d for d in divisors if d < spec.batch_size][-2:]
    above = [d for d in divisors if d > spec.batch_size][:2]
    near = below + above
    choice = _either(", ", " or ", [str(d) for d in near])
    what = _either(", ", " and ", list(sizes))
    advice = f"use {terms.name('batch_size')} {choice} (divisors of {what} near {spec.batch_size})"
    truncations = [f"{name} to {size - size % spec.batch_size}" for name, size in sizes.items()
                   if size % spec.batch_size and size >= spec.batch_size]
    if truncations:
        advice += (", or drop the remainder as drop_remainder does: truncate "
                   + ", ".join(truncations))
    return advice
