import os

import pytest

# rich prints no escape codes and a fixed width in every test, whatever the terminal.
os.environ["TERM"] = "dumb"
os.environ["COLUMNS"] = "100"
os.environ.pop("FORCE_COLOR", None)
# The backend the tests describe unless they say otherwise (Keras's own default is TensorFlow).
os.environ["KERAS_BACKEND"] = "torch"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite the golden output files instead of comparing with them")


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


# `make mutation`: mutmut runs these tests in its copy of the project (mutants/), naming the mutant
# under test in MUTANT_UNDER_TEST ("stats" while it learns which tests reach which function).
if "MUTANT_UNDER_TEST" in os.environ:
    import atexit
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from hypothesis import Phase, settings

    # The same examples in every run, so that a mutant's verdict does not depend on the draw; and no
    # shrinking: a mutant dies at the first failing example, where shrinking it can outlast the
    # time limit and count a killed mutant as a timeout.
    settings.register_profile("mutation", derandomize=True, database=None, deadline=None,
                              phases=(Phase.explicit, Phase.generate))
    settings.load_profile("mutation")

    # The commands the tests start import the mutated copy, and report what they ran (see
    # tests/mutation/sitecustomize.py).
    _MUTATED_ROOT = Path(__file__).resolve().parent.parent
    _HITS = Path(tempfile.mkdtemp(prefix="lstm-inspect-mutation-hits-"))
    os.environ["LSTM_INSPECT_MUTATION_HITS"] = str(_HITS)
    _MAKER = os.getpid()  # mutmut's workers fork from this process: only the process that made it removes it
    atexit.register(lambda: os.getpid() == _MAKER and shutil.rmtree(_HITS, ignore_errors=True))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(_MUTATED_ROOT), str(_MUTATED_ROOT / "tests" / "mutation"), *filter(None, [os.environ.get("PYTHONPATH")])])

    @pytest.hookimpl(tryfirst=True)  # before mutmut's own teardown hook files the test's calls
    def pytest_runtest_teardown(item):
        if os.environ.get("MUTANT_UNDER_TEST") != "stats":
            return
        from mutmut.state import state
        for names in _HITS.glob("*.txt"):
            state()._stats.update(names.read_text().split())
            names.unlink()

    # The tests that take seconds each are run for the mutants of the modules they are the way into:
    # real Keras's (marked keras) for the oracle's (lstm_inspect.keras), the others (an emitted
    # program run, a signal waited on) for those below too; the rest of the package is held to the
    # quicker tests. A mutant only a slow test would kill counts as a survivor: the score is
    # the stricter for it, and a survivor's run takes seconds, not minutes.
    SLOW_TEST_SECONDS = 3.0
    SLOW_WAY_IN = ("lstm_inspect.keras.", "lstm_inspect.emit.", "lstm_inspect.entry.", "lstm_inspect.cli.io.",
                   "lstm_inspect.cli.command.")

    def pytest_collection_modifyitems(config, items):
        mutant = os.environ["MUTANT_UNDER_TEST"]
        try:
            durations = json.loads((_MUTATED_ROOT / "mutmut-stats.json").read_text())["duration_by_test"]
        except (OSError, ValueError, KeyError):
            durations = {}
        mutated = "__mutmut_" in mutant

        def left_out_here(item) -> bool:
            if item.get_closest_marker("unmutated"):
                return True
            if item.get_closest_marker("keras"):
                return mutated and not mutant.startswith("lstm_inspect.keras.")
            slow = durations.get(item.nodeid, 0.0) > SLOW_TEST_SECONDS
            return mutated and slow and not mutant.startswith(SLOW_WAY_IN)

        left_out = [item for item in items if left_out_here(item)]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            kept = set(items) - set(left_out)
            items[:] = [item for item in items if item in kept]
        # The quickest test files first: with -x, a mutant dies at its first failing test. Within a
        # file pytest's own order stays: it groups the tests of each parameter of a module-scoped
        # fixture (one real-Keras run per backend); sorted test by test, the fixture is built
        # again for every test.
        cost: dict[str, float] = {}
        for item in items:
            cost[item.module.__name__] = cost.get(item.module.__name__, 0.0) + durations.get(item.nodeid, 0.0)
        order = {item: index for index, item in enumerate(items)}
        items.sort(key=lambda item: (cost[item.module.__name__], order[item]))
