"""Progress on long work, on stderr: a bar of steps done, their total and the time left for the
checked run (and a --replay of a large file), a spinner while real Keras runs (--against keras).
Only where stderr is a terminal, outside CI, not --quiet or --no-progress, and not where a
streaming format writes to the same terminal; and only once the work has taken a second: a short
run shows nothing. The total is the workflow's layer calls, counted without unrolling it
(Spec.calls), or the steps a saved run holds."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..views.console import make_console
from .options import OutputFormat

DELAY = 1.0  # seconds of work before anything is shown


def wanted(params: dict[str, Any]) -> bool:
    """Whether this command may show progress at all."""
    streams = params.get("output_format", OutputFormat.TABLE) != OutputFormat.TABLE
    return (not params.get("no_progress") and not params.get("quiet") and not os.environ.get("CI")
            and _terminal(sys.stderr) and not (streams and _terminal(sys.stdout)))


def _terminal(stream: Any) -> bool:
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


def _console() -> Console:
    return make_console(stderr=True)


def stepped(results: Iterable[Any], total: int | None, what: str = "steps") -> Iterator[Any]:
    """`results`, passed through; where a `total` is given, a bar once they have taken DELAY seconds."""
    if total is None:
        yield from results
        return
    started, progress, task = time.monotonic(), None, None
    try:
        for done, result in enumerate(results, 1):
            if progress is None and time.monotonic() - started >= DELAY:
                progress = _bar(what)
                progress.start()
                task = progress.add_task(what, total=total)
            if progress is not None and task is not None:
                progress.update(task, completed=done)
            yield result
    finally:
        if progress is not None:
            progress.stop()


def _bar(what: str) -> Progress:
    return Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("left"), TimeRemainingColumn(), console=_console(), transient=True)


@contextlib.contextmanager
def spinner(text: str, on: bool) -> Iterator[None]:
    """A spinner with `text` while the block runs, where `on`."""
    if not on:
        yield
        return
    with _console().status(text):
        yield
