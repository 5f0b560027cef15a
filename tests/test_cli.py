"""The command line, through click's CliRunner (and a subprocess where imports matter)."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from lstm_inspect.cli import main

GOLDEN = Path(__file__).parent / "golden"
HEADLINE = ["--shape", "1000,20,1", "--batch", "200"]
STATEFUL_PHASES = HEADLINE + ["--stateful", "--no-shuffle", "--epochs", "2", "--val-samples", "400",
                              "--predict-samples", "200"]


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def invoke_json(*args):
    result = invoke(*args, "--format", "json")
    return result, json.loads(result.stdout)


def test_headline_table(update_golden):
    # Without the evidence section: its float figures may differ in the last digit between CPUs.
    result = invoke(*HEADLINE, "--no-evidence")
    assert result.exit_code == 0
    golden = GOLDEN / "headline.txt"
    if update_golden:
        golden.write_text(result.stdout)
    assert result.stdout == golden.read_text()
    assert "\x1b[" not in result.stdout
    assert "5 steps: 5 reset events, 1,000 slot resets, 0 slot carries. Every step verified" in result.stdout
    assert ("states are reset after every batch, 5 times per epoch; each batch holds up to 200 independent "
            "states, one per sequence, so every one of the 1,000 sequences starts from zeros and nothing "
            "passes between sequences.") in " ".join(result.stdout.split())


def test_headline_json_schema():
    result, report = invoke_json(*HEADLINE)
    assert result.exit_code == 0
    assert set(report) >= {"schema", "spec", "steps", "summary", "error", "warnings", "verdict"}
    assert report["schema"] == 1 and report["error"] is None and report["warnings"] == []
    assert report["spec"] == {"samples": 1000, "timesteps": 20, "features": 1, "batch_size": 200,
                              "stateful": False, "epochs": 1, "shuffle": True, "reset": "never",
                              "val_samples": 0, "predict_samples": 0, "units": 8, "seed": 0,
                              "cell": "lstm", "layers": 1, "bidirectional": False, "keras": "3",
                              "backend": "torch", "workflow": None, "calls": "fit(batch_size=200)"}
    assert report["summary"] == {"steps": 5, "reset_events": 5, "slot_resets": 1000, "slot_carries": 0,
                                 "checked_steps": 5, "tensors_checked": ["h[layer 0]", "c[layer 0]"],
                                 "verified": True}
    steps = report["steps"]
    assert [step["phase"] for step in steps] == ["train"] * 5
    assert sorted(sample for step in steps for sample in step["samples"]) == list(range(1000))
    for index, step in enumerate(steps):
        assert step["epoch"] == 0 and step["batch"] == index and step["verified"] is True
        assert step["start"] == ["zeros"] * 200
        assert step["observed"] == {"zero_slots": 200, "carried_slots": 0, "max_abs_h0": 0.0}


def test_stateful_carries_through_validation_and_into_predict():
    result, report = invoke_json(*STATEFUL_PHASES)
    assert result.exit_code == 0 and report["summary"]["verified"] is True
    calls = [(s["phase"], s["epoch"], s["batch"]) for s in report["steps"]]
    epoch1_first = report["steps"][calls.index(("train", 1, 0))]
    assert epoch1_first["start"] == [f"validation:{200 + i}" for i in range(200)]
    predict = report["steps"][calls.index(("predict", 0, 0))]
    assert predict["start"] == [f"validation:{200 + i}" for i in range(200)]
    assert report["summary"]["reset_events"] == 1
    assert any("validation" in warning for warning in report["warnings"])
    assert any("across epochs" in warning for warning in report["warnings"])


def test_stateful_table_shows_the_carry_sources():
    result = invoke(*STATEFUL_PHASES)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert any("train e1 b0" in line and "carried x200 from validation e0 b1" in line for line in lines)
    assert any("predict b0" in line and "carried x200 from validation e1 b1" in line for line in lines)
    assert "Every step verified on the tensors." in result.stdout
    assert "warning: validation runs through the training state" in result.stderr


def test_partial_stateful_batch_exits_3_with_kerass_message_and_a_fix():
    result = invoke("--shape", "1000,20,1", "--batch", "300", "--stateful")
    assert result.exit_code == 3
    assert "Keras raises ValueError at step 3" in result.stdout
    assert "- Expected batch size: 300" in result.stdout and "- Received batch size: 100" in result.stdout
    assert "use --batch 200, 250, 500 or 1000" in " ".join(result.stdout.split())
    assert "truncate N to 900" in result.stdout
    _, report = invoke_json("--shape", "1000,20,1", "--batch", "300", "--stateful")
    assert report["error"]["step"] == 3 and report["error"]["type"] == "ValueError"
    assert len(report["steps"]) == 4
    assert report["steps"][3] == {"call": "train e0", "phase": "train", "epoch": 0, "batch": 3,
                                  "samples": report["steps"][3]["samples"], "start": None, "verified": None}
    assert len(report["steps"][3]["samples"]) == 100
    assert "Expected batch size: 300" in report["error"]["message"]
    assert "900" in report["error"]["fix"]


def test_summary_says_what_was_checked():
    dry = invoke(*STATEFUL_PHASES, "--dry-run").stdout
    assert "Dry run: predicted from Keras's rules" in dry and "differ" not in dry
    assert "Every step verified on the tensors." in invoke(*HEADLINE, "--no-evidence").stdout


def test_dry_run_predicts_without_observing():
    result, report = invoke_json(*STATEFUL_PHASES, "--dry-run")
    assert result.exit_code == 0
    assert all("observed" not in step and step["verified"] is None for step in report["steps"])
    assert report["summary"]["verified"] is None
    _, checked = invoke_json(*STATEFUL_PHASES)
    assert [s["start"] for s in report["steps"]] == [s["start"] for s in checked["steps"]]


def test_dry_run_and_help_never_import_torch():
    code = ("import sys; from lstm_inspect.cli import main\n"
            "for args in (['--help'], ['--shape', '1000,20,1', '--batch', '200', '--dry-run']):\n"
            "    try: main(args)\n"
            "    except SystemExit: pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_long_schedules_fold_the_middle():
    result = invoke("--shape", "1000,5,1", "--batch", "10", "--max-rows", "6", "--dry-run", "--no-advice")
    assert result.exit_code == 0
    rows = [line.split("│")[1:-1] for line in result.stdout.splitlines() if line.startswith("│")]
    assert [row[0].strip() for row in rows] == ["0", "1", "2", "…", "98", "99"]
    assert rows[3][1].strip() == "95 more steps" and rows[3][3].strip() == "95 train (reset x10)"


def test_python_dash_m_runs_the_same_command():
    out = subprocess.run([sys.executable, "-m", "lstm_inspect", "--shape", "8,2,1", "--batch", "4",
                          "--dry-run", "--format", "json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["summary"]["steps"] == 2


def test_help_shows_the_options_in_their_groups_then_examples_that_run():
    from lstm_inspect.cli.command import HELP_END
    from lstm_inspect.cli.options import GROUP_OF

    shown = invoke("--help").stdout
    titles = ["The setup:", "What it prints and writes:", "How it runs and checks:", "Scripts and CI:",
              "Other options:", "Examples:", "Shell completion (click's):"]
    at = [shown.index(title) for title in titles]
    assert at == sorted(at)
    sections = {title[:-1]: shown[start:end] for title, start, end in zip(titles, at, [*at[1:], len(shown)])}
    for name, title in GROUP_OF.items():  # each option under its own group's title
        flag = max(next(param for param in main.params if param.name == name).opts, key=len)  # -q, --quiet
        assert f" {flag}" in sections[title], (name, title)
    assert set(GROUP_OF.values()) == {title[:-1] for title in titles[:4]}
    for command, _ in dict(HELP_END)["Examples"]:
        if "--replay" not in command and "--against" not in command:  # the others run as written
            assert invoke(*shlex.split(command)[1:], "--dry-run").exit_code == 0, command


def test_shell_completion_is_clicks_as_the_help_says():
    done = subprocess.run([str(Path(sys.executable).parent / "lstm-inspect")], capture_output=True, text=True,
                          env={**os.environ, "_LSTM_INSPECT_COMPLETE": "bash_source"})
    assert done.returncode == 0 and "complete -o nosort -F" in done.stdout
