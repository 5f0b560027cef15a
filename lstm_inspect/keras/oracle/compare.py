"""Real Keras against the schedule and the mirror: the setup run through both, then compared
(`lstm_inspect.check.against`)."""

from __future__ import annotations

from ...check.against import KerasComparison, compare
from ...core.spec import Spec
from .process import run_keras_isolated, runs_here
from .session import run_keras


def compare_with_keras(spec: Spec) -> KerasComparison:
    """Run the setup through real Keras and through the mirror, and compare every call Keras
    completed with the schedule's step and the mirror's call of the same index."""
    from ...mirror.run import mirror_records

    (observed,) = [run_keras(spec)] if runs_here(spec) else run_keras_isolated([spec])
    return compare(spec, observed, mirror_records(spec))
