"""The README's examples are what the command prints today (`make readme` regenerates them)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_examples_are_current():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_readme_quick_start_is_make_run_and_make_test():
    text = (ROOT / "README.md").read_text()
    quick_start = text[text.index("## Quick start"):text.index("## Reading the output")]
    assert "make run" in quick_start and "make test" in quick_start


def test_every_option_is_documented_in_the_readme():
    from lstm_inspect.cli import main

    text = (ROOT / "README.md").read_text()
    for param in main.params:
        assert any(opt in text for opt in param.opts), param.opts


def _python_api_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Python API"):text.index("## How it works")]


def test_python_api_examples_run():
    import doctest

    section = _python_api_section()
    test = doctest.DocTestParser().get_doctest(section, {}, "README.md (Python API)", str(ROOT / "README.md"), 0)
    assert len(test.examples) > 20
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_every_public_name_is_documented_in_the_python_api_section():
    import lstm_inspect

    section = _python_api_section()
    assert [name for name in lstm_inspect.__all__ if name != "__version__" and f"`{name}" not in section] == []


def test_the_advice_layout_example_runs():
    import doctest

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Advice"):text.index("## Options")]
    test = doctest.DocTestParser().get_doctest(section, {}, "README.md (Advice)", str(ROOT / "README.md"), 0)
    assert len(test.examples) >= 5
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
