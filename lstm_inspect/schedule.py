"""The steps Keras takes, and what it does with each slot's state (pure numpy, no torch).

Two layers: `iter_calls` is Keras's data order (which samples fill which batch, in which
phase); `predict_steps` adds Keras's state rules on top (each slot starts from zeros or
from the previous call's final state of the same slot; a stateful call with a batch
that is not exactly the state's batch size raises). Both are lazy: one batch at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from .spec import SHUFFLE_BATCH, KerasVersion, Phase, Spec

def stateful_batch_mismatch_message(expected: int, received: int) -> str:
    """Keras 3 (torch backend), keras/src/layers/rnn/rnn.py: a stateful call whose batch
    size differs from the state's."""
    return (
        "If an RNN is stateful, the batch size of the input sequences must be the same as "
        "the batch size of the initial state. \n"
        f"- Expected batch size: {expected}\n"
        f"- Received batch size: {received}"
    )


def keras_error(spec: Spec, received: int) -> tuple[str, str]:
    """(type, message) of what Keras raises for a stateful batch of `received` samples,
    as measured (shared semantics doc): tf-keras fails in TensorFlow's shape check."""
    if spec.keras == KerasVersion.TWO:
        return ("InvalidArgumentError",
                f"Incompatible shapes: [{spec.batch_size},{spec.units}] vs. [{received},{spec.units}]")
    return "ValueError", stateful_batch_mismatch_message(spec.batch_size, received)


@dataclass(frozen=True, eq=False)
class Call:
    """One call of the recurrent layer, as Keras's fit/evaluate/predict loops make it."""

    index: int
    phase: Phase
    epoch: int
    batch: int
    samples: np.ndarray  # data index held by each slot, within the phase's own data

    @property
    def label(self) -> str:
        if self.phase == Phase.PREDICT:
            return f"predict b{self.batch}"
        return f"{self.phase} e{self.epoch} b{self.batch}"


def training_batches(spec: Spec, epoch: int) -> list[np.ndarray]:
    """The samples of each training batch of one epoch, in Keras's order.

    shuffle=True: a new permutation every epoch, cut into batches. shuffle="batch": each
    batch-sized chunk shuffled within itself; Keras 2 also shuffles the order of the chunks,
    the partial one included (it may come first), Keras 3 keeps it.
    """
    dtype = np.int32 if spec.samples < 2**31 else np.int64
    order = np.arange(spec.samples, dtype=dtype)
    rng = np.random.default_rng([spec.seed, epoch])
    if spec.shuffle is True:
        rng.shuffle(order)  # in place: the same permutation as rng.permutation, 4 bytes a sample
    chunks = [order[start:start + spec.batch_size] for start in range(0, spec.samples, spec.batch_size)]
    if spec.shuffle != SHUFFLE_BATCH:
        return chunks
    if spec.keras == KerasVersion.TWO:
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    return [rng.permutation(chunk) for chunk in chunks]


def training_order(spec: Spec, epoch: int) -> np.ndarray:
    """Every training sample of one epoch, in the order Keras feeds them."""
    return np.concatenate(training_batches(spec, epoch))


def _phase_batches(spec: Spec):
    # Validation and predict data are never shuffled by Keras.
    for epoch in range(spec.epochs):
        for batch, samples in enumerate(training_batches(spec, epoch)):
            yield Phase.TRAIN, epoch, batch, samples
        if spec.val_samples:
            yield from _in_order(Phase.VALIDATION, epoch, spec.val_samples, spec.batch_size)
    if spec.predict_samples:
        yield from _in_order(Phase.PREDICT, 0, spec.predict_samples, spec.batch_size)


def _in_order(phase: Phase, epoch: int, count: int, batch_size: int):
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

    @property
    def raises(self) -> bool:
        return self.source_slot is None

    @property
    def zero_slots(self) -> int:
        return 0 if self.raises else int(np.count_nonzero(self.source_slot < 0))

    @property
    def carried_slots(self) -> int:
        return 0 if self.raises else len(self.source_slot) - self.zero_slots

    def start_labels(self) -> list[str] | None:
        """Per slot: "zeros" or "<phase>:<sample>" of the sample whose final state it starts from."""
        if self.raises:
            return None
        if self.source is None:
            return [Start.ZEROS.value] * len(self.source_slot)
        phase = self.source.phase.value
        return [f"{phase}:{self.source.samples[s]}" if s >= 0 else Start.ZEROS.value
                for s in self.source_slot.tolist()]

    def start_kinds(self) -> np.ndarray:
        """Per slot Start value (as strings), None-free: callers skip raising steps."""
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
    """Whether the user's reset callback zeroes the state before this call."""
    if call.phase != Phase.TRAIN:
        return False
    return ((call.batch == 0 and spec.reset.resets_on_epoch_begin())
            or spec.reset.resets_on_train_batch_begin(call.batch))


def predict_steps(spec: Spec) -> Iterator[Step]:
    """Keras's state rules; ends with the raising step when Keras would raise."""
    previous: Call | None = None
    for call in iter_calls(spec):
        slots = len(call.samples)
        if spec.stateful and slots != spec.batch_size:
            yield Step(call, None, None)
            return
        if spec.stateful and previous is not None and not _resets_before(spec, call):
            yield Step(call, previous, np.arange(slots))
        else:
            yield Step(call, None, np.full(slots, -1))
        previous = call


@dataclass(frozen=True)
class KerasError:
    step: int
    type: str
    message: str

    def to_json(self) -> dict:
        return {"step": self.step, "type": self.type, "message": self.message}


def predicted_error(step: Step, spec: Spec) -> KerasError:
    return KerasError(step.call.index, *keras_error(spec, len(step.call.samples)))


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _either(separator: str, last: str, words: list[str]) -> str:
    return words[0] if len(words) == 1 else separator.join(words[:-1]) + last + words[-1]


def fix_for_partial_batch(spec: Spec) -> str:
    """How to make every stateful call hold exactly B samples, as Keras requires."""
    sizes = {"N": spec.samples, "--val-samples": spec.val_samples, "--predict-samples": spec.predict_samples}
    sizes = {name: size for name, size in sizes.items() if size}
    common = math.gcd(*sizes.values())
    divisors = _divisors(common)
    below = [d for d in divisors if d < spec.batch_size][-2:]
    above = [d for d in divisors if d > spec.batch_size][:2]
    near = below + above
    choice = _either(", ", " or ", [str(d) for d in near])
    what = _either(", ", " and ", list(sizes))
    advice = f"use --batch {choice} (divisors of {what} near {spec.batch_size})"
    truncations = [f"{name} to {size - size % spec.batch_size}" for name, size in sizes.items()
                   if size % spec.batch_size and size >= spec.batch_size]
    if truncations:
        advice += (", or drop the remainder as drop_remainder does: truncate "
                   + ", ".join(truncations))
    return advice
