"""A stateful layer given its initial states (initial_state= in --calls: a model taking them as
inputs): Keras 3 starts every call from them, the carry overridden; tf-keras only while the layer's
own states are all zeros. The schedule's rule, the mirror's own (held to each other here, and both
to real Keras in test_backends), and what the tool says of it."""

import json

import pytest
import torch
from click.testing import CliRunner
from usage import usage_error

from lstm_inspect.api import inspect
from lstm_inspect.cli import main
from lstm_inspect.core.schedule import keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.mirror.inputs import build_rnn
from lstm_inspect.mirror.module import KerasStateful
from lstm_inspect.mirror.run import mirror_records

GIVEN_TWICE = 'predict(8, batch_size=4, initial_state="zeros") * 2'
HANDED_BACK = ('predict(8, batch_size=4); predict(8, batch_size=4, initial_state="previous"); reset_state(); '
               'predict(8, batch_size=4, initial_state="previous")')


def _spec(workflow, keras="3", backend="torch"):
    return Spec(8, 3, 2, units=3, batch_size=4, stateful=True, shuffle=False, keras=keras, backend=backend,
                workflow=workflow)


def _starts(spec):
    return [step.start_labels()[0] for step in keras_steps(spec)]


@pytest.mark.parametrize("backend", ["torch", "tensorflow", "jax"])
def test_keras_3_starts_every_call_from_the_given_states_never_from_the_carry(backend):
    assert _starts(_spec(GIVEN_TWICE, backend=backend)) == ["zeros"] * 4
    assert _starts(_spec(HANDED_BACK, backend=backend)) == [
        "zeros", "zeros", "predict:0", "predict:4", "predict:8", "predict:12"]


def test_tf_keras_uses_the_given_states_only_while_the_layers_own_are_zeros():
    assert _starts(_spec(GIVEN_TWICE, keras="2", backend="tensorflow")) == [
        "zeros", "predict:0", "predict:4", "predict:8"]
    # After reset_state() the layer's states are zeros again: the states handed back win, once.
    assert _starts(_spec(HANDED_BACK, keras="2", backend="tensorflow")) == [
        "zeros", "predict:0", "predict:4", "predict:8", "predict:8", "predict:16"]


@pytest.mark.parametrize(("keras", "backend"), [("3", "torch"), ("3", "tensorflow"), ("3", "jax"), ("2", "tensorflow")])
@pytest.mark.parametrize("workflow", [GIVEN_TWICE, HANDED_BACK])
def test_the_mirrors_own_rule_starts_each_call_where_the_schedule_says(keras, backend, workflow):
    spec = _spec(workflow, keras, backend)
    records = mirror_records(spec)
    steps = list(keras_steps(spec))
    assert len(records) == len(steps)
    for record, step in zip(records, steps):
        for slot, label in enumerate(step.start_labels()):
            if label == "zeros":
                assert not record.initial[0][:, slot].any(), (record.call.label, slot)
            else:
                source = next(r for r in records if r.call.index == step.source.index)
                assert torch.equal(record.initial[0][:, slot], source.final[0][:, step.source_slot[slot]])


def test_a_stateful_module_given_states_keeps_its_own_in_tf_keras_once_they_are_not_zeros():
    x = torch.rand(4, 3, 2)
    given = tuple(torch.full((1, 4, 3), 0.5) for _ in range(2))
    for keras, wins in (("3", True), ("2", False)):
        layer = KerasStateful(build_rnn(Spec(8, 3, 2, units=3), torch.device("cpu")), 4, keras=keras)
        with torch.no_grad():
            _, first, _ = layer.call(x, given)
            assert torch.equal(first[0], given[0])  # the layer's own states are zeros: the given ones
            _, second, _ = layer.call(x, given)
            assert torch.equal(second[0], given[0]) is wins
            layer.reset_state()
            _, third, _ = layer.call(x, given)
            assert torch.equal(third[0], given[0])


def _json(*words):
    done = CliRunner().invoke(main, ["--shape", "8,3,2", "--batch", "4", "--stateful", "--no-shuffle", "--no-advice",
                                     "--format", "json", *words])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def test_the_verdict_and_the_table_say_the_given_states_win_in_keras_3():
    found = _json("--backend", "torch", "--calls", GIVEN_TWICE)
    assert found["summary"]["verified"] is True
    assert "Keras 3 starts every call from the given states, never from the state the layer carries" \
        in found["verdict"]
    assert not found["warnings"]
    markdown = CliRunner().invoke(main, ["--shape", "8,3,2", "--batch", "4", "--stateful", "--no-shuffle",
                                         "--no-advice", "--format", "markdown", "--calls", GIVEN_TWICE]).stdout
    assert "| zeros given x4 |" in markdown and "reset x4" not in markdown
    claims = {claim["claim"]: claim["verdict"] for claim in found["claims"]}
    assert claims["Validation and predict start from a fresh state"] == "TRUE"
    stateless = CliRunner().invoke(main, ["--shape", "8,3,2", "--batch", "4", "--no-advice", "--format", "markdown",
                                          "--calls", GIVEN_TWICE]).stdout
    assert "reset x4" in stateless  # a stateless layer starts from zeros anyway


def test_tf_keras_is_warned_that_it_ignores_the_given_states_after_the_first_call():
    found = _json("--keras", "2", "--calls", GIVEN_TWICE)
    assert found["summary"]["verified"] is True
    assert "tf-keras uses them only while the layer's own are all zeros" in found["verdict"]
    assert any("tf-keras ignores the initial states a stateful layer is given" in w for w in found["warnings"])


def test_the_report_holds_on_the_mirrors_tensors():
    for keras, backend in (("3", "torch"), ("2", "tensorflow")):
        report = inspect(_spec(HANDED_BACK, keras, backend)).run()
        assert report.ok and report.summary.verified


def test_emitting_a_stateful_layer_given_its_states_is_refused_in_one_line():
    said = usage_error("--shape", "8,3,2", "--batch", "4", "--stateful", "--calls", GIVEN_TWICE, "--emit", "keras")
    assert "--emit with initial_state= on a stateful layer is not followed yet" in said


def test_initial_state_with_a_mask_is_refused_on_keras_3_where_the_layer_drops_the_mask():
    words = ["--shape", "8,4,2", "--batch", "4", "--lengths", "2-4", "--calls",
             'predict(8, batch_size=4, initial_state="zeros")']
    assert "drops the mask" in usage_error(*words, "--backend", "torch")
    assert CliRunner().invoke(main, [*words, "--keras", "2", "--no-evidence"]).exit_code == 0
    assert CliRunner().invoke(main, [*words, "--backend", "torch", "--no-mask", "--no-evidence"]).exit_code == 0
