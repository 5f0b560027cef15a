"""--calls at its limits: how deep repeats nest, the largest repeat, fit's epoch window (initial_epoch,
validation_freq), and the call counts the command refuses a workflow by, exactly as it says them."""

import itertools
import json

import pytest
from click.testing import CliRunner

from lstm_inspect.cli import main
from lstm_inspect.core.errors import SpecError
from lstm_inspect.core.schedule import keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.core.workflow import MAX_DEPTH, MAX_REPEAT, Kind, Op, Repeat, parse

BASE = ["--shape", "8,5,1", "--backend", "torch", "--stateful", "--no-shuffle"]


def invoke(*arguments, batch="4"):
    return CliRunner().invoke(main, [*BASE, "--batch", batch, *arguments])


def dry_json(*arguments, batch="4"):
    result = invoke(*arguments, "--dry-run", "--format", "json", "--no-advice", batch=batch)
    assert result.exit_code in (0, 3), result.output
    return json.loads(result.stdout)


def one_error_line(result):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


def nested(depth, innermost="predict(4)"):
    """`depth` repeats, each inside the one before, written both ways: `call * 1 * 1 ...` and
    `((call, reset_state()) * 1, reset_state()) * 1 ...`."""
    chained = innermost + " * 1" * depth
    tupled = innermost
    for _ in range(depth):
        tupled = f"({tupled}, reset_state()) * 1"
    return chained, tupled


# ---- how deep repeats nest ---------------------------------------------------------------------


@pytest.mark.parametrize("form", [0, 1], ids=["chained", "tupled"])
def test_repeats_nested_exactly_max_depth_deep_are_accepted(form):
    written = nested(MAX_DEPTH)[form]
    workflow = parse(written)
    assert len(workflow) == 1
    for _ in range(MAX_DEPTH):  # MAX_DEPTH repeats, each the first item of the one before
        assert isinstance(workflow[0], Repeat) and workflow[0].times == 1
        workflow = workflow[0].body
    assert workflow[0] == Op(Kind.PREDICT, 4, batch_size=32)
    result = invoke("--calls", written, "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.output
    assert [step["call"] for step in json.loads(result.stdout)["steps"]] == ["predict"]


@pytest.mark.parametrize("form", [0, 1], ids=["chained", "tupled"])
def test_one_repeat_more_than_max_depth_is_one_usage_line(form):
    written = nested(MAX_DEPTH + 1)[form]
    with pytest.raises(SpecError, match=f"repeats nest more than {MAX_DEPTH} deep"):
        parse(written)
    line = one_error_line(invoke("--calls", written, "--dry-run"))
    assert f"--calls: repeats nest more than {MAX_DEPTH} deep" in line


def test_the_depth_is_counted_from_the_outermost_repeat_of_each_statement():
    # Two statements each MAX_DEPTH deep: the depth of one does not add to the other's.
    written = "; ".join([nested(MAX_DEPTH)[0]] * 2)
    assert invoke("--calls", written, "--dry-run").exit_code == 0
    assert MAX_DEPTH == 32  # README: "nested at most 32 deep"


# ---- the largest repeat and counts ---------------------------------------------------------------


def test_a_repeat_count_may_be_max_repeat_and_no_more():
    assert parse(f"predict(1) * {MAX_REPEAT}") == (Repeat((Op(Kind.PREDICT, 1, batch_size=32),), MAX_REPEAT),)
    with pytest.raises(SpecError, match="a repeat count must be at most 100,000,000"):
        parse(f"predict(1) * {MAX_REPEAT + 1}")
    assert parse("predict(1) * 1") == (Repeat((Op(Kind.PREDICT, 1, batch_size=32),), 1),)


@pytest.mark.parametrize("workflow, steps", [
    # fit: 2 training calls an epoch; validation of 4 samples, one call, after epochs 1 and 3 only.
    ("fit(epochs=4, validation_freq=2, validation_samples=4, batch_size=4) * 30000000", 30_000_000 * (4 * 2 + 2)),
    # initial_epoch=1 of 4: 3 epochs run; validation after epochs 1 and 3.
    ("fit(epochs=4, initial_epoch=1, validation_freq=2, validation_samples=4, batch_size=4) * 20000000",
     20_000_000 * (3 * 2 + 2)),
    # initial_epoch=2 of 4 epochs: 2 epochs run; validation after epoch 3 (the 4th) only.
    ("fit(epochs=4, initial_epoch=2, validation_freq=2, validation_samples=4, batch_size=4) * 30000000",
     30_000_000 * (2 * 2 + 1)),
    # validation_split=0.5: 4 training samples (1 call), 4 validation samples (1 call).
    ("fit(validation_split=0.5) * 60000000", 120_000_000),
    # One layer call per *_on_batch call, whatever its samples; predict(8, batch_size=4) is 2 calls of 4.
    ("predict_on_batch(8) * 60000000; train_on_batch(8) * 50000000", 110_000_000),
    ("predict(8, batch_size=4) * 60000000", 120_000_000),
    ("predict(40) * 60000000", 120_000_000),  # Keras's batch_size: 32, then 8
    # A repeat's body counts `times` times.
    ("(predict(8, batch_size=4), twin(batch_size=2)) * 60000000", 120_000_000),
    ("(predict(8, batch_size=4), reset_state(), save_and_load()) * 50000001", 100_000_002),
])
def test_the_call_count_the_command_refuses_a_workflow_by_is_exact(workflow, steps):
    line = one_error_line(invoke("--calls", workflow, "--dry-run"))
    assert f"the schedule has {steps:,} steps; lstm-inspect follows at most 100,000,000" in line


def test_a_workflow_of_exactly_max_steps_calls_is_not_refused_for_its_count():
    from lstm_inspect.cli.options import MAX_STEPS

    spec = Spec(8, 5, 1, batch_size=4, backend="torch", workflow="predict(8, batch_size=4) * 50000000")
    assert spec.calls == MAX_STEPS  # at the bound, not past it: the command would follow it


def test_a_fit_whose_epoch_window_is_one_epoch_far_out_is_one_step():
    # 100,000,001 epochs from epoch 100,000,000 on: one epoch is run, one call of 8 samples (read
    # lazily: a schedule that ran epochs 0.. would be read no further than its first steps).
    spec = Spec(8, 5, 1, batch_size=8, backend="torch", workflow="fit(epochs=100000001, initial_epoch=100000000)")
    assert spec.calls == 1
    assert [step.call.label for step in itertools.islice(keras_steps(spec), 3)] == ["train e100000000 b0"]
    report = dry_json("--calls", "fit(epochs=3, initial_epoch=2)", batch="8")
    assert [step["call"] for step in report["steps"]] == ["train e2"]


# ---- fit's epoch window ------------------------------------------------------------------------


def test_initial_epoch_zero_and_validation_samples_zero_are_accepted_as_keras_takes_them():
    for written in ("fit(initial_epoch=0, batch_size=4)", "fit(validation_samples=0, batch_size=4)",
                    "fit(epochs=1, initial_epoch=0, batch_size=4)"):
        assert parse(written) == (Op(Kind.FIT, batch_size=4),), written
        report = dry_json("--calls", written)
        assert [step["call"] for step in report["steps"]] == ["train e0", "train e0"]
    with pytest.raises(SpecError, match="initial_epoch must be at least 0"):
        parse("fit(epochs=2, initial_epoch=-1)")
    with pytest.raises(SpecError, match="epochs must be at least 1"):
        parse("fit(epochs=0)")


def test_initial_epoch_one_of_two_runs_epoch_one_only():
    report = dry_json("--calls", "fit(epochs=2, initial_epoch=1, batch_size=4)")
    assert [(step["call"], step["epoch"], step["batch"]) for step in report["steps"]] == [
        ("train e1", 1, 0), ("train e1", 1, 1)]
    assert report["steps"][0]["start"] == ["zeros"] * 4  # its first batch is the model's first call
    table = invoke("--calls", "fit(epochs=2, initial_epoch=1, batch_size=4)", "--dry-run", "--no-advice")
    assert table.exit_code == 0
    assert "train e1 b0" in table.stdout and "train e1 b1" in table.stdout and "train e0" not in table.stdout
    # One epoch runs: nothing is carried across epochs, so no warning says so.
    assert "across epochs" not in table.stderr
    assert "across epochs" in invoke("--calls", "fit(epochs=3, initial_epoch=1)", "--dry-run").stderr


def test_validation_runs_after_the_epochs_validation_freq_names_counted_from_one():
    report = dry_json("--calls", "fit(epochs=3, validation_freq=2, validation_samples=4, batch_size=4)")
    assert [f"{step['call']} b{step['batch']}" for step in report["steps"]] == [
        "train e0 b0", "train e0 b1", "train e1 b0", "train e1 b1", "validation e1 b0", "train e2 b0", "train e2 b1"]
