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
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from .spec import Backend, KerasVersion, Phase, ResetKind, Shuffle, Spec, Terms, plural
from .workflow import Kind, Op, ops


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
    # TensorFlow: the compiled function each kind of call runs on a model (kinds that share one
    # share a name). Its first trace fixes the batch dimension when every batch of that call has
    # the same size, and Keras's own check then raises a ValueError for a size other than the
    # state's; later traces leave the dimension open (a lone sample broadcasts, other sizes
    # raise InvalidArgumentError). None: nothing is traced (torch, and JAX's check runs always).
    traces: Mapping[str, str] | None = None
    predict_fixes_short: bool = False  # Keras 3: predict of fewer samples than batch_size fixes it too

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
        traces={"fit": "train", "validation": "test", "evaluate": "test", "predict": "predict",
                "train_on_batch": "train_on_batch", "test_on_batch": "test_on_batch",
                "predict_on_batch": "predict_on_batch"}, predict_fixes_short=True),
    # The state variables are created untracked, so JAX's stateless train, test and predict
    # steps drop their assignments: every call starts from the zeros they were created with.
    (KerasVersion.THREE, Backend.JAX): Facts(
        KerasVersion.THREE, Backend.JAX, "Keras 3.15.1, jax 0.10.2", "3.15.1",
        carries=False, broadcasts_one=False, error_type="ValueError", raises_before_first_batch=True),
    (KerasVersion.TWO, Backend.TENSORFLOW): Facts(
        KerasVersion.TWO, Backend.TENSORFLOW, "tf-keras 2.21.0, tensorflow-cpu 2.21.0", "2.21.0",
        carries=True, broadcasts_one=True, error_type="InvalidArgumentError", raises_before_first_batch=False,
        traces={"fit": "train", "train_on_batch": "train", "validation": "test", "evaluate": "test",
                "test_on_batch": "test", "predict": "predict", "predict_on_batch": "predict_on_batch"}),
}


def facts_for(spec: Spec) -> Facts:
    return FACTS[spec.keras, spec.backend]


def keeps_state(spec: Spec) -> bool:
    """Whether any state passes from one call to another inside fit, evaluate and predict."""
    return spec.stateful and facts_for(spec).carries and spec.carries


def broadcast_phases(spec: Spec) -> list[Phase]:
    """The phases whose last batch is a lone sample that TensorFlow broadcasts into every slot
    (stateful only), up to the first batch that raises instead; for a workflow, the run finds
    them (verdict.Passes)."""
    if spec.workflow is not None or not (spec.stateful and facts_for(spec).broadcasts_one and spec.batch_size > 1):
        return []
    found = []
    for phase, count in ((Phase.TRAIN, spec.samples), (Phase.VALIDATION, spec.val_samples),
                         (Phase.PREDICT, spec.predict_samples)):
        remainder = count % spec.batch_size
        first_short = count < spec.batch_size and phase == Phase.PREDICT and facts_for(spec).predict_fixes_short
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
    samples: np.ndarray  # the batch's samples: data indices within `stream`
    broadcast: int = 0  # TensorFlow: the state rows a lone sample runs in (every slot), else 0
    # The call it belongs to, e.g. "train e0", "predict#2", "twin predict": the phase (and the
    # epoch inside fit), numbered from the second call of its kind on a model, after the model.
    segment: str = ""
    # The data `samples` index (None: the phase's own); fit's validation_split: the training data.
    stream: Phase = None  # type: ignore[assignment]
    invocation: int = 0  # which call of the workflow it belongs to (0, 1, ...)

    def __post_init__(self) -> None:
        if not self.segment:
            object.__setattr__(self, "segment", "predict" if self.phase == Phase.PREDICT
                               else f"{self.phase} e{self.epoch}")
        if self.stream is None:
            object.__setattr__(self, "stream", self.phase)

    @property
    def slot_samples(self) -> np.ndarray:
        """The sample each slot runs."""
        return np.repeat(self.samples, self.broadcast) if self.broadcast else self.samples

    @property
    def label(self) -> str:
        """The call, e.g. "train e0 b3", "predict b1" or "twin predict#2 b0"."""
        return f"{self.segment} b{self.batch}"


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
    rng = np.random.default_rng([spec.seed, epoch] if fit == 1 else [spec.seed, epoch, fit])
    if shuffle == Shuffle.TRUE:
        rng.shuffle(order)  # in place: the same permutation as rng.permutation, 4 bytes a sample
    chunks = math.ceil(samples / batch_size)
    chunk_order: Iterable[int] = range(chunks)
    if shuffle == Shuffle.BATCH and spec.keras == KerasVersion.TWO:
        chunk_order = rng.permutation(chunks)
    for chunk in chunk_order:
        batch = order[chunk * batch_size:(chunk + 1) * batch_size]
        yield rng.permutation(batch) if shuffle == Shuffle.BATCH else batch


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

    def name(self, phase: Phase | None = None) -> str:
        """E.g. "predict#2" or "twin train": the phase's word inside fit, else the call's."""
        word = str(phase) if self.op.kind == Kind.FIT and phase is not None else str(self.op.kind)
        numbered = word + (f"#{self.number}" if self.number > 1 else "")
        return f"{self.model} {numbered}" if self.model else numbered


_PHASE_OF = {Kind.EVALUATE: Phase.EVALUATE, Kind.TEST_ON_BATCH: Phase.EVALUATE, Kind.PREDICT: Phase.PREDICT,
             Kind.PREDICT_ON_BATCH: Phase.PREDICT, Kind.TRAIN_ON_BATCH: Phase.TRAIN}


def iter_invocations(spec: Spec) -> Iterator[tuple[Invocation, Iterator[Call]]]:
    """Each call of the workflow with its layer calls, in Keras's data order (no state rules).
    Lazy: each invocation's calls are made as they are read, and must be read (or dropped)
    before the next invocation is asked for. Evaluate, predict and the *_on_batch calls each
    take the next samples of their data (train_on_batch the training data, round and round),
    as a loop feeding a stream would."""
    counter = itertools.count()
    cursors = dict.fromkeys(Phase, 0)
    model, batch_size, fits = "", spec.batch_size, 0
    made: dict[str, int] = {}  # models made so far, by kind
    numbers: dict[Kind, int] = {}
    for index, op in enumerate(ops(spec.plan)):
        if op.kind in (Kind.TWIN, Kind.SAVE_AND_LOAD):
            kind = "twin" if op.kind == Kind.TWIN else "loaded"
            made[kind] = made.get(kind, 0) + 1
            model = kind + (f"#{made[kind]}" if made[kind] > 1 else "")
            batch_size = op.batch_size or batch_size
            numbers = {}
        numbers[op.kind] = numbers.get(op.kind, 0) + 1
        invocation = Invocation(op, index, model, batch_size, numbers[op.kind])
        fits += op.kind == Kind.FIT
        yield invocation, _calls_of(spec, invocation, counter, cursors, fits)


def _calls_of(spec: Spec, invocation: Invocation, counter: Iterator[int], cursors: dict[Phase, int],
              fits: int) -> Iterator[Call]:
    op, size = invocation.op, invocation.op.batch_size or invocation.batch_size
    if op.kind == Kind.FIT:
        train = spec.fit_split(op)
        for epoch in range(op.initial_epoch, op.epochs):
            segment = f"{invocation.name(Phase.TRAIN)} e{epoch}"
            for batch, samples in enumerate(training_batches(spec, epoch, train, size, op.shuffle, fits)):
                yield Call(next(counter), Phase.TRAIN, epoch, batch, samples, 0, segment, Phase.TRAIN,
                           invocation.index)
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
    phase = _PHASE_OF[op.kind]
    first = cursors[phase]
    cursors[phase] += op.samples
    if op.kind == Kind.TRAIN_ON_BATCH:
        batches: Iterable[np.ndarray] = [(first + np.arange(op.samples)) % spec.samples]
    else:
        batches = _in_order(first, op.samples, op.samples if op.kind.one_batch else size)
    for batch, samples in enumerate(batches):
        yield Call(next(counter), phase, 0, batch, samples, 0, invocation.name(), phase, invocation.index)


def iter_calls(spec: Spec) -> Iterator[Call]:
    """Every layer call of the workflow, in order."""
    for _, calls in iter_invocations(spec):
        yield from calls


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
        same_pass = source.invocation != call.invocation or source.epoch == call.epoch
        if source.stream == call.stream and same_pass and not broadcast:
            predecessor = source.samples[self.source_slot[carried]]
            layout = predecessor == call.samples[carried] - (self.stride or len(source.samples))
            kinds[np.flatnonzero(carried)[layout]] = Start.CONTINUED.value
        return kinds


def _resets_before(spec: Spec, invocation: Invocation, call: Call) -> bool:
    """Whether the user's reset callback zeroes the state before this call: on_epoch_begin
    (before batch 0), on_train_batch_begin for batch indices that are multiples of K,
    on_test_begin (before fit's validation and evaluate) or on_predict_begin. The *_on_batch
    calls run no callbacks."""
    kind = invocation.op.kind
    if call.batch != 0 and call.phase != Phase.TRAIN or kind.one_batch:
        return False
    if call.phase == Phase.TRAIN:
        if spec.reset.kind == ResetKind.EPOCH:
            return call.batch == 0
        return spec.reset.kind == ResetKind.EVERY and call.batch % spec.reset.every == 0
    if call.phase in (Phase.VALIDATION, Phase.EVALUATE):
        return spec.reset.validation
    return spec.reset.predict


def keras_steps(spec: Spec) -> Iterator[Step]:
    """Keras's steps for the setup, each slot's start predicted; ends with the raising step
    (its `error` set) when Keras would raise."""
    facts = facts_for(spec)
    hand_carry = spec.hand_carried
    held: Call | None = None  # the call whose final states the model's state holds
    returned: list[Call] = []  # the calls of the last predict, whose states it returned
    traced: set[str] = set()  # TensorFlow: the model's compiled functions traced so far
    for invocation, calls in iter_invocations(spec):
        op = invocation.op
        if not op.kind.runs_batches:
            held = None  # reset_state(), and a new model (twin, loaded), start from zeros
            if op.kind != Kind.RESET_STATE:
                traced = set()  # a new model compiles its own functions
            continue
        predicts = op.kind in (Kind.PREDICT, Kind.PREDICT_ON_BATCH) and hand_carry
        made: list[Call] = []
        for call in calls:
            # What a checking run keeps: the held state; with states carried by hand, the last
            # predict's calls (still read) and this predict's (read by the next).
            first = min([c.index for c in returned[:1] + made[:1]], default=call.index)
            fixed = _first_trace_fixes(spec, facts, invocation, call, traced)
            step = _step(spec, facts, invocation, call, held, returned, fixed,
                         kept=spec.stateful or predicts, keep_from=first if hand_carry else call.index)
            yield step
            if step.raises:
                return
            held = step.call
            if predicts:
                made.append(step.call)
        if predicts:
            returned = made


def _step(spec: Spec, facts: Facts, invocation: Invocation, call: Call, held: Call | None,
          returned: list[Call], fixed: bool, kept: bool, keep_from: int) -> Step:
    op, model_batch = invocation.op, invocation.batch_size
    slots = len(call.samples)
    if spec.stateful and slots != model_batch:
        if fixed:
            kind, message, pattern = first_trace_error(spec, facts, model_batch, slots)
            return Step(call, None, None, KerasError(call.index, kind, message, pattern))
        if slots == 1 and facts.broadcasts_one:
            call = dataclasses.replace(call, broadcast=model_batch)
        else:
            return Step(call, None, None, _raised(spec, facts, invocation, call))
    if spec.stateful and facts.carries and held is not None and not _resets_before(spec, invocation, call):
        return Step(call, held, np.arange(model_batch), kept=kept, keep_from=keep_from)
    if op.hand_carried and returned:
        # Sample k starts from the states the previous predict (split alike) returned for sample k.
        return Step(call, returned[call.batch], np.arange(slots), stride=op.samples, kept=kept, keep_from=keep_from)
    return Step(call, None, np.full(len(call.slot_samples), -1), kept=kept, keep_from=keep_from)


def _first_trace_fixes(spec: Spec, facts: Facts, invocation: Invocation, call: Call, traced: set[str]) -> bool:
    """Whether this call traces one of TensorFlow's compiled functions for the first time on
    the model, with a fixed batch dimension (every batch of the call the same size), so that
    Keras's own check sees the batch size; marks the function traced."""
    op = invocation.op
    first_of_pass = call.batch == 0 and (call.phase != Phase.TRAIN or call.epoch == op.initial_epoch)
    if facts.traces is None or not first_of_pass:
        return False
    entry = facts.traces["validation" if call.phase == Phase.VALIDATION else str(op.kind)]
    if entry in traced:
        return False
    traced.add(entry)
    size = op.batch_size or invocation.batch_size
    if op.kind == Kind.FIT:
        count = spec.fit_split(op) if call.phase == Phase.TRAIN else spec.fit_validation(op)
    else:
        count = op.samples
    if op.kind.one_batch:
        size = count
    return count % size == 0 or (facts.predict_fixes_short and op.kind == Kind.PREDICT and count < size)


def first_trace_error(spec: Spec, facts: Facts, expected: int, received: int) -> tuple[str, str, str]:
    """(type, message, pattern) of Keras's check on a batch dimension fixed by TensorFlow's
    trace: Keras 3's own message; Keras 2's input_spec check, naming the first layer."""
    if facts.keras == KerasVersion.THREE:
        message = stateful_batch_mismatch_message(expected, received)
        return "ValueError", message, re.escape(message)
    shapes = (f"expected shape=({expected}, None, {spec.features}), "
              f"found shape=({received}, {spec.timesteps}, {spec.features})")
    message = f'Input 0 of layer "{spec.cell.keras_name.lower()}" is incompatible with the layer: {shapes}'
    return "ValueError", message, r'Input 0 of layer "\w+" is incompatible with the layer: ' + re.escape(shapes)


_BATCH_BEGIN = {Phase.TRAIN: "on_train_batch_begin", Phase.VALIDATION: "on_test_batch_begin",
                Phase.EVALUATE: "on_test_batch_begin", Phase.PREDICT: "on_predict_batch_begin"}


def _raised(spec: Spec, facts: Facts, invocation: Invocation, call: Call) -> KerasError:
    kind, message, pattern = keras_error(facts, invocation.batch_size, len(call.samples), spec.units)
    when = ""
    if call.index == 0:  # the very first batch is already too small
        name = invocation.op.kind
        when = (f"while {name} builds its step function, before any batch begins" if facts.raises_before_first_batch
                else f"inside the first batch, after its {_BATCH_BEGIN[call.phase]} callback")
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


def fix_for_call(spec: Spec, index: int, terms: Terms = Terms()) -> str:
    """How to make the workflow's call that holds layer call `index` give its stateful layer
    batches of exactly the size the model was built for."""
    for invocation, calls in iter_invocations(spec):
        found = [call for call in calls if call.index == index]
        if not found:
            continue
        op, built = invocation.op, invocation.batch_size
        slots = len(found[0].samples)
        model = f"the {invocation.model} model" if invocation.model else "the model"
        if op.batch_size is not None and op.batch_size != built:
            return (f"{op} asks for batches of {op.batch_size:,} from {model}, built for {built:,}: make a "
                    f"stateful twin for them first (twin(batch_size={op.batch_size}), which takes the weights and "
                    f"starts from zeros), or call it with batch_size={built}")
        if op.kind.one_batch or slots != built and found[0].batch == 0 and op.kind != Kind.FIT:
            return (f"{op} sends {plural(slots, 'sample')} at once to {model}, built for batches of {built:,}: send "
                    f"{built:,}, or make a stateful twin for {slots:,} first (twin(batch_size={slots}))")
        total = spec.fit_split(op) if op.kind == Kind.FIT else op.samples
        what = f"fit's {total:,} training samples ({terms.name('samples')})" if op.kind == Kind.FIT \
            else f"the {total:,} samples of {op}"
        return (f"{what} end with a batch of {slots:,}: give it a multiple of {built:,} samples "
                f"(e.g. {max(built, total - total % built):,}), as drop_remainder does")
    raise ValueError(f"the workflow makes no layer call {index}")
