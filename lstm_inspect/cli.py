"""The command line: options in groups, each building one object; exit codes and CI checks.

The only module that imports click. It maps the library's field names to its flags, picks
a view, feeds it the inspection's steps, and turns the report into an exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import io
import os
import re
import shlex
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.text import Text

from . import __version__
from .emit import keras_snippet, torch_snippet
from .formats import CsvWriter, MarkdownWriter, check_writable, write_atomically
from .inspection import Inspection, Report, StepResult, inspect
from .layout import Continuity, continuity, open_data
from .memory import VIRTUAL_ALLOWANCE, estimate, rooms
from .render import JsonWriter, TableView, View, make_console
from .schedule import facts_for
from .spec import Backend, Cell, KerasVersion, ResetPolicy, Shuffle, Spec, SpecError, Terms, parse_shape, plural
from .timeline import TimelineView
from .workflow import text

EXIT_OK, EXIT_MISMATCH, EXIT_KERAS_RAISES = 0, 1, 3  # 2, usage errors, is click's
EXIT_OUTPUT = 74  # the output could not be written (sysexits' EX_IOERR)
# Bounds on the work one command may ask for: past them it would run for days, or fold nothing.
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


# Options that make no sense together: rejected, never settled silently.
CONFLICTS = {
    "no_shuffle": ("shuffle",),
    "workflow": ("epochs", "val_samples", "predict_samples"),  # shorthand for a workflow: one or the other
    # --emit prints code instead of running: every option about the run or its output clashes.
    "emit": ("data", "advice", "against", "output_format", "view", "ascii_only", "svg", "html", "max_rows",
             "dry_run", "device",
             "max_steps", "no_slots", "evidence", "evidence_batch", "quiet", "expect_resets",
             "expect_slot_resets", "expect_carries", "expect_error", "strict"),
    "quiet": ("output_format", "max_rows", "view", "svg", "html", "ascii_only"),
    "dry_run": ("evidence", "evidence_batch", "against", "device", "max_steps"),
    "against": ("max_steps",),  # Keras runs every step: the mirror's shown must be checked too
}

# Options that shape one output format only.
FORMAT_ONLY = {"view": ("table",), "ascii_only": ("table",), "svg": ("table",), "html": ("table",),
               "max_rows": ("table", "markdown"), "no_slots": ("json",), "against": ("table", "json")}


def _option_name(ctx: click.Context, name: str) -> str:
    param = next(p for p in ctx.command.params if p.name == name)
    return param.opts[0]


def reject_conflicts(ctx: click.Context) -> None:
    given = {name for name in ctx.params
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    if "max_rows" in given and ctx.params["view"] == ViewName.TIMELINE:
        raise click.UsageError("--max-rows cannot be combined with --view timeline: the timeline folds "
                               "to the terminal's width", ctx)
    if "evidence_batch" in given and not ctx.params["evidence"]:
        raise click.UsageError("--evidence-batch cannot be combined with --no-evidence", ctx)
    output_format = ctx.params["output_format"]
    for name, formats in FORMAT_ONLY.items():
        if name in given and output_format not in formats:
            raise click.UsageError(f"{_option_name(ctx, name)} cannot be combined with --format {output_format}: "
                                   f"it applies to --format {' or '.join(formats)}", ctx)
    for option, others in CONFLICTS.items():
        if option in given:
            for other in others:
                if other in given:
                    raise click.UsageError(f"{_option_name(ctx, option)} cannot be combined with "
                                           f"{_option_name(ctx, other)}", ctx)


EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_TERMINATED = 141, 130, 143  # as a shell reports those signals


class InspectCommand(click.Command):
    """Refuses an option given twice (or a flag given both ways) rather than keep the last; says
    a usage error in one line; ends quietly, with the shell's conventional codes, on a closed
    pipe, an output it cannot write, Ctrl-C or SIGTERM (an export under way leaves no temporary
    file). --help and --version answer the same way."""

    def make_context(self, info_name: str | None, args: list[str], *more: Any, **options: Any) -> click.Context:
        if not _stdout_open() and any(arg in ("--help", "-h", "--version") for arg in args):
            _output_failed("standard output is closed")
        with _writing():
            try:
                return super().make_context(info_name, args, *more, **options)
            except click.exceptions.Exit:
                if sys.stdout is not None:
                    sys.stdout.flush()  # --help and --version: their text fails here, not at exit
                raise
            except click.UsageError as error:
                error.ctx = None  # click then prints "Error: ..." alone, without the usage lines
                raise

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:  # click's own parser says which words are options: a file may be named "--svg"
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        except click.UsageError:
            order = []  # the real parse below says what is wrong
        counts = Counter(param.name for param in order if isinstance(param, click.Option))
        for param in self.params:
            if counts[param.name] > 1:
                names = [*param.opts, *param.secondary_opts]
                given = [arg.split("=", 1)[0] for arg in args if arg.split("=", 1)[0] in names]
                both = any(name in param.opts for name in given) and any(name in param.secondary_opts for name in given)
                how = "both ways" if both else "twice"
                raise click.UsageError(f"{' and '.join(dict.fromkeys(given))} given {how}: say it once", ctx)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        previous = _install(signal.SIGTERM, _terminated)
        try:
            with _writing():
                result = super().invoke(ctx)
                if sys.stdout is not None:
                    sys.stdout.flush()  # buffered bytes fail here, not silently at exit
                return result
        except click.UsageError as error:
            error.ctx = None
            raise
        except KeyboardInterrupt:
            click.echo("lstm-inspect: interrupted", err=True)
            raise SystemExit(EXIT_INTERRUPTED) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    """A closed pipe ends the command with 141, an output it cannot write with 74: one line,
    no traceback, and nothing more written."""
    try:
        yield
    except BrokenPipeError:
        _discard_stdout()  # the reader has gone (`| head`): stop quietly
        raise SystemExit(EXIT_BROKEN_PIPE) from None
    except OSError as failed:
        if failed.filename is not None:
            raise  # a file's, not standard output's: said where it is written
        _discard_stdout()
        _output_failed(failed.strerror or str(failed))


def _install(signum: int, handler: Any) -> Any:
    """Install a handler where the signal still has its default one, in the main thread only;
    returns what to restore (None: nothing installed)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signum) != signal.SIG_DFL:
        return None
    return signal.signal(signum, handler)


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(EXIT_TERMINATED)  # unwinds like Ctrl-C: temporary files are removed


class _AsciiDigits(click.ParamType):
    """Integers in ASCII digits only: int() also takes "４" and "٣", which --shape refuses."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        # As --shape takes its numbers: digits, a minus sign for the error that says "positive".
        if isinstance(value, str) and not re.fullmatch(r"\s*-?[0-9]+\s*", value):
            self.fail(f"{value!r} is not a valid integer (ASCII digits only).", param, ctx)
        return super().convert(value, param, ctx)


class AsciiInt(_AsciiDigits, click.types.IntParamType):
    pass


class AsciiIntRange(_AsciiDigits, click.IntRange):
    pass


ASCII_INT = AsciiInt()


class ShapeType(click.ParamType):
    name = "N,T,F"

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
                 help="Data shape: N sequences of T timesteps of F features (required, but with --replay)."),
    click.option("--batch", "batch_size", type=ASCII_INT, default=32, show_default=True,
                 help="batch_size of fit and predict (Keras's default is 32)."),
    click.option("--stateful/--stateless", default=False, show_default=True,
                 help="The layer's stateful argument."),
    click.option("--epochs", type=ASCII_INT, default=1, show_default=True),
    click.option("--shuffle", type=click.Choice(["true", "false", "batch"]), is_flag=False, flag_value="true",
                 default="true", show_default=True,
                 help="fit's shuffle (Keras shuffles by default; the permutation is drawn from --seed). "
                      "batch: within each batch (and, in Keras 2, the batch order too)."),
    click.option("--no-shuffle", is_flag=True, help="shuffle=False."),
    click.option("--cell", type=click.Choice([c.value for c in Cell]), default=Cell.LSTM.value, show_default=True,
                 help="The recurrent layer: LSTM (h and c per slot), GRU or SimpleRNN (h)."),
    click.option("--layers", type=ASCII_INT, default=1, show_default=True,
                 help="Stacked recurrent layers, each with its own state per slot."),
    click.option("--bidirectional", is_flag=True, help="Wrap each layer in Bidirectional."),
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
                      "validation_split=, validation_samples=, validation_freq=, initial_epoch=), "
                      "evaluate(n, batch_size=), predict(n, batch_size=, initial_state=\"previous\"), "
                      "train_on_batch(n), test_on_batch(n), predict_on_batch(n), reset_state(), "
                      "save_and_load(), twin(batch_size=b); repeats: predict(1) * 100, "
                      "(fit(), reset_state()) * 10. fit runs the --shape data; the others take the next n "
                      "samples of their own data. batch_size defaults to the model's (--batch, or the twin's)."),
    click.option("--data", type=click.Path(dir_okay=False), metavar="FILE",
                 help="Your x, as a .npy file (memory-mapped) or a .npz archive (with --data-key): its shape "
                      "must be --shape; the advice then says whether the stateful carries (row j into row j+B) "
                      "follow your rows, and how to reorder them."),
    click.option("--data-key", metavar="KEY", help="The array of a .npz file --data names."),
    click.option("--units", type=ASCII_INT, default=8, show_default=True, help="Units of each recurrent layer."),
    click.option("--seed", type=ASCII_INT, default=0, show_default=True,
                 help="Seed of the weights, the inputs and the shuffle."),
]
OUTPUT_OPTIONS = [
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
                 help="Also write the view as a self-contained HTML file."),
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


def _options(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """One decorator for a group of options, listed in the order --help shows them."""
    def apply(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function
    return apply


# The library names Spec's fields; the command line names its flags.
FLAGS = {"samples": "--shape", "timesteps": "--shape", "features": "--shape", "shape": "--shape",
         "batch_size": "--batch", "stateful": "--stateful", "epochs": "--epochs", "shuffle": "--shuffle",
         "cell": "--cell", "layers": "--layers", "bidirectional": "--bidirectional", "keras": "--keras",
         "backend": "--backend",
         "reset": "--reset", "val_samples": "--val-samples", "predict_samples": "--predict-samples",
         "workflow": "--calls",
         "units": "--units", "seed": "--seed", "max_steps": "--max-steps"}
# In sentences, the data's N stands for the samples (N of --shape N,T,F).
TERMS = Terms({**FLAGS, "samples": "N"}, {"shuffle=False": "--no-shuffle (shuffle=False)"})


def build_spec(params: dict[str, Any]) -> Spec:
    samples, timesteps, features = params["shape"]
    shuffle = Shuffle.FALSE if params["no_shuffle"] else Shuffle(params["shuffle"])
    given = {field.name: params[field.name] for field in dataclasses.fields(Spec) if field.name in params}
    try:
        return Spec(samples, timesteps, features, **{**given, "shuffle": shuffle})
    except SpecError as error:
        raise click.BadParameter(error.describe(FLAGS), param_hint=f"'{FLAGS[error.field]}'") from None


def command_line(spec: Spec) -> str:
    """The lstm-inspect arguments that give this spec (defaults left out)."""
    words = [f"--shape {spec.samples},{spec.timesteps},{spec.features}"]
    default = Spec(1, 1, 1)
    for name in ("batch_size", "epochs", "val_samples", "predict_samples", "units", "seed"):
        if getattr(spec, name) != getattr(default, name):
            words.append(f"{FLAGS[name]} {getattr(spec, name)}")
    words += ["--stateful"] * spec.stateful + ["--no-shuffle"] * (spec.shuffle == Shuffle.FALSE)
    words += ["--shuffle batch"] * (spec.shuffle == Shuffle.BATCH)
    for name in ("cell", "layers", "keras"):
        if getattr(spec, name) != getattr(default, name):
            words.append(f"{FLAGS[name]} {getattr(spec, name)}")
    if spec.keras == KerasVersion.THREE:  # the default depends on the machine: always say which
        words.append(f"--backend {spec.backend}")
    words += ["--bidirectional"] * spec.bidirectional
    if spec.reset != default.reset:
        words.append(f"--reset {spec.reset}")
    if spec.workflow is not None:
        words.append(f"--calls {shlex.quote(text(spec.workflow))}")
    return " ".join(words)


@dataclass(frozen=True)
class Output:
    """Where and how the report is shown."""

    output_format: OutputFormat
    view: ViewName
    ascii_only: bool
    svg: str | None
    html: str | None
    max_rows: int
    no_slots: bool
    quiet: bool

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Output:
        return cls(OutputFormat(params["output_format"]), ViewName(params["view"]), params["ascii_only"],
                   params["svg"], params["html"], params["max_rows"], params["no_slots"], params["quiet"])

    def make_view(self, spec: Spec, observer: str = "") -> tuple[View, Console | None]:
        """The view, and the console to export from (--svg, --html)."""
        if self.quiet:
            return _Discard(), None
        if self.output_format == OutputFormat.JSON:
            return JsonWriter(sys.stdout, spec, slots=not self.no_slots, observer=observer), None
        if self.output_format == OutputFormat.MARKDOWN:
            return MarkdownWriter(sys.stdout, self.max_rows, f"lstm-inspect {command_line(spec)}"), None
        if self.output_format == OutputFormat.CSV:
            return CsvWriter(sys.stdout), None
        console = make_console(record=bool(self.svg or self.html))
        if self.view == ViewName.TIMELINE:
            return TimelineView(console, spec, self.ascii_only), console
        return TableView(console, self.max_rows, self.ascii_only), console

    def export(self, console: Console | None, spec: Spec) -> None:
        if console is None:
            return
        if self.svg:
            write_atomically(self.svg, console.export_svg(title=f"lstm-inspect {command_line(spec)}", clear=False))
        if self.html:
            write_atomically(self.html, console.export_html(clear=False))


class _Discard:
    """--quiet: the run goes on, nothing is shown."""

    def add(self, result: StepResult) -> None:
        pass

    def finish(self, report: Report) -> None:
        pass


@dataclass(frozen=True)
class Expectations:
    """What a CI script asserts about the run; None means "not asserted"."""

    reset_events: int | None = None
    slot_resets: int | None = None
    slot_carries: int | None = None
    error: bool | None = None
    strict: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Expectations:
        return cls(params["expect_resets"], params["expect_slot_resets"], params["expect_carries"],
                   params["expect_error"], params["strict"])

    def failures(self, report: Report) -> list[str]:
        summary = report.summary
        checks = [("reset events", self.reset_events, summary.reset_events, "reset event", None),
                  ("slot resets", self.slot_resets, summary.slot_resets, "slot reset", None),
                  ("slot carries", self.slot_carries, summary.slot_carries, "slot carry", "slot carries")]
        failed = []
        for name, expected, actual, _, _ in checks:
            if expected is not None and expected != actual:
                others = ", ".join(plural(count, one, many) for other, _, count, one, many in checks if other != name)
                failed.append(f"expected {expected:,} {name}, found {actual:,} ({others})")
        raised = report.error is not None
        if self.error is not None and self.error != raised:
            found = f"an error at step {report.error.step}" if report.error else "no error"
            failed.append(f"expected Keras {'to raise' if self.error else 'not to raise'}, found {found}")
        if report.keras is not None and not report.keras.agree:
            failed.append(f"real Keras disagrees: {report.keras.summary_line()}")
        if self.strict and report.warnings:
            failed.append(f"--strict: {plural(len(report.warnings), 'warning')}")
        return failed

    def exit_code(self, report: Report, failures: list[str]) -> int:
        if failures or not report.ok:
            return EXIT_MISMATCH
        if report.error and not self.error:
            return EXIT_KERAS_RAISES  # unless Keras raising was the expected answer
        return EXIT_OK


@click.command(cls=InspectCommand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@_options(SETUP_OPTIONS)
@_options(OUTPUT_OPTIONS)
@_options(RUN_OPTIONS)
@_options(CI_OPTIONS)
@click.version_option(__version__, "--version", prog_name="lstm-inspect")
def main(**params: Any) -> None:
    """When does Keras reset a recurrent layer's state for this setup, and when does it carry it?

    Models model.fit(x, y, batch_size=B, epochs=E, shuffle=S, validation_data=V) then
    model.predict(P, batch_size=B), or the workflow --calls writes, derives the schedule
    Keras follows, runs a PyTorch RNN whose state is handled as Keras handles it, and
    checks every slot's initial state on the tensors.

    Exit codes: 0 ok; 1 the tensors (or real Keras) differ from the prediction, or a CI
    expectation failed; 2 usage error; 3 Keras itself would raise for this setup;
    74 the output could not be written; 130 interrupted; 141 the output pipe was
    closed; 143 terminated.
    """
    ctx = click.get_current_context()
    reject_conflicts(ctx)
    if params["replay"] is not None:
        replay(ctx, params)
        return
    if params["shape"] is None:
        raise click.UsageError("Missing option '--shape' (or --replay FILE)")
    spec = build_spec(params)
    if params["emit"]:
        print_snippet(spec, Emit(params["emit"]))
        return
    output, expectations = Output.from_params(params), Expectations.from_params(params)
    check_before_running(spec, params)
    inspection = _inspection(spec, params)
    errors = make_console(stderr=True)
    if not output.quiet:
        for warning in inspection.warnings:
            _say(errors, Text.assemble(("warning: ", "yellow"), warning))
    report = show(inspection, output, spec)
    if not output.quiet:
        for warning in report.warnings[len(inspection.warnings):]:  # those the run found
            _say(errors, Text.assemble(("warning: ", "yellow"), warning))
    failures = expectations.failures(report)
    for failure in failures:
        _say(errors, Text.assemble(("failed: ", "bold red"), failure))
    ctx.exit(expectations.exit_code(report, failures))


# What a saved probe run decides itself: the setup, and how it was run.
REPLAY_CONFLICTS = ("data", "data_key", "shape", "batch_size", "stateful", "epochs", "shuffle", "no_shuffle", "cell",
                    "layers",
                    "bidirectional", "keras", "backend", "reset", "val_samples", "predict_samples", "workflow",
                    "units", "seed", "device", "max_steps", "dry_run", "evidence", "evidence_batch", "against", "emit")


def replay(ctx: click.Context, params: dict[str, Any]) -> None:
    """--replay FILE: a StateProbe run, shown and checked as a run of the command is."""
    for name in REPLAY_CONFLICTS:
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(f"--replay cannot be combined with {_option_name(ctx, name)}: the saved run "
                                   "holds its own setup")
    from .probe import load, replayed

    try:
        spec, steps, data = load(params["replay"])
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--replay'") from None
    output, expectations = Output.from_params(params), Expectations.from_params(params)
    check_before_running(spec, {**params, "dry_run": True, "evidence": False, "against": None})
    results, report = replayed(spec, steps, data)
    errors = make_console(stderr=True)
    if not output.quiet:
        for warning in report.warnings:
            _say(errors, Text.assemble(("warning: ", "yellow"), warning))
    show(_Replayed(results, report), output, spec, observer=report.observer)
    failures = expectations.failures(report)
    for failure in failures:
        _say(errors, Text.assemble(("failed: ", "bold red"), failure))
    ctx.exit(expectations.exit_code(report, failures))


def _say(errors: Console, text: Text) -> None:
    """A line on stderr; a stderr that cannot take it changes neither the run nor its code."""
    with contextlib.suppress(OSError):
        errors.print(text, soft_wrap=True)


@dataclass(frozen=True)
class _Replayed:
    """A saved run, shown as an Inspection is: its steps, then its report."""

    results: list[StepResult]
    report: Report

    def __iter__(self) -> Iterator[StepResult]:
        return iter(self.results)


def show(inspection: Inspection | _Replayed, output: Output, spec: Spec, observer: str = "") -> Report:
    """Feed the view every step, then the report, and write the exports. Any failure to write
    ends the command with one line and a non-zero code; the exports are written whatever
    happens to standard output."""
    closed = not output.quiet and not _stdout_open()
    if closed:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the exports' sake; the process ends below)
    console: Console | None = None
    try:
        view, console = output.make_view(spec, observer)  # JSON and CSV write their heads at once
        for result in inspection:
            view.add(result)
        view.finish(inspection.report)
        if sys.stdout is not None:
            sys.stdout.flush()  # buffered bytes fail here, not silently at exit
    except BrokenPipeError:
        output.export(console, spec)
        raise  # InspectCommand: 141
    except OSError as failed:
        _discard_stdout()
        with contextlib.suppress(OSError):
            output.export(console, spec)
        _output_failed(failed.strerror or str(failed))
    try:
        output.export(console, spec)
    except OSError as failed:
        _output_failed(f"{failed.filename or 'an export'}: {failed.strerror or failed}")
    if closed:
        _output_failed("standard output is closed")
    return inspection.report


def _stdout_open() -> bool:
    """False where the shell closed it (`>&-`): Python then has no sys.stdout, or a dead descriptor."""
    if sys.stdout is None:
        return False
    try:
        os.fstat(sys.stdout.fileno())
    except (ValueError, io.UnsupportedOperation):
        return True  # a stream with no descriptor (a test's, an IDE's) is open
    except OSError:
        return False
    return True


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail a second time."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _output_failed(why: str) -> None:
    click.echo(f"lstm-inspect: cannot write the output: {why}", err=True)
    raise SystemExit(EXIT_OUTPUT)


def print_snippet(spec: Spec, emit: Emit) -> None:
    if not _stdout_open():
        _output_failed("standard output is closed")
    if spec.stateful and spec.shuffle and spec.workflow is None:
        click.echo("note: the snippet fits with shuffle=False, as a stateful layer needs "
                   "(slot i of batch k+1 continues slot i of batch k)", err=True)
    snippet = keras_snippet if emit == Emit.KERAS else torch_snippet
    click.echo(snippet(spec, command_line(spec)), nl=False)


def read_data(spec: Spec, params: dict[str, Any]) -> Continuity | None:
    """--data: the user's x, memory-mapped, checked against --shape and read for its continuity."""
    path, key = params["data"], params["data_key"]
    if path is None:
        if key is not None:
            raise click.UsageError("--data-key names an array of the file --data gives: give --data too")
        return None
    try:
        x = open_data(path, key)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--data'") from None
    expected = (spec.samples, spec.timesteps, spec.features)
    if tuple(x.shape) != expected:
        raise click.BadParameter(f"{path} has shape {tuple(x.shape)}, not --shape {expected}", param_hint="'--data'")
    if not np.issubdtype(x.dtype, np.floating):
        raise click.BadParameter(f"{path} holds {x.dtype}, not floating-point numbers", param_hint="'--data'")
    return continuity(x, spec.batch_size, path=path)


def _inspection(spec: Spec, params: dict[str, Any]) -> Inspection:
    data = read_data(spec, params)

    def start(against_keras: bool) -> Inspection:
        return inspect(spec, dry_run=params["dry_run"], device=params["device"],
                       evidence=params["evidence"], evidence_batch=params["evidence_batch"],
                       max_steps=params["max_steps"], against_keras=against_keras, terms=TERMS,
                       advice=params["advice"], data=data)

    if params["against"] is None:
        return start(False)
    _check_keras(spec)
    from .oracle import OracleError

    try:
        return start(True)
    except OracleError as failed:
        raise click.UsageError(f"--against keras: {failed}") from None


def check_before_running(spec: Spec, params: dict[str, Any]) -> None:
    """Usage errors that depend on more than one option or on this machine, found before any work."""
    if params["svg"] is not None and params["svg"] == params["html"]:
        raise click.UsageError("--svg and --html name the same file: one would overwrite the other")
    for option in ("svg", "html"):
        if params[option] == "":
            raise click.BadParameter("an empty path names no file", param_hint=f"'--{option}'")
        problem = params[option] and check_writable(params[option])
        if problem:
            raise click.BadParameter(problem, param_hint=f"'--{option}'")
    if spec.calls > MAX_STEPS:
        raise click.UsageError(f"the schedule has {spec.calls:,} steps; lstm-inspect follows at most {MAX_STEPS:,} "
                               "(fewer epochs or a larger --batch)")
    if spec.layers > MAX_LAYERS:
        raise click.BadParameter(f"at most {MAX_LAYERS} stacked layers", param_hint="'--layers'")
    check_memory(spec, params)
    if params["dry_run"]:
        return
    if params["device"] == "cuda" and not _cuda_available():
        raise click.BadParameter("CUDA is not available here: use --device cpu or auto", param_hint="'--device'")
    batches = spec.batches_per_epoch
    if params["evidence_batch"] >= batches:
        raise click.BadParameter(f"epoch 0 has {plural(batches, 'training batch', 'training batches')}"
                                 f" (0 to {batches - 1})", param_hint="'--evidence-batch'")


# What to do about the part of the estimate that weighs most.
MEMORY_FIXES = {"start-up": "a machine with more memory", "the training order": "a smaller N",
                "the weights": "fewer --units or --layers",
                "the timeline's columns": "--view table", "one batch": "a smaller --batch, or --dry-run for the "
                "schedule alone", "the state": "a smaller --batch", "the evidence": "--no-evidence",
                "real Keras": "a smaller N for --against keras"}


def check_memory(spec: Spec, params: dict[str, Any]) -> None:
    """Refuse, before any work, what this process may not hold, rather than be killed: the
    estimate (memory.estimate) against the room each limit leaves (memory.rooms)."""
    dry_run = params["dry_run"]
    parts = estimate(spec, dry_run=dry_run, evidence=params["evidence"] and not dry_run,
                     against_keras=params["against"] is not None, timeline=params["view"] == ViewName.TIMELINE)
    for room in rooms():
        needed = sum(parts.values()) + (VIRTUAL_ALLOWANCE if room.virtual and not dry_run else 0)
        if needed > room.bytes:
            largest = max(parts, key=lambda part: parts[part])
            what = f"the training order of {spec.samples:,} samples" if largest == "the training order" else largest
            raise click.UsageError(f"this needs about {needed / 2**30:,.1f} GiB, most of it for {what}, more than "
                                   f"the {room.bytes / 2**30:,.1f} GiB that {room.source} leaves: use "
                                   f"{MEMORY_FIXES[largest]}")


def _cuda_available() -> bool:
    import torch  # only asked when the user names CUDA

    return torch.cuda.is_available()


# What --against keras needs installed, per Keras and backend: (distributions, the extra that brings them).
ORACLE_NEEDS = {
    (KerasVersion.THREE, Backend.TORCH): (("keras", "torch"), "keras"),
    (KerasVersion.THREE, Backend.TENSORFLOW): (("keras", "tensorflow"), "tensorflow"),
    (KerasVersion.THREE, Backend.JAX): (("keras", "jax"), "jax"),
    (KerasVersion.TWO, Backend.TENSORFLOW): (("tf_keras", "tensorflow"), "tf-keras"),
}


def _check_keras(spec: Spec) -> None:
    """--against keras: usage errors for a Keras that cannot serve as the oracle, found
    without importing it (it runs in a process of its own)."""
    modules, extra = ORACLE_NEEDS[spec.keras, spec.backend]
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    name = facts_for(spec).name
    if missing:
        raise click.UsageError(f"--against keras needs {' and '.join(missing)} for {name}: "
                               f"pip install 'lstm-inspect[{extra}]'")
    if spec.keras == KerasVersion.THREE:
        try:
            installed: str | None = importlib.metadata.version("keras")
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed is None or not installed.startswith("3."):
            found = f" (found Keras {installed})" if installed else ""
            raise click.UsageError(f"--against keras needs Keras 3{found}: pip install 'lstm-inspect[keras]'")


if __name__ == "__main__":  # python -m lstm_inspect.cli, as python -m lstm_inspect
    main()
