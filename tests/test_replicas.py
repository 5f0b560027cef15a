"""--replicas R: tf.distribute.MirroredStrategy over R replicas on Keras 3's TensorFlow backend.
The tool's split of a global batch, its refusals and its sentences; then real Keras under a
MirroredStrategy over logical CPU devices, held slot by slot to the schedule and the mirror,
and Keras's own split and error where a model is built for the global batch."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from usage import usage_error

from lstm_inspect.cli import main
from lstm_inspect.core.errors import SpecError
from lstm_inspect.core.replicas import replica_rows
from lstm_inspect.core.spec import Spec

TF = ["--backend", "tensorflow", "--stateful", "--no-shuffle"]


@given(st.integers(1, 500), st.integers(1, 64))
def test_a_global_batch_is_split_in_order_the_first_replicas_taking_one_more(size, replicas):
    rows = replica_rows(size, replicas)
    assert len(rows) == replicas
    assert [row for part in rows for row in part] == list(range(size))
    shares = [len(part) for part in rows]
    assert shares == sorted(shares, reverse=True) and shares[0] - shares[-1] <= 1


def _refusal(*words, shape=("--shape", "16,5,1", "--batch", "4")):
    return usage_error(*shape, *words)


@pytest.mark.parametrize(("words", "said"), [
    (["--replicas", "2", "--backend", "torch", "--stateful"], "add --backend tensorflow"),
    (["--replicas", "2", "--keras", "2", "--stateful"], "Keras 3's TensorFlow backend"),
    (["--replicas", "2", "--backend", "tensorflow"], "follows a stateful layer (--stateful)"),
    (["--replicas", "3", *TF], "--batch 4 is the global batch, split over 3 replicas"),
    (["--replicas", "0", *TF], "between 1 and 64"),
    (["--replicas", "65", *TF], "between 1 and 64"),
    (["--replicas", "2", *TF, "--predict-samples", "6"],
     "6 samples in global batches of 4 end in a batch of 2, which gives the 2 replicas 1 sample each"),
    (["--replicas", "2", *TF, "--calls", "fit(batch_size=4); twin(batch_size=2)"], "not yet this call"),
    (["--replicas", "2", *TF, "--calls", "fit(batch_size=4, steps_per_epoch=2)"], "not yet this call"),
    (["--replicas", "2", *TF, "--calls", "train_on_batch(4)"], "not yet this call"),
    (["--replicas", "2", *TF, "--calls", "evaluate(16, batch_size=6)"],
     "a global batch of 6 gives the 2 replicas 3 samples each, where the model is built for 2"),
    (["--replicas", "2", *TF, "--calls", "fit(batch_size=4, validation_samples=3)"],
     "3 samples in global batches of 4 end in a batch of 3, which gives the 2 replicas 2 and 1 samples"),
])
def test_what_is_not_followed_or_not_buildable_is_refused_in_one_line(words, said):
    assert said in _refusal(*words)


def test_a_model_built_for_the_global_batch_gets_kerass_error_with_the_fix():
    said = _refusal("--replicas", "2", *TF, "--calls", "fit(batch_size=2)")
    assert "gives the 2 replicas 1 sample each" in said and "does not follow yet" in said  # a lone sample each
    said = _refusal("--replicas", "2", *TF, "--calls", "fit(batch_size=4)", shape=("--shape", "16,5,1", "--batch", "8"))
    assert "Keras raises ValueError in the first batch" in said
    assert "Expected batch size: 4 - Received batch size: 2" in said
    assert "keras.Input(batch_shape=(2, T, F)) inside strategy.scope(), or give the call batch_size=8" in said


def test_the_verdict_says_which_slots_each_replica_holds_and_whose_state_layer_states_shows():
    result = CliRunner().invoke(main, ["--shape", "12,5,1", "--batch", "6", "--replicas", "3", *TF, "--format",
                                       "json", "--no-slots"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["spec"]["replicas"] == 3
    assert ("(replica 0 slots 0-1; replica 1 slots 2-3; replica 2 slots 4-5), the model built for the per-replica "
            "batch of 2" in report["verdict"])
    assert "layer.states shows replica 0's 2 rows only" in report["verdict"]
    (batch,) = [item["text"] for item in report["advice"] if item["key"] == "batch size"]
    assert batch.startswith("build the model inside strategy.scope() for the per-replica batch, "
                            "keras.Input(batch_shape=(2, 5, 1)), and give fit, evaluate and predict the global "
                            "batch_size=6")


def test_one_replica_is_no_strategy_and_writes_no_replicas_field():
    spec = Spec(8, 5, 1, batch_size=4, stateful=True, backend="tensorflow")
    assert "replicas" not in spec.to_json()
    assert Spec.from_json(Spec(8, 5, 1, batch_size=4, stateful=True, backend="tensorflow", replicas=2).to_json()
                          ).replicas == 2
    with pytest.raises(SpecError):
        Spec(8, 5, 1, batch_size=4, stateful=True, backend="tensorflow", replicas=True)


def test_the_command_line_of_a_replicated_spec_gives_it_back():
    from lstm_inspect.cli.setup import command_line

    spec = Spec(8, 5, 1, batch_size=4, stateful=True, backend="tensorflow", replicas=2)
    assert "--replicas 2" in command_line(spec)


# Real Keras under MirroredStrategy, in a process of its own (logical devices are made before
# TensorFlow starts): how it splits global batches, what layer.states shows, and its error for a
# model built for the global batch.
MIRRORED_PROBE = """
import json, os
os.environ["KERAS_BACKEND"] = "tensorflow"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
found = {}

class ReplicaId(keras.layers.Layer):
    def compute_output_shape(self, shape):
        return (shape[0], 1)

    def call(self, x):
        context = tf.distribute.get_replica_context()
        return tf.zeros_like(x[:, :1, 0]) + tf.cast(context.replica_id_in_sync_group, x.dtype)

for size in (4, 7, 3, 1):
    with strategy.scope():
        inputs = keras.Input((5, 1))
        model = keras.Model(inputs, ReplicaId()(inputs))
    ids = model.predict(np.zeros((size, 5, 1), "float32"), batch_size=size, verbose=0)
    found[f"split {size}"] = ids[:, 0].astype(int).tolist()

def build(batch):
    with strategy.scope():
        inputs = keras.Input(batch_shape=(batch, 5, 1))
        layer = keras.layers.LSTM(3, stateful=True, use_cudnn=False)
        model = keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))
        model.compile("sgd", "mse")
    return model, layer

x, y = np.random.default_rng(0).uniform(-1, 1, (8, 5, 1)).astype("float32"), np.zeros((8, 1), "float32")
model, layer = build(2)
model.predict(x, batch_size=4, verbose=0)
found["layer.states rows"] = int(np.asarray(layer.states[0]).shape[0])
found["per replica rows"] = [int(np.asarray(part).shape[0]) for part in layer.states[0].value.values]
model, layer = build(4)
try:
    model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
    found["built for the global batch"] = "ran"
except ValueError as error:
    found["built for the global batch"] = " ".join(str(error).split())
print(json.dumps(found))
"""


@pytest.mark.keras
def test_kerass_mirrored_strategy_splits_shows_and_refuses_as_the_tool_says():
    done = subprocess.run([sys.executable, "-c", MIRRORED_PROBE], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for size in (4, 7, 3, 1):
        assert found[f"split {size}"] == [replica for replica, rows in enumerate(replica_rows(size, 2))
                                          for _ in rows], size
    assert found["layer.states rows"] == 2 and found["per replica rows"] == [2, 2]
    said = _refusal("--replicas", "2", *TF, "--calls", "fit(batch_size=4)", shape=("--shape", "8,5,1", "--batch", "8"))
    quoted = said.split('("', 1)[1].split('")', 1)[0]  # Keras's words, as the tool quotes them
    assert quoted in found["built for the global batch"]


@pytest.mark.keras
@pytest.mark.parametrize("words", [
    ["--shape", "16,5,1", "--batch", "4", "--epochs", "2", "--val-samples", "8", "--predict-samples", "8",
     "--reset", "epoch"],
    ["--shape", "12,3,2", "--batch", "6", "--replicas", "3", "--cell", "gru", "--layers", "2", "--calls",
     "fit(epochs=2, batch_size=6, shuffle=False); evaluate(6, batch_size=6); reset_state(); "
     "predict(12, batch_size=6) * 2"],
    ["--shape", "16,5,2", "--batch", "4", "--epochs", "2", "--lengths", "2-5", "--pad", "pre", "--val-samples", "8",
     "--predict-samples", "8"],
    ["--shape", "12,4,2", "--batch", "6", "--replicas", "3", "--cell", "gru", "--lengths", "1,4,2", "--no-mask",
     "--predict-samples", "6"],
], ids=["lstm over 2 replicas, validation, predict, epoch resets", "2-layer gru over 3 replicas, a workflow",
        "padded, masked, over 2 replicas", "padded, unmasked gru over 3 replicas"])
def test_real_keras_under_mirrored_strategy_agrees_slot_by_slot(words):
    replicas = [] if "--replicas" in words else ["--replicas", "2"]
    result = CliRunner().invoke(main, [*words, *replicas, *TF, "--against", "keras", "--format", "json"])
    assert result.exit_code == 0, result.output
    keras = json.loads(result.stdout)["keras"]
    assert keras["agree"] and keras["error"] is None
    assert keras["steps"] and all(step["agree"] for step in keras["steps"])
    assert any(start.startswith(("train:", "predict:", "evaluate:")) for step in keras["steps"]
               for start in step["start"])  # states carried, read from every replica


ORACLE_BUILD_PROBE = """
import json, os
os.environ["KERAS_BACKEND"] = "tensorflow"
from lstm_inspect.core.spec import Spec
from lstm_inspect.keras.oracle.model import build_keras_model, import_keras, split_cpu
spec = Spec(12, 5, 1, batch_size=6, stateful=True, backend="tensorflow", shuffle=False, replicas=3)
split_cpu(spec.replicas)
model, rnns = build_keras_model(import_keras(spec), spec)
print(json.dumps({"replicas": model.distribute_strategy.num_replicas_in_sync, "batch": model.input_shape[0]}))
"""


@pytest.mark.keras
def test_the_oracle_builds_in_the_strategys_scope_for_the_per_replica_batch():
    """Without it the agreement above would hold for one device as well: the states prove nothing."""
    done = subprocess.run([sys.executable, "-c", ORACLE_BUILD_PROBE], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"replicas": 3, "batch": 2}
