"""What the tool says per backend, without Keras: the default backend as Keras picks it, the
TensorFlow broadcast of a lone stateful sample, JAX's dropped state, the version warning, and
the command line's answers (real Keras checks the same facts in test_backends)."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstm_inspect import Spec, SpecError, inspect
from lstm_inspect.cli import main
from lstm_inspect.core.choices import Backend, default_backend
from lstm_inspect.explain.verdict import warnings_for


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env)


def test_the_default_backend_is_read_as_keras_reads_it(tmp_path, monkeypatch):
    assert default_backend({"KERAS_BACKEND": "jax"}) == Backend.JAX
    assert default_backend({"KERAS_HOME": str(tmp_path)}) == Backend.TENSORFLOW  # no keras.json: Keras's default
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch", "floatx": "float32"}))
    assert default_backend({"KERAS_HOME": str(tmp_path)}) == Backend.TORCH
    assert default_backend({"KERAS_HOME": str(tmp_path), "KERAS_BACKEND": "jax"}) == Backend.JAX  # env first
    home = tmp_path / "home"
    (home / ".keras").mkdir(parents=True)
    (home / ".keras" / "keras.json").write_text(json.dumps({"backend": "jax"}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.delenv("KERAS_HOME", raising=False)
    assert default_backend() == Backend.JAX  # ~/.keras/keras.json
    assert Spec(8, 3, 1).backend == Backend.JAX  # a Spec without a backend describes this Keras
    (tmp_path / "keras.json").write_text("{not json")
    assert default_backend({"KERAS_HOME": str(tmp_path)}) == Backend.TENSORFLOW
    with pytest.raises(SpecError) as raised:
        default_backend({"KERAS_BACKEND": "numpy"})
    assert raised.value.field == "backend"
    assert raised.value.describe({"backend": "--backend"}) == (
        "--backend is torch, tensorflow or jax; KERAS_BACKEND or keras.json says 'numpy'")


def test_where_the_home_directory_is_read_only_the_backend_is_read_under_tmp_as_keras_reads_it(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".keras").mkdir(parents=True)
    (home / ".keras" / "keras.json").write_text(json.dumps({"backend": "jax"}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(os, "access", lambda path, mode: os.path.realpath(path) != os.path.realpath(home))
    fallback = Path("/tmp/.keras/keras.json")
    if fallback.exists():  # a Keras run with no writable home left one: it is what Keras would read
        expected = Backend(json.loads(fallback.read_text()).get("backend") or "tensorflow")
        assert default_backend({}) == expected
        return
    made = not fallback.parent.exists()
    fallback.parent.mkdir(exist_ok=True)
    try:
        fallback.write_text(json.dumps({"backend": "torch"}))
        assert default_backend({}) == Backend.TORCH
    finally:
        fallback.unlink()
        if made:
            fallback.parent.rmdir()


def test_the_command_line_takes_the_backend_from_the_environment_without_importing_keras():
    result = run("--shape", "8,3,1", "--batch", "4", "--dry-run", "--format", "json", env={"KERAS_BACKEND": "jax"})
    assert json.loads(result.stdout)["spec"]["backend"] == "jax"
    result = run("--shape", "8,3,1", "--dry-run", env={"KERAS_BACKEND": "numpy"})
    assert result.exit_code == 2 and "--backend is torch, tensorflow or jax" in result.stderr
    result = run("--shape", "8,3,1", "--keras", "2", "--backend", "jax", "--dry-run")
    assert result.exit_code == 2 and "runs on TensorFlow only" in result.stderr


def test_jax_stateful_reports_every_slot_from_zeros_with_the_warning():
    result = run("--shape", "8,3,1", "--batch", "4", "--stateful", "--no-shuffle", "--predict-samples", "8",
                 "--format", "json", env={"KERAS_BACKEND": "jax"})
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["spec"]["backend"] == "jax"
    assert all(start == "zeros" for step in report["steps"] for start in step["start"])
    assert all(step["verified"] for step in report["steps"])  # the mirror drops the state too
    sentence = "stateful=True does nothing inside fit, evaluate or predict on the jax backend in Keras 3.15.1"
    assert any(sentence in warning for warning in report["warnings"]) and sentence in report["verdict"]
    claims = {claim["claim"]: claim["verdict"] for claim in report["claims"]}
    assert claims["Validation and predict start from a fresh state"] == "TRUE"
    assert next(item for item in report["evidence"] if item["key"] == "continuation")["passed"] is None


def test_tensorflow_broadcasts_a_lone_stateful_sample_into_every_slot():
    args = ["--shape", "9,4,1", "--batch", "4", "--stateful", "--no-shuffle", "--backend", "tensorflow"]
    result = run(*args, "--no-evidence")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "train e0 b2" in line)
    assert "8 in all 4 slots" in row and "carried x4" in row and "✓" in row
    assert "does not raise for a stateful batch of one sample" in result.stderr
    assert "Keras does not raise for a batch of one sample here" in " ".join(result.stdout.split())
    assert run(*args, "--strict", "--quiet").exit_code == 1
    assert run(*args[:-2], "--backend", "torch", "--quiet").exit_code == 3
    report = json.loads(run(*args, "--no-evidence", "--format", "json").stdout)
    lone = report["steps"][2]
    assert lone["broadcast"] is True and lone["samples"] == [8, 8, 8, 8]
    assert lone["start"] == ["train:4", "train:5", "train:6", "train:7"] and report["error"] is None


@pytest.mark.parametrize("spec", [
    Spec(9, 4, 2, batch_size=4, stateful=True, shuffle=False, epochs=2, predict_samples=5, backend="tensorflow"),
    Spec(9, 4, 2, batch_size=4, stateful=True, shuffle=False, keras="2", layers=2, bidirectional=True),
    Spec(12, 4, 2, batch_size=4, stateful=True, shuffle=False, epochs=2, val_samples=4, backend="jax",
         reset="every:2"),
    Spec(10, 4, 1, batch_size=4, stateful=True, backend="jax"),
])
def test_the_mirror_follows_each_backend_on_the_tensors(spec):
    report = inspect(spec, evidence=False).run()
    assert report.ok and all(result.verified is not False for result in report.steps)


def test_a_keras_of_another_version_than_measured_is_warned_about(monkeypatch):
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "3.99.0")
    warnings = inspect(Spec(8, 3, 1, batch_size=4), dry_run=True).warnings
    assert any("measured on Keras 3.15.1, torch 2.13.0; you have keras 3.99.0" in warning for warning in warnings)


def test_against_keras_names_the_extra_a_missing_backend_needs(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "jax" else real(name))
    result = run("--shape", "8,3,1", "--batch", "4", "--backend", "jax", "--against", "keras")
    assert result.exit_code == 2
    assert "--against keras needs jax for Keras 3 (jax): pip install 'lstm-inspect[jax]'" in result.stderr


def test_a_lone_broadcast_sample_is_never_taken_for_batch_size_one():
    report = inspect(Spec(1, 3, 1, batch_size=4, stateful=True, epochs=3, backend="tensorflow")).run()
    claim = next(c for c in report.claims if c.text.startswith("Stateful carries the last sample"))
    assert report.ok and claim.true is False
    assert not any("predict returns" in warning for warning in report.warnings)  # no predict here


def test_evidence_starts_its_chain_at_a_full_batch_from_zeros():
    # Keras 2's shuffle="batch" puts the lone sample 8 first here (seed 0).
    spec = Spec(9, 3, 1, batch_size=4, stateful=True, shuffle="batch", keras="2")
    report = inspect(spec).run()
    assert len(report.steps[0].step.call.samples) == 1 and report.ok


def test_keras_3_on_tensorflow_checks_a_short_first_predict_batch_itself():
    spec = Spec(4, 3, 1, batch_size=4, stateful=True, shuffle=False, predict_samples=1, backend="tensorflow")
    report = inspect(spec, evidence=False).run()
    assert report.ok and report.error.type == "ValueError" and report.error.step == 1
    assert not any("broadcast" in warning for warning in report.warnings)


@pytest.mark.parametrize("keras, backend, warned", [("3", "tensorflow", True), ("2", None, True), ("3", "torch", False),
                                                    ("3", "jax", False)])
def test_a_channels_first_convlstm2d_on_tensorflow_is_warned_of_the_cpu_that_refuses_it(keras, backend, warned):
    shape = dict(batch_size=4, cell="convlstm2d", frame=(4, 5), keras=keras, backend=backend)

    def cpu_warnings(spec: Spec) -> list[str]:
        return [warning for warning in warnings_for(spec) if "NHWC" in warning]

    found = cpu_warnings(Spec(8, 2, 2, data_format="channels_first", **shape))
    assert len(found) == warned
    if warned:
        assert "TF_ENABLE_ONEDNN_OPTS=1" in found[0] and 'data_format="channels_last"' in found[0]
    assert cpu_warnings(Spec(8, 2, 2, data_format="channels_first", stateful=True, **shape)) == found
    assert not cpu_warnings(Spec(8, 2, 2, **shape))
