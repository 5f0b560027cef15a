"""--mask-value V with --data: each sample's mask read from its row as keras.layers.Masking(V)
computes it, masked steps anywhere (after, before, between the valid ones, or every step). The
oracles here read the file with plain numpy loops and run each sample's kept steps alone; every
Keras's run, slot by slot, is in test_backends (the "data mask:" setups)."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from usage import usage_error

from lstm_inspect.cli import main
from lstm_inspect.core.choices import Phase
from lstm_inspect.core.errors import SpecError
from lstm_inspect.core.spec import Spec
from lstm_inspect.data.masks import kept_steps_of, read_mask
from lstm_inspect.mirror.inputs import build_rnn, inputs_and_padding
from lstm_inspect.mirror.module import forward
from lstm_inspect.mirror.run import mirror_records

CPU = torch.device("cpu")
# Row kinds: masked after the valid steps, before, between, at both ends, throughout, not at all.
KINDS = ("post", "pre", "middle", "ends", "empty", "whole")


def masked_rows(value, rows=12, timesteps=6, features=2, seed=0):
    """Rows of every kind, in turn; a masked step holds `value` in every feature, and a valid step
    holds it in one feature only (still kept: Masking needs every feature equal)."""
    x = np.random.default_rng(seed).uniform(-1, 1, (rows, timesteps, features)).astype("float32")
    steps = {"post": slice(timesteps - 2, None), "pre": slice(0, 2), "middle": slice(2, 4), "empty": slice(None)}
    for row in range(rows):
        kind = KINDS[row % len(KINDS)]
        if kind == "ends":
            x[row, 0] = x[row, -1] = value
        elif kind in steps:
            x[row, steps[kind]] = value
        if kind != "empty":
            x[row, 3 if kind == "pre" else 1, 0] = value
    return x


def _saved(tmp_path, x, name="x.npy"):
    path = tmp_path / name
    np.save(path, x)
    return str(path)


def _kept_by_loops(x, value):
    """Each step kept unless every feature equals value: Keras's rule, in loops."""
    return np.array([[any(feature != value for feature in step) for step in row] for row in x])


@pytest.mark.parametrize("value", [0.0, -1.0, 0.5])
def test_the_layout_counts_each_rows_masked_steps_where_they_fall(tmp_path, value):
    x = masked_rows(value)
    mask = read_mask(_saved(tmp_path, x), value)
    kept = _kept_by_loops(x, value)
    counts = {kind: 0 for kind in KINDS[:-1]}
    for row in kept:
        valid = np.flatnonzero(row)
        if not len(valid):
            counts["empty"] += 1
        elif valid[-1] - valid[0] + 1 > len(valid):
            counts["middle"] += 1
        elif valid[0] > 0 and valid[-1] < len(row) - 1:
            counts["ends"] += 1
        elif valid[0] > 0:
            counts["pre"] += 1
        elif valid[-1] < len(row) - 1:
            counts["post"] += 1
    layout = mask.layout
    assert (layout.post, layout.pre, layout.middle, layout.ends, layout.empty) == tuple(
        counts[kind] for kind in ("post", "pre", "middle", "ends", "empty"))
    assert min(counts.values()) == 2 and layout.padded == 10 and layout.rows == 12
    assert (layout.shortest, layout.longest) == (int(kept.sum(1).min()), int(kept.sum(1).max()))


@pytest.mark.parametrize("archive", [False, True])
def test_each_sample_reads_its_own_row_in_any_order_and_any_phase_reads_row_i_mod_n(tmp_path, archive):
    x = masked_rows(-1.0)
    if archive:
        path = str(tmp_path / "x.npz")
        np.savez(path, inputs=x)
        mask = read_mask(path, -1.0, key="inputs")
    else:
        mask = read_mask(_saved(tmp_path, x), -1.0)
    samples = np.array([7, 0, 31, 5, 5, 12])
    assert np.array_equal(kept_steps_of(mask, samples), _kept_by_loops(x[samples % 12], -1.0))


def test_the_mirrors_inputs_hold_the_mask_value_exactly_where_the_data_is_masked(tmp_path):
    x = masked_rows(0.5)
    spec = Spec(12, 6, 2, batch_size=4, data_mask=read_mask(_saved(tmp_path, x), 0.5))
    inputs, valid = inputs_and_padding(spec, Phase.TRAIN, np.arange(12), CPU)
    kept = _kept_by_loops(x, 0.5)
    assert np.array_equal(valid.numpy(), kept)
    assert np.array_equal((inputs != 0.5).any(dim=-1).numpy(), kept)  # Keras's Masking finds the same mask


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_a_masked_run_ends_as_each_samples_kept_steps_run_alone(tmp_path, cell, go_backwards):
    x = masked_rows(-1.0)
    spec = Spec(12, 6, 2, units=3, cell=cell, batch_size=12, shuffle=False, go_backwards=go_backwards,
                data_mask=read_mask(_saved(tmp_path, x), -1.0))
    (record,) = mirror_records(spec)
    module = build_rnn(spec, CPU)
    inputs, _ = inputs_and_padding(spec, Phase.TRAIN, np.arange(12), CPU)
    kept = _kept_by_loops(x, -1.0)
    with torch.no_grad():
        for row in range(12):
            steps = inputs[row:row + 1, torch.as_tensor(kept[row])]
            if go_backwards:
                steps = steps.flip(1)
            alone = forward(module, steps)[1] if steps.shape[1] else tuple(torch.zeros_like(s[:, :1])
                                                                            for s in record.final)
            for mirror, expected in zip(record.final, alone):
                assert torch.allclose(mirror[:, row], expected[:, 0], atol=1e-6), (row, KINDS[row % len(KINDS)])


def test_a_stateful_slot_masked_throughout_carries_its_state_through_the_call_unchanged(tmp_path):
    x = masked_rows(0.0, rows=8)  # row 4, slot 0 of batch 1, masked throughout
    spec = Spec(8, 6, 2, units=3, batch_size=4, stateful=True, shuffle=False,
                data_mask=read_mask(_saved(tmp_path, x), 0.0))
    first, second = mirror_records(spec)
    assert all(torch.equal(after[:, 0], before[:, 0]) for after, before in zip(second.final, first.final))
    assert not all(torch.equal(after[:, 1], before[:, 1]) for after, before in zip(second.final, first.final))
    assert float(second.output[0].abs().max()) == 0.0  # Keras outputs zeros: no valid step in the call


def _args(path, *words):
    return ["--shape", "12,6,2", "--batch", "4", "--data", path, *words]


@pytest.mark.parametrize(("words", "said"), [
    (["--mask-value", "0"], "--mask-value reads each sample's mask from its row of --data: give --data too"),
    (["--mask-value", "nan", "--data", "{path}"], "--mask-value nan masks nothing"),
    (["--mask-value", "0", "--data", "{path}", "--lengths", "3"], "--lengths cannot be combined with --data"),
    (["--mask-value", "0", "--data", "{path}", "--pad", "pre"], "--mask-value cannot be combined with --pad"),
    (["--mask-value", "0", "--emit", "keras"], "--emit cannot be combined with --mask-value"),
    (["--mask-value", "zero", "--data", "{path}"], "'zero' is not a valid float"),
    (["--mask-value", "0", "--data", "{path}", "--cell", "convlstm2d"], "--shape"),
])
def test_bad_mask_settings_are_one_line_usage_errors(tmp_path, words, said):
    path = _saved(tmp_path, masked_rows(0.0))
    assert said in usage_error("--shape", "12,6,2", "--batch", "4", *(w.format(path=path) for w in words))


def test_a_data_mask_of_the_wrong_rows_is_refused_in_the_library(tmp_path):
    mask = read_mask(_saved(tmp_path, masked_rows(0.0)), 0.0)
    with pytest.raises(SpecError, match="read 12 rows, not the 10 samples"):
        Spec(10, 6, 2, data_mask=mask)


def _json(*words):
    done = CliRunner().invoke(main, [*words, "--format", "json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_json_gives_each_slots_kept_steps_the_mask_and_a_replay_reads_it_back(tmp_path):
    x = masked_rows(-1.0)
    path = _saved(tmp_path, x)
    found = _json(*_args(path, "--mask-value", "-1", "--no-shuffle", "--no-evidence"))
    kept = _kept_by_loops(x, -1.0).sum(axis=1)
    assert [step["lengths"] for step in found["steps"]] == [kept[i:i + 4].tolist() for i in (0, 4, 8)]
    assert found["spec"]["data_mask"]["value"] == -1.0 and found["spec"]["data_mask"]["layout"]["middle"] == 2
    assert Spec.from_json(found["spec"]).data_mask == read_mask(path, -1.0)


def test_the_table_shows_kept_steps_and_the_verdict_says_where_the_data_masks(tmp_path):
    done = CliRunner().invoke(main, _args(_saved(tmp_path, masked_rows(0.0)), "--mask-value", "0", "--no-evidence"))
    assert done.exit_code == 0, done.output
    assert "valid steps" in done.stdout
    assert "Masked from the data: 10 of" in " ".join(done.stdout.split())
    assert "2 between valid steps" in " ".join(done.stdout.split())


def _claims(path, *words):
    found = _json(*_args(path, *words))
    return {claim["claim"]: claim for claim in found["claims"]}


def test_masked_steps_output_zeros_only_where_every_one_runs_before_a_valid_step(tmp_path):
    mixed = _claims(_saved(tmp_path, masked_rows(0.0)), "--mask-value", "0")
    assert mixed["Masked steps output zeros"]["verdict"] == "FALSE"
    assert mixed["Padding does not change the state"]["verdict"] == "TRUE"
    pre = masked_rows(0.0)
    pre[:, :, :] = np.random.default_rng(1).uniform(0.1, 1, pre.shape)
    pre[::2, :3] = 0.0  # every masked step before the valid ones
    leading = _claims(_saved(tmp_path, pre, "pre.npy"), "--mask-value", "0")
    assert leading["Masked steps output zeros"]["verdict"] == "TRUE"
    unmasked = _claims(_saved(tmp_path, masked_rows(0.0), "x2.npy"), "--mask-value", "0", "--no-mask")
    assert unmasked["Padding does not change the state"]["verdict"] == "FALSE"


def test_a_mask_value_no_step_holds_is_warned_of(tmp_path):
    done = CliRunner().invoke(main, _args(_saved(tmp_path, masked_rows(0.0)), "--mask-value", "7", "--no-evidence"))
    assert done.exit_code == 0, done.output
    assert "nothing is masked" in done.stderr and "valid steps" not in done.stdout


def test_the_masking_evidence_passes_with_the_mask_and_measures_the_padding_without(tmp_path):
    path = _saved(tmp_path, masked_rows(-1.0))
    masked = {item["key"]: item for item in _json(*_args(path, "--mask-value", "-1"))["evidence"]}["masking"]
    unmasked = {item["key"]: item for item in _json(*_args(path, "--mask-value", "-1", "--no-mask"))["evidence"]}
    assert masked["passed"] is True and masked["value"] < 1e-6
    assert unmasked["masking"]["value"] > 1e-2


def test_a_slot_masked_throughout_from_zeros_is_verified_as_carrying_its_zeros(tmp_path):
    x = masked_rows(0.0, rows=8)  # row 4 masked throughout: slot 0 of batch 1
    x[[0, 4]] = x[[4, 0]]  # now row 0, so batch 1's slot 0 carries the zeros it held
    done = CliRunner().invoke(main, ["--shape", "8,6,2", "--batch", "4", "--stateful", "--no-shuffle", "--data",
                                     _saved(tmp_path, x), "--mask-value", "0", "--no-evidence"])
    assert done.exit_code == 0, done.output
    assert "Every step verified on the tensors" in " ".join(done.stdout.split())


def test_the_masking_evidence_measures_nothing_where_no_rerun_sample_is_masked(tmp_path):
    x = np.random.default_rng(0).uniform(0.1, 1, (12, 6, 2)).astype("float32")
    x[11, 4:] = 0.0  # only the last batch's last row is padded
    found = _json(*_args(_saved(tmp_path, x), "--mask-value", "0", "--no-mask", "--no-shuffle"))
    masking = {item["key"]: item for item in found["evidence"]}["masking"]
    assert masking["value"] is None and masking["passed"] is None and "nothing to measure" in masking["detail"]


def test_the_mask_is_found_in_float32_as_keras_compares(tmp_path):
    x = masked_rows(0.1).astype("float64")  # float32's 0.1, which Keras's cast to float32 gives back
    wide = read_mask(_saved(tmp_path, x), 0.1)
    assert wide.layout == read_mask(_saved(tmp_path, x.astype("float32"), "x32.npy"), 0.1).layout
    assert wide.layout.padded == 10
