"""Mutation testing with mutmut (`make mutation`, `make mutation MODULE=lstm_inspect/data/layout.py`).

mutmut copies the package and the tests into mutants/, mutates each function in every way it knows
and runs the tests that reach the function against each mutant. A mutant no test fails on is a bug
no test would notice. Results are kept in mutants/, so a run resumes where the last one stopped:
what was killed stays killed, and what survived, or was not reached yet, is run again (after new
tests, that is the point); a module whose source changed since is run afresh, all of it.

Then the score of every module is written to docs/mutation.md, which the README links.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import date
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTANTS = ROOT / "mutants"
TABLE = ROOT / "docs" / "mutation.md"

# mutmut's exit codes, by what they mean here (mutmut.stats.status_by_exit_code).
KILLED, SURVIVED, TIMEOUT, NO_TESTS, NOT_RUN, OTHER = "killed", "survived", "timeout", "no test", "not run", "other"
STATUS_BY_CODE = {1: KILLED, 3: KILLED, 0: SURVIVED, 5: NO_TESTS, 33: NO_TESTS, 36: TIMEOUT, -24: TIMEOUT,
                  24: TIMEOUT, 152: TIMEOUT, 255: TIMEOUT, None: NOT_RUN}
COLUMNS = (KILLED, SURVIVED, TIMEOUT, NO_TESTS, OTHER, NOT_RUN)


def module_of(path: str) -> str:
    """lstm_inspect/data/layout.py -> lstm_inspect.data.layout"""
    relative = Path(path).resolve().relative_to(ROOT)
    if relative.suffix != ".py" or relative.parts[0] != "lstm_inspect":
        sys.exit(f"mutation: MODULE must be a .py file of the package, such as lstm_inspect/data/layout.py: {path}")
    return ".".join(relative.with_suffix("").parts)


def results() -> dict[str, dict[str, int | None]]:
    """Each module's mutants with their last exit code (None: not run yet)."""
    found = {}
    for meta in sorted(MUTANTS.glob("lstm_inspect/**/*.py.meta")):
        module = ".".join(meta.relative_to(MUTANTS).with_suffix("").with_suffix("").parts)
        found[module] = json.loads(meta.read_text())["exit_code_by_key"]
    return found


def module_files() -> list[str]:
    return [module_of(str(path)) for path in sorted((ROOT / "lstm_inspect").rglob("*.py"))]


def changed(module: str) -> bool:
    """Whether the module's source is newer than mutmut's results for it (or has none)."""
    source = ROOT.joinpath(*module.split(".")).with_suffix(".py")
    meta = MUTANTS.joinpath(*module.split(".")).with_suffix(".py.meta")
    return not meta.exists() or source.stat().st_mtime > meta.stat().st_mtime


def to_run(modules: list[str]) -> list[str]:
    """The mutants to run: of a module changed since its last run (or never run), all of them, as
    mutmut makes them afresh; of the others, those that survived (a new test may kill them) or were
    not run yet."""
    known = results()
    names = []
    for module in modules or module_files():
        if changed(module):
            names.append(f"{module.removesuffix('.__init__')}.x*")  # mutmut names __init__'s by the package
        else:
            names += [name for name, code in known.get(module, {}).items()
                      if STATUS_BY_CODE.get(code, OTHER) in (SURVIVED, NOT_RUN)]
    return names


def run_mutmut(names: list[str]) -> int:
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}  # one thread per worker
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(os.cpu_count() or 2), *names]
    return subprocess.run(command, cwd=ROOT, env=environ).returncode


def score_row(name: str, codes: list[int | None]) -> str:
    counts = Counter(STATUS_BY_CODE.get(code, OTHER) for code in codes)
    run = len(codes) - counts[NOT_RUN]
    score = f"{100 * counts[KILLED] / run:.1f}" if run else "-"
    if run and counts[NOT_RUN]:
        score += f" of the {run:,} run"
    return f"| {name} | {len(codes)} | " + " | ".join(str(counts[c]) for c in COLUMNS) + f" | {score} |"


def score_table(known: dict[str, dict[str, int | None]]) -> str:
    head = ("| module | mutants | killed | survived | timeout | no test | other | not run | killed % |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = [score_row(f"`{module}`", list(codes.values())) for module, codes in known.items() if codes]
    every = [code for codes in known.values() for code in codes.values()]
    return head + "\n".join([*rows, score_row("**the package**", every)]) + "\n"


def write_table() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    TABLE.parent.mkdir(exist_ok=True)
    TABLE.write_text(
        "# Mutation score\n\n"
        f"Written by `make mutation` (mutmut {version('mutmut')}) on {date.today()}, at commit {commit}.\n"
        "Killed % counts killed mutants among those run; a timeout, a mutant no test reaches and a\n"
        "survivor all count against it. `# pragma: no mutate` marks the lines whose mutants are\n"
        "equivalent (the reason is beside each).\n\n" + score_table(results()))
    print(f"mutation: the scores are in {TABLE.relative_to(ROOT)}")


def main(paths: list[str]) -> int:
    names = to_run([module_of(path) for path in paths])
    code = run_mutmut(names) if names else 0
    write_table()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
