"""Keras's data order: which samples fill which batch, in which phase, for every call of the
workflow (no state rules: see `schedule`). Pure numpy, lazy: one batch at a time."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .choices import KerasVersion, Phase, Shuffle
from .spec import Spec
from .workflow import CALLS, Kind, Op, Source, ops


@dataclass(frozen=True, eq=False)
class Call:
    """One call of the recurrent layer, as Keras's fit/evaluate/predict loops make it."""

    index: int
    phase: Phase
    epoch: int
    batch: int
    samples: np.ndarray  # the batch's samples: data indices within `stream`
    broadcast: int  # TensorFlow: the state rows a lone sample runs in (every slot), else 0
    # The call it belongs to, e.g. "train e0", "predict#2", "twin predict": the phase (and the
    # epoch inside fit), numbered from the second call of its kind on a model, after the model.
    segment: str
    # The data `samples` index: the phase's own, but the training data for fit's validation_split.
    stream: Phase
    invocation: int = 0  # which call of the workflow it belongs to (0, 1, ...)
    data_pass: int = 0  # fit's training batches: which pass over the data (steps_per_epoch spans epochs)

    @property
    def slot_samples(self) -> np.ndarray:
        """The sample each slot runs."""
        return np.repeat(self.samples, self.broadcast) if self.broadcast else self.samples

    @property
    def label(self) -> str:
        """The call, e.g. "train e0 b3", "predict b1" or "twin predict#2 b0"."""
        return self.label_of(self.segment, self.batch)

    @staticmethod
    def label_of(segment: str, batch: int) -> str:
        return f"{segment} b{batch}"


def _pass_rng(spec: Spec, key: int, fit: int) -> np.random.Generator:
    """The draws of one pass over the `fit`-th fit's data, keyed by its number (the first fit's
    without the fit's, so that a workflow's first fit draws as the shorthand options' fit does)."""
    return np.random.default_rng([spec.seed, key] if fit == 1 else [spec.seed, key, fit])


def training_batches(spec: Spec, epoch: int, samples: int | None = None, batch_size: int | None = None,
                     shuffle: Shuffle | None = None, fit: int = 1) -> Iterator[np.ndarray]:
    """The samples of each training batch of one epoch of the `fit`-th fit, in Keras's order,
    one batch at a time (views of one order array: 4 bytes a sample, whatever the number of
    batches). `samples`, `batch_size`, `shuffle`: the fit's own, default the spec's.

    shuffle=True: a new permutation every epoch, cut into batches. shuffle="batch": each
    batch-sized chunk shuffled within itself; Keras 2 also shuffles the order of the chunks,
    the partial one included (it may come first), Keras 3 keeps it.
    """
    samples = spec.samples if samples is None else samples
    batch_size = batch_size or spec.batch_size
    shuffle = spec.shuffle if shuffle is None else shuffle
    dtype = np.int32 if samples < 2**31 else np.int64
    order = np.arange(samples, dtype=dtype)
    rng = _pass_rng(spec, epoch, fit)
    if shuffle == Shuffle.TRUE:
        rng.shuffle(order)  # in place: the same permutation as rng.permutation, 4 bytes a sample
    chunks = math.ceil(samples / batch_size)
    chunk_order: Iterable[int] = range(chunks)
    if shuffle == Shuffle.BATCH and spec.keras == KerasVersion.TWO:
        chunk_order = rng.permutation(chunks)
    for chunk in chunk_order:
        batch = order[chunk * batch_size:(chunk + 1) * batch_size]
        yield rng.permutation(batch) if shuffle == Shuffle.BATCH else batch


def fit_epochs(spec: Spec, op: Op, train: int, size: int, fits: int) -> Iterator[Iterator[tuple[int, np.ndarray]]]:
    """Each epoch's training batches, with the pass each belongs to, one epoch at a time (each read
    before the next is asked for).
    A pass over the data is shuffled afresh (`Op.fit_shuffle`: arrays' samples, a PyDataset's
    batch order) and keyed by its number from initial_epoch, so that without steps_per_epoch pass
    and epoch are one. steps_per_epoch=K: an epoch takes K batches, from passes run end to end
    where they chain (`Op.chains_passes`), from a new pass every epoch where they restart
    (`Op.restarts_passes`), else up to the end of the pass, the next epoch then starting a new one:
    the pass goes on across epochs, as Keras's iterator does."""
    shuffle = op.fit_shuffle(spec.shuffle)
    per_pass = train // size if op.drop_remainder else math.ceil(train / size)

    def one_pass(key: int) -> Iterator[tuple[int, np.ndarray]]:
        if op.data == Source.PYDATASET:
            batches: Iterator[np.ndarray] = _pydataset_pass(spec, key, train, size, per_pass, bool(shuffle), fits)
        else:
            batches = itertools.islice(training_batches(spec, key, train, size, shuffle, fits), per_pass)
        return ((key, batch) for batch in batches)

    keys = itertools.count(op.initial_epoch)
    most = op.steps_per_epoch
    if not most or op.restarts_passes(spec.keras):
        for key in keys:
            yield itertools.islice(one_pass(key), most or None)
    if op.chains_passes(spec.keras):
        stream = itertools.chain.from_iterable(map(one_pass, keys))
        while True:
            yield itertools.islice(stream, most)
    batches: Iterator[tuple[int, np.ndarray]] = iter(())
    seen = per_pass
    while True:
        if seen >= per_pass:
            batches, seen = one_pass(next(keys)), 0
        take = min(most, per_pass - seen)
        seen += take
        yield itertools.islice(batches, take)


def _pydataset_pass(spec: Spec, key: int, samples: int, size: int, count: int, shuffled: bool,
                    fit: int) -> Iterator[np.ndarray]:
    """One pass over a PyDataset whose item i is samples i*size.. (i+1)*size - 1: its `count` items
    in order, or in a permutation drawn afresh (Keras shuffles the item indices, the partial last
    item among them), each item's samples kept in order."""
    items = np.arange(count)
    if shuffled:
        _pass_rng(spec, key, fit).shuffle(items)
    for item in map(int, items):
        yield np.arange(item * size, min((item + 1) * size, samples))


def _in_order(first: int, count: int, batch_size: int) -> Iterator[np.ndarray]:
    """Unshuffled batches of samples first..first+count-1, made one at a time."""
    for start in range(first, first + count, batch_size):
        yield np.arange(start, min(start + batch_size, first + count))


@dataclass(frozen=True)
class Invocation:
    """One call of the workflow (fit, predict, reset_state(), ...) on the model it is made on."""

    op: Op
    index: int  # its place in the workflow, repeats unrolled
    model: str  # "" for the model built first, then "twin", "loaded", "twin#2", ...
    batch_size: int  # the model's: what its state holds when stateful
    number: int  # 1 for the model's first call of this kind, 2 for the next, ...
    stateful: bool  # the model's: a twin may be built otherwise than the model it copies

    def name(self, phase: Phase | None = None) -> str:
        """E.g. "predict#2" or "twin train": the word of `phase` (fit's training or validation),
        else the call's."""
        word = str(self.op.kind) if phase is None else str(phase)
        numbered = word + (f"#{self.number}" if self.number > 1 else "")
        return f"{self.model} {numbered}" if self.model else numbered


def iter_invocations(spec: Spec) -> Iterator[tuple[Invocation, Iterator[Call]]]:
    """Each call of the workflow with its layer calls, in Keras's data order (no state rules).
    Lazy: each invocation's calls are made as they are read, and must be read (or dropped)
    before the next invocation is asked for. Evaluate, predict and the *_on_batch calls each
    take the next samples of their data (train_on_batch the training data, round and round),
    as a loop feeding a stream would."""
    counter = itertools.count()
    cursors = dict.fromkeys(Phase, 0)
    model, batch_size, stateful, fits = "", spec.batch_size, spec.stateful, 0
    made: dict[str, int] = {}  # models made so far, by kind
    numbers: dict[Kind, int] = {}
    for index, op in enumerate(ops(spec.plan)):
        if op.kind in (Kind.TWIN, Kind.SAVE_AND_LOAD):
            kind = "twin" if op.kind == Kind.TWIN else "loaded"
            made[kind] = made.get(kind, 0) + 1
            model = kind + (f"#{made[kind]}" if made[kind] > 1 else "")
            batch_size = op.batch_size or batch_size
            stateful = stateful if op.stateful is None else op.stateful
            numbers = {}
        numbers[op.kind] = numbers.get(op.kind, 0) + 1
        invocation = Invocation(op, index, model, batch_size, numbers[op.kind], stateful)
        fits += op.kind == Kind.FIT
        yield invocation, _calls_of(spec, invocation, counter, cursors, fits)


def _calls_of(spec: Spec, invocation: Invocation, counter: Iterator[int], cursors: dict[Phase, int],
              fits: int) -> Iterator[Call]:
    op, size = invocation.op, invocation.op.batch_size or invocation.batch_size
    if spec.empty_split_part(op):
        # The batch fit would have run first, where Keras raises instead (the schedule says so).
        yield Call(next(counter), Phase.TRAIN, op.initial_epoch, 0, np.arange(min(size, spec.samples)), 0,
                   f"{invocation.name(Phase.TRAIN)} e{op.initial_epoch}", Phase.TRAIN, invocation.index)
        return
    if op.kind == Kind.FIT:
        train = spec.fit_split(op)
        epochs = fit_epochs(spec, op, train, size, fits)
        for epoch in range(op.initial_epoch, op.epochs):
            segment = f"{invocation.name(Phase.TRAIN)} e{epoch}"
            for batch, (data_pass, samples) in enumerate(next(epochs)):
                yield Call(next(counter), Phase.TRAIN, epoch, batch, samples, 0, segment, Phase.TRAIN,
                           invocation.index, data_pass)
            if (epoch + 1) % op.validation_freq:
                continue
            # Validation data are never shuffled: validation_split's are the last samples.
            stream, first, count = ((Phase.TRAIN, train, spec.samples - train) if op.validation_split
                                    else (Phase.VALIDATION, 0, op.validation_samples))
            segment = f"{invocation.name(Phase.VALIDATION)} e{epoch}"
            for batch, samples in enumerate(_in_order(first, count, size)):
                yield Call(next(counter), Phase.VALIDATION, epoch, batch, samples, 0, segment, stream,
                           invocation.index)
        return
    if not op.kind.runs_batches:
        return
    phase = CALLS[op.kind].phase
    assert phase is not None, "a call that runs batches runs them in a phase"
    first = cursors[phase]
    cursors[phase] += op.samples
    if op.kind == Kind.TRAIN_ON_BATCH:
        batches: Iterable[np.ndarray] = [(first + np.arange(op.samples)) % spec.samples]
    elif op.kind.one_batch or (op.samples <= size and not op.endless and op.run_batches(size) == 1):
        batches = [first + np.arange(op.samples)]  # a serving loop's call: its one batch made at once
    else:
        # The call's samples in order (drop_remainder: whole batches only), round and round where
        # the stream is endless; as many batches as Op.run_batches counts.
        count = op.samples - op.samples % size if op.drop_remainder else op.samples
        passes = itertools.count() if op.endless else range(1)
        batches = itertools.chain.from_iterable(_in_order(first, count, size) for _ in passes)
        batches = itertools.islice(batches, op.run_batches(size))
    for batch, samples in enumerate(batches):
        yield Call(next(counter), phase, 0, batch, samples, 0, invocation.name(), phase, invocation.index)


def iter_calls(spec: Spec) -> Iterator[Call]:
    """Every layer call of the workflow, in order."""
    for _, calls in iter_invocations(spec):
        yield from calls
