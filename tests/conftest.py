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
