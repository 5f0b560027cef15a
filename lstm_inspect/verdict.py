"""The report's sentences: the verdict for a setup and the warnings worth giving it.

Judged from the spec and the checked run's counts; settings are named through `Terms`, so
the command line can have its own flags named instead of Spec's fields.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING

from .schedule import KerasError, Step, broadcast_phases, facts_for, keeps_state
from .spec import KerasVersion, Phase, ResetKind, Spec, Terms

if TYPE_CHECKING:
    from .inspection import Summary


def warnings_for(spec: Spec, terms: Terms = Terms()) -> list[str]:
    """Setups that run in Keras without a word but rarely do what their author meant."""
    found = _version_warning(spec)
    if not spec.stateful:
        return found
    if not facts_for(spec).carries:
        return [*found, f"{stateful_does_nothing(spec)}: every call starts from zeros, as if the layer were "
                        "stateless, whatever the callbacks reset; to carry the state, use the torch or "
                        "TensorFlow backend, or carry it by hand (return_state=True, then initial_state=...)"]
    broadcast = broadcast_phases(spec)
    if broadcast:
        rows = (f", and predict returns {spec.batch_size:,} rows for it" if Phase.PREDICT in broadcast else "")
        found.append(f"{facts_for(spec).name} does not raise for a stateful batch of one sample "
                     f"({' and '.join(broadcast)}): in a compiled step (Keras's default) it broadcasts that "
                     f"sample into all {spec.batch_size:,} slots, so each slot runs it from its own state and "
                     f"every slot's state is overwritten{rows}: garbage; make every batch hold exactly "
                     f"{spec.batch_size:,} samples")
    if _shuffle_mixes_slots(spec):
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


def _shuffle_mixes_slots(spec: Spec) -> bool:
    """Whether shuffling hands a slot's state to an unrelated sample: it does where one training
    batch carries into the next. A carry into validation or predict, or across an epoch through
    validation, joins unrelated samples whatever the shuffle."""
    if not (spec.shuffle and keeps_state(spec)):
        return False
    batches = spec.batches_per_epoch
    resets_every_batch = spec.reset.kind == ResetKind.EVERY and spec.reset.every == 1
    across_epochs = spec.epochs > 1 and spec.reset.kind == ResetKind.NEVER and not spec.val_samples
    return (batches > 1 and not resets_every_batch) or across_epochs


def _version_warning(spec: Spec) -> list[str]:
    """Keras installed in another version than the facts were measured on: they may differ."""
    facts = facts_for(spec)
    package = "tf_keras" if spec.keras == KerasVersion.TWO else "keras"
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return []
    if installed == facts.keras_version:
        return []
    return [f"the facts for {facts.name} were measured on {facts.measured_on}; you have {package} "
            f"{installed}, where they may have changed (check with --against keras)"]


def stateful_does_nothing(spec: Spec) -> str:
    """Why a stateful layer on this backend carries nothing (for a backend whose facts say so)."""
    facts = facts_for(spec)
    return (f"stateful=True does nothing inside fit, evaluate or predict on the {facts.backend} backend "
            f"in Keras {facts.keras_version}")


def verdict(spec: Spec, summary: Summary, error: KerasError | None) -> str:
    """The answer for this setup, in one or two plain sentences (three with an error)."""
    batches = spec.batches_per_epoch
    name = facts_for(spec).name
    if spec.stateful and not facts_for(spec).carries:
        text = (f"{name}, stateful {spec.layer_name}: {stateful_does_nothing(spec)}. Every slot of every call starts "
                "from zeros, as in a stateless layer; nothing passes between batches, epochs, validation "
                "or predict, and a reset changes nothing. To carry the state: the torch or TensorFlow "
                "backend, or states passed by hand.")
        if error:
            text += (f" Keras still raises {error.type} at step {error.step}: a stateful layer needs every "
                     f"batch to hold exactly {spec.batch_size:,} samples.")
        return text
    if not spec.stateful:
        other_phases = [name for name, count in (("validation", spec.val_samples),
                                                 ("predict", spec.predict_samples)) if count]
        text = (f"{name}, stateless {spec.layer_name}: states are reset after every batch, "
                f"{_times(batches)} per epoch; each batch holds up to "
                f"{plural(spec.batch_size, 'independent state')}, one per sequence, so every one of the "
                f"{spec.samples:,} sequences starts from zeros and nothing passes between sequences.")
        if other_phases:
            text += f" {' and '.join(other_phases).capitalize()} batches start from zeros too."
        return text
    text = (f"{name}, stateful {spec.layer_name}: Keras never resets the state inside fit, "
            f"validation or predict; slot i of each batch starts from the final state of slot i of the previous "
            f"call, so sample j+{spec.batch_size:,} continues sample j ")
    if spec.batch_size == 1:
        text += "(one slot, one stream): each batch's only sample continues the previous batch's."
    else:
        text += f"({spec.batch_size:,} parallel streams), not the last sample of the previous batch."
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
    if _shuffle_mixes_slots(spec):
        text += " Shuffle is on, so a slot carries its state into an unrelated sample."
    broadcast = broadcast_phases(spec)
    if broadcast:
        rows = f", and predict returns {spec.batch_size:,} rows for it" if Phase.PREDICT in broadcast else ""
        text += (f" Keras does not raise for a batch of one sample here: it runs that sample in all "
                 f"{spec.batch_size:,} slots, overwriting every slot's state with garbage{rows}.")
    if error:
        text += (f" But Keras raises {error.type} at step {error.step}: a stateful layer needs every "
                 f"batch to hold exactly {spec.batch_size:,} samples.")
    return text
