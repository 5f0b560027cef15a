"""fit(shuffle="batch") on real Keras 3 (torch) and Keras 2 (tf-keras): which samples make each
batch, read from the inputs each training call really gets, against the schedule's rule
(Keras 3 keeps the order of batch-sized chunks and shuffles within each; Keras 2 shuffles the
chunks' order too, the partial chunk included)."""

import json
import os
import subprocess
import sys

import pytest

from lstm_inspect.core.order import training_batches
from lstm_inspect.core.spec import Spec

pytestmark = pytest.mark.keras

N, B, EPOCHS = 10, 4, 6

# Records each training call's samples (every input holds its own index) as fit makes them.
SCRIPT = f"""
import json, sys
import numpy as np
if sys.argv[1] == "2":
    import tf_keras as keras
else:
    import keras
batches = []

class Record(keras.layers.Layer):
    def call(self, inputs, training=None):
        if training:
            batches.append([int(v) for v in np.array(inputs)[:, 0, 0]])
        return inputs

keras.utils.set_random_seed(0)  # the same shuffles on every run: the assertions below never hang on chance
inputs = keras.Input(shape=(1, 1))
outputs = keras.layers.Dense(1)(keras.layers.Flatten()(Record()(inputs)))
model = keras.Model(inputs, outputs)
model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
x = np.arange({N}, dtype="float32").reshape({N}, 1, 1)
model.fit(x, np.zeros(({N}, 1), "float32"), batch_size={B}, epochs={EPOCHS}, shuffle="batch", verbose=0)
print(json.dumps(batches))
"""


def keras_batches(version: str) -> list[list[list[int]]]:
    """Per epoch, the samples of each training batch real Keras made."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, version], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "torch", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    calls = json.loads(done.stdout.strip().splitlines()[-1])
    per_epoch = -(-N // B)
    return [calls[epoch * per_epoch:(epoch + 1) * per_epoch] for epoch in range(EPOCHS)]


def chunk_of(batch: list[int]) -> int:
    return min(batch) // B


@pytest.mark.parametrize("version", ["3", "2"])
def test_shuffle_batch_is_the_schedules_kind_of_shuffle(version):
    observed = keras_batches(version)
    spec = Spec(N, 1, 1, batch_size=B, shuffle="batch", keras=version, backend="tensorflow" if version == "2"
                else "torch")
    for epoch in observed:
        # Each batch is one batch-sized chunk of the data, in some order: as the schedule's.
        assert sorted(sorted(batch) for batch in epoch) == sorted(sorted(chunk.tolist())
                                                                  for chunk in training_batches(spec, 0))
        for batch in epoch:
            assert sorted(batch) == list(range(chunk_of(batch) * B, chunk_of(batch) * B + len(batch)))
    orders = [[chunk_of(batch) for batch in epoch] for epoch in observed]
    within_shuffled = any(batch != sorted(batch) for epoch in observed for batch in epoch)
    assert within_shuffled
    if version == "3":
        assert all(order == [0, 1, 2] for order in orders)  # the chunks keep their order
    else:
        assert any(order != [0, 1, 2] for order in orders)  # the chunks are shuffled too ...
        assert any(order[-1] != 2 for order in orders)  # ... the partial one included
