"""GRU and SimpleRNN, stacked and bidirectional layers, Keras 2 against Keras 3."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lstm_inspect.check.evidence import continuation
from lstm_inspect.check.inspection import Inspection
from lstm_inspect.cli import main
from lstm_inspect.cli.setup import command_line
from lstm_inspect.core.choices import ResetPolicy
from lstm_inspect.core.order import iter_calls
from lstm_inspect.core.schedule import keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.explain.claims import Landmarks
from lstm_inspect.mirror.run import mirror_records

CPU = "cpu"


def run_json(*args):
    result = CliRunner().invoke(main, [*args, "--format", "json"], catch_exceptions=False)
    return result, json.loads(result.stdout)


@pytest.mark.keras
def test_stacked_gru_agrees_with_real_keras_on_every_step_and_layer():
    result, report = run_json("--shape", "12,5,2", "--batch", "4", "--stateful", "--no-shuffle", "--cell", "gru",
                              "--layers", "2", "--against", "keras")
    assert result.exit_code == 0
    assert report["keras"]["agree"] and report["keras"]["max_state_diff"] < 1e-5
    assert report["summary"]["tensors_checked"] == ["h[layer 0]", "h[layer 1]"]
    assert "2-layer GRU" in report["verdict"] and "Keras 3" in report["verdict"]


@pytest.mark.keras
def test_bidirectional_agrees_with_keras_and_shows_the_backward_caveat():
    args = ["--shape", "12,5,2", "--batch", "4", "--stateful", "--no-shuffle", "--bidirectional"]
    result, report = run_json(*args, "--against", "keras")
    assert result.exit_code == 0 and report["keras"]["agree"]
    assert report["summary"]["tensors_checked"] == [
        "h[layer 0, forward]", "h[layer 0, backward]", "c[layer 0, forward]", "c[layer 0, backward]"]
    continuation_item = next(item for item in report["evidence"] if item["key"] == "continuation")
    assert continuation_item["value"] <= 1e-5 and continuation_item["passed"]
    assert continuation_item["backward_diff"] > 1e-3
    assert any("backward direction carries" in warning for warning in report["warnings"])
    assert "not one long bidirectional pass" in report["verdict"]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (3, False), (2, True)])
def test_every_variant_is_verified_on_its_tensors(cell, layers, bidirectional):
    spec = Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2, val_samples=4,
                cell=cell, layers=layers, bidirectional=bidirectional)
    inspection = Inspection(spec, evidence=True)
    results = list(inspection)
    assert inspection.report.summary.verified and all(r.verified for r in results)
    assert len(inspection.report.summary.tensors_checked) == len(spec.cell.state_names) * layers * spec.directions
    assert not inspection.report.evidence_failed


def test_backward_direction_does_not_continue_across_batches():
    import torch

    def measured(spec):
        landmarks = Landmarks()
        for step in keras_steps(spec):
            landmarks.add(step)
        return continuation(spec, mirror_records(spec, torch.device(CPU), limit=20),
                            landmarks.longest_chain, spec.calls, torch.device(CPU))

    item = measured(Spec(40, 5, 1, batch_size=8, stateful=True, shuffle=False, bidirectional=True))
    assert item.value <= 1e-5 and item.extra["backward_diff"] > 1e-3
    one_way = measured(Spec(40, 5, 1, batch_size=8, stateful=True, shuffle=False))
    assert "backward_diff" not in one_way.extra


def test_shuffle_batch_differs_between_keras_2_and_3_as_measured():
    def batches(keras):
        spec = Spec(12, 2, 1, batch_size=4, shuffle="batch", epochs=1, seed=3, keras=keras)
        return [call.samples.tolist() for call in iter_calls(spec)]

    three, two = batches("3"), batches("2")
    # Keras 3 keeps the batch order and shuffles within each batch.
    assert [sorted(batch) for batch in three] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert three != [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    # Keras 2 also shuffles the order of the batches.
    assert sorted(sorted(batch) for batch in two) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert [sorted(batch) for batch in two] != [sorted(batch) for batch in three]


def test_keras_2_partial_batch_error_is_tensorflows():
    result, report = run_json("--shape", "10,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--keras", "2",
                              "--units", "3")
    assert result.exit_code == 3
    assert report["error"]["type"] == "InvalidArgumentError"
    assert report["error"]["message"].startswith("Incompatible shapes between the 2-sample batch and the 4-row")
    assert "Keras 2 (tf-keras)" in report["verdict"]


def test_keras_2_snippet_uses_keras_2s_reset_api():
    text = CliRunner().invoke(main, ["--shape", "12,5,1", "--batch", "4", "--stateful", "--reset", "epoch",
                                     "--keras", "2", "--emit", "keras"]).stdout
    assert "import tf_keras as keras" in text and "self.model.reset_states()" in text
    assert "use_cudnn" not in text and "rnn.reset_state()" not in text
    compile(text, "snippet", "exec")
    keras_3 = CliRunner().invoke(main, ["--shape", "12,5,1", "--batch", "4", "--stateful", "--reset", "epoch",
                                        "--emit", "keras"]).stdout
    assert "rnn.reset_state()" in keras_3 and "reset_states()" not in keras_3


@pytest.mark.keras
def test_against_keras_runs_keras_2_and_agrees_on_its_error():
    result, report = run_json("--shape", "10,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--keras", "2",
                              "--against", "keras", "--no-evidence")
    assert result.exit_code == 3, result.stderr
    keras = report["keras"]
    assert keras["agree"] and keras["version"] == "2.21.0" and keras["backend"] == "tensorflow"
    assert keras["error"]["type"] == "InvalidArgumentError" and keras["error"]["step"] == 2


def test_layers_must_be_positive():
    result = CliRunner().invoke(main, ["--shape", "8,5,1", "--layers", "0"])
    assert result.exit_code == 2 and "--layers must be a positive integer" in result.stderr


def test_inputs_for_the_same_sample_match_across_variants():
    # The data does not depend on the model: only the seed, the phase and the sample index.
    import torch

    from lstm_inspect.mirror.inputs import batch_inputs

    plain = batch_inputs(Spec(10, 5, 2), "train", np.arange(3), torch.device(CPU))
    gru = batch_inputs(Spec(10, 5, 2, cell="gru", layers=2), "train", np.arange(3), torch.device(CPU))
    assert torch.equal(plain, gru)


def test_a_mirror_wrong_in_one_layer_is_reported_for_that_layer(monkeypatch):
    import torch

    from lstm_inspect.mirror import run as mirror

    class ForgetsLayerOne(mirror.KerasStateful):
        """Carries every layer's state but the second one's, which it zeroes."""

        def call(self, x, initial_state=None, mask=None):
            result = super().call(x, initial_state, mask)
            for name, state in zip(self.state_names, self.states):
                setattr(self, name, state.clone().index_fill_(0, torch.tensor([1]), 0.0))
            return result

    monkeypatch.setattr(mirror, "KerasStateful", ForgetsLayerOne)
    spec = Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, layers=2)
    inspection = Inspection(spec)
    results = list(inspection)
    assert results[1].verified is False
    assert results[1].observed.differing == ("h[layer 1]", "c[layer 1]")
    assert inspection.report.first_difference == (1, ("h[layer 1]", "c[layer 1]"))
    result = CliRunner().invoke(main, ["--shape", "12,5,2", "--batch", "4", "--stateful", "--no-shuffle",
                                       "--layers", "2", "--no-evidence", "--format", "json"])
    assert json.loads(result.stdout)["steps"][1]["observed"]["differing"] == ["h[layer 1]", "c[layer 1]"]
    table = CliRunner().invoke(main, ["--shape", "12,5,2", "--batch", "4", "--stateful", "--no-shuffle",
                                      "--layers", "2", "--no-evidence"]).stdout
    assert "First at step 1, in h[layer 1], c[layer 1]." in " ".join(table.split())


@pytest.mark.keras
def test_keras_2_snippet_runs_under_tf_keras():
    import subprocess
    import sys

    spec = Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2, keras="2",
                reset=ResetPolicy.parse("epoch"))
    text = CliRunner().invoke(main, [*command_line(spec).split(), "--emit", "keras"]).stdout
    done = subprocess.run([sys.executable, "-"], input=text, capture_output=True, text=True, timeout=600)
    expected = [f"{step.call.label}: zeros={step.zero_slots} carried={step.carried_slots}"
                for step in keras_steps(spec)]
    assert done.stdout.splitlines() == expected, done.stderr
