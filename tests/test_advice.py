"""Advice: the API of the described Keras, whether stateful fits, the layout, and what --data shows."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from lstm_inspect.cli import main
from lstm_inspect.core.spec import Spec
from lstm_inspect.data.datafile import Continuity
from lstm_inspect.data.layout import stateful_layout
from lstm_inspect.explain.advice import Advice, advise


def items(spec, data=None):
    return {item.key: item.text for item in advise(spec, data)}


@pytest.mark.parametrize("keras, backend", [("3", "torch"), ("3", "tensorflow"), ("3", "jax"), ("2", "tensorflow")])
def test_the_api_is_the_described_keras(keras, backend):
    stateful = items(Spec(8, 5, 2, batch_size=4, stateful=True, keras=keras, backend=backend))
    stateless = items(Spec(8, 5, 2, batch_size=4, keras=keras, backend=backend))
    if keras == "3":
        assert "keras.Input(batch_shape=(4, 5, 2))" in stateful["batch size"]
        assert "refuses LSTM(batch_input_shape=...)" in stateful["batch size"]
        assert "layer.reset_state()" in stateful["reset"] and "no reset_states()" in stateful["reset"]
        assert "layer.states[i].assign(value)" in stateful["set states"]
    else:
        assert "batch_input_shape=(4, 5, 2)" in stateful["batch size"]
        assert "model.reset_states()" in stateful["reset"]
        assert "layer.reset_states(states=[h, c])" in stateful["set states"]
    assert not {"batch size", "reset", "set states"} & set(stateless)  # a stateless layer holds no state
    assert "return_state=True" in stateful["by hand"] and "initial_state=[h, c]" in stateful["by hand"]
    assert ("carries nothing inside fit" in stateful["by hand"]) == (backend == "jax")


def test_whether_stateful_fits_says_which_the_setup_looks_like():
    stateless = items(Spec(1000, 600, 1, batch_size=32))["stateful?"]
    assert "each of the 1,000 samples is one whole sequence of 600 steps" in stateless
    assert "batch size 32 only changes the optimisation" in stateless
    stateful = items(Spec(1000, 20, 1, batch_size=10, stateful=True))["stateful?"]
    assert "the 10 slots are 10 series run side by side" in stateful and "turn shuffle off" in stateful
    assert "reset where a series ends" in stateful
    settled = items(Spec(1000, 20, 1, batch_size=10, stateful=True, shuffle=False, reset="epoch"))["stateful?"]
    assert "shuffle" not in settled and "reset where" not in settled


def test_the_layout_names_the_rows_that_must_follow_each_other():
    layout = items(Spec(12, 5, 1, batch_size=4, stateful=True))["layout"]
    assert "row j+4 must continue row j" in layout and "stateful_layout(series, timesteps=5, batch_size=4)" in layout
    assert "layout" not in items(Spec(12, 5, 1, batch_size=4))


def test_the_data_item_says_whether_the_carry_follows_the_rows():
    stateful = Spec(12, 4, 1, batch_size=2, stateful=True, shuffle=False)
    follows = items(stateful, Continuity(12, 2, 4))["data"]
    assert "sliding windows" in follows and "the carry follows the data" in follows
    skips = items(stateful, Continuity(12, 3, 6))["data"]
    assert "skips steps" in skips and "stateless layer" in skips
    unseen = items(stateful, Continuity(12, None, None))["data"]
    assert "cannot show whether its rows continue" in unseen


def write(path, array):
    np.save(path, array)
    return str(path)


def test_data_in_the_right_and_the_wrong_order(tmp_path):
    long = np.arange(48, dtype="float32")[:, None]
    sliding = np.stack([long[j:j + 4] for j in range(0, 24, 2)])  # 12 rows, stride 2
    right = write(tmp_path / "sliding.npy", sliding)
    result = CliRunner().invoke(main, ["--shape", "12,4,1", "--batch", "2", "--stateful", "--no-shuffle",
                                       "--data", right, "--dry-run", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["data"] == {"path": right, "rows": 12, "stride": 2, "slot_stride": None,  # 2 x 2 = T: no overlap
                              "series": None}
    assert "the carry follows the data" in {item["key"]: item["text"] for item in report["advice"]}["data"]
    wrong = write(tmp_path / "wrong.npy", sliding[np.random.default_rng(0).permutation(12)])
    shuffled = CliRunner().invoke(main, ["--shape", "12,4,1", "--batch", "2", "--stateful", "--no-shuffle",
                                         "--data", wrong, "--dry-run", "--format", "json"])
    advice = {item["key"]: item["text"] for item in json.loads(shuffled.stdout)["advice"]}
    assert "cannot show whether its rows continue" in advice["data"]
    table = CliRunner().invoke(main, ["--shape", "12,4,1", "--batch", "2", "--stateful", "--no-shuffle",
                                      "--data", wrong, "--dry-run"])
    assert table.exit_code == 0 and "Advice" in table.stdout
    laid = stateful_layout(np.arange(24, dtype="float32"), timesteps=4, batch_size=2).x
    npz = tmp_path / "data.npz"
    np.savez(npz, x=laid)
    assert CliRunner().invoke(main, ["--shape", "6,4,1", "--batch", "2", "--stateful", "--data", str(npz),
                                     "--data-key", "x", "--dry-run"]).exit_code == 0


@pytest.mark.parametrize("make, options, says", [
    (None, [], "cannot read"),
    (lambda path: path.write_text("not numpy"), [], "not a .npy or .npz file"),
    (lambda path: np.save(path, np.zeros((12, 4, 2), "float32")), [], "has shape (12, 4, 2), not --shape (12, 4, 1)"),
    (lambda path: np.save(path, np.zeros((12, 4, 1), "int64")), [], "holds int64"),
    (lambda path: path.write_bytes(np.lib.format.magic(1, 0) + b"\x10\x00{'descr': '<f4'"), [], "not a .npy"),
    (lambda path: np.save(path, np.zeros((12, 4, 1), "float32")) or path.write_bytes(path.read_bytes()[:-20]), [],
     "cut short"),
])
def test_a_bad_data_file_exits_2_with_one_line(tmp_path, make, options, says):
    path = tmp_path / "x.npy"
    if make is not None:
        make(path)
    result = CliRunner().invoke(main, ["--shape", "12,4,1", "--batch", "2", "--stateful", "--data", str(path),
                                       *options, "--dry-run"])
    assert result.exit_code == 2 and says in result.output and result.output.count("\n") == 1, result.output


def test_an_npz_needs_its_key(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, a=np.zeros((12, 4, 1), "float32"))
    missing = CliRunner().invoke(main, ["--shape", "12,4,1", "--data", str(path), "--dry-run"])
    assert missing.exit_code == 2 and "--data-key" in missing.output and "a" in missing.output
    wrong = CliRunner().invoke(main, ["--shape", "12,4,1", "--data", str(path), "--data-key", "b", "--dry-run"])
    assert wrong.exit_code == 2 and "no array 'b'" in wrong.output


def test_advice_is_in_the_table_markdown_and_json_and_can_be_left_out():
    base = ["--shape", "12,5,1", "--batch", "4", "--stateful", "--dry-run"]
    assert "Advice" in CliRunner().invoke(main, base).stdout
    assert "## Advice" in CliRunner().invoke(main, [*base, "--format", "markdown"]).stdout
    assert json.loads(CliRunner().invoke(main, [*base, "--format", "json"]).stdout)["advice"]
    assert "Advice" not in CliRunner().invoke(main, [*base, "--no-advice"]).stdout


def test_an_npz_array_too_large_for_memory_exits_2(tmp_path, monkeypatch):
    from lstm_inspect.data import datafile as layout
    from lstm_inspect.data.memory import Room

    path = tmp_path / "x.npz"
    np.savez(path, x=np.zeros((12, 4, 1), "float32"))
    monkeypatch.setattr(layout, "rooms", lambda: [Room(100, "the memory available")])
    result = CliRunner().invoke(main, ["--shape", "12,4,1", "--data", str(path), "--data-key", "x", "--dry-run"])
    assert result.exit_code == 2 and "save it with numpy.save as a .npy file" in result.output
    assert result.output.count("\n") == 1


SLIDING = ("your 12 rows are sliding windows of one series, each {s} on from the row before (x[j+1, :-{n}] == "
           "x[j, {n}:] for every j): row j+1 continues row j, while ")


@pytest.mark.parametrize("stateful, stride, slot_stride, said", [
    (True, 2, 4, SLIDING.format(s="2 steps", n=2) + "a stateful layer carries row j into row j+2, which starts "
     "exactly where row j ends (2 x 2 = 4 steps): the carry follows the data"),
    (True, 1, 2, SLIDING.format(s="1 step", n=1) + "a stateful layer carries row j into row j+2, 2 steps on while "
     "a window holds 4: the carry re-reads steps. Sliding windows want a stateless layer; to carry state, cut "
     "back-to-back windows with stateful_layout"),
    (True, 3, 6, SLIDING.format(s="3 steps", n=3) + "a stateful layer carries row j into row j+2, 6 steps on while "
     "a window holds 4: the carry skips steps. Sliding windows want a stateless layer; to carry state, cut "
     "back-to-back windows with stateful_layout"),
    (True, None, 4, "row j+2 of your data is row j moved 4 steps on (x[j+2, :-4] == x[j, 4:]): each slot runs one "
     "series of overlapping windows, so the carry follows it"),
    (True, None, 3, "row j+2 of your data is row j moved 3 steps on (x[j+2, :-3] == x[j, 3:]): each slot runs one "
     "series of overlapping windows, so the carry re-reads 1 step of each window"),
    (False, None, 3, "row j+2 of your data is row j moved 3 steps on (x[j+2, :-3] == x[j, 3:]): each slot runs one "
     "series of overlapping windows, so a stateful layer would carry each slot along its series; a stateless one "
     "carries nothing"),
    (False, None, None, "no row of your 12 overlaps the next or the one 2 rows on: the file cannot show whether its "
     "rows continue each other (back-to-back windows leave no overlap to see). A stateless layer carries nothing "
     "from row to row: their order does not matter to it"),
    (True, None, None, "no row of your 12 overlaps the next or the one 2 rows on: the file cannot show whether its "
     "rows continue each other (back-to-back windows leave no overlap to see). A stateful layer carries row j into "
     "row j+2: make row j+2 the window after row j, as stateful_layout does"),
    (False, 2, 4, SLIDING.format(s="2 steps", n=2) + "a stateless layer carries nothing from row to row"),
    (False, 1, 2, SLIDING.format(s="1 step", n=1) + "a stateless layer carries nothing from row to row"),
])
def test_the_data_item_reads_in_full(stateful, stride, slot_stride, said):
    spec = Spec(12, 4, 1, batch_size=2, stateful=stateful, shuffle=False)
    assert [item for item in advise(spec, Continuity(12, stride, slot_stride)) if item.key == "data"] == [
        Advice("data", said)]
    assert Advice("data", said).to_json() == {"key": "data", "text": said}


def test_the_keras_2_advice_reads_in_full_and_in_order():
    found = advise(Spec(8, 5, 2, batch_size=4, stateful=True, shuffle=False, reset="epoch", keras="2",
                        backend="tensorflow"))
    assert [(item.key, item.text) for item in found[:4]] == [
        ("batch size", "fix the batch size on the first layer: LSTM(units, stateful=True, batch_input_shape=(4, 5, 2)),"
                       " or keras.Input(batch_shape=(4, 5, 2)); without it tf-keras raises \"If a RNN is "
                       "stateful, it needs to know its batch size\""),
        ("reset", "tf-keras resets every stateful layer at once: model.reset_states() (or layer.reset_states() for "
                  "one)"),
        ("set states", "give a stateful layer chosen states with layer.reset_states(states=[h, c]) (numpy arrays of "
                       "shape (B, units))"),
        ("by hand", "carry states yourself with a stateless layer: LSTM(units, return_state=True) returns the final "
                    "states after the output; pass them back as initial_state=[h, c] in the next call (a model "
                    "taking them as inputs)"),
    ]


def test_one_slot_is_said_as_one_series():
    found = items(Spec(8, 5, 2, batch_size=1, stateful=True, shuffle=False, reset="epoch"))
    assert found["stateful?"] == (
        "stateful fits when each row is a window of a longer series: the 1 slot is 1 series, its state flowing from "
        "one window to the next. If each of the 8 samples is a whole sequence, use a stateless layer: here a state "
        "would flow into an unrelated sequence")


def test_only_a_stateful_layer_on_jax_is_told_that_jax_carries_nothing():
    assert "on jax" not in items(Spec(8, 5, 2, batch_size=4, backend="jax"))["by hand"]
    assert items(Spec(8, 5, 2, batch_size=4, stateful=True, backend="jax"))["by hand"].startswith(
        "on jax stateful=True carries nothing inside fit, evaluate and predict: carry states yourself")


CELLS_AND_DIRECTIONS = [("lstm", False), ("lstm", True), ("gru", False), ("gru", True), ("rnn", False), ("rnn", True),
                        ("convlstm2d", False)]


def advised_initial_states(text):
    """The names the "by hand" advice passes back as initial_state=..."""
    given = re.search(r"initial_state=(\[[^\]]*\]|\w+)", text).group(1)
    return given.strip("[]").split(", ")


@pytest.mark.parametrize("cell, bidirectional", CELLS_AND_DIRECTIONS)
@pytest.mark.parametrize("keras, backend", [("3", "torch"), ("2", "tensorflow")])
def test_the_advice_names_only_the_states_the_cell_and_direction_have(cell, bidirectional, keras, backend):
    frame = dict(frame=(4, 4)) if cell == "convlstm2d" else {}
    found = items(Spec(10, 5, 2, batch_size=4, stateful=True, cell=cell, bidirectional=bidirectional, keras=keras,
                       backend=backend, **frame))
    states = ["h", "c"] if cell in ("lstm", "convlstm2d") else ["h"]
    expected = [f"{way}_{name}" for way in ("fwd", "bwd") for name in states] if bidirectional else states
    assert advised_initial_states(found["by hand"]) == expected
    assert f"[output, {', '.join(expected)}]" in found["by hand"] or not bidirectional
    if keras == "3":
        assert ("1 for c" in found["set states"]) == (len(states) == 2)
        assert ("holds one state (layer.states[1] raises IndexError)" in found["set states"]) == (len(states) == 1)
        assert ("layer.forward_layer.states[i]" in found["set states"]) == bidirectional
    else:
        assert f"layer.reset_states(states=[{', '.join(expected)}])" in found["set states"]
    if cell != "convlstm2d":
        assert ("c_n" in found["port"]) == (len(states) == 2)
        assert ("h_n[-2] = out[:, -1, :units] (forward" in found["port"]) == bidirectional
        assert ("Expected hidden[0] size" if len(states) == 2 else "Expected hidden size") in found["port"]
    if expected != ["h", "c"]:
        assert not any("[h, c]" in text for text in found.values())


def test_the_port_notes_fit_the_cell():
    gru = items(Spec(8, 5, 2, batch_size=4, cell="gru"))["port"]
    assert "Keras's gates z, r, h reordered to PyTorch's r, z, n" in gru and "reset_after=True" in gru
    lstm = items(Spec(8, 5, 2, batch_size=4, layers=2))["port"]
    assert "nn.LSTM(2, units, num_layers=2, batch_first=True)" in lstm and "bias = bias_ih + bias_hh" in lstm
    assert "reset_after" not in lstm and "carry" not in lstm  # stateless: nothing to carry
    stateful = items(Spec(8, 5, 2, batch_size=4, stateful=True))["port"]
    assert "detached" in stateful and "Expected hidden" not in stateful  # every batch is whole
    assert "PyTorch has no ConvLSTM2D" in items(Spec(8, 5, 2, batch_size=4, cell="convlstm2d", frame=(4, 4)))["port"]
