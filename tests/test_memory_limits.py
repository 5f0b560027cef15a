"""The memory refusal as users read it, in seconds: with the room this process may hold set small, a
setup is refused before any work, naming the part that weighs most and what to do about it; the
weights are counted, and the evidence never weighs much beside the run it explains. (The estimate
against measured peaks is tests/test_memory.py's, and takes minutes.)"""

import re

from click.testing import CliRunner

from lstm_inspect.cli import checks, main
from lstm_inspect.data.memory import Room


def refusal(monkeypatch, room_mib, *arguments):
    monkeypatch.setattr(checks, "rooms", lambda: [Room(room_mib << 20, "the memory available")])
    result = CliRunner().invoke(main, [*arguments, "--backend", "torch"])
    assert result.exit_code == 2 and result.stdout == "", result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: this needs about "), result.stderr
    return lines[0]


def needed_gib(line):
    return float(re.search(r"this needs about ([\d,.]+) GiB", line).group(1).replace(",", ""))


def test_large_weights_are_refused_for_the_weights(monkeypatch):
    # 4,096 LSTM units: some 0.5 GiB of weights for 2 samples of 1 step.
    line = refusal(monkeypatch, 200, "--shape", "2,1,1", "--units", "4096", "--no-evidence")
    assert line.endswith("most of it for the weights, more than the 0.2 GiB that the memory available leaves: use "
                         "fewer --units or --layers")
    assert needed_gib(line) >= 0.7
    small = refusal(monkeypatch, 200, "--shape", "2,1,1", "--units", "8", "--no-evidence")
    assert "most of it for start-up" in small and needed_gib(small) < 0.4


def test_the_evidence_weighs_little_beside_the_run(monkeypatch):
    arguments = ["--shape", "2000,200,2000", "--batch", "2000"]
    with_evidence = refusal(monkeypatch, 1, *arguments)
    without = refusal(monkeypatch, 1, *arguments, "--no-evidence")
    assert "most of it for one batch" in with_evidence and "most of it for one batch" in without
    assert needed_gib(without) <= needed_gib(with_evidence) <= 1.1 * needed_gib(without)


def test_a_dry_run_needs_no_room_for_the_run(monkeypatch):
    line = refusal(monkeypatch, 1, "--shape", "2000,200,2000", "--batch", "2000", "--dry-run")
    assert "most of it for start-up" in line and needed_gib(line) < 0.1
