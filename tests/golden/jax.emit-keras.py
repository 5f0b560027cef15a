# Reproduces the state handling of: lstm-inspect --shape 8,3,1 --batch 4 --predict-samples 8 --stateful --no-shuffle --backend jax
import os

os.environ["KERAS_BACKEND"] = "jax"  # the backend these states are described for
import keras
import numpy as np
from lstm_inspect.layout import stateful_layout


def to_numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable))

N, T, F, B, UNITS, EPOCHS = 8, 3, 1, 4, 8, 1
VAL, PRED, LAYERS = 0, 8, 1
rng = np.random.default_rng(0)
# Row j+B continues row j: B long series cut into windows of T steps, laid out for the slots.
series = rng.uniform(-1, 1, (B, (N // B) * T, F)).astype("float32")
x = stateful_layout(series, timesteps=T, batch_size=B).x
y = np.zeros((N, UNITS), "float32")
# A stateful layer needs a fixed batch size: the state holds one row per batch slot.
inputs = keras.Input(batch_shape=(B, T, F))
# use_cudnn=False: Keras 3 fails stateful training with cuDNN on torch (keras-team/keras#20875).
outputs = inputs
for depth in range(LAYERS):
    outputs = keras.layers.LSTM(UNITS, stateful=True, return_sequences=depth < LAYERS - 1, use_cudnn=False)(outputs)
model = keras.Model(inputs, outputs)
model.compile(optimizer="sgd", loss="mse")


def rnn_layers(model):
    """Every RNN layer: each holds its own state per batch slot (Bidirectional holds two)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            yield from (layer.forward_layer, layer.backward_layer)
        elif isinstance(layer, keras.layers.RNN):
            yield layer


class ShowStates(keras.callbacks.Callback):
    """Prints where each slot's initial state comes from, read from every layer's states."""

    epoch, final = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def states(self):
        return [to_numpy(state) for rnn in rnn_layers(self.model) for state in rnn.states]

    def show(self, label):
        now = self.states()
        zeros = np.all([~state.any(axis=1) for state in now], axis=0)
        carried = (np.zeros(len(zeros), bool) if self.final is None else
                   np.all([(a == b).all(axis=1) for a, b in zip(now, self.final)], axis=0) & ~zeros)
        print(f"{label}: zeros={zeros.sum()} carried={carried.sum()}")

    def keep_final(self, batch, logs=None):
        self.final = self.states()

    def on_train_batch_begin(self, batch, logs=None):
        self.show(f"train e{self.epoch} b{batch}")

    def on_test_batch_begin(self, batch, logs=None):
        self.show(f"validation e{self.epoch} b{batch}")

    def on_predict_batch_begin(self, batch, logs=None):
        self.show(f"predict b{batch}")

    on_train_batch_end = on_test_batch_end = on_predict_batch_end = keep_final


show = ShowStates()
# shuffle=False for a stateful layer: slot i of batch k+1 continues slot i of batch k.
model.fit(x, y, batch_size=B, epochs=EPOCHS, shuffle=False, callbacks=[show], verbose=0)
model.predict(rng.uniform(-1, 1, (PRED, T, F)).astype("float32"), batch_size=B, callbacks=[show], verbose=0)
