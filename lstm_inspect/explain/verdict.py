"""The report's sentences: the verdict for a setup and the warnings worth giving it.

Judged from the spec and the checked run's counts; settings are named through `Terms`, so
the command line can have its own flags named instead of Spec's fields.
"""

from __future__ import annotations

import importlib.metadata
import math
import re
from typing import Any

from ..core.backwards import padding_runs_first, padding_runs_last, stacked_backwards
from ..core.choices import Backend, KerasVersion, Phase, ResetKind
from ..core.facts import KerasError, broadcast_phases, facts_for, given_states_win, keeps_state
from ..core.lengths import describe_layout, frames_caveat
from ..core.replicas import replica_sentence
from ..core.schedule import Step
from ..core.spec import Spec
from ..core.words import Terms, plural
from ..core.workflow import Kind, Op, Source, distinct, stateful_kinds


def warnings_for(spec: Spec, terms: Terms = Terms()) -> list[str]:
    """Setups that run in Keras without a word but rarely do what their author meant."""
    found = _version_warning(spec)
    if spec.data_mask is not None and not spec.data_mask.layout.padded:
        found.append(f"--mask-value: {describe_layout(spec.data_mask, spec.timesteps)} (is {spec.mask_value!r} the "
                     "value your padding holds?)")
    if stacked_backwards(spec):
        found.append("stacked go_backwards layers do not all run backwards: each flips its input again, so the second "
                     "runs over the first's outputs in the input's own time order (to run every layer backwards, "
                     "flip the input once, x[:, ::-1], and leave go_backwards off)"
                     + ("; and each is given the mask unflipped, so above the first layer it masks other steps "
                        "than the padding" if spec.padded and spec.mask else ""))
    if not spec.stateful:
        return found + _build_warnings(spec)  # a twin may be built stateful
    if not facts_for(spec).carries:
        eager = (" (only a direct call, model(x), runs eagerly and carries it)"
                 if spec.backend == Backend.JAX else "")
        return [*found, f"{stateful_does_nothing(spec)}: every call starts from zeros, as if the layer were "
                        f"stateless, whatever the callbacks reset{eager}; to carry the state, use the torch or "
                        "TensorFlow backend, or carry it by hand (return_state=True, then initial_state=...)"]
    broadcast = broadcast_phases(spec)
    if broadcast:
        found.append(_broadcast_warning(spec, " and ".join(broadcast), Phase.PREDICT in broadcast))
    if _shuffle_mixes_slots(spec):
        found.append("shuffle is on with a stateful layer: Keras still carries state slot by slot, "
                     f"so each slot continues an unrelated sample; use {terms.setting('shuffle', False)}, "
                     f"as the layer's docs ask{_pydataset_shuffle_note(spec)}")
    if any(op.epochs - op.initial_epoch > 1 for op in _fits(spec)) and spec.reset.kind == ResetKind.NEVER:
        found.append("states are carried across epochs: nothing resets them at an epoch boundary; "
                     f"use {terms.setting('reset', 'epoch')} (a callback resetting the RNN layers in on_epoch_begin)")
    if spec.takes_states and facts_for(spec).carry_beats_given_states:
        found.append("tf-keras ignores the initial states a stateful layer is given (initial_state=) once its own "
                     "are not all zeros: only its first call and the first after each reset_state() start from "
                     "them; reset_states() before a call that must start from given states, or use a stateless "
                     "layer")
    if spec.go_backwards:
        found.append("stateful go_backwards: each call carries the state after its x[:, 0] into the next call's "
                     "x[:, -1], so batches in time order are not one backward pass over the series; feed the chunks "
                     "last first (see the continuation evidence)")
    if spec.bidirectional:
        found.append("stateful Bidirectional: the backward direction carries the state it had at the "
                     "previous batch's first timestep, so consecutive batches are not one long "
                     "bidirectional sequence (see the continuation evidence)")
    found += _validation_warning(spec, terms)
    found += _build_warnings(spec)
    if spec.workflow is None and spec.predict_samples:
        found.append("predict starts from the state fit left: reset the layer before predict "
                     "if its sequences do not continue the training data")
    return found


def _validation_warning(spec: Spec, terms: Terms) -> list[str]:
    """A fit's validation runs through the training state, unless the callback resets around it."""
    if not any(op.validation_samples or op.validation_split for op in _fits(spec)):
        return []
    if not spec.reset.validation:
        return ["validation runs through the training state: it starts from the state training "
                "left and leaves its own state for what comes next"]
    if spec.reset.kind == ResetKind.NEVER:
        return ["your callback resets before validation, but validation leaves its own state: the "
                "next epoch's training starts from it; reset in on_epoch_begin too "
                f"({terms.setting('reset', 'epoch,validation')})"]
    return []


def _broadcast_warning(spec: Spec, where: str, predict: bool) -> str:
    # A workflow's twins may hold another number of slots than --batch.
    slots, size = ((f"all {spec.batch_size:,} slots", f"{spec.batch_size:,} samples") if spec.workflow is None
                   else ("every slot of the state", "the batch size the model was built for"))
    rows = f", and predict returns {spec.batch_size:,} rows for it" if predict and spec.workflow is None else (
        ", and predict returns a row per slot for it" if predict else "")
    return (f"{facts_for(spec).name} does not raise for a stateful batch of one sample ({where}): in a compiled "
            f"step (Keras's default) it broadcasts that sample into {slots}, so each slot runs it from its own "
            f"state and every slot's state is overwritten{rows}: garbage; make every batch hold exactly {size}")


def _build_warnings(spec: Spec) -> list[str]:
    """What the layer as Keras builds it cannot run, stateful or not."""
    return _cudnn_warning(spec) + _cpu_layout_warning(spec)


def _cudnn_warning(spec: Spec) -> list[str]:
    """A stateful LSTM or GRU trained where use_cudnn="auto" breaks its backward (keras-team/keras#20875)."""
    kinds = {op.kind for op in distinct(spec.plan)}
    trained = stateful_kinds(spec.plan, spec.stateful)[0] & {Kind.FIT, Kind.TRAIN_ON_BATCH}
    if not (facts_for(spec).cudnn_breaks_stateful_training and trained and spec.cell.cudnn):
        return []
    name = spec.cell.keras_name
    loaded = (": it is not saved, so set rnn.use_cudnn = False again on each layer keras.models.load_model "
              "returns" if Kind.SAVE_AND_LOAD in kinds else "")
    return [f"{facts_for(spec).name} cannot train a stateful {name} with use_cudnn=\"auto\" (its default): fit and "
            "train_on_batch raise RuntimeError in the first batch's backward (a variable needed for gradient "
            "computation has been modified by an inplace operation), on the CPU too, while predict runs; build "
            f"it with {name}(..., stateful=True, use_cudnn=False), as this tool's models are{loaded}"]


def _cpu_layout_warning(spec: Spec) -> list[str]:
    """TensorFlow's own CPU convolutions take NHWC only; oneDNN's take channels_first too, and
    TensorFlow turns them on by default on some CPUs only (measured: off on an AMD EPYC without AVX-512)."""
    if not (spec.backend == Backend.TENSORFLOW and spec.cell.convolutional and spec.data_format == "channels_first"):
        return []
    return [f"{facts_for(spec).name} runs a channels_first ConvLSTM2D on the CPU only with oneDNN's operations on "
            "(TF_ENABLE_ONEDNN_OPTS=1; TensorFlow turns them on by default only on CPUs with neural-network "
            "instructions such as AVX-512 VNNI): without them its first call raises InvalidArgumentError (The Conv2D "
            "op currently only supports the NHWC tensor format on the CPU); set TF_ENABLE_ONEDNN_OPTS=1, run on a "
            "GPU, or use data_format=\"channels_last\""]


def _fits(spec: Spec) -> list[Op]:
    return [op for op in distinct(spec.plan) if op.kind == Kind.FIT]


_NUMBERS = re.compile(r"#\d+| e\d+")


def _passes(segment: str) -> str:
    """The kind of call a segment belongs to: "predict#3" and "twin train#2 e4" read "predict"
    and "twin train"."""
    return _NUMBERS.sub("", segment)


class Passes:
    """How each call of a workflow began (its first layer call), gathered as the steps stream
    past: per kind of call and outcome, how often, and the first such call."""

    def __init__(self) -> None:
        self.outcomes: dict[tuple[str, str], list[Any]] = {}  # (kind, outcome) -> [count, first label]
        self.broadcast: list[str] = []  # the first calls where TensorFlow broadcast a lone sample
        self.predict_broadcast = False
        self._segment = ""
        self._kind = ""  # the kind of call of `_segment`, where the next call carries from

    def add(self, step: Step) -> None:
        if step.call.broadcast:
            self.predict_broadcast |= step.call.phase == Phase.PREDICT
            if len(self.broadcast) < 4:
                self.broadcast.append(step.call.label)
        segment = step.call.segment
        if segment == self._segment:
            return
        # Most calls carry from the call just before: its kind, known already.
        before = self._kind if step.source is not None and step.source.segment == self._segment else None
        self._segment, self._kind = segment, _passes(segment)
        if step.raises:
            outcome = "raises"
        elif step.carried_slots and step.source is not None:
            # Some slots from zeros beside carried ones: a reset_state(slots=...) before it.
            outcome = ("carries part:" if step.zero_slots else "carries:") + (before or _passes(step.source.segment))
        else:
            outcome = "zeros"
        found = self.outcomes.setdefault((self._kind, outcome), [0, step.call.label])
        found[0] += 1

    def carried(self, kind: str, source: str) -> int:
        """How many calls of `kind` began from the state a `source` call left."""
        return sum(int(self.outcomes.get((kind, how + source), [0])[0]) for how in ("carries:", "carries part:"))

    def sentences(self, spec: Spec) -> list[str]:
        """Call by call, e.g. "predict#2 and 3 more predict calls start from the state predict left"."""
        said = []
        for (kind, outcome), (count, first) in self.outcomes.items():
            if outcome == "raises":
                continue
            calls = first if count == 1 else f"{first} and {plural(count - 1, 'more ' + kind + ' call')}"
            if outcome == "zeros":
                why = _why_zeros(spec, kind)
                said.append(f"{calls} {'starts' if count == 1 else 'start'} from zeros{why}")
            else:
                source = outcome.partition(":")[2]
                if source == kind:
                    left = "the previous epoch left" if kind.endswith("train") else f"the {kind} call before it left"
                else:
                    left = f"{_SOURCE.get(source, source)} left"
                part = ", in the slots reset_state(slots=...) left, the others from zeros" * outcome.startswith(
                    "carries part")
                said.append(f"{calls} {'carries' if count == 1 else 'carry'} the state {left}{part}")
        return said


_SOURCE = {"train": "training", "twin train": "the twin's training", "loaded train": "the loaded model's training"}


def _why_zeros(spec: Spec, kind: str) -> str:
    if kind.startswith("twin"):
        return " (a twin is a new model: set_weights copies the weights, never the states)"
    if kind.startswith("loaded"):
        return " (model.save() keeps the weights, not the states: a loaded model starts from zeros)"
    return ""


def workflow_warnings(spec: Spec, passes: Passes, terms: Terms = Terms()) -> list[str]:
    """What only a run of the workflow shows: requests that carry one another's state."""
    found = []
    if passes.broadcast and spec.workflow is not None:
        found.append(_broadcast_warning(spec, ", ".join(passes.broadcast), passes.predict_broadcast))
    for kind in ("predict", "predict_on_batch"):
        carried = passes.carried(kind, kind)
        if carried and spec.any_stateful:
            # predict_on_batch runs no callback: only a reset_state() between calls resets it.
            hook = f"{terms.setting('reset', 'predict')}, or " if kind == "predict" else ""
            found.append(f"each {kind} call carries the state the {kind} before it left "
                         f"({plural(carried, 'time')}): as a serving loop, each request continues the previous "
                         f"request, and the same input gives another answer each time; reset before each request "
                         f"({hook}reset_state() between calls), or use a stateless layer")
    after_fit = sum(passes.carried(kind, source) for kind in ("predict", "predict_on_batch")
                    for source in ("train", "validation"))
    if after_fit and spec.any_stateful and spec.workflow is not None:  # else said before the run
        found.append("predict starts from the state fit left: reset the layer before predict "
                     "if its sequences do not continue the training data")
    return found


def slot_counts(step: Step) -> list[str]:
    """How a step's slots start, e.g. ["reset x200"] or ["carried x4"]."""
    zeros = "zeros given" if step.given else "reset"
    return ([f"{zeros} x{step.zero_slots:,}"] if step.zero_slots else []) + (
        [f"carried x{step.carried_slots:,}"] if step.carried_slots else []) + (
        [f"other x{step.other_slots:,}"] if step.other_slots else [])


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count:,} times")


def _shuffle_mixes_slots(spec: Spec) -> bool:
    """Whether shuffling hands a slot's state to an unrelated sample: it does where one training
    batch carries into the next. A carry into validation or predict, or across an epoch through
    validation, joins unrelated samples whatever the shuffle."""
    if not keeps_state(spec):
        return False
    resets_every_batch = spec.reset.kind == ResetKind.EVERY and spec.reset.every == 1
    for op in _fits(spec):
        shuffled = op.fit_shuffle(spec.shuffle)
        batches = math.ceil(spec.fit_split(op) / (op.batch_size or spec.batch_size))
        validated = op.validation_samples or op.validation_split
        across_epochs = op.epochs - op.initial_epoch > 1 and spec.reset.kind == ResetKind.NEVER and not validated
        if shuffled and ((batches > 1 and not resets_every_batch) or across_epochs):
            return True
    return False


def _pydataset_shuffle_note(spec: Spec) -> str:
    """A PyDataset's batches come in order, people expect; fit's shuffle (True unless given) reorders them."""
    if any(op.data == Source.PYDATASET and op.fit_shuffle(spec.shuffle) for op in _fits(spec)):
        return " (fit's shuffle, True unless given, reorders a PyDataset's batches each epoch: give fit shuffle=False)"
    return ""


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


def verdict(spec: Spec, error: KerasError | None, passes: Passes | None = None) -> str:
    """The answer for this setup, in a few plain sentences; for a workflow (`spec.workflow`),
    `passes` says how each of its calls began."""
    return _unpadded_verdict(spec, error, passes) + _backwards(spec) + _padding(spec)


def _backwards(spec: Spec) -> str:
    """What go_backwards does to the steps and the carry (measured: core/backwards.py)."""
    if not spec.go_backwards:
        return ""
    text = (" go_backwards: each call runs its steps last to first and outputs them in that order (not flipped "
            "back)")
    if spec.stateful and facts_for(spec).carries:
        text += (", and a slot carries the state after x[:, 0] into the next call, whose x[:, -1] runs first: "
                 "consecutive batches are one backward pass only when fed last chunk first")
    if stacked_backwards(spec):
        text += (". Stacked, each layer flips its input again: the second layer runs over the first's outputs in "
                 "the input's own time order")
    return text + "."


def _unpadded_verdict(spec: Spec, error: KerasError | None, passes: Passes | None) -> str:
    said = passes.sentences(spec) if passes is not None and spec.workflow is not None else []
    call_by_call = f" Call by call: {'; '.join(said)}." if said else ""
    if given_states_win(spec):
        return _given_states(spec) + call_by_call + _error_sentence(spec, error)
    if spec.stateful and not facts_for(spec).carries:
        return _carries_nothing(spec, error)
    if not spec.stateful and spec.workflow is not None:
        return _stateless_workflow(spec) + _other_twins(spec) + call_by_call + _error_sentence(spec, error)
    if not spec.stateful:
        return _stateless(spec)
    return (_stateful(spec) + _other_twins(spec) + _epochs_of_steps(spec) + _streams_past_their_end(spec) + call_by_call
            + _stateful_details(spec, passes) + _given_while_zeros(spec) + _error_sentence(spec, error))


def _given_states(spec: Spec) -> str:
    """A stateful layer given its initial states, in Keras 3 (measured: core/facts.py)."""
    kept = ", though layer.states still takes each call's final states" if facts_for(spec).carries else ""
    passed = (" Only the states you hand back (initial_state=\"previous\") pass from call to call." if spec.hand_carried
              else " Nothing passes from call to call: each starts from the zeros it is given.")
    return (f"{facts_for(spec).name}, stateful {spec.layer_name} given its initial states (initial_state=: the model "
            "takes them as inputs, and every call gives them, zeros where a call names none): Keras 3 starts every "
            f"call from the given states, never from the state the layer carries{kept}.{passed}")


def _given_while_zeros(spec: Spec) -> str:
    """tf-keras's rule for a stateful layer given its initial states (measured: core/facts.py)."""
    if not (spec.stateful and spec.takes_states):
        return ""
    return (" The model is given its initial states (initial_state=), but tf-keras uses them only while the layer's "
            "own are all zeros: its first call, and the first after each reset_state(); after that the carried "
            "state wins and the given states are ignored.")


def _padding(spec: Spec) -> str:
    """What the padding does to the state (measured: core/lengths.py), where samples are padded."""
    if not spec.padded:
        return ""
    text = _padded_how(spec)
    carried = spec.stateful and facts_for(spec).carries
    if not spec.mask:
        moved = " and its slot carries the moved one on" if carried else ""
        padding = "the zeros" if spec.data_mask is None else f"the steps of {spec.mask_value!r}"
        return text + (f" Nothing masks it: {padding} run through the layer as input and move the state, so a "
                       f"sample does not end in its last valid step's state{moved}; add "
                       f"{masking_layer(spec)}.")
    if stacked_backwards(spec):
        return text + (" Masking holds the state at the masked steps of the first layer only: every layer is given "
                       "the mask unflipped while its input comes flipped, so above the first layer it masks other "
                       "steps than the padding and the state is not an unpadded run's (the masking evidence).")
    if spec.bidirectional:
        outputs = "zeros in both directions"
    elif padding_runs_first(spec):
        # Keras outputs the previous output at a masked step, zeros before the first valid one: where
        # the padding runs first (pre-padding, or post-padding run backwards) every masked step does.
        outputs = "zeros (no valid output yet)"
    else:
        outputs = "the last valid output again" + (" (zeros before a row's first valid step)"
                                                   * (not padding_runs_last(spec)))
    slot = ", and that is the state its slot carries into the next batch" if carried else ""
    step = "first valid step (run last, going backwards)" if spec.go_backwards else "last valid step"
    empty = spec.data_mask is not None and spec.data_mask.layout.empty
    whole = (" A row masked at every step keeps the state it began with and outputs zeros throughout, as Keras "
             "gives it." if empty else "")
    return text + (f" Masking skips it: a masked step holds the state, so each sample ends in the state of its {step}"
                   f", exactly as if it were not padded{slot}. At a masked step return_sequences outputs "
                   f"{outputs}.{whole}")


def masking_layer(spec: Spec) -> str:
    """The Keras layer that masks this setup's padding, said as advice."""
    embedding = " (or mask_zero=True in an Embedding)" if spec.mask_value == 0.0 and not spec.cell.convolutional else ""
    return (f"keras.layers.Masking(mask_value={spec.mask_value!r}) before the recurrent layer{embedding}"
            + frames_caveat(spec))


def _padded_how(spec: Spec) -> str:
    """How the samples are padded: made lengths, or the data's own masked steps."""
    if spec.data_mask is not None:
        return f" Masked from the data: {describe_layout(spec.data_mask, spec.timesteps)}."
    lengths, where = spec.lengths, "after" if spec.pad == "post" else "before"
    held = (f"the samples hold {', '.join(str(n) for n in lengths.cycle)} valid steps in turn" if lengths.cycle
            else f"each sample holds {lengths.low} to {lengths.high} valid steps")
    whose = "their" if lengths.cycle else "its"
    return f" Padded: {held} of {whose} {spec.timesteps:,} timesteps, the zeros {where} them."


def _carries_nothing(spec: Spec, error: KerasError | None) -> str:
    """A stateful layer on a backend whose trainer drops the state (JAX)."""
    text = (f"{facts_for(spec).name}, stateful {spec.layer_name}: {stateful_does_nothing(spec)}. Every slot of "
            "every call starts from zeros, as in a stateless layer; nothing passes between batches, epochs, "
            "validation or predict, and a reset changes nothing. To carry the state: the torch or TensorFlow "
            "backend, or states passed by hand.")
    if spec.backend == Backend.JAX:
        text += " Only a direct call, model(x), runs eagerly and carries the state on jax."
    if error:
        text += (f" Keras still raises {error.type} at step {error.step}: a stateful layer needs every "
                 f"batch to hold exactly {spec.batch_size:,} samples.")
    return text


def _stateless_workflow(spec: Spec) -> str:
    model = "the model built first" if spec.any_stateful else "the layer"
    text = (f"{facts_for(spec).name}, stateless {spec.layer_name}: {model} starts every call from zeros, one "
            "slot per sequence, and keeps nothing between calls.")
    if spec.hand_carried:
        text += (" The states you pass back by hand (return_state=True, then initial_state=) carry sample k "
                 "of one predict into sample k of the next, as slot k of a stateful layer would.")
    return text


def _other_twins(spec: Spec) -> str:
    """The twins built stateful where the model is stateless, or stateless where it is stateful."""
    text = ""
    for op in sorted((op for op in distinct(spec.plan) if op.kind == Kind.TWIN and op.stateful is not None
                      and op.stateful != spec.stateful), key=str):
        if not op.stateful:
            text += f" Your {op} builds a stateless model: each of its calls starts from zeros."
        elif facts_for(spec).carries:
            streams = ("one stream: each sample continues the one before it" if op.batch_size == 1 else
                       f"sample j+{op.batch_size:,} continues sample j")
            text += (f" Your {op} builds a stateful model (the weights copied, the state from zeros): slot i of "
                     f"each of its calls starts from the final state of slot i of its call before, until a "
                     f"reset_state(), so {streams}.")
        else:
            text += f" Your {op} builds a stateful model, but {stateful_does_nothing(spec)}."
    return text


def _epochs_of_steps(spec: Spec) -> str:
    """Where a fit with steps_per_epoch ends its epochs, and what becomes of the data there."""
    text = ""
    for op in sorted((op for op in _fits(spec) if op.steps_per_epoch), key=str):
        most = plural(op.steps_per_epoch, "batch", "batches")
        if op.chains_passes(spec.keras):
            text += (f" Your {op}: each epoch takes {most} of a stream that goes on where the epoch before left "
                     "it (it is not restarted), so a slot's state runs on across the epoch boundary into the next "
                     "batch of its series; an epoch reset falls wherever the count lands.")
        else:
            text += (f" Your {op}: an epoch ends after {most} or where the pass over the data ends, whichever comes "
                     "first (Keras warns \"Your input ran out of data\" where a pass cuts an epoch short); the next "
                     "epoch goes on where it stopped, a new pass beginning only once one has ended.")
    return text


def _streams_past_their_end(spec: Spec) -> str:
    """What an evaluate or predict given a stream runs where steps= asks more batches than it holds."""
    text = ""
    for op in sorted((op for op in distinct(spec.plan) if op.kind != Kind.FIT and op.data != Source.ARRAYS), key=str):
        size = op.batch_size or spec.batch_size
        held = op.samples // size if op.drop_remainder else math.ceil(op.samples / size)
        if op.steps <= held:
            continue
        if op.endless:
            text += (f" Your {op}: the stream goes round its {plural(op.samples, 'sample')}, so batch {held} runs them "
                     "again from the first, each slot carrying the state of the batch before into a sample it does "
                     f"not continue; steps={held} runs them once.")
        else:
            text += (f" Your {op}: the stream holds {plural(held, 'batch', 'batches')}, fewer than steps={op.steps}: "
                     "Keras runs those and stops there.")
    return text


def _stateless(spec: Spec) -> str:
    other_phases = [name for name, count in (("validation", spec.val_samples),
                                             ("predict", spec.predict_samples)) if count]
    text = (f"{facts_for(spec).name}, stateless {spec.layer_name}: states are reset after every batch, "
            f"{_times(spec.batches_per_epoch)} per epoch; each batch holds up to "
            f"{plural(spec.batch_size, 'independent state')}, one per sequence, so every one of the "
            f"{spec.samples:,} sequences starts from zeros and nothing passes between sequences.")
    if other_phases:
        text += f" {' and '.join(other_phases).capitalize()} batches start from zeros too."
    return text


def _stateful(spec: Spec) -> str:
    """Slot i carries into slot i, and what resets it."""
    where = "inside fit, validation or predict" if spec.workflow is None else "by itself, in any call"
    text = (f"{facts_for(spec).name}, stateful {spec.layer_name}: Keras never resets the state {where}; slot i of "
            f"each batch starts from the final state of slot i of the previous call, so sample "
            f"j+{spec.batch_size:,} continues sample j ")
    if spec.batch_size == 1:
        text += "(one slot, one stream): each batch's only sample continues the previous batch's."
    else:
        text += f"({spec.batch_size:,} parallel streams), not the last sample of the previous batch."
    return text + _resets(spec, spec.batches_per_epoch)


def _stateful_details(spec: Spec, passes: Passes | None) -> str:
    """Stacks, directions, shuffle and TensorFlow's lone samples, where they apply."""
    text = ""
    if spec.replicas > 1:
        text += replica_sentence(spec)
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
    elif passes is not None and passes.broadcast and spec.workflow is not None:
        text += (f" Keras does not raise for a batch of one sample here ({', '.join(passes.broadcast)}): it runs "
                 "that sample in every slot, overwriting every slot's state with garbage.")
    return text


def _resets(spec: Spec, batches: int) -> str:
    """What resets the state: the user's callback, in its hooks, and reset_state() calls."""
    calls = distinct(spec.workflow or ())
    kinds = {op.kind for op in calls}
    calls_reset = Kind.RESET_STATE in kinds
    some = (" Your reset_state(slots=...) calls zero the slots they name only, as state.assign(state * keep) "
            "does: the other slots carry on." if any(op.slots for op in calls) else "")
    if not spec.reset:
        if calls_reset:
            return " Only your reset_state() calls zero it." + some
        if kinds & {Kind.TWIN, Kind.SAVE_AND_LOAD}:
            return " Nothing resets it within a model; a twin or a loaded model starts from zeros."
        return " Nothing resets it here: each slot's state runs on through every phase."
    text = ""
    if spec.reset.kind == ResetKind.EPOCH:
        per_epoch = f"the epoch's {plural(batches, 'training batch', 'training batches')}" \
            if spec.workflow is None else "the epoch"
        text += (" Your callback zeroes all slots before each epoch's first batch, so each slot carries "
                 f"through {per_epoch}.")
    elif spec.reset.kind == ResetKind.EVERY:
        text += (f" Your callback zeroes all slots before every training batch whose index is a "
                 f"multiple of {spec.reset.every}, so each slot carries through at most "
                 f"{plural(spec.reset.every, 'training batch', 'training batches')}.")
    hooks = [words for on, words in ((spec.reset.validation, "before validation and evaluate (on_test_begin)"),
                                     (spec.reset.predict, "before predict (on_predict_begin)")) if on]
    if hooks:
        text += f" Your callback zeroes all slots {' and '.join(hooks)}."
    if calls_reset:
        text += " So do your reset_state() calls." + some
    return text


def _error_sentence(spec: Spec, error: KerasError | None) -> str:
    if not error:
        return ""
    if error.why:
        return f" But Keras raises {error.type} at step {error.step}: {error.why}."
    return (f" But Keras raises {error.type} at step {error.step}: a stateful layer needs every "
            f"batch to hold exactly the batch size it was built for." if spec.workflow is not None else
            f" But Keras raises {error.type} at step {error.step}: a stateful layer needs every "
            f"batch to hold exactly {spec.batch_size:,} samples.")
