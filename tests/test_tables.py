"""Every table keyed by a call kind has a row for every kind: adding a kind to `--calls` is a row
in each, and this fails until every one has it."""

import pytest

from lstm_inspect.core.facts import FACTS
from lstm_inspect.core.workflow import CALLS, Kind
from lstm_inspect.keras.oracle.session import CALL_MAKERS
from lstm_inspect.mirror.run import MODEL_CHANGES


def test_every_kind_is_described():
    assert set(CALLS) == set(Kind)
    for kind, row in CALLS.items():
        assert row.form.startswith(str(kind)), kind
        assert row.runs_batches == (row.phase is not None or kind == Kind.FIT), kind


@pytest.mark.parametrize("facts", list(FACTS.values()), ids=lambda facts: facts.name)
def test_every_kind_that_runs_batches_has_its_compiled_function(facts):
    if facts.traces is None:
        return  # nothing is traced on this backend
    assert {kind for kind in Kind if kind.runs_batches} <= set(facts.traces)
    assert "validation" in facts.traces  # fit's validation runs the test function


def test_the_mirror_handles_every_kind():
    # A kind either runs the model's layer on data, or changes the model (or its state) in a way the mirror makes.
    assert {kind for kind in Kind if not kind.runs_batches} == set(MODEL_CHANGES)


def test_the_oracle_makes_every_kind_on_real_keras():
    assert set(CALL_MAKERS) == set(Kind)
