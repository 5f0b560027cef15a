"""The user's setup: what `model.fit(...)` and `model.predict(...)` are called with.

A `Spec` is frozen and validated on construction, so every later stage can trust it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum


class SpecError(ValueError):
    """An invalid setup; `option` names the command-line option at fault."""

    def __init__(self, option: str, message: str):
        super().__init__(message)
        self.option = option


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


class KerasVersion(StrEnum):
    THREE = "3"  # Keras 3 on the torch backend
    TWO = "2"  # tf-keras


SHUFFLE_BATCH = "batch"  # fit(shuffle="batch"), besides True and False


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
            if not _is_number(count.strip()) or int(count) < 1:
                raise SpecError("--reset", f"every:K needs a positive integer K, got {count!r}")
            return cls(ResetKind.EVERY, int(count))
        raise SpecError("--reset", f"expected never, epoch or every:K, got {text!r}")

    def __str__(self) -> str:
        return f"every:{self.every}" if self.kind == ResetKind.EVERY else str(self.kind)

    def resets_on_epoch_begin(self) -> bool:
        return self.kind == ResetKind.EPOCH

    def resets_on_train_batch_begin(self, batch: int) -> bool:
        return self.kind == ResetKind.EVERY and batch % self.every == 0


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²", which int() rejects."""
    return text.isascii() and text.isdigit()


def parse_shape(text: str) -> tuple[int, int, int]:
    """`N,T,F` as three positive integers; blanks around the numbers are allowed."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 3:
        raise SpecError("--shape", f"expected N,T,F (samples,timesteps,features), got {text!r}")
    if not all(_is_number(part) for part in parts):
        raise SpecError("--shape", f"N, T and F must be positive integers, got {text!r}")
    numbers = tuple(int(part) for part in parts)
    if min(numbers) < 1:
        raise SpecError("--shape", f"N, T and F must be positive integers, got {text!r}")
    return numbers  # type: ignore[return-value]


@dataclass(frozen=True)
class Spec:
    samples: int
    timesteps: int
    features: int
    batch_size: int = 32
    stateful: bool = False
    epochs: int = 1
    shuffle: bool = True
    reset: ResetPolicy = ResetPolicy()
    val_samples: int = 0
    predict_samples: int = 0
    units: int = 8
    seed: int = 0
    cell: Cell = Cell.LSTM
    layers: int = 1
    bidirectional: bool = False
    keras: KerasVersion = KerasVersion.THREE

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell", Cell(self.cell))
        object.__setattr__(self, "keras", KerasVersion(self.keras))
        if self.shuffle not in (True, False, SHUFFLE_BATCH):
            raise SpecError("--shuffle", f"shuffle is True, False or 'batch', got {self.shuffle!r}")
        positive = {
            "--shape": (self.samples, self.timesteps, self.features),
            "--batch": (self.batch_size,),
            "--epochs": (self.epochs,),
            "--units": (self.units,),
            "--layers": (self.layers,),
        }
        for option, values in positive.items():
            if any(value < 1 for value in values):
                raise SpecError(option, f"{option} must be a positive integer")
        for option, value in (("--val-samples", self.val_samples),
                              ("--predict-samples", self.predict_samples)):
            if value < 0:
                raise SpecError(option, f"{option} must be zero or positive")
        if not 0 <= self.seed < 2**32:
            raise SpecError("--seed", "--seed must be between 0 and 2**32 - 1")
        if self.reset.kind != ResetKind.NEVER and not self.stateful:
            # A stateless layer holds no state between calls: a reset callback would
            # change nothing, so asking for one is a misunderstanding worth stopping.
            raise SpecError(
                "--reset",
                f"--reset {self.reset} needs --stateful: a stateless layer starts every batch "
                "from zeros already",
            )

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

    def batch_bytes(self) -> int:
        """Rough peak memory of one batch in the mirror: the hashed inputs with their int64
        temporaries (~36 bytes a value) and each layer's outputs and gate projections for
        every timestep (~20 bytes a unit and direction)."""
        per_step = 36 * self.features + 20 * self.units * self.layers * self.directions
        largest_batch = min(self.batch_size, max(self.samples, self.val_samples, self.predict_samples))
        weights = 4 * 4 * self.units * (self.units + self.features) * self.layers * self.directions
        return largest_batch * self.timesteps * per_step + weights

    def order_bytes(self) -> int:
        """Memory of one epoch's training order, which even a dry run holds (4 or 8 bytes a sample)."""
        return self.samples * (4 if self.samples < 2**31 else 8)

    def command_line(self) -> str:
        """The lstm-inspect arguments that give this spec (defaults left out)."""
        words = [f"--shape {self.samples},{self.timesteps},{self.features}"]
        default = Spec(1, 1, 1)
        for name, flag in (("batch_size", "--batch"), ("epochs", "--epochs"), ("val_samples", "--val-samples"),
                           ("predict_samples", "--predict-samples"), ("units", "--units"), ("seed", "--seed")):
            if getattr(self, name) != getattr(default, name):
                words.append(f"{flag} {getattr(self, name)}")
        words += ["--stateful"] * self.stateful + ["--no-shuffle"] * (not self.shuffle)
        words += ["--shuffle batch"] * (self.shuffle == SHUFFLE_BATCH)
        for name, flag in (("cell", "--cell"), ("layers", "--layers"), ("keras", "--keras")):
            if getattr(self, name) != getattr(default, name):
                words.append(f"{flag} {getattr(self, name)}")
        words += ["--bidirectional"] * self.bidirectional
        if self.reset != default.reset:
            words.append(f"--reset {self.reset}")
        return " ".join(words)

    def to_json(self) -> dict:
        fields = dataclasses.asdict(self)
        fields.update(reset=str(self.reset), cell=str(self.cell), keras=str(self.keras))
        return fields
