"""The console script: loads the command line with Ctrl-C already answered, so that an
interrupt while click, rich and numpy are still loading ends as quietly as one later on.

Only what answers Ctrl-C is loaded before the answer: the package (`lstm_inspect/__init__.py`,
which imports nothing that takes time), this module and `signal`; so not even typing."""

import signal
import sys

EXIT_INTERRUPTED = 130


def _interrupted(signum: int, frame: object) -> None:
    sys.stderr.write("lstm-inspect: interrupted\n")
    raise SystemExit(EXIT_INTERRUPTED)


def run() -> None:
    # A shell that started us with Ctrl-C ignored (`trap '' INT`, a background job) keeps it so.
    answering = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if answering:
        signal.signal(signal.SIGINT, _interrupted)
    from .cli import main  # the heavy imports

    if answering:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the command handles Ctrl-C itself
    try:
        main(prog_name="lstm-inspect")
    finally:
        if answering:
            # The answer is given: a Ctrl-C while Python winds down would only turn it into a traceback.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
