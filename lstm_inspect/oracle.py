"""Real Keras as the oracle: run a setup through Keras 3 and read each slot's start from
Keras's own tensors. Needs the `keras` extra (pip install 'lstm-inspect[keras]').

The Keras model gets the mirror's weights and inputs, is driven by real `fit` (learning
rate 0, so the weights stay equal), validation and `predict`, in the mirror's sample
order. Stateful layers are read through `layer.states` in callbacks before and after
every batch; stateless layers hold no state variables, so the initial state Keras builds
for each call is recorded where the layer hands it to its recurrent loop.

`compare_with_keras` puts that observation next to the schedule and the mirror, step by
step: the schedule's starts against Keras's, the mirror's tensors against Keras's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .schedule import Call, Invocation, KerasError, Step, iter_invocations, keras_steps
from .spec import Backend, Cell, KerasVersion, Phase, ResetKind, Shuffle, Spec
from .workflow import Kind, Op

if TYPE_CHECKING:
    from .mirror import CallRecord  # imports torch, which a dry run never needs

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# The same float32 state through Keras's and PyTorch's LSTM kernels differs by ~1e-7 (the
# semantics doc measured 3e-8); a state taken from the wrong slot, or not reset, differs by
# ~1e-1. Anything between is a bug worth seeing, not rounding.
TOLERANCE = 1e-5

# Running a sample alone costs one Keras call (~3 ms on CPU) per sample: the stateless
# independence check covers the first call's first slots, a cost that does not grow with N.
_ALONE_SLOTS = 32


@dataclass
class KerasCall:
    """One layer call as Keras made it. States are tuples in the cell's order (h, c for an
    LSTM), each stacked over the RNN layers in torch's order (layer by layer, forward then
    backward): shape (layers * directions, slots, units)."""

    phase: Phase
    epoch: int
    batch: int
    samples: np.ndarray
    stream: Phase = Phase.TRAIN  # the data the samples index, as the schedule's call says
    initial: tuple[np.ndarray, ...] | None = None
    final: tuple[np.ndarray, ...] | None = None
    # Stateless, first call only: the model's output for its first slots' samples, each run
    # alone (a batch of one, from zeros), for comparison with their outputs inside the batch.
    alone_output: np.ndarray | None = None

    @property
    def slot_samples(self) -> np.ndarray:
        """The sample each state row ran: one lone sample runs in every row where TensorFlow
        broadcasts it."""
        rows = len(self.samples) if self.initial is None else self.initial[0].shape[1]
        return np.repeat(self.samples, rows) if len(self.samples) == 1 else self.samples

    def to_json(self) -> dict[str, Any]:
        def arrays(states: tuple[np.ndarray, ...] | None) -> list[Any] | None:
            return None if states is None else [state.tolist() for state in states]

        return {"phase": self.phase.value, "epoch": self.epoch, "batch": self.batch,
                "samples": self.samples.tolist(), "stream": self.stream.value, "initial": arrays(self.initial),
                "final": arrays(self.final),
                "alone_output": None if self.alone_output is None else self.alone_output.tolist()}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> KerasCall:
        def arrays(states: list[Any] | None) -> tuple[np.ndarray, ...] | None:
            return None if states is None else tuple(np.array(state, dtype=np.float32) for state in states)

        alone = item["alone_output"]
        return cls(Phase(item["phase"]), item["epoch"], item["batch"], np.array(item["samples"], dtype=np.int64),
                   Phase(item["stream"]), arrays(item["initial"]), arrays(item["final"]),
                   None if alone is None else np.array(alone, dtype=np.float32))

    def output(self, directions: int) -> np.ndarray:
        """The model's output inside the batch: the last layer's final h, directions side by side."""
        assert self.final is not None, "the call did not complete"
        return np.concatenate(list(self.final[0][-directions:]), axis=1)


@dataclass
class KerasRun:
    version: str
    backend: str
    calls: list[KerasCall] = field(default_factory=list)
    error_step: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    predict_rows: int | None = None  # rows predict returned
    error_in_batch: bool = False  # the raising call had begun (its batch-begin callback ran)

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "backend": self.backend, "calls": [call.to_json() for call in self.calls],
                "error_step": self.error_step, "error_type": self.error_type, "error_message": self.error_message,
                "predict_rows": self.predict_rows, "error_in_batch": self.error_in_batch}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> KerasRun:
        return cls(item["version"], item["backend"], [KerasCall.from_json(call) for call in item["calls"]],
                   item["error_step"], item["error_type"], item["error_message"], item["predict_rows"],
                   item["error_in_batch"])

    @property
    def completed(self) -> list[KerasCall]:
        return [call for call in self.calls if call.final is not None]

    def start_labels(self) -> list[list[str]]:
        """Per completed call, each slot's start as the schedule writes it: "zeros" or
        "<data>:<sample>" of the slot of an earlier call (the one before first, then back
        from there) whose final states (every tensor, layer and direction) equal it exactly
        ("?" if none does)."""
        labels = []
        done: list[KerasCall] = []
        for call in self.completed:
            assert call.initial is not None
            slots = []
            for slot in range(call.initial[0].shape[1]):
                start = [state[:, slot] for state in call.initial]
                if not any(state.any() for state in start):
                    slots.append("zeros")
                    continue
                slots.append(next((found for before in reversed(done) if (found := _carried_from(before, slot, start))),
                                  "?"))
            labels.append(slots)
            done.append(call)
        return labels


def _carried_from(before: KerasCall, slot: int, start: list[np.ndarray]) -> str | None:
    """"<data>:<sample>" of the row of `before` whose final states equal `start`, if one does."""
    assert before.final is not None
    rows = before.final[0].shape[1]
    # Slot i first: where Keras carries from, so the search is short when it does.
    for j in [slot] * (slot < rows) + list(range(rows)):
        if all(np.array_equal(state[:, j], now) for state, now in zip(before.final, start)):
            return f"{before.stream}:{before.slot_samples[j]}"
    return None


def import_keras(spec: Spec | None = None) -> Any:
    """The Keras that `spec` describes, imported in this process: Keras 3 on its backend
    (KERAS_BACKEND, set before Keras is first imported; torch unless set), or tf-keras."""
    if spec is not None and spec.keras == KerasVersion.TWO:
        try:
            import tf_keras
        except ImportError as missing:
            raise ImportError(f"{missing} (pip install 'lstm-inspect[tf-keras]' installs Keras 2)") from missing
        return tf_keras
    os.environ.setdefault("KERAS_BACKEND", str(spec.backend) if spec else "torch")
    try:
        import keras
    except ImportError as missing:
        raise ImportError(f"{missing} (pip install 'lstm-inspect[keras]' installs Keras 3)") from missing
    if spec is not None and keras.backend.backend() != spec.backend:
        raise ValueError(f"this process's Keras runs on {keras.backend.backend()}, not {spec.backend}: "
                         "Keras reads its backend once (run_keras_isolated starts a process for it)")
    return keras


def _to_numpy(keras: Any, value: Any) -> np.ndarray:
    """A copy: on the torch backend the conversion may share memory with a live variable."""
    if not hasattr(keras, "ops"):  # tf-keras: TensorFlow tensors and variables
        return np.array(value, copy=True)
    return np.array(keras.ops.convert_to_numpy(value), copy=True)


def keras_weights(cell: Cell, torch_module, layer: int, reverse: bool) -> list[np.ndarray]:
    """One Keras RNN layer's weights from one layer and direction of a torch RNN module.

    LSTM: torch's gates (i, f, g, o) are Keras's (i, f, c, o); Keras has one bias for
    torch's two. GRU: torch's blocks (r, z, n) are Keras's (z, r, h), and Keras's default
    reset_after=True keeps both biases as two rows. SimpleRNN maps like the LSTM.
    """
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")

    def weight(name):
        return getattr(torch_module, name + suffix).detach().cpu().numpy()

    kernel, recurrent, bias_input, bias_hidden = (weight(name) for name in
                                                  ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    if cell == Cell.GRU:
        def keras_order(array):
            r, z, n = np.split(array, 3, axis=0)
            return np.concatenate([z, r, n], axis=0)

        return [keras_order(kernel).T, keras_order(recurrent).T,
                np.stack([keras_order(bias_input), keras_order(bias_hidden)])]
    return [kernel.T, recurrent.T, bias_input + bias_hidden]


def build_keras_model(keras, spec: Spec, batch_size: int | None = None, hand_carry: bool = False):
    """The Keras model for the spec (stateful: built for `batch_size`, default the spec's), and
    its RNN layers in torch's order. `hand_carry`: each layer also takes its initial states as
    inputs and returns its final states, after the model's output, to be passed back by hand."""
    batch_size = batch_size or spec.batch_size
    if spec.stateful:
        inputs = keras.Input(batch_shape=(batch_size, spec.timesteps, spec.features))
    else:
        inputs = keras.Input(shape=(spec.timesteps, spec.features))
    if hand_carry and spec.bidirectional:
        raise OracleError("the oracle carries states by hand for one direction only")
    layer_class = getattr(keras.layers, spec.cell.keras_name)
    # use_cudnn=False: Keras 3 fails stateful training with cuDNN on torch (keras-team/keras#20875).
    options = {} if spec.cell == Cell.RNN or spec.keras == KerasVersion.TWO else {"use_cudnn": False}
    outputs, rnns, state_inputs, state_outputs = inputs, [], [], []
    for depth in range(spec.layers):
        layer = layer_class(spec.units, stateful=spec.stateful, return_sequences=depth < spec.layers - 1,
                            return_state=hand_carry, **options)
        if spec.bidirectional:
            layer = keras.layers.Bidirectional(layer)
        if hand_carry:
            given = [keras.Input(shape=(spec.units,)) for _ in spec.cell.state_names]
            outputs, *final = layer(outputs, initial_state=given if len(given) > 1 else given[0])
            state_inputs += given
            state_outputs += final
        else:
            outputs = layer(outputs)
        rnns += [layer.forward_layer, layer.backward_layer] if spec.bidirectional else [layer]
    if hand_carry:
        model = keras.Model([inputs, *state_inputs], [outputs, *state_outputs])
    else:
        model = keras.Model(inputs, outputs)
    # States are read inside the recurrent loop where no variable holds them (see _reads_loop):
    # TensorFlow hands the loop concrete values only when it runs eagerly.
    eager = _reads_loop(spec) and spec.backend == Backend.TENSORFLOW
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse", run_eagerly=eager)
    return model, rnns


def _reads_loop(spec: Spec) -> bool:
    """Whether states are read where the recurrent loop takes and returns them, rather than
    from the layers' state variables: stateless layers have none, and on JAX the variables
    never change inside fit, evaluate or predict (their assignments are dropped)."""
    return not spec.stateful or spec.backend == Backend.JAX


def copy_weights(rnns, spec: Spec, torch_module) -> None:
    for index, rnn in enumerate(rnns):
        layer, direction = divmod(index, spec.directions)
        rnn.set_weights(keras_weights(spec.cell, torch_module, layer, reverse=direction == 1))


def _rnn_layers(keras: Any, model: Any) -> list[Any]:
    """A loaded model's RNN layers in torch's order (layer by layer, forward then backward)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            found += [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, keras.layers.RNN):
            found.append(layer)
    return found


class _Session:
    """Real Keras running a workflow: the model the calls go to now (a twin or a loaded model
    replaces it), the user's reset callback and the probe, both following that model."""

    def __init__(self, keras: Any, spec: Spec, result: KerasRun, planned: list[Call]):
        import torch

        from .mirror import build_rnn

        self.keras, self.spec, self.result = keras, spec, result
        self.hand_carry = spec.hand_carried
        self.model, self.rnns = build_keras_model(keras, spec, hand_carry=self.hand_carry)
        copy_weights(self.rnns, spec, build_rnn(spec, torch.device("cpu")))
        self.probe = _make_probe(keras, self, planned, result)
        self.callbacks = [_make_reset_callback(keras, self), self.probe]
        self.returned: list[np.ndarray] | None = None  # the states the last predict returned
        self._restore = self._hook()
        self.folder = tempfile.TemporaryDirectory(prefix="lstm-inspect-")

    def _hook(self) -> Callable[[], None]:
        return _hook_loops(self.keras, self.rnns, self.spec, self.probe) if _reads_loop(self.spec) else (lambda: None)

    def close(self) -> None:
        self._restore()  # the calls after the run are not the workflow's: unrecorded
        self.folder.cleanup()

    def reset(self) -> None:
        """As a user resets: Keras 3's Model has no reset_state(), so every RNN layer is reset;
        Keras 2's model.reset_states() resets them all."""
        if self.spec.keras == KerasVersion.TWO:
            self.model.reset_states()
            return
        for rnn in self.rnns:
            rnn.reset_state()

    def switch(self, op: Op, batch_size: int) -> None:
        """A twin built for `batch_size` given the weights (set_weights), or the model after
        model.save() and keras.models.load_model()."""
        self._restore()
        if op.kind == Kind.TWIN:
            twin, rnns = build_keras_model(self.keras, self.spec, batch_size, self.hand_carry)
            twin.set_weights(self.model.get_weights())
            self.model, self.rnns = twin, rnns
        else:
            path = os.path.join(self.folder.name, f"model{len(os.listdir(self.folder.name))}.keras")
            self.model.save(path)
            self.model = self.keras.models.load_model(path)
            self.rnns = _rnn_layers(self.keras, self.model)
            if self.spec.keras == KerasVersion.THREE and self.spec.cell != Cell.RNN:
                for rnn in self.rnns:
                    rnn.use_cudnn = False  # not in the saved config: as build_keras_model sets it
        self._restore = self._hook()

    def run(self, invocation: Invocation, calls: list[Call]) -> None:
        spec, op = self.spec, invocation.op
        width = spec.units * spec.directions
        size = op.batch_size or invocation.batch_size
        samples = np.concatenate([call.samples for call in calls]) if calls else np.zeros(0, np.int64)
        stream = calls[0].stream if calls else Phase.TRAIN
        x = _inputs(spec, stream, samples)
        if op.kind == Kind.FIT:
            self._fit(op, size, calls)
        elif op.kind == Kind.EVALUATE:
            self.model.evaluate(x, np.zeros((len(x), width), np.float32), batch_size=size, callbacks=self.callbacks,
                                verbose=0)
        elif op.kind == Kind.PREDICT:
            out = self.model.predict(self._with_states(x, op), batch_size=size, callbacks=self.callbacks, verbose=0)
            self._returned(out)
            self.result.predict_rows = len(out[0] if self.hand_carry else out)
        else:
            self.probe.mark(calls[0])  # the *_on_batch calls run no callbacks: marked by hand
            if op.kind == Kind.TRAIN_ON_BATCH:
                self.model.train_on_batch(x, np.zeros((len(x), width), np.float32))
            elif op.kind == Kind.TEST_ON_BATCH:
                self.model.test_on_batch(x, np.zeros((len(x), width), np.float32))
            else:
                self._returned(self.model.predict_on_batch(self._with_states(x, op)))
            self.probe.end()

    def _with_states(self, x: np.ndarray, op: Op) -> Any:
        if not self.hand_carry:
            return x
        if op.hand_carried and self.returned is not None:
            return [x, *self.returned]
        return [x, *[np.zeros((len(x), self.spec.units), np.float32)
                     for _ in range(self.spec.layers * len(self.spec.cell.state_names))]]

    def _returned(self, out: Any) -> None:
        if self.hand_carry:
            self.returned = [np.asarray(state) for state in out[1:]]

    def _fit(self, op: Op, size: int, calls: list[Call]) -> None:
        """Keras draws its own permutation when shuffling: each epoch is fed in the schedule's
        order instead (shuffle=False, one fit per epoch), so that both see the same batches.
        Unshuffled, one fit makes every epoch, and validation_split is Keras's own."""
        spec, width = self.spec, self.spec.units * self.spec.directions
        shuffle = spec.shuffle if op.shuffle is None else op.shuffle
        train = spec.fit_split(op)
        x_all = _inputs(spec, Phase.TRAIN, np.arange(spec.samples))
        common: dict[str, Any] = {"shuffle": False, "callbacks": self.callbacks, "verbose": 0,
                                  "validation_freq": op.validation_freq}
        if op.validation_samples:
            common["validation_data"] = (_inputs(spec, Phase.VALIDATION, np.arange(op.validation_samples)),
                                         np.zeros((op.validation_samples, width), np.float32))
        if not shuffle:
            split = {"validation_split": op.validation_split} if op.validation_split else {}
            self.model.fit(x_all, np.zeros((spec.samples, width), np.float32), batch_size=size, epochs=op.epochs,
                           initial_epoch=op.initial_epoch, **split, **common)
            return
        if op.validation_split:
            common["validation_data"] = (x_all[train:], np.zeros((spec.samples - train, width), np.float32))
        for epoch in range(op.initial_epoch, op.epochs):
            batches = [call.samples for call in calls if call.phase == Phase.TRAIN and call.epoch == epoch]
            fit = {"epochs": epoch + 1, "initial_epoch": epoch, **common}
            if spec.keras == KerasVersion.TWO and shuffle == Shuffle.BATCH:
                # Keras 2 also shuffles the chunks' order, the partial chunk included: re-batching
                # the epoch's order would cut other batches, so the batches are fed as they are.
                self.model.fit(_batches_sequence(self.keras, x_all, width, batches), **fit)
                continue
            order = np.concatenate(batches)
            self.model.fit(x_all[order], np.zeros((len(order), width), np.float32), batch_size=size, **fit)


def _inputs(spec: Spec, stream: Phase, samples: np.ndarray) -> np.ndarray:
    """The mirror's inputs for these samples of this data, as one array for Keras."""
    import torch

    from .mirror import batch_inputs

    if len(samples) == 0:
        return np.zeros((0, spec.timesteps, spec.features), np.float32)
    return batch_inputs(spec, stream, samples, torch.device("cpu")).numpy()


def run_keras(spec: Spec) -> KerasRun:
    """Run the workflow through real Keras, in this process: see `run_keras_isolated` for a
    Keras on another backend than this process's."""
    keras = import_keras(spec)
    backend = keras.backend.backend() if spec.keras == KerasVersion.THREE else "tensorflow"
    result = KerasRun(keras.__version__, backend)
    planned: list[Call] = []
    invocations = [(invocation, list(calls)) for invocation, calls in iter_invocations(spec)]
    for _, calls in invocations:
        planned += calls
    session = _Session(keras, spec, result, planned)
    try:
        for invocation, calls in invocations:
            if invocation.op.kind == Kind.RESET_STATE:
                session.reset()
            elif invocation.op.kind in (Kind.TWIN, Kind.SAVE_AND_LOAD):
                session.switch(invocation.op, invocation.batch_size)
            else:
                session.run(invocation, calls)
    except Exception as raised:  # whatever Keras raises is the observation ...
        if session.probe.failure is not None:
            raise session.probe.failure from raised  # ... unless the probe itself broke
        # The call that raised is the last one begun, or (when Keras raises while building
        # its step function, before any batch begins) the next one.
        begun_unfinished = bool(result.calls) and result.calls[-1].final is None
        result.error_step = len(result.calls) - begun_unfinished
        result.error_in_batch = begun_unfinished
        result.error_type = type(raised).__name__
        result.error_message = _ANSI.sub("", str(raised))
    finally:
        session.close()
    if not spec.stateful and result.completed and not session.hand_carry:
        first = result.completed[0]
        alone = _inputs(spec, first.stream, first.samples[:_ALONE_SLOTS])
        first.alone_output = np.asarray(session.model.predict(alone, batch_size=1, verbose=0))
    return result


def _batches_sequence(keras: Any, x: np.ndarray, width: int, batches: list[np.ndarray]) -> Any:
    """The given batches of `x` (with zero targets), in order, as a Keras 2 Sequence."""
    class Batches(keras.utils.Sequence):
        def __len__(self) -> int:
            return len(batches)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            samples = batches[index]
            return x[samples], np.zeros((len(samples), width), np.float32)

    return Batches()


def run_keras_isolated(specs: list[Spec]) -> list[KerasRun]:
    """`run_keras` for each spec, in a fresh process per Keras and backend: Keras reads its
    backend once per process, so each runs where KERAS_BACKEND names it."""
    runs: dict[int, KerasRun] = {}
    groups: dict[tuple[KerasVersion, Backend], list[int]] = {}
    for index, spec in enumerate(specs):
        groups.setdefault((spec.keras, spec.backend), []).append(index)
    for (keras, backend), indices in groups.items():
        environ = {**os.environ, "KERAS_BACKEND": str(backend), "TF_CPP_MIN_LOG_LEVEL": "3"}
        request = json.dumps([specs[index].to_json() for index in indices])
        # The runs come back in a file of their own: whatever Keras prints cannot mix with them.
        with tempfile.TemporaryDirectory(prefix="lstm-inspect-") as folder:
            answer = Path(folder) / "runs.json"
            done = subprocess.run([sys.executable, "-m", "lstm_inspect.oracle", str(answer)], input=request,
                                  capture_output=True, text=True, env=environ)
            if done.returncode != 0 or not answer.exists():
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise OracleError(f"Keras {keras} on {backend} could not run: {last}")
            items = json.loads(answer.read_text())
        for index, item in zip(indices, items):
            runs[index] = KerasRun.from_json(item)
    return [runs[index] for index in range(len(specs))]


class OracleError(RuntimeError):
    """The process running real Keras failed (not Keras raising inside the run: that is observed)."""


def _runs_here(spec: Spec) -> bool:
    """Whether this process already holds the Keras `spec` describes (no new process needed)."""
    keras = sys.modules.get("keras")
    return (spec.keras == KerasVersion.THREE and keras is not None and hasattr(keras, "backend")
            and keras.backend.backend() == spec.backend)


def _serve(answer: str) -> None:
    """`python -m lstm_inspect.oracle FILE`: run the specs on stdin (JSON), write their runs to FILE."""
    specs = [Spec.from_json(fields) for fields in json.load(sys.stdin)]
    runs = [run_keras(spec).to_json() for spec in specs]
    Path(answer).write_text(json.dumps(runs))


def _hook_loops(keras: Any, rnns: list[Any], spec: Spec, probe: Any) -> Callable[[], None]:
    """Record the states each RNN layer's recurrent loop takes and returns; returns a function
    that undoes the hooks. Keras 3 has a loop per layer (`inner_loop`); tf-keras one function
    for all (`backend.rnn`), whose calls come layer by layer in the model's order."""
    if spec.keras == KerasVersion.TWO:
        from tf_keras.src import backend as keras_2_backend

        loop = keras_2_backend.rnn

        def keras_2_rnn(step_function: Any, inputs: Any, initial_states: Any, *args: Any, **kwargs: Any) -> Any:
            last, outputs, states = loop(step_function, inputs, initial_states, *args, **kwargs)
            if probe.recording():  # TensorFlow runs eagerly then (see build_keras_model)
                probe.record(len(probe.pending), [_to_numpy(keras, s) for s in initial_states],
                             [_to_numpy(keras, s) for s in states])
            return last, outputs, states

        keras_2_backend.rnn = keras_2_rnn

        def restore_keras_2() -> None:
            keras_2_backend.rnn = loop
        return restore_keras_2

    loops = [rnn.inner_loop for rnn in rnns]
    for index, rnn in enumerate(rnns):
        def recording_inner_loop(sequences: Any, initial_state: Any, *args: Any, index: int = index,
                                 **kwargs: Any) -> Any:
            last, outputs, states = loops[index](sequences, initial_state, *args, **kwargs)
            if spec.backend == Backend.JAX:
                # Traced once into the compiled step: the callback hands over the values at every run.
                import jax

                count = len(initial_state)

                def record(*values: Any, index: int = index) -> None:
                    if probe.recording():
                        probe.record(index, [np.array(v) for v in values[:count]],
                                     [np.array(v) for v in values[count:]])

                jax.debug.callback(record, *initial_state, *states)
            elif probe.recording():
                probe.record(index, [_to_numpy(keras, s) for s in initial_state],
                             [_to_numpy(keras, s) for s in states])
            return last, outputs, states

        rnn.inner_loop = recording_inner_loop

    def restore_keras_3() -> None:
        for rnn, loop in zip(rnns, loops):
            rnn.inner_loop = loop
    return restore_keras_3


def _make_reset_callback(keras: Any, session: _Session) -> Any:
    reset = session.spec.reset

    class ResetCallback(keras.callbacks.Callback):
        """The user's reset callback, as a user writes it, resetting the model in use."""

        def on_epoch_begin(self, epoch, logs=None):
            if reset.kind == ResetKind.EPOCH:
                session.reset()

        def on_train_batch_begin(self, batch, logs=None):
            # Keras's own batch index, counted by fit from 0 in each epoch.
            if reset.kind == ResetKind.EVERY and batch % reset.every == 0:
                session.reset()

        def on_test_begin(self, logs=None):
            if reset.validation:
                session.reset()

        def on_predict_begin(self, logs=None):
            if reset.predict:
                session.reset()

    return ResetCallback()


def _make_probe(keras: Any, session: _Session, planned: list[Call], result: KerasRun) -> Any:
    def read_states() -> tuple[np.ndarray, ...]:
        per_layer = [[_to_numpy(keras, state) for state in rnn.states] for rnn in session.rnns]
        return tuple(np.stack(tensors) for tensors in zip(*per_layer))

    spec = session.spec

    class StateProbe(keras.callbacks.Callback):
        """Notes each call as its batch begins, as Keras names it (phase, epoch, batch), with
        the samples the schedule feeds it; reads every RNN layer's states around it from the
        state variables, or assembles what the layers' loops recorded (_reads_loop)."""

        epoch = 0
        fitting = False
        pending: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        failure: Exception | None = None  # the probe's own error, never to pass for Keras's

        def _begin(self, phase: Phase, batch: int) -> None:
            try:
                self._note(phase, batch)
            except Exception as error:
                self.failure = error
                raise

        def _note(self, phase: Phase, batch: int) -> None:
            epoch = self.epoch if phase in (Phase.TRAIN, Phase.VALIDATION) and self.fitting else 0
            plan = planned[len(result.calls)] if len(result.calls) < len(planned) else None
            samples = plan.samples if plan is not None else np.zeros(0, np.int64)
            call = KerasCall(phase, epoch, batch, samples, plan.stream if plan else phase)
            if not _reads_loop(spec):
                call.initial = read_states()
            self.pending = {}
            result.calls.append(call)

        def mark(self, call: Call) -> None:
            """A call made outside fit, evaluate and predict (train_on_batch and its kin)."""
            self._begin(call.phase, 0)

        def end(self) -> None:
            try:
                self._read()
            except Exception as error:
                self.failure = error
                raise

        def _read(self) -> None:
            call = result.calls[-1]
            if not _reads_loop(spec):
                call.final = read_states()
                return
            if spec.backend == Backend.JAX:
                import jax

                jax.effects_barrier()  # every callback of this step has run
            if len(self.pending) == len(session.rnns):
                ordered = [self.pending[index] for index in range(len(session.rnns))]
                call.initial = tuple(np.stack(t) for t in zip(*(initial for initial, _ in ordered)))
                call.final = tuple(np.stack(t) for t in zip(*(final for _, final in ordered)))

        def recording(self) -> bool:
            """Whether a call is under way (Keras also calls the layers to build the model)."""
            return bool(result.calls) and result.calls[-1].final is None

        def record(self, index: int, initial: list[np.ndarray], final: list[np.ndarray]) -> None:
            if self.recording():
                self.pending[index] = (initial, final)

        def on_train_begin(self, logs=None):
            self.fitting = True

        def on_train_end(self, logs=None):
            self.fitting = False

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            self._begin(Phase.TRAIN, batch)

        def on_test_batch_begin(self, batch, logs=None):
            self._begin(Phase.VALIDATION if self.fitting else Phase.EVALUATE, batch)

        def on_predict_batch_begin(self, batch, logs=None):
            self._begin(Phase.PREDICT, batch)

        def on_train_batch_end(self, batch, logs=None):
            self.end()

        on_test_batch_end = on_predict_batch_end = on_train_batch_end

    return StateProbe()


@dataclass(frozen=True, eq=False)
class StepComparison:
    """One call Keras completed, next to the schedule's step and the mirror's call."""

    phase: Phase
    epoch: int
    batch: int
    samples: np.ndarray
    start: list[str]  # each slot's start, read from Keras's tensors (KerasRun.start_labels)
    predicted: list[str] | None  # the schedule's start_labels(); None if it has no such step
    state_diff: float | None  # max |initial states Keras - mirror|; None if the mirror has no such call
    output_diff: float | None  # max |final states Keras - mirror| (every tensor, layer, direction)
    batch_independence_diff: float | None  # stateless first call: max |in its batch - alone|

    @property
    def agree(self) -> bool:
        """Keras starts every slot where the schedule says, and the mirror holds Keras's
        numbers: a step whose labels match but whose tensors differ is not an agreement."""
        return (self.start == self.predicted and self.state_diff is not None
                and max(self.state_diff, self.output_diff or 0.0, self.batch_independence_diff or 0.0) < TOLERANCE)

    def to_json(self, slots: bool = True) -> dict[str, Any]:
        """`slots=False` (--no-slots): the per-slot arrays left out, as in the mirror's steps."""
        item: dict[str, Any] = {"phase": self.phase.value, "epoch": self.epoch, "batch": self.batch}
        if slots:
            item.update(samples=self.samples.tolist(), start=self.start)
        return {**item, "state_diff": self.state_diff, "output_diff": self.output_diff, "agree": self.agree}


@dataclass(frozen=True, eq=False)
class KerasComparison:
    """Real Keras against the schedule and the mirror; `agree` is the verdict."""

    version: str
    backend: str
    steps: list[StepComparison]
    error: KerasError | None  # what Keras raised, at the index of the call that raised
    schedule_error: KerasError | None  # the schedule's
    planned_steps: int  # steps the schedule completes before any raise
    mirror_steps: int  # calls the mirror completed

    @property
    def error_agrees(self) -> bool:
        if self.error is None or self.schedule_error is None:
            return self.error is None and self.schedule_error is None
        # Keras wraps the message ("Exception encountered when calling LSTM.call()...").
        return ((self.error.step, self.error.type) == (self.schedule_error.step, self.schedule_error.type)
                and self.schedule_error.matches(self.error.message))

    @property
    def same_length(self) -> bool:
        return len(self.steps) == self.planned_steps == self.mirror_steps

    @property
    def agree(self) -> bool:
        return all(step.agree for step in self.steps) and self.same_length and self.error_agrees

    @property
    def max_state_diff(self) -> float:
        return max((step.state_diff for step in self.steps if step.state_diff is not None), default=0.0)

    @property
    def max_output_diff(self) -> float:
        return max((step.output_diff for step in self.steps if step.output_diff is not None), default=0.0)

    def summary_line(self) -> str:
        agreeing = sum(step.agree for step in self.steps)
        line = (f"Keras {self.version} ({self.backend}): {agreeing}/{len(self.steps)} steps agree, "
                f"max state diff {self.max_state_diff:.1g}")
        independence = [step.batch_independence_diff for step in self.steps
                        if step.batch_independence_diff is not None]
        if independence:
            line += f", in batch vs alone {max(independence):.1g}"
        if not self.same_length:
            line += f"; the schedule plans {self.planned_steps} steps, the mirror ran {self.mirror_steps}"
        if self.error or self.schedule_error:
            line += f"; raises {_describe(self.error)}" if self.error else "; does not raise"
            line += ", as predicted" if self.error_agrees else f", predicted {_describe(self.schedule_error)}"
        return line

    def to_json(self, slots: bool = True) -> dict:
        return {"version": self.version, "backend": self.backend,
                "steps": [step.to_json(slots) for step in self.steps], "agree": self.agree,
                "max_state_diff": self.max_state_diff, "max_output_diff": self.max_output_diff,
                "error": self.error.to_json() if self.error else None}


def _describe(error: KerasError | None) -> str:
    return f"{error.type} at step {error.step}" if error else "no error"


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    # In float64, so that the difference of two float32 values is itself exact.
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def _same_call(call: KerasCall, other: Call) -> bool:
    return ((call.phase, call.epoch, call.batch) == (other.phase, other.epoch, other.batch)
            and np.array_equal(call.samples, other.samples))


def _compare_step(call: KerasCall, start: list[str], step: Step | None,
                  record: CallRecord | None, directions: int) -> StepComparison:
    predicted = step.start_labels() if step is not None and _same_call(call, step.call) else None
    state_diff = output_diff = None
    if record is not None and _same_call(call, record.call):
        assert call.initial is not None and call.final is not None
        state_diff = max(_max_diff(keras, mirror.cpu().numpy())
                         for keras, mirror in zip(call.initial, record.initial))
        # Keras's outputs are not visible inside fit; its final states are, and they are
        # what the outputs are made of (every layer and direction).
        output_diff = max(_max_diff(keras, mirror.cpu().numpy())
                          for keras, mirror in zip(call.final, record.final))
    independence = None
    if call.alone_output is not None:
        inside = call.output(directions)
        independence = _max_diff(inside[:len(call.alone_output)], call.alone_output)
    return StepComparison(call.phase, call.epoch, call.batch, call.samples, start, predicted,
                          state_diff, output_diff, independence)


def compare_with_keras(spec: Spec) -> KerasComparison:
    """Run the setup through real Keras and through the mirror, and compare every call
    Keras completed with the schedule's step and the mirror's call of the same index."""
    from .mirror import mirror_records

    (observed,) = [run_keras(spec)] if _runs_here(spec) else run_keras_isolated([spec])
    schedule = list(keras_steps(spec))
    planned = [step for step in schedule if not step.raises]
    raising = [step.error for step in schedule if step.error is not None]
    mirror = mirror_records(spec)  # up to where it raises; the error compared is the one Keras raised
    steps = [_compare_step(call, start, planned[i] if i < len(planned) else None,
                           mirror[i] if i < len(mirror) else None, spec.directions)
             for i, (call, start) in enumerate(zip(observed.completed, observed.start_labels()))]
    error = None
    if observed.error_type is not None:
        assert observed.error_step is not None and observed.error_message is not None
        error = KerasError(observed.error_step, observed.error_type, observed.error_message)
    return KerasComparison(observed.version, observed.backend, steps, error,
                           raising[0] if raising else None,
                           len(planned), len(mirror))


if __name__ == "__main__":
    _serve(sys.argv[1])
