"""The user's setup: what `model.fit(...)` and `model.predict(...)` are called with.

A `Spec` is frozen and validated on construction, so every later stage can trust it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .choices import Backend, Cell, KerasVersion, Phase, ResetPolicy, Shuffle, default_backend
from .digits import MAX_DIGITS, is_number, too_long
from .errors import SpecError
from .frames import DEFAULT_DATA_FORMAT, DEFAULT_KERNEL, DEFAULT_PADDING, check_frames, state_shape, step_shape, values
from .lengths import DEFAULT_PAD, DataMask, Lengths, check_lengths
from .replicas import check_replicas
from .workflow import Kind, Op, Repeat, Source, Workflow, check_slots, distinct, parse, text


def parse_shape(text: str) -> tuple[int, ...]:
    """`N,T,F` as three positive integers, or `N,T,H,W,C` as five (ConvLSTM2D's images); blanks
    around the numbers are allowed."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) not in (3, 5):
        raise SpecError("shape", "expected N,T,F (samples,timesteps,features), or N,T,H,W,C for an image per "
                        "timestep (--cell convlstm2d), got {got!r}", got=text)
    names = "N, T and F" if len(parts) == 3 else "N, T, H, W and C"
    if not all(is_number(part) for part in parts):
        raise SpecError("shape", names + " must be positive integers, got {got!r}", got=text)
    if any(too_long(part) for part in parts):
        raise SpecError("shape", f"{names} have at most {MAX_DIGITS} digits")
    numbers = tuple(int(part) for part in parts)
    if min(numbers) < 1:
        raise SpecError("shape", names + " must be positive integers, got {got!r}", got=text)
    return numbers


@dataclass(frozen=True)
class Spec:
    samples: int
    timesteps: int
    features: int
    batch_size: int = 32
    stateful: bool = False
    epochs: int = 1
    shuffle: Shuffle = Shuffle.TRUE  # also takes True, False or "batch", as fit does
    reset: ResetPolicy = ResetPolicy()  # also takes its text: "never", "epoch", "every:K"
    val_samples: int = 0
    predict_samples: int = 0
    units: int = 8
    seed: int = 0
    cell: Cell = Cell.LSTM
    layers: int = 1
    bidirectional: bool = False
    keras: KerasVersion = KerasVersion.THREE
    # None: the backend Keras would pick itself (default_backend), TensorFlow for Keras 2.
    backend: Backend = None  # type: ignore[assignment]
    # The calls made on the model (also as --calls text); None: fit (epochs, val_samples),
    # then predict (predict_samples) when asked for.
    workflow: Workflow | None = None
    # Whether the model's input fixes the batch size (keras.Input(batch_shape=(B, T, F))); a
    # stateful layer needs it, and Keras refuses to build one without.
    fixed_batch: bool = True
    # tf.distribute.MirroredStrategy over this many replicas (1: none): batch_size is then the
    # global batch, and the model is built for its share per replica (core/replicas.py).
    replicas: int = 1
    # ConvLSTM2D (cell "convlstm2d"): each timestep an image of frame = (H, W) pixels of `features`
    # channels, the layer's kernel_size, padding and data_format (core/frames.py); units are its filters.
    frame: tuple[int, int] | None = None
    kernel: int = DEFAULT_KERNEL
    padding: str = DEFAULT_PADDING
    data_format: str = DEFAULT_DATA_FORMAT
    # Padded sequences (core/lengths.py): each sample's valid timesteps (also as text: "5,3,4",
    # "2-5"), where the padding goes, and whether keras.layers.Masking(0.0) masks it.
    lengths: Lengths = Lengths()
    pad: str = DEFAULT_PAD
    mask: bool = True
    # --mask-value V with --data: each sample's mask read from the user's rows (a step masked where
    # every feature equals V), in place of made padding (core/lengths.py).
    data_mask: DataMask | None = None
    # The layers' go_backwards=True: each call runs its timesteps last to first.
    go_backwards: bool = False

    def __post_init__(self) -> None:
        self._check_types()
        self._choose()
        self._check_numbers()
        if isinstance(self.workflow, str):
            object.__setattr__(self, "workflow", parse(self.workflow))
        if self.workflow is not None:
            self._check_workflow()
        if self.stateful and not self.fixed_batch:
            raise SpecError("fixed_batch", "{stateful} with {fixed_batch}: " + unbuildable_stateful(self))
        if self.reset and not self.any_stateful:
            # A stateless layer holds no state between calls: a reset callback would
            # change nothing, so asking for one is a misunderstanding worth stopping.
            twin = " (or a twin built with stateful=True)" if self.workflow is not None else ""
            raise SpecError("reset", "{reset} {policy} needs {stateful}{twin}: a stateless layer starts every "
                            "batch from zeros already", policy=str(self.reset), twin=twin)
        check_replicas(self)
        check_frames(self)
        check_lengths(self)
        if self.takes_states and self.padded and self.mask and self.keras == KerasVersion.THREE:
            # Measured (tests/test_backends.py, the masked-start probe), torch, TensorFlow and JAX alike.
            raise SpecError("workflow", "{workflow}: initial_state= with a mask is not followed on Keras 3: there the "
                            "layer called with initial_state= drops the mask (Layer.__call__ fills in mask= only "
                            "for a call of one tensor argument), so the padding runs as input; pass mask= to the "
                            "layer yourself, or give {mask}, or {keras} 2, where the mask holds")
        if self.go_backwards and self.bidirectional:
            raise SpecError("go_backwards", "{go_backwards} with {bidirectional} is not followed: Bidirectional "
                            "already runs its backward layer last to first (give one of them)")

    def _choose(self) -> None:
        """The choices as enums, from their values (and keras=3 as well as keras="3")."""
        if isinstance(self.keras, int) and not isinstance(self.keras, bool):
            object.__setattr__(self, "keras", str(self.keras))
        for name, choice in (("cell", Cell), ("keras", KerasVersion), ("backend", Backend)):
            value = getattr(self, name)
            if value is not None and value not in {member.value for member in choice}:
                raise SpecError(name, f"{{{name}}} is one of {', '.join(member.value for member in choice)}, "
                                "got {got!r}", got=value)
        object.__setattr__(self, "cell", Cell(self.cell))
        object.__setattr__(self, "keras", KerasVersion(self.keras))
        if self.backend is None:
            object.__setattr__(self, "backend", Backend.TENSORFLOW if self.keras == KerasVersion.TWO
                               else default_backend())
        object.__setattr__(self, "backend", Backend(self.backend))
        if self.keras == KerasVersion.TWO and self.backend != Backend.TENSORFLOW:
            raise SpecError("backend", "{keras} 2 (tf-keras) runs on TensorFlow only, not on {got}",
                            got=str(self.backend))
        object.__setattr__(self, "shuffle", Shuffle.of(self.shuffle))
        if isinstance(self.reset, str):
            object.__setattr__(self, "reset", ResetPolicy.parse(self.reset))

    def _check_types(self) -> None:
        """Ints are ints (not booleans, not floats), flags are booleans, the workflow its text or a
        parsed one, the reset its text or a policy: what the rest of the package may trust."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _INTS and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
                raise SpecError(field.name, f"{{{field.name}}} must be a whole number, got {{got!r}}", got=value)
            if field.name in _FLAGS and not isinstance(value, bool):
                raise SpecError(field.name, f"{{{field.name}}} must be True or False, got {{got!r}}", got=value)
        if not (self.workflow is None or isinstance(self.workflow, str | tuple)):
            raise SpecError("workflow", "{workflow} is text (as --calls writes it) or a parsed workflow, got {got!r}",
                            got=self.workflow)
        self._check_frame_types()
        if isinstance(self.lengths, str):
            object.__setattr__(self, "lengths", Lengths.parse(self.lengths))
        if not isinstance(self.lengths, Lengths):
            raise SpecError("lengths", "{lengths} is text (\"5,3,4\", \"2-5\") or Lengths, got {got!r}",
                            got=self.lengths)
        if self.data_mask is not None:
            object.__setattr__(self, "data_mask", DataMask.of(self.data_mask))
        if not isinstance(self.pad, str):
            raise SpecError("pad", "{pad} is \"post\" or \"pre\", got {got!r}", got=self.pad)
        if not isinstance(self.reset, str | ResetPolicy):
            raise SpecError("reset", "{reset} is text (e.g. \"epoch\") or a ResetPolicy, got {got!r}", got=self.reset)
        for name in _INTS:
            object.__setattr__(self, name, int(getattr(self, name)))  # numpy's integers as Python's

    def _check_frame_types(self) -> None:
        """frame: two whole numbers (a list from JSON too), or None; padding and data_format: text."""
        frame = self.frame
        if frame is not None:
            if not (isinstance(frame, tuple | list) and len(frame) == 2 and all(
                    isinstance(side, numbers.Integral) and not isinstance(side, bool) for side in frame)):
                raise SpecError("frame", "{frame} is (H, W), two whole numbers, got {got!r}", got=frame)
            if min(frame) < 1 or max(frame) >= 10**MAX_DIGITS:
                raise SpecError("frame", f"{{frame}}'s H and W are positive, of at most {MAX_DIGITS} digits")
            object.__setattr__(self, "frame", (int(frame[0]), int(frame[1])))
        if not isinstance(self.padding, str):
            raise SpecError("padding", "{padding} is \"valid\" or \"same\", got {got!r}", got=self.padding)
        if not isinstance(self.data_format, str):
            raise SpecError("data_format", "{data_format} is \"channels_last\" or \"channels_first\", got {got!r}",
                            got=self.data_format)

    def _check_numbers(self) -> None:
        positive = {"samples": self.samples, "timesteps": self.timesteps, "features": self.features,
                    "batch_size": self.batch_size, "epochs": self.epochs, "units": self.units,
                    "layers": self.layers, "kernel": self.kernel}
        for name, value in positive.items():
            if value < 1:
                raise SpecError(name, f"{{{name}}} must be a positive integer")
        for name in _INTS:
            if abs(getattr(self, name)) >= 10**MAX_DIGITS:
                raise SpecError(name, f"{{{name}}} has at most {MAX_DIGITS} digits")
        for name in ("val_samples", "predict_samples"):
            if getattr(self, name) < 0:
                raise SpecError(name, f"{{{name}}} must be zero or positive")
        if not 0 <= self.seed < 2**32:
            raise SpecError("seed", "{seed} must be between 0 and 2**32 - 1")

    def _check_workflow(self) -> None:
        shorthand = {"epochs": 1, "val_samples": 0, "predict_samples": 0}
        given = [name for name, default in shorthand.items() if getattr(self, name) != default]
        if given:
            raise SpecError("workflow", "{workflow} writes the whole workflow: " + ", ".join(
                f"{{{name}}}" for name in given) + " would add to it; write them in it (fit(epochs=...), "
                "fit(validation_samples=...), predict(n))")
        if self.takes_states:
            self._check_hand_carry()
        check_slots(self.plan, self.batch_size, self.stateful)
        if self.replicas > 1 and any(op.slots for op in _distinct(self.workflow)):
            raise SpecError("workflow", "{workflow}: reset_state(slots=...) with {replicas} is not followed: each "
                            "replica holds its own slots")
        for op in _distinct(self.workflow):
            self._check_runs_out(op)

    def _check_runs_out(self, op: Op) -> None:
        """A dataset run once, whose batches run out before fit's last epoch: tf-keras then stops
        fit; and a stream that drops its only, partial batch holds no batch at all (an endless
        generator then never yields)."""
        if op.data == Source.ARRAYS:
            return
        size = op.batch_size or self.batch_size
        samples = self.samples if op.kind == Kind.FIT else op.samples
        if op.drop_remainder and samples < size:
            raise SpecError("workflow", "{workflow}: " + f"{op}: drop_remainder=True drops the only batch, of "
                            f"{samples} samples, fewer than batch_size={size}: the data hold no batch")
        per_pass = samples // size if op.drop_remainder else math.ceil(samples / size)
        if op.kind != Kind.FIT:
            if self.keras == KerasVersion.TWO and op.data == Source.PYDATASET and op.repeat:
                self._check_sequence(op, per_pass)
            return
        if self.keras == KerasVersion.TWO and op.data == Source.PYDATASET:
            self._check_sequence(op, per_pass)
            return
        if self.keras == KerasVersion.TWO and not op.endless and op.steps_per_epoch and \
                (op.epochs - op.initial_epoch) * op.steps_per_epoch > per_pass:
            raise SpecError("workflow", "{workflow}: " + f"{op}: its dataset holds {per_pass} batches, fewer than "
                            f"steps_per_epoch x epochs: tf-keras stops fit where they run out (\"Your input ran out "
                            "of data; interrupting training\"); repeat the dataset (repeat=True), as it asks")

    def _check_sequence(self, op: Op, per_pass: int) -> None:
        """tf-keras takes a keras.utils.Sequence, every epoch from its first item (measured)."""
        if op.repeat:
            raise SpecError("workflow", "{workflow}: " + f"{op}: tf-keras's keras.utils.Sequence has a length, and "
                            "every epoch starts again from its first item: there is no endless one; give "
                            "data=\"generator\" for an endless stream")
        if op.steps_per_epoch > per_pass:
            raise SpecError("workflow", "{workflow}: " + f"{op}: the Sequence holds {per_pass} batches, fewer than "
                            "steps_per_epoch: tf-keras stops fit at the end of its first epoch (\"Your input ran "
                            f"out of data; interrupting training\"); give steps_per_epoch={per_pass} at most")

    def _check_hand_carry(self) -> None:
        """initial_state= as lstm-inspect follows it: in a workflow of predicts; "previous" after a
        predict of one sample count, each batch of it within one batch of the predict before."""
        others = {op.kind for op in _distinct(self.workflow)} - {Kind.PREDICT, Kind.PREDICT_ON_BATCH,
                                                               Kind.RESET_STATE, Kind.SAVE_AND_LOAD}
        if others:
            raise SpecError("workflow", "{workflow}: initial_state= is followed in a workflow of "
                            "predict calls (predict, predict_on_batch, reset_state, save_and_load), not "
                            + ", ".join(sorted(others)) + ": a model taking its states as inputs is trained "
                            "through another one")
        for before, after in sorted(_predict_pairs(self.workflow or ())[2], key=str):
            if not after.hand_carried:
                continue
            if before.samples != after.samples:
                raise SpecError("workflow", "{workflow}: " + f"{after} takes back the states {before} returned, one "
                                "per sample: the predicts carried by hand must run as many samples")
            held, size = self._predict_batch(before), self._predict_batch(after)
            if held % size and held != before.samples:
                raise SpecError("workflow", "{workflow}: " + f"{after} takes back the states {before} returned in "
                                f"batches of {held:,}: its batches of {size:,} would each start from two of them, "
                                "which lstm-inspect does not follow yet (Keras runs it); use a batch_size that "
                                f"divides {held:,}")

    def _predict_batch(self, op: Op) -> int:
        """The batch Keras splits a predict into: predict(2) and predict(2, batch_size=2) are one batch of 2."""
        return op.samples if op.kind.one_batch else min(op.batch_size or self.batch_size, op.samples)

    @property
    def plan(self) -> Workflow:
        """The workflow: as given, or the one the shorthand settings describe (fit, then predict,
        with the model's batch size)."""
        if self.workflow is not None:
            return self.workflow
        fit = Op(Kind.FIT, epochs=self.epochs, validation_samples=self.val_samples, batch_size=self.batch_size)
        return ((fit, Op(Kind.PREDICT, self.predict_samples, batch_size=self.batch_size)) if self.predict_samples
                else (fit,))

    def fit_split(self, op: Op) -> int:
        """The training samples a fit takes: the first N(1 - validation_split), floored, as Keras."""
        return math.floor(self.samples * (1.0 - op.validation_split)) if op.validation_split else self.samples

    def empty_split_part(self, op: Op) -> str:
        """"training" or "validation" where a fit's validation_split leaves that part no sample (Keras
        raises ValueError when that fit starts, before any batch, the calls before it run); else ""."""
        if op.kind != Kind.FIT or not op.validation_split:
            return ""
        train = self.fit_split(op)
        return "training" if train == 0 else "validation" if train == self.samples else ""

    def fit_validation(self, op: Op) -> int:
        """The samples a fit validates on: the rest of N after validation_split, or validation_samples."""
        return self.samples - self.fit_split(op) if op.validation_split else op.validation_samples

    def samples_of(self, op: Op, phase: Phase) -> int:
        """The samples one pass of `op` runs in `phase`: fit's training or validation samples,
        or the call's own."""
        if op.kind != Kind.FIT:
            return op.samples
        return self.fit_split(op) if phase == Phase.TRAIN else self.fit_validation(op)

    @functools.cached_property
    def hand_carried(self) -> bool:
        """Whether the workflow passes states back by hand (initial_state="previous")."""
        return any(op.hand_carried for op in _distinct(self.workflow))

    @functools.cached_property
    def takes_states(self) -> bool:
        """Whether the model takes its initial states as inputs (any initial_state=): every call then
        gives them, zeros where it names none."""
        return any(op.gives_states for op in _distinct(self.workflow))

    @functools.cached_property
    def any_stateful(self) -> bool:
        """Whether a model of the workflow is stateful: the one built first, or a twin built so."""
        return self.stateful or any(op.stateful for op in _distinct(self.workflow))

    @property
    def carries(self) -> bool:
        """Whether any state can pass from one call to another: stateful, and more than one call."""
        return self.any_stateful and self.calls > 1

    @property
    def step_shape(self) -> tuple[int, ...]:
        """One timestep of one sample: (F,), or (H, W, C) for ConvLSTM2D."""
        return step_shape(self)

    @property
    def step_values(self) -> int:
        return values(self.step_shape)

    @property
    def state_shape(self) -> tuple[int, ...]:
        """One slot's h (or c) in one layer and direction: (units,), or (H', W', filters) for ConvLSTM2D."""
        return state_shape(self)

    @property
    def state_width(self) -> int:
        """The values of one slot's h (or c) in one layer and direction, as the checks read them."""
        return values(self.state_shape)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def layer_name(self) -> str:
        """How the verdict names the model, e.g. "2-layer bidirectional GRU"."""
        stack = f"{self.layers}-layer " if self.layers > 1 else ""
        return f"{stack}{'bidirectional ' if self.bidirectional else ''}{self.cell.keras_name}"

    @property
    def batches_per_epoch(self) -> int:
        """Training batches in each epoch, the last one partial where B does not divide N."""
        return math.ceil(self.samples / self.batch_size)

    @functools.cached_property
    def _counts(self) -> tuple[int, int, int]:
        return _tally(self, self.plan, self.batch_size, {})

    @property
    def calls(self) -> int:
        """Layer calls the workflow makes, if nothing raises (counted, never unrolled)."""
        return self._counts[0]

    @property
    def largest_batch(self) -> int:
        """The most slots any call fills."""
        return self._counts[2]

    def order_bytes(self) -> int:
        """Memory of one epoch's training order, which even a dry run holds (4 or 8 bytes a sample)."""
        return self.samples * (4 if self.samples < 2**31 else 8)

    @property
    def padded(self) -> bool:
        """Whether any sample has masked or padded steps: made ones (lengths), or the data's own."""
        return bool(self.lengths) or self.data_mask is not None and self.data_mask.layout.padded > 0

    @property
    def mask_value(self) -> float:
        """The value Masking masks: the data's (--mask-value), or the zeros of made padding."""
        return 0.0 if self.data_mask is None else self.data_mask.value

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        # As every file before the setting: a default left out.
        usual: dict[str, Any] = {"fixed_batch": True, "replicas": 1, "lengths": dataclasses.asdict(Lengths()),
                                 "pad": DEFAULT_PAD, "mask": True, "go_backwards": False, "data_mask": None}
        if not self.cell.convolutional:
            usual.update(frame=None, kernel=DEFAULT_KERNEL, padding=DEFAULT_PADDING, data_format=DEFAULT_DATA_FORMAT)
        for name, value in usual.items():
            if fields[name] == value:
                del fields[name]
        if self.lengths:  # the padding settings always said with it
            fields.update(lengths=str(self.lengths), pad=self.pad, mask=self.mask)
        if self.data_mask is not None:
            fields.update(mask=self.mask)
        fields.update(shuffle=self.shuffle.keras_value, reset=str(self.reset), cell=str(self.cell),
                      keras=str(self.keras), backend=str(self.backend),
                      workflow=None if self.workflow is None else text(self.workflow), calls=text(self.plan))
        return fields

    @classmethod
    def from_json(cls, fields: Mapping[str, Any]) -> Spec:
        """The spec `to_json` wrote."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in fields.items() if name in names})


_INTS = ("samples", "timesteps", "features", "batch_size", "epochs", "val_samples", "predict_samples", "units",
         "seed", "layers", "replicas", "kernel")
_FLAGS = ("stateful", "bidirectional", "fixed_batch", "mask", "go_backwards")


def unbuildable_stateful(spec: Spec) -> str:
    """What Keras raises building a stateful layer on an input of no fixed batch size, and the fix."""
    b, sample = spec.batch_size, ", ".join(str(size) for size in (spec.timesteps, *spec.step_shape))
    if spec.keras == KerasVersion.TWO:
        said = ("If a RNN is stateful, it needs to know its batch size. Specify the batch size of your input "
                "tensors")
        fix = f"batch_input_shape=({b}, {sample}) on the first layer, or keras.Input(batch_shape=({b}, {sample}))"
    else:
        said = (f"When using `stateful=True` in a RNN, the batch size must be static. Found dynamic batch size: "
                f"sequence.shape=(None, {sample})")
        fix = f"keras.Input(batch_shape=({b}, {sample})), or keras.Input(shape=({sample}), batch_size={b})"
    return (f"Keras raises ValueError when the model is built, before any call (\"{said}\"): build it with {fix}")


def _distinct(workflow: Workflow | None) -> set[Op]:
    return distinct(workflow or ())


def _predict_pairs(items: Workflow) -> tuple[Op | None, Op | None, set[tuple[Op, Op]]]:
    """The first and last predicts of `items`, and each (predict, the predict next after it) pair
    in the order they run, a repeat's last before its first again: visited once, not repeated."""
    first: Op | None = None
    last: Op | None = None
    pairs: set[tuple[Op, Op]] = set()
    for item in items:
        head: Op | None
        tail: Op | None
        if isinstance(item, Repeat):
            head, tail, inner = _predict_pairs(item.body)
            pairs |= inner
            if item.times > 1 and head is not None and tail is not None:
                pairs.add((tail, head))
        elif item.kind in (Kind.PREDICT, Kind.PREDICT_ON_BATCH):
            head = tail = item
        else:
            continue
        if head is None:
            continue
        if last is not None:
            pairs.add((last, head))
        first, last = first or head, tail
    return first, last, pairs


def _tally(spec: Spec, workflow: Workflow, batch_size: int, seen: dict[tuple[int, int], tuple[int, int, int]]
           ) -> tuple[int, int, int]:
    """(layer calls, the model's batch size after them, the most slots a call fills), for the
    workflow run on a model built for `batch_size`. A repeat counts its body once, and again
    only when a twin in it changed the batch size: from then on the twin sets the one it will
    always set. `seen` keeps each body's count per batch size, so nested repeats cost what
    their text costs."""
    key = (id(workflow), batch_size)
    if key in seen:
        return seen[key]

    calls, largest = 0, 0
    for item in workflow:
        if isinstance(item, Op):
            if item.kind == Kind.TWIN:
                batch_size = item.batch_size or batch_size
                continue
            size = item.batch_size or batch_size
            if item.kind == Kind.FIT:
                train, validation = spec.fit_split(item), spec.fit_validation(item)
                # Epoch e validates when (e + 1) % freq == 0: counted in closed form, never epoch by epoch.
                freq = item.validation_freq
                validated = item.epochs // freq - item.initial_epoch // freq if validation else 0
                per_pass = train // size if item.drop_remainder else math.ceil(train / size)
                calls += item.training_calls(per_pass, spec.keras) + validated * math.ceil(validation / size)
                largest = max(largest, min(size, max(train, validation)))
            elif item.kind.runs_batches:
                calls += 1 if item.kind.one_batch else item.run_batches(size)
                largest = max(largest, item.samples if item.kind.one_batch else min(size, item.samples))
            continue
        first, after, most = _tally(spec, item.body, batch_size, seen)
        again, final, most_again = (_tally(spec, item.body, after, seen) if item.times > 1 and after != batch_size
                                    else (first, after, most))
        calls += first + (item.times - 1) * again
        batch_size, largest = final, max(largest, most, most_again)
    seen[key] = (calls, batch_size, largest)
    return calls, batch_size, largest
