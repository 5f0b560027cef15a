"""Padded sequences (--lengths, --pad, --mask): each sample's valid steps, the zeros after or
before them, and the mirror's masked run held to each sample run alone on its valid steps (an
oracle that masks nothing). Every Keras's run, slot by slot, is in test_backends (the "padding:"
setups), and the mirror's masked outputs next to Keras's in its masked-outputs probe."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from usage import usage_error

from lstm_inspect.api import inspect
from lstm_inspect.cli import main
from lstm_inspect.core.choices import Phase
from lstm_inspect.core.errors import SpecError
from lstm_inspect.core.lengths import Lengths
from lstm_inspect.core.spec import Spec
from lstm_inspect.explain.advice import advise
from lstm_inspect.mirror.inputs import batch_inputs, build_rnn, model_mask, padded_batch
from lstm_inspect.mirror.module import forward
from lstm_inspect.mirror.run import mirror_records

CPU = torch.device("cpu")


def _valid_part(x, length, pad):
    """A sample's valid steps, cut out of its padded sequence: what an unpadded run is given."""
    return x[:, :length] if pad == "post" else x[:, x.shape[1] - length:]


def test_a_list_of_lengths_is_cycled_over_each_phases_samples():
    lengths = Lengths.parse("5, 3,4")
    assert str(lengths) == "5,3,4"
    assert lengths.of(0, Phase.TRAIN, np.arange(7)).tolist() == [5, 3, 4, 5, 3, 4, 5]
    assert lengths.of(9, Phase.PREDICT, np.array([4, 0])).tolist() == [3, 5]


@given(st.integers(1, 6), st.integers(0, 6), st.integers(0, 2**32 - 1), st.sampled_from(list(Phase)),
       st.lists(st.integers(0, 10**6), min_size=1, max_size=40))
def test_drawn_lengths_lie_in_the_range_and_are_each_samples_own(low, extra, seed, phase, samples):
    lengths = Lengths.parse(f"{low}-{low + extra}")
    drawn = lengths.of(seed, phase, np.array(samples))
    assert ((low <= drawn) & (drawn <= low + extra)).all()
    # A sample's length depends on the sample alone, whatever batch holds it.
    assert drawn.tolist() == [int(lengths.of(seed, phase, np.array([sample]))[0]) for sample in samples]


def test_drawn_lengths_take_every_value_of_the_range_and_change_with_the_seed():
    lengths = Lengths.parse("2-5")
    drawn = lengths.of(0, Phase.TRAIN, np.arange(400))
    assert set(drawn.tolist()) == {2, 3, 4, 5}
    assert not np.array_equal(drawn, lengths.of(1, Phase.TRAIN, np.arange(400)))
    assert not np.array_equal(drawn, lengths.of(0, Phase.PREDICT, np.arange(400)))


@pytest.mark.parametrize("pad", ["post", "pre"])
def test_the_padding_is_zeros_after_or_before_each_samples_valid_steps(pad):
    spec = Spec(12, 6, 3, lengths="1-6", pad=pad)
    samples = np.arange(12)
    x = batch_inputs(spec, Phase.TRAIN, samples, CPU)
    for row, length in zip(x, spec.lengths.of(spec.seed, Phase.TRAIN, samples)):
        nonzero = row.abs().amax(dim=1) > 0
        expected = torch.arange(6) < length if pad == "post" else torch.arange(6) >= 6 - length
        assert nonzero.tolist() == expected.tolist()
    whole = batch_inputs(Spec(12, 6, 3), Phase.TRAIN, samples, CPU)
    kept = x != 0
    assert torch.equal(x[kept], whole[kept])  # the valid steps are the unpadded data, unchanged


@pytest.mark.parametrize("pad", ["post", "pre"])
@pytest.mark.parametrize(("cell", "layers", "bidirectional"),
                         [("lstm", 1, False), ("gru", 2, False), ("rnn", 1, True), ("lstm", 2, True)])
def test_a_masked_run_ends_in_the_state_of_each_sample_run_alone_on_its_valid_steps(pad, cell, layers, bidirectional):
    spec = Spec(7, 6, 2, units=3, cell=cell, layers=layers, bidirectional=bidirectional, lengths="1-6", pad=pad)
    module = build_rnn(spec, CPU)
    samples = np.arange(7)
    x = batch_inputs(spec, Phase.TRAIN, samples, CPU)
    start = tuple(torch.randn(layers * spec.directions, 7, 3) for _ in spec.cell.state_names)
    with torch.no_grad():
        _, final = forward(module, x, start, model_mask(spec, Phase.TRAIN, samples, CPU))
        for i, length in enumerate(spec.lengths.of(spec.seed, Phase.TRAIN, samples)):
            _, alone = forward(module, _valid_part(x[i:i + 1], length, pad), tuple(s[:, i:i + 1] for s in start))
            for batched, single in zip(final, alone):
                assert torch.allclose(batched[:, i], single[:, 0], atol=1e-6), (i, length)


@pytest.mark.parametrize("pad", ["post", "pre"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_steps_output_what_keras_outputs_there(pad, bidirectional):
    # Measured on Keras 3.15.1: one way, a masked step repeats the last valid output (zeros before
    # the first valid step); Bidirectional gives zeros at masked steps in both directions.
    spec = Spec(6, 6, 2, units=3, bidirectional=bidirectional, lengths="1-5", pad=pad)
    module = build_rnn(spec, CPU)
    samples = np.arange(6)
    x = batch_inputs(spec, Phase.TRAIN, samples, CPU)
    with torch.no_grad():
        output, _ = forward(module, x, mask=model_mask(spec, Phase.TRAIN, samples, CPU))
        for i, length in enumerate(spec.lengths.of(spec.seed, Phase.TRAIN, samples)):
            alone, _ = forward(module, _valid_part(x[i:i + 1], length, pad))
            valid = slice(0, length) if pad == "post" else slice(6 - length, 6)
            padding = slice(length, 6) if pad == "post" else slice(0, 6 - length)
            assert torch.allclose(output[i, valid], alone[0], atol=1e-6)
            if bidirectional or pad == "pre":
                expected = torch.zeros_like(output[i, padding])
            else:
                expected = output[i, length - 1].expand_as(output[i, padding])  # the last valid output
            assert torch.equal(output[i, padding], expected), (i, length)


def test_unmasked_padding_runs_as_input_and_moves_the_state():
    spec = Spec(4, 6, 2, lengths="2", mask=False)
    module = build_rnn(spec, CPU)
    samples = np.arange(4)
    x = batch_inputs(spec, Phase.TRAIN, samples, CPU)
    assert model_mask(spec, Phase.TRAIN, samples, CPU) is None
    with torch.no_grad():
        _, padded = forward(module, x)
        _, unpadded = forward(module, x[:, :2])
    assert float((padded[0] - unpadded[0]).abs().max()) > 1e-3


def test_a_stateful_slot_carries_the_state_of_its_last_valid_step_into_the_next_batch():
    spec = Spec(8, 5, 2, units=3, batch_size=4, stateful=True, shuffle=False, lengths="2-5", pad="post")
    first, second = mirror_records(spec)
    assert all(torch.equal(now, before) for now, before in zip(second.initial, first.final))
    module = build_rnn(spec, CPU)
    x = [batch_inputs(spec, Phase.TRAIN, record.call.samples, CPU) for record in (first, second)]
    lengths = [spec.lengths.of(spec.seed, Phase.TRAIN, record.call.samples) for record in (first, second)]
    with torch.no_grad():
        for slot in range(4):
            # Slot i's valid steps of batch 0, then of batch 1, as one sequence from zeros.
            joined = torch.cat([part[slot:slot + 1, :length[slot]] for part, length in zip(x, lengths)], dim=1)
            _, alone = forward(module, joined)
            assert torch.allclose(second.final[0][:, slot], alone[0][:, 0], atol=1e-6)


def _refusal(*words):
    return usage_error("--shape", "8,5,2", "--batch", "4", *words)


@pytest.mark.parametrize(("words", "said"), [
    (["--lengths", "6"], "--lengths 6: a length of 6 is longer than the 5 timesteps of --shape"),
    (["--lengths", "3,0"], "--lengths are at least 1"),
    (["--lengths", "4-2"], "--lengths A-B needs A <= B"),
    (["--lengths", "two"], "--lengths takes whole numbers"),
    (["--lengths", "1-2-3"], "--lengths is a list (5,3,4) or a range A-B (2-5)"),
    (["--pad", "pre"], "--pad says where the padding goes: give --lengths too"),
    (["--no-mask"], "--no-mask feeds the padding unmasked: give --lengths (or --mask-value with --data) too"),
    (["--pad", "middle", "--lengths", "3"], "'middle' is not one of 'post', 'pre'"),
])
def test_bad_padding_settings_are_one_line_usage_errors(words, said):
    assert said in _refusal(*words)


def test_masked_convlstm2d_padding_is_refused_where_keras_raises_and_followed_elsewhere():
    frames = dict(frame=(4, 4), cell="convlstm2d", lengths="2")
    with pytest.raises(SpecError, match='padding="valid", masked: Keras raises in the layer\'s first call'):
        Spec(8, 3, 1, **frames, backend="torch")
    with pytest.raises(SpecError, match="masked, on backend jax: Keras raises"):
        Spec(8, 3, 1, **frames, padding="same", backend="jax")
    for followed in (dict(padding="same", backend="tensorflow"), dict(mask=False, backend="jax")):
        assert Spec(8, 3, 1, **frames, **followed).padded


@pytest.mark.parametrize(("pad", "go_backwards"), [("post", False), ("pre", False), ("post", True)])
def test_a_masked_convlstm2d_ends_as_each_sample_run_alone_on_its_valid_frames(pad, go_backwards):
    spec = Spec(6, 4, 2, frame=(3, 4), kernel=2, padding="same", cell="convlstm2d", units=2, lengths="1-4", pad=pad,
                go_backwards=go_backwards, layers=1 if go_backwards else 2, batch_size=6, backend="torch")
    module = build_rnn(spec, CPU)
    x, mask = padded_batch(spec, Phase.TRAIN, np.arange(6), CPU)
    with torch.no_grad():
        output, final = forward(module, x, mask=mask, go_backwards=go_backwards)
        for i in range(6):
            kept = x[i:i + 1, mask[i]]
            alone_output, alone = forward(module, kept, go_backwards=go_backwards)
            for state, expected in zip(final, alone):
                assert torch.allclose(state[:, i], expected[:, 0], atol=1e-6)
            # The last step run outputs the last valid step's output: a masked step repeats the one before.
            assert torch.allclose(output[i, -1], alone_output[0, -1], atol=1e-6)


def test_the_json_spec_says_the_padding_and_a_replay_reads_it_back(tmp_path):
    words = ["--shape", "8,5,2", "--batch", "4", "--stateful", "--no-shuffle", "--lengths", "2,5", "--pad", "pre",
             "--no-mask", "--format", "json", "--no-evidence", "--no-advice"]
    done = CliRunner().invoke(main, words)
    assert done.exit_code == 0, done.output
    found = json.loads(done.stdout)
    assert {key: found["spec"][key] for key in ("lengths", "pad", "mask")} == {"lengths": "2,5", "pad": "pre",
                                                                             "mask": False}
    assert Spec.from_json(found["spec"]) == Spec(8, 5, 2, batch_size=4, stateful=True, shuffle=False, lengths="2,5",
                                                 pad="pre", mask=False, backend=found["spec"]["backend"])
    plain = json.loads(CliRunner().invoke(main, ["--shape", "8,5,2", "--format", "json", "--no-evidence",
                                                 "--no-advice"]).stdout)
    assert not {"lengths", "pad", "mask"} & set(plain["spec"])  # files of unpadded runs read as before



def _run(*words):
    done = CliRunner().invoke(main, ["--no-evidence", "--no-advice", *words])
    assert done.exit_code == 0, done.output
    return done.stdout


def _zeros_at_end_or_start(x):
    """Each sample's valid steps read off its inputs (the padding is all zeros there): an oracle
    of the lengths apart from Lengths.of."""
    nonzero = (x != 0).any(dim=-1)
    return nonzero.sum(dim=1).tolist()


def test_each_step_in_json_gives_each_slots_valid_length_as_the_mirror_padded_it():
    words = ["--shape", "12,6,2", "--batch", "4", "--lengths", "2-5", "--seed", "3", "--format", "json"]
    steps = json.loads(_run(*words))["steps"]
    spec = Spec(12, 6, 2, batch_size=4, lengths="2-5", seed=3)
    assert len(steps) == 3
    for step in steps:
        x = batch_inputs(spec, Phase.TRAIN, np.array(step["samples"]), CPU)
        assert step["lengths"] == _zeros_at_end_or_start(x)
    # --no-slots: the range in place of the list.
    counts = json.loads(_run(*words, "--no-slots"))["steps"]
    assert [(step["shortest"], step["longest"]) for step in counts] == [
        (min(step["lengths"]), max(step["lengths"])) for step in steps]
    assert "lengths" not in json.loads(_run("--shape", "12,6,2", "--batch", "4", "--format", "json"))["steps"][0]


def test_validation_split_batches_give_the_lengths_of_the_training_samples_they_hold():
    steps = json.loads(_run("--shape", "12,6,2", "--batch", "4", "--lengths", "2-5", "--format", "json",
                            "--calls", "fit(batch_size=4, validation_split=0.34)"))["steps"]
    spec = Spec(12, 6, 2, batch_size=4, lengths="2-5")
    held_out = [step for step in steps if step["phase"] == "validation"]
    assert held_out and all(step["data"] == "train" for step in held_out)
    for step in held_out:
        x = batch_inputs(spec, Phase.TRAIN, np.array(step["samples"]), CPU)
        assert step["lengths"] == _zeros_at_end_or_start(x)


def test_the_table_markdown_and_csv_show_each_slots_valid_length_only_where_sequences_are_padded():
    words = ["--shape", "12,6,2", "--batch", "4", "--no-shuffle", "--lengths", "5,3,4,6,2"]
    markdown = _run(*words, "--format", "markdown").splitlines()
    header = next(line for line in markdown if line.startswith("| step"))
    assert header == "| step | call | samples | valid steps | slots started from | max \\|h0\\| | ok |"
    rows = [line.split(" | ") for line in markdown if line.startswith("| 0 ") or line.startswith("| 1 ")]
    assert [row[3] for row in rows] == ["5, 3, 4, 6", "2, 5, 3, 4"]
    table = _run(*words, "--format", "table")
    assert "valid steps" in table and "5, 3, 4, 6" in table
    csv_lines = _run(*words, "--format", "csv").splitlines()
    assert csv_lines[0].endswith(",verified,call,valid_steps")
    assert [line.rsplit(",", 1)[1] for line in csv_lines[1:6]] == ["5", "3", "4", "6", "2"]
    plain = _run("--shape", "12,6,2", "--batch", "4", "--format", "markdown")
    assert "valid steps" not in plain


def test_a_steps_valid_lengths_are_one_number_when_equal_and_a_range_for_many_slots():
    equal = _run("--shape", "12,6,2", "--batch", "4", "--no-shuffle", "--lengths", "3", "--format", "markdown")
    assert "| 0 | train e0 b0 | 0-3 | 3 | reset x4 |" in equal
    many = _run("--shape", "12,6,2", "--batch", "6", "--no-shuffle", "--lengths", "5,3,4,6,2", "--format",
                "markdown")
    assert "| 0-5 | 2-6 | reset x6 |" in many

def _padded_report(**settings):
    spec = Spec(8, 5, 2, units=3, batch_size=4, **{"lengths": "2-5", **settings})
    return inspect(spec).run()


@pytest.mark.parametrize("mask", [True, False])
def test_the_masking_evidence_measures_the_state_against_each_sample_run_alone(mask):
    report = _padded_report(mask=mask)
    item = next(item for item in report.evidence if item.key == "masking")
    assert item.extra["masked"] <= 1e-5 < 1e-3 < item.extra["unmasked"]
    # The run's own setting is the value judged: passed only where the mask promises the unpadded state.
    assert item.value == item.extra["masked" if mask else "unmasked"]
    assert item.passed is (True if mask else None)
    assert report.ok


def test_unpadded_runs_have_no_masking_evidence_or_padding_claims():
    report = inspect(Spec(8, 5, 2, units=3, batch_size=4)).run()
    assert "masking" not in {item.key for item in report.evidence}
    assert not any(word in claim.text for claim in report.claims for word in ("Padding", "Masked", "padding"))


PADDING_CLAIMS = ("Padding does not change the state", "Masked steps output zeros",
                  "The final state is the state after the last timestep, padding included")


def _padding_verdicts(report):
    judged = {claim.text: claim.true for claim in report.claims}
    return tuple(judged[text] for text in PADDING_CLAIMS)


@pytest.mark.parametrize(("settings", "verdicts"), [
    ({}, (True, False, False)),
    ({"pad": "pre"}, (True, True, False)),  # every masked step comes before the first valid one
    ({"bidirectional": True}, (True, True, False)),  # zero_output_for_mask on both directions
    ({"mask": False}, (False, False, True)),
])
def test_the_padding_claims_follow_the_mask_the_padding_side_and_the_direction(settings, verdicts):
    assert _padding_verdicts(_padded_report(**settings)) == verdicts


def test_the_unmasked_claim_names_the_fix_as_the_caller_spells_it():
    claim = next(claim for claim in _padded_report(mask=False).claims
                 if claim.text == PADDING_CLAIMS[0])
    assert "keras.layers.Masking(mask_value=0.0) before the layer (mask=True)" in claim.because
    result = CliRunner().invoke(main, ["--shape", "8,5,2", "--batch", "4", "--lengths", "2-5", "--no-mask",
                                       "--format", "json", "--no-advice"])
    claims = json.loads(result.stdout)["claims"]
    assert any("(--mask) skips them" in claim["because"] for claim in claims), claims


@pytest.mark.parametrize(("settings", "said"), [
    ({}, "each sample holds 2 to 5 valid steps of its 5 timesteps, the zeros after them. Masking skips it"),
    ({"lengths": "2,5", "pad": "pre"}, "the samples hold 2, 5 valid steps in turn of their 5 timesteps, the zeros "
                                       "before them"),
    ({}, "At a masked step return_sequences outputs the last valid output again."),
    ({"pad": "pre"}, "At a masked step return_sequences outputs zeros (no valid output yet)."),
    ({"bidirectional": True}, "outputs zeros in both directions"),
    ({"stateful": True, "shuffle": False}, "that is the state its slot carries into the next batch"),
    ({"mask": False}, "Nothing masks it: the zeros run through the layer as input and move the state"),
    ({"mask": False, "stateful": True, "shuffle": False}, "and its slot carries the moved one on"),
])
def test_the_verdict_says_what_the_padding_does(settings, said):
    assert said in _padded_report(**settings).verdict


@pytest.mark.parametrize("mask", [True, False])
def test_no_carry_is_promised_where_the_backend_carries_nothing(mask):
    verdict = _padded_report(stateful=True, shuffle=False, backend="jax", mask=mask).verdict
    assert "Padded:" in verdict and "carries" not in verdict.split("Padded:")[1]


def _padding_advice(**settings):
    spec = Spec(8, 5, 2, units=3, batch_size=4, **{"lengths": "2-5", **settings})
    found = [item.text for item in advise(spec) if item.key == "padding"]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(("settings", "said", "unsaid"), [
    ({}, "pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)", "carry"),
    ({}, "from h_n[-1], not out[:, -1], which is padding", "valid steps to the front"),
    ({"bidirectional": True}, "h_n[-2] (forward) and h_n[-1] (backward)", "from h_n[-1],"),
    ({"pad": "pre"}, "after moving each row's valid steps to the front", "which is padding"),
    ({"stateful": True, "shuffle": False}, "carry each slot's h_n and c_n, detached", "Masking(mask_value=0.0) before"),
    ({"stateful": True, "shuffle": False, "cell": "gru"}, "carry each slot's h_n, detached", "c_n"),
    ({"stateful": True, "shuffle": False, "backend": "jax"}, "h_n[-1]", "carry"),  # jax carries nothing
    ({"mask": False}, "mask the padding: keras.layers.Masking(mask_value=0.0) before", "pack_padded_sequence"),
])
def test_the_padding_advice_fits_the_mask_the_padding_side_and_the_cell(settings, said, unsaid):
    text = _padding_advice(**settings)
    assert said in text and unsaid not in text, text


def test_unpadded_setups_get_no_padding_advice():
    assert "padding" not in {item.key for item in advise(Spec(8, 5, 2, batch_size=4, stateful=True))}
