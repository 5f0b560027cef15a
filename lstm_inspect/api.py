"""The library's entry: `inspect(spec)`, a checked run of a setup, optionally put beside real
Keras. It sits above the run (`check`) and the oracle (`keras.oracle`), which it composes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .check.inspection import Inspection
from .core.spec import Spec
from .core.words import Terms
from .views import notebook  # noqa: F401  (a report shows itself in notebooks and rich consoles)

if TYPE_CHECKING:
    from .data.datafile import Continuity


def inspect(spec: Spec, *, dry_run: bool = False, device: str = "cpu", evidence: bool = True,
            evidence_batch: int = 0, max_steps: int | None = None, against_keras: bool = False,
            terms: Terms = Terms(), advice: bool = True, data: Continuity | None = None) -> Inspection:
    """Keras's steps for `spec`, each checked on the PyTorch mirror's tensors (or, with
    `dry_run`, predicted only); `evidence` measures the evidence and judges the claims
    (ignored on a dry run); `against_keras` first runs the setup through the installed Keras 3
    (the `keras` extra) and puts it beside the mirror; `advice` adds how to write the setup and
    lay out its data (`data`: what `layout.continuity` found in the user's rows). Streams: see
    `Inspection`."""
    _check_arguments(spec, device, evidence_batch, max_steps)
    if dry_run and (against_keras or max_steps is not None):
        raise ValueError("a dry run observes nothing: no max_steps or Keras comparison")
    keras = None
    if against_keras:
        from .keras.oracle.compare import compare_with_keras  # real Keras, in a process of its own

        keras = compare_with_keras(spec)
    return Inspection(spec, dry_run=dry_run, device=device, evidence=evidence and not dry_run,
                      evidence_batch=evidence_batch, max_steps=max_steps, keras=keras, terms=terms,
                      advice=advice, data=data)


DEVICES = ("auto", "cpu", "cuda")


def _check_arguments(spec: Spec, device: str, evidence_batch: int, max_steps: int | None) -> None:
    """What the command line refuses, refused here too, before any work: a TypeError or a
    ValueError naming the argument."""
    if not isinstance(spec, Spec):
        raise TypeError(f"spec must be a Spec (lstm_inspect.Spec(samples, timesteps, features, ...)), got "
                        f"{type(spec).__name__}")
    if device not in DEVICES:
        raise ValueError(f"device is one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cuda":
        from .mirror.run import cuda_available  # torch: only when the caller names CUDA

        if not cuda_available():
            raise ValueError("device='cuda', but CUDA is not available here: use 'cpu' or 'auto'")
    if not _whole(evidence_batch, 0):
        raise ValueError(f"evidence_batch must be a whole number of at least 0, got {evidence_batch!r}")
    if max_steps is not None and not _whole(max_steps, 1):
        raise ValueError(f"max_steps must be a whole number of at least 1, got {max_steps!r}")


def _whole(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least
