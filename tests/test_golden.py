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
    "workflow": "--shape 8,5,1 --batch 4 --stateful --reset epoch,predict --calls "
                "fit(epochs=2,shuffle=False,validation_samples=4,batch_size=4);twin(batch_size=1);"
                "predict(3,batch_size=1);reset_state();"
                "predict_on_batch(1)*2",
    "handcarry": "--shape 8,5,1 --batch 4 --calls predict(4,initial_state='previous')*3",
    "tensorflow": "--shape 9,4,1 --batch 4 --stateful --no-shuffle --backend tensorflow --predict-samples 5",
    "jax": "--shape 8,3,1 --batch 4 --stateful --no-shuffle --predict-samples 8 --backend jax",
    "data": "--shape 24,4,1 --batch 2 --stateful --no-shuffle --data examples/sliding.npy",
    "replay": "--replay examples/probe-run.json",
}
# What a saved probe run cannot do: it is replayed, never run again.
REPLAYED_ONLY = {"dry.txt", "dry.json"}

# Each output: (file suffix, extra arguments). "{export}" is a file the command writes.
OUTPUTS = {
    "table.txt": [],
    "timeline.txt": ["--view", "timeline"],
    "json": ["--format", "json"],
    "md": ["--format", "markdown"],
    "csv": ["--format", "csv"],
    "svg": ["--svg", "{export}"],
    "diagram.svg": ["--diagram", "{export}", "--format", "json"],
    "page.html": ["--html", "{export}"],
    "dry.txt": ["--dry-run"],
    "dry.json": ["--dry-run", "--format", "json", "--no-slots"],
}
NO_MAX_STEPS = {"dry.txt", "dry.json", "timeline.txt", "json", "csv"}  # --max-steps only where it shows


def _without_measurements(text: str) -> str:
    # Measured floats (evidence, max |h0|) may differ in their last digit between CPUs, and so
    # does the class name rich's SVG derives from a hash of the text it draws.
    text = re.sub(r"terminal-\d+", "terminal-#", text)
    return re.sub(r"\d+\.\d+(e[-+]\d+)?|\de[-+]\d+", "#", text)


def _arguments(setup: str, suffix: str, export: Path) -> list[str]:
    words = SETUPS[setup].split()
    if suffix in NO_MAX_STEPS and "--max-steps" in words:
        at = words.index("--max-steps")
        del words[at:at + 2]
    return words + [str(export) if word == "{export}" else word for word in OUTPUTS[suffix]]


@pytest.mark.parametrize(("setup", "suffix"), [(setup, suffix) for setup in SETUPS for suffix in OUTPUTS
                                             if not (setup == "replay" and suffix in REPLAYED_ONLY)])
def test_output_is_unchanged(setup, suffix, tmp_path, update_golden, monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)  # the examples the setups name
    export = tmp_path / "export.svg"
    result = CliRunner().invoke(main, _arguments(setup, suffix, export), catch_exceptions=False)
    assert result.exit_code in (0, 3), result.output
    shown = export.read_text() if suffix in ("svg", "diagram.svg", "page.html") else result.stdout
    shown += f"\n[stderr]\n{result.stderr}[exit {result.exit_code}]\n"
    golden = GOLDEN / f"{setup}.{suffix}"
    if update_golden:
        golden.write_text(shown)
    assert _without_measurements(shown) == _without_measurements(golden.read_text())


@pytest.mark.parametrize("emit", ["keras", "torch"])
@pytest.mark.parametrize("setup", ["phases", "bigru", "keras2", "workflow", "handcarry", "tensorflow", "jax"])
def test_snippet_is_unchanged(setup, emit, update_golden):
    words = SETUPS[setup].split()
    result = CliRunner().invoke(main, words + ["--emit", emit], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    golden = GOLDEN / f"{setup}.emit-{emit}.py"
    if update_golden:
        golden.write_text(result.stdout)
    assert result.stdout == golden.read_text()
