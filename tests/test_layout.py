"""stateful_layout: row j+B continues row j, held to real Keras; continuity: what a file's rows show."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstm_inspect.data.datafile import continuity
from lstm_inspect.data.layout import stateful_layout


def test_row_j_plus_b_continues_row_j():
    series = np.arange(2 * 12).reshape(2, 12, 1).astype("float32")  # two series of 12 steps
    layout = stateful_layout(series, timesteps=3, batch_size=2)
    assert layout.x.shape == (8, 3, 1) and layout.reset_every == 4
    for row in range(len(layout.x) - 2):
        assert layout.x[row + 2, 0, 0] == layout.x[row, -1, 0] + 1  # the next step of the same series
    assert layout.source[:4].tolist() == [[0, 0], [1, 0], [0, 3], [1, 3]]
    back = layout.to_series(layout.x[:, -1, 0])
    assert back.tolist() == [[2, 5, 8, 11], [14, 17, 20, 23]]


def test_one_long_series_is_cut_into_b_streams_and_targets_follow():
    series = np.arange(20, dtype="float32")
    layout = stateful_layout(series, timesteps=2, batch_size=2, targets=series * 10)
    # Streams 0..9 and 10..19; windows of 2 steps; the remainder of none.
    assert layout.x[:, :, 0].tolist() == [[0, 1], [10, 11], [2, 3], [12, 13], [4, 5], [14, 15], [6, 7],
                                         [16, 17], [8, 9], [18, 19]]
    assert layout.y.tolist() == [10, 110, 30, 130, 50, 150, 70, 170, 90, 190]


def test_several_groups_of_b_series_reset_where_a_series_ends():
    layout = stateful_layout(np.zeros((6, 9, 2)), timesteps=3, batch_size=3)
    assert layout.reset_every == 3 and layout.x.shape == (18, 3, 2)
    assert layout.source[9:12, 0].tolist() == [3, 4, 5]  # the second group starts at batch 3


def windows_by_hand(series, timesteps, batch_size):
    """The rows a stateful layer of batch B needs, built one at a time: group by group of B series,
    window by window, slot i taking series group*B + i."""
    rows, sources = [], []
    for group in range(len(series) // batch_size):
        for first in range(0, series.shape[1] - timesteps + 1, timesteps):
            for slot in range(batch_size):
                rows.append(series[group * batch_size + slot, first:first + timesteps])
                sources.append((group * batch_size + slot, first))
    return np.array(rows), sources


@given(groups=st.integers(1, 3), batch=st.integers(1, 4), timesteps=st.integers(1, 4), extra=st.integers(0, 5),
       windows=st.integers(1, 3), features=st.integers(1, 3), target_features=st.sampled_from([(), (2,)]),
       dtype=st.sampled_from(["float32", "float16", "int64"]))
def test_the_layout_is_the_windows_taken_in_order_of_slot_window_and_group(groups, batch, timesteps, extra, windows,
                                                                          features, target_features, dtype):
    length = windows * timesteps + min(extra, timesteps - 1)  # a remainder shorter than a window
    series = np.arange(groups * batch * length * features).reshape(groups * batch, length, features).astype(dtype)
    targets = -np.arange(groups * batch * length * int(np.prod(target_features))).reshape(
        groups * batch, length, *target_features)
    layout = stateful_layout(series, timesteps, batch, targets=targets)
    rows, sources = windows_by_hand(series, timesteps, batch)
    assert layout.x.dtype == np.dtype(dtype) and layout.x.shape == (groups * windows * batch, timesteps, features)
    assert np.array_equal(layout.x, rows)
    assert [tuple(pair) for pair in layout.source.tolist()] == sources
    assert (layout.batch_size, layout.reset_every) == (batch, windows)
    assert layout.y.shape == (len(rows), *target_features)
    assert np.array_equal(layout.y, [targets[which, first + timesteps - 1] for which, first in sources])
    windows_by_series = layout.to_series(layout.x)
    assert windows_by_series.dtype == np.dtype(dtype)
    assert np.array_equal(windows_by_series, series[:, :windows * timesteps].reshape(
        groups * batch, windows, timesteps, features))
    by_series = layout.to_series(layout.y)
    assert by_series.shape == (groups * batch, windows, *target_features)
    for which, first in sources:
        assert np.array_equal(by_series[which, first // timesteps], targets[which, first + timesteps - 1])


@given(batch=st.integers(1, 4), timesteps=st.integers(1, 3), length=st.integers(1, 30),
       features=st.sampled_from([None, 1, 3]))
def test_one_long_series_is_b_streams_of_equal_length(batch, timesteps, length, features):
    flat = np.arange(length * (features or 1), dtype="float32")
    series = flat if features is None else flat.reshape(length, features)
    each = length // batch
    if each < timesteps:
        with pytest.raises(ValueError, match="fewer than a window"):
            stateful_layout(series, timesteps, batch)
        return
    layout = stateful_layout(series, timesteps, batch, targets=series * 2)
    streams = series[:each * batch].reshape(batch, each, features or 1)
    rows, sources = windows_by_hand(streams, timesteps, batch)
    assert np.array_equal(layout.x, rows) and layout.reset_every == each // timesteps
    assert layout.y.shape == ((len(rows),) if features is None else (len(rows), features))
    assert np.array_equal(layout.y.reshape(len(rows), -1), [2 * streams[w, f + timesteps - 1] for w, f in sources])


@pytest.mark.parametrize("timesteps, batch, named", [(0, 2, "timesteps"), (3, 0, "batch_size"), (-1, 2, "timesteps"),
                                                     (2.0, 2, "timesteps"), (True, 2, "timesteps"),
                                                     (2, "2", "batch_size")])
def test_timesteps_and_batch_size_must_be_positive_whole_numbers(timesteps, batch, named):
    given = batch if named == "batch_size" else timesteps
    with pytest.raises(ValueError, match=re.escape(f"{named} must be a positive whole number, got {given!r}")):
        stateful_layout(np.zeros((4, 6, 1)), timesteps, batch)


def test_targets_of_another_shape_are_refused():
    with pytest.raises(ValueError, match=r"targets must have a value per series and step, shape \(2, 6\)"):
        stateful_layout(np.zeros((2, 6, 1)), 3, 2, targets=np.zeros((2, 5)))


@pytest.mark.parametrize("shape, timesteps, batch, says", [
    ((5, 12, 1), 3, 2, "do not fill batches of 2"),
    ((2, 2, 1), 3, 2, "hold no window of 3"),
    ((10,), 3, 4, "fewer than a window of 3"),
    ((), 3, 2, "series must be"),
    ((80, 6, 5, 3), 2, 8, "has 4 axes: give series of images as"),
    ((2, 6, 1, 1, 1, 1), 3, 2, "series must be"),
])
def test_a_layout_that_cannot_be_made_says_why(shape, timesteps, batch, says):
    with pytest.raises(ValueError, match=says):
        stateful_layout(np.zeros(shape), timesteps, batch)


def test_continuity_finds_sliding_windows_exactly():
    long = np.arange(40, dtype="float32")[:, None]
    sliding = np.stack([long[j:j + 5] for j in range(0, 30, 2)])  # stride 2
    assert (continuity(sliding, batch_size=1).stride, continuity(sliding, batch_size=2).slot_stride) == (2, 4)
    shuffled = sliding[np.random.default_rng(0).permutation(len(sliding))]
    assert continuity(shuffled, batch_size=2).stride is None
    layout = stateful_layout(np.arange(24, dtype="float32"), timesteps=4, batch_size=2)
    found = continuity(layout.x, batch_size=2)
    assert found.stride is None and found.slot_stride is None  # back to back: no overlap to see
    # Read a chunk of rows at a time: the answer does not depend on where chunks end.
    assert continuity(sliding, batch_size=2, chunk_rows=3) == continuity(sliding, batch_size=2)


@pytest.mark.keras
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_a_stateful_predict_on_the_layout_equals_one_stateless_pass_over_each_series(cell):
    from lstm_inspect.keras.oracle.model import import_keras

    keras = import_keras()
    series = np.random.default_rng(1).uniform(-1, 1, (4, 12, 2)).astype("float32")
    layout = stateful_layout(series, timesteps=3, batch_size=2)
    keras.utils.set_random_seed(0)
    whole_inputs = keras.Input(shape=(12, 2))
    stateless = keras.Model(whole_inputs, getattr(keras.layers, cell)(3, return_sequences=True)(whole_inputs))
    inputs = keras.Input(batch_shape=(2, 3, 2))
    stateful = keras.Model(inputs, getattr(keras.layers, cell)(3, stateful=True)(inputs))
    stateful.set_weights(stateless.get_weights())

    class ResetWhereASeriesEnds(keras.callbacks.Callback):
        def on_predict_batch_begin(self, batch, logs=None):
            if batch % layout.reset_every == 0:
                stateful.layers[-1].reset_state()

    rows = stateful.predict(layout.x, batch_size=2, callbacks=[ResetWhereASeriesEnds()], verbose=0)
    every_step = stateless.predict(series, verbose=0)  # (series, 12 steps, units)
    window_ends = every_step[:, 2::3]  # the last step of each window
    np.testing.assert_allclose(layout.to_series(rows), window_ends, atol=1e-5)
    # Without the layout (windows in series order) the carry joins unrelated windows.
    plain = np.stack([series[s, w * 3:(w + 1) * 3] for s in range(4) for w in range(4)])
    stateful.layers[-1].reset_state()
    wrong = stateful.predict(plain, batch_size=2, verbose=0)
    assert np.abs(wrong.reshape(4, 4, 3) - window_ends).max() > 1e-2


def test_a_memory_mapped_file_is_read_a_chunk_at_a_time_from_the_file(tmp_path):
    long = np.arange(80, dtype="float32").reshape(40, 2)
    sliding = np.stack([long[j:j + 5] for j in range(0, 30, 3)])  # stride 3, 10 rows
    np.save(tmp_path / "x.npy", sliding)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    for chunk_rows in (1, 3, 4096):
        assert continuity(mapped, batch_size=1, chunk_rows=chunk_rows).stride == 3
    broken = sliding.copy()
    broken[7, 0, 0] = -1  # one value off, late in the file: no longer sliding windows
    np.save(tmp_path / "y.npy", broken)
    assert continuity(np.load(tmp_path / "y.npy", mmap_mode="r"), batch_size=1, chunk_rows=3).stride is None


def test_a_slice_of_a_mapped_file_reads_its_own_rows(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(40, dtype="float32").reshape(10, 4, 1))
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    long = np.arange(60, dtype="float32")[:, None]
    np.save(tmp_path / "s.npy", np.concatenate([np.full((3, 4, 1), 7.0, "float32"),
                                                np.stack([long[j:j + 4] for j in range(0, 20, 2)])]))
    sliding = np.load(tmp_path / "s.npy", mmap_mode="r")
    assert continuity(sliding[3:], batch_size=1, chunk_rows=2).stride == 2  # from row 3 on, not from row 0
    assert continuity(mapped[5:], batch_size=1).rows == 5
