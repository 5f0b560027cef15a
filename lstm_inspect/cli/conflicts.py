"""Options that make no sense together: rejected, never settled silently."""

from __future__ import annotations

import click

from .options import (
    ViewName,
)

# Options that make no sense together: rejected, never settled silently.
CONFLICTS = {
    "no_shuffle": ("shuffle",),
    "workflow": ("epochs", "val_samples", "predict_samples"),  # shorthand for a workflow: one or the other
    # --emit prints code instead of running: every option about the run or its output clashes.
    "lengths": ("data",),  # the data's own padding is read from it (--mask-value), not made
    "mask_value": ("pad",),  # the masked steps lie where the data has them
    "emit": ("data", "data_key", "advice", "against", "output_format", "view", "ascii_only", "svg", "html", "diagram",
             "max_rows",
             "dry_run", "device",
             "max_steps", "no_slots", "evidence", "evidence_batch", "quiet", "expect_resets",
             "expect_slot_resets", "expect_carries", "expect_error", "strict", "no_progress",
             "replicas", "mask_value"),  # the programs build no MirroredStrategy and read no data's masks yet
    "quiet": ("output_format", "max_rows", "view", "svg", "html", "diagram", "ascii_only", "no_progress"),
    "dry_run": ("evidence", "evidence_batch", "against", "device", "max_steps"),
    "against": ("max_steps",),  # Keras runs every step: the mirror's shown must be checked too
}

# Options that shape one output format only.
FORMAT_ONLY = {"view": ("table",), "ascii_only": ("table",), "svg": ("table",), "html": ("table",),
               "max_rows": ("table", "markdown"), "no_slots": ("json",), "against": ("table", "json")}


def option_name(ctx: click.Context, name: str) -> str:
    """The option as given: of a pair of flags (--stateful/--stateless), the one the value says."""
    param = next(p for p in ctx.command.params if p.name == name)
    off = isinstance(param, click.Option) and param.secondary_opts and ctx.params.get(name) is False
    return param.secondary_opts[0] if off else param.opts[0]


def reject_conflicts(ctx: click.Context) -> None:
    given = {name for name in ctx.params
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    if "max_rows" in given and ctx.params["view"] == ViewName.TIMELINE:
        raise click.UsageError("--max-rows cannot be combined with --view timeline: the timeline folds "
                               "to the terminal's width", ctx)
    if "data" in given and not ctx.params["advice"]:
        raise click.UsageError("--data cannot be combined with --no-advice: what --data reads is told in the advice",
                               ctx)
    if "evidence_batch" in given and not ctx.params["evidence"]:
        raise click.UsageError("--evidence-batch cannot be combined with --no-evidence", ctx)
    for name in ("kernel", "padding", "data_format"):
        if name in given and ctx.params["cell"] != "convlstm2d" and "replay" not in given:
            raise click.UsageError(f"{option_name(ctx, name)} is ConvLSTM2D's: it needs --cell convlstm2d", ctx)
    output_format = ctx.params["output_format"]
    for name, formats in FORMAT_ONLY.items():
        if name in given and output_format not in formats:
            raise click.UsageError(f"{option_name(ctx, name)} cannot be combined with --format {output_format}: "
                                   f"it applies to --format {' or '.join(formats)}", ctx)
    for option, others in CONFLICTS.items():
        if option in given:
            for other in others:
                if other in given:
                    raise click.UsageError(f"{option_name(ctx, option)} cannot be combined with "
                                           f"{option_name(ctx, other)}", ctx)


REPLAY_CONFLICTS = ("data", "data_key", "shape", "batch_size", "stateful", "epochs", "shuffle", "no_shuffle", "cell",
                    "layers", "bidirectional", "keras", "backend", "reset", "val_samples", "predict_samples",
                    "workflow", "fixed_batch", "replicas", "kernel", "padding", "data_format", "lengths", "pad", "mask",
                    "go_backwards", "mask_value", "units", "seed",
                    "device", "max_steps", "dry_run", "evidence", "evidence_batch", "against", "emit")
