"""`python -m lstm_inspect.cli` runs the command, as `python -m lstm_inspect` does."""

from .main import main

main(prog_name="lstm-inspect")
