"""Hostile input to the newer surfaces (--calls, --data, --replay): one line and exit 2, or an
answer, within seconds; never a traceback, a hang, or a terminal instruction from a file."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_inspect.cli import main
from lstm_inspect.core.errors import SpecError
from lstm_inspect.data.datafile import _overlaps, open_data

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "probe-run.json"


def _one_line_error(result) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1, result.output


def _data(path: Path, *more: str):
    return CliRunner().invoke(main, ["--shape", "4,3,1", "--batch", "2", "--data", str(path), *more, "--dry-run"])


def test_a_fit_of_10_to_the_18_epochs_is_refused_at_once():
    result = CliRunner().invoke(main, ["--shape", "8,5,1", "--batch", "4", "--calls",
                                       "fit(epochs=999999999999999999, validation_samples=4, batch_size=4)",
                                       "--dry-run"])
    _one_line_error(result)
    assert "2,999,999,999,999,999,997 steps" in result.output


@pytest.mark.parametrize("option", ["--data", "--replay"])
@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_data_and_replay_read_regular_files_only(tmp_path, kind, option):
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)  # reading it would block for ever
    elif kind == "directory":
        path = tmp_path
    else:
        path = Path("/dev/zero")  # reading it would never end
    more = ["--shape", "4,3,1", "--batch", "2", "--dry-run"] if option == "--data" else []
    # A command of its own, so that a regression fails here within the minute instead of hanging the run.
    done = subprocess.run([sys.executable, "-m", "lstm_inspect", *more, option, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1 and not done.stdout, done.stderr


def _npy(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 3, 1), "float32"))
    return path


def test_a_npy_header_with_a_negative_dimension_is_refused(tmp_path):
    path = _npy(tmp_path)
    path.write_bytes(path.read_bytes().replace(b"(4, 3, 1)", b"(-4, 3, 1)"))
    result = _data(path)
    _one_line_error(result)
    assert "(-4, 3, 1)" in result.output


def test_a_file_that_starts_like_a_zip_but_is_none_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"PK\x03\x04 not a zip at all")
    _one_line_error(_data(path, "--data-key", "x"))


def test_half_an_npz_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.zeros((4, 3, 1), "float32"))
    path.write_bytes(path.read_bytes()[:200])
    _one_line_error(_data(path, "--data-key", "x"))


def test_an_npz_member_that_is_no_npy_array_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x", b"not an array")
    result = _data(path, "--data-key", "x")
    _one_line_error(result)
    assert "not an array" in result.output


def _replay_with(tmp_path: Path, **changes) -> Path:
    data = json.loads(EXAMPLE.read_text())
    data.update(changes)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("args", [[], ["--view", "timeline"], ["--format", "markdown"], ["--format", "csv"]])
def test_terminal_escapes_in_a_replay_file_are_shown_as_text(tmp_path, args):
    data = json.loads(EXAMPLE.read_text())
    data["steps"][-1]["call"] = "predict\x1b[2J[bold]p[/bold]"  # the last: no later step names it
    path = _replay_with(tmp_path, steps=data["steps"], verdict="all good\x1b[2J[bold]x[/bold]",
                        warnings=["\x1b[1A\x1b[2Khidden"])
    result = CliRunner().invoke(main, ["--replay", str(path), *args])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    if not args:
        assert "\\x1b[1A\\x1b[2Khidden" in result.stderr
        assert "[bold]x[/bold]" in result.stdout and "[bold]p[/bold]" in result.stdout  # markup in a file is text


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 12).flatmap(lambda steps: st.tuples(
    st.lists(st.sampled_from([0.0, -0.0, 1.0, float("nan")]), min_size=steps, max_size=steps),
    st.lists(st.sampled_from([0.0, -0.0, 1.0, float("nan")]), min_size=steps, max_size=steps))))
def test_the_window_search_finds_exactly_the_shifts_array_equal_finds(rows):
    first, later = (np.array(row, "float32")[:, None] for row in rows)
    expected = [s for s in range(1, len(first)) if np.array_equal(later[:-s], first[s:])]
    assert _overlaps(first, later) == expected


def test_long_rows_are_searched_in_time_linear_in_their_length(tmp_path):
    # 300,000 steps a row took 27 s when every shift was compared (the linear search: about a second).
    series = np.random.default_rng(0).standard_normal(300_003).astype("float32")
    x = np.stack([series[j:j + 300_000] for j in range(3)])[:, :, None]
    path = tmp_path / "long.npy"
    np.save(path, x)
    result = CliRunner().invoke(main, ["--shape", "3,300000,1", "--batch", "1", "--data", str(path), "--dry-run",
                                       "--format", "json", "--no-slots"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"]["stride"] == 1


@pytest.mark.parametrize("export", ["--svg", "--html"])
def test_an_export_never_replaces_an_input(tmp_path, monkeypatch, export):
    monkeypatch.chdir(tmp_path)
    replay = tmp_path / "run.json"
    replay.write_bytes(EXAMPLE.read_bytes())
    (tmp_path / "link.json").symlink_to(replay)
    data = _npy(tmp_path)
    for args in (["--replay", "run.json", export, "./run.json"], ["--replay", "link.json", export, "run.json"],
                 ["--shape", "4,3,1", "--batch", "2", "--data", str(data), "--dry-run", export, "x.npy"]):
        result = CliRunner().invoke(main, args)
        _one_line_error(result)
        assert "never replaces its input" in result.output
    assert replay.read_bytes() == EXAMPLE.read_bytes() and np.load(data).shape == (4, 3, 1)


@pytest.mark.keras
def test_probe_save_refuses_what_the_command_line_refuses(tmp_path):
    from lstm_inspect.keras import StateProbe

    probe = StateProbe()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (tmp_path / "link.json").symlink_to(tmp_path / "elsewhere.json")
    for target in (fifo, tmp_path / "link.json", tmp_path, Path("/dev/null")):
        with pytest.raises(ValueError, match="not a regular file|directory"):
            probe.save(str(target))
    assert Path("/dev/null").is_char_device() and not (tmp_path / "elsewhere.json").exists()
    probe.save(str(tmp_path / "run.json"))
    assert json.loads((tmp_path / "run.json").read_text())["observed_by"] == "StateProbe"


@pytest.mark.parametrize(("changes", "field"), [
    ({"samples": 12.5}, "samples"), ({"samples": float("nan")}, "samples"), ({"batch_size": True}, "batch_size"),
    ({"stateful": "no"}, "stateful"), ({"stateful": True, "reset": 5}, "reset"), ({"epochs": 10**30}, "epochs"),
    ({"workflow": b"predict(4)"}, "workflow"), ({"bidirectional": 1}, "bidirectional")])
def test_the_library_refuses_a_spec_of_the_wrong_types_at_its_door(changes, field):
    from lstm_inspect import Spec, SpecError

    with pytest.raises(SpecError) as raised:
        Spec(**{"samples": 12, "timesteps": 5, "features": 1, **changes})
    assert raised.value.field == field


def test_numpys_integers_are_whole_numbers():
    from lstm_inspect import Spec

    spec = Spec(np.int64(12), np.int32(5), 1, batch_size=np.int64(4))
    assert (spec.samples, spec.batch_size) == (12, 4) and type(spec.samples) is int


@pytest.mark.parametrize(("arguments", "error"), [
    ({"spec": "12,5,1"}, TypeError), ({"device": "tpu"}, ValueError), ({"evidence_batch": -1}, ValueError),
    ({"max_steps": 0}, ValueError)])
def test_inspect_refuses_what_the_command_line_refuses(arguments, error):
    from lstm_inspect import Spec, inspect

    given = {"spec": Spec(12, 5, 1), **arguments}
    with pytest.raises(error):
        inspect(given.pop("spec"), **given)


def test_keras_stateful_checks_the_states_it_is_given():
    import torch
    from torch import nn

    from lstm_inspect import KerasStateful

    layer = KerasStateful(nn.LSTM(1, 3, batch_first=True), batch_size=2)
    zeros = torch.zeros(1, 2, 3)
    for states in [(zeros.double(), zeros), (zeros.long(), zeros), (zeros.to("meta"), zeros), (zeros,), zeros]:
        with pytest.raises(ValueError):
            layer.set_states(states)
    with pytest.raises(TypeError):
        layer.set_states((np.zeros((1, 2, 3), "float32"), zeros))
    layer.set_states((zeros + 1, zeros))
    assert float(layer.states[0].sum()) == 6.0
    with pytest.raises(ValueError, match="TensorFlow only"):
        KerasStateful(nn.LSTM(1, 3, batch_first=True), batch_size=2, keras="2", backend="jax")


def test_stateful_layout_checks_its_sizes_and_targets():
    from lstm_inspect.layout import stateful_layout

    series = np.arange(24, dtype="float32").reshape(2, 12, 1)
    for arguments in [{"timesteps": 3.0, "batch_size": 2}, {"timesteps": 3, "batch_size": True},
                      {"timesteps": 3, "batch_size": 2, "targets": np.zeros((2, 5))}]:
        with pytest.raises(ValueError):
            stateful_layout(series, **arguments)
    assert stateful_layout(series, 3, 2, targets=np.arange(24).reshape(2, 12)).y.tolist()[:4] == [2, 14, 5, 17]


@pytest.mark.keras
def test_the_probe_checks_what_it_is_given_and_watches_a_model_once():
    import keras

    from lstm_inspect.keras import StateProbe

    with pytest.raises(TypeError, match="Keras model"):
        StateProbe().attach(object())
    inputs = keras.Input(batch_shape=(2, 3, 1))
    model = keras.Model(inputs, keras.layers.LSTM(4, stateful=True, use_cudnn=False)(inputs))
    probe = StateProbe().attach(model).attach(model)  # twice: still one watcher
    model.predict(np.ones((4, 3, 1), "float32"), batch_size=2, verbose=0)
    report = probe.result()
    assert report.summary.steps == 2 and report.summary.slot_carries == 2
    with pytest.raises(ValueError, match="table.*timeline"):
        probe.report(view="x")


def _answer_or_one_line(result) -> None:
    """A valid answer (exit 0, 1 or 3), or exit 2 and one line; never a traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2, 3), (result.exit_code, result.output)
    if result.exit_code == 2:
        assert result.stderr.count("\n") == 1, result.stderr


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10, 10**20) | st.floats(allow_nan=False)
                     | st.text(max_size=8), lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
_STEP_FIELDS = ["call", "phase", "epoch", "batch", "samples", "start", "observed"]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_generated_replay_files_get_an_answer_or_one_line(tmp_path_factory, data):
    run = json.loads(EXAMPLE.read_text())
    where = data.draw(st.sampled_from(["top", "spec", "step"]))
    if where == "top":
        run[data.draw(st.sampled_from(["schema", "observed_by", "spec", "steps", "warnings", "verdict",
                                       "stateful_layers"]))] = data.draw(_JSON)
    elif where == "spec":
        run["spec"][data.draw(st.sampled_from(sorted(run["spec"])))] = data.draw(_JSON)
    else:
        step = run["steps"][data.draw(st.integers(0, len(run["steps"]) - 1))]
        step[data.draw(st.sampled_from(_STEP_FIELDS))] = data.draw(_JSON)
    path = tmp_path_factory.mktemp("replay") / "run.json"
    path.write_text(json.dumps(run))
    _answer_or_one_line(CliRunner().invoke(main, ["--replay", str(path), "--format", "json"]))


_CALL = st.sampled_from(["fit", "evaluate", "predict", "train_on_batch", "test_on_batch", "predict_on_batch",
                         "reset_state", "save_and_load", "twin", "model.predict", "x", "__import__"])
_ARGUMENT = st.sampled_from(["", "1", "4", "0", "-1", "0x10", "10**3", "1e3", "'a'", "True", "batch_size=2",
                             "epochs=2", "shuffle=False", "validation_split=0.5", "initial_epoch=0",
                             "initial_state='previous'", "validation_samples=4", "batch_size=0", "k=1", "*a"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_CALL, st.lists(_ARGUMENT, max_size=3), st.integers(0, 3)), min_size=1, max_size=4))
def test_generated_calls_get_an_answer_or_one_line(calls):
    text = "; ".join(f"{name}({', '.join(arguments)})" + (f" * {times}" if times else "")
                     for name, arguments, times in calls)
    result = CliRunner().invoke(main, ["--shape", "8,3,1", "--batch", "4", "--stateful", "--calls", text,
                                       "--dry-run", "--format", "json", "--no-slots"])
    _answer_or_one_line(result)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([b"", b"\x00" * 48, b"\x00" * 4]))
def test_generated_npy_headers_get_an_answer_or_one_line(tmp_path_factory, header, tail):
    path = tmp_path_factory.mktemp("data") / "x.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + tail)
    _answer_or_one_line(_data(path))


@pytest.mark.parametrize("output", [["--max-rows", "100000"], ["--format", "markdown", "--max-rows", "100000"],
                                    ["--format", "csv"], ["--format", "json"]])
def test_a_reader_that_leaves_in_the_middle_of_a_write_gives_141(output):
    """A pipe whose reader leaves mid-write takes a short write without an error: the rest must
    still be written, so that the closed pipe is seen, never an exit 0 over a cut output."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "lstm_inspect", "--shape", "20000,5,1", "--batch", "1",
                                "--dry-run", *output], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(10)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141 and b"Traceback" not in stderr


def _refusal(path, key=None) -> str:
    with pytest.raises(ValueError) as raised:
        open_data(str(path), key)
    error = raised.value
    return error.describe({"key": "--data-key"}) if isinstance(error, SpecError) else str(error)


def test_an_npz_is_refused_in_words_that_name_its_arrays(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.zeros((2, 3, 1), "float32"), b=np.zeros((2, 3, 1), "float32"))
    assert _refusal(path) == f"{path} is a .npz archive: name its array with --data-key (it holds a, b)"
    assert _refusal(path, "c") == f"{path} has no array 'c' (it holds a, b)"
    with pytest.raises(SpecError) as raised:
        open_data(str(path))
    assert raised.value.field == "key"
    empty = tmp_path / "empty.npz"
    np.savez(empty)
    assert _refusal(empty) == f"{empty} is a .npz archive: name its array with --data-key (it holds none)"
    assert _refusal(empty, "x") == f"{empty} has no array 'x' (it holds none)"


def test_an_npz_that_is_damaged_or_pickled_is_refused_saying_so(tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not a zip at all")
    assert _refusal(broken, "x") == f"{broken} is not a .npy or .npz file (File is not a zip file)"
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{}], dtype=object))
    assert _refusal(pickled, "x") == (f"{pickled}: array 'x' holds Python objects, which only unpickling would read: "
                                      "save numbers (a float array)")
    cut = tmp_path / "cut.npz"
    np.savez(cut, x=np.arange(4000, dtype="float32"))
    data = cut.read_bytes()
    cut.write_bytes(data[:600] + data[-200:])  # the directory kept, the member's bytes cut
    assert _refusal(cut, "x").startswith(f"{cut}: array 'x' cannot be read (")
    assert _refusal(cut, "x").endswith("): the file may be cut short")


def test_an_npz_array_is_read_only_while_it_takes_at_most_half_the_room(tmp_path, monkeypatch):
    from lstm_inspect.data import datafile
    from lstm_inspect.data.memory import Room

    path = tmp_path / "x.npz"
    np.savez(path, x=np.zeros((10, 3, 1), "float32"))
    with zipfile.ZipFile(path) as archive:
        unpacked = archive.getinfo("x.npy").file_size
    monkeypatch.setattr(datafile, "rooms", lambda: [Room(10 ** 9, "the cgroup"), Room(2 * unpacked, "the memory")])
    assert open_data(str(path), "x").shape == (10, 3, 1)
    monkeypatch.setattr(datafile, "rooms", list)  # no limit known
    assert open_data(str(path), "x").shape == (10, 3, 1)
    monkeypatch.setattr(datafile, "rooms", lambda: [Room(2 * unpacked - 1, "the memory")])
    assert _refusal(path, "x") == (
        f"{path}: array 'x' takes {unpacked:,} bytes once read, more than half of the {2 * unpacked - 1:,} this "
        "process may hold (numpy maps no array of a .npz): save it with numpy.save as a .npy file, which is "
        "memory-mapped")
