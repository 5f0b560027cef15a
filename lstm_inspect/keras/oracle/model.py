"""The Keras model standing for a setup, built in the Keras and backend the setup names, with the
mirror's weights converted into it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...core.choices import Backend, KerasVersion
from ...core.replicas import per_replica_batch
from ...core.spec import Spec
from ...mirror.port import keras_weights
from .errors import OracleError


def import_keras(spec: Spec | None = None) -> Any:
    """The Keras that `spec` describes, imported in this process: Keras 3 on its backend
    (KERAS_BACKEND, set before Keras is first imported; torch unless set), or tf-keras."""
    if spec is not None and spec.keras == KerasVersion.TWO:
        try:
            import tf_keras
        except ImportError as missing:
            raise ImportError(f"{missing} (pip install 'lstm-inspect[tensorflow]' && pip install --no-deps "
                              "'tf-keras>=2.16' installs Keras 2)") from missing
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


def to_numpy(keras: Any, value: Any) -> np.ndarray:
    """A copy: on the torch backend the conversion may share memory with a live variable."""
    if not hasattr(keras, "ops"):  # tf-keras: TensorFlow tensors and variables
        return np.array(value, copy=True)
    return np.array(keras.ops.convert_to_numpy(value), copy=True)


def build_keras_model(keras, spec: Spec, batch_size: int | None = None, hand_carry: bool = False,
                      stateful: bool | None = None):
    """The Keras model for the spec (stateful: built for `batch_size`, default the spec's), and
    its RNN layers in torch's order. `hand_carry`: each layer also takes its initial states as
    inputs and returns its final states, after the model's output, to be passed back by hand.
    `stateful`: a twin's, where it is built otherwise than the spec's model."""
    if spec.replicas > 1:  # built and compiled in the strategy's scope, for the per-replica batch
        with mirrored_strategy(spec.replicas).scope():
            return _build(keras, spec, batch_size or per_replica_batch(spec), hand_carry, stateful)
    return _build(keras, spec, batch_size or spec.batch_size, hand_carry, stateful)


def _build(keras, spec: Spec, batch_size: int, hand_carry: bool, stateful: bool | None):
    stateful = spec.stateful if stateful is None else stateful
    if stateful:
        inputs = keras.Input(batch_shape=(batch_size, spec.timesteps, *spec.step_shape))
    else:
        inputs = keras.Input(shape=(spec.timesteps, *spec.step_shape))
    if hand_carry and spec.bidirectional:
        raise OracleError("the oracle carries states by hand for one direction only")
    layer_class = getattr(keras.layers, spec.cell.keras_name)
    # use_cudnn=False: Keras 3 fails stateful training with cuDNN on torch (keras-team/keras#20875).
    options: dict[str, Any] = {"use_cudnn": False} if spec.cell.cudnn and spec.keras == KerasVersion.THREE else {}
    if spec.cell.convolutional:
        options.update(kernel_size=spec.kernel, padding=spec.padding, data_format=spec.data_format)
    outputs, rnns, state_inputs, state_outputs = inputs, [], [], []
    if spec.padded and spec.mask:  # a step is masked where every feature is the mask value
        outputs = keras.layers.Masking(mask_value=spec.mask_value)(inputs)
    for depth in range(spec.layers):
        layer = layer_class(spec.units, stateful=stateful, return_sequences=depth < spec.layers - 1,
                            return_state=hand_carry, go_backwards=spec.go_backwards, **options)
        if spec.bidirectional:
            layer = keras.layers.Bidirectional(layer)
        if hand_carry:
            given = [keras.Input(batch_shape=(batch_size, *spec.state_shape)) if stateful
                     else keras.Input(shape=spec.state_shape) for _ in spec.cell.state_names]
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
    # States are read inside the recurrent loop where no variable holds them (see reads_loop):
    # TensorFlow hands the loop concrete values only when it runs eagerly.
    eager = reads_loop(spec, stateful) and spec.backend == Backend.TENSORFLOW
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse", run_eagerly=eager)
    return model, rnns


def split_cpu(replicas: int) -> None:
    """The CPU as `replicas` logical devices, one per replica: before TensorFlow first runs."""
    if replicas > 1:
        import tensorflow as tf  # type: ignore[import-untyped]

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)


def mirrored_strategy(replicas: int) -> Any:
    import tensorflow as tf

    devices = [f"/cpu:{index}" for index in range(replicas)]
    if len(tf.config.list_logical_devices("CPU")) < replicas:
        raise OracleError(f"{replicas} replicas need {replicas} logical CPU devices, made before TensorFlow starts "
                          "(split_cpu; run_keras_isolated does it)")
    return tf.distribute.MirroredStrategy(devices)


def state_rows(keras: Any, state: Any) -> np.ndarray:
    """A state variable's rows: under MirroredStrategy each replica's, in replica order (the
    variable itself reads replica 0's only)."""
    per_replica = getattr(getattr(state, "value", None), "values", None)
    if isinstance(per_replica, tuple) and len(per_replica) > 1:
        return np.concatenate([to_numpy(keras, part) for part in per_replica])
    return to_numpy(keras, state)


def reads_loop(spec: Spec, stateful: bool) -> bool:
    """Whether states are read where the recurrent loop takes and returns them, rather than
    from the layers' state variables: stateless layers have none, and on JAX the variables
    never change inside fit, evaluate or predict (their assignments are dropped); and a model given
    its states starts from those, not from its variables (Keras 3)."""
    return not stateful or spec.backend == Backend.JAX or spec.takes_states


def copy_weights(rnns, spec: Spec, torch_module) -> None:
    for index, rnn in enumerate(rnns):
        layer, direction = divmod(index, spec.directions)
        rnn.set_weights(keras_weights(spec.cell, torch_module, layer, reverse=direction == 1))


def rnn_layers(keras: Any, model: Any) -> list[Any]:
    """A loaded model's RNN layers in torch's order (layer by layer, forward then backward)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            found += [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, keras.layers.RNN):
            found.append(layer)
    return found
