"""Progress on stderr: a bar (steps done, their total, time left) where stderr is a terminal and
the work takes more than a second; nothing in a pipe, in CI, with --quiet or --no-progress."""

import os
import pty
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from lstm_inspect.cli import main

LONG = ["--shape", "20000,20,1", "--batch", "4", "--no-evidence", "--no-advice"]  # 5,000 checked steps


def on_a_terminal(*args, **env):
    """The command's stderr as a terminal shows it (stdout to a pipe): everything written there."""
    reader, writer = pty.openpty()
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    process = subprocess.Popen([str(Path(sys.executable).parent / "lstm-inspect"), *args], stdout=subprocess.PIPE,
                               stderr=writer, env={**environment, "COLUMNS": "120", "TERM": "xterm", **env})
    os.close(writer)
    shown = b""
    while True:
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # the command closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(reader)
    stdout = process.stdout.read()
    assert process.wait() == 0
    return shown.decode(errors="replace"), stdout.decode()


def test_a_long_run_shows_its_steps_done_of_the_total_on_a_terminal():
    shown, stdout = on_a_terminal(*LONG)
    assert "steps" in shown and "/5000" in shown and "left" in shown
    assert "5,000 steps" in stdout and "steps" not in stdout.split("Steps of")[0]  # none of it on stdout


def test_nothing_is_shown_in_ci_with_no_progress_or_quiet():
    assert "/5000" not in on_a_terminal(*LONG, CI="true")[0]
    assert "/5000" not in on_a_terminal(*LONG, "--no-progress")[0]
    assert on_a_terminal(*LONG, "--quiet")[0] == ""


def test_a_pipe_shows_no_progress():
    result = CliRunner().invoke(main, ["--shape", "8,5,1", "--batch", "4"])
    assert result.stderr == ""
