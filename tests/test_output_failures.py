"""Output that cannot be written: every format and view either completes or ends with one line
and a non-zero code (74 for an output error, 141 for a closed pipe, 143 for SIGTERM), and an
export that was asked for is written whatever happens to standard output."""

import fcntl
import os
import select
import signal
import subprocess
import sys
import threading
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


# Signals are sent on events seen from outside, never after a sleep: /proc/<pid>/status says
# which signals a process catches (SigCgt) and ignores (SigIgn); standard output shows how far a
# run has gone; and Python's import profile shows how far the command has loaded.
PROFILE = "import time:"
DEADLINE = 60.0  # seconds a test waits for an event before it fails, saying which


def signals(pid: int, field: str) -> set[int]:
    """The signals /proc/<pid>/status lists in `field`: SigCgt, caught by a handler; SigIgn, ignored.
    (Python catches SIGINT from its start, so SigCgt cannot tell when the console script answers it.)"""
    try:
        with open(f"/proc/{pid}/status") as status:
            mask = next(int(line.split()[1], 16) for line in status if line.startswith(f"{field}:"))
    except (FileNotFoundError, ProcessLookupError):
        return set()
    return {signum for signum in range(1, 65) if mask >> (signum - 1) & 1}


def wait_until(what: str, ready, process: subprocess.Popen, seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the command ended (exit {process.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.005)


def read_until(what: str, fd: int, done, seconds: float = DEADLINE) -> bytes:
    """Reads the pipe `fd` until `done(everything read)`."""
    deadline, got = time.monotonic() + seconds, b""
    while not done(got):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            pytest.fail(f"{what}: not within {seconds:.0f} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            pytest.fail(f"the output ended before {what}")
        got += chunk
    return got


def signals_as_a_terminal_gives_them() -> None:
    """Run in the child before it starts (preexec_fn): Ctrl-C and SIGTERM at their defaults, whatever
    this test run inherited (a background job, nohup and some CI runners ignore SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


class Loading:
    """The command run under Python's import profile (PYTHONPROFILEIMPORTTIME): a line on stderr
    as each import completes, nested ones first, so that a test sees how far loading has gone.
    stderr is a pipe of 4 KiB, read 512 bytes at a time: the command cannot get more than some
    4.5 KB of lines ahead of the one the test has just read, and loading the command line writes
    some 20 KB of them, so a signal sent on one of its first lines arrives while it loads."""

    def __init__(self, args: list[str], **popen) -> None:
        reader, writer = os.pipe()
        fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)
        try:
            self.process = subprocess.Popen([BIN, *args], stderr=writer,
                                            env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}, **popen)
        finally:
            os.close(writer)
        self.fd, self.pending, self.said = reader, b"", []  # said: the command's own lines

    def __enter__(self) -> "Loading":
        return self

    def __exit__(self, *exc) -> None:
        stop(self.process)
        os.close(self.fd)

    def next(self, deadline: float) -> tuple[int, int, str] | None:
        """The next import to complete: (depth, cumulative microseconds, name); None at the end."""
        while (line := self._line(deadline)) is not None:
            if not line.startswith(PROFILE):
                self.said.append(line)
                continue
            fields = line[len(PROFILE):].split("|")
            if len(fields) == 3 and fields[1].strip().isdigit():  # not the header
                name = fields[2][1:]
                return (len(name) - len(name.lstrip())) // 2, int(fields[1]), name.strip()
        return None

    def until_the_command_line_loads(self, deadline: float) -> list[tuple[int, int, str]]:
        """Reads up to the first import after the console script's (`from lstm_inspect.entry
        import run`), which `run()` makes once it has answered Ctrl-C: loading the command line.
        Returns the imports of the console script's own line, the entry's last."""
        imports: list[tuple[int, int, str]] = []
        while (imported := self.next(deadline)) is not None:
            imports.append(imported)
            if imported[0] == 0:
                if imported[2] == "lstm_inspect.entry":
                    if self.next(deadline) is None:
                        pytest.fail("the command ended before it loaded its command line")
                    return imports
                imports = []  # the interpreter's own (site)
        pytest.fail(f"the command ended without importing lstm_inspect.entry: {self.said}")

    def drain(self, deadline: float) -> None:
        while self.next(deadline) is not None:
            pass

    def _line(self, deadline: float) -> str | None:
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                stop(self.process)
                pytest.fail(f"stderr: no line within the deadline, after {self.said}")
            chunk = os.read(self.fd, 512)
            if not chunk:
                line, self.pending = self.pending, b""
                return line.decode(errors="replace") or None
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode(errors="replace")


def imported_before_the_answer(imports: list[tuple[int, int, str]]) -> list[str]:
    """What the console script imports before it answers Ctrl-C beyond the package, the entry and
    signal (with what signal itself needs), each with its time (and what it imports, in it)."""
    extra, enclosing = [], []  # enclosing: (depth, whether it is signal or an extra) of the outer imports
    for depth, cumulative, name in reversed(imports):  # an import's line comes after those it makes
        while enclosing and enclosing[-1][0] >= depth:
            enclosing.pop()
        inside = any(counted for _, counted in enclosing)
        if not inside and name not in ("lstm_inspect", "lstm_inspect.entry", "signal"):
            extra.append(f"{name} ({cumulative / 1000:.1f} ms)")
        enclosing.append((depth, inside or name not in ("lstm_inspect", "lstm_inspect.entry")))
    return extra[::-1]


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


@pytest.mark.unmutated  # what the installed package imports before its handler: mutmut's copy imports mutmut
def test_ctrl_c_while_the_command_loads_ends_it_quietly(tmp_path):
    """README: Ctrl-C exits 130 with one line and no traceback, "also while the command is still
    loading". Python answers Ctrl-C itself (a traceback) from its start until the console script
    takes over: so nothing that takes time may load before that (`import lstm_inspect` runs
    first), and from then on a Ctrl-C while the command line loads is answered."""
    out = tmp_path / "stdout"
    with out.open("wb") as stdout, Loading([*DRY, "--format", "json"], stdout=stdout,
                                           preexec_fn=signals_as_a_terminal_gives_them) as run:
        deadline = time.monotonic() + DEADLINE
        imports = run.until_the_command_line_loads(deadline)
        run.process.send_signal(signal.SIGINT)  # the entry's handler is in, the command line loading
        run.drain(deadline)
        code = run.process.wait(timeout=DEADLINE)
    extra = imported_before_the_answer(imports)
    assert extra == [], f"before the console script answers Ctrl-C it imports {extra}"
    took = imports[-1][1] / 1e6  # the console script's import line: the package and the entry
    assert took < 0.25, f"the console script takes {took:.2f} s to answer Ctrl-C (a few ms are enough)"
    assert code == 130 and run.said == ["lstm-inspect: interrupted"], (code, run.said)
    assert out.read_bytes() == b"", "the command ran: the signal did not come while it loaded"


def test_sigterm_while_the_command_runs_ends_it_quietly():
    process = subprocess.Popen([BIN, "--shape", "200000,20,1", "--batch", "10", "--format", "json"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               preexec_fn=signals_as_a_terminal_gives_them)
    try:
        # The command handles SIGTERM from the start of its run (minutes of it).
        wait_until("a SIGTERM handler", lambda: signal.SIGTERM in signals(process.pid, "SigCgt"), process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=DEADLINE)
    finally:
        stop(process)
    assert process.returncode == 143 and b"Traceback" not in stderr, stderr


def test_a_terminal_of_no_width_still_shows_the_table():
    done = subprocess.run([BIN, *DRY], capture_output=True, text=True, env={**os.environ, "COLUMNS": "0"})
    assert done.returncode == 0 and "reset x4" in done.stdout


def test_a_usage_error_is_one_line():
    result = CliRunner().invoke(main, ["--shape", "12,5"])
    assert result.exit_code == 2 and result.stderr.strip().splitlines() == [
        "Error: Invalid value for '--shape': expected N,T,F (samples,timesteps,features), or N,T,H,W,C for an image "
        "per timestep (--cell convlstm2d), got '12,5'"]


def test_ctrl_c_in_the_evidence_acts_within_a_second_or_two():
    """The evidence runs in small steps (bounded slots and timesteps), so an interrupt waits for
    one of them at most: SIGINT as the run gives way to the evidence, its last step written
    (2 steps: 800 samples in batches of 400). Timed: from the signal to the command's answer.
    Python's own exit after it (unloading torch: 0.5 s idle, 3 to 5 s on a busy machine) is
    bounded by the deadline only."""
    process = subprocess.Popen([BIN, "--shape", "800,500,1", "--batch", "400", "--units", "256", "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each step as it is written
                               preexec_fn=signals_as_a_terminal_gives_them)
    try:
        # The run alone takes some seconds, a minute or more on a busy machine.
        read_until("the run's 2 steps", process.stdout.fileno(), lambda out: out.count(b'{"call": ') >= 2,
                   seconds=5 * DEADLINE)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        said = read_until("an answer on stderr", process.stderr.fileno(), lambda err: b"\n" in err)
        answered = time.monotonic()
        _, rest = process.communicate(timeout=DEADLINE)
    finally:
        stop(process)
    assert process.returncode == 130 and said + rest == b"lstm-inspect: interrupted\n", said + rest
    assert answered - sent < 2.0, f"answered {answered - sent:.1f} s after the signal"


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
    """A shell that starts the command with Ctrl-C ignored (`trap '' INT`, a background job) keeps
    it so: a SIGINT where the console script answers one (the command line loading) and one
    while the command runs change nothing."""
    with Loading(["--shape", "2000,20,1", "--batch", "10", "-q"],
                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) as run:
        deadline = time.monotonic() + DEADLINE
        run.until_the_command_line_loads(deadline)
        assert signal.SIGINT in signals(run.process.pid, "SigIgn"), "SIGINT no longer ignored while loading"
        run.process.send_signal(signal.SIGINT)
        reader = threading.Thread(target=run.drain, args=(time.monotonic() + 5 * DEADLINE,), daemon=True)
        reader.start()  # the rest of stderr, so that the command is never held up writing it
        # The command handles SIGTERM from the start of its run (seconds, loading torch first).
        wait_until("a SIGTERM handler", lambda: signal.SIGTERM in signals(run.process.pid, "SigCgt"), run.process)
        assert signal.SIGINT in signals(run.process.pid, "SigIgn"), "SIGINT no longer ignored in the run"
        run.process.send_signal(signal.SIGINT)
        code = run.process.wait(timeout=5 * DEADLINE)
        reader.join(DEADLINE)
    assert code == 0, run.said


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
