"""The steps Keras takes, and what it does with each slot's state (pure numpy, no torch).

Two layers: `iter_calls` is Keras's data order (which samples fill which batch, in which
phase); `keras_steps` adds Keras's state rules on top (each slot starts from zeros or
from the previous call's final state of the same slot; a stateful call with a batch
that is not exactly the state's batch size raises, and that step carries the error).
Both are lazy: one batch at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from .spec import KerasVersion, Phase, ResetKind, Shuffle, Spec, Terms


def stateful_batch_mismatch_message(expected: int, received: int) -> str:
    """Keras 3 (torch backend), keras/src/layers/rnn/rnn.py: a stateful call whose batch
    size differs from the state's."""
    return (
        "If an RNN is stateful, the batch size of the input sequences must be the same as "
        "the batch size of the initial state. \n"
        f"- Expected batch size: {expected}\n"
        f"- Received batch size: {received}"
    )


def keras_error(keras: KerasVersion, expected: int, received: int, units: int) -> tuple[str, str]:
    """(type, message) of what Keras raises for a stateful batch of `received` samples when
    the state holds `expected`, as measured: tf-keras fails in TensorFlow's shape check."""
    if keras == KerasVersion.TWO:
        return "InvalidArgumentError", f"Incompatible shapes: [{expected},{units}] vs. [{received},{units}]"
    return "ValueError", stateful_batch_mismatch_message(expected, received)


class KerasStateError(ValueError):
    """What Keras raises for a stateful call whose batch size differs from the state's; a
    ValueError, as in Keras 3. `keras_type` names Keras's own exception class."""

    def __init__(self, keras_type: str, message: str):
        super().__init__(message)
        self.keras_type = keras_type


@dataclass(frozen=True)
class KerasError:
    """What Keras raises, and at which step."""

    step: int
    type: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "type": self.type, "message": self.message}


@dataclass(frozen=True, eq=False)
class Call:
    """One call of the recurrent layer, as Keras's fit/evaluate/predict loops make it."""

    index: int
    phase: Phase
    epoch: int
    batch: int
    samples: np.ndarray  # data index held by each slot, within the phase's own data

    @property
    def segment(self) -> str:
        """The phase and epoch, e.g. "train e0"; predict runs once, so "predict" alone."""
        return "predict" if self.phase == Phase.PREDICT else f"{self.phase} e{self.epoch}"

    @property
    def label(self) -> str:
        """The call, e.g. "train e0 b3" or "predict b1"."""
        return f"{self.segment} b{self.batch}"


def training_batches(spec: Spec, epoch: int) -> list[np.ndarray]:
    """The samples of each training batch of one epoch, in Keras's order.

    shuffle=True: a new permutation every epoch, cut into batches. shuffle="batch": each
    batch-sized chunk shuffled within itself; Keras 2 also shuffles the order of the chunks,
    the partial one included (it may come first), Keras 3 keeps it.
    """
    dtype = np.int32 if spec.samples < 2**31 else np.int64
    order = np.arange(spec.samples, dtype=dtype)
    rng = np.random.default_rng([spec.seed, epoch])
    if spec.shuffle == Shuffle.TRUE:
        rng.shuffle(order)  # in place: the same permutation as rng.permutation, 4 bytes a sample
    chunks = [order[start:start + spec.batch_size] for start in range(0, spec.samples, spec.batch_size)]
    if spec.shuffle != Shuffle.BATCH:
        return chunks
    if spec.keras == KerasVersion.TWO:
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    return [rng.permutation(chunk) for chunk in chunks]


def training_order(spec: Spec, epoch: int) -> np.ndarray:
    """Every training sample of one epoch, in the order Keras feeds them."""
    return np.concatenate(training_batches(spec, epoch))


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
        phase = self.source.phase.value
        return [f"{phase}:{self.source.samples[s]}" if s >= 0 else Start.ZEROS.value
                for s in self.source_slot.tolist()]

    def start_kinds(self) -> np.ndarray:
        """Per slot Start value (as strings); callers skip raising steps."""
        assert self.source_slot is not None, "a raising step starts no slot"
        kinds = np.full(len(self.source_slot), Start.ZEROS.value, dtype=object)
        carried = self.source_slot >= 0
        if self.source is None or not carried.any():
            return kinds
        kinds[carried] = Start.UNRELATED.value
        if self.source.phase == self.call.phase and self.source.epoch == self.call.epoch:
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
    previous: Call | None = None
    for call in iter_calls(spec):
        slots = len(call.samples)
        if spec.stateful and slots != spec.batch_size:
            error = KerasError(call.index, *keras_error(spec.keras, spec.batch_size, slots, spec.units))
            yield Step(call, None, None, error)
            return
        if spec.stateful and previous is not None and not _resets_before(spec, call):
            yield Step(call, previous, np.arange(slots))
        else:
            yield Step(call, None, np.full(slots, -1))
        previous = call


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _either(separator: str, last: str, words: list[str]) -> str:
    return words[0] if len(words) == 1 else separator.join(words[:-1]) + last + words[-1]


def fix_for_partial_batch(spec: Spec, terms: Terms = Terms()) -> str:
    """How to make every stateful call hold exactly B samples, as Keras requires."""
    sizes = {"N": spec.samples, terms.name("val_samples"): spec.val_samples,
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
