"""The public Python API: the schedule, the trainable Keras-stateful module, the one-pass
inspection and its frozen report; and the bugs a review planted that the suite once let through."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from fakes import LastIntoFirst
from torch import nn

import lstm_inspect
from lstm_inspect import KerasStateError, KerasStateful, Shuffle, Spec, SpecError, inspect, keras_steps
from lstm_inspect.cli import main
from lstm_inspect.core.facts import stateful_batch_mismatch_message
from lstm_inspect.mirror import run as mirror


def test_import_is_torch_free_and_every_public_name_resolves():
    code = "import lstm_inspect, sys; assert 'torch' not in sys.modules; print(len(lstm_inspect.__all__))"
    assert int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) > 10
    for name in lstm_inspect.__all__:
        assert getattr(lstm_inspect, name) is not None, name
    with pytest.raises(AttributeError):
        lstm_inspect.not_a_name  # noqa: B018


def test_spec_takes_what_fit_takes():
    spec = Spec(12, 5, 1, batch_size=4, stateful=True, shuffle="batch", reset="epoch")
    assert spec.shuffle is Shuffle.BATCH and str(spec.reset) == "epoch"
    assert Spec(12, 5, 1, shuffle=False).shuffle is Shuffle.FALSE and not Spec(12, 5, 1, shuffle=False).shuffle
    assert Spec(12, 5, 1, shuffle=True).to_json()["shuffle"] is True
    with pytest.raises(SpecError) as raised:
        Spec(12, 5, 1, shuffle="sometimes")
    assert raised.value.field == "shuffle"
    assert Spec(12, 5, 1, keras=2).keras == "2" and Spec(12, 5, 1, keras=2).backend == "tensorflow"
    for field, value in (("cell", "lstm2"), ("keras", "4"), ("backend", "numpy")):
        with pytest.raises(SpecError) as raised:
            Spec(12, 5, 1, **{field: value})
        assert raised.value.field == field


# --- the schedule, read against hand-written tables (independent of every rule in the code) ---

def _resetting_train_batches(spec):
    return [(s.call.epoch, s.call.batch) for s in keras_steps(spec)
            if s.call.phase == "train" and s.zero_slots and s.call.index > 0]


@pytest.mark.parametrize("reset, expected", [
    # 6 training batches an epoch, 2 epochs: (epoch, batch) of every reset after the very first call.
    ("every:1", [(0, b) for b in range(1, 6)] + [(1, b) for b in range(6)]),
    ("every:2", [(0, 2), (0, 4), (1, 0), (1, 2), (1, 4)]),
    ("every:3", [(0, 3), (1, 0), (1, 3)]),
    ("every:4", [(0, 4), (1, 0), (1, 4)]),
    ("every:6", [(1, 0)]),
    ("every:7", [(1, 0)]),
    ("epoch", [(1, 0)]),
    ("never", []),
])
def test_reset_callbacks_fire_where_a_keras_callback_would(reset, expected):
    spec = Spec(24, 2, 1, batch_size=4, stateful=True, shuffle=False, epochs=2, reset=reset)
    assert _resetting_train_batches(spec) == expected


@pytest.mark.parametrize("reset", ["every:1", "epoch"])
def test_reset_callbacks_never_fire_in_validation_or_predict(reset):
    spec = Spec(8, 2, 1, batch_size=4, stateful=True, shuffle=False, epochs=2, val_samples=8, predict_samples=4,
                reset=reset)
    table = [(str(s.call.phase), s.call.epoch, s.call.batch, s.zero_slots) for s in keras_steps(spec)]
    train_zeros = 4 if reset == "every:1" else 0  # epoch: only the epoch's first batch starts from zeros
    assert table == [("train", 0, 0, 4), ("train", 0, 1, train_zeros), ("validation", 0, 0, 0),
                     ("validation", 0, 1, 0), ("train", 1, 0, 4), ("train", 1, 1, train_zeros),
                     ("validation", 1, 0, 0), ("validation", 1, 1, 0), ("predict", 0, 0, 0)]
    report = inspect(spec, evidence=False).run()  # and the mirror's callback agrees on the tensors
    assert report.ok and all(result.verified for result in report.steps)


def test_the_raising_step_carries_its_error():
    steps = list(keras_steps(Spec(10, 5, 1, batch_size=4, stateful=True, shuffle=False)))
    assert [s.raises for s in steps] == [False, False, True]
    assert steps[-1].error.step == 2 and steps[-1].error.type == "ValueError"
    assert steps[-1].error.message == stateful_batch_mismatch_message(4, 2)
    assert steps[-1].source_slot is None and steps[-1].start_labels() is None


# --- the public module, trained in a plain PyTorch loop ---

def _starts(before, previous_final, previous_samples):
    """Each slot's start read off the tensors: zeros, or the previous call's sample it carries."""
    labels = []
    for slot in range(before[0].shape[1]):
        if not any(state[:, slot].any() for state in before):
            labels.append("zeros")
        elif previous_final is not None and all(torch.equal(now[:, slot], last[:, slot])
                                                for now, last in zip(before, previous_final)):
            labels.append(f"train:{previous_samples[slot]}")
        else:
            labels.append("?")
    return labels


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_the_module_trains_in_a_plain_loop_and_starts_each_slot_where_the_schedule_says(cell):
    torch.manual_seed(0)
    spec = Spec(16, 6, 2, batch_size=4, stateful=True, shuffle=False, epochs=4, reset="epoch", units=8)
    x = torch.randn(spec.samples, spec.timesteps, spec.features)
    target = x.sum(dim=(1, 2)).unsqueeze(1)
    layer = KerasStateful(cell(spec.features, spec.units, batch_first=True), batch_size=spec.batch_size)
    head = nn.Linear(spec.units, 1)
    optimizer = torch.optim.SGD([*layer.parameters(), *head.parameters()], lr=0.05)
    previous_final = previous_samples = None
    losses = []
    for step in keras_steps(spec):
        call = step.call
        if call.batch == 0:
            layer.reset_state()  # the user's reset at each epoch's start
        before = tuple(state.clone() for state in layer.states)
        output, _ = layer(x[call.samples])
        loss = nn.functional.mse_loss(head(output[:, -1]), target[call.samples])
        optimizer.zero_grad()
        loss.backward()  # a second backward through an earlier call's graph would raise here
        optimizer.step()
        losses.append(loss.item())
        assert _starts(before, previous_final, previous_samples) == step.start_labels(), call.label
        previous_final, previous_samples = tuple(s.clone() for s in layer.states), call.samples
    per_epoch = np.array(losses).reshape(spec.epochs, -1).mean(axis=1)
    assert per_epoch[-1] < per_epoch[0]  # it learns


def test_no_gradient_crosses_a_call_and_one_flows_within_it():
    layer = KerasStateful(nn.LSTM(2, 3, batch_first=True), batch_size=2)
    first = torch.randn(2, 4, 2, requires_grad=True)
    second = torch.randn(2, 4, 2, requires_grad=True)
    layer(first)
    output, (h, c) = layer(second)
    (output.sum() + h.sum() + c.sum()).backward()
    assert first.grad is None  # the carried state is a constant to the next call
    assert second.grad is not None and second.grad.abs().sum() > 0
    assert not any(state.requires_grad for state in layer.states)


def test_the_module_keeps_kerass_contract():
    layer = KerasStateful(nn.GRU(2, 3, num_layers=2, bidirectional=True, batch_first=True), batch_size=4)
    assert [tuple(state.shape) for state in layer.states] == [(4, 4, 3)]
    assert set(layer.state_dict()) == {f"rnn.{key}" for key in layer.rnn.state_dict()}  # as in Keras, unsaved
    with pytest.raises(KerasStateError) as raised:
        layer(torch.randn(3, 5, 2))
    assert isinstance(raised.value, ValueError)
    assert str(raised.value) == stateful_batch_mismatch_message(4, 3)
    stateless = KerasStateful(nn.RNN(2, 3, batch_first=True), stateful=False)
    output, h = stateless(torch.randn(7, 5, 2))
    assert output.shape == (7, 5, 3) and h.shape == (1, 7, 3)
    with pytest.raises(TypeError, match="stateless"):
        stateless.states  # noqa: B018
    with pytest.raises(ValueError, match="proj_size"):
        KerasStateful(nn.LSTM(2, 4, proj_size=2, batch_first=True), batch_size=4)
    with pytest.raises(AttributeError):
        layer.batch_size = 3  # fixed, as Keras's Input(batch_shape=...)
    with pytest.raises(ValueError, match="batch_first"):
        KerasStateful(nn.LSTM(2, 3), batch_size=4)
    with pytest.raises(ValueError, match="fixed, positive batch_size"):
        KerasStateful(nn.LSTM(2, 3, batch_first=True))
    with pytest.raises(TypeError):
        KerasStateful(nn.Linear(2, 3), batch_size=4)


def test_training_goes_on_from_a_state_left_under_inference_mode():
    layer = KerasStateful(nn.GRU(2, 3, batch_first=True), batch_size=2)
    with torch.inference_mode():  # validation, as a PyTorch loop writes it
        layer(torch.randn(2, 4, 2))
    output, _ = layer(torch.randn(2, 4, 2))
    output.sum().backward()
    assert layer.rnn.weight_hh_l0.grad is not None


def test_set_states_gives_every_slot_a_state():
    layer = KerasStateful(nn.LSTM(2, 3, batch_first=True), batch_size=2)
    given = (torch.ones(1, 2, 3), torch.full((1, 2, 3), 2.0))
    layer.set_states(given)
    _, initial, _ = layer.call(torch.randn(2, 4, 2))
    assert all(torch.equal(now, then) for now, then in zip(initial, given))
    with pytest.raises(ValueError, match="shape"):
        layer.set_states((torch.ones(1, 3, 3), torch.ones(1, 3, 3)))


def test_reset_leaves_states_read_before_it_alone():
    layer = KerasStateful(nn.LSTM(2, 3, batch_first=True), batch_size=2)
    layer(torch.randn(2, 4, 2))
    kept = layer.states
    layer.reset_state()
    assert all(state.any() for state in kept) and not any(state.any() for state in layer.states)


# --- the one-pass inspection and its frozen report ---

def test_an_inspection_streams_once_and_reports_only_at_the_end():
    inspection = inspect(Spec(12, 5, 1, batch_size=4), evidence=False)
    with pytest.raises(RuntimeError, match="has not finished"):
        inspection.report  # noqa: B018
    results = list(inspection)
    report = inspection.report
    assert report.summary.steps == len(results) == 3 and report.steps == ()
    kept = inspect(Spec(12, 5, 1, batch_size=4), evidence=False)
    assert kept.run() is kept.report and len(kept.report.steps) == 3
    with pytest.raises(RuntimeError, match="once"):
        list(inspection)
    assert inspection.report.summary.steps == 3  # not counted twice
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.verdict = "anything"


def test_run_keeps_the_steps_and_judges_everything():
    report = inspect(Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2,
                          predict_samples=4)).run()
    assert report.ok and report.error is None and len(report.steps) == report.summary.steps == 7
    assert {item.key for item in report.evidence} == {"batch_independence", "continuation",
                                                      "gradient_truncation"}
    assert len(report.claims) == 6 and report.warnings and "stateful LSTM" in report.verdict
    assert "shuffle=False" not in " ".join(report.warnings)  # no shuffle here to warn about
    raising = inspect(Spec(10, 5, 1, batch_size=4, stateful=True), evidence=False).run()
    assert raising.ok and raising.error.step == 2
    # Spec's names, not the command line's:
    assert raising.fix.startswith("use batch_size 1, 2, 5 or 10 (divisors of samples near 4)")


# --- planted bugs the suite once let through, each pinned down ---

class _ResetKeepsSlotZero(mirror.KerasStateful):
    """A reset that zeroes every slot but the first."""

    def reset_state(self):
        if not hasattr(self, "h"):
            return super().reset_state()
        kept = self.states
        super().reset_state()
        for before, zeros in zip(kept, self.states):
            zeros[:, 0] = before[:, 0]


def test_a_step_is_verified_only_when_all_predicted_zero_slots_are_zero(monkeypatch):
    monkeypatch.setattr(mirror, "KerasStateful", _ResetKeepsSlotZero)
    spec = Spec(8, 3, 1, batch_size=4, stateful=True, shuffle=False, epochs=2, reset="epoch")
    results = list(inspection := inspect(spec, evidence=False))
    epoch_one = next(r for r in results if r.step.call.epoch == 1 and r.step.call.batch == 0)
    assert epoch_one.verified is False and epoch_one.observed.zero_slots == 3
    assert not inspection.report.ok


class _CarriesAnotherC(mirror.KerasStateful):
    """Carries h exactly and c nudged: a bug only a check of c sees."""

    def call(self, x, initial_state=None, mask=None):
        result = super().call(x, initial_state, mask)
        self.c = self.c + 1e-3
        return result


def test_the_cell_state_c_is_checked_not_only_h(monkeypatch):
    monkeypatch.setattr(mirror, "KerasStateful", _CarriesAnotherC)
    results = list(inspect(Spec(8, 3, 1, batch_size=4, stateful=True, shuffle=False), evidence=False))
    assert results[1].verified is False and results[1].observed.differing == ("c[layer 0]",)


def test_an_expected_keras_error_does_not_hide_a_wrong_mirror(monkeypatch):
    monkeypatch.setattr(mirror, "KerasStateful", LastIntoFirst)
    args = ["--shape", "10,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--no-evidence", "--expect-error"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "the mirror is wrong" in " ".join(result.stdout.split())


def test_an_expected_keras_error_with_a_right_mirror_exits_0():
    args = ["--shape", "10,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--no-evidence", "--expect-error"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert CliRunner().invoke(main, args[:-1]).exit_code == 3


def test_json_counts_only_the_steps_checked_on_tensors():
    result = CliRunner().invoke(main, ["--shape", "100,5,1", "--batch", "10", "--max-steps", "3", "--no-evidence",
                                       "--format", "json"])
    summary = json.loads(result.stdout)["summary"]
    assert (summary["checked_steps"], summary["steps"]) == (3, 10)


@pytest.mark.parametrize("option", [["--max-steps", "2"], ["--device", "cpu"]])
def test_a_dry_run_rejects_options_about_the_run(option):
    result = CliRunner().invoke(main, ["--shape", "12,5,1", "--dry-run", *option])
    assert result.exit_code == 2 and f"--dry-run cannot be combined with {option[0]}" in result.stderr


def test_the_command_line_names_its_flags_where_the_library_names_fields():
    result = CliRunner().invoke(main, ["--shape", "12,5,1", "--batch", "0"])
    assert result.exit_code == 2 and "--batch must be a positive integer" in result.stderr
    result = CliRunner().invoke(main, ["--shape", "12,5,1", "--reset", "epoch"])
    assert "--reset epoch needs --stateful" in result.stderr
