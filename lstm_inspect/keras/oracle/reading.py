"""Reading each layer call's states during real Keras's run: from the layers' state variables
around each batch, or, where no variable holds them (stateless layers; JAX, which drops the
state), from what each layer's recurrent loop takes and returns. And the user's reset callback,
written as a user writes it.

The readers are plain classes; `as_callback` makes a callback of the Keras in use out of one
(Keras 3 and tf-keras each want their own Callback class)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from ...check.against import KerasCall, KerasRun
from ...core.choices import Backend, KerasVersion, Phase, ResetKind, ResetPolicy
from ...core.order import Call
from ...core.spec import Spec
from .model import reads_loop, state_rows, to_numpy

# Every hook a reader may answer, as Keras calls them.
HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_test_begin", "on_predict_begin",
         "on_train_batch_begin", "on_test_batch_begin", "on_predict_batch_begin", "on_train_batch_end",
         "on_test_batch_end", "on_predict_batch_end")


def as_callback(keras: Any, reader: object) -> Any:
    """A callback of this Keras that hands each hook `reader` answers to it."""
    def forward(name: str) -> Callable[..., None]:
        def hook(self: Any, *args: Any, **kwargs: Any) -> None:
            getattr(reader, name)(*args, **kwargs)
        return hook

    answered = {name: forward(name) for name in HOOKS if hasattr(reader, name)}
    return type(type(reader).__name__, (keras.callbacks.Callback,), answered)()


class Model(Protocol):
    """The session's view of the model in use: its RNN layers, whether they are stateful, and a
    reset as the user makes it."""

    rnns: list[Any]
    stateful: bool

    def reset(self) -> None: ...


class UserResets:
    """The user's reset callback, as a Keras user writes it, resetting the model in use."""

    def __init__(self, policy: ResetPolicy, model: Model):
        self.policy, self.model = policy, model

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if self.policy.kind == ResetKind.EPOCH:
            self.model.reset()

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        # Keras's own batch index, counted by fit from 0 in each epoch.
        if self.policy.kind == ResetKind.EVERY and batch % self.policy.every == 0:
            self.model.reset()

    def on_test_begin(self, logs: Any = None) -> None:
        if self.policy.validation:
            self.model.reset()

    def on_predict_begin(self, logs: Any = None) -> None:
        if self.policy.predict:
            self.model.reset()


class StateReader:
    """Notes each call as its batch begins, as Keras names it (phase, epoch, batch), with the
    samples the schedule feeds it; reads every RNN layer's states around it from the state
    variables, or assembles what the layers' loops recorded (`reads_loop`)."""

    def __init__(self, keras: Any, spec: Spec, model: Model, planned: list[Call], result: KerasRun):
        self.keras, self.spec, self.model, self.planned, self.result = keras, spec, model, planned, result
        self.epoch, self.fitting, self.open = 0, False, False
        self.pending: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self.failure: Exception | None = None  # the reader's own error, never to pass for Keras's

    def read_states(self) -> tuple[np.ndarray, ...]:
        per_layer = [[state_rows(self.keras, state) for state in rnn.states] for rnn in self.model.rnns]
        return tuple(np.stack(tensors) for tensors in zip(*per_layer))

    def begin(self, phase: Phase, batch: int) -> None:
        try:
            self._note(phase, batch)
        except Exception as error:
            self.failure = error
            raise

    def _note(self, phase: Phase, batch: int) -> None:
        result = self.result
        epoch = self.epoch if phase in (Phase.TRAIN, Phase.VALIDATION) and self.fitting else 0
        plan = self.planned[len(result.calls)] if len(result.calls) < len(self.planned) else None
        samples = plan.samples if plan is not None else np.zeros(0, np.int64)
        call = KerasCall(phase, epoch, batch, samples, plan.stream if plan else phase)
        if not reads_loop(self.spec, self.model.stateful):
            call.initial = self.read_states()
        self.pending = {}
        result.calls.append(call)
        self.open = True

    def drop_unran(self) -> None:
        """After a call Keras returned from: a batch begun and never ended is one tf-keras announced
        past the end of a finite stream given more steps than it holds (measured: arrays, datasets,
        Sequences alike), which ran no layer: it is no call."""
        if self.open:
            self.result.calls.pop()
            self.open = False

    def mark(self, call: Call) -> None:
        """A call made outside fit, evaluate and predict (train_on_batch and its kin)."""
        self.begin(call.phase, 0)

    def end(self) -> None:
        try:
            self._read()
        except Exception as error:
            self.failure = error
            raise

    def _read(self) -> None:
        call, self.open = self.result.calls[-1], False
        if not reads_loop(self.spec, self.model.stateful):
            call.final = self.read_states()
            return
        if self.spec.backend == Backend.JAX:
            import jax

            jax.effects_barrier()  # every callback of this step has run
        layers = len(self.model.rnns)
        if len(self.pending) == layers:
            ordered = [self.pending[index] for index in range(layers)]
            call.initial = tuple(np.stack(t) for t in zip(*(initial for initial, _ in ordered)))
            call.final = tuple(np.stack(t) for t in zip(*(final for _, final in ordered)))

    def recording(self) -> bool:
        """Whether a call is under way (Keras also calls the layers to build the model)."""
        return bool(self.result.calls) and self.result.calls[-1].final is None

    def record(self, index: int, initial: list[np.ndarray], final: list[np.ndarray]) -> None:
        if self.recording():
            self.pending[index] = (initial, final)

    def on_train_begin(self, logs: Any = None) -> None:
        self.fitting = True

    def on_train_end(self, logs: Any = None) -> None:
        self.fitting = False

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.begin(Phase.TRAIN, batch)

    def on_test_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.begin(Phase.VALIDATION if self.fitting else Phase.EVALUATE, batch)

    def on_predict_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.begin(Phase.PREDICT, batch)

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.end()

    on_test_batch_end = on_predict_batch_end = on_train_batch_end


def hook_loops(keras: Any, rnns: list[Any], spec: Spec, reader: StateReader) -> Callable[[], None]:
    """Record the states each RNN layer's recurrent loop takes and returns; returns a function
    that undoes the hooks. Keras 3 has a loop per layer (`inner_loop`); tf-keras one function
    for all (`backend.rnn`), whose calls come layer by layer in the model's order."""
    if spec.keras == KerasVersion.TWO:
        return _hook_keras_2_loop(keras, reader)
    loops = [rnn.inner_loop for rnn in rnns]
    for index, (rnn, loop) in enumerate(zip(rnns, loops)):
        rnn.inner_loop = _recording_loop(keras, spec, reader, loop, index)

    def restore() -> None:
        for rnn, loop in zip(rnns, loops):
            rnn.inner_loop = loop
    return restore


def _recording_loop(keras: Any, spec: Spec, reader: StateReader, loop: Any, index: int) -> Any:
    def recording_inner_loop(sequences: Any, initial_state: Any, *args: Any, **kwargs: Any) -> Any:
        last, outputs, states = loop(sequences, initial_state, *args, **kwargs)
        if spec.backend == Backend.JAX:
            # Traced once into the compiled step: the callback hands over the values at every run.
            import jax

            count = len(initial_state)

            def record(*values: Any) -> None:
                if reader.recording():
                    reader.record(index, [np.array(v) for v in values[:count]], [np.array(v) for v in values[count:]])

            jax.debug.callback(record, *initial_state, *states)
        elif reader.recording():
            reader.record(index, [to_numpy(keras, s) for s in initial_state], [to_numpy(keras, s) for s in states])
        return last, outputs, states
    return recording_inner_loop


def _hook_keras_2_loop(keras: Any, reader: StateReader) -> Callable[[], None]:
    from tf_keras.src import backend as keras_2_backend

    loop = keras_2_backend.rnn

    def keras_2_rnn(step_function: Any, inputs: Any, initial_states: Any, *args: Any, **kwargs: Any) -> Any:
        last, outputs, states = loop(step_function, inputs, initial_states, *args, **kwargs)
        if reader.recording():  # TensorFlow runs eagerly then (see build_keras_model)
            reader.record(len(reader.pending), [to_numpy(keras, s) for s in initial_states],
                          [to_numpy(keras, s) for s in states])
        return last, outputs, states

    keras_2_backend.rnn = keras_2_rnn

    def restore() -> None:
        keras_2_backend.rnn = loop
    return restore
