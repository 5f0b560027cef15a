"""Conformance on every Keras the tool describes: Keras 3 on torch, TensorFlow and JAX, and
Keras 2 (tf-keras). Each runs in a process of its own (Keras reads its backend once), through
real fit (with validation) and predict; every slot's start is read from Keras's own state
tensors during the real calls (the layers' state variables, or the states the recurrent loop
takes where no variable holds them: stateless layers, and JAX) and must equal the schedule's,
and the mirror's tensors must equal Keras's; where Keras raises, it raises where and what the
schedule says; where TensorFlow broadcasts a lone sample, predict returns a row per slot."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_data_mask import masked_rows

from lstm_inspect.check.against import TOLERANCE
from lstm_inspect.core.choices import Phase
from lstm_inspect.core.facts import facts_for
from lstm_inspect.core.schedule import keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.data.masks import read_mask
from lstm_inspect.keras.oracle.process import run_keras_isolated
from lstm_inspect.mirror.run import mirror_records

pytestmark = pytest.mark.keras

KERASES = {"keras 3, torch": ("3", "torch"), "keras 3, tensorflow": ("3", "tensorflow"),
           "keras 3, jax": ("3", "jax"), "keras 2": ("2", "tensorflow")}

SETUPS = {
    "stateless, partial batches, validation and predict":
        dict(samples=10, timesteps=5, features=2, batch_size=4, shuffle=False, epochs=2, val_samples=6,
             predict_samples=5),
    "stateful carry across epochs, validation and predict":
        dict(samples=12, timesteps=5, features=2, batch_size=4, stateful=True, shuffle=False, epochs=2,
             val_samples=8, predict_samples=4),
    "stateful bidirectional GRU": dict(samples=12, timesteps=5, features=2, batch_size=4, stateful=True,
                                       shuffle=False, epochs=2, cell="gru", bidirectional=True),
    "stateful, reset every epoch": dict(samples=12, timesteps=5, features=2, batch_size=4, stateful=True,
                                        shuffle=False, epochs=3, reset="epoch"),
    "stateful, partial batch of 2": dict(samples=10, timesteps=5, features=1, batch_size=4, stateful=True,
                                         shuffle=False),
    "stateful, partial batch of 1": dict(samples=9, timesteps=5, features=1, batch_size=4, stateful=True,
                                         shuffle=False, epochs=2, predict_samples=5),
    "stateful, N < B": dict(samples=3, timesteps=5, features=1, batch_size=4, stateful=True),
    "stateless, shuffled": dict(samples=10, timesteps=5, features=2, batch_size=4, shuffle=True, epochs=2),
    "stateful, reset every:2, predict": dict(samples=16, timesteps=5, features=2, batch_size=4, stateful=True,
                                             shuffle=False, epochs=2, reset="every:2", predict_samples=4),
    "stateful, shuffled, validation": dict(samples=12, timesteps=5, features=2, batch_size=4, stateful=True,
                                           shuffle=True, epochs=2, val_samples=4),
    "stateful, partial batch in validation": dict(samples=8, timesteps=5, features=1, batch_size=4,
                                                  stateful=True, shuffle=False, epochs=2, val_samples=6),
    "stateful, partial batch in predict": dict(samples=8, timesteps=5, features=1, batch_size=4, stateful=True,
                                               shuffle=False, predict_samples=5),
    # Keras 3 on TensorFlow checks predict's first batch itself: a short one raises its ValueError.
    "stateful, predict of one sample": dict(samples=4, timesteps=3, features=1, batch_size=4, stateful=True,
                                            shuffle=False, predict_samples=1),
    "stateful, predict of two samples": dict(samples=4, timesteps=3, features=1, batch_size=4, stateful=True,
                                             shuffle=False, predict_samples=2),
    # Keras 2 may put the partial chunk first; it is then a lone sample on TensorFlow.
    "stateful, shuffle batch": dict(samples=9, timesteps=3, features=1, batch_size=4, stateful=True,
                                    shuffle="batch", epochs=3),
    # Workflows. TensorFlow compiles a function per kind of call and model: a batch dimension its
    # first trace fixes meets Keras's own check; later traces broadcast or fail in the graph.
    "workflow: a second predict of lone samples": dict(samples=8, timesteps=3, features=1, batch_size=4,
                                                       stateful=True, workflow="predict(4); predict(2, batch_size=1)"),
    "workflow: train_on_batch of one after fit": dict(samples=8, timesteps=3, features=1, batch_size=4,
                                                      stateful=True, shuffle=False,
                                                      workflow="fit(batch_size=4); train_on_batch(1)"),
    "workflow: test_on_batch of one after evaluate": dict(samples=8, timesteps=3, features=1, batch_size=4,
                                                          stateful=True,
                                                          workflow="evaluate(8, batch_size=4); test_on_batch(1)"),
    "workflow: serving, hooks, a twin, save and load": dict(
        samples=8, timesteps=3, features=1, batch_size=4, stateful=True, reset="predict",
        workflow="predict(4) * 2; evaluate(4); test_on_batch(4); twin(batch_size=2); predict(4, batch_size=2); "
                 "save_and_load(); "
                 "predict_on_batch(2); predict(4, batch_size=1)"),
    "workflow: states carried by hand": dict(samples=8, timesteps=3, features=1, batch_size=4,
                                             workflow='predict(4, initial_state="previous") * 3; '
                                                      'predict(4, batch_size=2, initial_state="previous")'),
    # Validation traced the test function in batches of 1; evaluate's batch of 2 (Keras's default
    # batch_size) runs in it with the dimension open: on Keras 3's TensorFlow a one-row state fails
    # tf.while_loop's shape invariant (ValueError), on tf-keras TensorFlow's shape check.
    "workflow: a one-row state meets a batch of two": dict(samples=4, timesteps=3, features=1, batch_size=1,
                                                           stateful=True, shuffle=False, bidirectional=True,
                                                           workflow="fit(validation_samples=2, batch_size=1); "
                                                                    "evaluate(2)"),
    # evaluate's one sample, in batches of 32 (Keras's default): its trace leaves the batch size
    # open, where Keras 3's TensorFlow cannot run a one-row state; elsewhere it runs.
    "workflow: a one-row state in a trace left open": dict(samples=2, timesteps=3, features=1, batch_size=1,
                                                          stateful=True, shuffle=False,
                                                          workflow="train_on_batch(1); evaluate(1); predict(1)"),
    # Per-slot resets (state.assign(state * keep) on each state variable) between predicts, fit's
    # batches and a twin's calls: only those slots start from zeros.
    "workflow: per-slot resets": dict(
        samples=8, timesteps=3, features=1, batch_size=4, stateful=True, cell="gru", bidirectional=True,
        workflow="predict(4); reset_state(slots=[1, 3]); predict(4); fit(batch_size=4, shuffle=False); "
                 "reset_state(slots=[0]); reset_state(slots=[2]); train_on_batch(4); twin(batch_size=2); "
                 "predict(2, batch_size=2); reset_state(slots=[1]); predict(2, batch_size=2)"),
    # Train stateless, predict step by step on a stateful twin for batch 1 (the weights copied);
    # then a stateless twin of it. JAX's stateful twin carries nothing inside predict.
    "workflow: a stateful twin of a stateless model": dict(
        samples=8, timesteps=3, features=1, batch_size=4,
        workflow="fit(batch_size=4); twin(batch_size=1, stateful=True); predict(1) * 3; reset_state(); predict(1); "
                 "twin(batch_size=2, stateful=False); predict(4, batch_size=2)"),
    # steps_per_epoch: over arrays Keras 3 ends an epoch at the end of a pass and tf-keras runs
    # the passes on; an endless generator and a repeated dataset run K batches an epoch, the
    # stream going on; evaluate's steps take the first K batches of its call.
    "workflow: steps_per_epoch over arrays, a generator and a dataset": dict(
        samples=16, timesteps=3, features=1, batch_size=4, stateful=True,
        workflow='fit(epochs=3, shuffle=False, batch_size=4, steps_per_epoch=3); '
                 'fit(epochs=2, batch_size=4, data="generator", steps_per_epoch=3); '
                 'fit(epochs=2, batch_size=4, data="dataset", repeat=True, steps_per_epoch=5); '
                 'evaluate(16, batch_size=4, steps=2)'),
    "workflow: a dataset that drops its partial batch": dict(
        samples=10, timesteps=3, features=1, batch_size=4, stateful=True,
        workflow='fit(epochs=2, batch_size=4, data="dataset", drop_remainder=True); '
                 'predict(10, batch_size=4, steps=2)'),
    # A PyDataset: fit shuffles its items' order (True unless given), a stream run once that Keras 3
    # goes on with across epochs and tf-keras restarts every epoch; its partial last item raises,
    # or on TensorFlow a lone sample broadcasts.
    "workflow: a PyDataset, shuffled and not, steps_per_epoch": dict(
        samples=16, timesteps=3, features=1, batch_size=4, stateful=True,
        workflow='fit(epochs=2, batch_size=4, data="pydataset"); '
                 'fit(epochs=3, batch_size=4, data="pydataset", shuffle=False, steps_per_epoch=3); '
                 'evaluate(8, batch_size=4)'),
    "workflow: a PyDataset that drops its partial item, then one that keeps it": dict(
        samples=9, timesteps=3, features=1, batch_size=4, stateful=True,
        workflow='fit(batch_size=4, data="pydataset", drop_remainder=True); '
                 'fit(epochs=2, batch_size=4, data="pydataset", shuffle=False); predict(4, batch_size=4)'),
    # evaluate and predict given a stream: its batches in order, round and round where endless, no
    # more than it holds where it ends; a lone last sample raises, or on TensorFlow broadcasts.
    "workflow: evaluate and predict given streams, a partial batch of one last": dict(
        samples=8, timesteps=3, features=1, batch_size=4, stateful=True,
        workflow='fit(batch_size=4, shuffle=False); evaluate(10, batch_size=4, data="generator", '
                 'drop_remainder=True, steps=5); predict(8, batch_size=4, data="dataset", repeat=True, steps=3); '
                 'predict(12, batch_size=4, data="pydataset", steps=4); predict(9, batch_size=4, data="dataset")'),
    # Keras 3 on TensorFlow: predict's first trace takes its first batch's size even where a
    # partial batch follows (ValueError), where evaluate's leaves it open (InvalidArgumentError).
    "workflow: predict in batches of another size, a partial one last": dict(
        samples=8, timesteps=3, features=1, batch_size=4, stateful=True, workflow="predict(8, batch_size=3)"),
    "workflow: evaluate in batches of another size, a partial one last": dict(
        samples=8, timesteps=3, features=1, batch_size=4, stateful=True, workflow="evaluate(8, batch_size=3)"),
    "workflow: validation_split and validation_freq": dict(
        samples=8, timesteps=3, features=1, batch_size=2, stateful=True,
        workflow="fit(epochs=3, validation_split=0.5, validation_freq=2, shuffle=False, batch_size=2)"),
    # A stateful layer given its initial states (a model taking them as inputs): Keras 3 starts every
    # call from them, the carry overridden; tf-keras only while the layer's own are all zeros.
    "workflow: a stateful layer given zeros as its initial states, twice": dict(
        samples=8, timesteps=3, features=2, units=3, batch_size=4, stateful=True, shuffle=False,
        workflow='predict(8, batch_size=4, initial_state="zeros") * 2'),
    "workflow: a stateful layer handed back its states, a reset between": dict(
        samples=8, timesteps=3, features=2, units=3, batch_size=4, stateful=True, shuffle=False,
        workflow='predict(8, batch_size=4); predict(8, batch_size=4, initial_state="previous"); reset_state(); '
                 'predict(8, batch_size=4, initial_state="previous"); predict(8, batch_size=4)'),
    "workflow: a stateful 2-layer GRU given zeros on predict_on_batch": dict(
        samples=8, timesteps=3, features=2, units=3, batch_size=2, stateful=True, cell="gru", layers=2,
        workflow='predict_on_batch(2, initial_state="zeros") * 2; predict(4, batch_size=2)'),
    # ConvLSTM2D: each slot's state an image, carried and reset as an LSTM's; 'valid' shrinks
    # it, an even kernel with 'same' pads one more pixel after than before.
    "convlstm2d: stateful carry across epochs, validation and predict": dict(
        samples=8, timesteps=3, features=2, frame=(5, 6), kernel=3, cell="convlstm2d", units=3, batch_size=4,
        stateful=True, shuffle=False, epochs=2, val_samples=4, predict_samples=4),
    "convlstm2d: two layers, 'same', kernel 2, reset every epoch, partial batch of 1": dict(
        samples=9, timesteps=2, features=1, frame=(4, 3), kernel=2, padding="same", layers=2, cell="convlstm2d",
        units=2, batch_size=4, stateful=True, shuffle=False, epochs=2, reset="epoch", predict_samples=5),
    "convlstm2d: stateless, shuffled, a 1 x 1 state": dict(
        samples=10, timesteps=2, features=2, frame=(3, 3), kernel=3, cell="convlstm2d", units=2, batch_size=4,
        epochs=2, predict_samples=3),
    "convlstm2d: channels_first, stateful, validation and predict, a partial predict batch": dict(
        samples=8, timesteps=2, features=2, frame=(4, 5), kernel=3, cell="convlstm2d", units=2, batch_size=4,
        data_format="channels_first", stateful=True, shuffle=False, val_samples=4, predict_samples=5),
    # Padded sequences: Masking(0.0) holds each slot's state through its padding, so the state
    # carried is the one at its last valid step; unmasked, the padding runs as input.
    "padding: post, masked, stateful carry across epochs, validation and predict, a partial batch of 1": dict(
        samples=8, timesteps=5, features=2, lengths="2-5", units=3, batch_size=4, stateful=True, shuffle=False,
        epochs=2, val_samples=4, predict_samples=5),
    "padding: pre, masked, bidirectional GRU, two layers, stateless, shuffled": dict(
        samples=10, timesteps=4, features=2, lengths="1,3,4", pad="pre", cell="gru", layers=2, bidirectional=True,
        units=3, batch_size=4, epochs=2, predict_samples=3),
    "padding: pre, masked, stateful LSTM, two layers, reset every epoch": dict(
        samples=8, timesteps=4, features=1, lengths="1-4", pad="pre", layers=2, units=2, batch_size=4,
        stateful=True, shuffle=False, epochs=2, reset="epoch", predict_samples=4),
    "padding: post, unmasked, stateful SimpleRNN": dict(
        samples=8, timesteps=5, features=2, lengths="2,4", mask=False, cell="rnn", units=3, batch_size=4,
        stateful=True, shuffle=False, epochs=2, predict_samples=4),
    # go_backwards: each call runs last step first, so a stateful slot carries the state after x[:, 0].
    "go_backwards: stateful LSTM across epochs, validation and predict, a partial batch of 1": dict(
        samples=8, timesteps=4, features=2, go_backwards=True, units=3, batch_size=4, stateful=True,
        shuffle=False, epochs=2, val_samples=4, predict_samples=5),
    "go_backwards: post padding, masked, stateful GRU of two layers": dict(
        samples=8, timesteps=5, features=2, go_backwards=True, lengths="1-5", cell="gru", layers=2, units=3,
        batch_size=4, stateful=True, shuffle=False, epochs=2, predict_samples=4),
    "go_backwards: pre padding, masked, stateful SimpleRNN, reset every epoch": dict(
        samples=8, timesteps=4, features=1, go_backwards=True, lengths="2,4,1", pad="pre", cell="rnn", units=2,
        batch_size=4, stateful=True, shuffle=False, epochs=2, reset="epoch"),
    # Stacked, each layer flips its input: the second runs over the first's outputs in time order.
    "go_backwards: two stacked LSTMs, unmasked post padding, stateless, shuffled": dict(
        samples=10, timesteps=4, features=2, go_backwards=True, lengths="2-4", mask=False, layers=2, units=3,
        batch_size=4, epochs=2, predict_samples=3),
    "go_backwards: three stacked LSTMs, stateful": dict(
        samples=8, timesteps=4, features=2, go_backwards=True, layers=3, units=2, batch_size=4, stateful=True,
        shuffle=False, epochs=2),
    "go_backwards: convlstm2d, stateful": dict(
        samples=8, timesteps=3, features=1, frame=(4, 4), kernel=2, cell="convlstm2d", units=2, batch_size=4,
        go_backwards=True, stateful=True, shuffle=False, epochs=2, predict_samples=4),
    "go_backwards: two stacked convlstm2d, 'same'": dict(
        samples=8, timesteps=3, features=1, frame=(3, 4), kernel=2, padding="same", layers=2, cell="convlstm2d",
        units=2, batch_size=4, go_backwards=True, stateful=True, shuffle=False, predict_samples=4),
}


# --mask-value: each sample's mask read from a file of rows masked after, before and between their
# valid steps, at both ends and throughout (test_data_mask.masked_rows), under Masking(mask_value=V).
DATA_MASK_SETUPS = {
    "data mask: 0.0, stateful carry across epochs, validation and predict": (0.0, dict(
        samples=12, timesteps=6, features=2, units=3, batch_size=4, stateful=True, shuffle=False, epochs=2,
        val_samples=4, predict_samples=8)),
    "data mask: -1.0, bidirectional GRU of two layers, shuffled": (-1.0, dict(
        samples=12, timesteps=6, features=2, units=3, batch_size=4, cell="gru", layers=2, bidirectional=True,
        epochs=2, predict_samples=3)),
    "data mask: 0.5, unmasked, stateful SimpleRNN": (0.5, dict(
        samples=12, timesteps=6, features=2, units=2, batch_size=4, cell="rnn", mask=False, stateful=True,
        shuffle=False, epochs=2)),
    "data mask: -1.0, go_backwards, two stateful LSTMs": (-1.0, dict(
        samples=12, timesteps=6, features=2, units=2, batch_size=4, layers=2, go_backwards=True, stateful=True,
        shuffle=False, epochs=2, predict_samples=4)),
}


# Padded ConvLSTM2D frames under Masking: followed with padding="same" off JAX (core/lengths.py:
# elsewhere Keras raises, and the tool refuses), and fed unmasked everywhere.
CONVLSTM_PADDING_SETUPS = {
    "convlstm2d padding: post, masked, 'same', stateful across epochs, validation and predict": dict(
        samples=8, timesteps=4, features=1, frame=(4, 4), kernel=2, padding="same", cell="convlstm2d", units=2,
        batch_size=4, stateful=True, shuffle=False, epochs=2, val_samples=4, predict_samples=4, lengths="1-4"),
    "convlstm2d padding: pre, masked, 'same', two layers, go_backwards": dict(
        samples=8, timesteps=3, features=2, frame=(3, 4), kernel=3, padding="same", layers=2, cell="convlstm2d",
        units=2, batch_size=4, stateful=True, shuffle=False, go_backwards=True, lengths="1,3,2", pad="pre"),
    "convlstm2d padding: post, unmasked, 'valid', stateless, shuffled": dict(
        samples=10, timesteps=3, features=1, frame=(4, 5), kernel=3, cell="convlstm2d", units=2, batch_size=4,
        epochs=2, lengths="1-3", mask=False, predict_samples=3),
}


def _followed_here(fields, backend):
    return fields.get("mask", True) is False or backend != "jax"


@pytest.fixture(scope="module", params=list(KERASES), ids=list(KERASES))
def runs(request, tmp_path_factory):
    keras, backend = KERASES[request.param]
    specs = {name: Spec(**fields, keras=keras, backend=backend) for name, fields in SETUPS.items()}
    specs |= {name: Spec(**fields, keras=keras, backend=backend) for name, fields in CONVLSTM_PADDING_SETUPS.items()
              if _followed_here(fields, backend)}
    folder = tmp_path_factory.mktemp("data_masks")
    for index, (name, (value, fields)) in enumerate(DATA_MASK_SETUPS.items()):
        path = folder / f"x{index}.npy"
        np.save(path, masked_rows(value, fields["samples"], fields["timesteps"], fields["features"], seed=index))
        specs[name] = Spec(**fields, data_mask=read_mask(str(path), value), keras=keras, backend=backend)
    return dict(zip(specs, zip(specs.values(), run_keras_isolated(list(specs.values())))))


@pytest.fixture(params=[*SETUPS, *DATA_MASK_SETUPS, *CONVLSTM_PADDING_SETUPS],
                ids=[*SETUPS, *DATA_MASK_SETUPS, *CONVLSTM_PADDING_SETUPS])
def setup(runs, request):
    if request.param not in runs:
        pytest.skip("Keras raises here: the tool refuses the setup (test_convlstm)")
    return runs[request.param]


def test_it_ran_the_keras_asked_for(setup):
    spec, observed = setup
    assert observed.backend == spec.backend
    assert observed.version == facts_for(spec).keras_version


def test_every_slot_starts_where_the_schedule_says(setup):
    spec, observed = setup
    steps = [step for step in keras_steps(spec) if not step.raises]
    assert [(c.phase, c.epoch, c.batch, c.samples.tolist()) for c in observed.completed] == \
           [(s.call.phase, s.call.epoch, s.call.batch, s.call.samples.tolist()) for s in steps]
    assert observed.start_labels() == [step.start_labels() for step in steps]


def test_keras_raises_where_and_what_the_schedule_says(setup):
    spec, observed = setup
    raising = [step.error for step in keras_steps(spec) if step.error is not None]
    if not raising:
        assert observed.error_type is None, observed.error_message
        return
    error = raising[0]
    assert (observed.error_step, observed.error_type) == (error.step, error.type)
    assert error.matches(observed.error_message), observed.error_message
    if error.step == 0:  # before the call's first batch begins, or inside it, as the tool says
        assert observed.error_in_batch == error.when.startswith("inside the first batch"), error.when


def test_predict_returns_a_row_per_slot(setup):
    spec, observed = setup
    steps = list(keras_steps(spec))
    if not spec.predict_samples or any(step.raises for step in steps):
        return
    expected = sum(len(step.call.slot_samples) for step in steps if step.call.phase == Phase.PREDICT)
    assert observed.predict_rows == expected
    assert expected > spec.predict_samples or spec.predict_samples % spec.batch_size != 1 or not spec.stateful \
        or not facts_for(spec).broadcasts_one


def test_the_mirror_holds_kerass_numbers(setup):
    spec, observed = setup
    records = mirror_records(spec)
    assert len(records) == len(observed.completed)
    for record, call in zip(records, observed.completed):
        for mirror, keras in [*zip(record.initial, call.initial), *zip(record.final, call.final)]:
            assert np.abs(mirror.numpy().astype(np.float64) - keras).max() < TOLERANCE, record.call.label


def run_probe(code, backend, *args):
    """What a probe of real Keras printed last, as JSON: run in a process of its own (Keras reads
    its backend once)."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# Keras's own default use_cudnn="auto", a stateful layer trained one batch: each backend in a
# process of its own. FACTS says where it breaks (the oracle's models set use_cudnn=False).
USE_CUDNN_PROBE = """
import json, sys
import numpy as np
import keras
found = {}
for cell in ("LSTM", "GRU"):
    for use_cudnn in ("auto", False):
        model = keras.Sequential([keras.Input(batch_shape=(4, 5, 2)),
                                  getattr(keras.layers, cell)(3, stateful=True, use_cudnn=use_cudnn),
                                  keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        x, y = np.ones((4, 5, 2), "float32"), np.ones((4, 1), "float32")
        try:
            model.train_on_batch(x, y)
            trained = "trains"
        except RuntimeError as error:
            trained = "inplace" if "modified by an inplace operation" in str(error) else repr(error)
        model.predict(x, batch_size=4, verbose=0)
        found[f"{cell} {use_cudnn}"] = trained
print(json.dumps(found))
"""


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_use_cudnn_auto_breaks_stateful_training_where_facts_say(backend):
    found = run_probe(USE_CUDNN_PROBE, backend)
    breaks = facts_for(Spec(4, 5, 2, batch_size=4, stateful=True, backend=backend)).cudnn_breaks_stateful_training
    assert found == {"LSTM auto": "inplace" if breaks else "trains", "LSTM False": "trains",
                     "GRU auto": "inplace" if breaks else "trains", "GRU False": "trains"}
    assert breaks == (backend == "torch")


# What Keras's own fit does with a PyDataset's items (the oracle feeds shuffled epochs in the
# tool's order, so that both see the same batches: this holds the order's rules to Keras). The
# loss, run eagerly, reads which item each batch is from its targets.
PYDATASET_PROBE = """
import json, sys
import numpy as np
if sys.argv[1] == "2":
    import tf_keras as keras
    mean = keras.backend.mean
else:
    import keras
    mean = keras.ops.mean
keras.utils.set_random_seed(0)
ran = []

class Items(keras.utils.Sequence):
    def __init__(self, count, endless=False):
        super().__init__()
        self.count, self.endless = count, endless
    def __len__(self):
        return self.count
    @property
    def num_batches(self):
        return None if self.endless else self.count
    def __getitem__(self, index):
        item = index % self.count
        return np.full((2, 3, 1), item, "float32"), np.full((2, 1), item, "float32")

class Epochs(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        ran.append([])

def loss(y_true, y_pred):
    if ran:  # not the batch Keras 3 reads to build its step, before epoch 0 begins
        ran[-1].append(int(float(y_true[0, 0])))
    return mean((y_true - y_pred) ** 2)

found = {}
for name, data, settings in (("default", Items(6), {"epochs": 3}), ("True", Items(6), {"epochs": 3, "shuffle": True}),
                             ("batch", Items(6), {"epochs": 3, "shuffle": "batch"}),
                             ("False", Items(6), {"epochs": 2, "shuffle": False}),
                             ("steps", Items(3), {"epochs": 3, "shuffle": False, "steps_per_epoch": 2}),
                             ("endless", Items(3, endless=True), {"epochs": 2, "shuffle": True, "steps_per_epoch": 4})):
    if name == "endless" and sys.argv[1] == "2":
        continue
    ran.clear()
    model = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile("sgd", loss, run_eagerly=True)
    model.fit(data, verbose=0, callbacks=[Epochs()], **settings)
    found[name] = ran[:]
print(json.dumps(found))
"""


@pytest.mark.parametrize("keras, backend", [("3", "torch"), ("3", "tensorflow"), ("3", "jax"), ("2", "tensorflow")])
def test_kerass_fit_orders_a_pydatasets_items_as_the_tool_does(keras, backend):
    found = run_probe(PYDATASET_PROBE, backend, keras)

    def tool(workflow, samples):
        spec = Spec(samples, 3, 1, batch_size=2, keras=keras, backend=backend, workflow=workflow)
        epochs = {}
        for step in keras_steps(spec):
            epochs.setdefault(step.call.epoch, []).append(int(step.call.samples[0]) // 2)
        return list(epochs.values())

    for shuffled in ("default", "True", "batch"):  # a new order of all the items each epoch
        assert all(sorted(epoch) == list(range(6)) for epoch in found[shuffled]), found
        assert any(epoch != list(range(6)) for epoch in found[shuffled]), found
        written = 'fit(epochs=3, batch_size=2, data="pydataset"' + ("" if shuffled == "default" else
                                                                   f", shuffle={shuffled!r}".replace("'True'", "True"))
        assert all(sorted(epoch) == list(range(6)) for epoch in tool(written + ")", 12))
    assert found["False"] == tool('fit(epochs=2, batch_size=2, data="pydataset", shuffle=False)', 12) == \
        [[0, 1, 2, 3, 4, 5]] * 2
    assert found["steps"] == tool('fit(epochs=3, batch_size=2, data="pydataset", shuffle=False, steps_per_epoch=2)', 6)
    assert found["steps"] == ([[0, 1]] * 3 if keras == "2" else [[0, 1], [2], [0, 1]])
    if keras == "3":
        assert found["endless"] == tool('fit(epochs=2, batch_size=2, data="pydataset", repeat=True, '
                                        "steps_per_epoch=4)", 6) == [[0, 1, 2, 0], [1, 2, 0, 1]]


# A stateful layer on an input of no fixed batch size: Keras's build error, per Keras and backend.
UNFIXED_BATCH_PROBE = """
import json, sys
import numpy as np
keras2 = sys.argv[1] == "2"
if keras2:
    import tf_keras as keras
    first = keras.layers.InputLayer(input_shape=(5, 2))
else:
    import keras
    first = keras.Input(shape=(5, 2))
found = {}
for cell in ("LSTM", "GRU", "SimpleRNN"):
    try:
        keras.Sequential([first, getattr(keras.layers, cell)(3, stateful=True), keras.layers.Dense(1)])
        found[cell] = "built"
    except ValueError as error:
        found[cell] = str(error)
print(json.dumps(found))
"""


@pytest.mark.parametrize("keras, backend", [("3", "torch"), ("3", "tensorflow"), ("3", "jax"), ("2", "tensorflow")])
def test_a_stateful_layer_without_a_fixed_batch_size_is_refused_as_keras_refuses_it(keras, backend):
    from lstm_inspect.core.errors import SpecError

    found = run_probe(UNFIXED_BATCH_PROBE, backend, keras)
    with pytest.raises(SpecError) as refused:
        Spec(8, 5, 2, batch_size=4, stateful=True, keras=keras, backend=backend, fixed_batch=False)
    said = str(refused.value).split('("', 1)[1].split('")', 1)[0]  # Keras's words, as the tool quotes them
    for cell, message in found.items():
        assert message.startswith(said), (cell, message)


# The mirror's sequence outputs over padding, against Keras's own Masking (return_sequences=True):
# a unidirectional layer repeats the last valid output at a masked step, a Bidirectional one gives
# zeros in both directions; the weights copied as the oracle copies them.
MASKED_OUTPUTS_PROBE = """
import json, sys
import numpy as np, torch
if sys.argv[1] == "2":
    import tf_keras as keras
else:
    import keras
from lstm_inspect.core.choices import Phase
from lstm_inspect.core.spec import Spec
from lstm_inspect.keras.oracle.model import copy_weights
from lstm_inspect.mirror.inputs import batch_inputs, build_rnn, model_mask
from lstm_inspect.mirror.module import forward

cpu, samples, found = torch.device("cpu"), np.arange(6), {}
for cell, keras_cell in (("lstm", "LSTM"), ("gru", "GRU")):
    for pad in ("post", "pre"):
        for bidirectional in (False, True):
            spec = Spec(6, 5, 2, units=3, cell=cell, lengths="1-5", pad=pad, bidirectional=bidirectional,
                        keras=sys.argv[1], backend=sys.argv[2])
            module = build_rnn(spec, cpu)
            x = batch_inputs(spec, Phase.PREDICT, samples, cpu)
            with torch.no_grad():
                mirror = forward(module, x, mask=model_mask(spec, Phase.PREDICT, samples, cpu))[0].numpy()
            inputs = keras.Input((5, 2))
            layer = getattr(keras.layers, keras_cell)(3, return_sequences=True)
            if bidirectional:
                layer = keras.layers.Bidirectional(layer)
            model = keras.Model(inputs, layer(keras.layers.Masking(0.0)(inputs)))
            copy_weights([layer.forward_layer, layer.backward_layer] if bidirectional else [layer], spec, module)
            given = model.predict(x.numpy(), verbose=0)
            found[f"{cell} {pad} {'bidirectional' if bidirectional else 'one way'}"] = [
                float(np.abs(given - mirror).max()), float(np.abs(given[~model_mask(spec, Phase.PREDICT, samples,
                                                                                    cpu).numpy()]).max())]
print(json.dumps(found))
"""


@pytest.mark.parametrize("keras, backend", [("3", "torch"), ("3", "tensorflow"), ("3", "jax"), ("2", "tensorflow")])
def test_the_mirrors_outputs_over_masked_padding_are_kerass(keras, backend):
    found = run_probe(MASKED_OUTPUTS_PROBE, backend, keras, backend)
    assert len(found) == 8
    for name, (diff, largest_masked) in found.items():
        assert diff < TOLERANCE, name
        # Bidirectional zeros its masked steps; one way repeats an output there, zero only where
        # no valid step came yet (pre-padding).
        assert (largest_masked == 0.0) == ("bidirectional" in name or "pre" in name), name


# A layer called with initial_state= behind a Masking layer: Keras 3 drops the mask (Layer.__call__
# fills in mask= only for a call of one tensor argument), so the padding (zeros, as Masking outputs
# it) runs as input; tf-keras keeps it. Passed by hand, mask= holds on both. The mirror's run with
# and without the mask, from the same given states, against each.
MASK_WITH_INITIAL_STATE_PROBE = """
import json, sys
import numpy as np, torch
if sys.argv[1] == "2":
    import tf_keras as keras
else:
    import keras
from lstm_inspect.core.spec import Spec
from lstm_inspect.keras.oracle.model import copy_weights
from lstm_inspect.mirror.inputs import build_rnn
from lstm_inspect.mirror.module import KerasStateful

rng, found = np.random.default_rng(3), {}
x = rng.uniform(-1, 1, (6, 5, 2)).astype("float32")
x[0], x[1, :2], x[2, 2:4], x[3, 3:] = 0.0, 0.0, 0.0, 0.0  # throughout, leading, middle, trailing
kept = torch.as_tensor((x != 0.0).any(axis=-1))
for cell, keras_cell, states in (("lstm", "LSTM", 2), ("gru", "GRU", 1)):
    spec = Spec(6, 5, 2, units=3, cell=cell, keras=sys.argv[1], backend=sys.argv[2])
    module = build_rnn(spec, torch.device("cpu"))
    given = [rng.uniform(-0.9, 0.9, (6, 3)).astype("float32") for _ in range(states)]
    mirror = KerasStateful(module, stateful=False, keras=sys.argv[1], backend=sys.argv[2])
    with torch.no_grad():
        runs = {name: mirror.call(torch.as_tensor(x), tuple(torch.as_tensor(s)[None] for s in given), mask)
                for name, mask in (("masked", kept), ("unmasked", None))}
    for by_hand in (False, True):
        inputs, state_inputs = keras.Input((5, 2)), [keras.Input((3,)) for _ in range(states)]
        layer = getattr(keras.layers, keras_cell)(3, return_sequences=True, return_state=True)
        masking = keras.layers.Masking(0.0)
        options = {"mask": masking.compute_mask(inputs)} if by_hand else {}
        sequence, *finals = layer(masking(inputs), initial_state=state_inputs, **options)
        model = keras.Model([inputs, *state_inputs], [sequence, *finals])
        copy_weights([layer], spec, module)
        outputs, *states_out = model.predict([x, *given], verbose=0)
        # Where no valid step came yet (sample 0 throughout, sample 1's first two), JAX outputs the
        # initial h, not zeros.
        before_first = np.zeros(x.shape[:2], bool)
        before_first[0], before_first[1, :2] = True, True
        found[f"{cell} {'mask= by hand' if by_hand else 'as called'}"] = {
            name: max(float(np.abs(outputs - output.numpy())[~before_first].max()),
                      *(float(np.abs(k - m[0].numpy()).max()) for k, m in zip(states_out, final)))
            for name, (output, _, final) in runs.items()} | {
            "before_first_is_h": float(np.abs(outputs[1, :2] - given[0][1]).max()),
            "before_first": float(np.abs(outputs[1, :2]).max())}
print(json.dumps(found))
"""


@pytest.mark.parametrize("keras, backend", [("3", "torch"), ("3", "tensorflow"), ("3", "jax"), ("2", "tensorflow")])
def test_keras_3_drops_the_mask_of_a_layer_called_with_initial_state(keras, backend):
    found = run_probe(MASK_WITH_INITIAL_STATE_PROBE, backend, keras, backend)
    assert len(found) == 4
    for name, diffs in found.items():
        held = keras == "2" or "by hand" in name
        matches, other = ("masked", "unmasked") if held else ("unmasked", "masked")
        assert diffs[matches] < TOLERANCE < diffs[other], (name, diffs)
        if held and backend == "jax":
            assert diffs["before_first_is_h"] < TOLERANCE < diffs["before_first"], name
        elif held:
            assert diffs["before_first"] == 0.0, name


# go_backwards outputs, against Keras's own (return_sequences=True on every layer): in the order the
# steps ran, never flipped back; stacked, each layer flips its input and takes the mask unflipped.
GO_BACKWARDS_OUTPUTS_PROBE = """
import json, sys
import numpy as np, torch
if sys.argv[1] == "2":
    import tf_keras as keras
else:
    import keras
from lstm_inspect.core.choices import Phase
from lstm_inspect.core.spec import Spec
from lstm_inspect.keras.oracle.model import copy_weights
from lstm_inspect.mirror.inputs import padded_batch, build_rnn
from lstm_inspect.mirror.module import forward

cpu, samples, found = torch.device("cpu"), np.arange(6), {}
for layers in (1, 2):
    for pad in ("", "post", "pre"):
        spec = Spec(6, 5, 2, units=3, layers=layers, lengths="1-5" if pad else "", pad=pad or "post",
                    go_backwards=True, keras=sys.argv[1], backend=sys.argv[2])
        module = build_rnn(spec, cpu)
        x, mask = padded_batch(spec, Phase.PREDICT, samples, cpu)
        with torch.no_grad():
            mirror = forward(module, x, mask=mask, go_backwards=True)[0].numpy()
        inputs = keras.Input((5, 2))
        outputs = keras.layers.Masking(0.0)(inputs) if pad else inputs
        rnns = [keras.layers.LSTM(3, return_sequences=True, go_backwards=True) for _ in range(layers)]
        for layer in rnns:
            outputs = layer(outputs)
        model = keras.Model(inputs, outputs)
        copy_weights(rnns, spec, module)
        given = model.predict(x.numpy(), verbose=0)
        found[f"{layers} layers {pad or 'unpadded'}"] = [float(np.abs(given - mirror).max()),
                                                         float(np.abs(given - mirror[:, ::-1]).max())]
print(json.dumps(found))
"""


@pytest.mark.parametrize("keras, backend", [("3", "torch"), ("3", "tensorflow"), ("3", "jax"), ("2", "tensorflow")])
def test_the_mirrors_go_backwards_outputs_are_kerass_in_the_order_the_steps_ran(keras, backend):
    found = run_probe(GO_BACKWARDS_OUTPUTS_PROBE, backend, keras, backend)
    assert len(found) == 6
    for name, (diff, flipped_back) in found.items():
        assert diff < TOLERANCE < flipped_back, name


# What the "by hand" and "set states" advice says, done on real Keras for every cell and direction:
# a return_state layer returns the output and the advised states, takes them back as initial_state
# (and Keras 3 raises with fewer), and a stateful layer's states are set as advised.
ADVISED_STATES_PROBE = """
import json, sys
import numpy as np
if sys.argv[1] == "2":
    import tf_keras as keras
else:
    import keras
found = {}
for case in json.loads(sys.argv[3]):
    cell, bidirectional, names = case["cell"], case["bidirectional"], case["names"]
    def layer(**options):
        made = getattr(keras.layers, cell)(3, **options)
        return keras.layers.Bidirectional(made) if bidirectional else made
    x = np.random.default_rng(0).normal(size=(4, 5, 2)).astype("float32")
    inputs = keras.Input((5, 2))
    returned = layer(return_state=True)(inputs)
    def given_back(count):
        states = [keras.Input((3,)) for _ in range(count)]
        outputs = layer(return_state=True)(inputs, initial_state=states if count > 1 else states[0])
        keras.Model([inputs, *states], outputs).predict([x, *[np.ones((4, 3), "float32")] * count], verbose=0)
    given_back(len(names))
    try:
        given_back(len(names) - 1) if len(names) > 1 else None
        fewer = "runs"
    except Exception as error:
        fewer = type(error).__name__
    stateful = layer(stateful=True)
    keras.Sequential([keras.Input(batch_shape=(4, 5, 2)), stateful])
    chosen = [np.full((4, 3), index + 1.0, "float32") for index in range(len(names))]
    if sys.argv[1] == "2":
        stateful.reset_states(states=chosen)
    else:
        for half, way in enumerate([stateful.forward_layer, stateful.backward_layer] if bidirectional else [stateful]):
            for index in range(len(names) // (2 if bidirectional else 1)):
                way.states[index].assign(chosen[half * len(way.states) + index])
    ways = [stateful.forward_layer, stateful.backward_layer] if bidirectional else [stateful]
    read = [float(np.asarray(keras.ops.convert_to_numpy(state) if hasattr(keras, "ops") else state)[0, 0])
            for way in ways for state in way.states]
    found[f"{cell} {bidirectional}"] = {"returned": len(returned) - 1, "fewer": fewer, "set": read}
print(json.dumps(found))
"""


@pytest.mark.parametrize("keras, backend", [("3", "torch"), ("3", "tensorflow"), ("3", "jax"), ("2", "tensorflow")])
def test_the_states_the_advice_names_are_the_ones_keras_returns_takes_and_holds(keras, backend):
    from test_advice import CELLS_AND_DIRECTIONS, advised_initial_states, items

    cases = []
    for cell, bidirectional in CELLS_AND_DIRECTIONS:
        if cell != "convlstm2d":
            advice = items(Spec(8, 5, 2, batch_size=4, stateful=True, cell=cell, bidirectional=bidirectional,
                                keras=keras, backend=backend))
            cases.append({"cell": {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}[cell],
                          "bidirectional": bidirectional, "names": advised_initial_states(advice["by hand"])})
    found = run_probe(ADVISED_STATES_PROBE, backend, keras, backend, json.dumps(cases))
    for case in cases:
        seen = found[f"{case['cell']} {case['bidirectional']}"]
        assert seen["returned"] == len(case["names"])
        assert seen["set"] == [index + 1.0 for index in range(len(case["names"]))]
        if len(case["names"]) > 1:
            assert seen["fewer"] != "runs", case  # one state short raises (on Keras 3, IndexError for an LSTM)
