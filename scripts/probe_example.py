"""Record the StateProbe run the README shows (`make readme`): a user's own stateful LSTM,
trained with a callback that resets it at batch 3 of each epoch (lstm-inspect is not told),
then a predict, saved to examples/probe-run.json for `lstm-inspect --replay`."""

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lstm_inspect.keras import StateProbe, recurrent_layers  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "examples" / "probe-run.json"


class ResetAtBatch3(keras.callbacks.Callback):
    """The user's own reset, somewhere in their code."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 3:
            for layer in recurrent_layers(self.model):
                layer.reset_state()


def main() -> int:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(batch_shape=(4, 5, 1))
    hidden = keras.layers.LSTM(8, stateful=True, return_sequences=True, use_cudnn=False)(inputs)
    model = keras.Model(inputs, keras.layers.LSTM(8, stateful=True, use_cudnn=False)(hidden))
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).uniform(-1, 1, (24, 5, 1)).astype("float32")
    probe = StateProbe()
    model.fit(x, np.zeros((24, 8), "float32"), batch_size=4, epochs=2, shuffle=False,
              callbacks=[ResetAtBatch3(), probe], verbose=0)
    model.predict(x[:8], batch_size=4, callbacks=[probe], verbose=0)
    probe.save(str(OUT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
