"""Real Keras in a process of its own per Keras and backend: Keras reads its backend once per
process. `python -m lstm_inspect.keras.oracle FILE` serves the requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ...check.against import KerasRun
from ...core.choices import Backend, KerasVersion
from ...core.spec import Spec
from .errors import OracleError
from .model import split_cpu
from .session import run_keras


def run_keras_isolated(specs: list[Spec]) -> list[KerasRun]:
    """`run_keras` for each spec, in a fresh process per Keras and backend: Keras reads its
    backend once per process, so each runs where KERAS_BACKEND names it."""
    runs: dict[int, KerasRun] = {}
    groups: dict[tuple[KerasVersion, Backend, int], list[int]] = {}
    for index, spec in enumerate(specs):
        # A process splits its CPU into the replicas' devices before TensorFlow starts: once.
        groups.setdefault((spec.keras, spec.backend, spec.replicas), []).append(index)
    for (keras, backend, _), indices in groups.items():
        # oneDNN's operations on, as TensorFlow has them by default on some CPUs only: without them
        # its CPU refuses a channels_first convolution (the warning for such a setup says so).
        environ = {"TF_ENABLE_ONEDNN_OPTS": "1", **os.environ, "KERAS_BACKEND": str(backend),
                   "TF_CPP_MIN_LOG_LEVEL": "3"}
        request = json.dumps([specs[index].to_json() for index in indices])
        # The runs come back in a file of their own: whatever Keras prints cannot mix with them.
        with tempfile.TemporaryDirectory(prefix="lstm-inspect-") as folder:
            answer = Path(folder) / "runs.json"
            done = subprocess.run([sys.executable, "-m", "lstm_inspect.keras.oracle", str(answer)], input=request,
                                  capture_output=True, text=True, env=environ)
            if done.returncode != 0 or not answer.exists():
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise OracleError(f"Keras {keras} on {backend} could not run: {last}")
            items = json.loads(answer.read_text())
        for index, item in zip(indices, items):
            runs[index] = KerasRun.from_json(item)
    return [runs[index] for index in range(len(specs))]




def runs_here(spec: Spec) -> bool:
    """Whether this process already holds the Keras `spec` describes (no new process needed)."""
    keras = sys.modules.get("keras")
    return (spec.keras == KerasVersion.THREE and spec.replicas == 1 and keras is not None
            and hasattr(keras, "backend") and keras.backend.backend() == spec.backend)


def serve(answer: str) -> None:
    """`python -m lstm_inspect.keras.oracle FILE`: run the specs on stdin (JSON), write their runs to FILE."""
    specs = [Spec.from_json(fields) for fields in json.load(sys.stdin)]
    split_cpu(max((spec.replicas for spec in specs), default=1))
    runs = [run_keras(spec).to_json() for spec in specs]
    Path(answer).write_text(json.dumps(runs))
