"""Real Keras as the oracle: run a setup through Keras 3 and read each slot's start from
Keras's own tensors. Needs the `keras` extra (pip install 'lstm-inspect[keras]').

The Keras model gets the mirror's weights and inputs, is driven by real `fit` (learning
rate 0, so the weights stay equal), validation and `predict`, in the mirror's sample
order. Stateful layers are read through `layer.states` in callbacks before and after
every batch; stateless layers hold no state variables, so the initial state Keras builds
for each call is recorded where the layer hands it to its recurrent loop.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np

from .spec import Phase, ResetKind, Spec

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class KerasCall:
    phase: Phase
    epoch: int
    batch: int
    samples: np.ndarray
    h0: np.ndarray | None = None
    c0: np.ndarray | None = None
    hn: np.ndarray | None = None
    cn: np.ndarray | None = None


@dataclass
class KerasRun:
    version: str
    backend: str
    calls: list[KerasCall] = field(default_factory=list)
    error_step: int | None = None
    error_type: str | None = None
    error_message: str | None = None

    @property
    def completed(self) -> list[KerasCall]:
        return [call for call in self.calls if call.hn is not None]

    def start_labels(self) -> list[list[str]]:
        """Per completed call, each slot's start as the schedule writes it: "zeros" or
        "<phase>:<sample>" of the previous call's slot whose final state equals it exactly
        ("?" if none does)."""
        labels = []
        previous = None
        for call in self.completed:
            slots = []
            for slot in range(len(call.samples)):
                h, c = call.h0[slot], call.c0[slot]
                if not h.any() and not c.any():
                    slots.append("zeros")
                    continue
                source = "?"
                if previous is not None:
                    for j in range(len(previous.samples)):
                        if np.array_equal(previous.hn[j], h) and np.array_equal(previous.cn[j], c):
                            source = f"{previous.phase}:{previous.samples[j]}"
                            break
                slots.append(source)
            labels.append(slots)
            previous = call
        return labels


def import_keras():
    """Import Keras on the torch backend unless the user chose another one."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as missing:
        raise ImportError("real Keras is not installed: pip install 'lstm-inspect[keras]'") from missing
    return keras


def _to_numpy(keras, value) -> np.ndarray:
    """A copy: on the torch backend the conversion may share memory with a live variable."""
    return np.array(keras.ops.convert_to_numpy(value), copy=True)


def copy_lstm_weights(keras_layer, torch_lstm) -> None:
    """PyTorch (i, f, g, o) matches Keras's (i, f, c, o); Keras has one bias for PyTorch's two."""
    def numpy(tensor):
        return tensor.detach().cpu().numpy()

    keras_layer.set_weights([numpy(torch_lstm.weight_ih_l0).T, numpy(torch_lstm.weight_hh_l0).T,
                             numpy(torch_lstm.bias_ih_l0) + numpy(torch_lstm.bias_hh_l0)])


def phase_inputs(spec: Spec, phase: Phase, count: int) -> np.ndarray:
    """The mirror's inputs for samples 0..count-1 of a phase, as one array for Keras."""
    import torch

    from .run import batch_inputs

    return batch_inputs(spec, phase, np.arange(count), torch.device("cpu")).numpy()


def run_keras(spec: Spec) -> KerasRun:
    keras = import_keras()
    import torch

    from .run import build_lstm
    from .schedule import training_order

    if spec.stateful:
        inputs = keras.Input(batch_shape=(spec.batch_size, spec.timesteps, spec.features))
    else:
        inputs = keras.Input(shape=(spec.timesteps, spec.features))
    # use_cudnn=False: Keras 3 fails stateful training with cuDNN on torch (keras-team/keras#20875).
    layer = keras.layers.LSTM(spec.units, stateful=spec.stateful, use_cudnn=False)
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    copy_lstm_weights(layer, build_lstm(spec, torch.device("cpu")))

    result = KerasRun(keras.__version__, keras.backend.backend())
    x_train = phase_inputs(spec, Phase.TRAIN, spec.samples)
    validation = None
    if spec.val_samples:
        validation = (phase_inputs(spec, Phase.VALIDATION, spec.val_samples),
                      np.zeros((spec.val_samples, spec.units), np.float32))
    orders = [training_order(spec, epoch) for epoch in range(spec.epochs)]
    probe = _make_probe(keras, layer, spec, orders, result)
    callbacks = [_make_reset_callback(keras, layer, spec), probe]

    if not spec.stateful:
        # No state variables to read: record the initial state Keras builds for each call.
        loop = layer.inner_loop

        def recording_inner_loop(sequences, initial_state, *args, **kwargs):
            last, outputs, states = loop(sequences, initial_state, *args, **kwargs)
            probe.record(*(_to_numpy(keras, s) for s in initial_state), *(_to_numpy(keras, s) for s in states))
            return last, outputs, states

        layer.inner_loop = recording_inner_loop

    try:
        # Keras draws its own permutation when shuffling; feeding each epoch in the mirror's
        # order (shuffle=False, one fit per epoch) makes both see the same batches.
        for epoch in range(spec.epochs) if spec.shuffle else [None]:
            x = x_train if epoch is None else x_train[orders[epoch]]
            model.fit(x, np.zeros((spec.samples, spec.units), np.float32), batch_size=spec.batch_size,
                      epochs=spec.epochs if epoch is None else epoch + 1,
                      initial_epoch=0 if epoch is None else epoch, shuffle=False,
                      validation_data=validation, callbacks=callbacks, verbose=0)
        if spec.predict_samples:
            model.predict(phase_inputs(spec, Phase.PREDICT, spec.predict_samples),
                          batch_size=spec.batch_size, callbacks=callbacks, verbose=0)
    except Exception as raised:  # whatever Keras raises is the observation
        # The call that raised is the last one begun, or (when Keras raises while building
        # its step function, before any batch begins) the next one.
        begun_unfinished = bool(result.calls) and result.calls[-1].hn is None
        result.error_step = len(result.calls) - begun_unfinished
        result.error_type = type(raised).__name__
        result.error_message = _ANSI.sub("", str(raised))
    return result


def _make_reset_callback(keras, layer, spec: Spec):
    class ResetCallback(keras.callbacks.Callback):
        """The user's reset policy, as a Keras user writes it."""

        def on_epoch_begin(self, epoch, logs=None):
            if spec.reset.kind == ResetKind.EPOCH:
                layer.reset_state()

        def on_train_batch_begin(self, batch, logs=None):
            if spec.reset.resets_on_train_batch_begin(batch):
                layer.reset_state()

    return ResetCallback()


def _make_probe(keras, layer, spec: Spec, orders: list[np.ndarray], result: KerasRun):
    def samples_of(phase: Phase, epoch: int, batch: int) -> np.ndarray:
        if phase == Phase.TRAIN:
            order = orders[epoch]
        else:
            order = np.arange(spec.val_samples if phase == Phase.VALIDATION else spec.predict_samples)
        return order[batch * spec.batch_size:(batch + 1) * spec.batch_size]

    class StateProbe(keras.callbacks.Callback):
        """Notes each call as its batch begins; reads layer.states around it when stateful."""

        epoch = 0

        def _begin(self, phase: Phase, batch: int) -> None:
            epoch = 0 if phase == Phase.PREDICT else self.epoch
            call = KerasCall(phase, epoch, batch, samples_of(phase, epoch, batch))
            if spec.stateful:
                call.h0, call.c0 = (_to_numpy(keras, s) for s in layer.states)
            result.calls.append(call)

        def _end(self) -> None:
            if spec.stateful:
                result.calls[-1].hn, result.calls[-1].cn = (_to_numpy(keras, s) for s in layer.states)

        def record(self, h0, c0, hn, cn) -> None:
            # Keras also calls the layer once to build the model before the first batch.
            if result.calls and result.calls[-1].hn is None:
                call = result.calls[-1]
                call.h0, call.c0, call.hn, call.cn = h0, c0, hn, cn

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
