# Reproduces the state handling of: lstm-inspect --shape 10,3,1 --batch 4 --epochs 2 --units 4 --shuffle batch --keras 2
import numpy as np
import tf_keras as keras  # Keras 2


def to_numpy(variable):
    return variable.numpy()

N, T, F, B, UNITS, EPOCHS = 10, 3, 1, 4, 4, 2
VAL, PRED, LAYERS = 0, 0, 1
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (N, T, F)).astype("float32")
y = np.zeros((N, UNITS), "float32")
inputs = keras.Input(shape=(T, F))
outputs = inputs
for depth in range(LAYERS):
    outputs = keras.layers.LSTM(UNITS, stateful=False, return_sequences=depth < LAYERS - 1)(outputs)
model = keras.Model(inputs, outputs)
model.compile(optimizer="sgd", loss="mse")


class ShowStates(keras.callbacks.Callback):
    """A stateless layer has no state variables: every call starts every slot from zeros."""

    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def show(self, label, batch, total):
        # Batch sizes as Keras cuts them: the remainder last (Keras 2's shuffle="batch" may move it).
        print(f"{label}: zeros={min(B, total - batch * B)} carried=0")

    def on_train_batch_begin(self, batch, logs=None):
        self.show(f"train e{self.epoch} b{batch}", batch, N)

    def on_test_batch_begin(self, batch, logs=None):
        self.show(f"validation e{self.epoch} b{batch}", batch, VAL)

    def on_predict_batch_begin(self, batch, logs=None):
        self.show(f"predict b{batch}", batch, PRED)


show = ShowStates()
model.fit(x, y, batch_size=B, epochs=EPOCHS, shuffle='batch', callbacks=[show], verbose=0)
