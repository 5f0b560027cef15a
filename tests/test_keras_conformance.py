"""Conformance with real Keras 3 (torch backend, use_cudnn=False): the oracle.

Each setup runs through real `fit` (with validation) and `predict`; every slot's start is
read from Keras's own tensors (`layer.states` in callbacks when stateful) and must equal
the tool's schedule, step for step; where Keras raises, it must raise at the predicted
step with the predicted error.
"""

import pytest

from lstm_inspect import oracle as keras_oracle
from lstm_inspect.inspection import Inspection
from lstm_inspect.schedule import keras_steps
from lstm_inspect.spec import ResetPolicy, Spec

# No skip: `make test` installs Keras, and a missing oracle must fail the suite, not hide.
keras_oracle.import_keras()
pytestmark = pytest.mark.keras

SETUPS = {
    "stateless, partial last batch, validation and predict":
        Spec(10, 5, 2, batch_size=4, shuffle=False, epochs=2, val_samples=6, predict_samples=5),
    "stateless, shuffled": Spec(10, 5, 2, batch_size=4, shuffle=True, epochs=2),
    "stateful over 2 epochs": Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2),
    "stateful, reset epoch": Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=3,
                                  reset=ResetPolicy.parse("epoch")),
    "stateful, reset every:2": Spec(16, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2,
                                    reset=ResetPolicy.parse("every:2")),
    "stateful, validation and predict": Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2,
                                             val_samples=8, predict_samples=4),
    "stateful, shuffled": Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=True, epochs=2, val_samples=4),
    "stateful, partial batch in fit": Spec(10, 5, 1, batch_size=4, stateful=True, shuffle=False),
    "stateful, N < B": Spec(3, 5, 1, batch_size=4, stateful=True),
    "stateful, partial batch in validation": Spec(8, 5, 1, batch_size=4, stateful=True, shuffle=False,
                                                  epochs=2, val_samples=6),
    "stateful, partial batch in predict": Spec(8, 5, 1, batch_size=4, stateful=True, shuffle=False,
                                               predict_samples=5),
}


@pytest.fixture(scope="module", params=list(SETUPS), ids=list(SETUPS))
def setup(request):
    spec = SETUPS[request.param]
    return spec, keras_oracle.run_keras(spec)


def test_runs_on_keras_3_torch_backend(setup):
    _, observed = setup
    assert observed.version.startswith("3.") and observed.backend == "torch"


def test_every_slot_starts_where_the_schedule_says(setup):
    spec, observed = setup
    steps = [step for step in keras_steps(spec) if not step.raises]
    assert [(c.phase, c.epoch, c.batch, c.samples.tolist()) for c in observed.completed] == \
           [(s.call.phase, s.call.epoch, s.call.batch, s.call.samples.tolist()) for s in steps]
    assert observed.start_labels() == [step.start_labels() for step in steps]


def test_keras_raises_where_and_what_the_schedule_predicts(setup):
    spec, observed = setup
    inspection = Inspection(spec, dry_run=True)
    error = inspection.run().error
    if error is None:
        assert observed.error_type is None, observed.error_message
        return
    assert observed.error_step == error.step
    assert observed.error_type == error.type
    assert error.message in observed.error_message


def test_the_mirror_agrees_with_keras(setup):
    spec, observed = setup
    inspection = Inspection(spec)
    results = list(inspection)
    report = inspection.report
    assert report.summary.verified is True
    assert len([r for r in results if not r.step.raises]) == len(observed.completed)
    assert (report.error.step if report.error else None) == observed.error_step
