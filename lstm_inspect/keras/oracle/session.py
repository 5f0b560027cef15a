"""Real Keras running a workflow: the calls made on the model as a user makes them (fit,
evaluate, predict, the *_on_batch calls, resets, twins, a saved and loaded model), with the
user's reset callback and a callback reading every layer's states around each batch."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from ...check.against import KerasRun
from ...core.choices import KerasVersion, Phase, Shuffle
from ...core.order import Call, Invocation, iter_invocations
from ...core.spec import Spec
from ...core.workflow import Kind, Op, Source
from .model import build_keras_model, copy_weights, import_keras, reads_loop, rnn_layers
from .reading import StateReader, UserResets, as_callback, hook_loops

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Running a sample alone costs one Keras call (~3 ms on CPU) per sample: the stateless
# independence check covers the first call's first slots, a cost that does not grow with N.
_ALONE_SLOTS = 32


class Session:
    """Real Keras running a workflow: the model the calls go to now (a twin or a loaded model
    replaces it), the user's reset callback and the state reader, both following that model."""

    def __init__(self, keras: Any, spec: Spec, result: KerasRun, planned: list[Call]):
        import torch

        from ...mirror.inputs import build_rnn

        self.keras, self.spec, self.result = keras, spec, result
        self.hand_carry = spec.takes_states
        self.stateful = spec.stateful  # the model's in use: a twin may be built otherwise
        self.model, self.rnns = build_keras_model(keras, spec, hand_carry=self.hand_carry)
        copy_weights(self.rnns, spec, build_rnn(spec, torch.device("cpu")))
        self.reader = StateReader(keras, spec, self, planned, result)
        self.callbacks = [as_callback(keras, UserResets(spec.reset, self)), as_callback(keras, self.reader)]
        self.returned: list[np.ndarray] | None = None  # the states the last predict returned
        self._restore = self._hook()
        self.folder = tempfile.TemporaryDirectory(prefix="lstm-inspect-")

    def _hook(self) -> Callable[[], None]:
        if not reads_loop(self.spec, self.stateful):
            return lambda: None
        return hook_loops(self.keras, self.rnns, self.spec, self.reader)

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

    def reset_slots(self, slots: tuple[int, ...]) -> None:
        """As a user zeroes some slots only: reset_state() takes no slots, so each state variable of
        each RNN layer is assigned itself times a mask, 0 for those slots and 1 for the others."""
        for rnn in self.rnns:
            for state in rnn.states:
                keep = np.ones((state.shape[0],) + (1,) * (len(state.shape) - 1), dtype="float32")
                keep[list(slots)] = 0.0
                state.assign(state * keep)

    def make_twin(self, op: Op, batch_size: int) -> None:
        """A twin built for `batch_size`, stateful or not as asked, given the weights (set_weights)."""
        self._restore()
        self.stateful = self.stateful if op.stateful is None else op.stateful
        twin, rnns = build_keras_model(self.keras, self.spec, batch_size, self.hand_carry, self.stateful)
        twin.set_weights(self.model.get_weights())
        self.model, self.rnns = twin, rnns
        self._restore = self._hook()

    def save_and_load(self, op: Op, batch_size: int) -> None:
        """The model after model.save() and keras.models.load_model()."""
        self._restore()
        path = os.path.join(self.folder.name, f"model{len(os.listdir(self.folder.name))}.keras")
        self.model.save(path)
        self.model = self.keras.models.load_model(path)
        self.rnns = rnn_layers(self.keras, self.model)
        if self.spec.keras == KerasVersion.THREE and self.spec.cell.cudnn:
            for rnn in self.rnns:
                rnn.use_cudnn = False  # not in the saved config: as build_keras_model sets it
        self._restore = self._hook()

    def run(self, invocation: Invocation, calls: list[Call]) -> None:
        """A call of the workflow, made as the user makes it (`CALL_MAKERS`)."""
        op = invocation.op
        samples = np.concatenate([call.samples for call in calls]) if calls else np.zeros(0, np.int64)
        x = _inputs(self.spec, calls[0].stream if calls else Phase.TRAIN, samples)
        CALL_MAKERS[op.kind](self, op, op.batch_size or invocation.batch_size, calls, x)
        self.reader.drop_unran()

    def targets(self, count: int) -> np.ndarray:
        *frame, units = self.spec.state_shape  # the last layer's output: h, directions side by side
        return np.zeros((count, *frame, units * self.spec.directions), np.float32)

    def with_states(self, x: np.ndarray, op: Op) -> Any:
        if not self.hand_carry:
            return x
        if op.hand_carried and self.returned is not None:
            return [x, *self.returned]
        return [x, *[np.zeros((len(x), *self.spec.state_shape), np.float32)
                     for _ in range(self.spec.layers * len(self.spec.cell.state_names))]]

    def keep_returned(self, out: Any) -> None:
        if self.hand_carry:
            self.returned = [np.asarray(state) for state in out[1:]]

    def fit(self, op: Op, size: int, calls: list[Call], x: np.ndarray) -> None:
        """Keras draws its own permutation when shuffling: each epoch is fed in the schedule's
        order instead (shuffle=False, one fit per epoch), so that both see the same batches.
        Unshuffled, one fit makes every epoch, and validation_split and steps_per_epoch are Keras's
        own; a dataset, a generator or a PyDataset is built from the data as the user builds one."""
        spec = self.spec
        shuffle = op.fit_shuffle(spec.shuffle)
        x_all = _inputs(spec, Phase.TRAIN, np.arange(spec.samples))
        common: dict[str, Any] = {"shuffle": False, "callbacks": self.callbacks, "verbose": 0,
                                  "validation_freq": op.validation_freq, "steps_per_epoch": op.steps_per_epoch or None}
        if op.validation_samples:
            common["validation_data"] = (_inputs(spec, Phase.VALIDATION, np.arange(op.validation_samples)),
                                         self.targets(op.validation_samples))
        if op.data != Source.ARRAYS and not shuffle:
            stream = _stream(self.keras, op, x_all, self.targets(spec.samples), size)
            self.model.fit(stream, epochs=op.epochs, initial_epoch=op.initial_epoch, **common)
            return
        if not shuffle or spec.empty_split_part(op):  # Keras's own refusal of the split comes first
            split = {"validation_split": op.validation_split} if op.validation_split else {}
            self.model.fit(x_all, self.targets(spec.samples), batch_size=size, epochs=op.epochs,
                           initial_epoch=op.initial_epoch, **split, **common)
            return
        if op.validation_split:
            train = spec.fit_split(op)
            common["validation_data"] = (x_all[train:], self.targets(spec.samples - train))
        common["steps_per_epoch"] = None  # each epoch is fed the batches the schedule gives it
        for epoch in range(op.initial_epoch, op.epochs):
            batches = [call.samples for call in calls if call.phase == Phase.TRAIN and call.epoch == epoch]
            fit = {"epochs": epoch + 1, "initial_epoch": epoch, **common}
            if spec.keras == KerasVersion.TWO and shuffle == Shuffle.BATCH or op.steps_per_epoch or \
                    op.data == Source.PYDATASET:
                # Keras 2 also shuffles the chunks' order, and Keras a PyDataset's, the partial chunk
                # included (and tf-keras's steps_per_epoch runs passes end to end): re-batching the
                # epoch's order would cut other batches, so the batches are fed as they are.
                self.model.fit(_batches_sequence(self.keras, x_all, self.targets, batches), **fit)
                continue
            order = np.concatenate(batches)
            self.model.fit(x_all[order], self.targets(len(order)), batch_size=size, **fit)

    def given(self, op: Op, x: Any, size: int) -> dict[str, Any]:
        """evaluate's or predict's data as the call names it: arrays with their batch_size (and
        zero targets for evaluate), or a stream of the same batches, targets beside them."""
        if op.data == Source.ARRAYS:
            targets = {"y": self.targets(len(x))} if op.kind == Kind.EVALUATE else {}
            return {"x": x, **targets, "batch_size": size}
        return {"x": _stream(self.keras, op, x, self.targets(len(x)), size)}

    def evaluate(self, op: Op, size: int, calls: list[Call], x: np.ndarray) -> None:
        x = _inputs(self.spec, Phase.EVALUATE, _all_samples(op, calls))
        self.model.evaluate(**self.given(op, x, size), steps=op.steps or None, callbacks=self.callbacks, verbose=0)

    def predict(self, op: Op, size: int, calls: list[Call], x: np.ndarray) -> None:
        x = _inputs(self.spec, Phase.PREDICT, _all_samples(op, calls))
        out = self.model.predict(**self.given(op, self.with_states(x, op), size), steps=op.steps or None,
                                 callbacks=self.callbacks, verbose=0)
        self.keep_returned(out)
        self.result.predict_rows = len(out[0] if self.hand_carry else out)

    def on_batch(self, op: Op, size: int, calls: list[Call], x: np.ndarray) -> None:
        """train_on_batch, test_on_batch, predict_on_batch: no callback runs, so the reader is told."""
        self.reader.mark(calls[0])
        if op.kind == Kind.PREDICT_ON_BATCH:
            self.keep_returned(self.model.predict_on_batch(self.with_states(x, op)))
        else:
            getattr(self.model, str(op.kind))(x, self.targets(len(x)))
        self.reader.end()


def _reset(session: Session, op: Op, size: int, calls: list[Call], x: np.ndarray) -> None:
    if op.slots:
        session.reset_slots(op.slots)
    else:
        session.reset()


def _twin(session: Session, op: Op, size: int, calls: list[Call], x: np.ndarray) -> None:
    session.make_twin(op, size)


def _save_and_load(session: Session, op: Op, size: int, calls: list[Call], x: np.ndarray) -> None:
    session.save_and_load(op, size)


# How the oracle makes each kind of call on real Keras: one row per kind.
CALL_MAKERS: dict[Kind, Callable[[Session, Op, int, list[Call], np.ndarray], None]] = {
    Kind.FIT: Session.fit, Kind.EVALUATE: Session.evaluate, Kind.PREDICT: Session.predict,
    Kind.TRAIN_ON_BATCH: Session.on_batch, Kind.TEST_ON_BATCH: Session.on_batch,
    Kind.PREDICT_ON_BATCH: Session.on_batch, Kind.RESET_STATE: _reset, Kind.TWIN: _twin,
    Kind.SAVE_AND_LOAD: _save_and_load,
}


def _inputs(spec: Spec, stream: Phase, samples: np.ndarray) -> np.ndarray:
    """The mirror's inputs for these samples of this data, as one array for Keras."""
    import torch

    from ...mirror.inputs import batch_inputs

    if len(samples) == 0:
        return np.zeros((0, spec.timesteps, *spec.step_shape), np.float32)
    return batch_inputs(spec, stream, samples, torch.device("cpu")).numpy()


def run_keras(spec: Spec) -> KerasRun:
    """Run the workflow through real Keras, in this process: see `process.run_keras_isolated` for
    a Keras on another backend than this process's."""
    keras = import_keras(spec)
    backend = keras.backend.backend() if spec.keras == KerasVersion.THREE else "tensorflow"
    result = KerasRun(keras.__version__, backend)
    invocations = [(invocation, list(calls)) for invocation, calls in iter_invocations(spec)]
    session = Session(keras, spec, result, [call for _, calls in invocations for call in calls])
    try:
        for invocation, calls in invocations:
            session.run(invocation, calls)
    except Exception as raised:  # whatever Keras raises is the observation ...
        if session.reader.failure is not None:
            raise session.reader.failure from raised  # ... unless the reader itself broke
        _note_error(result, raised)
    finally:
        session.close()
    # The first call's samples rerun alone on the model in use now: the same weights, stateless.
    if not spec.any_stateful and result.completed and not session.hand_carry:
        first = result.completed[0]
        alone = _inputs(spec, first.stream, first.samples[:_ALONE_SLOTS])
        first.alone_output = np.asarray(session.model.predict(alone, batch_size=1, verbose=0))
    return result


def _note_error(result: KerasRun, raised: Exception) -> None:
    # The call that raised is the last one begun, or (when Keras raises while building its step
    # function, before any batch begins) the next one.
    begun_unfinished = bool(result.calls) and result.calls[-1].final is None
    result.error_step = len(result.calls) - begun_unfinished
    result.error_in_batch = begun_unfinished
    result.error_type = type(raised).__name__
    result.error_message = _ANSI.sub("", str(raised))


def _all_samples(op: Op, calls: list[Call]) -> np.ndarray:
    """The call's n samples, though with steps=K Keras runs only the first K batches of them."""
    first = int(calls[0].samples[0]) if calls else 0
    return np.arange(first, first + op.samples)


def _stream(keras: Any, op: Op, x: np.ndarray, y: np.ndarray, size: int) -> Any:
    """The training data as fit(data=...) names it: a tf.data.Dataset, batched in order (then
    repeated), a generator yielding those batches round and round, or a PyDataset (tf-keras: a
    Sequence) whose item i is the i-th of them."""
    if op.data == Source.PYDATASET:
        return _pydataset(keras, op, x, y, size)
    if op.data == Source.DATASET:
        import tensorflow as tf  # type: ignore[import-untyped]  # tf.data feeds every backend's Keras

        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(size, drop_remainder=op.drop_remainder)
        return dataset.repeat() if op.repeat else dataset

    def batches() -> Any:
        while True:
            for start in range(0, len(x), size):
                if op.drop_remainder and start + size > len(x):
                    break
                yield x[start:start + size], y[start:start + size]

    return batches()


def _pydataset(keras: Any, op: Op, x: np.ndarray, y: np.ndarray, size: int) -> Any:
    """Batch i of x in order as item i, the way people write a PyDataset; repeat=True: one of no
    length (num_batches None), its item i wrapping round the batches, as an endless one must."""
    count = len(x) // size if op.drop_remainder else -(-len(x) // size)

    class Batches(keras.utils.Sequence):  # Keras 3's name for PyDataset, tf-keras's own class
        def __len__(self) -> int:
            return count

        @property
        def num_batches(self) -> int | None:
            return None if op.repeat else count

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            start = index % count * size
            return x[start:start + size], y[start:start + size]

    return Batches()


def _batches_sequence(keras: Any, x: np.ndarray, targets: Callable[[int], np.ndarray],
                      batches: list[np.ndarray]) -> Any:
    """The given batches of `x` (with zero targets), in order, as a Keras 2 Sequence."""
    class Batches(keras.utils.Sequence):
        def __len__(self) -> int:
            return len(batches)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            samples = batches[index]
            return x[samples], targets(len(samples))

    return Batches()
