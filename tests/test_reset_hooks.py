"""--reset: the user's callback zeroes the state in the hooks Keras calls, and only there
(core/hooks.py, ResetPolicy.resets_in): on_epoch_begin before an epoch's batch 0, on_train_batch_begin
before every training batch (every:K: indices that are multiples of K, counted in each epoch),
on_test_begin before fit's validation and evaluate, on_predict_begin before predict, each once per
call and never inside it; the *_on_batch calls run no callback. Dry runs, then the mirror."""

import json

import pytest
from click.testing import CliRunner

from lstm_inspect.cli import main

FIT_EVALUATE_PREDICT = "fit(validation_samples=8, batch_size=4); evaluate(8, batch_size=4); predict(8, batch_size=4)"


def starts(reset, workflow, shape="16,5,1", dry_run=True):
    """Per step: its label, and "zeros" or the label of the call it carries from."""
    arguments = ["--shape", shape, "--batch", "4", "--stateful", "--no-shuffle", "--backend", "torch",
                 "--reset", reset, "--calls", workflow, "--format", "json", "--no-advice"]
    result = CliRunner().invoke(main, arguments + (["--dry-run"] if dry_run else ["--no-evidence"]))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    if not dry_run:
        assert report["summary"]["verified"] is True
    found = []
    for step in report["steps"]:
        first = step["start"][0]
        found.append((f"{step['call']} b{step['batch']}", "zeros" if first == "zeros" else "carried"))
    return found


def test_validation_resets_once_before_fits_validation_and_evaluate_not_inside_them():
    assert starts("validation", FIT_EVALUATE_PREDICT, shape="8,5,1") == [
        ("train e0 b0", "zeros"), ("train e0 b1", "carried"),
        ("validation e0 b0", "zeros"), ("validation e0 b1", "carried"),
        ("evaluate b0", "zeros"), ("evaluate b1", "carried"),
        ("predict b0", "carried"), ("predict b1", "carried")]


def test_predict_resets_once_before_predict_only():
    assert starts("predict", FIT_EVALUATE_PREDICT, shape="8,5,1") == [
        ("train e0 b0", "zeros"), ("train e0 b1", "carried"),
        ("validation e0 b0", "carried"), ("validation e0 b1", "carried"),
        ("evaluate b0", "carried"), ("evaluate b1", "carried"),
        ("predict b0", "zeros"), ("predict b1", "carried")]


def test_epoch_resets_before_each_epochs_first_batch_only():
    assert starts("epoch", "fit(epochs=2, validation_samples=4, batch_size=4); predict(4)", shape="8,5,1") == [
        ("train e0 b0", "zeros"), ("train e0 b1", "carried"), ("validation e0 b0", "carried"),
        ("train e1 b0", "zeros"), ("train e1 b1", "carried"), ("validation e1 b0", "carried"),
        ("predict b0", "carried")]


def test_every_k_resets_before_batch_indices_that_are_multiples_of_k_in_each_epoch():
    found = starts("every:2", "fit(epochs=2, batch_size=4)", shape="20,5,1")
    assert [start for _, start in found] == ["zeros", "carried", "zeros", "carried", "zeros"] * 2
    found = starts("every:3", "fit(epochs=2, initial_epoch=1, batch_size=4)", shape="20,5,1")
    assert [start for _, start in found] == ["zeros", "carried", "carried", "zeros", "carried"]


def test_the_on_batch_calls_run_no_callback():
    found = starts("every:1,validation,predict", "train_on_batch(4) * 2; test_on_batch(4); predict_on_batch(4)",
                   shape="8,5,1")
    assert found == [("train_on_batch b0", "zeros"), ("train_on_batch#2 b0", "carried"),
                     ("test_on_batch b0", "carried"), ("predict_on_batch b0", "carried")]


def test_a_policy_of_every_hook_on_the_mirror():
    workflow = ("fit(epochs=2, validation_samples=8, batch_size=4); evaluate(8, batch_size=4); "
                "predict(8, batch_size=4); train_on_batch(4); "
                "test_on_batch(4); predict_on_batch(4)")
    for reset in ("epoch,validation,predict", "every:1", "every:2,predict", "validation"):
        assert starts(reset, workflow, shape="12,5,1", dry_run=False) == starts(reset, workflow, shape="12,5,1")


@pytest.mark.parametrize("reset, events", [("never", 1), ("epoch", 2), ("every:2", 4), ("validation", 3),
                                           ("predict", 2), ("epoch,validation,predict", 5)])
def test_each_policy_counts_its_reset_events(reset, events):
    arguments = ["--shape", "12,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--backend", "torch",
                 "--reset", reset, "--calls", "fit(epochs=2, validation_samples=4, batch_size=4); predict(4)",
                 "--dry-run",
                 "--quiet", "--expect-resets", str(events)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
