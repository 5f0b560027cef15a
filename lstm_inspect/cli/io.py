"""Standard output and error as the command writes them: a closed pipe ends it with 141, an
output it cannot write with 74, each said in one line."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from .policy import EXIT_BROKEN_PIPE, EXIT_OUTPUT, EXIT_TERMINATED


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """A closed pipe ends the command with 141, an output it cannot write with 74: one line,
    no traceback, and nothing more written."""
    try:
        yield
    except BrokenPipeError:
        discard_stdout()  # the reader has gone (`| head`): stop quietly
        raise SystemExit(EXIT_BROKEN_PIPE) from None
    except OSError as failed:
        if failed.filename is not None:
            raise  # a file's, not standard output's: said where it is written
        discard_stdout()
        output_failed(failed.strerror or str(failed))


class _WholeWrites(io.RawIOBase):
    """Standard output, each write written whole: a pipe whose reader leaves mid-write takes a
    short write without an error, and Python's buffered file then drops the rest silently; here
    the rest is written too, so that the closed pipe is seen (BrokenPipeError: exit 141)."""

    def __init__(self, descriptor: int):
        super().__init__()
        self.descriptor = descriptor

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(self.descriptor, view[done:])
        return done


@contextlib.contextmanager
def whole_writes() -> Iterator[None]:
    """Where standard output is a pipe, every write to it written whole (see _WholeWrites)."""
    stdout = sys.stdout
    try:
        descriptor = stdout.fileno() if stdout is not None else -1
        is_pipe = descriptor >= 0 and stat.S_ISFIFO(os.fstat(descriptor).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        is_pipe = False  # closed, or a stream with no descriptor (a test's): as it is
    if not is_pipe:
        yield
        return
    assert stdout is not None
    stdout.flush()
    sys.stdout = io.TextIOWrapper(_WholeWrites(descriptor), encoding=stdout.encoding, errors=stdout.errors,
                                  line_buffering=bool(getattr(stdout, "line_buffering", False)), write_through=True)
    try:
        yield
    finally:
        sys.stdout = stdout


def install(signum: int, handler: Any) -> Any:
    """Install a handler where the signal still has its default one, in the main thread only;
    returns what to restore (None: nothing installed)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signum) != signal.SIG_DFL:
        return None
    return signal.signal(signum, handler)


def terminated(signum: int, frame: Any) -> None:
    raise SystemExit(EXIT_TERMINATED)  # unwinds like Ctrl-C: temporary files are removed


def say(errors: Console, text: Text) -> None:
    """A line on stderr; a stderr that cannot take it changes neither the run nor its code."""
    with contextlib.suppress(OSError):
        errors.print(text, soft_wrap=True)


def stdout_open() -> bool:
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


def discard_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail a second time."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def output_failed(why: str) -> None:
    click.echo(f"lstm-inspect: cannot write the output: {why}", err=True)
    raise SystemExit(EXIT_OUTPUT)
