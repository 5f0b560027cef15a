"""`compare_with_keras`: real Keras 3 next to the schedule and the mirror, step by step.

Each setup is tiny (N <= 16) and runs once per module: Keras's fit is the slow part.
"""

import re

import pytest
from fakes import LastIntoFirst

from lstm_inspect.check.against import TOLERANCE, KerasComparison, StepComparison
from lstm_inspect.core.choices import Phase, ResetPolicy
from lstm_inspect.core.facts import KerasError
from lstm_inspect.core.schedule import keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.keras.oracle.compare import compare_with_keras
from lstm_inspect.keras.oracle.model import import_keras
from lstm_inspect.mirror import run as mirror

# No skip: a missing oracle must fail the suite, not hide (as in test_keras_conformance).
import_keras()
pytestmark = pytest.mark.keras

CARRIED_EVERYWHERE = Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2, val_samples=8,
                          predict_samples=4)
PARTIAL_FIT_BATCH = Spec(10, 5, 1, batch_size=4, stateful=True)  # shuffle on, 10 % 4 != 0

MATRIX = {
    "stateless, shuffled, partial batches, validation and predict":
        Spec(10, 5, 1, batch_size=4, epochs=2, val_samples=6, predict_samples=5),
    "stateful, reset epoch, validation":
        Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2, val_samples=4,
             reset=ResetPolicy.parse("epoch")),
    "stateful, reset every:2, predict":
        Spec(16, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2, predict_samples=4,
             reset=ResetPolicy.parse("every:2")),
    "stateful, shuffled, validation": Spec(12, 5, 1, batch_size=4, stateful=True, epochs=2, val_samples=4),
    "stateful, partial batch in predict": Spec(8, 5, 1, batch_size=4, stateful=True, shuffle=False,
                                               predict_samples=5),
    "stateful 2-layer GRU, reset epoch": Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2,
                                              cell="gru", layers=2, reset=ResetPolicy.parse("epoch")),
    "stateful bidirectional SimpleRNN, validation": Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False,
                                                         cell="rnn", bidirectional=True, val_samples=4),
    "stateful 2-layer bidirectional LSTM, predict": Spec(8, 5, 2, batch_size=4, stateful=True, shuffle=False,
                                                         layers=2, bidirectional=True, predict_samples=4),
    "stateless bidirectional GRU": Spec(10, 5, 2, batch_size=4, cell="gru", bidirectional=True),
}


@pytest.fixture(scope="module")
def carried():
    return compare_with_keras(CARRIED_EVERYWHERE)


@pytest.fixture(scope="module")
def partial():
    return compare_with_keras(PARTIAL_FIT_BATCH)


@pytest.fixture(scope="module", params=list(MATRIX), ids=list(MATRIX))
def matrix(request):
    spec = MATRIX[request.param]
    return spec, compare_with_keras(spec)


def test_stateful_carry_through_validation_and_predict_agrees_on_every_step(carried):
    steps = list(keras_steps(CARRIED_EVERYWHERE))
    assert carried.version.startswith("3.") and carried.backend == "torch"
    assert [(s.phase, s.epoch, s.batch, s.samples.tolist()) for s in carried.steps] == \
           [(s.call.phase, s.call.epoch, s.call.batch, s.call.samples.tolist()) for s in steps]
    assert all(step.agree for step in carried.steps)
    assert carried.agree and carried.error is None
    assert 0 < carried.max_state_diff < TOLERANCE  # carried states are Keras's numbers, not zeros
    assert carried.max_output_diff < TOLERANCE
    # Keras carries into validation and from validation into the next epoch, as scheduled.
    assert carried.steps[3].start == ["train:8", "train:9", "train:10", "train:11"]
    assert carried.steps[5].start == ["validation:4", "validation:5", "validation:6", "validation:7"]


def test_json_has_exactly_the_agreed_keys(carried):
    data = carried.to_json()
    assert list(data) == ["version", "backend", "steps", "agree", "max_state_diff", "max_output_diff", "error"]
    assert [list(step) for step in data["steps"]] == \
           [["phase", "epoch", "batch", "samples", "start", "state_diff", "output_diff", "agree"]] * 11
    assert data["steps"][-1]["phase"] == "predict" and data["steps"][-1]["samples"] == [0, 1, 2, 3]
    assert data["agree"] is True and data["error"] is None
    assert isinstance(data["max_state_diff"], float) and isinstance(data["max_output_diff"], float)


def test_summary_line(carried):
    assert re.fullmatch(r"Keras 3\.\d+\.\d+ \(torch\): 11/11 steps agree, max state diff \S+",
                        carried.summary_line())


def test_keras_raises_its_value_error_where_the_schedule_predicts(partial):
    assert partial.error.step == partial.schedule_error.step == 2
    assert partial.error.type == "ValueError"
    assert partial.schedule_error.message in partial.error.message
    assert "\x1b[" not in partial.error.message
    assert len(partial.steps) == 2 and partial.agree
    assert partial.to_json()["error"] == {"step": 2, "type": "ValueError", "message": partial.error.message}
    assert partial.summary_line().endswith("; raises ValueError at step 2, as predicted")


def test_matrix_agrees(matrix):
    spec, comparison = matrix
    assert comparison.agree, comparison.summary_line()
    assert len(comparison.steps) == comparison.planned_steps == comparison.mirror_steps
    assert comparison.max_state_diff < TOLERANCE and comparison.max_output_diff < TOLERANCE
    if spec.stateful:
        assert all(step.batch_independence_diff is None for step in comparison.steps)
    else:
        # A sample's output inside its batch equals its output alone: nothing passes between them.
        assert comparison.steps[0].batch_independence_diff < TOLERANCE
        assert all(step.start == ["zeros"] * len(step.samples) for step in comparison.steps)


def test_a_mirror_that_carries_the_wrong_slot_disagrees(monkeypatch):
    monkeypatch.setattr(mirror, "KerasStateful", LastIntoFirst)
    comparison = compare_with_keras(Spec(8, 5, 1, batch_size=4, stateful=True, shuffle=False))
    first, second = comparison.steps
    assert first.agree  # both start from zeros
    # Keras still starts where the schedule says; the mirror's tensors are what differ.
    assert second.start == second.predicted and second.state_diff > 1e-2
    assert not second.agree and not comparison.agree
    assert comparison.summary_line().startswith(f"Keras {comparison.version} (torch): 1/2 steps agree")


def _without_keras(error, predicted, steps=0):
    step = StepComparison(Phase.TRAIN, 0, 0, None, ["zeros"], ["zeros"], 0.0, 0.0, None)
    return KerasComparison("3.x", "torch", [step] * steps, error, predicted, steps, steps)


def test_an_error_keras_did_not_predict_is_a_disagreement():
    predicted = KerasError(2, "ValueError", "batch size")
    assert not _without_keras(None, predicted, steps=2).agree
    assert _without_keras(None, predicted, steps=2).summary_line().endswith(
        "; does not raise, predicted ValueError at step 2")
    other = KerasError(1, "InvalidArgumentError", "Incompatible shapes")
    assert not _without_keras(other, predicted, steps=1).error_agrees
    assert _without_keras(other, None, steps=1).summary_line().endswith(
        "; raises InvalidArgumentError at step 1, predicted no error")
