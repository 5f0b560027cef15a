"""One real Keras 3 fit (torch backend), with or without a StateProbe: bench.py part (f) runs it
in fresh processes to compare their peak memory.

    python bench/probe_fit.py SAMPLES probe|none
"""

import os
import sys

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402

from lstm_inspect.keras import StateProbe  # noqa: E402

TIMESTEPS, FEATURES, UNITS, BATCH = 20, 1, 64, 100


def model_and_data(samples: int) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    keras.utils.set_random_seed(0)
    inputs = keras.Input(batch_shape=(BATCH, TIMESTEPS, FEATURES))
    model = keras.Model(inputs, keras.layers.LSTM(UNITS, stateful=True, use_cudnn=False)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).uniform(-1, 1, (samples, TIMESTEPS, FEATURES)).astype("float32")
    return model, x, np.zeros((samples, UNITS), "float32")


def fit(model: keras.Model, x: np.ndarray, y: np.ndarray, probe: StateProbe | None) -> None:
    model.fit(x, y, batch_size=BATCH, shuffle=False, callbacks=[probe] if probe else [], verbose=0)


if __name__ == "__main__":
    samples, mode = int(sys.argv[1]), sys.argv[2]
    model, x, y = model_and_data(samples)
    fit(model, x, y, StateProbe() if mode == "probe" else None)
