"""Regenerate the example outputs in README.md from the real command (`make readme`).

Each example sits between `<!-- example: ARGS -->` and `<!-- /example -->`; its block is
replaced by what `lstm-inspect ARGS` prints at a fixed width without colour. With --check,
nothing is written and the exit code says whether the README is current.
"""

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"(<!-- example: (?P<args>.*?) -->\n)(?P<body>.*?)(<!-- /example -->)", re.S)
# The examples describe Keras 3 on torch, whatever backend this machine's Keras would pick.
ENVIRONMENT = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb", "KERAS_BACKEND": "torch"}


def render(args: str) -> str:
    command = [str(Path(sys.executable).parent / "lstm-inspect"), *shlex.split(args)]
    output = subprocess.run(command, capture_output=True, text=True, env=ENVIRONMENT).stdout
    return f"```text\n$ lstm-inspect {args}\n{output}```\n"


# The diagrams the README shows, drawn by the command: file, arguments.
DIAGRAMS = {README.parent / "docs" / "state-flow.svg": "--shape 12,5,1 --batch 4 --stateful --no-shuffle --epochs 2 "
                                                      "--predict-samples 4 --no-evidence"}


def drawn(args: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "diagram.svg"
        command = [str(Path(sys.executable).parent / "lstm-inspect"), *shlex.split(args), "--diagram", str(path)]
        subprocess.run(command, capture_output=True, text=True, env=ENVIRONMENT, check=False)
        return path.read_text()


def updated(text: str) -> str:
    return EXAMPLE.sub(lambda match: match.group(1) + render(match.group("args")) + match.group(4), text)


def _without_measurements(text: str) -> str:
    # Measured floats may differ in their last digit between CPUs; the rest must match.
    return re.sub(r"\d+\.\d+(e[-+]\d+)?|\de[-+]\d+", "#", text)


def main() -> int:
    current = README.read_text()
    fresh = updated(current)
    diagrams = {path: drawn(args) for path, args in DIAGRAMS.items()}
    if "--check" in sys.argv[1:]:
        stale = [path.name for path, text in diagrams.items() if not path.exists() or path.read_text() != text]
        if _without_measurements(fresh) != _without_measurements(current) or stale:
            print("README.md examples (or its diagrams) are stale: run `make readme`", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    for path, text in diagrams.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
