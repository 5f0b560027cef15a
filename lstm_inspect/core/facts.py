"""What each Keras does with a recurrent layer's state on each backend, as measured: `FACTS`, and
the rules read from it (the errors Keras raises, TensorFlow's first trace, the lone sample it
broadcasts, JAX's dropped state). Every backend-specific rule is written here once; the
schedule and the mirror apply it, each by its own means, and the conformance tests hold both
to real Keras."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .choices import Backend, KerasVersion, Phase
from .spec import Spec
from .workflow import CALLS, Kind, Op

if TYPE_CHECKING:
    from .order import Call


def validation_split_message(samples: int, validation_split: float) -> str:
    """Keras 3 and tf-keras alike (train_validation_split): a validation_split that leaves no
    training or no validation sample."""
    return (f"Training data contains {samples} samples, which is not sufficient to split it into a validation "
            f"and training set as specified by `validation_split={validation_split}`. Either provide more data, "
            "or a different value for the `validation_split` argument.")


def stateful_batch_mismatch_message(expected: int, received: int) -> str:
    """Keras 3 (torch backend), keras/src/layers/rnn/rnn.py: a stateful call whose batch
    size differs from the state's."""
    return (
        "If an RNN is stateful, the batch size of the input sequences must be the same as "
        "the batch size of the initial state. \n"
        f"- Expected batch size: {expected}\n"
        f"- Received batch size: {received}"
    )


@dataclass(frozen=True)
class Facts:
    """What one Keras, on one backend, does with a stateful layer inside fit, evaluate and
    predict, as measured with real Keras (`measured_on`); the conformance tests re-measure it."""

    keras: KerasVersion
    backend: Backend
    measured_on: str  # the versions the facts were measured with
    keras_version: str  # Keras's own version among them
    carries: bool  # each call starts from the previous call's final state (else from zeros)
    broadcasts_one: bool  # a stateful batch of one sample runs in every slot instead of raising
    error_type: str  # what a stateful batch of another size raises
    # A first batch of another size (N < B, say): fit and evaluate raise while building their step,
    # before batch 0 begins (predict raises inside its batch 0 everywhere).
    raises_before_first_batch: bool
    # TensorFlow: the compiled function each kind of call runs on a model (kinds that share one
    # share a name). Its first trace fixes the batch dimension when every batch of that call has
    # the same size, and Keras's own check then raises a ValueError for a size other than the
    # state's; later traces leave the dimension open (a lone sample broadcasts, other sizes
    # raise InvalidArgumentError). None: nothing is traced (torch, and JAX's check runs always).
    traces: Mapping[str, str] | None = None
    # Keras 3: predict's first trace fixes the dimension at its first batch's size, whatever the
    # batches after it (predict(8, batch_size=3) raises ValueError in batch 0 where evaluate and
    # fit raise InvalidArgumentError), and so does a predict of fewer samples than batch_size.
    predict_fixes_first: bool = False
    # A stateful LSTM or GRU with use_cudnn="auto" (the default) raises RuntimeError in the first
    # training batch's backward ("... modified by an inplace operation"), on the CPU too; predict
    # works, and use_cudnn=False trains (keras-team/keras#20875).
    cudnn_breaks_stateful_training: bool = False
    # Keras 3 on TensorFlow, in a function whose trace left the batch dimension open: a state of
    # one row fails tf.while_loop's shape invariant, a ValueError, at the trace, whatever the batch
    # (one sample too: (1, U) broadcast with (None, U) is (None, U)).
    one_row_state_loop_error: bool = False
    # ConvLSTM2D's default recurrent_activation, its i, f and o gates: tf-keras kept Keras 1's
    # hard_sigmoid, clip(0.2 x + 0.5, 0, 1), where its LSTM and all of Keras 3 take sigmoid.
    convlstm_gate: str = "sigmoid"
    # A stateful layer given initial_state= (a model taking its states as inputs): Keras 3 starts
    # every call from the given states, overriding the carry (layer.states still takes the final
    # ones); tf-keras only while the layer's states are all zeros (its first call, after a reset),
    # else from its own (base_rnn.py: "Use the recorded state if it is not same as the default").
    carry_beats_given_states: bool = False

    @property
    def name(self) -> str:
        """E.g. "Keras 3 (jax)" or "Keras 2 (tf-keras)"."""
        return "Keras 2 (tf-keras)" if self.keras == KerasVersion.TWO else f"Keras 3 ({self.backend})"


FACTS = {
    (KerasVersion.THREE, Backend.TORCH): Facts(
        KerasVersion.THREE, Backend.TORCH, "Keras 3.15.1, torch 2.13.0", "3.15.1",
        carries=True, broadcasts_one=False, error_type="ValueError", raises_before_first_batch=True,
        cudnn_breaks_stateful_training=True),
    # TensorFlow adds the lone sample's projections to every state row: broadcasting, no error,
    # in a compiled step (Keras's default; with run_eagerly=True Keras raises its ValueError).
    (KerasVersion.THREE, Backend.TENSORFLOW): Facts(
        KerasVersion.THREE, Backend.TENSORFLOW, "Keras 3.15.1, tensorflow-cpu 2.21.0", "3.15.1",
        carries=True, broadcasts_one=True, error_type="InvalidArgumentError", raises_before_first_batch=False,
        traces={"fit": "train", "validation": "test", "evaluate": "test", "predict": "predict",
                "train_on_batch": "train_on_batch", "test_on_batch": "test_on_batch",
                "predict_on_batch": "predict_on_batch"}, predict_fixes_first=True, one_row_state_loop_error=True),
    # The state variables are created untracked, so JAX's stateless train, test and predict
    # steps drop their assignments: every call starts from the zeros they were created with.
    (KerasVersion.THREE, Backend.JAX): Facts(
        KerasVersion.THREE, Backend.JAX, "Keras 3.15.1, jax 0.10.2", "3.15.1",
        carries=False, broadcasts_one=False, error_type="ValueError", raises_before_first_batch=True),
    (KerasVersion.TWO, Backend.TENSORFLOW): Facts(
        KerasVersion.TWO, Backend.TENSORFLOW, "tf-keras 2.21.0, tensorflow-cpu 2.21.0", "2.21.0",
        carries=True, broadcasts_one=True, error_type="InvalidArgumentError", raises_before_first_batch=False,
        carry_beats_given_states=True,
        traces={"fit": "train", "train_on_batch": "train", "validation": "test", "evaluate": "test",
                "test_on_batch": "test", "predict": "predict", "predict_on_batch": "predict_on_batch"},
        convlstm_gate="hard_sigmoid"),
}


def facts_for(spec: Spec) -> Facts:
    return FACTS[spec.keras, spec.backend]


def keeps_state(spec: Spec) -> bool:
    """Whether any state passes from one call to another inside fit, evaluate and predict."""
    return facts_for(spec).carries and spec.carries


def broadcast_phases(spec: Spec) -> list[Phase]:
    """The phases whose last batch is a lone sample that TensorFlow broadcasts into every slot
    (stateful only), up to the first batch that raises instead; for a workflow, the run finds
    them (verdict.Passes)."""
    if spec.workflow is not None or not (spec.stateful and facts_for(spec).broadcasts_one):
        return []
    found = []
    for phase, count in ((Phase.TRAIN, spec.samples), (Phase.VALIDATION, spec.val_samples),
                         (Phase.PREDICT, spec.predict_samples)):
        remainder = count % spec.batch_size
        # (<= agrees: a predict of one whole batch leaves no remainder, and predict is the last phase)
        first_short = count < spec.batch_size and phase == Phase.PREDICT  # pragma: no mutate
        first_short = first_short and facts_for(spec).predict_fixes_first
        if remainder > 1 or first_short:
            break  # Keras raises at this phase's last batch
        if remainder == 1:
            found.append(phase)
    return found


# Why Keras 3 on TensorFlow raises for a one-row state in a trace left open, whatever the batch.
OPEN_TRACE_WHY = ("on Keras 3's TensorFlow a stateful layer built for batch 1 runs only in a step function traced "
                  "with its batch size fixed, as a call whose every batch is its batch_size traces it")


def keras_error(facts: Facts, expected: int, received: int, state: tuple[int, ...]) -> tuple[str, str, str]:
    """(type, message, pattern) of what Keras raises for a stateful batch of `received`
    samples when the state holds `expected`; real Keras's message contains a match of
    `pattern`. `state`: one slot's state tensor (units, or a ConvLSTM2D's image). TensorFlow's
    shape check names whichever node fails first: the order of the two shapes and their width
    (the units, or an LSTM's four gates) vary."""
    dims = ", ".join(str(size) for size in state)
    if facts.one_row_state_loop_error and expected == 1:
        message = (f"Input tensor `.../ReadVariableOp:0` enters the loop with shape (1, {dims}), but has shape "
                   f"(None, {dims}) after one iteration (tf.while_loop's shape invariant: the state holds one row, "
                   f"the batch {received})")
        return "ValueError", message, r"enters the loop with shape \(1(?:, \d+)+\), but has shape \(None(?:, \d+)+\)"
    if facts.error_type == "InvalidArgumentError":
        dims = dims.replace(" ", "")
        message = (f"Incompatible shapes between the {received}-sample batch and the {expected}-row state "
                   f"(TensorFlow's shape check, e.g. \"Incompatible shapes: [{received},{dims}] vs. "
                   f"[{expected},{dims}]\")")
        sizes = f"({received}|{expected})"
        # A one-row state broadcasts in the step, then the outputs' stack fails to merge (tf-keras).
        shapes = rf"\[{sizes}(?:,\d+)+\] vs\. \[{sizes}(?:,\d+)+\]"
        return facts.error_type, message, rf"Incompatible shapes(?: during merge)?: {shapes}"
    message = stateful_batch_mismatch_message(expected, received)
    return facts.error_type, message, re.escape(message)


class KerasStateError(ValueError):
    """What Keras raises for a stateful call whose batch size differs from the state's; a
    ValueError, as in Keras 3. `keras_type` names Keras's own exception class."""

    def __init__(self, keras_type: str, message: str):
        super().__init__(message)
        self.keras_type = keras_type


@dataclass(frozen=True)
class KerasError:
    """What Keras raises, and at which step. `pattern`: a regular expression that real Keras's
    message contains a match of (its own message, escaped, when it does not vary)."""

    step: int
    type: str
    message: str
    pattern: str = ""
    when: str = ""  # where in the step it is raised, when that is worth saying
    why: str = ""  # why a stateful layer raises, where it is not a batch of another size
    cause: str = ""  # what the table says raises, where it is not the batch's samples

    def matches(self, message: str) -> bool:
        return re.search(self.pattern or re.escape(self.message), message) is not None

    def to_json(self) -> dict[str, Any]:
        found = {"step": self.step, "type": self.type, "message": self.message}
        return {**found, "when": self.when} if self.when else found


def first_trace_error(spec: Spec, facts: Facts, expected: int, received: int) -> tuple[str, str, str]:
    """(type, message, pattern) of Keras's check on a batch dimension fixed by TensorFlow's
    trace: Keras 3's own message; Keras 2's input_spec check, naming the first layer."""
    if facts.keras == KerasVersion.THREE:
        message = stateful_batch_mismatch_message(expected, received)
        return "ValueError", message, re.escape(message)
    step = "".join(f", {size}" for size in spec.step_shape)
    shapes = f"expected shape=({expected}, None{step}), found shape=({received}, {spec.timesteps}{step})"
    message = f'Input 0 of layer "{spec.cell.keras_layer_name}" is incompatible with the layer: {shapes}'
    return "ValueError", message, r'Input 0 of layer "\w+" is incompatible with the layer: ' + re.escape(shapes)


class Traces:
    """TensorFlow's compiled functions on one model (`Facts.traces`): a kind of call traces its
    function the first time it runs on the model, and that trace keeps the batch dimension when
    every batch of the call has the same size, so that Keras's own check sees the batch size."""

    def __init__(self, facts: Facts):
        self.facts = facts
        self.traced: set[str] = set()

    def new_model(self) -> None:
        """A twin or a loaded model compiles functions of its own."""
        self.traced = set()

    def fixes_call(self, op: Op, call: Call, count: int, size: int) -> bool | None:
        """`fixes_batch` for layer call `call` of `op`: a pass starts at batch 0 of each evaluate,
        predict and validation, and of a fit's first epoch (fit runs all its epochs in one trace)."""
        first_of_pass = call.batch == 0 and (call.phase != Phase.TRAIN or call.epoch == op.initial_epoch)
        return self.fixes_batch(op.kind, call.phase, first_of_pass, count, size)

    def fixes_batch(self, kind: Kind, phase: Phase, first_of_pass: bool, count: int, size: int) -> bool | None:
        """Whether this layer call traces a function for the first time on the model (marking it
        traced) with its batch dimension fixed (True) or left open (False), the first batch of a
        pass of `count` samples in batches of `size`; None where it traces nothing new."""
        functions = self.facts.traces
        if functions is None or not first_of_pass:
            return None
        function = functions["validation" if phase == Phase.VALIDATION else str(kind)]
        if function in self.traced:
            return None
        self.traced.add(function)
        if not CALLS[kind].callbacks:
            return True  # one batch of all its samples
        return count % size == 0 or (self.facts.predict_fixes_first and kind == Kind.PREDICT)


class _GivenSpec(Protocol):
    @property
    def stateful(self) -> bool: ...
    @property
    def takes_states(self) -> bool: ...
    @property
    def keras(self) -> KerasVersion: ...
    @property
    def backend(self) -> Backend: ...


def given_states_win(spec: _GivenSpec) -> bool:
    """A stateful layer given its initial states (initial_state=) that starts every call from them,
    never from its carried state: Keras 3, on every backend."""
    return spec.stateful and spec.takes_states and not FACTS[spec.keras, spec.backend].carry_beats_given_states
