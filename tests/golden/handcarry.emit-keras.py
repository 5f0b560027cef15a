# Reproduces the state handling of: lstm-inspect --shape 8,5,1 --batch 4 --backend torch --calls 'predict(4, initial_state='"'"'previous'"'"') * 3'
import os

os.environ["KERAS_BACKEND"] = "torch"  # the backend these states are described for
import keras
import numpy as np
import tempfile


def to_numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable))

N, T, F, B, UNITS, LAYERS = 8, 5, 1, 4, 8, 1
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (N, T, F)).astype("float32")
y = np.zeros((N, UNITS), "float32")
x_val, y_val = x[:0], y[:0]  # fit's validation_samples, drawn when a fit asks for them
folder = tempfile.mkdtemp()  # where save_and_load() saves the model


def data(n):
    """Fresh inputs (and zero targets) for a call: the counts printed depend on the state alone."""
    return rng.uniform(-1, 1, (n, T, F)).astype("float32"), np.zeros((n, UNITS), "float32")


def build(batch_size):
    # use_cudnn=False: Keras 3 fails stateful training with cuDNN on torch (keras-team/keras#20875).
    inputs = keras.Input(shape=(T, F))
    # States carried by hand: each layer takes its initial states as inputs and returns its final ones.
    outputs, given, final = inputs, [], []
    for depth in range(LAYERS):
        starts = [keras.Input(shape=(UNITS,)) for _ in range(2)]
        layer = keras.layers.LSTM(UNITS, return_state=True, return_sequences=depth < LAYERS - 1)
        outputs, *ends = layer(outputs, initial_state=starts)
        given, final = given + starts, final + ends
    model = keras.Model([inputs, *given], [outputs, *final])
    model.compile(optimizer="sgd", loss="mse")
    return model


def zeros(n):
    """The states to start from when none were returned yet."""
    return [np.zeros((n, UNITS), "float32") for _ in range(LAYERS * 2)]


def rnn_layers(model):
    """Every RNN layer: each holds its own state per batch slot (Bidirectional holds two)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            yield from (layer.forward_layer, layer.backward_layer)
        elif isinstance(layer, keras.layers.RNN):
            yield layer


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

    def show(self, label, kind, batch):
        """A stateless layer holds no state variables: each slot starts from zeros, or from
        the states passed in by hand (initial_state=)."""
        samples, size = self.sizes[kind]
        slots = min(size, samples - batch * size)
        print(f"{label}: zeros={0 if self.by_hand else slots} carried={slots if self.by_hand else 0}")

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
callbacks = [show]
for _ in range(3):  # predict(4, initial_state='previous') * 3
    # predict(4, initial_state='previous')
    show.start("predict", predict=(4, 32))
    show.by_hand = given is not None
    given = model.predict([data(4)[0], *(given if given is not None else zeros(4))], batch_size=32, callbacks=callbacks, verbose=0)[1:]  # the states it returned, passed back by hand next time
