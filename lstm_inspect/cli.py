"""The command line: parse and validate options, build the Inspection, pick a renderer."""

from __future__ import annotations

import sys
from enum import StrEnum

import click
from rich.console import Console
from rich.text import Text

from . import __version__
from .report import Inspection
from .render import render_table, write_json
from .spec import ResetPolicy, Spec, SpecError, parse_shape


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


class ShapeType(click.ParamType):
    name = "N,T,F"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            return parse_shape(value)
        except SpecError as error:
            self.fail(str(error), param, ctx)


class ResetType(click.ParamType):
    name = "never|epoch|every:K"

    def convert(self, value, param, ctx):
        if isinstance(value, ResetPolicy):
            return value
        try:
            return ResetPolicy.parse(value)
        except SpecError as error:
            self.fail(str(error), param, ctx)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--shape", type=ShapeType(), required=True,
              help="Data shape: N sequences of T timesteps of F features.")
@click.option("--batch", "batch_size", type=int, default=32, show_default=True,
              help="batch_size of fit and predict (Keras's default is 32).")
@click.option("--stateful/--stateless", default=False, show_default=True,
              help="The layer's stateful argument.")
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option("--shuffle/--no-shuffle", default=True, show_default=True,
              help="fit's shuffle (Keras shuffles by default); the permutation is drawn from --seed.")
@click.option("--reset", type=ResetType(), default="never", show_default=True,
              help="A reset callback (stateful only): epoch = layer.reset_state() in on_epoch_begin; "
                   "every:K = before each training batch whose index is a multiple of K.")
@click.option("--val-samples", type=int, default=0, show_default=True,
              help="Validation samples, run after each epoch's training (validation_data).")
@click.option("--predict-samples", type=int, default=0, show_default=True,
              help="Samples passed to predict after fit.")
@click.option("--units", type=int, default=8, show_default=True, help="LSTM units.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the weights, the inputs and the shuffle.")
@click.option("--format", "output_format", type=click.Choice([f.value for f in OutputFormat]),
              default=OutputFormat.TABLE.value, show_default=True,
              help="table for people; json (schema 1) for scripts.")
@click.option("--max-rows", type=click.IntRange(min=3), default=40, show_default=True,
              help="Table rows before the middle of a long schedule is folded into one row.")
@click.option("--dry-run", is_flag=True,
              help="Derive the schedule only: no torch, no LSTM run, nothing observed.")
@click.version_option(__version__, "--version", prog_name="lstm-inspect")
def main(shape, batch_size, stateful, epochs, shuffle, reset, val_samples, predict_samples, units,
         seed, output_format, max_rows, dry_run):
    """When does Keras reset an LSTM's state for this setup, and when does it carry it?

    Models model.fit(x, y, batch_size=B, epochs=E, shuffle=S, validation_data=V) then
    model.predict(P, batch_size=B), derives the schedule Keras follows, runs a PyTorch
    LSTM whose state is handled as Keras handles it, and checks every slot's initial
    state on the tensors.

    Exit codes: 0 ok; 1 the tensors differ from the prediction; 2 usage error;
    3 Keras itself would raise for this setup.
    """
    samples, timesteps, features = shape
    try:
        spec = Spec(samples, timesteps, features, batch_size=batch_size, stateful=stateful,
                    epochs=epochs, shuffle=shuffle, reset=reset, val_samples=val_samples,
                    predict_samples=predict_samples, units=units, seed=seed)
    except SpecError as error:
        raise click.BadParameter(str(error), param_hint=f"'{error.option}'") from None
    inspection = Inspection(spec, dry_run=dry_run)
    errors = Console(stderr=True, highlight=False)
    for warning in inspection.warnings:
        errors.print(Text.assemble(("warning: ", "yellow"), warning), soft_wrap=True)
    if output_format == OutputFormat.JSON:
        write_json(inspection, sys.stdout)
    else:
        render_table(inspection, Console(highlight=False), max_rows)
    click.get_current_context().exit(inspection.exit_code)
