"""The library's entry: `inspect(spec)`, a checked run of a setup, optionally put beside real
Keras. It sits above the run (`check`) and the oracle (`keras.oracle`), which it composes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .check.inspection import Inspection
from .core.spec import Spec
from .core.words import Terms

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
    if dry_run and (against_keras or max_steps is not None):
        raise ValueError("a dry run observes nothing: no max_steps or Keras comparison")
    keras = None
    if against_keras:
        from .keras.oracle.compare import compare_with_keras  # real Keras, in a process of its own

        keras = compare_with_keras(spec)
    return Inspection(spec, dry_run=dry_run, device=device, evidence=evidence and not dry_run,
                      evidence_batch=evidence_batch, max_steps=max_steps, keras=keras, terms=terms,
                      advice=advice, data=data)
