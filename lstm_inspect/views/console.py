"""The consoles rich prints to: colour only on a terminal, none with NO_COLOR, a width never 0."""

from __future__ import annotations

import os

from rich.console import Console


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """rich exits with 1 here; the command answers every closed pipe alike (141)."""
        raise BrokenPipeError


# A width of 0 (COLUMNS=0) prints nothing at all: take the width of a terminal of unknown size.
DEFAULT_WIDTH = 80


def make_console(stderr: bool = False, record: bool = False) -> Console:
    """rich decides colour from the terminal; NO_COLOR (https://no-color.org) turns off every
    escape code, bold and italic included, not only the colours rich drops for it."""
    if os.environ.get("NO_COLOR"):
        console = _Console(stderr=stderr, highlight=False, record=record, color_system=None)
    else:
        console = _Console(stderr=stderr, highlight=False, record=record)
    if console.width < 1:
        console.width = DEFAULT_WIDTH
    return console
