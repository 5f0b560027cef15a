"""Usage errors that depend on more than one option or on this machine, found before any work:
export paths, bounds on the work, memory, CUDA, the Keras --against keras needs."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from typing import Any

import click

from ..core.choices import Backend, KerasVersion
from ..core.facts import facts_for
from ..core.spec import Spec
from ..core.words import plural
from ..data.memory import VIRTUAL_ALLOWANCE, estimate, rooms
from ..views.files import check_writable
from .options import (
    MAX_LAYERS,
    MAX_STEPS,
    ViewName,
)


def check_before_running(spec: Spec, params: dict[str, Any]) -> None:
    """Usage errors that depend on more than one option or on this machine, found before any work."""
    exports = [option for option in ("svg", "html", "diagram") if params.get(option)]
    for first, second in zip(exports, exports[1:]):
        if os.path.abspath(params[first]) == os.path.abspath(params[second]):
            raise click.UsageError(f"--{first} and --{second} name the same file: one would overwrite the other")
    for option in ("svg", "html", "diagram"):
        if params[option] == "":
            raise click.BadParameter("an empty path names no file", param_hint=f"'--{option}'")
        problem = params[option] and check_writable(params[option], (params.get("data"), params.get("replay")))
        if problem:
            raise click.BadParameter(problem, param_hint=f"'--{option}'")
    if spec.calls > MAX_STEPS:
        raise click.UsageError(f"the schedule has {spec.calls:,} steps; lstm-inspect follows at most {MAX_STEPS:,} "
                               "(fewer epochs or larger batches)")
    if spec.layers > MAX_LAYERS:
        raise click.BadParameter(f"at most {MAX_LAYERS} stacked layers", param_hint="'--layers'")
    check_memory(spec, params)
    if params["dry_run"]:
        return
    if params["device"] == "cuda" and not _cuda_available():
        raise click.BadParameter("CUDA is not available here: use --device cpu or auto", param_hint="'--device'")
    batches = spec.batches_per_epoch
    if params["evidence_batch"] >= batches:
        raise click.BadParameter(f"epoch 0 has {plural(batches, 'training batch', 'training batches')}"
                                 f" (0 to {batches - 1})", param_hint="'--evidence-batch'")


# What to do about the part of the estimate that weighs most.
MEMORY_FIXES = {"start-up": "a machine with more memory", "the training order": "a smaller N",
                "the weights": "fewer --units or --layers", "a call's samples": "calls of fewer samples",
                "the timeline's columns": "--view table", "one batch": "a smaller --batch, or --dry-run for the "
                "schedule alone", "the state": "a smaller --batch", "the evidence": "--no-evidence",
                "real Keras": "a smaller N for --against keras"}


def check_memory(spec: Spec, params: dict[str, Any]) -> None:
    """Refuse, before any work, what this process may not hold, rather than be killed: the
    estimate (memory.estimate) against the room each limit leaves (memory.rooms)."""
    dry_run = params["dry_run"]
    parts = estimate(spec, dry_run=dry_run, evidence=params["evidence"] and not dry_run,
                     against_keras=params["against"] is not None, timeline=params["view"] == ViewName.TIMELINE)
    for room in rooms():
        needed = sum(parts.values()) + (VIRTUAL_ALLOWANCE if room.virtual and not dry_run else 0)
        if needed > room.bytes:
            largest = max(parts, key=lambda part: parts[part])
            what = f"the training order of {spec.samples:,} samples" if largest == "the training order" else largest
            raise click.UsageError(f"this needs about {needed / 2**30:,.1f} GiB, most of it for {what}, more than "
                                   f"the {room.bytes / 2**30:,.1f} GiB that {room.source} leaves: use "
                                   f"{MEMORY_FIXES[largest]}")


def _cuda_available() -> bool:
    from ..mirror.run import cuda_available  # torch loads only when the user names CUDA

    return cuda_available()


# What --against keras needs installed, per Keras and backend: (modules, the command that brings them).
# tf-keras asks for the full `tensorflow`, whose module tensorflow-cpu already provides: it goes in
# without its dependencies, as make test installs it.
TF_KERAS_INSTALL = "pip install 'lstm-inspect[tensorflow]' && pip install --no-deps 'tf-keras>=2.16'"
ORACLE_NEEDS = {
    (KerasVersion.THREE, Backend.TORCH): (("keras", "torch"), "pip install 'lstm-inspect[keras]'"),
    (KerasVersion.THREE, Backend.TENSORFLOW): (("keras", "tensorflow"), "pip install 'lstm-inspect[tensorflow]'"),
    (KerasVersion.THREE, Backend.JAX): (("keras", "jax"), "pip install 'lstm-inspect[jax]'"),
    (KerasVersion.TWO, Backend.TENSORFLOW): (("tf_keras", "tensorflow"), TF_KERAS_INSTALL),
}


def check_keras(spec: Spec) -> None:
    """--against keras: usage errors for a Keras that cannot serve as the oracle, found
    without importing it (it runs in a process of its own)."""
    modules, install = ORACLE_NEEDS[spec.keras, spec.backend]
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    name = facts_for(spec).name
    if missing:
        raise click.UsageError(f"--against keras needs {' and '.join(missing)} for {name}: "
                               f"{install}")
    if spec.keras == KerasVersion.THREE:
        try:
            installed: str | None = importlib.metadata.version("keras")
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or not installed.startswith("3."):
            found = f" (found Keras {installed})" if installed else ""
            raise click.UsageError(f"--against keras needs Keras 3{found}: pip install 'lstm-inspect[keras]'")
