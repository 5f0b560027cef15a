"""The mirror on real tensors, and the inspection's checks of it."""


import dataclasses

import numpy as np
import pytest
import torch
from fakes import LastIntoFirst

from lstm_inspect.check.inspection import Inspection
from lstm_inspect.cli.policy import EXIT_MISMATCH
from lstm_inspect.core.choices import Phase, ResetPolicy
from lstm_inspect.core.facts import KerasStateError, stateful_batch_mismatch_message
from lstm_inspect.core.hooks import resets_before
from lstm_inspect.core.spec import Spec
from lstm_inspect.mirror import run as mirror_run
from lstm_inspect.mirror.inputs import batch_inputs, build_rnn
from lstm_inspect.mirror.module import KerasStateful

CPU = torch.device("cpu")


def test_inputs_depend_only_on_seed_phase_and_sample():
    spec = Spec(50, 6, 3, seed=4)
    together = batch_inputs(spec, Phase.TRAIN, np.array([3, 17, 42]), CPU)
    alone = batch_inputs(spec, Phase.TRAIN, np.array([17]), CPU)
    assert together.shape == (3, 6, 3)
    assert torch.equal(together[1], alone[0])
    assert not torch.equal(together[0], together[1])
    assert not torch.equal(batch_inputs(spec, Phase.VALIDATION, np.array([17]), CPU), alone)
    other_seed = Spec(50, 6, 3, seed=5)
    assert not torch.equal(batch_inputs(other_seed, Phase.TRAIN, np.array([17]), CPU), alone)
    assert together.min() >= -1 and together.max() < 1 and together.std() > 0.4


def _murmur_finaliser(z: int) -> int:
    for multiplier in (0x45D9F3B, 0x45D9F3B, None):
        z ^= z >> 16
        if multiplier is not None:
            z = z * multiplier & 0xFFFFFFFF
    return z


@pytest.mark.parametrize("phase", list(Phase))
def test_inputs_are_the_counter_hash_bit_for_bit(phase):
    # The documented hash in plain Python integers, against the tensors' 32-bit arithmetic: every
    # value the mirror ever fed (and so every figure users have seen) stays what it was.
    from lstm_inspect.mirror.inputs import _PHASE_SALT

    spec = Spec(50, 3, 2, seed=123456789)
    samples = np.array([0, 7, 3, 2**31 + 5, 2**32 - 1])
    salt = _murmur_finaliser(spec.seed ^ _PHASE_SALT[phase] & 0xFFFFFFFF)
    expected = []
    for sample in samples.tolist():
        start = _murmur_finaliser(((sample & 0xFFFFFFFF) * 0x2C1B3C6D ^ salt) & 0xFFFFFFFF)
        bits = [_murmur_finaliser((start + cell * 0x61C88647) & 0xFFFFFFFF) for cell in range(6)]
        expected.append(np.float32(bits) * np.float32(2.0 / 2**32) - np.float32(1.0))
    made = batch_inputs(spec, phase, samples, CPU)
    assert made.dtype == torch.float32
    np.testing.assert_array_equal(made.numpy(), np.array(expected).reshape(5, 3, 2))


def test_weights_come_from_the_seed_without_touching_the_global_rng():
    state = torch.random.get_rng_state()
    first = build_rnn(Spec(4, 2, 1, seed=3), CPU)
    assert torch.equal(state, torch.random.get_rng_state())
    second = build_rnn(Spec(4, 2, 1, seed=3), CPU)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))


@pytest.mark.parametrize("cell, tensors", [("lstm", 2), ("gru", 1), ("rnn", 1)])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
def test_stateful_layer_carries_slot_i_to_slot_i_detached_and_raises_on_another_batch_size(
        cell, tensors, layers, bidirectional):
    spec = Spec(8, 3, 2, batch_size=4, stateful=True, cell=cell, layers=layers, bidirectional=bidirectional)
    layer = KerasStateful(build_rnn(spec, CPU), spec.batch_size)
    _, first_initial, first_final = layer.call(torch.rand(4, 3, 2))
    _, second_initial, _ = layer.call(torch.rand(4, 3, 2))
    assert len(first_initial) == len(first_final) == tensors
    assert first_initial[0].shape == (layers * spec.directions, 4, 8)
    assert not any(state.any() for state in first_initial)
    assert all(torch.equal(now, before) for now, before in zip(second_initial, first_final))
    assert not any(state.requires_grad for state in second_initial)
    layer.reset_state()
    assert not any(state.any() for state in layer.states)
    with pytest.raises(KerasStateError) as raised:
        layer.call(torch.rand(3, 3, 2))
    assert str(raised.value) == stateful_batch_mismatch_message(4, 3) and raised.value.keras_type == "ValueError"


def test_keras_2_raises_tensorflows_shape_error():
    spec = Spec(8, 3, 2, batch_size=4, stateful=True, keras="2", units=3)
    layer = KerasStateful(build_rnn(spec, CPU), spec.batch_size, keras=spec.keras)
    with pytest.raises(KerasStateError) as raised:
        layer.call(torch.rand(2, 3, 2))
    assert raised.value.keras_type == "InvalidArgumentError"
    # TensorFlow's wording varies with the node that fails; real Keras is held to the pattern.
    assert str(raised.value).startswith("Incompatible shapes between the 2-sample batch and the 4-row state")


def test_stateless_layer_starts_every_call_from_zeros():
    spec = Spec(8, 3, 2, batch_size=4)
    layer = KerasStateful(build_rnn(spec, CPU), stateful=False)
    layer.call(torch.rand(4, 3, 2))
    _, initial, _ = layer.call(torch.rand(3, 3, 2))
    assert initial[0].shape == (1, 3, 8) and not any(state.any() for state in initial)


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
    assert inspection.report.summary.verified is True and inspection.report.ok
    for result in results:
        assert result.observed.zero_slots == result.step.zero_slots
        if result.step.source is not None:
            assert result.observed.carried_slots == result.step.carried_slots
            assert result.observed.max_abs_initial > 0


def test_partial_stateful_batch_raises_where_predicted_after_the_steps_before_it():
    inspection = Inspection(Spec(10, 5, 1, batch_size=4, stateful=True))
    results = list(inspection)
    assert [r.verified for r in results] == [True, True, None]
    report = inspection.report
    assert report.error.step == 2 and report.error.type == "ValueError"
    assert report.error.message == stateful_batch_mismatch_message(4, 2)
    assert report.ok and report.steps == ()


def _resets_every_epoch(policy, kind, phase, batch):
    """The misconception: Keras resets the state at each epoch boundary."""
    return phase == Phase.TRAIN and batch == 0 or resets_before(policy, kind, phase, batch)


@pytest.mark.parametrize("name, wrong", [("KerasStateful", LastIntoFirst), ("resets_before", _resets_every_epoch)])
def test_a_mirror_that_breaks_kerass_rules_is_caught(monkeypatch, name, wrong):
    monkeypatch.setattr(mirror_run, name, wrong)
    inspection = Inspection(Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2))
    results = list(inspection)
    assert any(result.verified is False for result in results)
    assert inspection.report.summary.verified is False and not inspection.report.ok
    from click.testing import CliRunner

    from lstm_inspect.cli import main

    shown = CliRunner().invoke(main, ["--shape", "12,5,2", "--batch", "4", "--stateful", "--no-shuffle",
                                      "--epochs", "2", "--no-evidence"])
    assert shown.exit_code == EXIT_MISMATCH
    assert "from Keras's rules: the mirror is wrong" in " ".join(shown.stdout.split())


def test_a_mirror_that_does_not_raise_where_keras_does_is_caught(monkeypatch):
    class Lenient(KerasStateful):
        def call(self, x, initial_state=None, mask=None):
            if self.stateful and x.shape[0] != self.batch_size:
                for name, state in zip(self.state_names, self.states):
                    setattr(self, name, state[:, :x.shape[0]])
                self._batch_size = x.shape[0]
            return super().call(x, initial_state, mask)

    monkeypatch.setattr(mirror_run, "KerasStateful", Lenient)
    inspection = Inspection(Spec(10, 5, 1, batch_size=4, stateful=True))
    assert [r.verified for r in inspection][-1] is False
    assert not inspection.report.ok


def test_shuffled_samples_get_their_own_inputs_even_when_they_span_a_range():
    spec = Spec(50, 6, 3)
    shuffled = batch_inputs(spec, Phase.TRAIN, np.array([4, 6, 5, 7]), CPU)
    in_order = batch_inputs(spec, Phase.TRAIN, np.array([4, 5, 6, 7]), CPU)
    assert torch.equal(shuffled[1], in_order[2]) and torch.equal(shuffled[2], in_order[1])


def test_a_mirror_that_runs_a_lone_stateless_sample_in_every_slot_is_caught(monkeypatch):
    """TensorFlow broadcasts a lone sample into every slot of a stateful layer only: a mirror that
    does it for a stateless one runs four slots where Keras runs one, all from zeros."""

    class BroadcastsEverywhere(KerasStateful):
        def call(self, x, initial_state=None, mask=None):
            return super().call(x.expand(4, -1, -1) if len(x) == 1 else x, initial_state, mask)

    monkeypatch.setattr(mirror_run, "KerasStateful", BroadcastsEverywhere)
    inspection = Inspection(Spec(9, 3, 1, batch_size=4, shuffle=False, backend="tensorflow"))
    results = list(inspection)
    assert [result.verified for result in results] == [True, True, False]
    assert not inspection.report.ok


def test_the_tensors_that_break_a_prediction_are_named_slot_by_slot():
    from lstm_inspect.check.observe import differing_tensors
    from lstm_inspect.core.schedule import keras_steps

    spec = Spec(8, 3, 1, batch_size=4, stateful=True, backend="torch", layers=2, units=3,
                workflow="predict(4); reset_state(slots=[2]); predict(4)")
    first, second = mirror_run.mirror_records(spec)
    _, step = keras_steps(spec)
    assert step.source_slot.tolist() == [0, 1, -1, 3]

    def differing(slot: int | None = None, tensor: int = 0, row: int = 0, previous=first) -> tuple[str, ...]:
        initial = tuple(state.clone() for state in second.initial)
        if slot is not None:
            initial[tensor][row, slot] += 1.0
        return differing_tensors(spec, step, dataclasses.replace(second, initial=initial), previous)

    assert differing() == ()
    assert differing(slot=0) == ("h[layer 0]",)  # slot 0 carries too
    assert differing(slot=3, tensor=1, row=1) == ("c[layer 1]",)
    assert differing(slot=2, row=1) == ("h[layer 1]",)  # the slot reset_state zeroed
    every = ("h[layer 0]", "h[layer 1]", "c[layer 0]", "c[layer 1]")
    assert differing(previous=None) == every  # nothing to hold the carried slots to
    assert differing(previous=second) == every  # not the call they carry from


@pytest.mark.parametrize("settings", [dict(stateful=True, keras="2", backend="tensorflow", go_backwards=True),
                                      dict(stateful=False, keras="3", backend="jax", go_backwards=False)])
def test_save_and_load_gives_the_same_layer_with_its_weights_and_a_zero_state(settings):
    from lstm_inspect.core.workflow import Kind, parse

    torch.manual_seed(0)
    layer = KerasStateful(torch.nn.LSTM(2, 3, batch_first=True), 4, **settings)
    layer(torch.randn(4, 5, 2))
    loaded = mirror_run.MODEL_CHANGES[Kind.SAVE_AND_LOAD](layer, parse("save_and_load()")[0])
    assert (loaded.stateful, loaded.keras, loaded.backend, loaded.go_backwards) == \
        (layer.stateful, layer.keras, layer.backend, layer.go_backwards)
    assert all(torch.equal(value, layer.state_dict()[name]) for name, value in loaded.state_dict().items())
    assert loaded.state_dict().keys() == layer.state_dict().keys()
    assert loaded.batch_size == layer.batch_size and loaded is not layer
    if layer.stateful:
        assert any(bool(state.any()) for state in layer.states)
        assert not any(bool(state.any()) for state in loaded.states)  # the state is not saved
