"""reset_state(slots=[...]) in --calls: only those slots start from zeros, as Keras's
state.assign(state * keep) and PyTorch's h * (1 - done) zero them (real Keras: test_backends.py,
"workflow: per-slot resets"; the emitted programs: test_emit.py)."""

import pytest
import torch
from click.testing import CliRunner

from lstm_inspect import KerasStateful, Spec, SpecError, inspect, keras_steps
from lstm_inspect.cli import main
from lstm_inspect.core.workflow import parse, text
from lstm_inspect.explain.advice import advise
from lstm_inspect.torch import watch

WORKFLOW = ("predict(4); reset_state(slots=[1, 3]); predict(4); reset_state(slots=[0]); reset_state(slots=[2]); "
            "predict(4); reset_state(slots=[0, 1, 2, 3]); predict(4); twin(batch_size=2); predict(2, batch_size=2); "
            "reset_state(slots=[1]); predict(2, batch_size=2)")


def test_only_the_slots_named_start_from_zeros():
    spec = Spec(16, 3, 1, batch_size=4, stateful=True, workflow=WORKFLOW)
    assert [step.start_labels() for step in keras_steps(spec)] == [
        ["zeros"] * 4,
        ["predict:0", "zeros", "predict:2", "zeros"],
        ["zeros", "predict:5", "zeros", "predict:7"],  # two resets in a row: both their slots
        ["zeros"] * 4,  # every slot named: the whole state
        ["zeros"] * 2,  # the twin starts from zeros
        ["predict:16", "zeros"],  # the twin's first predict ran samples 16 and 17 of the predict data
    ]


def test_the_mirror_zeroes_those_slots_and_every_step_verifies():
    report = inspect(Spec(16, 3, 2, batch_size=4, stateful=True, layers=2, workflow=WORKFLOW)).run()
    assert report.ok and report.summary.verified and report.summary.checked_steps == 6
    assert "Your reset_state(slots=...) calls zero the slots they name only" in report.verdict
    assert "in the slots reset_state(slots=...) left, the others from zeros" in report.verdict


def test_keras_stateful_resets_chosen_slots_only():
    layer = KerasStateful(torch.nn.GRU(2, 3, batch_first=True, num_layers=2), batch_size=4)
    layer(torch.randn(4, 5, 2))
    (before,) = layer.states
    layer.reset_state(slots=[3, 1])
    (after,) = layer.states
    assert not after[:, [1, 3]].any() and torch.equal(after[:, [0, 2]], before[:, [0, 2]])
    assert before[:, [1, 3]].any()  # read before the reset, kept
    with pytest.raises(ValueError, match="slots are 0 to 3"):
        layer.reset_state(slots=[4])


def test_the_text_round_trips_and_bad_slots_are_refused():
    workflow = parse("reset_state(slots=(3, 1))")
    assert text(workflow) == "reset_state(slots=[1, 3])" and parse(text(workflow)) == workflow
    for given, said in [("reset_state(slots=[4])", "names slot 4 of a model of batch size 4"),
                        ("reset_state(slots=[1, 1])", "names a slot twice"),
                        ("reset_state(slots=[])", "slots is a list"),
                        ("reset_state(slots=[-1])", "must be at least 0"),
                        ("twin(batch_size=2); reset_state(slots=[2])", "of a model of batch size 2"),
                        ("twin(batch_size=2, stateful=False); reset_state(slots=[0])", "the model is stateless"),
                        ("(predict(4), twin(batch_size=2)) * 2; reset_state(slots=[3])", "of batch size 2"),
                        # The repeat's second pass runs on the twin its first made.
                        ("(reset_state(slots=[3]), twin(batch_size=2)) * 2", "of batch size 2")]:
        with pytest.raises(SpecError, match=said):
            Spec(8, 3, 1, batch_size=4, stateful=True, workflow=given)
    Spec(8, 3, 1, batch_size=4, stateful=True, workflow="(reset_state(slots=[3]), twin(batch_size=4)) * 2")
    result = CliRunner().invoke(main, ["--shape", "8,3,1", "--batch", "4", "--calls", "reset_state(slots=[0])"])
    assert result.exit_code == 2 and "stateless" in result.output


def test_a_torch_loop_with_a_done_mask_is_kerass_per_slot_reset():
    torch.manual_seed(0)
    model, x = torch.nn.LSTM(1, 3, batch_first=True), torch.randn(8, 3, 1)
    done = torch.tensor([0.0, 1.0, 0.0, 1.0])[None, :, None]
    with watch(model) as probe, torch.no_grad():
        _, (h, c) = model(x[:4])
        model(x[4:], (h * (1 - done), c * (1 - done)))
    spec = Spec(8, 3, 1, batch_size=4, stateful=True, workflow="predict(4); reset_state(slots=[1, 3]); predict(4)")
    assert probe.compare(spec).matches
    other = probe.compare(Spec(8, 3, 1, batch_size=4, stateful=True,
                               workflow="predict(4); reset_state(slots=[1]); predict(4)"))
    assert "slot 3 starts from slot 3 of the call before in Keras, in your loop from zeros" in other.text


def test_the_advice_says_how_to_zero_those_slots_in_keras_and_pytorch():
    def said(**options):
        spec = Spec(8, 3, 1, batch_size=4, stateful=True, workflow="predict(4); reset_state(slots=[1, 3])", **options)
        return {item.key: item.text for item in advise(spec)}.get("slot resets")

    lstm = said()
    assert "keep[[1, 3]] = 0; then for state in layer.states: state.assign(state * keep)" in lstm
    assert "h, c = h * (1 - done), c * (1 - done)" in lstm
    gru = said(cell="gru", bidirectional=True)
    assert "h = h * (1 - done)" in gru and "c * (1 - done)" not in gru
    assert "for rnn in (layer.forward_layer, layer.backward_layer): for state in rnn.states:" in gru
    assert "np.ones((B, 1, 1, 1)" in said(cell="convlstm2d", frame=(4, 4))
    whole = advise(Spec(8, 3, 1, batch_size=4, stateful=True, workflow="reset_state()"))
    assert "slot resets" not in {item.key for item in whole}
