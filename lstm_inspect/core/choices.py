"""The setup's choices, as enums: the phases of a run, the cell, the Keras and its backend, fit's
shuffle, and the user's reset callback with the hooks it resets in."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .digits import MAX_DIGITS, is_number, too_long
from .errors import SpecError


class Phase(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"  # fit's validation
    PREDICT = "predict"  # predict and predict_on_batch
    EVALUATE = "evaluate"  # evaluate and test_on_batch


class Cell(StrEnum):
    LSTM = "lstm"
    GRU = "gru"
    RNN = "rnn"  # Keras's SimpleRNN
    CONVLSTM2D = "convlstm2d"  # an LSTM whose gates are convolutions over each timestep's image

    @property
    def state_names(self) -> tuple[str, ...]:
        """The state tensors each slot holds: an LSTM (convolutional or not) has two, the others one."""
        return ("h", "c") if self in (Cell.LSTM, Cell.CONVLSTM2D) else ("h",)

    @property
    def keras_name(self) -> str:
        return {Cell.LSTM: "LSTM", Cell.GRU: "GRU", Cell.RNN: "SimpleRNN", Cell.CONVLSTM2D: "ConvLSTM2D"}[self]

    @property
    def keras_layer_name(self) -> str:
        """The name Keras gives the layer, its class name in snake case."""
        return {Cell.LSTM: "lstm", Cell.GRU: "gru", Cell.RNN: "simple_rnn", Cell.CONVLSTM2D: "conv_lstm2d"}[self]

    @property
    def torch_name(self) -> str:
        """The class in torch.nn (the mirror's own ConvLSTM2D has none)."""
        return self.name

    @property
    def cudnn(self) -> bool:
        """Whether Keras 3 runs the layer on cuDNN (use_cudnn="auto"): its LSTM and GRU do."""
        return self in (Cell.LSTM, Cell.GRU)

    @property
    def convolutional(self) -> bool:
        return self is Cell.CONVLSTM2D


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
            # Keras writes keras.json in ASCII (json.dump): any codec reads it.
            with open(os.path.join(home, "keras.json"), encoding="utf-8") as config:  # pragma: no mutate
                name = json.load(config).get("backend")
        except (OSError, ValueError, AttributeError):
            name = None  # pragma: no mutate (Keras ignores a missing or unreadable file too; "" falls back alike)
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


class Hook(StrEnum):
    """The callback hooks Keras calls around a model's layer calls (keras.callbacks.Callback)."""

    EPOCH_BEGIN = "on_epoch_begin"  # fit, before each epoch's first batch
    TRAIN_BATCH_BEGIN = "on_train_batch_begin"  # fit, before every batch, with its index in the epoch
    TEST_BEGIN = "on_test_begin"  # before fit's validation and before evaluate
    PREDICT_BEGIN = "on_predict_begin"  # before predict


class ResetKind(StrEnum):
    NEVER = "never"
    EPOCH = "epoch"
    EVERY = "every"


@dataclass(frozen=True)
class ResetPolicy:
    """The user's callback that calls `layer.reset_state()` (Keras itself never resets), and
    the hooks it resets in: at most one training hook (`epoch`: on_epoch_begin; `every:K`:
    on_train_batch_begin for batch indices that are multiples of K), and `validation`
    (on_test_begin: fit's validation and evaluate) and `predict` (on_predict_begin)."""

    kind: ResetKind = ResetKind.NEVER
    every: int = 0
    validation: bool = False
    predict: bool = False

    @classmethod
    def parse(cls, text: str) -> ResetPolicy:
        """A comma-separated list of hooks, e.g. "epoch,predict"; "never" for none."""
        parts = [part.strip() for part in text.strip().lower().split(",")]
        if parts == [ResetKind.NEVER]:
            return cls()
        found: dict[str, object] = {}
        for part in parts:
            if part in ("validation", "predict"):
                found[part] = True
                continue
            training = cls._training_hook(part, text)
            if "kind" in found:
                raise SpecError("reset", "{reset} takes one training hook, epoch or every:K (every:K resets "
                                "at each epoch's batch 0 already), got {got!r}", got=text)
            found.update(kind=training.kind, every=training.every)
        return cls(**found)  # type: ignore[arg-type]

    @classmethod
    def _training_hook(cls, part: str, text: str) -> ResetPolicy:
        if part == ResetKind.EPOCH:
            return cls(ResetKind.EPOCH)
        name, sep, count = part.partition(":")
        if name == ResetKind.EVERY and sep:
            if is_number(count.strip()) and too_long(count):
                raise SpecError("reset", f"every:K takes K of at most {MAX_DIGITS} digits")
            if not is_number(count.strip()) or int(count) < 1:
                raise SpecError("reset", "every:K needs a positive integer K, got {got!r}", got=count)
            return cls(ResetKind.EVERY, int(count))
        raise SpecError("reset", "expected never, or hooks among epoch, every:K, validation and predict "
                        "separated by commas, got {got!r}", got=text)

    def __str__(self) -> str:
        hooks = [f"every:{self.every}" if self.kind == ResetKind.EVERY else str(self.kind)] \
            if self.kind != ResetKind.NEVER else []
        hooks += [name for name in ("validation", "predict") if getattr(self, name)]
        return ",".join(hooks) or str(ResetKind.NEVER)

    def __bool__(self) -> bool:
        """Whether the callback resets anywhere."""
        return self.kind != ResetKind.NEVER or self.validation or self.predict

    def resets_in(self, hook: Hook, batch: int = 0) -> bool:
        """Whether the callback resets when Keras calls `hook` (`batch`: the index Keras passes to
        on_train_batch_begin, counted from 0 in each epoch). The one statement of the rule: the
        schedule and the mirror apply it, and `hooks` hands its parts to the emitted snippets."""
        if hook == Hook.EPOCH_BEGIN:
            return self.kind == ResetKind.EPOCH
        if hook == Hook.TRAIN_BATCH_BEGIN:
            return self.kind == ResetKind.EVERY and batch % self.every == 0
        return self.validation if hook == Hook.TEST_BEGIN else self.predict

    def hooks(self) -> list[tuple[Hook, int]]:
        """The hooks the callback resets in, in Keras's order, each with K where it resets only
        for batch indices that are multiples of K (0: every time the hook runs)."""
        chosen = [(Hook.EPOCH_BEGIN, 0)] * (self.kind == ResetKind.EPOCH)
        chosen += [(Hook.TRAIN_BATCH_BEGIN, self.every)] * (self.kind == ResetKind.EVERY)
        return chosen + [(Hook.TEST_BEGIN, 0)] * self.validation + [(Hook.PREDICT_BEGIN, 0)] * self.predict
