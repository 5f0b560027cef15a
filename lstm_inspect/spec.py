"""The user's setup: what `model.fit(...)` and `model.predict(...)` are called with.

A `Spec` is frozen and validated on construction, so every later stage can trust it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class SpecError(ValueError):
    """An invalid setup. `field` names the Spec field at fault; the message names fields as
    `{field}` placeholders, which `describe` fills with the caller's own names for them (the
    command line's flags, say). str() names the fields as Spec spells them."""

    def __init__(self, field: str, template: str, **values: object):
        self.field = field
        self.template = template
        self.values = values
        super().__init__(self.describe())

    def describe(self, names: Mapping[str, str] | None = None) -> str:
        """The message, each `{field}` spelt by `names` (default: the field's own name)."""
        names = names or {}
        fields = set(re.findall(r"\{(\w+)\}", self.template)) - set(self.values)
        return self.template.format(**{name: names.get(name, name) for name in fields}, **self.values)


@dataclass(frozen=True)
class Terms:
    """How the library's sentences name a setting: as Spec's fields (`batch_size`,
    `shuffle=False`), or, given `flags`, as a command line spells them."""

    flags: Mapping[str, str] = dataclasses.field(default_factory=dict)  # field -> option
    settings: Mapping[str, str] = dataclasses.field(default_factory=dict)  # "shuffle=False" -> its option

    def name(self, field: str) -> str:
        return self.flags.get(field, field)

    def setting(self, field: str, value: object) -> str:
        python = f"{field}={value!r}"
        if field not in self.flags:
            return python
        return self.settings.get(python, f"{self.flags[field]} {value}")


class Phase(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"
    PREDICT = "predict"


class Cell(StrEnum):
    LSTM = "lstm"
    GRU = "gru"
    RNN = "rnn"  # Keras's SimpleRNN

    @property
    def state_names(self) -> tuple[str, ...]:
        """The state tensors each slot holds: an LSTM has two, the others one."""
        return ("h", "c") if self is Cell.LSTM else ("h",)

    @property
    def keras_name(self) -> str:
        return {Cell.LSTM: "LSTM", Cell.GRU: "GRU", Cell.RNN: "SimpleRNN"}[self]

    @property
    def torch_name(self) -> str:
        """The class in torch.nn."""
        return self.name


class KerasVersion(StrEnum):
    THREE = "3"  # Keras 3, on any of its backends
    TWO = "2"  # tf-keras, on TensorFlow


class Backend(StrEnum):
    """The backend Keras 3 runs on (Keras 2 runs on TensorFlow only)."""

    TORCH = "torch"
    TENSORFLOW = "tensorflow"
    JAX = "jax"


def default_backend(environ: Mapping[str, str] | None = None) -> Backend:
    """The backend Keras 3 would pick, read the way Keras reads it and without importing it:
    KERAS_BACKEND, else "backend" in keras.json under KERAS_HOME (default ~/.keras), else
    TensorFlow. A name Keras does not know is an error, as it is in Keras."""
    environ = os.environ if environ is None else environ
    name = environ.get("KERAS_BACKEND") or None
    if name is None:
        base = os.path.expanduser("~")
        base = base if os.access(base, os.W_OK) else "/tmp"  # as Keras falls back
        home = environ.get("KERAS_HOME") or os.path.join(base, ".keras")
        try:
            with open(os.path.join(home, "keras.json"), encoding="utf-8") as config:
                name = json.load(config).get("backend")
        except (OSError, ValueError, AttributeError):
            name = None  # Keras ignores a missing or unreadable file too
    try:
        return Backend(name or Backend.TENSORFLOW)
    except ValueError:
        raise SpecError("backend", "{backend} is torch, tensorflow or jax; KERAS_BACKEND or keras.json "
                        "says {got!r}", got=name) from None


class Shuffle(StrEnum):
    """fit's `shuffle`: True (a new permutation each epoch), False, or "batch"."""

    TRUE = "true"
    FALSE = "false"
    BATCH = "batch"

    @classmethod
    def of(cls, value: Shuffle | bool | str) -> Shuffle:
        """From what fit takes (True, False, "batch") or a member's value."""
        if isinstance(value, bool):
            return cls.TRUE if value else cls.FALSE
        try:
            return cls(value)
        except ValueError:
            raise SpecError("shuffle", "{shuffle} is True, False or 'batch', got {got!r}", got=value) from None

    @property
    def keras_value(self) -> bool | str:
        """The argument as fit takes it."""
        return "batch" if self is Shuffle.BATCH else self is Shuffle.TRUE

    def __bool__(self) -> bool:
        """Whether fit reorders samples at all."""
        return self is not Shuffle.FALSE


class ResetKind(StrEnum):
    NEVER = "never"
    EPOCH = "epoch"
    EVERY = "every"


@dataclass(frozen=True)
class ResetPolicy:
    """A user callback that calls `layer.reset_state()`; Keras itself never resets."""

    kind: ResetKind = ResetKind.NEVER
    every: int = 0

    @classmethod
    def parse(cls, text: str) -> ResetPolicy:
        text = text.strip().lower()
        if text in (ResetKind.NEVER, ResetKind.EPOCH):
            return cls(ResetKind(text))
        name, sep, count = text.partition(":")
        if name == ResetKind.EVERY and sep:
            if _is_number(count.strip()) and _too_long(count):
                raise SpecError("reset", f"every:K takes K of at most {MAX_DIGITS} digits")
            if not _is_number(count.strip()) or int(count) < 1:
                raise SpecError("reset", "every:K needs a positive integer K, got {got!r}", got=count)
            return cls(ResetKind.EVERY, int(count))
        raise SpecError("reset", "expected never, epoch or every:K, got {got!r}", got=text)

    def __str__(self) -> str:
        return f"every:{self.every}" if self.kind == ResetKind.EVERY else str(self.kind)


MAX_DIGITS = 18  # past int64 a count describes no data anyone holds (and int() refuses 4,300 digits)


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²", which int() rejects."""
    return text.isascii() and text.isdigit()


def _too_long(text: str) -> bool:
    return len(text.strip().lstrip("0")) > MAX_DIGITS


def parse_shape(text: str) -> tuple[int, int, int]:
    """`N,T,F` as three positive integers; blanks around the numbers are allowed."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3:
        raise SpecError("shape", "expected N,T,F (samples,timesteps,features), got {got!r}", got=text)
    if not all(_is_number(part) for part in parts):
        raise SpecError("shape", "N, T and F must be positive integers, got {got!r}", got=text)
    if any(_too_long(part) for part in parts):
        raise SpecError("shape", f"N, T and F have at most {MAX_DIGITS} digits")
    samples, timesteps, features = (int(part) for part in parts)
    if min(samples, timesteps, features) < 1:
        raise SpecError("shape", "N, T and F must be positive integers, got {got!r}", got=text)
    return samples, timesteps, features


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

    def __post_init__(self) -> None:
        if isinstance(self.keras, int) and not isinstance(self.keras, bool):
            object.__setattr__(self, "keras", str(self.keras))  # keras=3 as well as keras="3"
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
        positive = {"samples": self.samples, "timesteps": self.timesteps, "features": self.features,
                    "batch_size": self.batch_size, "epochs": self.epochs, "units": self.units,
                    "layers": self.layers}
        for name, value in positive.items():
            if value < 1:
                raise SpecError(name, f"{{{name}}} must be a positive integer")
        for name in ("val_samples", "predict_samples"):
            if getattr(self, name) < 0:
                raise SpecError(name, f"{{{name}}} must be zero or positive")
        if not 0 <= self.seed < 2**32:
            raise SpecError("seed", "{seed} must be between 0 and 2**32 - 1")
        if self.reset.kind != ResetKind.NEVER and not self.stateful:
            # A stateless layer holds no state between calls: a reset callback would
            # change nothing, so asking for one is a misunderstanding worth stopping.
            raise SpecError("reset", "{reset} {policy} needs {stateful}: a stateless layer starts every "
                            "batch from zeros already", policy=str(self.reset))

    @property
    def carries(self) -> bool:
        """Whether any state can pass from one call to another: stateful, and more than one call."""
        return self.stateful and (self.samples > self.batch_size or self.epochs > 1
                                  or bool(self.val_samples) or bool(self.predict_samples))

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

    @property
    def calls(self) -> int:
        """Layer calls fit (with validation) and predict make, if nothing raises."""
        return (self.epochs * (self.batches_per_epoch + math.ceil(self.val_samples / self.batch_size))
                + math.ceil(self.predict_samples / self.batch_size))

    @property
    def largest_batch(self) -> int:
        """The most slots any call fills."""
        return min(self.batch_size, max(self.samples, self.val_samples, self.predict_samples))

    def batch_bytes(self) -> int:
        """Rough peak memory of one batch in the mirror: the hashed inputs with their int64
        temporaries (~36 bytes a value) and each layer's outputs and gate projections for
        every timestep (~20 bytes a unit and direction)."""
        per_step = 36 * self.features + 20 * self.units * self.layers * self.directions
        weights = 4 * 4 * self.units * (self.units + self.features) * self.layers * self.directions
        return self.largest_batch * self.timesteps * per_step + weights

    def order_bytes(self) -> int:
        """Memory of one epoch's training order, which even a dry run holds (4 or 8 bytes a sample)."""
        return self.samples * (4 if self.samples < 2**31 else 8)

    def to_json(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields.update(shuffle=self.shuffle.keras_value, reset=str(self.reset), cell=str(self.cell),
                      keras=str(self.keras), backend=str(self.backend))
        return fields
