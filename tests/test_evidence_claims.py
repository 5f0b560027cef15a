"""Evidence on the tensors, claims judged from it, and the CI assertions."""

import json

import pytest
from click.testing import CliRunner

from lstm_inspect.check import evidence as evidence_module
from lstm_inspect.check.inspection import Inspection
from lstm_inspect.cli import main
from lstm_inspect.core.choices import ResetPolicy
from lstm_inspect.core.spec import Spec

HEADLINE = ["--shape", "1000,20,1", "--batch", "200"]


def run_json(*args):
    result = CliRunner().invoke(main, [*args, "--format", "json"], catch_exceptions=False)
    return result, json.loads(result.stdout)


def claims_of(report):
    return {claim["claim"]: claim for claim in report["claims"]}


def test_headline_evidence_and_claims():
    result, report = run_json(*HEADLINE)
    assert result.exit_code == 0
    evidence = {item["key"]: item for item in report["evidence"]}
    assert evidence["batch_independence"]["value"] <= 1e-6 and evidence["batch_independence"]["passed"]
    # One sample rerun alone per call of the run (5 calls here): no dearer than the run itself.
    assert evidence["batch_independence"]["samples_checked"] == 5
    assert "5 samples (the first 5 of 200)" in evidence["batch_independence"]["detail"]
    assert "(measured on the first 64 of 200 slots of each call)" in evidence["gradient_truncation"]["detail"]
    assert evidence["gradient_truncation"]["with_detach"] == 0.0
    assert evidence["gradient_truncation"]["without_detach"] > 0.0
    claims = claims_of(report)
    within = claims["State is kept between the samples of a batch"]
    assert within["verdict"] == "FALSE" and "max diff" in within["because"]
    assert claims["States are reset after each batch"]["verdict"] == "TRUE"
    assert claims["Each sequence starts from zeros (reset after each sample)"]["verdict"] == "TRUE"
    assert "same fact" in claims["Each sequence starts from zeros (reset after each sample)"]["because"]


def test_headline_table_shows_evidence_and_claims():
    result = CliRunner().invoke(main, HEADLINE, catch_exceptions=False)
    assert "Evidence, measured on the tensors" in result.stdout
    assert "Claims people make, judged for this setup" in result.stdout


def test_stateful_continuation_and_slot_mapping():
    _, report = run_json(*HEADLINE, "--stateful", "--no-shuffle")
    evidence = {item["key"]: item for item in report["evidence"]}
    assert evidence["continuation"]["value"] <= 1e-5 and evidence["continuation"]["passed"]
    assert evidence["continuation"]["effective_length"] == 100
    assert evidence["gradient_truncation"]["value"] == 0.0
    claim = claims_of(report)["Stateful carries the last sample of one batch into the first of the next"]
    assert claim["verdict"] == "FALSE"
    assert "starts from train:0, not from train:199" in claim["because"]
    assert claims_of(report)["States are reset after each batch"]["verdict"] == "FALSE"


def test_epoch_and_phase_claims_cite_the_deciding_steps():
    _, report = run_json("--shape", "12,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--epochs", "2",
                         "--val-samples", "4")
    claims = claims_of(report)
    assert claims["States are reset at the end of each epoch"]["verdict"] == "FALSE"
    assert "step 4 (train e1 b0) carried x4 from validation e0 b0" in \
        claims["States are reset at the end of each epoch"]["because"]
    assert claims["Validation and predict start from a fresh state"]["verdict"] == "FALSE"
    _, reset = run_json("--shape", "12,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--epochs", "2",
                        "--reset", "epoch")
    assert claims_of(reset)["States are reset at the end of each epoch"]["verdict"] == "TRUE"


def test_reset_every_batch_makes_the_reset_claims_true():
    spec = Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False, reset=ResetPolicy.parse("every:1"))
    inspection = Inspection(spec, evidence=True)
    list(inspection)
    verdicts = {claim.text: claim.true for claim in inspection.report.claims}
    assert verdicts["States are reset after each batch"] is True
    assert verdicts["Each sequence starts from zeros (reset after each sample)"] is True


def test_reset_every_batch_still_carries_into_validation():
    spec = Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False, val_samples=4,
                reset=ResetPolicy.parse("every:1"))
    inspection = Inspection(spec, evidence=True)
    list(inspection)
    claim = next(c for c in inspection.report.claims if c.text == "States are reset after each batch")
    assert claim.true is False and "validation e0 b0" in claim.because


def test_a_mismeasured_evidence_fails_the_run(monkeypatch):
    real = evidence_module.gradient_truncation

    def broken(spec, device):
        item = real(spec, device)
        return evidence_module.EvidenceItem(item.key, item.title, 0.5, False, item.detail)

    monkeypatch.setattr(evidence_module, "gradient_truncation", broken)
    result, report = run_json(*HEADLINE)
    assert result.exit_code == 1


def test_expect_resets_passes_quietly_and_fails_loudly():
    ok = CliRunner().invoke(main, [*HEADLINE, "--expect-resets", "5", "--quiet"])
    assert ok.exit_code == 0 and ok.stdout == "" and ok.stderr == ""
    failed = CliRunner().invoke(main, [*HEADLINE, "--expect-resets", "1000", "--quiet"])
    assert failed.exit_code == 1 and failed.stdout == ""
    assert "expected 1,000 reset events, found 5 (1,000 slot resets, 0 slot carries)" in failed.stderr


@pytest.mark.parametrize("args, code", [
    (["--expect-slot-resets", "1000", "--expect-carries", "0"], 0),
    (["--expect-carries", "1"], 1),
    (["--expect-no-error"], 0),
    (["--expect-error"], 1),
])
def test_expectations_on_the_headline(args, code):
    assert CliRunner().invoke(main, [*HEADLINE, "--quiet", *args]).exit_code == code


def test_an_expected_keras_error_exits_0_and_an_unexpected_one_3():
    partial = ["--shape", "1000,20,1", "--batch", "300", "--stateful", "--no-shuffle", "--quiet"]
    assert CliRunner().invoke(main, [*partial, "--expect-error"]).exit_code == 0
    assert CliRunner().invoke(main, partial).exit_code == 3
    assert CliRunner().invoke(main, [*partial, "--expect-no-error"]).exit_code == 1


def test_strict_turns_warnings_into_failures():
    args = ["--shape", "12,5,1", "--batch", "4", "--stateful", "--quiet"]
    assert CliRunner().invoke(main, args).exit_code == 0
    strict = CliRunner().invoke(main, [*args, "--strict"])
    assert strict.exit_code == 1 and "--strict: 2 warnings" in strict.stderr  # shuffle, use_cudnn


def test_quiet_with_json_is_a_usage_error():
    assert CliRunner().invoke(main, [*HEADLINE, "--quiet", "--format", "json"]).exit_code == 2


def test_each_failed_expectation_reports_its_own_count():
    result = CliRunner().invoke(main, ["--shape", "12,5,1", "--batch", "4", "--stateful", "--no-shuffle",
                                       "--quiet", "--expect-carries", "3", "--expect-slot-resets", "4"])
    assert result.exit_code == 1
    assert "expected 3 slot carries, found 8 (1 reset event, 4 slot resets)" in result.stderr
    assert "slot resets, found" not in result.stderr  # the slot-reset expectation held


def test_one_call_has_no_gradient_boundary_to_measure():
    import torch

    from lstm_inspect.check.evidence import gradient_truncation

    item = gradient_truncation(Spec(2, 3, 1, batch_size=4, stateful=True), torch.device("cpu"))
    assert item.value is None and item.passed is None


def test_the_evidence_costs_no_more_than_the_run(monkeypatch):
    """Every forward pass of the evidence, counted in slot-timesteps, against the run's own."""
    import torch

    from lstm_inspect.check import evidence as evidence_module
    from lstm_inspect.mirror import module as mirror

    spent = {"run": 0, "evidence": 0}
    real_run_forward, real_evidence_forward = mirror.forward, evidence_module.forward

    def counted(key, real):
        def forward(module, x, initial=None, mask=None, go_backwards=False):
            spent[key] += x.shape[0] * x.shape[1]
            return real(module, x, initial, mask, go_backwards)
        return forward

    monkeypatch.setattr(evidence_module, "forward", counted("evidence", real_evidence_forward))
    spec = Spec(800, 50, 1, batch_size=400, units=16, stateful=True, shuffle=False, epochs=2)
    monkeypatch.setattr(mirror, "forward", counted("run", real_run_forward))
    with torch.no_grad():
        inspection = Inspection(spec, evidence=True)
        list(inspection)
    run_cost = spec.epochs * spec.samples * spec.timesteps
    # The mirror's forward also serves the evidence's rerun of its first calls (as many as the run's).
    assert spent["evidence"] <= run_cost and spent["run"] <= 2 * run_cost
    assert not inspection.report.evidence_failed
