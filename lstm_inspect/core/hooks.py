"""Which of Keras's callback hooks run before a layer call, and so where the user's reset
callback zeroes the state. Written once: the schedule predicts with it, the mirror's loop calls
its callback through it; real Keras (the oracle) calls its hooks itself."""

from __future__ import annotations

from .choices import Hook, Phase, ResetPolicy
from .workflow import CALLS, Kind


def hooks_before(kind: Kind, phase: Phase, batch: int) -> tuple[Hook, ...]:
    """The hooks Keras calls before batch `batch` of a call of `kind` (in `phase`), in order: fit
    calls on_epoch_begin before an epoch's batch 0 and on_train_batch_begin before every batch;
    its validation and evaluate call on_test_begin, predict on_predict_begin, before their batch 0.
    The *_on_batch calls take no callbacks."""
    if not CALLS[kind].callbacks:
        return ()
    if phase == Phase.TRAIN:
        return (Hook.EPOCH_BEGIN, Hook.TRAIN_BATCH_BEGIN) if batch == 0 else (Hook.TRAIN_BATCH_BEGIN,)
    if batch:
        return ()
    return (Hook.PREDICT_BEGIN,) if phase == Phase.PREDICT else (Hook.TEST_BEGIN,)


def resets_before(policy: ResetPolicy, kind: Kind, phase: Phase, batch: int) -> bool:
    """Whether the user's reset callback zeroes the state before this layer call."""
    if not policy:  # asked before every layer call: most setups reset nowhere
        return False
    return any(policy.resets_in(hook, batch) for hook in hooks_before(kind, phase, batch))
