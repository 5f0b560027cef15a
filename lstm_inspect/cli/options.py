"""The command's options, in their groups (setup, output, run, CI), and the parameter types that
read them: numbers in ASCII digits only, --shape, --reset."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import click

from ..core.choices import Backend, Cell, KerasVersion, ResetPolicy
from ..core.digits import MAX_DIGITS, too_long
from ..core.errors import SpecError
from ..core.spec import parse_shape

MAX_STEPS, MAX_LAYERS, MAX_ROWS = 10**8, 64, 10**6


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    MARKDOWN = "markdown"
    CSV = "csv"


class ViewName(StrEnum):
    TABLE = "table"
    TIMELINE = "timeline"


class Against(StrEnum):
    KERAS = "keras"


class Emit(StrEnum):
    KERAS = "keras"
    TORCH = "torch"


class _AsciiDigits(click.ParamType):
    """Integers in ASCII digits only: int() also takes "４" and "٣", which --shape refuses."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        # As --shape takes its numbers: digits, a minus sign for the error that says "positive".
        if isinstance(value, str) and not re.fullmatch(r"\s*-?[0-9]+\s*", value):
            self.fail(f"{value!r} is not a valid integer (ASCII digits only).", param, ctx)
        # A range says what it takes itself; past 18 digits no count describes data anyone holds.
        if isinstance(value, str) and not isinstance(self, click.IntRange) and too_long(value.strip().lstrip("-")):
            self.fail(f"at most {MAX_DIGITS} digits: no count of data goes further", param, ctx)
        return super().convert(value, param, ctx)


class AsciiInt(_AsciiDigits, click.types.IntParamType):
    pass


class AsciiIntRange(_AsciiDigits, click.IntRange):
    pass


ASCII_INT = AsciiInt()


class ShapeType(click.ParamType):
    name = "N,T,F|N,T,H,W,C"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            return parse_shape(value)
        except SpecError as error:
            self.fail(str(error), param, ctx)


class ResetType(click.ParamType):
    name = "never|epoch|every:K"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, ResetPolicy):
            return value
        try:
            return ResetPolicy.parse(value)
        except SpecError as error:
            self.fail(str(error), param, ctx)


SETUP_OPTIONS = [
    click.option("--shape", type=ShapeType(),
                 help="Data shape: N sequences of T timesteps of F features (required, but with --replay); for "
                      "--cell convlstm2d, N,T,H,W,C: each timestep an H x W image of C channels (N,T,C,H,W with "
                      "--data-format channels_first)."),
    click.option("--batch", "batch_size", type=ASCII_INT, default=32, show_default=True,
                 help="The batch size the model is built for (Input(batch_shape=(B, T, F))), and the batch_size "
                      "of the fit and predict that --epochs, --val-samples and --predict-samples describe."),
    click.option("--stateful/--stateless", default=False, show_default=True,
                 help="The layer's stateful argument."),
    click.option("--epochs", type=ASCII_INT, default=1, show_default=True),
    click.option("--shuffle", type=click.Choice(["true", "false", "batch"]), is_flag=False, flag_value="true",
                 default="true", show_default=True,
                 help="fit's shuffle (Keras shuffles by default; the permutation is drawn from --seed). "
                      "batch: within each batch (and, in Keras 2, the batch order too)."),
    click.option("--no-shuffle", is_flag=True, help="shuffle=False."),
    click.option("--cell", type=click.Choice([c.value for c in Cell]), default=Cell.LSTM.value, show_default=True,
                 help="The recurrent layer: LSTM (h and c per slot), GRU or SimpleRNN (h), or ConvLSTM2D (h and c "
                      "per slot, each an image: --units filters, --kernel, --padding, --data-format)."),
    click.option("--kernel", type=ASCII_INT, default=3, show_default=True, metavar="K",
                 help="ConvLSTM2D's kernel_size, K x K."),
    click.option("--padding", type=click.Choice(["valid", "same"]), default="valid", show_default=True,
                 help="ConvLSTM2D's padding of the input convolution (the recurrent one is always 'same')."),
    click.option("--data-format", "data_format", type=click.Choice(["channels_last", "channels_first"]),
                 default="channels_last", show_default=True,
                 help="ConvLSTM2D's data_format: channels_first takes --shape N,T,C,H,W, its states "
                      "(filters, H', W')."),
    click.option("--lengths", default="", metavar="5,3,4|A-B",
                 help="Padded sequences: each sample's valid timesteps, a list cycled over the samples (5,3,4) or "
                      "drawn between A and B from --seed (2-5); the rest of its T steps are zeros, as "
                      "keras.utils.pad_sequences writes them."),
    click.option("--pad", type=click.Choice(["post", "pre"]), default="post", show_default=True,
                 help="With --lengths: the padding after the valid steps (post) or before them (pre)."),
    click.option("--mask/--no-mask", default=True, show_default=True,
                 help="With --lengths (or --mask-value): keras.layers.Masking before the recurrent layers (a "
                      "masked step holds the state), or --no-mask: the padding runs as input."),
    click.option("--layers", type=ASCII_INT, default=1, show_default=True,
                 help="Stacked recurrent layers, each with its own state per slot."),
    click.option("--bidirectional", is_flag=True, help="Wrap each layer in Bidirectional."),
    click.option("--go-backwards", "go_backwards", is_flag=True,
                 help="The layers' go_backwards=True: each call runs its timesteps last to first, its output in "
                      "that order, and a stateful slot carries the state after x[:, 0]."),
    click.option("--fixed-batch/--no-fixed-batch", "fixed_batch", default=True, show_default=True,
                 help="Whether the model's input fixes the batch size (keras.Input(batch_shape=(B, T, F))); "
                      "--no-fixed-batch: keras.Input(shape=(T, F)), which a stateful layer refuses (Keras's "
                      "error, with the fix). The emitted programs fix it."),
    click.option("--replicas", type=ASCII_INT, default=1, show_default=True, metavar="R",
                 help="tf.distribute.MirroredStrategy over R replicas (Keras 3 on TensorFlow, stateful): --batch "
                      "is then the global batch fit and predict are given, and the model is built inside "
                      "strategy.scope() for the per-replica batch, --batch / R."),
    click.option("--keras", type=click.Choice([k.value for k in KerasVersion]),
                 default=KerasVersion.THREE.value, show_default=True,
                 help="The Keras whose API and errors to describe: 3, or 2 (tf-keras, on TensorFlow)."),
    click.option("--backend", type=click.Choice([b.value for b in Backend]),
                 help="The backend Keras 3 runs on. Default: the one your Keras would pick (KERAS_BACKEND, "
                      "else \"backend\" in keras.json under KERAS_HOME or ~/.keras, else tensorflow); "
                      "tensorflow for --keras 2."),
    click.option("--reset", type=ResetType(), default="never", show_default=True, metavar="HOOK[,HOOK]",
                 help="A reset callback (stateful only), passed to every fit, evaluate and predict, that "
                      "resets every RNN layer in its hooks: epoch (on_epoch_begin), every:K (before each "
                      "training batch whose index is a multiple of K), validation (on_test_begin: fit's "
                      "validation and evaluate), predict (on_predict_begin); e.g. epoch,predict. never: none."),
    click.option("--val-samples", type=ASCII_INT, default=0, show_default=True,
                 help="Validation samples, run after each epoch's training (validation_data)."),
    click.option("--predict-samples", type=ASCII_INT, default=0, show_default=True,
                 help="Samples passed to predict after fit."),
    click.option("--calls", "workflow", metavar="CALLS",
                 help="The whole workflow instead of --epochs, --val-samples and --predict-samples, written "
                      "as in Keras, calls separated by ';': fit(epochs=, batch_size=, shuffle=, "
                      "validation_split=, validation_samples=, validation_freq=, initial_epoch=, steps_per_epoch=, "
                      "data=\"arrays\"|\"dataset\"|\"generator\"|\"pydataset\", repeat=, drop_remainder=), "
                      "evaluate(n, batch_size=, steps=, data=, repeat=, drop_remainder=), predict(n, batch_size=, "
                      "steps=, initial_state=\"previous\", data=, repeat=, drop_remainder=), "
                      "train_on_batch(n), test_on_batch(n), predict_on_batch(n), reset_state() (slots=[1, 3]: those "
                      "slots only), "
                      "save_and_load(), twin(batch_size=b, stateful=True|False); repeats: predict(1) * 100, "
                      "(fit(), reset_state()) * 10. fit runs the --shape data; the others take the next n "
                      "samples of their own data. batch_size defaults to Keras's, 32, whatever --batch is."),
    click.option("--data", type=click.Path(dir_okay=False), metavar="FILE",
                 help="Your x, as a .npy file (memory-mapped) or a .npz archive (with --data-key): its shape "
                      "must be --shape; the advice then says whether the stateful carries (row j into row j+B) "
                      "follow your rows, and how to reorder them."),
    click.option("--data-key", metavar="KEY", help="The array of a .npz file --data names."),
    click.option("--mask-value", "mask_value", type=float, metavar="V",
                 help="With --data: each sample's mask read from its row, as keras.layers.Masking(mask_value=V) "
                      "computes it (a step is masked where every feature equals V, anywhere in the sequence); "
                      "--no-mask feeds those steps as input. The mirror runs its own inputs on that mask."),
    click.option("--units", type=ASCII_INT, default=8, show_default=True, help="Units of each recurrent layer."),
    click.option("--seed", type=ASCII_INT, default=0, show_default=True,
                 help="Seed of the weights, the inputs and the shuffle."),
]
OUTPUT_OPTIONS = [
    click.option("--no-progress", is_flag=True,
                 help="No progress bar on stderr (shown only where stderr is a terminal outside CI, once the work "
                      "has taken a second)."),
    click.option("--format", "output_format", type=click.Choice([f.value for f in OutputFormat]),
                 default=OutputFormat.TABLE.value, show_default=True,
                 help="table for people (see --view); json (schema 1) for scripts; markdown for docs "
                      "and PR comments; csv: one row per step and slot."),
    click.option("--view", type=click.Choice([v.value for v in ViewName]), default=ViewName.TABLE.value,
                 show_default=True, help="timeline: one row per slot, one column per step."),
    click.option("--ascii", "ascii_only", is_flag=True,
                 help="Plain ASCII glyphs (also chosen when the terminal cannot encode others)."),
    click.option("--svg", type=click.Path(dir_okay=False), metavar="FILE",
                 help="Also write the view as a self-contained SVG file."),
    click.option("--html", type=click.Path(dir_okay=False), metavar="FILE",
                 help="Also write a self-contained HTML page: the state-flow diagram, then the steps, evidence, "
                      "claims and advice as HTML tables, and the verdict."),
    click.option("--diagram", type=click.Path(dir_okay=False), metavar="FILE.svg",
                 help="Also draw the state flow as a self-contained SVG: a lane per slot, a column per step, an "
                      "arrow into each carried cell from the one it carries."),
    click.option("--max-rows", type=AsciiIntRange(min=3, max=MAX_ROWS), default=40, show_default=True,
                 help="Table rows before the middle of a long schedule is folded into one row."),
    click.option("--no-slots", is_flag=True,
                 help="JSON: per-step slot counts instead of the per-slot arrays (for huge runs)."),
    click.option("--advice/--no-advice", default=True, show_default=True,
                 help="Advise after the verdict: the API of --keras for this setup, whether stateful fits it, "
                      "and the data layout it needs."),
]
RUN_OPTIONS = [
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                 help="Where the mirror runs: auto picks CUDA (cuDNN) when present."),
    click.option("--max-steps", type=AsciiIntRange(min=1), metavar="K",
                 help="Check only the first K steps on the tensors; predict the rest from the schedule."),
    click.option("--dry-run", is_flag=True,
                 help="Derive the schedule only: no torch, no run, nothing observed."),
    click.option("--evidence/--no-evidence", default=True, show_default=True,
                 help="Measure the evidence (batch independence, continuation, gradient truncation) "
                      "and judge the common claims against it. Continuation is measured with the "
                      "weights fixed, so it is exact for predict; inside a real fit they change."),
    click.option("--evidence-batch", type=AsciiIntRange(min=0), default=0, show_default=True,
                 help="Training batch (epoch 0; with --calls, layer call) whose samples are rerun alone "
                      "for evidence 1."),
    click.option("--against", type=click.Choice([a.value for a in Against]),
                 help="Also run the setup through your installed Keras (--keras, on --backend, in a "
                      "process of its own; use_cudnn=False, since Keras 3.15 fails stateful training with "
                      "cuDNN on torch: keras-team/keras#20875) with the same weights and inputs, and show "
                      "where Keras and the mirror agree. Exit 1 if they disagree."),
    click.option("--emit", type=click.Choice([e.value for e in Emit]),
                 help="Print a minimal runnable Keras or PyTorch snippet with this setup's state "
                      "handling (it prints where each batch's states start), instead of running."),
    click.option("--replay", type=click.Path(dir_okay=False), metavar="FILE",
                 help="Show a run StateProbe saved from your own model (probe.save), in any --format and "
                      "--view, and apply the --expect-* checks and --strict to it; no setup options."),
]
CI_OPTIONS = [
    click.option("--expect-resets", type=AsciiIntRange(min=0), metavar="N",
                 help="CI: fail (exit 1) unless there are N reset events (steps where any slot starts from zeros)."),
    click.option("--expect-slot-resets", type=AsciiIntRange(min=0), metavar="N",
                 help="CI: fail unless N slots start from zeros in all."),
    click.option("--expect-carries", type=AsciiIntRange(min=0), metavar="N",
                 help="CI: fail unless N slots carry a state in all."),
    click.option("--expect-error/--expect-no-error", default=None,
                 help="CI: fail unless Keras raises (or does not) for this setup; a raise that was "
                      "expected exits 0."),
    click.option("--strict", is_flag=True, help="Treat warnings as failures (exit 1)."),
    click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors: the exit code is the answer."),
]


GROUP_OF: dict[str, str] = {}  # each option's name, to the group --help shows it in


def options(options: list[Callable[[Any], Any]], title: str) -> Callable[[Any], Any]:
    """One decorator for a group of options, listed in the order --help shows them under `title`."""
    def apply(function: Any) -> Any:
        before = len(getattr(function, "__click_params__", []))
        for option in reversed(options):
            function = option(function)
        GROUP_OF.update((param.name, title) for param in function.__click_params__[before:])
        return function
    return apply
