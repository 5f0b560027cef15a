"""Golden outputs: every format and view over a handful of setups, as users see them.

A refactor that changes any of these fails here unless an issue asked for the change;
`make golden` rewrites the files (pytest --update-golden) for a reviewed change.
"""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstm_inspect.cli import main

GOLDEN = Path(__file__).parent / "golden"

SETUPS = {
    "headline": "--shape 1000,20,1 --batch 200",
    "phases": "--shape 12,5,1 --batch 4 --stateful --no-shuffle --epochs 2 --val-samples 4 --predict-samples 4",
    "partial": "--shape 10,5,1 --batch 4 --stateful --no-shuffle --predict-samples 4",
    "bigru": "--shape 12,3,2 --batch 4 --stateful --cell gru --layers 2 --bidirectional --reset epoch --epochs 2",
    "folded": "--shape 400,5,1 --batch 8 --stateful --no-shuffle --reset every:3 --max-steps 20",
    "keras2": "--shape 10,3,1 --batch 4 --shuffle batch --keras 2 --epochs 2 --units 4",
}

# Each output: (file suffix, extra arguments). "{export}" is a file the command writes.
OUTPUTS = {
    "table.txt": [],
    "timeline.txt": ["--view", "timeline"],
    "json": ["--format", "json"],
    "md": ["--format", "markdown"],
    "csv": ["--format", "csv"],
    "svg": ["--svg", "{export}"],
    "dry.txt": ["--dry-run"],
    "dry.json": ["--dry-run", "--format", "json", "--no-slots"],
}
NO_MAX_STEPS = {"dry.txt", "dry.json", "timeline.txt", "json", "csv"}  # --max-steps only where it shows


def _without_measurements(text: str) -> str:
    # Measured floats (evidence, max |h0|) may differ in their last digit between CPUs.
    return re.sub(r"\d+\.\d+(e[-+]\d+)?|\de[-+]\d+", "#", text)


def _arguments(setup: str, suffix: str, export: Path) -> list[str]:
    words = SETUPS[setup].split()
    if suffix in NO_MAX_STEPS and "--max-steps" in words:
        at = words.index("--max-steps")
        del words[at:at + 2]
    return words + [str(export) if word == "{export}" else word for word in OUTPUTS[suffix]]


@pytest.mark.parametrize("suffix", list(OUTPUTS))
@pytest.mark.parametrize("setup", list(SETUPS))
def test_output_is_unchanged(setup, suffix, tmp_path, update_golden):
    export = tmp_path / "export.svg"
    result = CliRunner().invoke(main, _arguments(setup, suffix, export), catch_exceptions=False)
    assert result.exit_code in (0, 3), result.output
    shown = export.read_text() if suffix == "svg" else result.stdout
    shown += f"\n[stderr]\n{result.stderr}[exit {result.exit_code}]\n"
    golden = GOLDEN / f"{setup}.{suffix}"
    if update_golden:
        golden.write_text(shown)
    assert _without_measurements(shown) == _without_measurements(golden.read_text())


@pytest.mark.parametrize("emit", ["keras", "torch"])
@pytest.mark.parametrize("setup", ["phases", "bigru", "keras2"])
def test_snippet_is_unchanged(setup, emit, update_golden):
    words = SETUPS[setup].split()
    result = CliRunner().invoke(main, words + ["--emit", emit], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    golden = GOLDEN / f"{setup}.emit-{emit}.py"
    if update_golden:
        golden.write_text(result.stdout)
    assert result.stdout == golden.read_text()
