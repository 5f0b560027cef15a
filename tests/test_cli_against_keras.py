"""`--against keras` on the command line, with real Keras."""

import json

import pytest
from click.testing import CliRunner

from lstm_inspect.cli import main
from lstm_inspect.keras.oracle import session as oracle
from lstm_inspect.keras.oracle.model import copy_weights

pytestmark = pytest.mark.keras
PHASES = ["--shape", "12,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--epochs", "2",
          "--val-samples", "8", "--predict-samples", "4", "--against", "keras"]


def test_every_step_agrees_with_real_keras():
    result = CliRunner().invoke(main, PHASES, catch_exceptions=False)
    assert result.exit_code == 0
    assert "Keras 3.15" in result.stdout or "Keras 3." in result.stdout
    assert "11/11 steps agree" in result.stdout
    report = json.loads(CliRunner().invoke(main, [*PHASES, "--format", "json"]).stdout)
    keras = report["keras"]
    assert keras["agree"] is True and keras["backend"] == "torch"
    assert keras["max_state_diff"] < 1e-5 and keras["max_output_diff"] < 1e-5
    assert len(keras["steps"]) == len(report["steps"]) == 11
    assert [s["start"] for s in keras["steps"]] == [s["start"] for s in report["steps"]]


def test_kerass_real_error_at_the_predicted_step_exits_3():
    result = CliRunner().invoke(main, ["--shape", "10,5,1", "--batch", "4", "--stateful", "--against", "keras"],
                                catch_exceptions=False)
    assert result.exit_code == 3
    assert "Keras itself raised ValueError at step 2" in result.stdout
    assert "raises ValueError at step 2, as predicted" in " ".join(result.stdout.split())


def test_a_disagreement_with_keras_exits_1(monkeypatch):
    copy = copy_weights

    def perturbed(rnns, spec, torch_module):
        copy(rnns, spec, torch_module)
        kernel, recurrent, bias = rnns[0].get_weights()
        rnns[0].set_weights([kernel, recurrent, bias + 0.5])

    monkeypatch.setattr(oracle, "copy_weights", perturbed)
    result = CliRunner().invoke(main, PHASES, catch_exceptions=False)
    assert result.exit_code == 1
    assert "real Keras disagrees" in result.stderr


@pytest.mark.parametrize("installed", [None, "2.15.0"])
def test_without_keras_3_installed_it_is_a_usage_error(monkeypatch, installed):
    import importlib.metadata

    real = importlib.metadata.version

    def version(name):
        if name != "keras":
            return real(name)
        if installed is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr(importlib.metadata, "version", version)
    result = CliRunner().invoke(main, ["--shape", "8,5,1", "--against", "keras"])
    assert result.exit_code == 2
    assert "pip install 'lstm-inspect[keras]'" in result.stderr


def test_against_conflicts_with_dry_run():
    result = CliRunner().invoke(main, ["--shape", "8,5,1", "--against", "keras", "--dry-run"])
    assert result.exit_code == 2 and "--dry-run cannot be combined with --against" in result.stderr


@pytest.mark.parametrize("args, backend, code", [
    (["--shape", "8,3,1", "--batch", "4", "--stateful", "--no-shuffle", "--predict-samples", "8"], "jax", 0),
    (["--shape", "9,4,1", "--batch", "4", "--stateful", "--no-shuffle"], "tensorflow", 0),
])
def test_real_keras_on_the_other_backends_agrees(args, backend, code):
    result = CliRunner().invoke(main, [*args, "--format", "json", "--no-evidence", "--against", "keras"],
                                env={"KERAS_BACKEND": backend}, catch_exceptions=False)
    report = json.loads(result.stdout)
    assert result.exit_code == code, result.stderr
    keras = report["keras"]
    assert keras["backend"] == backend and keras["agree"] and keras["max_state_diff"] < 1e-5
    assert [step["start"] for step in keras["steps"]] == [step["start"] for step in report["steps"]]
