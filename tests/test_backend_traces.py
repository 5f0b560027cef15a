"""The backends' rules as users meet them (core/facts.py FACTS and Traces): which function a call
traces on TensorFlow, when that first trace fixes the batch dimension (Keras's own ValueError) and
when it is open (InvalidArgumentError, or a lone sample broadcast), where the first too-small batch
raises, and what a stateful layer on JAX keeps. Dry runs, through the command's JSON; a few are run
on the mirror too, which must raise where and as the schedule says."""

import json

import pytest
from click.testing import CliRunner

from lstm_inspect.cli import main
from lstm_inspect.core.choices import Backend, KerasVersion, Phase
from lstm_inspect.core.facts import FACTS, Traces
from lstm_inspect.core.workflow import Kind

STATEFUL = ["--shape", "8,5,1", "--batch", "4", "--stateful", "--no-shuffle"]
KERAS3_TF = ["--backend", "tensorflow"]
KERAS2 = ["--keras", "2"]


def report(*arguments, dry_run=True):
    extra = ["--dry-run"] if dry_run else ["--no-evidence"]
    result = CliRunner().invoke(main, [*arguments, *extra, "--format", "json", "--no-advice"])
    assert result.exit_code in (0, 3), result.output
    found = json.loads(result.stdout)
    assert (result.exit_code == 3) == (found["error"] is not None)
    return found


def raised(*arguments, dry_run=True):
    """(type, step) of what Keras raises, or None."""
    error = report(*arguments, dry_run=dry_run)["error"]
    return None if error is None else (error["type"], error["step"])


# ---- fit's validation traces the test function -------------------------------------------------


@pytest.mark.parametrize("keras", [KERAS3_TF, KERAS2], ids=["keras3-tensorflow", "tf-keras"])
def test_fits_validation_traces_the_test_function_that_evaluate_then_runs(keras):
    # Validation (4 samples, one batch of 4) traced the test function: evaluate's batches of 2
    # then run in an open dimension, and TensorFlow's shape check raises.
    assert raised(*STATEFUL, *keras, "--calls",
                  "fit(validation_samples=4, batch_size=4); evaluate(2, batch_size=2)") == ("InvalidArgumentError", 3)
    # Without validation, evaluate's first trace fixes the batch of 2: Keras's own check raises.
    assert raised(*STATEFUL, *keras, "--calls", "fit(batch_size=4); evaluate(2, batch_size=2)") == ("ValueError", 2)


def test_the_rule_is_the_one_traces_applies():
    for keras in (KerasVersion.THREE, KerasVersion.TWO):
        facts = FACTS[keras, Backend.TENSORFLOW]
        traces = Traces(facts)
        assert traces.fixes_batch(Kind.FIT, Phase.VALIDATION, True, 4, 4)  # validation: the first trace of "test"
        assert not traces.fixes_batch(Kind.EVALUATE, Phase.EVALUATE, True, 2, 2)  # already traced
        fresh = Traces(facts)
        assert fresh.fixes_batch(Kind.EVALUATE, Phase.EVALUATE, True, 2, 2)
        fresh.new_model()  # a twin or a loaded model traces its own
        assert fresh.fixes_batch(Kind.EVALUATE, Phase.EVALUATE, True, 2, 2)
        assert Traces(FACTS[KerasVersion.THREE, Backend.TORCH]).fixes_batch(Kind.FIT, Phase.TRAIN, True, 8, 4) is None


@pytest.mark.parametrize("keras", [KERAS3_TF, KERAS2], ids=["keras3-tensorflow", "tf-keras"])
def test_a_validation_shorter_than_a_batch_runs_in_an_open_dimension(keras):
    # 2 validation samples in batches of 4: not every batch of the call has the size, so the
    # test function's first trace leaves the dimension open: TensorFlow's shape check raises.
    assert raised(*STATEFUL, *keras, "--calls", "fit(validation_samples=2, batch_size=4)") == \
        ("InvalidArgumentError", 2)
    found = report(*STATEFUL, *keras, "--calls",
                   "fit(validation_samples=4, batch_size=4); fit(validation_samples=2, batch_size=1)")
    # The second fit's functions are traced already: its lone samples broadcast, training and validation.
    assert found["error"] is None
    assert [step.get("broadcast", False) for step in found["steps"]] == [False] * 3 + [True] * 10


def test_the_mirror_raises_where_the_first_trace_says():
    arguments = [*STATEFUL, *KERAS3_TF, "--calls",
                 "fit(validation_samples=4, batch_size=4); evaluate(2, batch_size=2)"]
    checked = report(*arguments, dry_run=False)
    assert checked["summary"]["verified"] is True and checked["error"]["type"] == "InvalidArgumentError"
    checked = report(*STATEFUL, *KERAS3_TF, "--calls", "fit(epochs=2, initial_epoch=1, batch_size=2)", dry_run=False)
    assert checked["summary"]["verified"] is True and checked["error"]["type"] == "ValueError"


# ---- when a first trace fixes the batch ----------------------------------------------------------


@pytest.mark.parametrize("workflow, keras, outcome", [
    # fit's first trace is at its first epoch run, initial_epoch or not.
    ("fit(epochs=2, initial_epoch=1, batch_size=2)", KERAS3_TF, ("ValueError", 0)),
    ("fit(epochs=2, initial_epoch=1, batch_size=2)", KERAS2, ("ValueError", 0)),
    # Every batch of the call the same size: fixed; 5 samples in 3s leave evaluate's trace open, the
    # first batch of 3 raising. Keras 3's predict fixes it at its first batch all the same (measured).
    ("predict(6, batch_size=3)", KERAS3_TF, ("ValueError", 0)),
    ("predict(5, batch_size=3)", KERAS3_TF, ("ValueError", 0)),
    ("evaluate(5, batch_size=3)", KERAS3_TF, ("InvalidArgumentError", 0)),
    # Keras 3's predict fixes a batch shorter than batch_size; its evaluate does not, nor tf-keras's predict.
    ("predict(3)", KERAS3_TF, ("ValueError", 0)),
    ("evaluate(3)", KERAS3_TF, ("InvalidArgumentError", 0)),
    ("predict(3)", KERAS2, ("InvalidArgumentError", 0)),
    # The *_on_batch calls are one batch of all their samples: their first trace fixes it.
    ("predict_on_batch(3)", KERAS3_TF, ("ValueError", 0)),
    ("predict(4); predict_on_batch(3)", KERAS2, ("ValueError", 1)),
    # tf-keras's test_on_batch shares evaluate's function: traced already, open.
    ("evaluate(4); test_on_batch(3)", KERAS2, ("InvalidArgumentError", 1)),
    ("evaluate(4); test_on_batch(3)", KERAS3_TF, ("ValueError", 1)),
    # A loaded model traces its own functions.
    ("predict(4); save_and_load(); predict(3, batch_size=3)", KERAS3_TF, ("ValueError", 1)),
    ("predict(4); reset_state(); predict(3, batch_size=3)", KERAS3_TF, ("InvalidArgumentError", 1)),
])
def test_a_first_trace_fixes_the_batch_where_every_batch_has_one_size(workflow, keras, outcome):
    assert raised(*STATEFUL, *keras, "--calls", workflow) == outcome


def test_kerass_and_tensorflows_messages_name_both_sizes():
    error = report(*STATEFUL, *KERAS3_TF, "--calls", "evaluate(5, batch_size=3)")["error"]
    assert error["message"] == ("Incompatible shapes between the 3-sample batch and the 4-row state (TensorFlow's "
                                "shape check, e.g. \"Incompatible shapes: [3,8] vs. [4,8]\")")
    error = report(*STATEFUL, *KERAS3_TF, "--calls", "predict(6, batch_size=3)")["error"]
    assert error["message"].endswith("- Expected batch size: 4\n- Received batch size: 3")
    error = report(*STATEFUL, *KERAS2, "--calls", "predict(2, batch_size=1)")["error"]
    assert error["message"] == ('Input 0 of layer "lstm" is incompatible with the layer: expected shape=(4, None, 1), '
                                'found shape=(1, 5, 1)')
    error = report(*STATEFUL, *KERAS2, "--cell", "gru", "--calls", "predict(2, batch_size=1)")["error"]
    assert error["message"].startswith('Input 0 of layer "gru" is incompatible')


# ---- where the first batch raises, and lone samples -----------------------------------------------


@pytest.mark.parametrize("backend, error, when", [
    ("torch", "ValueError", "while fit builds its step function, before any batch begins"),
    ("jax", "ValueError", "while fit builds its step function, before any batch begins"),
    ("tensorflow", "InvalidArgumentError", "inside the first batch, after its on_train_batch_begin callback"),
])
def test_too_few_samples_for_one_batch_raise_where_each_backend_raises(backend, error, when):
    found = report("--shape", "2,5,1", "--batch", "4", "--stateful", "--backend", backend)["error"]
    assert (found["type"], found["step"], found["when"]) == (error, 0, when)


def test_a_first_short_predict_raises_after_its_own_callback():
    found = report(*STATEFUL, *KERAS2, "--calls", "predict(2)")["error"]
    assert found["when"] == "inside the first batch, after its on_predict_batch_begin callback"
    found = report(*STATEFUL, *KERAS3_TF, "--calls", "evaluate(2)")["error"]
    assert found["when"] == "inside the first batch, after its on_test_batch_begin callback"
    assert "when" not in report(*STATEFUL, "--backend", "torch", "--calls", "fit(batch_size=4); predict(2)")["error"]


def test_a_lone_sample_broadcasts_up_to_the_phase_that_raises():
    shorthand = ["--shape", "9,4,1", "--batch", "4", "--stateful", "--no-shuffle"]
    # Keras 3's predict of 1 < 4 samples is a first trace: it raises, the training's lone sample broadcast.
    found = report(*shorthand, *KERAS3_TF, "--predict-samples", "1")
    assert (found["error"]["type"], found["error"]["step"]) == ("ValueError", 3)
    assert [step.get("broadcast", False) for step in found["steps"]] == [False, False, True, False]
    assert any("does not raise for a stateful batch of one sample (train):" in w for w in found["warnings"])
    # tf-keras runs that predict in an open dimension: its lone sample broadcasts too.
    found = report(*shorthand, *KERAS2, "--predict-samples", "1")
    assert found["error"] is None
    assert any("one sample (train and predict)" in w and "predict returns 4 rows for it" in w
               for w in found["warnings"])
    assert raised(*shorthand, "--backend", "torch", "--predict-samples", "1") == ("ValueError", 2)


def test_jax_starts_every_stateful_call_from_zeros():
    found = report(*STATEFUL, "--backend", "jax", "--calls", "fit(epochs=2, batch_size=4); predict(4) * 2")
    assert found["summary"]["slot_carries"] == 0 and found["summary"]["reset_events"] == len(found["steps"]) == 6
    torch = report(*STATEFUL, "--backend", "torch", "--calls", "fit(epochs=2, batch_size=4); predict(4) * 2")
    assert torch["summary"]["reset_events"] == 1
    checked = report(*STATEFUL, "--backend", "jax", "--calls", "fit(epochs=2, batch_size=4); predict(4) * 2",
                     dry_run=False)
    assert checked["summary"]["verified"] is True


@pytest.mark.parametrize("batch, samples, keras, outcome", [
    ("1", 2, KERAS3_TF, "ValueError"),  # tf.while_loop's shape invariant: the state holds one row
    ("1", 2, KERAS2, "InvalidArgumentError"),
    ("2", 3, KERAS3_TF, "InvalidArgumentError"),  # a state of two rows meets TensorFlow's shape check
])
def test_a_one_row_state_fed_more_samples_in_an_open_trace_fails_the_loops_shape_invariant(batch, samples, keras,
                                                                                              outcome):
    # Validation traces the test function in batches of the model's size; evaluate's one batch
    # (Keras's default batch_size) then runs in that function, its dimension open.
    arguments = ["--shape", "8,3,1", "--batch", batch, "--stateful", "--no-shuffle", *keras, "--calls",
                 f"fit(validation_samples=2, batch_size={batch}); evaluate({samples})"]
    error = report(*arguments)["error"]
    assert error["type"] == outcome and error["step"] == 8 // int(batch) + 2 // int(batch)
    assert ("enters the loop with shape (1, 8), but has shape (None, 8)" in error["message"]) == (
        outcome == "ValueError")
    assert report(*arguments, dry_run=False)["summary"]["verified"] is True


@pytest.mark.parametrize("workflow, keras, outcome", [
    ("fit()", KERAS3_TF, ("ValueError", 0)),  # 1 sample in batches of 32: the trace leaves the size open
    ("evaluate(1)", KERAS3_TF, ("ValueError", 0)),
    ("train_on_batch(1); evaluate(1)", KERAS3_TF, ("ValueError", 1)),
    ("fit(batch_size=1); evaluate(1, batch_size=1)", KERAS3_TF, None),  # every batch its batch_size: fixed
    ("predict(1)", KERAS3_TF, None),  # Keras 3's predict fixes a short one
    ("train_on_batch(1); test_on_batch(1); predict_on_batch(1)", KERAS3_TF, None),  # one batch: fixed
    ("fit(); evaluate(1)", KERAS2, None),
    ("fit(); evaluate(1)", ["--backend", "torch"], None),
])
def test_a_one_row_state_cannot_run_in_a_trace_left_open_on_keras_3s_tensorflow(workflow, keras, outcome):
    arguments = ["--shape", "1,3,1", "--batch", "1", "--stateful", "--no-shuffle", *keras, "--calls", workflow]
    assert raised(*arguments) == outcome
    found = report(*arguments, dry_run=False)
    assert found["summary"]["verified"] is not False
    if outcome:
        assert found["error"]["fix"].endswith("cannot run: call it with batch_size=1")
        assert "a stateful layer built for batch 1 runs only in a step function traced with its batch size " \
               "fixed" in found["verdict"]
