"""Watch your own Keras 3 model's recurrent states during its real run: `StateProbe`.

    probe = StateProbe()
    model.fit(x, y, batch_size=32, shuffle=False, callbacks=[probe])
    model.predict(x_new, batch_size=32, callbacks=[probe])
    with probe.call("train_on_batch"):       # a call that takes no callbacks
        model.train_on_batch(x_batch, y_batch)
    probe.report()                           # the table and verdict the command line prints
    probe.save("run.json")                   # lstm-inspect --replay run.json --expect-resets 2

Every recurrent layer is found, wherever it sits (stacked, in Bidirectional, in nested
models), and its states are read as each batch begins and ends. Keras is imported here only:
`import lstm_inspect` and the command line stay Keras-free.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np

from ..check.inspection import Report, StepResult
from ..core.choices import Backend, Cell, KerasVersion, Phase
from ..core.errors import SpecError
from ..core.spec import Spec
from ..views.jsonout import SCHEMA_VERSION
from .records import OBSERVER, Recorded, Recorder, Tally, probe_report

_PHASES = {"train_on_batch": Phase.TRAIN, "test_on_batch": Phase.EVALUATE, "predict_on_batch": Phase.PREDICT,
           "call": Phase.PREDICT}
_WATCHED = ("fit", "evaluate", "predict", "train_on_batch", "test_on_batch", "predict_on_batch")
_CELLS = {"LSTM": Cell.LSTM, "GRU": Cell.GRU, "SimpleRNN": Cell.RNN, "ConvLSTM2D": Cell.CONVLSTM2D}


def _every_layer(model: Any) -> Iterator[Any]:
    """Every layer, through nested models; a Bidirectional is one layer here."""
    for layer in model.layers:
        yield layer
        if not isinstance(layer, keras.layers.Bidirectional) and getattr(layer, "layers", None):
            yield from _every_layer(layer)


def recurrent_layers(model: Any) -> list[Any]:
    """Every keras.layers.RNN in the model, in order: through nested models, and both
    directions of a Bidirectional (forward first)."""
    found: list[Any] = []
    for layer in _every_layer(model):
        if isinstance(layer, keras.layers.Bidirectional):
            found.extend([layer.forward_layer, layer.backward_layer])
        elif isinstance(layer, keras.layers.RNN):
            found.append(layer)
    return found



def _check_square_and_dense(cell: Any) -> None:
    """SpecError for a ConvLSTM2D lstm-inspect's Spec cannot describe: a kernel that is not
    square, strides or a dilation other than 1."""
    kernel = tuple(int(size) for size in cell.kernel_size)
    if kernel[0] != kernel[1]:
        raise SpecError("kernel", f"a {kernel[0]} x {kernel[1]} kernel (lstm-inspect follows square ones)")
    for name in ("strides", "dilation_rate"):
        if any(int(size) != 1 for size in getattr(cell, name, (1, 1))):
            raise SpecError("kernel", f"{name}={tuple(getattr(cell, name))} (lstm-inspect follows 1 only)")

class StateProbe(keras.callbacks.Callback, Recorded):
    """A Keras 3 callback recording, for every batch of every call it sees, where each slot of
    the model's stateful recurrent layers started: zeros, the final state of slot j of the call
    before, or other states (set by hand, or from a call it did not see). It finds your own
    resets this way, without being told about them. Only the last call's final states are
    kept, and the steps go to a temporary file: memory does not grow with the batches."""

    def __init__(self) -> None:
        super().__init__()
        self._recorder = Recorder()
        self._tally = Tally()
        self._fitting = False
        self._epoch = 0
        self._call: Any = None  # the layer call under way
        self._layers: list[Any] = []
        self._stateful: list[Any] = []
        self._layers_of: int | None = None  # id of the model they were found in
        self._spec: Spec | None = None
        self._attached: list[tuple[Any, str, Any]] = []
        self._lock = threading.Lock()
        self._caller = 0  # the thread whose call is under way
        self.unobservable = ""  # why this backend cannot be observed, if it cannot
        self.undescribed = ""  # why the setup shown is not the model's, if it is not

    # --- the model -------------------------------------------------------------------------

    def _find_layers(self) -> None:
        model = self.model
        if self._layers_of == id(model):
            return
        self._layers = recurrent_layers(model)
        self._stateful = [layer for layer in self._layers if layer.stateful]
        self._layers_of = id(model)
        if keras.backend.backend() == Backend.JAX and self._stateful:
            self.unobservable = ("StateProbe cannot observe the jax backend: its compiled train, test and predict "
                                 "steps never write the state variables it reads (every call starts from zeros "
                                 "there, as lstm-inspect --backend jax says); only eager model(x) calls change them")
        if self._spec is None:
            self._spec = self._describe(model)

    def _describe(self, model: Any) -> Spec:
        """The Spec standing for the model in the views: its first recurrent layer's cell and
        units, the number of layers and directions, the state's batch size."""
        first = self._layers[0] if self._layers else None
        cell_layer = getattr(first, "cell", None)
        cell = _CELLS.get(type(first).__name__, Cell.LSTM) if first is not None else Cell.LSTM
        units = int(getattr(cell_layer, "units", 0) or getattr(cell_layer, "filters", 0) or 1)
        shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else (None, None, None)
        slots = self._slots() or 1
        bidirectional = any(isinstance(layer, keras.layers.Bidirectional) for layer in _every_layer(model))
        directions = 2 if bidirectional else 1
        conv: dict[str, Any] = {}
        features = int(shape[-1] or 1)
        if cell.convolutional and cell_layer is not None:
            data_format = str(cell_layer.data_format)
            rows = 3 if data_format == "channels_first" else 2  # (B, T, C, H, W) or (B, T, H, W, C)
            features = int(shape[2] or 1) if data_format == "channels_first" else features
            conv = dict(frame=(int(shape[rows] or 1), int(shape[rows + 1] or 1)), kernel=int(cell_layer.kernel_size[0]),
                        padding=str(cell_layer.padding), data_format=data_format)
        try:
            if conv:
                _check_square_and_dense(cell_layer)
            return Spec(slots, int(shape[1] or 1) if len(shape) > 2 else 1, features, batch_size=slots,
                        stateful=bool(self._stateful), units=units, cell=cell,
                        layers=max(1, len(self._layers) // directions), bidirectional=bidirectional,
                        keras=KerasVersion.THREE, backend=Backend(keras.backend.backend()), **conv)
        except SpecError as error:  # a ConvLSTM2D the views do not follow yet: its states are still read
            self.undescribed = f"StateProbe shows this {cell.keras_name}'s setup as a bare LSTM's: {error}"
            return Spec(slots, 1, 1, units=units, batch_size=slots, stateful=bool(self._stateful),
                        keras=KerasVersion.THREE, backend=Backend(keras.backend.backend()))

    def _slots(self) -> int:
        for layer in self._stateful:
            if layer.states:
                return int(layer.states[0].shape[0])
        return 0

    def _read(self) -> np.ndarray | None:
        """Every stateful layer's every state, one row per slot; None without state variables."""
        if not self._stateful:
            return None
        rows = []
        for layer in self._stateful:
            for state in layer.states or []:
                value = np.array(keras.ops.convert_to_numpy(state), copy=True)
                rows.append(value.reshape(value.shape[0], -1))
        return np.concatenate(rows, axis=1) if rows else None

    # --- the calls -------------------------------------------------------------------------

    def _begin(self, phase: Phase, word: str, epoch: int | None, batch: int) -> None:
        with self._lock:
            if self._call is not None and self._caller != threading.get_ident():
                # Another thread's call would mix two calls' states: refused, and what was recorded
                # stays readable.
                raise RuntimeError("StateProbe watches one call at a time: a batch began in another thread "
                                   "while one was under way (use one probe per thread)")
            if self._call is not None:  # this thread's call before raised inside Keras: it ended there
                self._recorder.end(self._call, self._read())
            self._caller = threading.get_ident()
            self._begin_call(phase, word, epoch, batch)

    def _begin_call(self, phase: Phase, word: str, epoch: int | None, batch: int) -> None:
        self._find_layers()
        if self.unobservable:
            return
        initial = self._read()
        segment = self._recorder.segment(word, epoch)
        self._call = self._recorder.begin(phase, segment, epoch or 0, batch, initial,
                                          len(initial) if initial is not None else 0)

    def _end(self) -> None:
        with self._lock:
            if self._call is not None:
                self._recorder.end(self._call, self._read())
                self._call = None

    def on_train_begin(self, logs: Any = None) -> None:
        self._fitting = True
        self._recorder.start("fit")

    def on_train_end(self, logs: Any = None) -> None:
        self._fitting = False

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch

    def on_test_begin(self, logs: Any = None) -> None:
        if not self._fitting:  # fit's validation is part of its fit
            self._recorder.start("evaluate")  # pragma: no mutate (the key its calls are counted by: any word)

    def on_predict_begin(self, logs: Any = None) -> None:
        self._recorder.start("predict")

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self._begin(Phase.TRAIN, "train", self._epoch, batch)

    def on_test_batch_begin(self, batch: int, logs: Any = None) -> None:
        if self._fitting:
            self._begin(Phase.VALIDATION, "validation", self._epoch, batch)
        else:
            self._begin(Phase.EVALUATE, "evaluate", None, batch)

    def on_predict_batch_begin(self, batch: int, logs: Any = None) -> None:
        self._begin(Phase.PREDICT, "predict", None, batch)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._end()

    on_test_batch_end = on_predict_batch_end = on_train_batch_end

    @contextlib.contextmanager
    def call(self, kind: str, model: Any = None) -> Iterator[None]:
        """Marks a call made outside fit, evaluate and predict: "train_on_batch", "test_on_batch",
        "predict_on_batch", or "call" (the model called directly, model(x))."""
        if kind not in _PHASES:
            raise ValueError(f"kind is one of {', '.join(_PHASES)}, got {kind!r}")
        if model is not None:
            self.set_model(model)
        if getattr(self, "model", None) is None:
            raise ValueError("the probe sees no model yet: probe.attach(model), or probe.call(kind, model=model)")
        self._recorder.start(kind)
        self._begin(_PHASES[kind], kind, None, 0)
        try:
            yield
        finally:
            self._end()

    def attach(self, model: Any) -> StateProbe:
        """Watch `model` without a callback list at hand: its fit, evaluate and predict get the
        probe among their callbacks, and its *_on_batch calls are marked. `detach()` undoes it."""
        missing = [name for name in _WATCHED if not callable(getattr(model, name, None))]
        if missing:
            raise TypeError(f"attach takes a Keras model (with {', '.join(_WATCHED)}); "
                            f"{type(model).__name__} has no {', '.join(missing)}")
        if any(attached is model for attached, _, _ in self._attached):
            return self  # watched already: a second wrapper would see every batch twice
        self.set_model(model)
        for name in ("fit", "evaluate", "predict"):
            self._wrap(model, name, self._with_callback(getattr(model, name)))
        for name in ("train_on_batch", "test_on_batch", "predict_on_batch"):
            self._wrap(model, name, self._marked(name, getattr(model, name)))
        return self

    def detach(self) -> None:
        for model, name, original in reversed(self._attached):
            setattr(model, name, original)
        self._attached = []

    def _wrap(self, model: Any, name: str, wrapper: Any) -> None:
        self._attached.append((model, name, getattr(model, name)))
        setattr(model, name, wrapper)

    def _with_callback(self, method: Any) -> Any:
        @functools.wraps(method)
        def with_probe(*args: Any, callbacks: Any = None, **kwargs: Any) -> Any:
            given = list(callbacks or [])
            return method(*args, callbacks=given if self in given else [*given, self], **kwargs)
        return with_probe

    def _marked(self, kind: str, method: Any) -> Any:
        @functools.wraps(method)
        def marked(*args: Any, **kwargs: Any) -> Any:
            with self.call(kind):
                return method(*args, **kwargs)
        return marked

    # --- what it saw -----------------------------------------------------------------------

    def _spec_now(self) -> Spec:
        return self._spec or Spec(1, 1, 1, backend=Backend(keras.backend.backend()))

    def _report_of(self, tally: Tally, steps: tuple[StepResult, ...] = ()) -> Report:
        warnings = tuple(warning for warning in (self.unobservable, self.undescribed) if warning)
        return probe_report(self._spec_now(), tally, warnings, len(self._stateful), steps)

    def _head(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, "observed_by": OBSERVER, "keras_version": keras.__version__,
                "spec": self._spec_now().to_json(), "stateful_layers": len(self._stateful)}
