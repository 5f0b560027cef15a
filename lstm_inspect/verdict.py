"""The report's sentences: the verdict for a setup and the warnings worth giving it.

Judged from the spec and the checked run's counts; settings are named through `Terms`, so
the command line can have its own flags named instead of Spec's fields.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .schedule import KerasError, Step
from .spec import KerasVersion, ResetKind, Spec, Terms

if TYPE_CHECKING:
    from .inspection import Summary


def warnings_for(spec: Spec, terms: Terms = Terms()) -> list[str]:
    """Setups that run in Keras without a word but rarely do what their author meant."""
    if not spec.stateful:
        return []
    found = []
    if spec.shuffle and spec.carries:
        found.append("shuffle is on with a stateful layer: Keras still carries state slot by slot, "
                     f"so each slot continues an unrelated sample; use {terms.setting('shuffle', False)}, "
                     "as the layer's docs ask")
    if spec.epochs > 1 and spec.reset.kind == ResetKind.NEVER:
        found.append("states are carried across epochs: nothing resets them at an epoch boundary; "
                     f"use {terms.setting('reset', 'epoch')} (a callback resetting the RNN layers in on_epoch_begin)")
    if spec.bidirectional:
        found.append("stateful Bidirectional: the backward direction carries the state it had at the "
                     "previous batch's first timestep, so consecutive batches are not one long "
                     "bidirectional sequence (see the continuation evidence)")
    if spec.val_samples:
        found.append("validation runs through the training state: it starts from the state training "
                     "left and leaves its own state for what comes next")
    if spec.predict_samples:
        found.append("predict starts from the state fit left: reset the layer before predict "
                     "if its sequences do not continue the training data")
    return found


def slot_counts(step: Step) -> list[str]:
    """How a step's slots start, e.g. ["reset x200"] or ["carried x4"]."""
    return ([f"reset x{step.zero_slots:,}"] if step.zero_slots else []) + (
        [f"carried x{step.carried_slots:,}"] if step.carried_slots else [])


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count:,} times")


def _version(spec: Spec) -> str:
    return "Keras 3" if spec.keras == KerasVersion.THREE else "Keras 2 (tf-keras)"


def verdict(spec: Spec, summary: Summary, error: KerasError | None) -> str:
    """The answer for this setup, in one or two plain sentences (three with an error)."""
    batches = math.ceil(spec.samples / spec.batch_size)
    if not spec.stateful:
        other_phases = [name for name, count in (("validation", spec.val_samples),
                                                 ("predict", spec.predict_samples)) if count]
        text = (f"{_version(spec)}, stateless {spec.layer_name}: states are reset after every batch, "
                f"{_times(batches)} per epoch; each batch holds up to {spec.batch_size:,} independent "
                f"states, one per sequence, so every one of the {spec.samples:,} sequences starts "
                "from zeros and nothing passes between sequences.")
        if other_phases:
            text += f" {' and '.join(other_phases).capitalize()} batches start from zeros too."
        return text
    text = (f"{_version(spec)}, stateful {spec.layer_name}: Keras never resets the state inside fit, "
            f"validation or predict; slot i of each batch starts from the final state of slot i of the previous "
            f"call, so sample j+{spec.batch_size:,} continues sample j ({spec.batch_size:,} parallel "
            "streams), "
            "not the last sample of the previous batch.")
    if spec.reset.kind == ResetKind.NEVER:
        text += " Nothing resets it here: each slot's state runs on through every phase."
    elif spec.reset.kind == ResetKind.EPOCH:
        text += (" Your callback zeroes all slots before each epoch's first batch, so each slot "
                 f"carries through the epoch's {plural(batches, 'training batch', 'training batches')}.")
    else:
        text += (f" Your callback zeroes all slots before every training batch whose index is a "
                 f"multiple of {spec.reset.every}, so each slot carries through at most "
                 f"{plural(spec.reset.every, 'training batch', 'training batches')}.")
    if spec.layers > 1:
        text += f" Each of the {spec.layers} layers keeps its own state per slot, reset and carried together."
    if spec.bidirectional:
        text += (" Both directions carry, but the backward one carries the state it had at the previous "
                 "batch's first timestep: this is not one long bidirectional pass.")
    if spec.shuffle and spec.carries:
        text += " Shuffle is on, so a slot carries its state into an unrelated sample."
    if error:
        text += (f" But Keras raises {error.type} at step {error.step}: a stateful layer needs every "
                 f"batch to hold exactly {spec.batch_size:,} samples.")
    return text
