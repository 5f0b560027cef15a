"""The click command's behaviour around the run: an option given twice is refused, a usage error
is one line, and a closed pipe, an output that cannot be written, Ctrl-C or SIGTERM each end the
command quietly with the shell's conventional code."""

from __future__ import annotations

import signal
import sys
from collections import Counter
from typing import Any

import click

from .io import install, output_failed, stdout_open, terminated, whole_writes, writing
from .options import GROUP_OF
from .policy import EXIT_INTERRUPTED

# What --help ends with, after the exit codes its text gives: examples and shell completion.
HELP_END: list[tuple[str, list[Any]]] = [
    ("Examples", [("lstm-inspect --shape 1000,20,1 --batch 200", "the headline: stateless, 5 batches"),
                  ("lstm-inspect --shape 1000,20,1 --batch 50 --stateful --no-shuffle --reset epoch",
                   "a stateful layer reset every epoch"),
                  ('lstm-inspect --shape 8,5,1 --batch 4 --stateful --calls "fit(epochs=2, batch_size=4); '
                   'predict(4)"', "a whole workflow"),
                  ("lstm-inspect --shape 1000,20,1 --batch 200 --against keras", "held to real Keras too"),
                  ("lstm-inspect --replay run.json --expect-resets 2", "a run a probe saved, checked in CI")]),
    ("Shell completion (click's)", ['eval "$(_LSTM_INSPECT_COMPLETE=bash_source lstm-inspect)"   (zsh_source, '
                                    "fish_source for zsh and fish)"]),
]


class InspectCommand(click.Command):
    """Refuses an option given twice (or a flag given both ways) rather than keep the last; says
    a usage error in one line; ends quietly, with the shell's conventional codes, on a closed
    pipe, an output it cannot write, Ctrl-C or SIGTERM (an export under way leaves no temporary
    file). --help and --version answer the same way."""

    def make_context(self, info_name: str | None, args: list[str], *more: Any, **options: Any) -> click.Context:
        if not stdout_open() and any(arg in ("--help", "-h", "--version") for arg in args):
            output_failed("standard output is closed")
        with writing():
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

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The options in their groups (click's own sections: no other dependency), then the rest."""
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                sections.setdefault(GROUP_OF.get(param.name or "", "Other options"), []).append(record)
        for title, records in sections.items():
            with formatter.section(title):
                formatter.write_dl(records)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, lines in HELP_END:
            with formatter.section(title):
                formatter.write_dl(lines) if isinstance(lines[0], tuple) else formatter.write_text("\n".join(lines))

    def invoke(self, ctx: click.Context) -> Any:
        previous = install(signal.SIGTERM, terminated)
        try:
            with writing(), whole_writes():
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
