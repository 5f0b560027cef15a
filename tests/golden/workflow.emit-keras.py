# Reproduces the state handling of: lstm-inspect --shape 8,5,1 --batch 4 --stateful --backend torch --reset epoch,predict --calls 'fit(batch_size=4, epochs=2, shuffle=False, validation_samples=4); twin(batch_size=1); predict(3, batch_size=1); reset_state(); predict_on_batch(1) * 2'
import os

os.environ["KERAS_BACKEND"] = "torch"  # the backend these states are described for
import keras
import numpy as np
import tempfile
from lstm_inspect.layout import stateful_layout


def to_numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable))

N, T, F, B, UNITS, LAYERS = 8, 5, 1, 4, 8, 1
rng = np.random.default_rng(0)
# Row j+B continues row j: B long series cut into windows of T steps, laid out for the slots.
series = rng.uniform(-1, 1, (B, (N // B) * T, F)).astype("float32")
x = stateful_layout(series, timesteps=T, batch_size=B).x
y = np.zeros((N, UNITS), "float32")
x_val, y_val = x[:0], y[:0]  # fit's validation_samples, drawn when a fit asks for them
folder = tempfile.mkdtemp()  # where save_and_load() saves the model


def data(n):
    """Fresh inputs (and zero targets) for a call: the counts printed depend on the state alone."""
    return rng.uniform(-1, 1, (n, T, F)).astype("float32"), np.zeros((n, UNITS), "float32")


def build(batch_size):
    # use_cudnn=False: Keras 3 fails stateful training with cuDNN on torch (keras-team/keras#20875).
    # A stateful layer needs a fixed batch size: the state holds one row per batch slot.
    inputs = keras.Input(batch_shape=(batch_size, T, F))
    outputs = inputs
    for depth in range(LAYERS):
        outputs = keras.layers.LSTM(UNITS, stateful=True, return_sequences=depth < LAYERS - 1, use_cudnn=False)(outputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    return model


def rnn_layers(model):
    """Every RNN layer: each holds its own state per batch slot (Bidirectional holds two)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            yield from (layer.forward_layer, layer.backward_layer)
        elif isinstance(layer, keras.layers.RNN):
            yield layer


class ResetStates(keras.callbacks.Callback):
    """Keras never resets a stateful layer itself: pass this to every fit, evaluate and predict."""

    def on_epoch_begin(self, epoch, logs=None):
        for rnn in rnn_layers(self.model):  # Keras 3's Model has no reset_state()
            rnn.reset_state()

    def on_predict_begin(self, logs=None):
        for rnn in rnn_layers(self.model):  # Keras 3's Model has no reset_state()
            rnn.reset_state()


class ShowStates(keras.callbacks.Callback):
    """Prints how each slot's state starts, batch by batch, with lstm-inspect's call labels."""

    model_name, made, counts, number, epoch, fitting, final = "", {}, {}, 1, 0, False, None
    sizes = {}  # per kind of batch: (samples, batch size) of the call under way
    by_hand = False  # the states passed in by hand come from the previous predict

    def start(self, kind, **sizes):
        """A new call on the model: numbered per model and kind, as lstm-inspect numbers it."""
        self.counts[kind] = self.number = self.counts.get(kind, 0) + 1
        self.sizes = sizes

    def switch(self, kind):
        """Calls go to a new model (a twin, or the loaded one), which starts from zeros."""
        self.made[kind] = self.made.get(kind, 0) + 1
        self.model_name = kind + (f"#{self.made[kind]}" if self.made[kind] > 1 else "")
        self.counts, self.final = {}, None

    def name(self, word):
        numbered = word + (f"#{self.number}" if self.number > 1 else "")
        return f"{self.model_name} {numbered}" if self.model_name else numbered

    def on_train_begin(self, logs=None):
        self.fitting = True

    def on_train_end(self, logs=None):
        self.fitting = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def states(self):
        return [to_numpy(state) for rnn in rnn_layers(self.model) for state in rnn.states]

    def show(self, label, kind=None, batch=0):
        now = self.states()
        zeros = np.all([~state.any(axis=1) for state in now], axis=0)
        carried = (np.zeros(len(zeros), bool) if self.final is None else
                   np.all([(a == b).all(axis=1) for a, b in zip(now, self.final)], axis=0) & ~zeros)
        print(f"{label}: zeros={zeros.sum()} carried={carried.sum()}")

    def keep_final(self, batch=0, logs=None):
        self.final = self.states()

    on_train_batch_end = on_test_batch_end = on_predict_batch_end = keep_final

    def on_train_batch_begin(self, batch, logs=None):
        self.show(f"{self.name('train')} e{self.epoch} b{batch}", "train", batch)

    def on_test_batch_begin(self, batch, logs=None):
        label = f"{self.name('validation')} e{self.epoch}" if self.fitting else self.name("evaluate")
        self.show(f"{label} b{batch}", "test", batch)

    def on_predict_batch_begin(self, batch, logs=None):
        self.show(f"{self.name('predict')} b{batch}", "predict", batch)


show = ShowStates()
model, BATCH = build(B), B
given = None  # the states the last predict returned
callbacks = [ResetStates(), show]
# fit(batch_size=4, epochs=2, shuffle=False, validation_samples=4)
show.start("fit", train=(8, 4), test=(4, 4))
x_val, y_val = data(4)
model.fit(x, y, batch_size=4, epochs=2, shuffle=False, validation_data=(x_val, y_val), callbacks=callbacks, verbose=0)
# twin(batch_size=1)
twin = build(1)  # a new model: its states start from zeros
twin.set_weights(model.get_weights())  # the weights, never the states
model, BATCH = twin, 1
show.switch("twin")
# predict(3, batch_size=1)
show.start("predict", predict=(3, 1))
model.predict(data(3)[0], batch_size=1, callbacks=callbacks, verbose=0)
# reset_state()
for rnn in rnn_layers(model):
    rnn.reset_state()
for _ in range(2):  # predict_on_batch(1) * 2
    # predict_on_batch(1)
    show.start("predict_on_batch", predict=(1, 1))
    show.set_model(model)  # the *_on_batch calls run no callbacks: shown by hand
    show.show(show.name("predict_on_batch") + " b0", "predict", 0)
    model.predict_on_batch(data(1)[0])
    show.keep_final()
