"""The command: `lstm-inspect`, for a setup, or --replay for a run StateProbe saved."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text

from ..api import inspect
from ..check.inspection import Inspection
from ..core.facts import facts_for
from ..core.spec import Spec
from ..views.console import make_console
from .checks import check_before_running, check_keras
from .command import InspectCommand
from .conflicts import REPLAY_CONFLICTS, option_name, reject_conflicts
from .io import say
from .options import (
    CI_OPTIONS,
    OUTPUT_OPTIONS,
    RUN_OPTIONS,
    SETUP_OPTIONS,
    Emit,
    options,
)
from .output import Output, Replayed, print_snippet, show
from .policy import Expectations
from .progress import spinner, wanted
from .setup import EXAMPLES, TERMS, build_spec, print_example, read_data


def print_version(ctx: click.Context, _: click.Parameter, asked: bool) -> None:
    """--version, as click's version_option prints it; the installed version is looked up only when
    asked (reading the package's metadata costs a run 25 ms)."""
    if asked and not ctx.resilient_parsing:
        from .. import __version__

        click.echo(f"lstm-inspect, version {__version__}")
        ctx.exit()


@click.command(cls=InspectCommand, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@options(SETUP_OPTIONS, "The setup")
@options(OUTPUT_OPTIONS, "What it prints and writes")
@options(RUN_OPTIONS, "How it runs and checks")
@options(CI_OPTIONS, "Scripts and CI")
@click.option("--version", is_flag=True, is_eager=True, expose_value=False, callback=print_version,
              help="Show the version and exit.")
@click.option("--example", type=click.Choice(EXAMPLES), metavar="NAME", is_eager=True, expose_value=False,
              callback=print_example, help=f"Print where the shipped example NAME is and exit ({', '.join(EXAMPLES)}): "
              '--replay "$(lstm-inspect --example probe-run.json)".')
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
        check_emitted(spec)
        print_snippet(spec, Emit(params["emit"]))
        return
    output, expectations = Output.from_params(params), Expectations.from_params(params)
    check_before_running(spec, params)
    inspection = _inspection(spec, params)
    errors = make_console(stderr=True)
    if not output.quiet:
        for warning in inspection.warnings:
            say(errors, Text.assemble(("warning: ", "yellow"), warning))
    report = show(inspection, output, spec, progress=spec.calls if wanted(params) else None)
    if not output.quiet:
        for warning in report.warnings[len(inspection.warnings):]:  # those the run found
            say(errors, Text.assemble(("warning: ", "yellow"), warning))
    failures = expectations.failures(report)
    for failure in failures:
        say(errors, Text.assemble(("failed: ", "bold red"), failure))
    ctx.exit(expectations.exit_code(report, failures))


def check_emitted(spec: Spec) -> None:
    """What the emitted programs cannot write yet: refused in one line."""
    if spec.stateful and spec.takes_states:
        raise click.UsageError("--emit with initial_state= on a stateful layer is not followed yet: the programs "
                               "build no model taking its states as inputs")
    if spec.lengths and spec.cell.convolutional:
        raise click.UsageError("--emit with --lengths and --cell convlstm2d is not followed yet: the PyTorch "
                               "program packs no frames")
    if spec.go_backwards and spec.layers > 1:
        raise click.UsageError("--emit with stacked --go-backwards layers is not followed yet: the PyTorch "
                               "program would flip each layer's input again")


def replay(ctx: click.Context, params: dict[str, Any]) -> None:
    """--replay FILE: a StateProbe run, shown and checked as a run of the command is."""
    for name in REPLAY_CONFLICTS:
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(f"--replay cannot be combined with {option_name(ctx, name)}: the saved run "
                                   "holds its own setup")
    from ..keras.records import load, replayed

    try:
        saved = load(params["replay"])
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--replay'") from None
    spec = saved.spec
    output, expectations = Output.from_params(params), Expectations.from_params(params)
    check_before_running(spec, {**params, "dry_run": True, "evidence": False, "against": None})
    report = replayed(saved)
    errors = make_console(stderr=True)
    if not output.quiet:
        for warning in report.warnings:
            say(errors, Text.assemble(("warning: ", "yellow"), warning))
    try:
        show(Replayed(saved.results(), report), output, spec, observer=report.observer,
             progress=saved.tally.steps if wanted(params) else None)
    except ValueError as error:  # the file changed after it was checked
        raise click.BadParameter(str(error), param_hint="'--replay'") from None
    failures = expectations.failures(report)
    for failure in failures:
        say(errors, Text.assemble(("failed: ", "bold red"), failure))
    ctx.exit(expectations.exit_code(report, failures))


def _inspection(spec: Spec, params: dict[str, Any]) -> Inspection:
    data = read_data(spec, params)

    def start(against_keras: bool) -> Inspection:
        return inspect(spec, dry_run=params["dry_run"], device=params["device"],
                       evidence=params["evidence"], evidence_batch=params["evidence_batch"],
                       max_steps=params["max_steps"], against_keras=against_keras, terms=TERMS,
                       advice=params["advice"], data=data)

    if params["against"] is None:
        return start(False)
    check_keras(spec)
    from ..keras.oracle.errors import OracleError

    try:
        with spinner(f"running real {facts_for(spec).name} (--against keras) in a process of its own",
                     wanted(params)):
            return start(True)
    except OracleError as failed:
        raise click.UsageError(f"--against keras: {failed}") from None
