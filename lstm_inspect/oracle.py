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

from .schedule import Call, KerasError, Step, keras_steps, training_batches
from .spec import Backend, Cell, KerasVersion, Phase, ResetKind, Shuffle, Spec

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
                "samples": self.samples.tolist(), "initial": arrays(self.initial), "final": arrays(self.final),
                "alone_output": None if self.alone_output is None else self.alone_output.tolist()}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> KerasCall:
        def arrays(states: list[Any] | None) -> tuple[np.ndarray, ...] | None:
            return None if states is None else tuple(np.array(state, dtype=np.float32) for state in states)

        alone = item["alone_output"]
        return cls(Phase(item["phase"]), item["epoch"], item["batch"], np.array(item["samples"], dtype=np.int64),
                   arrays(item["initial"]), arrays(item["final"]),
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
        "<phase>:<sample>" of the previous call's slot whose final states (every tensor,
        layer and direction) equal it exactly ("?" if none does)."""
        labels = []
        previous = None
        for call in self.completed:
            assert call.initial is not None and call.final is not None
            slots = []
            for slot in range(call.initial[0].shape[1]):
                start = [state[:, slot] for state in call.initial]
                if not any(state.any() for state in start):
                    slots.append("zeros")
                    continue
                source = "?"
                if previous is not None and previous.final is not None:
                    # Slot i first: where Keras carries from, so the search is short when it does.
                    rows = previous.final[0].shape[1]
                    for j in [slot] * (slot < rows) + list(range(rows)):
                        if all(np.array_equal(state[:, j], now) for state, now in zip(previous.final, start)):
                            source = f"{previous.phase}:{previous.slot_samples[j]}"
                            break
                slots.append(source)
            labels.append(slots)
            previous = call
        return labels


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


def phase_inputs(spec: Spec, phase: Phase, count: int) -> np.ndarray:
    """The mirror's inputs for samples 0..count-1 of a phase, as one array for Keras."""
    import torch

    from .mirror import batch_inputs

    return batch_inputs(spec, phase, np.arange(count), torch.device("cpu")).numpy()


def build_keras_model(keras, spec: Spec):
    """The Keras model for the spec, and its RNN layers in torch's order."""
    if spec.stateful:
        inputs = keras.Input(batch_shape=(spec.batch_size, spec.timesteps, spec.features))
    else:
        inputs = keras.Input(shape=(spec.timesteps, spec.features))
    layer_class = getattr(keras.layers, spec.cell.keras_name)
    # use_cudnn=False: Keras 3 fails stateful training with cuDNN on torch (keras-team/keras#20875).
    options = {} if spec.cell == Cell.RNN or spec.keras == KerasVersion.TWO else {"use_cudnn": False}
    outputs, rnns = inputs, []
    for depth in range(spec.layers):
        layer = layer_class(spec.units, stateful=spec.stateful, return_sequences=depth < spec.layers - 1,
                            **options)
        if spec.bidirectional:
            layer = keras.layers.Bidirectional(layer)
        outputs = layer(outputs)
        rnns += [layer.forward_layer, layer.backward_layer] if spec.bidirectional else [layer]
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


def run_keras(spec: Spec) -> KerasRun:
    """Run the setup through real Keras, in this process: see `run_keras_isolated` for a
    Keras on another backend than this process's."""
    keras = import_keras(spec)
    import torch

    from .mirror import batch_inputs, build_rnn

    model, rnns = build_keras_model(keras, spec)
    copy_weights(rnns, spec, build_rnn(spec, torch.device("cpu")))

    backend = keras.backend.backend() if spec.keras == KerasVersion.THREE else "tensorflow"
    result = KerasRun(keras.__version__, backend)
    width = spec.units * spec.directions
    validation = None
    if spec.val_samples:
        validation = (phase_inputs(spec, Phase.VALIDATION, spec.val_samples),
                      np.zeros((spec.val_samples, width), np.float32))
    epoch_batches = [list(training_batches(spec, epoch)) for epoch in range(spec.epochs)]
    probe = _make_probe(keras, rnns, spec, epoch_batches, result)
    callbacks = [_make_reset_callback(keras, rnns, spec), probe]
    restore = _hook_loops(keras, rnns, spec, probe) if _reads_loop(spec) else (lambda: None)
    try:
        _drive(keras, model, spec, epoch_batches, validation, callbacks, result)
    except Exception as raised:  # whatever Keras raises is the observation ...
        if probe.failure is not None:
            raise probe.failure from raised  # ... unless the probe itself broke
        # The call that raised is the last one begun, or (when Keras raises while building
        # its step function, before any batch begins) the next one.
        begun_unfinished = bool(result.calls) and result.calls[-1].final is None
        result.error_step = len(result.calls) - begun_unfinished
        result.error_in_batch = begun_unfinished
        result.error_type = type(raised).__name__
        result.error_message = _ANSI.sub("", str(raised))
    finally:
        restore()  # the calls below are not fit's: unrecorded, even if an error left a call unfinished
    if not spec.stateful and result.completed:
        first = result.completed[0]
        alone = batch_inputs(spec, first.phase, first.samples[:_ALONE_SLOTS], torch.device("cpu"))
        first.alone_output = np.asarray(model.predict(alone.numpy(), batch_size=1, verbose=0))
    return result


def _drive(keras: Any, model: Any, spec: Spec, epoch_batches: list[list[np.ndarray]], validation: Any,
           callbacks: list[Any], result: KerasRun) -> None:
    """fit, then predict. Keras draws its own permutation when shuffling: each epoch is fed
    in the schedule's order instead (shuffle=False, one fit per epoch), so that both see the
    same batches."""
    width = spec.units * spec.directions
    x_train = phase_inputs(spec, Phase.TRAIN, spec.samples)
    for epoch in range(spec.epochs) if spec.shuffle else [None]:
        fit = {"epochs": spec.epochs if epoch is None else epoch + 1, "initial_epoch": epoch or 0,
               "shuffle": False, "validation_data": validation, "callbacks": callbacks, "verbose": 0}
        if epoch is not None and spec.keras == KerasVersion.TWO and spec.shuffle == Shuffle.BATCH:
            # Keras 2 also shuffles the chunks' order, the partial chunk included: re-batching
            # the epoch's order would cut other batches, so the batches are fed as they are.
            model.fit(_batches_sequence(keras, x_train, width, epoch_batches[epoch]), **fit)
            continue
        x = x_train if epoch is None else x_train[np.concatenate(epoch_batches[epoch])]
        model.fit(x, np.zeros((spec.samples, width), np.float32), batch_size=spec.batch_size, **fit)
    if spec.predict_samples:
        result.predict_rows = len(model.predict(phase_inputs(spec, Phase.PREDICT, spec.predict_samples),
                                                batch_size=spec.batch_size, callbacks=callbacks, verbose=0))


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
    specs = [Spec(**fields) for fields in json.load(sys.stdin)]
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


def _make_reset_callback(keras: Any, rnns: list[Any], spec: Spec) -> Any:
    class ResetCallback(keras.callbacks.Callback):
        """The user's reset policy, as a user writes it: Keras 3's Model has no reset_state(),
        so every RNN layer is reset; Keras 2's model.reset_states() resets them all."""

        def _reset(self) -> None:
            if spec.keras == KerasVersion.TWO:
                self.model.reset_states()
                return
            for rnn in rnns:
                rnn.reset_state()

        def on_epoch_begin(self, epoch, logs=None):
            if spec.reset.kind == ResetKind.EPOCH:
                self._reset()

        def on_train_batch_begin(self, batch, logs=None):
            # Keras's own batch index, counted by fit from 0 in each epoch.
            if spec.reset.kind == ResetKind.EVERY and batch % spec.reset.every == 0:
                self._reset()

    return ResetCallback()


def _make_probe(keras: Any, rnns: list[Any], spec: Spec, epoch_batches: list[list[np.ndarray]],
                result: KerasRun) -> Any:
    def samples_of(phase: Phase, epoch: int, batch: int) -> np.ndarray:
        if phase == Phase.TRAIN:
            return epoch_batches[epoch][batch]
        order = np.arange(spec.val_samples if phase == Phase.VALIDATION else spec.predict_samples)
        return order[batch * spec.batch_size:(batch + 1) * spec.batch_size]

    def read_states() -> tuple[np.ndarray, ...]:
        per_layer = [[_to_numpy(keras, state) for state in rnn.states] for rnn in rnns]
        return tuple(np.stack(tensors) for tensors in zip(*per_layer))

    class StateProbe(keras.callbacks.Callback):
        """Notes each call as its batch begins; reads every RNN layer's states around it from
        the state variables, or assembles what the layers' loops recorded (_reads_loop)."""

        epoch = 0
        pending: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        failure: Exception | None = None  # the probe's own error, never to pass for Keras's

        def _begin(self, phase: Phase, batch: int) -> None:
            try:
                self._note(phase, batch)
            except Exception as error:
                self.failure = error
                raise

        def _note(self, phase: Phase, batch: int) -> None:
            epoch = 0 if phase == Phase.PREDICT else self.epoch
            call = KerasCall(phase, epoch, batch, samples_of(phase, epoch, batch))
            if not _reads_loop(spec):
                call.initial = read_states()
            self.pending = {}
            result.calls.append(call)

        def _end(self) -> None:
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
            if len(self.pending) == len(rnns):
                ordered = [self.pending[index] for index in range(len(rnns))]
                call.initial = tuple(np.stack(t) for t in zip(*(initial for initial, _ in ordered)))
                call.final = tuple(np.stack(t) for t in zip(*(final for _, final in ordered)))

        def recording(self) -> bool:
            """Whether a call is under way (Keras also calls the layers to build the model)."""
            return bool(result.calls) and result.calls[-1].final is None

        def record(self, index: int, initial: list[np.ndarray], final: list[np.ndarray]) -> None:
            if self.recording():
                self.pending[index] = (initial, final)

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            self._begin(Phase.TRAIN, batch)

        def on_test_batch_begin(self, batch, logs=None):
            self._begin(Phase.VALIDATION, batch)

        def on_predict_batch_begin(self, batch, logs=None):
            self._begin(Phase.PREDICT, batch)

        def on_train_batch_end(self, batch, logs=None):
            self._end()

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
