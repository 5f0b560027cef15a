"""The user's Keras workflow: the calls made on the model, in order, as `--calls` writes them.

`parse("fit(epochs=2, shuffle=False); predict(1) * 100")` reads Keras-like text with the
`ast` module (nothing is ever evaluated) into a `Workflow`: a tuple of `Op`s and `Repeat`s.
A repeat stays one node however large its count, so `ops()` hands the calls out one at a
time and a workflow of a million calls costs what its text costs. Anything outside the
accepted forms is a `SpecError` naming what was not understood.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from enum import StrEnum

from .choices import KerasVersion, Phase, Shuffle
from .digits import MAX_DIGITS
from .errors import SpecError


class Kind(StrEnum):
    FIT = "fit"
    EVALUATE = "evaluate"
    PREDICT = "predict"
    TRAIN_ON_BATCH = "train_on_batch"
    TEST_ON_BATCH = "test_on_batch"
    PREDICT_ON_BATCH = "predict_on_batch"
    RESET_STATE = "reset_state"
    SAVE_AND_LOAD = "save_and_load"
    TWIN = "twin"

    @property
    def runs_batches(self) -> bool:
        """Whether the model runs data (the others change the model or its state)."""
        return CALLS[self].runs_batches

    @property
    def one_batch(self) -> bool:
        """One layer call of all its samples, outside fit, evaluate and predict."""
        return CALLS[self].runs_batches and not CALLS[self].callbacks


class Source(StrEnum):
    """What fit, evaluate or predict is given: arrays (x, y), a tf.data.Dataset of the same
    samples, batched in order, a Python generator yielding those batches in order, round and
    round, or a keras.utils.PyDataset (tf-keras: keras.utils.Sequence) whose item i is the i-th
    of them."""

    ARRAYS = "arrays"
    DATASET = "dataset"
    GENERATOR = "generator"
    PYDATASET = "pydataset"


@dataclass(frozen=True)
class CallKind:
    """What one kind of call does, as the rest of the package needs to know it. A new kind is a
    row here, then a row in each table keyed by Kind (FACTS' traces, the mirror's and the oracle's
    model changes, the emitted snippets): tests/test_tables.py fails until every table has it."""

    form: str  # how --calls writes it, in the list of accepted forms
    keywords: tuple[str, ...] = ()  # the keywords it takes (Keras's names)
    counted: bool = False  # takes a sample count, e.g. predict(32)
    phase: Phase | None = None  # the phase its layer calls run in; None: none, or fit's own phases
    callbacks: bool = True  # whether Keras runs the callbacks it is given
    runs_batches: bool = True  # whether it runs the model on data at all
    batch_size: int | None = None  # Keras's batch_size when the call gives none; None: the model's


KERAS_BATCH_SIZE = 32  # fit's, evaluate's and predict's batch_size when none is given, as in Keras

CALLS: dict[Kind, CallKind] = {
    Kind.FIT: CallKind("fit(epochs=, batch_size=, shuffle=, validation_split=, validation_samples=, "
                       "validation_freq=, initial_epoch=, steps_per_epoch=, data=\"arrays\"|\"dataset\"|\"generator\"|"
                       "\"pydataset\", repeat=, drop_remainder=)",
                       ("epochs", "batch_size", "shuffle", "validation_split", "validation_samples",
                        "validation_freq", "initial_epoch", "steps_per_epoch", "data", "repeat", "drop_remainder"),
                       batch_size=KERAS_BATCH_SIZE),
    Kind.EVALUATE: CallKind("evaluate(n, batch_size=, steps=, data=, repeat=, drop_remainder=)",
                            ("batch_size", "steps", "data", "repeat", "drop_remainder"), counted=True,
                            phase=Phase.EVALUATE, batch_size=KERAS_BATCH_SIZE),
    Kind.PREDICT: CallKind('predict(n, batch_size=, steps=, initial_state="previous"|"zeros", data=, repeat=, '
                           "drop_remainder=)",
                           ("batch_size", "steps", "initial_state", "data", "repeat", "drop_remainder"), counted=True,
                           phase=Phase.PREDICT, batch_size=KERAS_BATCH_SIZE),
    Kind.TRAIN_ON_BATCH: CallKind("train_on_batch(n)", counted=True, phase=Phase.TRAIN, callbacks=False),
    Kind.TEST_ON_BATCH: CallKind("test_on_batch(n)", counted=True, phase=Phase.EVALUATE, callbacks=False),
    Kind.PREDICT_ON_BATCH: CallKind("predict_on_batch(n)", ("initial_state",), counted=True, phase=Phase.PREDICT,
                                    callbacks=False),
    Kind.RESET_STATE: CallKind("reset_state(slots=[i, j, ...])", ("slots",), runs_batches=False),
    Kind.SAVE_AND_LOAD: CallKind("save_and_load()", runs_batches=False),
    Kind.TWIN: CallKind("twin(batch_size=b, stateful=)", ("batch_size", "stateful"), runs_batches=False),
}


ALIASES = {"reset_states": Kind.RESET_STATE}  # Keras 2's name
PREVIOUS = "previous"  # initial_state="previous": the states the previous predict returned
ZEROS = "zeros"  # initial_state="zeros": zeros given as the states


@dataclass(frozen=True)
class Op:
    """One call on the model. Unset (None) settings take the command's: the model's batch
    size, and `--shuffle` for fit. `parse` sets Keras's own batch_size (32) on the fit, evaluate
    and predict calls that give none, as Keras does; the shorthand options' calls set the model's."""

    kind: Kind
    samples: int = 0  # evaluate, predict and the *_on_batch calls: how many samples
    batch_size: int | None = None
    epochs: int = 1
    shuffle: Shuffle | None = None
    validation_split: float = 0.0
    validation_samples: int = 0
    validation_freq: int = 1
    initial_epoch: int = 0
    initial_state: str | None = None
    stateful: bool | None = None  # twin: whether the twin is stateful; None: as the model it copies
    steps_per_epoch: int = 0  # fit: batches an epoch takes at most (0: a whole pass over the data)
    steps: int = 0  # evaluate, predict: the first batches only (0: all of them)
    data: Source = Source.ARRAYS  # fit, evaluate, predict: what it is given
    repeat: bool = False  # data="dataset": dataset.repeat(); "pydataset": no length, item i wraps round
    drop_remainder: bool = False  # given a stream: no partial batch (a PyDataset's length counts whole ones)
    slots: tuple[int, ...] = ()  # reset_state: the slots it zeroes, in order (none given: every slot)

    def __str__(self) -> str:
        """The call as --calls writes it, settings at their defaults (Keras's) left out."""
        arguments = [f"{self.samples}"] if CALLS[self.kind].counted else []
        for field in fields(self)[2:]:
            value = getattr(self, field.name)
            if value != field.default and not (field.name == "batch_size" and value == CALLS[self.kind].batch_size):
                shown = (f"[{', '.join(map(str, value))}]" if isinstance(value, tuple)
                         else repr(value.keras_value if isinstance(value, Shuffle) else value))
                arguments.append(f'{field.name}="{value}"' if isinstance(value, Source) else f"{field.name}={shown}")
        return f"{self.kind}({', '.join(arguments)})"

    @property
    def hand_carried(self) -> bool:
        return self.initial_state == PREVIOUS

    @property
    def gives_states(self) -> bool:
        """initial_state= given: the model takes its initial states as inputs."""
        return self.initial_state is not None

    @property
    def endless(self) -> bool:
        """Given a stream that never ends: a generator, a repeated dataset, a PyDataset of no length."""
        return self.data == Source.GENERATOR or self.repeat

    def run_batches(self, size: int) -> int:
        """evaluate's and predict's batches of `size` (a stream's partial last one dropped where it
        drops it): steps=K the first K, round and round an endless stream, of one that ends no more
        than it holds (measured: every backend, Keras 3 and tf-keras; arrays likewise)."""
        per_pass = self.samples // size if self.drop_remainder else math.ceil(self.samples / size)
        if self.endless:
            return self.steps
        return min(per_pass, self.steps) if self.steps else per_pass

    def fit_shuffle(self, default: Shuffle) -> Shuffle:
        """The shuffle fit applies: its own, else the command's (`default`), to what Keras shuffles:
        arrays' samples, and a PyDataset's batch order ("batch" as True: it has no other), each
        epoch; never a dataset, a generator or a PyDataset of no length (measured: every backend)."""
        shuffle = default if self.shuffle is None else self.shuffle
        if self.data == Source.ARRAYS:
            return shuffle
        return Shuffle.TRUE if self.data == Source.PYDATASET and not self.repeat and shuffle else Shuffle.FALSE

    def restarts_passes(self, keras: KerasVersion) -> bool:
        """tf-keras's Sequence: every epoch starts a new pass, steps_per_epoch=K its first K batches."""
        return keras == KerasVersion.TWO and self.data == Source.PYDATASET

    def chains_passes(self, keras: KerasVersion) -> bool:
        """Whether fit's epochs take steps_per_epoch batches each from passes over the data run end
        to end: an endless stream, and tf-keras's arrays (repeated); elsewhere (Keras 3's arrays, a
        dataset run once) an epoch also ends where a pass does, and the next begins a new pass."""
        return self.endless or keras == KerasVersion.TWO and self.data == Source.ARRAYS

    def training_calls(self, per_pass: int, keras: KerasVersion) -> int:
        """The training batches of this fit, for `per_pass` batches in one pass over its data."""
        epochs, most = self.epochs - self.initial_epoch, self.steps_per_epoch
        if not most:
            return epochs * per_pass
        if self.restarts_passes(keras):
            return epochs * min(most, per_pass)
        if self.chains_passes(keras):
            return epochs * most
        epochs_a_pass = math.ceil(per_pass / most)
        return epochs // epochs_a_pass * per_pass + epochs % epochs_a_pass * most


@dataclass(frozen=True)
class Repeat:
    """`body * times`: the calls of `body`, `times` times over."""

    body: tuple[Op | Repeat, ...]
    times: int

    def __str__(self) -> str:
        inner = text(self.body)
        inner = f"({inner.replace('; ', ', ')})" if len(self.body) > 1 else inner
        return f"{inner} * {self.times}"


Workflow = tuple[Op | Repeat, ...]

FORMS = (", ".join(row.form for row in CALLS.values()) + ", separated by ';', and repeats: call * k or "
         "(call, call) * k")
MAX_REPEAT = 10**8  # as many layer calls as the command follows at most
MAX_DEPTH = 32  # repeats inside repeats: far more than any workflow needs, far less than Python's stack


def _refuse(what: str, node: ast.AST | None = None, source: str = "") -> SpecError:
    shown = ast.get_source_segment(source, node) if node is not None and source else None
    # The user's text goes in as a value, never into the template: "{...}" in it stays text.
    return SpecError("workflow", "{workflow}: {what}{where}; accepted: {forms}", what=what,
                     where=f" in `{shown}`" if shown else "", forms=FORMS)


def parse(source: str) -> Workflow:
    """The workflow `source` writes, or SpecError naming the first thing not understood."""
    if len(source) > 100_000:
        raise SpecError("workflow", "{workflow} is longer than 100,000 characters: use a repeat (call * k)")
    try:
        tree = ast.parse(source.strip(), mode="exec")
    except SyntaxError as error:
        raise SpecError("workflow", "{workflow} is not understood: {why} at column {column}; accepted: {forms}",
                        why=error.msg, column=error.offset or 0, forms=FORMS) from None
    except (RecursionError, MemoryError):
        raise SpecError("workflow", f"{{workflow}} nests too deep: at most {MAX_DEPTH} repeats inside "
                        "one another") from None
    if not tree.body:
        raise SpecError("workflow", "{workflow} is empty; accepted: {forms}", forms=FORMS)
    items: list[Op | Repeat] = []
    for statement in tree.body:
        if not isinstance(statement, ast.Expr):
            raise _refuse("only calls are understood", statement, source)
        items.append(_item(statement.value, source, 0))
    return tuple(items)


def _negative(node: ast.expr) -> bool:
    return isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and _is_int(node.operand)


def _item(node: ast.expr, source: str, depth: int) -> Op | Repeat:
    if depth > MAX_DEPTH:
        raise _refuse(f"repeats nest more than {MAX_DEPTH} deep", node, source)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        counted = _is_int(node.right) or _negative(node.right)
        body, count = (node.left, node.right) if counted else (node.right, node.left)
        if not (_is_int(count) or _negative(count)):
            raise _refuse("a repeat is a call or a tuple of calls times a whole number", node, source)
        times = _count(count, "a repeat count", source, minimum=1, maximum=MAX_REPEAT)
        parts = body.elts if isinstance(body, ast.Tuple) else [body]
        if not parts:
            raise _refuse("a repeat needs at least one call", node, source)
        return Repeat(tuple(_item(part, source, depth + 1) for part in parts), times)
    if isinstance(node, ast.Tuple):
        raise _refuse("a tuple of calls needs a repeat count (… * k); separate single calls with ';'", node, source)
    if not isinstance(node, ast.Call):
        raise _refuse("not a call", node, source)
    return _op(node, source)


def _is_int(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _count(node: ast.expr, what: str, source: str, minimum: int, maximum: int | None = None) -> int:
    if _negative(node):
        raise _refuse(f"{what} must be at least {minimum}", node, source)
    if not _is_int(node):
        raise _refuse(f"{what} must be a whole number", node, source)
    value = node.value  # type: ignore[attr-defined]
    if abs(value) >= 10**MAX_DIGITS:  # compared, not printed: str() of 4,300 digits raises
        raise _refuse(f"{what} has more than {MAX_DIGITS} digits", node, source)
    if value < minimum:
        raise _refuse(f"{what} must be at least {minimum}", node, source)
    if maximum is not None and value > maximum:
        raise _refuse(f"{what} must be at most {maximum:,}", node, source)
    return int(value)


def _name(node: ast.Call, source: str) -> Kind:
    function = node.func
    if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) and function.value.id == "model":
        name = function.attr  # model.predict(...) reads as predict(...)
    elif isinstance(function, ast.Name):
        name = function.id
    else:
        raise _refuse("only plain calls (or model.<call>) are understood", node, source)
    if name in ALIASES:
        return ALIASES[name]
    try:
        return Kind(name)
    except ValueError:
        raise _refuse(f"unknown call {name}()", node, source) from None


def _op(node: ast.Call, source: str) -> Op:
    kind = _name(node, source)
    settings: dict[str, object] = {}
    if CALLS[kind].counted:
        if len(node.args) != 1:
            raise _refuse(f"{kind} takes one sample count, e.g. {kind}(32)", node, source)
        settings["samples"] = _count(node.args[0], f"{kind}'s sample count", source, minimum=1)
    elif kind == Kind.TWIN and len(node.args) == 1:
        # twin(1, stateful=True) as twin(batch_size=1, stateful=True)
        node = ast.Call(node.func, [], [ast.keyword("batch_size", node.args[0]), *node.keywords])
    elif node.args:
        raise _refuse(f"{kind} takes no positional argument", node, source)
    seen = set()
    for keyword in node.keywords:
        name = keyword.arg
        if name is None or name not in CALLS[kind].keywords:
            accepted = ", ".join(CALLS[kind].keywords) or "none"
            raise _refuse(f"{kind} takes no keyword {name or '**'} (its keywords: {accepted})", node, source)
        if name in seen:
            raise _refuse(f"{name} given twice", node, source)
        seen.add(name)
        settings[name] = _keyword_value(name, keyword.value, source)
    if kind == Kind.TWIN and "batch_size" not in settings:
        raise _refuse("twin needs batch_size=b, the batch size it is built for", node, source)
    if CALLS[kind].batch_size is not None:
        settings.setdefault("batch_size", CALLS[kind].batch_size)
    op = Op(kind, **settings)  # type: ignore[arg-type]
    if op.validation_split and op.validation_samples:
        raise _refuse("validation_split and validation_samples both give validation data: choose one",
                      node, source)
    _check_source(op, node, source)
    if op.initial_epoch >= op.epochs:
        raise _refuse("initial_epoch must be below epochs (Keras runs epochs initial_epoch..epochs-1)",
                      node, source)
    return op


def _check_source(op: Op, node: ast.Call, source: str) -> None:
    """What Keras refuses, or never finishes, among the data settings."""
    if op.repeat and op.data not in (Source.DATASET, Source.PYDATASET):
        raise _refuse('repeat is the dataset\'s .repeat(), or a PyDataset of no length: it needs data="dataset" '
                      'or data="pydataset"', node, source)
    if op.drop_remainder and op.data == Source.ARRAYS:
        raise _refuse('drop_remainder is the batching of a stream: it needs data="dataset", "generator" or '
                      '"pydataset"', node, source)
    if op.endless and not (op.steps_per_epoch or op.steps):
        needed, never = (("steps_per_epoch=K", "Keras's first epoch never ends") if op.kind == Kind.FIT
                         else ("steps=K", f"Keras's {op.kind} never ends"))
        raise _refuse("an endless stream (a generator, a repeated dataset, a PyDataset of no length) needs "
                      f"{needed}: without it {never}", node, source)
    if op.steps and op.hand_carried:
        raise _refuse('steps= runs part of the samples, whose states initial_state="previous" hands to the next '
                      "predict: give the predict fewer samples instead", node, source)
    if op.gives_states and op.data != Source.ARRAYS:
        raise _refuse("initial_state= hands the states in beside the inputs, as arrays: give the "
                      "predict arrays (no data=)", node, source)
    if op.validation_split and op.data != Source.ARRAYS:
        raise _refuse("Keras raises ValueError: `validation_split` is only supported for Tensors or NumPy arrays: "
                      "give a dataset or generator validation_samples instead", node, source)


def _keyword_value(name: str, node: ast.expr, source: str) -> object:
    if name == "shuffle":
        value = node.value if isinstance(node, ast.Constant) else None
        if value is True or value is False or value == "batch":
            return Shuffle.of(value)
        raise _refuse("shuffle is True, False or \"batch\"", node, source)
    if name == "validation_split":
        value = node.value if isinstance(node, ast.Constant) and type(node.value) in (int, float) else None
        if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value < 1):
            raise _refuse("validation_split is a number from 0 up to (not including) 1", node, source)
        return float(value)
    if name in ("repeat", "drop_remainder", "stateful"):
        if not (isinstance(node, ast.Constant) and type(node.value) is bool):
            raise _refuse(f"{name} is True or False", node, source)
        return node.value
    if name == "data":
        value = node.value if isinstance(node, ast.Constant) else None
        if value not in {member.value for member in Source}:
            raise _refuse('data is "arrays", "dataset", "generator" or "pydataset" (a keras.utils.PyDataset; '
                          "tf-keras's Sequence)", node, source)
        return Source(value)
    if name == "slots":
        return _slots(node, source)
    if name == "initial_state":
        if not (isinstance(node, ast.Constant) and node.value in (PREVIOUS, ZEROS)):
            raise _refuse("initial_state takes \"previous\" (the states the previous predict returned) or "
                          "\"zeros\"", node, source)
        return str(node.value)
    minimum = 0 if name in ("validation_samples", "initial_epoch") else 1
    return _count(node, name, source, minimum=minimum)


MAX_SLOTS = 10**6  # slots one reset_state may name: more than any batch this tool follows


def _slots(node: ast.expr, source: str) -> tuple[int, ...]:
    """reset_state(slots=[1, 3]): the slots to zero, each once, as a list or tuple of whole numbers."""
    if not isinstance(node, ast.List | ast.Tuple) or not node.elts:
        raise _refuse("slots is a list of the slots to zero, e.g. slots=[1, 3]", node, source)
    if len(node.elts) > MAX_SLOTS:
        raise _refuse(f"slots names more than {MAX_SLOTS:,} slots", node, source)
    found = tuple(_count(element, "a slot", source, minimum=0) for element in node.elts)
    if len(set(found)) != len(found):
        raise _refuse("slots names a slot twice", node, source)
    return tuple(sorted(found))


def check_slots(workflow: Workflow, batch_size: int, stateful: bool) -> tuple[int, bool]:
    """SpecError for a reset_state(slots=...) naming a slot its model does not have, or made on a
    stateless model (it has no states to zero); returns the batch size and statefulness after the
    workflow, for a model of `batch_size` that is `stateful` or not (a twin may change both). A
    repeat's body is checked twice at most: after one pass its last twin has set them for good."""
    for item in workflow:
        if isinstance(item, Repeat):
            after = check_slots(item.body, batch_size, stateful)
            if item.times > 1 and after != (batch_size, stateful):
                after = check_slots(item.body, *after)
            batch_size, stateful = after
        elif item.kind == Kind.TWIN:
            batch_size = item.batch_size or batch_size
            stateful = stateful if item.stateful is None else item.stateful
        elif item.slots and not stateful:
            raise SpecError("workflow", "{workflow}: " + f"{item} zeroes slots of a stateful layer's states, and the "
                            "model is stateless there: it holds none")
        elif item.slots and item.slots[-1] >= batch_size:
            raise SpecError("workflow", "{workflow}: " + f"{item} names slot {item.slots[-1]} of a model of batch "
                            f"size {batch_size} (slots 0 to {batch_size - 1})")
    return batch_size, stateful


def text(workflow: Workflow) -> str:
    """The workflow as --calls writes it (parse(text(w)) == w)."""
    return "; ".join(str(item) for item in workflow)


def ops(workflow: Workflow) -> Iterator[Op]:
    """Every call, repeats unrolled one call at a time."""
    for item in workflow:
        if isinstance(item, Op):
            yield item
        else:
            for _ in range(item.times):
                yield from ops(item.body)


def stateful_kinds(workflow: Workflow, stateful: bool,
                   seen: dict[tuple[int, bool], tuple[set[Kind], bool]] | None = None) -> tuple[set[Kind], bool]:
    """The kinds of call the workflow makes on a stateful model, and whether the model is stateful
    after it, for the workflow run on a model that is `stateful` or not (a twin may change it). A
    repeat's body counts twice at most: after its first pass its last twin has set it for good."""
    seen = {} if seen is None else seen
    key = (id(workflow), stateful)
    if key not in seen:
        kinds, now = set(), stateful
        for item in workflow:
            if isinstance(item, Op):
                now = now if item.kind != Kind.TWIN or item.stateful is None else item.stateful
                kinds |= {item.kind} if now else set()
                continue
            inner, after = stateful_kinds(item.body, now, seen)
            if item.times > 1 and after != now:
                inner = inner | stateful_kinds(item.body, after, seen)[0]
            kinds, now = kinds | inner, after
        seen[key] = (kinds, now)
    return seen[key]


def distinct(workflow: Workflow) -> set[Op]:
    """Each different call the workflow makes."""
    found: set[Op] = set()
    for item in workflow:
        found |= {item} if isinstance(item, Op) else distinct(item.body)
    return found
