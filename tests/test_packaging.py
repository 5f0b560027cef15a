"""The package as a user gets it: the wheel and the sdist built from this checkout, the wheel
installed into a fresh venv (the pinned torch first, as make run installs it), the README's
headline and a replay of the shipped example run from outside the checkout, the metadata checked,
and the sdist's golden tests run from the sdist itself."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The torch make run pins (TORCH_SPEC in the Makefile): a CPU build from local disk, in seconds.
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")

pytestmark = pytest.mark.unmutated  # it builds the package from the checkout, not mutmut's copy


def run(*args, **options):
    done = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=600, **options)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=ROOT)
    return next(out.glob("*.whl")), next(out.glob("*.tar.gz"))


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    venv = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", TORCH_SPEC)
    run(python, "-m", "pip", "install", "--quiet", built[0])
    return venv / "bin"


def test_the_installed_wheel_answers_the_headline_and_replays_the_shipped_example(installed, tmp_path):
    outside = {"cwd": tmp_path, "env": {**os.environ, "NO_COLOR": "1"}}
    headline = run(installed / "lstm-inspect", "--shape", "1000,20,1", "--batch", "200", "--no-evidence", **outside)
    assert "5 steps: 5 reset events, 1,000 slot resets, 0 slot carries. Every step verified" in headline
    example = run(installed / "lstm-inspect", "--example", "probe-run.json", **outside).strip()
    assert Path(example).is_file() and not Path(example).is_relative_to(ROOT)
    replayed = run(installed / "lstm-inspect", "--replay", example, "--expect-resets", "3", **outside)
    assert "seen by StateProbe" in replayed


def test_the_metadata_is_like_its_peers(installed, tmp_path):
    code = ("import json, importlib.metadata as m; d = m.distribution('lstm-inspect'); "
            "print(json.dumps({'meta': {k: d.metadata.get_all(k) for k in ('License-Expression', 'License-File', "
            "'Classifier', 'Requires-Dist', 'Keywords')}, 'files': [str(f) for f in d.files]}))")
    found = json.loads(run(installed / "python", "-c", code, cwd=tmp_path))
    meta, files = found["meta"], found["files"]
    assert meta["License-Expression"] == ["MIT"] and meta["License-File"] == ["LICENSE"]
    assert "Typing :: Typed" in meta["Classifier"] and "Programming Language :: Python :: 3.11" in meta["Classifier"]
    assert "lstm_inspect/py.typed" in files and "lstm_inspect/examples/probe-run.json" in files
    assert any(path.endswith("licenses/LICENSE") for path in files)
    # No extra pulls the full tensorflow beside tensorflow-cpu (tf-keras goes in without dependencies).
    assert not any(requirement.startswith(("tf-keras", "tensorflow ", "tensorflow>", "tensorflow;"))
                   for requirement in meta["Requires-Dist"])


def test_the_sdist_holds_what_its_tests_read_and_its_golden_tests_pass(built, tmp_path):
    with tarfile.open(built[1]) as sdist:
        sdist.extractall(tmp_path, filter="data")
    root = next(tmp_path.iterdir())
    for needed in ("LICENSE", "tests/golden/headline.txt", "examples/probe-run.json", "examples/sliding.npy",
                   "lstm_inspect/examples/probe-run.json", "scripts/update_readme.py", "Makefile", ".ci/run"):
        assert (root / needed).exists(), needed
    # The sdist's own code and tests: its lstm_inspect comes first on the path.
    run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_golden.py", cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)})
