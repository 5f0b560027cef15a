"""The mirror on real tensors, and the report's checks of it."""

import dataclasses

import numpy as np
import pytest
import torch

from lstm_inspect import run
from lstm_inspect.report import EXIT_KERAS_RAISES, EXIT_MISMATCH, EXIT_OK, Inspection
from lstm_inspect.schedule import stateful_batch_mismatch_message
from lstm_inspect.spec import Phase, ResetPolicy, Spec

CPU = torch.device("cpu")


def test_inputs_depend_only_on_seed_phase_and_sample():
    spec = Spec(50, 6, 3, seed=4)
    together = run.batch_inputs(spec, Phase.TRAIN, np.array([3, 17, 42]), CPU)
    alone = run.batch_inputs(spec, Phase.TRAIN, np.array([17]), CPU)
    assert together.shape == (3, 6, 3)
    assert torch.equal(together[1], alone[0])
    assert not torch.equal(together[0], together[1])
    assert not torch.equal(run.batch_inputs(spec, Phase.VALIDATION, np.array([17]), CPU), alone)
    other_seed = Spec(50, 6, 3, seed=5)
    assert not torch.equal(run.batch_inputs(other_seed, Phase.TRAIN, np.array([17]), CPU), alone)
    assert together.min() >= -1 and together.max() < 1 and together.std() > 0.4


def test_weights_come_from_the_seed_without_touching_the_global_rng():
    state = torch.random.get_rng_state()
    first = run.build_rnn(Spec(4, 2, 1, seed=3), CPU)
    assert torch.equal(state, torch.random.get_rng_state())
    second = run.build_rnn(Spec(4, 2, 1, seed=3), CPU)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))


@pytest.mark.parametrize("cell, tensors", [("lstm", 2), ("gru", 1), ("rnn", 1)])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_stateful_layer_carries_slot_i_to_slot_i_detached_and_raises_on_another_batch_size(
        cell, tensors, layers, bidirectional):
    spec = Spec(8, 3, 2, batch_size=4, stateful=True, cell=cell, layers=layers, bidirectional=bidirectional)
    layer = run.KerasStateRNN(run.build_rnn(spec, CPU), spec)
    calls = list(run.iter_calls(spec))
    first = layer(calls[0], torch.rand(4, 3, 2))
    second = layer(calls[1], torch.rand(4, 3, 2))
    assert len(first.initial) == len(first.final) == tensors
    assert first.initial[0].shape == (layers * spec.directions, 4, 8)
    assert not any(state.any() for state in first.initial)
    assert all(torch.equal(now, before) for now, before in zip(second.initial, first.final))
    assert not any(state.requires_grad for state in second.initial)
    layer.reset_state()
    assert not any(state.any() for state in layer.states)
    with pytest.raises(run.KerasStateError) as raised:
        layer(calls[1], torch.rand(3, 3, 2))
    assert str(raised.value) == stateful_batch_mismatch_message(4, 3) and raised.value.keras_type == "ValueError"


def test_keras_2_raises_tensorflows_shape_error():
    spec = Spec(8, 3, 2, batch_size=4, stateful=True, keras="2", units=3)
    layer = run.KerasStateRNN(run.build_rnn(spec, CPU), spec)
    with pytest.raises(run.KerasStateError) as raised:
        layer(next(run.iter_calls(spec)), torch.rand(2, 3, 2))
    assert raised.value.keras_type == "InvalidArgumentError"
    assert str(raised.value) == "Incompatible shapes: [4,3] vs. [2,3]"


def test_stateless_layer_starts_every_call_from_zeros():
    spec = Spec(8, 3, 2, batch_size=4)
    layer = run.KerasStateRNN(run.build_rnn(spec, CPU), spec)
    calls = list(run.iter_calls(spec))
    layer(calls[0], torch.rand(4, 3, 2))
    record = layer(calls[1], torch.rand(3, 3, 2))
    assert record.initial[0].shape == (1, 3, 8) and not any(state.any() for state in record.initial)


@pytest.mark.parametrize("spec", [
    Spec(10, 5, 2, batch_size=4),
    Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2, val_samples=8, predict_samples=4),
    Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=True, epochs=3, reset=ResetPolicy.parse("epoch")),
    Spec(16, 5, 2, batch_size=4, stateful=True, epochs=2, reset=ResetPolicy.parse("every:3")),
])
def test_every_step_is_verified_on_the_tensors(spec):
    inspection = Inspection(spec)
    results = list(inspection)
    assert all(result.verified for result in results)
    assert inspection.summary.verified is True and inspection.exit_code == EXIT_OK
    for result in results:
        assert result.observed.zero_slots == result.step.zero_slots
        if result.step.source is not None:
            assert result.observed.carried_slots == result.step.carried_slots
            assert result.observed.max_abs_h0 > 0


def test_partial_stateful_batch_raises_where_predicted_after_the_steps_before_it():
    inspection = Inspection(Spec(10, 5, 1, batch_size=4, stateful=True))
    results = list(inspection)
    assert [r.verified for r in results] == [True, True, None]
    assert inspection.error.step == 2 and inspection.error.type == "ValueError"
    assert inspection.error.message == stateful_batch_mismatch_message(4, 2)
    assert inspection.exit_code == EXIT_KERAS_RAISES


class _LastIntoFirst(run.KerasStateRNN):
    """The misconception: the last sample of a batch carries into the first of the next."""

    def __call__(self, call, x):
        record = super().__call__(call, x)
        if self.spec.stateful:
            self.states = tuple(state.roll(1, dims=1) for state in self.states)
        return record


class _ResetsEveryEpoch(run.KerasStateRNN):
    """The misconception: Keras resets the state at each epoch boundary."""

    def __call__(self, call, x):
        if call.phase == Phase.TRAIN and call.batch == 0:
            self.reset_state()
        return super().__call__(call, x)


@pytest.mark.parametrize("wrong_layer", [_LastIntoFirst, _ResetsEveryEpoch])
def test_a_mirror_that_breaks_kerass_rules_is_caught(monkeypatch, wrong_layer):
    monkeypatch.setattr(run, "KerasStateRNN", wrong_layer)
    inspection = Inspection(Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2))
    results = list(inspection)
    assert any(result.verified is False for result in results)
    assert inspection.summary.verified is False and inspection.exit_code == EXIT_MISMATCH
    from click.testing import CliRunner

    from lstm_inspect.cli import main

    shown = CliRunner().invoke(main, ["--shape", "12,5,2", "--batch", "4", "--stateful", "--no-shuffle",
                                      "--epochs", "2", "--no-evidence"])
    assert shown.exit_code == EXIT_MISMATCH
    assert "from Keras's rules: the mirror is wrong" in " ".join(shown.stdout.split())


def test_a_mirror_that_does_not_raise_where_keras_does_is_caught(monkeypatch):
    class Lenient(run.KerasStateRNN):
        def __call__(self, call, x):
            if self.spec.stateful and x.shape[0] != self.spec.batch_size:
                self.states = tuple(state[:, :x.shape[0]] for state in self.states)
                self.spec = dataclasses.replace(self.spec, batch_size=x.shape[0])
            return super().__call__(call, x)

    monkeypatch.setattr(run, "KerasStateRNN", Lenient)
    inspection = Inspection(Spec(10, 5, 1, batch_size=4, stateful=True))
    assert [r.verified for r in inspection][-1] is False
    assert inspection.exit_code == EXIT_MISMATCH


def test_shuffled_samples_get_their_own_inputs_even_when_they_span_a_range():
    spec = Spec(50, 6, 3)
    shuffled = run.batch_inputs(spec, Phase.TRAIN, np.array([4, 6, 5, 7]), CPU)
    in_order = run.batch_inputs(spec, Phase.TRAIN, np.array([4, 5, 6, 7]), CPU)
    assert torch.equal(shuffled[1], in_order[2]) and torch.equal(shuffled[2], in_order[1])
