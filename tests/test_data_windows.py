"""--data: what the user's rows show (sliding windows of stride s between row j and row j+1, and
between row j and row j+B) and what the advice says of them: the b x s = T arithmetic of a stateful
carry, for strides of 1 too, for one batch of data (N == B), and files read a chunk at a time."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_inspect.cli import main
from lstm_inspect.layout import continuity

RNG = np.random.default_rng(7)


def windows(series, count, timesteps, stride):
    """`count` windows of `timesteps` steps of `series`, each `stride` steps on from the one before."""
    return np.stack([series[j * stride:j * stride + timesteps] for j in range(count)])[:, :, None].astype("float32")


def interleaved(count, timesteps, stride, slots):
    """Rows j, j+B, j+2B, ... are windows of one series, `stride` steps apart (B series side by side)."""
    series = [RNG.standard_normal(count * stride + timesteps) for _ in range(slots)]
    rows = [series[j % slots][(j // slots) * stride:(j // slots) * stride + timesteps] for j in range(count)]
    return np.stack(rows)[:, :, None].astype("float32")


def save(tmp_path, x, name="x.npy"):
    path = tmp_path / name
    np.save(path, x)
    return str(path)


def run(path, shape, batch, *options):
    result = CliRunner().invoke(main, ["--shape", shape, "--batch", str(batch), "--backend", "torch", "--data", path,
                                       "--dry-run", "--format", "json", *options])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    return report["data"], {item["key"]: item["text"] for item in report["advice"]}


STATEFUL = ["--stateful", "--no-shuffle"]


# ---- what the rows show --------------------------------------------------------------------------


def test_sliding_windows_of_stride_1_are_seen_and_named(tmp_path):
    path = save(tmp_path, windows(RNG.standard_normal(40), 12, 4, 1))
    data, advice = run(path, "12,4,1", 3)
    assert data == {"path": path, "rows": 12, "stride": 1, "slot_stride": 3, "series": None}
    assert advice["data"] == ("your 12 rows are sliding windows of one series, each 1 step on from the row before "
                              "(x[j+1, :-1] == x[j, 1:] for every j): row j+1 continues row j, while a stateless "
                              "layer carries nothing from row to row")


def test_row_j_plus_b_of_stride_1_is_seen_where_row_j_plus_1_is_another_series(tmp_path):
    path = save(tmp_path, interleaved(12, 4, 1, 2))
    data, advice = run(path, "12,4,1", 2, *STATEFUL)
    assert data == {"path": path, "rows": 12, "stride": None, "slot_stride": 1, "series": None}
    assert advice["data"].startswith("row j+2 of your data is row j moved 1 ")
    assert advice["data"].endswith("(x[j+2, :-1] == x[j, 1:]): each slot runs one series of overlapping windows, "
                                   "so the carry re-reads 3 steps of each window")
    data, _ = run(save(tmp_path, interleaved(12, 4, 3, 2), "three.npy"), "12,4,1", 2, *STATEFUL)
    assert (data["stride"], data["slot_stride"]) == (None, 3)


def test_back_to_back_windows_show_no_overlap(tmp_path):
    path = save(tmp_path, interleaved(12, 4, 4, 2))  # row j+2 starts where row j ends: nothing to see
    data, advice = run(path, "12,4,1", 2, *STATEFUL)
    assert (data["stride"], data["slot_stride"]) == (None, None)
    assert advice["data"] == ("no row of your 12 overlaps the next or the one 2 rows on: the file cannot show whether "
                              "its rows continue each other (back-to-back windows leave no overlap to see). A stateful "
                              "layer carries row j into row j+2: make row j+2 the window after row j, as "
                              "stateful_layout does")


def test_with_batch_1_row_j_plus_b_is_row_j_plus_1(tmp_path):
    path = save(tmp_path, windows(RNG.standard_normal(40), 12, 4, 2))
    data, advice = run(path, "12,4,1", 1, *STATEFUL)
    assert (data["stride"], data["slot_stride"]) == (2, None)  # the same rows: said once
    assert advice["data"].endswith("while a stateful layer carries row j into row j+1, 2 steps on while a window "
                                   "holds 4: the carry re-reads steps. Sliding windows want a stateless layer; to "
                                   "carry state, cut back-to-back windows with stateful_layout")


@pytest.mark.parametrize("rows", [4, 1])
def test_one_batch_of_data_is_read_without_a_crash(tmp_path, rows):
    # N == B: no row j+B exists to compare with.
    path = save(tmp_path, windows(RNG.standard_normal(20), rows, 4, 1))
    for options in (STATEFUL, []):
        data, advice = run(path, f"{rows},4,1", rows, *options)
        assert data == {"path": path, "rows": rows, "stride": 1 if rows > 1 else None, "slot_stride": None,
                        "series": None}
        assert "data" in advice
    table = CliRunner().invoke(main, ["--shape", f"{rows},4,1", "--batch", str(rows), "--backend", "torch",
                                      "--data", path, "--no-evidence"])
    assert table.exit_code == 0 and "Advice" in table.stdout


def test_one_timestep_shows_no_stride(tmp_path):
    path = save(tmp_path, RNG.standard_normal((6, 1, 1)).astype("float32"))
    data, _ = run(path, "6,1,1", 2, *STATEFUL)
    assert (data["stride"], data["slot_stride"]) == (None, None)


def test_a_break_at_a_chunk_boundary_is_seen():
    # Rows 0-3 are windows of one series, rows 4-11 of another: row 4 does not continue row 3.
    x = np.concatenate([windows(RNG.standard_normal(20), 4, 4, 1), windows(RNG.standard_normal(20), 8, 4, 1)])
    assert continuity(x, 2, chunk_rows=4096).stride is None
    for chunk_rows in (1, 2, 3, 4, 5):
        found = continuity(x, 2, chunk_rows=chunk_rows)
        assert (found.stride, found.slot_stride) == (None, None), chunk_rows
    whole = windows(RNG.standard_normal(40), 12, 4, 1)
    for chunk_rows in (1, 4, 5, 4096):
        assert continuity(whole, 3, chunk_rows=chunk_rows).stride == 1
        assert continuity(whole, 3, chunk_rows=chunk_rows).slot_stride == 3
    last = whole.copy()
    last[-1, 0, 0] += 1.0  # the last row's first value no longer continues the row before
    assert continuity(last, 3, chunk_rows=4).stride is None


def test_a_long_file_is_read_past_its_first_chunk(tmp_path):
    x = windows(RNG.standard_normal(5000), 4100, 2, 1)  # more rows than one chunk (4096)
    x[4099, 0, 0] += 1.0  # in the second chunk
    data, _ = run(save(tmp_path, x), "4100,2,1", 4100)
    assert data["stride"] is None


# ---- the advice's arithmetic -----------------------------------------------------------------------


@pytest.mark.parametrize("batch, stride, timesteps, says", [
    (4, 1, 4, ", which starts exactly where row j ends (4 x 1 = 4 steps): the carry follows the data"),
    (2, 3, 6, ", which starts exactly where row j ends (2 x 3 = 6 steps): the carry follows the data"),
    (2, 1, 4, ", 2 steps on while a window holds 4: the carry re-reads steps. Sliding windows want a stateless "
              "layer; to carry state, cut back-to-back windows with stateful_layout"),
    (3, 2, 4, ", 6 steps on while a window holds 4: the carry skips steps. Sliding windows want a stateless "
              "layer; to carry state, cut back-to-back windows with stateful_layout"),
])
def test_the_stateful_carry_is_b_times_s_steps_on(tmp_path, batch, stride, timesteps, says):
    rows = 12
    path = save(tmp_path, windows(RNG.standard_normal(rows * stride + timesteps), rows, timesteps, stride))
    data, advice = run(path, f"{rows},{timesteps},1", batch, *STATEFUL)
    assert data["stride"] == stride
    s = "s" * (stride > 1)
    assert advice["data"] == (f"your {rows} rows are sliding windows of one series, each {stride} step{s} on from the "
                              f"row before (x[j+1, :-{stride}] == x[j, {stride}:] for every j): row j+1 continues row "
                              f"j, while a stateful layer carries row j into row j+{batch}{says}")
    stateless = run(path, f"{rows},{timesteps},1", batch)[1]["data"]
    assert stateless.endswith("while a stateless layer carries nothing from row to row")
    for word in ("follows", "re-reads", "skips", "x 1 ="):
        assert word not in stateless


@pytest.mark.parametrize("text, batch, rows", [
    pytest.param("moved 1 step on", 2, 12, id="slot stride of 1"),
    pytest.param("carries row j into row j+1, 1 step on", 1, 12, id="a carry of 1 step"),
])
def test_a_count_of_one_step_is_singular(tmp_path, text, batch, rows):
    x = interleaved(rows, 4, 1, 2) if batch == 2 else windows(RNG.standard_normal(40), rows, 4, 1)
    _, advice = run(save(tmp_path, x), f"{rows},4,1", batch, *STATEFUL)
    assert text in advice["data"]


def test_no_advice_leaves_the_advice_out_with_data_too(tmp_path):
    path = save(tmp_path, windows(RNG.standard_normal(40), 12, 4, 1))
    result = CliRunner().invoke(main, ["--shape", "12,4,1", "--batch", "2", "--backend", "torch", "--data", path,
                                       "--dry-run", "--format", "json", "--no-advice"])
    assert result.exit_code == 2 or not {"by hand", "stateful?"} & {
        item["key"] for item in json.loads(result.stdout)["advice"]}


# ---- rows in series order: each series' windows one after another --------------------------------


def series_order(series_count, count, timesteps, stride):
    """`series_count` series, each cut into `count` sliding windows, one series after another."""
    return np.concatenate([windows(RNG.standard_normal(count * stride + timesteps), count, timesteps, stride)
                           for _ in range(series_count)])


def brute_force_series(x):
    """(stride, overlapping pairs, rows per series or None) by looking at every pair, for every stride
    the first overlapping pair has: the most overlapping wins (the smallest on a tie)."""
    rows, steps = x.shape[0], x.shape[1]
    first = next((j for j in range(rows - 1)
                  if any(np.array_equal(x[j + 1, :-s], x[j, s:]) for s in range(1, steps))), None)
    found = []
    for s in (s for s in range(1, steps) if first is not None and np.array_equal(x[first + 1, :-s], x[first, s:])):
        pairs = [np.array_equal(x[j + 1, :-s], x[j, s:]) for j in range(rows - 1)]
        starts = [0] + [j + 1 for j, pair in enumerate(pairs) if not pair] + [rows]
        runs = {b - a for a, b in zip(starts, starts[1:])}
        found.append((s, sum(pairs), runs.pop() if len(runs) == 1 else None))
    best = max(found, default=None, key=lambda item: item[1])
    return best if best is not None and 2 * best[1] > rows - 1 else None


def test_sliding_windows_in_series_order_are_found_and_a_reorder_is_said(tmp_path):
    x = series_order(4, 6, 8, 4)
    path = save(tmp_path, x)
    data, advice = run(path, "24,8,1", 4, *STATEFUL)
    assert data["stride"] is None and data["series"] == {"stride": 4, "overlapping": 20, "windows": 6}
    assert advice["data"] == (
        "20 of your 23 neighbouring rows overlap, row j+1 being row j moved 4 steps on (x[j+1, :-4] == x[j, 4:]): "
        "your rows are 4 series of 6 sliding windows each, one series after another. A stateful layer carries row j "
        "into row j+4, not into the next window of its series: put the series side by side, one per slot "
        "(batch_size=4, and x.reshape(4, 6, 8, -1).swapaxes(0, 1).reshape(-1, 8, x.shape[-1]) makes row j+4 the "
        "window after row j); the windows overlap (4 steps on while a window holds 8), so even then the carry "
        "re-reads steps: cut back-to-back windows from each series with stateful_layout")
    # The reorder the advice gives does what it says: row j+4 is row j moved 4 steps on, every j.
    reordered = x.reshape(4, 6, 8, -1).swapaxes(0, 1).reshape(-1, 8, x.shape[-1])
    assert continuity(reordered, 4).slot_stride == 4
    _, stateless = run(path, "24,8,1", 4)
    assert stateless["data"].endswith("one series after another. A stateless layer carries nothing from row to "
                                      "row: their order does not matter to it")


def test_series_of_different_lengths_are_named_without_a_count(tmp_path):
    x = np.concatenate([series_order(1, 7, 6, 2), series_order(1, 5, 6, 2)])
    data, advice = run(save(tmp_path, x), "12,6,1", 2, *STATEFUL)
    assert data["series"] == {"stride": 2, "overlapping": 10, "windows": None}
    assert "your rows are sliding windows of several series, one series after another. A stateful layer carries " \
           "row j into row j+2, not into the next window of its series: put the series side by side, one per " \
           "slot; the windows overlap" in advice["data"]


@settings(max_examples=60, deadline=None)
@given(series_count=st.integers(1, 5), count=st.integers(1, 7), timesteps=st.integers(2, 6),
       stride=st.integers(1, 5), chunk_rows=st.integers(1, 9), noise=st.integers(0, 3))
def test_series_order_is_what_every_pair_shows(series_count, count, timesteps, stride, chunk_rows, noise):
    x = series_order(series_count, count, timesteps, min(stride, timesteps - 1))
    if noise and len(x) > noise:  # a few rows of another series: pairs that overlap no more
        x[-noise:] = RNG.standard_normal(x[-noise:].shape)
    found = continuity(x, 2, chunk_rows=chunk_rows)
    if found.stride is not None:  # every pair overlaps: one series, said as before
        return
    expected = brute_force_series(x)
    got = found.series
    assert (None if got is None else (got.stride, got.overlapping, got.windows)) == expected
