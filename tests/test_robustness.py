"""No traceback for any input, clear errors, safe in pipes and CI."""

import json
import os
import select
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_inspect.cli import main

BIN = Path(sys.executable).parent / "lstm-inspect"
SMALL = ["--shape", "12,5,1", "--batch", "4"]

BAD_INPUTS = [
    (["--shape", "1000,20"], "expected N,T,F"),
    (["--shape", "a,b,c"], "positive integers"),
    (["--shape", "0,20,1"], "positive integers"),
    (["--shape", "-5,20,1"], "positive integers"),
    (["--shape", "1e3,20,1"], "positive integers"),
    (["--shape", "1000,20,1,4"], "expected N,T,F"),
    (["--shape", ""], "expected N,T,F"),
    (["--shape", "1000,,1"], "positive integers"),
    (["--shape", "1000.5,20,1"], "positive integers"),
    (["--shape", "1000,20,1", "--batch", "0"], "--batch must be a positive integer"),
    (["--shape", "1000,20,1", "--batch", "-3"], "--batch must be a positive integer"),
    (["--shape", "1000,20,1", "--batch", "ten"], "'ten' is not a valid integer"),
    (["--shape", "1000,20,1", "--epochs", "0"], "--epochs must be a positive integer"),
    (["--shape", "1000,20,1", "--units", "0"], "--units must be a positive integer"),
    (["--shape", "1000,20,1", "--val-samples", "-1"], "--val-samples must be zero or positive"),
    (["--shape", "1000,20,1", "--predict-samples", "-1"], "--predict-samples must be zero or positive"),
    (["--shape", "1000,20,1", "--seed", "-1"], "--seed must be between 0 and 2**32 - 1"),
    (["--shape", "1000,20,1", "--seed", str(2**32)], "--seed must be between 0 and 2**32 - 1"),
    (["--shape", "1000,20,1", "--stateful", "--reset", "every:0"], "positive integer K"),
    (["--shape", "1000,20,1", "--stateful", "--reset", "every:x"], "positive integer K"),
    (["--shape", "1000,20,1", "--stateful", "--reset", "sometimes"], "expected never, or hooks among epoch, every:K"),
    (["--shape", "1000,20,1", "--reset", "epoch"], "needs --stateful"),
    (["--shape", "1000,20,1", "--reset", "every:2"], "needs --stateful"),
    (["--shape", "1000,20,1", "--format", "xml"], "'xml' is not one of"),
    (["--shape", "1000,20,1", "--max-rows", "2"], "--max-rows"),
    (["--shape", "1000,20,1", "--evidence-batch", "-1"], "--evidence-batch"),
    (["--shape", "1000,20,1", "--expect-resets", "-1"], "--expect-resets"),
    (["--shape", "1000,20,1", "--against", "tensorflow"], "'tensorflow' is not"),
    (["--shape", "1000,20,1", "--emit", "jax"], "'jax' is not one of"),
    (["--shape", "1000,20,1", "--dry-run", "--against", "keras"], "--dry-run cannot be combined with --against"),
    (["--shape", "1000,20,1", "--dry-run", "--evidence-batch", "2"], "--dry-run cannot be combined"),
    (["--shape", "1000,20,1", "--quiet", "--format", "json"], "--quiet cannot be combined with --format"),
    (["--shape", "1000,20,1", "--emit", "torch", "--quiet"], "--emit cannot be combined with --quiet"),
    (["--shape", "1000000,500,64", "--batch", "100000"], "use a smaller --batch, or --dry-run"),
    (["--shape", "1²,2,3"], "positive integers"),
    (["--shape", "12,5,1", "--stateful", "--reset", "every:²"], "positive integer K"),
    (["--shape", "12,5,1", "--batch", "4", "--evidence-batch", "3"], "epoch 0 has 3 training batches"),
    (["--shape", "12,5,1", "--no-evidence", "--evidence-batch", "1"], "--evidence-batch cannot be combined"),
    (["--shape", "12,5,1", "--emit", "torch", "--svg", "x.svg"], "--emit cannot be combined with --svg"),
    (["--shape", "12,5,1", "--emit", "keras", "--view", "timeline"], "--emit cannot be combined with --view"),
    (["--shape", "12,5,1", "--no-slots"], "--no-slots cannot be combined with --format table"),
    (["--shape", "12,5,1", "--format", "csv", "--max-rows", "5"], "it applies to --format table or markdown"),
    (["--shape", "12,5,1", "--format", "markdown", "--against", "keras"], "--against cannot be combined"),
    (["--shape", "12,5,1", "--shuffle", "--no-shuffle"], "--no-shuffle cannot be combined with --shuffle"),
    (["--shape", "12,5,1", "--layers", "0"], "--layers must be a positive integer"),
    (["--shape", "12,5,1", "--cell", "transformer"], "'transformer' is not one of"),
    (["--shape", "12,5,1", "--max-steps", "2", "--against", "keras"], "--against cannot be combined with --max-steps"),
    (["--shape", "12,5,1", "--view", "timeline", "--max-rows", "5"], "--max-rows cannot be combined with --view"),
    (["--batch", "10"], "Missing option '--shape'"),
    (["--shape"], "requires an argument"),
    (["--shape", "10,2,1", "--frobnicate"], "No such option"),
    (["--shape", "10,2,1", "extra"], "Got unexpected extra argument"),
    # Contradictions are refused, never settled by keeping the last.
    (["--shape", "12,5,1", "--stateful", "--stateless"], "--stateful and --stateless given both ways"),
    (["--shape", "12,5,1", "--evidence", "--no-evidence"], "given both ways"),
    (["--shape", "12,5,1", "--expect-error", "--expect-no-error"], "given both ways"),
    (["--shape", "12,5,1", "--batch", "2", "--batch=4"], "--batch given twice"),
    (["--shape", "12,5,1", "-q", "--quiet"], "-q and --quiet given twice"),
    (["--shape", "12,5,1", "--svg", "x.svg", "--html", "x.svg"], "--svg and --html name the same file"),
    (["--shape", "12,5,1", "--svg", ""], "an empty path names no file"),
    # Digits are ASCII digits, as --shape takes them.
    (["--shape", "12,5,1", "--batch", "\uff14"], "ASCII digits only"),
    (["--shape", "12,5,1", "--seed", "\u0663"], "ASCII digits only"),
    # Bounds on the work asked for, and on the size of a number.
    (["--shape", "9" * 5000 + ",2,1"], "N, T and F have at most 18 digits"),
    (["--shape", "12,5,1", "--stateful", "--reset", "every:" + "9" * 5000], "at most 18 digits"),
    (["--shape", "12,5,1", "--max-rows", "18446744073709551616"], "not in the range 3<=x<=1000000"),
    (["--shape", "12,5,1", "--epochs", "1000000000000", "--dry-run"], "lstm-inspect follows at most 100,000,000"),
    (["--shape", "12,5,1", "--layers", "1000000"], "at most 64 stacked layers"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_clear_line_and_exit_2(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.output and result.stdout == ""


def test_a_huge_batch_over_few_samples_is_not_refused():
    # A stateless batch never holds more than the data: 10 samples in a "batch" of 10**8.
    result = CliRunner().invoke(main, ["--shape", "10,20,1", "--batch", "100000000", "--no-evidence"])
    assert result.exit_code == 0


def test_blanks_around_shape_numbers_are_accepted():
    result = CliRunner().invoke(main, ["--shape", " 12 , 5 , 1 ", "--batch", "4", "--dry-run"])
    assert result.exit_code == 0


def test_the_same_arguments_give_byte_identical_json():
    args = [*SMALL, "--stateful", "--epochs", "2", "--val-samples", "4", "--format", "json"]
    first = subprocess.run([BIN, *args], capture_output=True, check=True).stdout
    second = subprocess.run([BIN, *args], capture_output=True, check=True).stdout
    assert first == second
    assert json.loads(first)["summary"]["verified"] is True


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"TERM": "dumb"}, {"COLUMNS": "20"}, {"COLUMNS": "400"}])
def test_any_terminal_environment(env):
    result = CliRunner().invoke(main, [*SMALL, "--stateful", "--no-shuffle"], env=env, catch_exceptions=False)
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    assert "Verdict" in result.stdout


def test_colour_only_on_a_terminal_and_never_with_no_color():
    env = {**os.environ, "FORCE_COLOR": "1", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    coloured = subprocess.run([BIN, *SMALL, "--dry-run"], capture_output=True, text=True, env=env).stdout
    assert "\x1b[" in coloured
    plain = subprocess.run([BIN, *SMALL, "--dry-run"], capture_output=True, text=True,
                           env={**env, "NO_COLOR": "1"}).stdout
    assert "\x1b[" not in plain


def test_a_closed_pipe_ends_quietly():
    producer = subprocess.Popen([BIN, "--shape", "100000,5,1", "--batch", "10", "--dry-run", "--format", "json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.read(100)
    producer.stdout.close()  # what `| head -c 100` does
    _, stderr = producer.communicate(timeout=60)
    assert producer.returncode == 141
    assert stderr == b""


def test_ctrl_c_exits_130_without_a_traceback():
    # Ctrl-C at its default, as a terminal gives it, even where this test run inherited it ignored.
    process = subprocess.Popen([BIN, "--shape", "2000000,20,1", "--batch", "10", "--format", "json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # SIGINT once the run has started (200,000 steps of it): its first step is written.
        deadline, out = time.monotonic() + 60, b""
        while b'{"call": ' not in out:
            assert select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))[0], \
                f"no step written within 60 s: {out[:200]!r}"
            chunk = os.read(process.stdout.fileno(), 65536)
            assert chunk, f"the output ended before the first step (exit {process.wait()})"
            out += chunk
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert b"Traceback" not in stderr and stderr.splitlines() == [b"lstm-inspect: interrupted"], stderr


@pytest.mark.unmutated
def test_the_version_is_read_from_the_metadata_only_when_asked_for():
    # importlib.metadata takes some 40 ms to import: not before the console script answers Ctrl-C.
    code = "import sys, lstm_inspect; print('importlib.metadata' in sys.modules, lstm_inspect.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", version("lstm-inspect")]
    out = subprocess.run([BIN, "--version"], capture_output=True, text=True, check=True).stdout
    assert out == f"lstm-inspect, version {version('lstm-inspect')}\n"


OPTION_POOL = [
    ["--stateful"], ["--stateless"], ["--shuffle"], ["--no-shuffle"], ["--dry-run"], ["--no-evidence"],
    ["--strict"], ["--quiet"], ["--expect-error"], ["--expect-no-error"],
    ["--format", "json"], ["--format", "table"], ["--format", "yaml"],
    ["--emit", "torch"],
    ["--backend", "jax"], ["--backend", "tensorflow"], ["--backend", "torch"], ["--keras", "2"],
]
NUMERIC = ["--batch", "--epochs", "--units", "--val-samples", "--predict-samples", "--max-rows",
           "--expect-resets", "--expect-carries", "--evidence-batch", "--seed"]
tokens = st.one_of(
    st.sampled_from(OPTION_POOL),
    st.tuples(st.sampled_from(NUMERIC), st.one_of(st.integers(-3, 9).map(str), st.text(max_size=4)))
      .map(list),
    st.tuples(st.just("--reset"), st.sampled_from(["never", "epoch", "every:2", "every:0", "x"])).map(list),
    st.text(max_size=6).map(lambda word: [word]),
)
shapes = st.one_of(st.tuples(st.integers(-1, 14), st.integers(0, 4), st.integers(0, 2))
                   .map(lambda s: ",".join(map(str, s))), st.text(max_size=8))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, options=st.lists(tokens, max_size=5))
def test_fuzzed_arguments_never_give_a_traceback(shape, options):
    args = ["--shape", shape, *[token for option in options for token in option]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (0, 1, 2, 3), (args, result.output, result.exception)
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), (args, repr(result.exception))
    if "json" in args and result.exit_code in (0, 1, 3) and result.stdout:
        json.loads(result.stdout)


def test_a_device_or_link_is_never_replaced_by_an_export(tmp_path):
    link = tmp_path / "link.svg"
    link.symlink_to(tmp_path / "target.svg")
    result = CliRunner().invoke(main, [*SMALL, "--svg", str(link)])
    assert result.exit_code == 2 and "is not a regular file" in result.stderr
    result = CliRunner().invoke(main, [*SMALL, "--html", "/dev/null"])
    assert result.exit_code == 2 and "is not a regular file" in result.stderr


def test_a_schedule_too_large_for_memory_is_refused_even_on_a_dry_run():
    # 10^7 steps, within the bound on steps; 10^11 samples' order, beyond any machine here.
    result = CliRunner().invoke(main, ["--shape", "100000000000,20,1", "--batch", "10000", "--dry-run"])
    assert result.exit_code == 2 and "the training order of 100,000,000,000 samples" in result.stderr


def test_markdown_to_an_ascii_stream_uses_ascii_marks():
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run([BIN, *SMALL, "--format", "markdown", "--no-evidence"], capture_output=True, env=env)
    assert done.returncode == 0 and b"Traceback" not in done.stderr
    assert b"| ok |" in done.stdout


def test_folding_only_when_there_are_more_steps_than_rows():
    arguments = ["--shape", "16,5,1", "--batch", "4", "--max-rows", "4", "--no-advice", "--dry-run"]
    rows = [line for line in CliRunner().invoke(main, arguments).stdout.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == ["0", "1", "2", "3"]


def test_python_dash_m_on_the_cli_module_runs_the_command():
    out = subprocess.run([sys.executable, "-m", "lstm_inspect.cli", "--shape", "8,2,1", "--batch", "4", "--dry-run",
                          "--format", "json"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["summary"]["steps"] == 2
