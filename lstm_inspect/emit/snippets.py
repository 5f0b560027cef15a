"""Minimal runnable snippets that reproduce a setup's state handling (`--emit keras|torch`).

Both print one line per layer call, "<call label>: zeros=<slots> carried=<slots>", read
from their own state tensors (every layer and direction), so a reader (and the tests)
can hold them against the tool's schedule. Only the blocks this setup needs are emitted.

The programs' text is in templates/ (rendered by engine); this module computes what they need
from the Spec: its settings, which blocks apply, the reset rule's hooks, and the workflow's calls.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.choices import Hook, KerasVersion, Shuffle
from ..core.spec import Spec
from ..core.workflow import Kind, Op, Repeat, Source, Workflow, distinct
from .engine import call_template, render


@dataclass(frozen=True)
class Layout:
    """How a stateful setup's x is laid out for the batch slots (stateful_layout)."""

    short: bool  # fewer rows than one batch: no layout to make
    left_over: bool  # B does not divide N: the rows left over come last


@dataclass(frozen=True)
class Call:
    """One call of a workflow, with what its template needs beyond the Op itself."""

    op: Op
    text: str  # the call as --calls writes it: the comment above its code
    template: str  # the template of its kind in this program
    size: str  # its batch size: its own, else the model's (an expression of the program)
    train: int  # fit: the samples it trains on
    validation: int  # fit: the samples it validates on
    shuffle: Shuffle  # fit: its own shuffle, else --shuffle
    streamed: bool  # fit: steps_per_epoch, or a dataset or generator (the epochs then cut a stream)
    chains: bool  # fit: whether its epochs take their batches from passes run end to end
    restarts: bool  # fit: whether every epoch starts a new pass (tf-keras's Sequence)


@dataclass(frozen=True)
class Loop:
    """A repeat, `body * times`: one loop in the program however large `times` is."""

    text: str
    times: int
    body: list[Call | Loop]


# The shorthand programs reset in the training hooks only, as they did before the templates:
# --reset validation and predict are missing from them (their lines then differ from the
# schedule's). A known gap, left for its own change: this one kept the output byte for byte.
_SHORTHAND_HOOKS = (Hook.EPOCH_BEGIN, Hook.TRAIN_BATCH_BEGIN)


def keras_snippet(spec: Spec, args: str) -> str:
    if spec.workflow is None:
        return render("keras.j2", **_values(spec, args))
    # The model's batch size is the program's BATCH: B, then the twin's once there is one.
    return render("keras_workflow.j2", **_values(spec, args), calls=_calls(spec, spec.workflow, "keras", "BATCH"))


def torch_snippet(spec: Spec, args: str) -> str:
    if spec.workflow is None:
        return render("torch.j2", **_values(spec, args))
    return render("torch_workflow.j2", **_values(spec, args),
                  calls=_calls(spec, spec.workflow, "torch", "model.batch_size"))


def _values(spec: Spec, args: str) -> dict[str, object]:
    """What the programs need from the Spec beyond its own fields."""
    # A stateful layer wants its batches in order: slot i of batch k+1 continues slot i of batch k.
    shuffle = Shuffle.FALSE if spec.stateful else spec.shuffle
    calls = distinct(spec.plan)
    return {
        "args": args,
        "spec": spec,
        "keras2": spec.keras == KerasVersion.TWO,
        # Keras 3 fails stateful training with cuDNN on torch (keras-team/keras#20875); SimpleRNN has none.
        "cudnn_off": spec.keras == KerasVersion.THREE and spec.cell.cudnn,
        "layout": Layout(short=spec.samples < spec.batch_size, left_over=spec.samples % spec.batch_size != 0),
        "hooks": _hooks(spec),
        "is_lstm": len(spec.cell.state_names) == 2,  # h and c: an LSTM, convolutional or not
        "images": spec.cell.convolutional,  # each slot's state an image (H', W', filters)
        "step": _step(spec),  # one timestep's shape, in the programs' names
        "width": _width(spec),
        "state": _width(spec) if spec.cell.convolutional else "UNITS",  # one slot's state, after the batch
        "states": len(spec.cell.state_names),  # state tensors per layer: an LSTM's h and c
        "by_hand": spec.hand_carried,
        "streamed": any(op.kind == Kind.FIT and (op.steps_per_epoch or op.data != Source.ARRAYS) for op in calls),
        "steps": any(op.steps for op in calls),
        # evaluate or predict given a stream: the torch program's run() drops or cycles its batches
        "run_streams": any(op.kind != Kind.FIT and op.data != Source.ARRAYS for op in calls),
        "datasets": any(op.data == Source.DATASET for op in calls),
        "generators": any(op.data == Source.GENERATOR for op in calls),
        "pydatasets": any(op.data == Source.PYDATASET for op in calls),
        "items_shuffled": any(op.data == Source.PYDATASET and op.fit_shuffle(spec.shuffle) for op in calls),
        # A twin built stateful where the model is not, or the other way round: the programs
        # then build each model stateful or not.
        "mixed": any(op.kind == Kind.TWIN and op.stateful not in (None, spec.stateful) for op in distinct(spec.plan)),
        "slot_resets": any(op.slots for op in calls),  # reset_state(slots=...): the torch program's reset_slots
        "shuffle": shuffle,  # the shorthand's fit
        "reorders": bool(shuffle),
    }


def _width(spec: Spec) -> str:
    """The model's output per sample, for the zero targets: the last layer's last state."""
    if spec.cell.convolutional:
        return "UNITS, OUT_H, OUT_W" if spec.data_format == "channels_first" else "OUT_H, OUT_W, UNITS"
    return "UNITS * 2" if spec.bidirectional else "UNITS"


def _step(spec: Spec) -> str:
    if spec.cell.convolutional:
        return "F, H, W" if spec.data_format == "channels_first" else "H, W, F"
    return "F"


def _hooks(spec: Spec) -> list[tuple[Hook, int]]:
    """The hooks the reset callback resets in, each with K (> 0: only at batch indices that are
    multiples of K), as ResetPolicy.hooks states the rule."""
    hooks = spec.reset.hooks()
    if spec.workflow is None:
        return [(hook, every) for hook, every in hooks if hook in _SHORTHAND_HOOKS]
    return hooks


def _calls(spec: Spec, workflow: Workflow, program: str, model_batch: str) -> list[Call | Loop]:
    """The workflow as the templates walk it, repeats kept as loops (never unrolled)."""
    return [Loop(str(item), item.times, _calls(spec, item.body, program, model_batch))
            if isinstance(item, Repeat) else _call(spec, item, program, model_batch) for item in workflow]


def _call(spec: Spec, op: Op, program: str, model_batch: str) -> Call:
    return Call(op=op, text=str(op), template=call_template(program, op.kind),
                size=str(op.batch_size) if op.batch_size else model_batch,
                train=spec.fit_split(op), validation=spec.fit_validation(op),
                shuffle=op.fit_shuffle(spec.shuffle), streamed=bool(op.steps_per_epoch) or op.data != Source.ARRAYS,
                chains=op.chains_passes(spec.keras), restarts=op.restarts_passes(spec.keras))
