"""go_backwards (--go-backwards): the mirror's backward run held to oracles built here from
one-layer torch modules and flips, the carry between calls, and what the tool says of it. Every
Keras's run, slot by slot, is in test_backends (the "go_backwards:" setups and outputs probe)."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn
from usage import usage_error

from lstm_inspect.api import inspect
from lstm_inspect.cli import main
from lstm_inspect.core.choices import Phase
from lstm_inspect.core.errors import SpecError
from lstm_inspect.core.spec import Spec
from lstm_inspect.explain.advice import advise
from lstm_inspect.mirror.inputs import build_rnn, padded_batch
from lstm_inspect.mirror.module import forward
from lstm_inspect.mirror.run import mirror_records

CPU = torch.device("cpu")


def _one_layer(module, depth):
    """Layer `depth` of a stacked torch module, as a module of its own with copied weights."""
    layer = type(module)(module.input_size if depth == 0 else module.hidden_size, module.hidden_size,
                         batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer, f"{name}_l0").copy_(getattr(module, f"{name}_l{depth}"))
    return layer


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_one_backward_layer_runs_the_flipped_input_and_keeps_the_outputs_in_that_order(cell):
    spec = Spec(6, 5, 2, units=3, cell=cell, go_backwards=True)
    module = build_rnn(spec, CPU)
    x, _ = padded_batch(spec, Phase.TRAIN, np.arange(6), CPU)
    with torch.no_grad():
        output, final = forward(module, x, go_backwards=True)
        expected, expected_final = module(x.flip(1))
    assert torch.equal(output, expected)
    assert torch.equal(final[0], expected_final[0] if cell == "lstm" else expected_final)
    assert not torch.allclose(output, expected.flip(1))  # never flipped back


@pytest.mark.parametrize("mask", [False, True])
def test_stacked_backward_layers_each_flip_their_input_and_take_the_mask_unflipped(mask):
    spec = Spec(6, 5, 2, units=3, layers=3, go_backwards=True, lengths="1-5" if mask else "")
    module = build_rnn(spec, CPU)
    x, given = padded_batch(spec, Phase.TRAIN, np.arange(6), CPU)
    initial = tuple(torch.rand(3, 6, 3) for _ in range(2))
    with torch.no_grad():
        output, final = forward(module, x, initial, given, go_backwards=True)
        # The oracle: one-layer copies, one after another, each on the one below's outputs as they
        # come, flipped again, with the model's mask as it was (a one-layer masked run is held to
        # each sample run alone in test_padding).
        sequence, finals = x, []
        for depth in range(3):
            sequence, (h, c) = forward(_one_layer(module, depth), sequence,
                                       tuple(state[depth:depth + 1] for state in initial), given, go_backwards=True)
            finals.append((h, c))
    assert torch.allclose(output, sequence, atol=1e-6)
    for k in range(2):
        assert torch.allclose(final[k], torch.cat([states[k] for states in finals]), atol=1e-6)
    # torch's own stack on the flipped input runs every layer backwards: not what Keras's stack does.
    if not mask:
        with torch.no_grad():
            assert not torch.allclose(module(x.flip(1), initial)[0], output, atol=1e-3)


def test_a_stateful_slot_carries_the_state_after_x0_so_calls_chain_only_fed_last_first():
    spec = Spec(8, 4, 2, units=3, batch_size=4, stateful=True, shuffle=False, go_backwards=True)
    first, second = mirror_records(spec)[:2]
    module = build_rnn(spec, CPU)
    x = [padded_batch(spec, Phase.TRAIN, record.call.samples, CPU)[0] for record in (first, second)]
    with torch.no_grad():
        _, final = forward(module, x[0], go_backwards=True)
        assert torch.equal(second.initial[0], final[0])  # the state after x[:, 0] of the first call
        last_first = forward(module, torch.cat([x[1], x[0]], dim=1), go_backwards=True)[1]
        time_order = forward(module, torch.cat([x[0], x[1]], dim=1), go_backwards=True)[1]
    assert torch.allclose(second.final[0], last_first[0], atol=1e-6)
    assert not torch.allclose(second.final[0], time_order[0], atol=1e-3)


def test_the_continuation_evidence_measures_both_orders_of_the_chunks():
    report = inspect(Spec(8, 4, 2, units=3, batch_size=4, stateful=True, shuffle=False,
                          go_backwards=True)).run()
    item = next(item for item in report.evidence if item.key == "continuation")
    assert item.passed and item.value < 1e-5 < 1e-3 < item.extra["time_order_diff"]
    assert "in reverse order" in item.detail and "feed the chunks last first" in item.detail
    assert report.ok


def test_stacked_backward_layers_promise_no_continuation_and_no_masked_state():
    report = inspect(Spec(8, 5, 2, units=3, batch_size=4, stateful=True, shuffle=False, go_backwards=True,
                          layers=2, lengths="1-5")).run()
    evidence = {item.key: item for item in report.evidence}
    assert evidence["continuation"].passed is None and "chain in neither order" in evidence["continuation"].detail
    assert evidence["masking"].passed is None and evidence["masking"].value > 1e-3
    assert "even with the mask" in evidence["masking"].detail
    assert report.ok
    assert [claim.true for claim in report.claims if claim.text == "Padding does not change the state"] == [False]
    assert any("stacked go_backwards layers do not all run backwards" in warning for warning in report.warnings)


@pytest.mark.parametrize("pad", ["post", "pre"])
def test_the_port_advice_reverse_each_rows_valid_steps_and_pack_gives_kerass_state(pad):
    spec = Spec(8, 5, 2, units=3, batch_size=4, go_backwards=True, lengths="1-5", pad=pad)
    record = mirror_records(spec)[0]
    module = build_rnn(spec, CPU)
    x, valid = padded_batch(spec, record.call.stream, record.call.samples, CPU)
    rows = [x[i, valid[i]].flip(0) for i in range(len(x))]
    packed = nn.utils.rnn.pack_sequence(rows, enforce_sorted=False)
    with torch.no_grad():
        _, (h_n, c_n) = module(packed)
    assert torch.allclose(h_n, record.final[0], atol=1e-6) and torch.allclose(c_n, record.final[1], atol=1e-6)
    advice = {item.key: item.text for item in advise(spec)}["go_backwards"]
    assert "reverse each row's valid steps alone and pack those" in advice


@pytest.mark.parametrize(("settings", "said", "unsaid"), [
    ({}, "run the layer on x.flip(1) and keep its outputs in that order", "stacked"),
    ({"layers": 2}, "flip each layer's input again", "h_n carried"),
    ({"stateful": True, "shuffle": False}, "the h_n carried on is then the state after x[:, 0]", "reverse each row"),
    ({"stateful": True, "shuffle": False, "backend": "jax"}, "x.flip(1)", "h_n carried"),
])
def test_the_go_backwards_advice_fits_the_stack_the_padding_and_the_carry(settings, said, unsaid):
    spec = Spec(8, 5, 2, units=3, batch_size=4, go_backwards=True, **settings)
    text = {item.key: item.text for item in advise(spec)}["go_backwards"]
    assert said in text and unsaid not in text
    assert "go_backwards" not in {item.key for item in advise(Spec(8, 5, 2, batch_size=4))}


def _claims(**settings):
    report = inspect(Spec(8, 5, 2, units=3, batch_size=4, go_backwards=True, lengths="2-5", **settings)).run()
    return {claim.text: claim for claim in report.claims}


@pytest.mark.parametrize(("pad", "zeros"), [("post", True), ("pre", False)])
def test_masked_outputs_are_zeros_where_the_padding_runs_first(pad, zeros):
    claims = _claims(pad=pad)
    assert claims["Masked steps output zeros"].true is zeros
    assert "first valid step, which runs last" in claims[
        "The final state is the state after the last timestep, padding included"].because


@pytest.mark.parametrize(("settings", "said"), [
    ({}, "go_backwards: each call runs its steps last to first and outputs them in that order (not flipped back)."),
    ({"stateful": True, "shuffle": False}, "consecutive batches are one backward pass only when fed last chunk first"),
    ({"layers": 2}, "the second layer runs over the first's outputs in the input's own time order"),
    ({"lengths": "2-5"}, "each sample ends in the state of its first valid step (run last, going backwards)"),
    ({"lengths": "2-5"}, "At a masked step return_sequences outputs zeros (no valid output yet)."),
    ({"lengths": "2-5", "pad": "pre"}, "At a masked step return_sequences outputs the last valid output again."),
    ({"lengths": "2-5", "layers": 2}, "above the first layer it masks other steps than the padding"),
])
def test_the_verdict_says_what_going_backwards_does(settings, said):
    report = inspect(Spec(8, 5, 2, units=3, batch_size=4, go_backwards=True, **settings), dry_run=True).run()
    assert said in report.verdict


def test_a_stateful_backward_layer_is_warned_of_the_chunk_order():
    warnings = inspect(Spec(8, 4, 2, batch_size=4, stateful=True, shuffle=False, go_backwards=True),
                       dry_run=True).warnings
    assert any("feed the chunks last first" in warning for warning in warnings)
    assert not any("go_backwards" in warning for warning in inspect(
        Spec(8, 4, 2, batch_size=4, stateful=True, shuffle=False), dry_run=True).warnings)


@pytest.mark.parametrize(("words", "said"), [
    (["--bidirectional"], "--go-backwards with --bidirectional is not followed"),
    (["--emit", "keras", "--layers", "2"], "--emit with stacked --go-backwards layers is not followed yet"),
])
def test_refused_combinations_are_one_line_usage_errors(words, said):
    assert said in usage_error("--shape", "8,4,2", "--batch", "4", "--go-backwards", *words)
    with pytest.raises(SpecError, match="go_backwards with bidirectional is not followed"):
        Spec(8, 4, 2, go_backwards=True, bidirectional=True)


def test_the_json_spec_and_the_command_line_say_go_backwards():
    words = ["--shape", "8,4,2", "--batch", "4", "--stateful", "--no-shuffle", "--go-backwards", "--no-advice",
             "--no-evidence"]
    done = CliRunner().invoke(main, [*words, "--format", "json"])
    assert done.exit_code == 0, done.output
    saved = json.loads(done.stdout)
    assert saved["spec"]["go_backwards"] is True
    assert Spec.from_json(saved["spec"]).go_backwards
    markdown = CliRunner().invoke(main, [*words, "--format", "markdown"]).stdout
    assert "--go-backwards" in markdown.splitlines()[0]
    plain = json.loads(CliRunner().invoke(main, ["--shape", "8,4,2", "--format", "json", "--no-evidence",
                                                 "--no-advice"]).stdout)
    assert "go_backwards" not in plain["spec"]  # files of forward runs read as before


@pytest.mark.parametrize("change", ["twin(batch_size=2)", "save_and_load()"])
def test_a_twin_or_a_loaded_model_runs_backwards_too(change):
    spec = Spec(8, 4, 2, units=3, batch_size=2, stateful=True, shuffle=False, go_backwards=True,
                workflow=f"fit(batch_size=2); {change}; predict(2, batch_size=2)")
    record = mirror_records(spec)[-1]
    module = build_rnn(spec, CPU)
    x, _ = padded_batch(spec, Phase.PREDICT, record.call.samples, CPU)
    with torch.no_grad():
        _, final = forward(module, x, record.initial, go_backwards=True)
    assert torch.allclose(record.final[0], final[0], atol=1e-6)
