"""Streaming and scale options: --max-steps, --no-slots, --device."""

import json

import pytest
from click.testing import CliRunner

from lstm_inspect.check.inspection import Inspection
from lstm_inspect.cli import main
from lstm_inspect.core.spec import Spec
from lstm_inspect.mirror.module import KerasStateful
from lstm_inspect.mirror.run import resolve_device


def test_max_steps_checks_the_first_steps_and_predicts_the_rest():
    inspection = Inspection(Spec(100, 5, 1, batch_size=10, stateful=True, shuffle=False), max_steps=3)
    results = list(inspection)
    assert [r.verified for r in results] == [True] * 3 + [None] * 7
    assert inspection.report.summary.checked_steps == 3 and inspection.report.summary.steps == 10
    assert inspection.report.summary.verified is True


def test_max_steps_stops_the_mirror(monkeypatch):
    made = []
    real = KerasStateful.call

    def counting(self, x, initial_state=None, mask=None):
        made.append(len(made))
        return real(self, x, initial_state, mask)

    monkeypatch.setattr(KerasStateful, "call", counting)
    list(Inspection(Spec(1000, 5, 1, batch_size=10), max_steps=4))
    assert made == [0, 1, 2, 3]


def test_max_steps_on_the_command_line_says_so():
    result = CliRunner().invoke(main, ["--shape", "100,5,1", "--batch", "10", "--max-steps", "2",
                                       "--no-evidence"])
    assert result.exit_code == 0
    assert "The first 2 steps verified on the tensors; the rest predicted" in " ".join(result.stdout.split())


def test_no_slots_replaces_the_arrays_by_counts():
    result = CliRunner().invoke(main, ["--shape", "12,5,1", "--batch", "4", "--stateful", "--no-shuffle",
                                       "--dry-run", "--format", "json", "--no-slots"])
    steps = json.loads(result.stdout)["steps"]
    assert steps[1] == {"call": "train e0", "phase": "train", "epoch": 0, "batch": 1, "slots": 4, "zero_slots": 0,
                        "carried_slots": 4, "verified": None}


def test_a_huge_dry_run_streams():
    result = CliRunner().invoke(main, ["--shape", "2000000,20,1", "--batch", "1000", "--dry-run", "--format",
                                       "json", "--no-slots"])
    report = json.loads(result.stdout)
    assert report["summary"]["steps"] == 2000 and report["summary"]["slot_resets"] == 2_000_000


def test_cuda_asked_for_where_there_is_none_is_a_usage_error(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(main, ["--shape", "12,5,1", "--device", "cuda"])
    assert result.exit_code == 2 and "CUDA is not available" in result.stderr
    assert resolve_device("auto").type == "cpu"
