"""`python -m lstm_inspect.cli` runs the command, as `python -m lstm_inspect` does."""

from ..entry import run

run()
