"""Output that cannot be written: every format and view either completes or ends with one line
and a non-zero code (74 for an output error, 141 for a closed pipe, 143 for SIGTERM), and an
export that was asked for is written whatever happens to standard output."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_inspect.cli import main
from lstm_inspect.views import files as formats

BIN = Path(sys.executable).parent / "lstm-inspect"
DRY = ["--shape", "12,5,1", "--batch", "4", "--dry-run"]
OUTPUTS = {"table": [], "timeline": ["--view", "timeline"], "json": ["--format", "json"],
           "csv": ["--format", "csv"], "markdown": ["--format", "markdown"]}


def run_with(stdout: str, args: list[str]) -> tuple[int, str]:
    """Run the command with standard output closed, full (/dev/full), or a pipe whose reader has gone."""
    extra: dict = {}
    if stdout == "closed":
        extra["preexec_fn"] = lambda: os.close(1)
    elif stdout == "full":
        extra["stdout"] = open("/dev/full", "w")  # noqa: SIM115 (closed below)
    else:
        reader, writer = os.pipe()
        os.close(reader)
        extra["stdout"] = writer
    try:
        done = subprocess.run([BIN, *args], stderr=subprocess.PIPE, text=True, timeout=120, **extra)
    finally:
        target = extra.get("stdout")
        if hasattr(target, "close"):
            target.close()
        elif isinstance(target, int):
            os.close(target)
    return done.returncode, done.stderr


@settings(max_examples=15, deadline=None, derandomize=True)
@given(output=st.sampled_from(list(OUTPUTS)), stdout=st.sampled_from(["closed", "full", "gone"]),
       size=st.sampled_from(["12,5,1", "4000,5,1"]))
def test_output_that_cannot_be_written_ends_with_one_line_and_a_code(output, stdout, size):
    code, stderr = run_with(stdout, ["--shape", size, "--batch", "4", "--dry-run", *OUTPUTS[output]])
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    if stdout == "gone":
        assert code == 141 and stderr == ""
    else:
        why = "standard output is closed" if stdout == "closed" else "No space left on device"
        assert code == 74 and stderr.strip().splitlines() == [f"lstm-inspect: cannot write the output: {why}"]


@pytest.mark.parametrize("stdout", ["full", "gone"])
def test_an_export_is_written_whatever_happens_to_stdout(tmp_path, stdout):
    svg = tmp_path / "run.svg"
    code, _ = run_with(stdout, ["--shape", "4000,5,1", "--batch", "4", "--dry-run", "--svg", str(svg)])
    assert code in (74, 141) and svg.read_text().startswith("<svg")


@pytest.mark.parametrize("path, message", [
    ("a" * 300 + ".svg", "the file name is longer than"),
    ("x.svg/", "names a directory, not a file"),
    ("/proc/x.svg", "cannot write in /proc"),
])
def test_an_export_path_that_cannot_be_written_is_refused_before_the_run(path, message):
    result = CliRunner().invoke(main, ["--shape", "12,5,1", "--batch", "4", "--no-evidence", "--svg", path])
    assert result.exit_code == 2 and message in result.stderr and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_deleted_working_directory_is_refused_for_an_export(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    done = subprocess.run([BIN, *DRY, "--svg", "x.svg"], cwd=gone, capture_output=True, text=True,
                          preexec_fn=lambda: os.rmdir(gone))
    assert done.returncode == 2 and "the working directory no longer exists" in done.stderr


def test_an_interrupted_export_leaves_no_temporary_file(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class Interrupted:
        def __init__(self, *args, **kwargs):
            self.file = real_fdopen(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, text):
            raise SystemExit(143)  # as the SIGTERM handler raises it

    monkeypatch.setattr(formats.os, "fdopen", Interrupted)
    with pytest.raises(SystemExit):
        formats.write_atomically(str(tmp_path / "run.svg"), "<svg/>")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum, code, delay", [(signal.SIGINT, 130, 0.05), (signal.SIGTERM, 143, 1.5)])
def test_a_signal_ends_the_command_quietly(signum, code, delay):
    process = subprocess.Popen([BIN, "--shape", "200000,20,1", "--batch", "10", "--format", "json"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(delay)  # SIGINT while the command still loads; SIGTERM while it runs
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code and b"Traceback" not in stderr


def test_a_terminal_of_no_width_still_shows_the_table():
    done = subprocess.run([BIN, *DRY], capture_output=True, text=True, env={**os.environ, "COLUMNS": "0"})
    assert done.returncode == 0 and "reset x4" in done.stdout


def test_a_usage_error_is_one_line():
    result = CliRunner().invoke(main, ["--shape", "12,5"])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        "Error: Invalid value for '--shape': expected N,T,F (samples,timesteps,features), got '12,5'"]


def test_ctrl_c_in_the_evidence_acts_within_a_second_or_two():
    """The evidence runs in small steps (bounded slots and timesteps), so an interrupt waits for
    one of them at most: SIGINT about when the run gives way to the evidence."""
    process = subprocess.Popen([BIN, "--shape", "800,500,1", "--batch", "400", "--units", "256", "-q"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(2.5)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (0, 130) and b"Traceback" not in stderr
    assert time.monotonic() - sent < 2.0


def test_quiet_with_stdout_closed_still_answers_by_its_code():
    code, stderr = run_with("closed", [*DRY, "-q"])
    assert code == 0 and stderr == ""


def test_an_export_is_written_when_stdout_is_closed(tmp_path):
    svg = tmp_path / "run.svg"
    code, stderr = run_with("closed", [*DRY, "--svg", str(svg)])
    assert code == 74 and svg.read_text().startswith("<svg") and "standard output is closed" in stderr


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["--shape", "12,5,1", "--batch", "4", "--emit", "torch"]])
@pytest.mark.parametrize("stdout, code", [("gone", 141), ("full", 74), ("closed", 74)])
def test_help_version_and_snippets_fail_to_write_like_the_rest(args, stdout, code):
    if args == ["--help"] and stdout != "closed":
        args = ["--help", "--shape", "1,1,1"]
    got, stderr = run_with(stdout, args)
    assert got == code and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_a_stderr_that_cannot_be_written_changes_no_exit_code():
    with open("/dev/full", "w") as full:
        done = subprocess.run([BIN, "--shape", "10,5,1", "--batch", "4", "--stateful", "--no-evidence"],
                              stdout=subprocess.DEVNULL, stderr=full)
    assert done.returncode == 3  # Keras raises; the warnings it could not print change nothing


def test_an_inherited_ignored_ctrl_c_stays_ignored():
    process = subprocess.Popen([BIN, "--shape", "20000,20,1", "--batch", "10", "-q"],
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 0


def test_the_command_leaves_signal_handlers_as_it_found_them_and_runs_in_a_thread():
    import threading

    before = signal.getsignal(signal.SIGTERM)
    assert CliRunner().invoke(main, DRY).exit_code == 0
    assert signal.getsignal(signal.SIGTERM) == before
    codes = []
    thread = threading.Thread(target=lambda: codes.append(CliRunner().invoke(main, DRY).exit_code))
    thread.start()
    thread.join()
    assert codes == [0]


def test_an_option_value_that_looks_like_an_option_is_a_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*DRY, "--html", "--svg", "--svg", "x.svg"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "--svg").exists() and (tmp_path / "x.svg").exists()
    result = CliRunner().invoke(main, [*DRY, "--svg=a.svg", "--svg=b.svg"])
    assert result.exit_code == 2 and "--svg given twice" in result.stderr


@pytest.mark.parametrize("value", ["1_0", "+5", "0x10"])
def test_integers_are_plain_digits(value):
    result = CliRunner().invoke(main, ["--shape", "12,5,1", "--dry-run", "--batch", value])
    assert result.exit_code == 2 and "ASCII digits only" in result.stderr
