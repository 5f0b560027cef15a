"""The per-backend facts as the schedule reads them (core/facts.py), without Keras: which phases
TensorFlow broadcasts a lone sample in, the errors Keras raises as each Keras words them, and which
layer calls trace a compiled function with the batch fixed."""

import re

import pytest

from lstm_inspect import Spec
from lstm_inspect.core.choices import Phase
from lstm_inspect.core.facts import Traces, broadcast_phases, facts_for, first_trace_error, keras_error
from lstm_inspect.core.order import iter_invocations

TENSORFLOW = dict(keras="3", backend="tensorflow")


@pytest.mark.parametrize("setup, expected", [
    (dict(samples=9, stateful=True, **TENSORFLOW), [Phase.TRAIN]),
    (dict(samples=9, stateful=True, keras="2"), [Phase.TRAIN]),
    (dict(samples=9, val_samples=5, predict_samples=9, stateful=True, **TENSORFLOW),
     [Phase.TRAIN, Phase.VALIDATION, Phase.PREDICT]),
    (dict(samples=9, batch_size=2, stateful=True, **TENSORFLOW), [Phase.TRAIN]),
    (dict(samples=9, stateful=False, **TENSORFLOW), []),  # a stateless layer holds no state to broadcast into
    (dict(samples=9, stateful=True, backend="torch"), []),  # torch raises instead
    (dict(samples=9, stateful=True, backend="jax"), []),
    # Keras raises at the first phase whose last batch is more than one sample short: none after it
    (dict(samples=10, val_samples=5, stateful=True, **TENSORFLOW), []),
    (dict(samples=9, val_samples=6, predict_samples=9, stateful=True, **TENSORFLOW), [Phase.TRAIN]),
    # a predict of one sample: its one batch fixes the traced batch at 1, and the state holds 4
    (dict(samples=9, predict_samples=1, stateful=True, **TENSORFLOW), [Phase.TRAIN]),
])
def test_tensorflow_broadcasts_a_lone_last_sample_up_to_the_first_phase_that_raises(setup, expected):
    shape = dict(timesteps=3, features=1, batch_size=4, shuffle=False) | setup
    assert broadcast_phases(Spec(**shape)) == expected


def test_a_workflow_finds_its_broadcasts_as_it_runs():
    assert broadcast_phases(Spec(9, 3, 1, batch_size=4, stateful=True, workflow="fit()", **TENSORFLOW)) == []


def test_keras_3_on_tensorflow_words_a_one_row_state_as_its_while_loop_does():
    kind, message, pattern = keras_error(facts_for(Spec(8, 3, 1, **TENSORFLOW)), 1, 3, (8,))
    assert kind == "ValueError"
    assert message == ("Input tensor `.../ReadVariableOp:0` enters the loop with shape (1, 8), but has shape "
                       "(None, 8) after one iteration (tf.while_loop's shape invariant: the state holds one row, "
                       "the batch 3)")
    assert re.search(pattern, "Input tensor 'sequential/lstm/ReadVariableOp:0' enters the loop with shape (1, 8), "
                              "but has shape (None, 8) after one iteration. To allow the shape to vary ...")


@pytest.mark.parametrize("setup", [TENSORFLOW, dict(keras="2")])
def test_tensorflow_words_a_batch_the_state_does_not_fit_as_its_shape_check_does(setup):
    kind, message, pattern = keras_error(facts_for(Spec(8, 3, 1, **setup)), 4, 3, (5, 6, 2))
    assert kind == "InvalidArgumentError"
    assert message == ("Incompatible shapes between the 3-sample batch and the 4-row state (TensorFlow's shape "
                       "check, e.g. \"Incompatible shapes: [3,5,6,2] vs. [4,5,6,2]\")")
    for real in ("Incompatible shapes: [3,5,6,8] vs. [4,5,6,8]", "Incompatible shapes during merge: [4,24] vs. [3,24]"):
        assert re.search(pattern, real)
    assert not re.search(pattern, "Incompatible shapes: [2,24] vs. [5,24]")


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_keras_3_words_a_stateful_batch_mismatch_itself_elsewhere(backend):
    kind, message, pattern = keras_error(facts_for(Spec(8, 3, 1, backend=backend)), 4, 3, (8,))
    assert kind == "ValueError" and re.fullmatch(pattern, message) and "4" in message and "3" in message


def test_a_traced_batch_is_refused_by_each_kerass_own_check():
    keras2 = Spec(8, 5, 2, keras="2")
    kind, message, pattern = first_trace_error(keras2, facts_for(keras2), 4, 3)
    assert kind == "ValueError"
    assert message == 'Input 0 of layer "lstm" is incompatible with the layer: expected shape=(4, None, 2), ' \
                      'found shape=(3, 5, 2)'
    assert re.search(pattern, 'Input 0 of layer "lstm_1" is incompatible with the layer: expected shape=(4, None, 2), '
                              'found shape=(3, 5, 2)')
    keras3 = Spec(8, 5, 2, **TENSORFLOW)
    kind, message, pattern = first_trace_error(keras3, facts_for(keras3), 4, 3)
    assert kind == "ValueError" and re.fullmatch(pattern, message)


def traced(spec: Spec) -> list[tuple[str, bool]]:
    """The layer calls that trace a function for the first time, with whether its batch is fixed."""
    traces, found = Traces(facts_for(spec)), []
    for invocation, calls in iter_invocations(spec):
        for call in calls:
            fixed = traces.fixes_call(invocation.op, call, spec.samples, spec.batch_size)
            if fixed is not None:
                found.append((call.label, fixed))
    return found


def test_a_pass_traces_at_its_first_batch_and_fit_traces_once_for_all_its_epochs():
    spec = Spec(8, 3, 1, batch_size=4, epochs=3, val_samples=8, predict_samples=8, shuffle=False, **TENSORFLOW)
    assert traced(spec) == [("train e0 b0", True), ("validation e0 b0", True), ("predict b0", True)]
    resumed = Spec(8, 3, 1, batch_size=4, shuffle=False, workflow="fit(epochs=3, initial_epoch=1)", **TENSORFLOW)
    assert traced(resumed) == [("train e1 b0", True)]
    later = Spec(8, 3, 1, batch_size=4, shuffle=False, **TENSORFLOW,
                 workflow="fit(epochs=2, validation_samples=8, validation_freq=2)")
    assert traced(later) == [("train e0 b0", True), ("validation e1 b0", True)]  # the first validation, at epoch 1


def test_a_call_past_its_passs_first_batch_traces_nothing():
    spec = Spec(8, 3, 1, batch_size=4, shuffle=False, **TENSORFLOW)
    invocation, calls = next(iter_invocations(spec))
    second = list(calls)[1]
    assert second.batch == 1 and Traces(facts_for(spec)).fixes_call(invocation.op, second, 8, 4) is None
