"""Workflows against real Keras 3 (torch backend): every call kind and hook, read from the real
`layer.states` during the real calls, next to the schedule and the mirror."""

import numpy as np
import pytest
from click.testing import CliRunner

from lstm_inspect.check.against import TOLERANCE
from lstm_inspect.cli import main
from lstm_inspect.core.schedule import keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.keras.oracle.compare import compare_with_keras
from lstm_inspect.keras.oracle.model import import_keras
from lstm_inspect.keras.oracle.session import run_keras

import_keras()  # a missing oracle fails the suite
pytestmark = pytest.mark.keras


def spec(workflow, **settings):
    return Spec(**{"samples": 8, "timesteps": 3, "features": 1, "batch_size": 4, "stateful": True,
                   "backend": "torch", **settings}, workflow=workflow)


WORKFLOWS = {
    "a serving loop of predict calls": spec("predict(1) * 5", batch_size=1),
    "a reset before predict (on_predict_begin)": spec("fit(shuffle=False, batch_size=4); predict(8, batch_size=4); "
                                                      "predict(4)", reset="predict"),
    "a reset before validation and evaluate (on_test_begin)":
        spec("fit(epochs=2, validation_samples=4, shuffle=False, batch_size=4); evaluate(8, batch_size=4)",
             reset="epoch,validation"),
    "a reset every 2 batches in a second fit": spec("fit(shuffle=False, batch_size=4); "
                                                    "fit(epochs=2, shuffle=False, batch_size=4)",
                                                    samples=12, reset="every:2"),
    "predict with another batch size raises": spec("predict(4); predict(4, batch_size=1)"),
    "a twin with the trained weights": spec("fit(shuffle=False, batch_size=4); predict(4); twin(batch_size=1); "
                                            "predict(3, batch_size=1)"),
    "a save and load round trip": spec("predict(8, batch_size=4); save_and_load(); predict(4); train_on_batch(4)"),
    "validation_split: Keras's sizes": spec("fit(epochs=2, validation_split=0.2, shuffle=False, batch_size=2)",
                                            samples=10, batch_size=2),
    "validation_split: a validation part of no whole batch raises":
        spec("fit(validation_split=0.2, shuffle=False, batch_size=4)", samples=10),
    "validation_split of no training sample raises as that fit starts, after the calls before it":
        spec("predict(4); fit(validation_split=0.9, batch_size=4); predict(4)", samples=4),
    "the *_on_batch calls and a manual reset":
        spec("(train_on_batch(4), test_on_batch(4), predict_on_batch(4)) * 2; reset_state(); train_on_batch(4)"),
    "validation_freq and initial_epoch": spec("fit(epochs=4, validation_samples=4, validation_freq=2, "
                                              "initial_epoch=1, shuffle=False, batch_size=4)"),
    "states carried by hand": spec('predict(4, initial_state="previous") * 3', stateful=False),
    "states handed back to predicts batched otherwise": spec(
        'predict(8); predict(8, batch_size=4, initial_state="previous"); reset_state(); '
        'predict(8, batch_size=2, initial_state="previous") * 2; predict(8, batch_size=1, initial_state="previous")',
        stateful=False, cell="gru", layers=2),
    "a stacked GRU: a manual epoch loop": spec("(fit(shuffle=False, batch_size=4), reset_state()) * 2", cell="gru",
                                               layers=2),
    "a bidirectional SimpleRNN twin": spec("predict(4); twin(batch_size=2); predict(4, batch_size=2)", cell="rnn",
                                           bidirectional=True),
    "a stateful twin for batch 1 of a stateless model": spec(
        "fit(batch_size=4); twin(batch_size=1, stateful=True); predict(1) * 3; save_and_load(); predict(1) * 2",
        stateful=False),
    "a stateless twin of a stateful model, then a stateful one": spec(
        "fit(epochs=2, shuffle=False, batch_size=4); twin(batch_size=2, stateful=False); predict(4) * 2; "
        "twin(batch_size=2, stateful=True); predict(4, batch_size=2) * 2", cell="gru"),
    "steps_per_epoch over arrays: an epoch ends where the pass ends":
        spec("fit(epochs=3, shuffle=False, batch_size=4, steps_per_epoch=3)", samples=16),
    "an endless generator, steps_per_epoch and evaluate's steps":
        spec('fit(epochs=3, batch_size=4, data="generator", steps_per_epoch=3); evaluate(8, batch_size=4, steps=1)',
             samples=16),
    "a generator's partial batch raises in a stateful fit":
        spec('fit(epochs=2, batch_size=4, data="generator", steps_per_epoch=3)', samples=10),
    "a PyDataset of no length, steps_per_epoch":
        spec('fit(epochs=3, batch_size=4, data="pydataset", repeat=True, steps_per_epoch=3)', samples=16),
    "a PyDataset shuffled by fit, its partial item raising where it comes":
        spec('fit(epochs=2, batch_size=4, data="pydataset")', samples=14, seed=6),
    "evaluate and predict round a PyDataset of no length and a generator":
        spec('evaluate(8, batch_size=4, data="pydataset", repeat=True, steps=3); '
             'predict(8, batch_size=4, data="generator", steps=3)'),
    "a stateless predict round a PyDataset of no length, a partial batch among them":
        spec('predict(6, batch_size=4, data="pydataset", repeat=True, steps=3)', stateful=False),
    # Keras's own batch_size (32) for each call: one batch each.
    "a stateless workflow": spec("fit(epochs=2, validation_split=0.25); evaluate(5); predict(3)", stateful=False),
    "a stateless workflow in batches of 4": spec("fit(epochs=2, validation_split=0.25, batch_size=4); "
                                                 "evaluate(5, batch_size=4); predict(3)", stateful=False),
}


@pytest.fixture(scope="module", params=list(WORKFLOWS), ids=list(WORKFLOWS))
def compared(request):
    setup = WORKFLOWS[request.param]
    return setup, compare_with_keras(setup)


def test_keras_runs_the_workflow_as_the_schedule_and_the_mirror_say(compared):
    setup, comparison = compared
    assert comparison.agree, comparison.summary_line()
    assert comparison.steps, "Keras completed no call"
    assert comparison.max_state_diff < TOLERANCE


def test_predict_with_another_batch_size_raises_kerass_message_at_the_right_step():
    comparison = compare_with_keras(WORKFLOWS["predict with another batch size raises"])
    assert comparison.error is not None and comparison.error.step == 1 and comparison.error.type == "ValueError"
    assert "Expected batch size: 4" in comparison.error.message
    assert "Received batch size: 1" in comparison.error.message


def test_the_loaded_model_and_the_twin_start_from_zeros_in_real_keras():
    run = run_keras(WORKFLOWS["a save and load round trip"])
    before, loaded = run.completed[1], run.completed[2]
    assert np.abs(before.final[0]).max() > 0.01  # the saved model held a state ...
    assert not any(state.any() for state in loaded.initial)  # ... the loaded one starts from zeros
    twin = run_keras(WORKFLOWS["a twin with the trained weights"])
    assert [len(call.samples) for call in twin.completed] == [4, 4, 4, 1, 1, 1]
    assert not any(state.any() for state in twin.completed[3].initial)


def test_validation_split_sizes_are_kerass():
    run = run_keras(WORKFLOWS["validation_split: Keras's sizes"])
    # N=10, validation_split=0.2: floor(10 * 0.8) = 8 training samples, the last 2 validate.
    assert [(call.phase, len(call.samples)) for call in run.completed[:5]] == [
        ("train", 2), ("train", 2), ("train", 2), ("train", 2), ("validation", 2)]
    raising = compare_with_keras(WORKFLOWS["validation_split: a validation part of no whole batch raises"])
    assert raising.error is not None and raising.error.step == 2  # 8 training samples, then 2 to validate
    # floor(4 * 0.1) = 0 training samples: Keras's predict ran, then fit raises before any batch.
    empty = compare_with_keras(WORKFLOWS["validation_split of no training sample raises as that fit starts, "
                                         "after the calls before it"])
    assert empty.agree, empty.summary_line()
    assert empty.error is not None and empty.error.step == 1 and empty.error.type == "ValueError"
    assert "Training data contains 4 samples, which is not sufficient" in empty.error.message


def test_a_train_on_batch_loop_follows_the_schedule_of_fit_without_shuffle():
    fitted = run_keras(spec("fit(epochs=2, shuffle=False, batch_size=4)"))
    looped = run_keras(spec("train_on_batch(4) * 4"))
    assert fitted.start_labels() == looped.start_labels()
    for fit_call, loop_call in zip(fitted.completed, looped.completed):
        for fit_state, loop_state in zip(fit_call.initial, loop_call.initial):
            np.testing.assert_array_equal(fit_state, loop_state)


def test_states_carried_by_hand_equal_the_stateful_carry():
    by_hand = run_keras(WORKFLOWS["states carried by hand"])
    stateful = run_keras(spec("predict(4) * 3"))
    assert by_hand.start_labels() == stateful.start_labels()
    for hand_call, stateful_call in zip(by_hand.completed, stateful.completed):
        for hand_state, stateful_state in zip(hand_call.initial, stateful_call.initial):
            np.testing.assert_allclose(hand_state, stateful_state, atol=1e-6)


def test_the_command_line_compares_a_workflow_with_keras():
    result = CliRunner().invoke(main, ["--shape", "8,3,1", "--batch", "1", "--stateful", "--backend", "torch",
                                       "--calls", "predict(1) * 3; twin(batch_size=2); predict(2)",
                                       "--against", "keras", "--no-evidence"])
    assert result.exit_code == 0, result.output
    assert "4/4 steps agree" in " ".join(result.stdout.split())


def test_kerass_own_default_batch_size_is_the_one_calls_without_batch_size_get():
    # Keras's documented example, in real Keras with no batch_size given: a stateful model built for
    # batch 1, then model.fit(X, y) on 100 samples; and a stateless model's evaluate and predict.
    keras = import_keras()
    x, y = np.zeros((100, 10, 3), "float32"), np.zeros((100, 1), "float32")
    stateful = keras.Sequential([keras.Input(batch_shape=(1, 10, 3)), keras.layers.LSTM(4, stateful=True),
                                 keras.layers.Dense(1)])
    stateful.compile("sgd", "mse")
    with pytest.raises(ValueError) as raised:
        stateful.fit(x, y, verbose=0)
    tool = list(keras_steps(Spec(100, 10, 3, batch_size=1, stateful=True, shuffle=False, backend="torch",
                                 workflow="fit()")))
    assert len(tool) == 1 and tool[0].raises and tool[0].error.type == "ValueError"
    for line in ("Expected batch size: 1", "Received batch size: 32"):
        assert line in str(raised.value) and line in tool[0].error.message

    class Sizes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.sizes = []

        def on_test_batch_end(self, batch, logs=None):
            self.sizes.append(("evaluate", batch))

        def on_predict_batch_end(self, batch, logs=None):
            self.sizes.append(("predict", len(logs["outputs"])))

    stateless = keras.Sequential([keras.Input(shape=(10, 3)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    stateless.compile("sgd", "mse")
    seen = Sizes()
    stateless.evaluate(x[:70], y[:70], callbacks=[seen], verbose=0)
    stateless.predict(x[:70], callbacks=[seen], verbose=0)
    tool = keras_steps(Spec(100, 10, 3, batch_size=1, shuffle=False, backend="torch",
                            workflow="evaluate(70); predict(70)"))
    counted = [(str(step.call.phase), step.call.batch if step.call.phase == "evaluate" else len(step.call.samples))
               for step in tool]
    assert seen.sizes == counted == [("evaluate", 0), ("evaluate", 1), ("evaluate", 2),
                                     ("predict", 32), ("predict", 32), ("predict", 6)]


def test_a_stateful_twin_for_batch_1_runs_a_sequence_in_pieces_as_one_stateless_run_over_it():
    # The advice for a stateless model: streaming prediction on a stateful twin, the weights copied.
    keras = import_keras()
    stateless = keras.Sequential([keras.Input(shape=(None, 2)), keras.layers.LSTM(4)])
    twin = keras.Sequential([keras.Input(batch_shape=(1, None, 2)), keras.layers.LSTM(4, stateful=True)])
    twin.set_weights(stateless.get_weights())
    sequence = np.random.default_rng(3).uniform(-1, 1, (1, 12, 2)).astype("float32")
    whole = np.asarray(stateless.predict(sequence, verbose=0))
    pieces = [np.asarray(twin.predict(sequence[:, start:start + 4], verbose=0)) for start in (0, 4, 8)]
    np.testing.assert_allclose(pieces[-1], whole, atol=1e-6)
    assert np.abs(pieces[0] - whole).max() > 1e-3  # the first piece alone is not the whole run
