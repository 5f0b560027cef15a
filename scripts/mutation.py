"""Mutation testing with mutmut (`make mutation`, `make mutation MODULE=lstm_inspect/data/layout.py`).

mutmut copies the package and the tests into mutants/, mutates each function in every way it knows
and runs the tests that reach the function against each mutant. A mutant no test fails on is a bug
no test would notice.

A first run over the package takes hours on two cores, so the verdicts are kept in the repository,
in docs/mutation-results.json, keyed by a hash of each function's source (mutmut's own): on a fresh
clone they are handed back to mutmut, and a run resumes where the last one stopped. What was killed
stays killed while its function is unchanged; a function that changed is run afresh, all of it;
survivors and mutants not run yet are run again (after a new test, that is the point).

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
RESULTS = ROOT / "docs" / "mutation-results.json"

# mutmut's exit codes, by what they mean here (mutmut.stats.status_by_exit_code).
KILLED, SURVIVED, TIMEOUT, NO_TESTS, NOT_RUN, OTHER = "killed", "survived", "timeout", "no test", "not run", "other"
STATUS_BY_CODE = {1: KILLED, 3: KILLED, 0: SURVIVED, 5: NO_TESTS, 33: NO_TESTS, 36: TIMEOUT, -24: TIMEOUT,
                  24: TIMEOUT, 152: TIMEOUT, 255: TIMEOUT, None: NOT_RUN}
COLUMNS = (KILLED, SURVIVED, TIMEOUT, NO_TESTS, OTHER, NOT_RUN)
MUTANT_MARK = "__mutmut_"  # a mutant is named <module>.<function>__mutmut_<n>

Verdicts = dict[str, int | None]  # mutant name -> mutmut's exit code (None: not run yet)


def module_of(path: str | Path) -> str:
    """lstm_inspect/data/layout.py -> lstm_inspect.data.layout"""
    relative = Path(path).resolve().relative_to(ROOT)
    if relative.suffix != ".py" or relative.parts[0] != "lstm_inspect":
        sys.exit(f"mutation: MODULE must be a .py file of the package, such as lstm_inspect/data/layout.py: {path}")
    return ".".join(relative.with_suffix("").parts)


def source_of(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def meta_of(module: str) -> Path:
    return MUTANTS.joinpath(*module.split(".")).with_suffix(".py.meta")


def module_files() -> list[str]:
    return [module_of(path) for path in sorted((ROOT / "lstm_inspect").rglob("*.py"))]


def read_meta(module: str) -> tuple[Verdicts, dict[str, str]]:
    """mutmut's verdicts on a module and the hash of each function they were measured on."""
    try:
        meta = json.loads(meta_of(module).read_text())
    except FileNotFoundError:
        return {}, {}
    return meta["exit_code_by_key"], meta["hash_by_function_name"]


def kept_results() -> dict[str, dict]:
    return json.loads(RESULTS.read_text())["modules"] if RESULTS.exists() else {}


def hand_back_kept_results() -> None:
    """Write mutmut a meta file for each module it has none of, from the kept results; mutmut keeps
    a verdict only while the hash of its function is unchanged."""
    for module, kept in kept_results().items():
        meta = meta_of(module)
        if meta.exists() or not source_of(module).exists():
            continue
        verdicts = {f"{module.removesuffix('.__init__')}.{function}{MUTANT_MARK}{number}": code
                    for function, codes in kept["verdicts"].items() for number, code in enumerate(codes, 1)}
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps({"exit_code_by_key": verdicts, "hash_by_function_name": kept["hashes"],
                                    "type_check_error_by_key": {}, "durations_by_key": {},
                                    "estimated_durations_by_key": {}}))


def current_functions(module: str) -> tuple[list[str], dict[str, str]]:
    """The mutants mutmut makes of the module's source now, and the hash of each function."""
    from mutmut.mutation.file_mutation import mutate_file_contents

    source = source_of(module)
    mutated = mutate_file_contents(str(source.relative_to(ROOT)), source.read_text())
    return list(mutated.mutant_names), dict(mutated.hash_by_function_name)


def function_of(mutant: str) -> str:
    """lstm_inspect.core.spec.x_parse_shape__mutmut_3 -> x_parse_shape"""
    return mutant.partition(MUTANT_MARK)[0].rpartition(".")[2]


def to_run(modules: list[str]) -> list[str]:
    """The mutants to run: those of a function changed since its verdicts (or never run), and those
    that survived (a new test may kill them), timed out (most on a machine busy with other work)
    or were not run yet."""
    names = []
    for module in modules:
        verdicts, measured_on = read_meta(module)
        mutants, hashes = current_functions(module)
        package = module.removesuffix(".__init__")  # mutmut names __init__'s mutants by the package
        chosen = []
        for mutant in mutants:
            name = f"{package}.{mutant}"
            function = function_of(name)
            fresh = measured_on.get(function) != hashes[function] or name not in verdicts
            if fresh or STATUS_BY_CODE.get(verdicts[name], OTHER) in (SURVIVED, TIMEOUT, NOT_RUN):
                chosen.append(name)
        # All of a module's: its pattern, which keeps the command line short.
        names += [f"{package}.x*"] if mutants and len(chosen) == len(mutants) else chosen
    return names


def run_mutmut(names: list[str]) -> int:
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}  # one thread per worker
    # MUTATION_WORKERS=1 leaves a core free for other work while a long run goes on.
    workers = os.environ.get("MUTATION_WORKERS") or str(os.cpu_count() or 2)
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", workers, *names]
    return subprocess.run(command, cwd=ROOT, env=environ).returncode


def keep_results(modules: list[str]) -> None:
    """Record mutmut's verdicts, function by function, beside the table."""
    kept = kept_results()
    for module in modules:
        verdicts, hashes = read_meta(module)
        if not verdicts:
            continue
        by_function: dict[str, dict[int, int | None]] = {}
        for name, code in verdicts.items():
            by_function.setdefault(function_of(name), {})[int(name.rpartition(MUTANT_MARK)[2])] = code
        kept[module] = {"hashes": hashes,
                        "verdicts": {function: [codes[n] for n in range(1, len(codes) + 1)]
                                     for function, codes in sorted(by_function.items())}}
    RESULTS.write_text(json.dumps({"mutmut": version("mutmut"), "modules": dict(sorted(kept.items()))},
                                  indent=0, separators=(",", ":")) + "\n")


def score_row(name: str, codes: list[int | None]) -> str:
    counts = Counter(STATUS_BY_CODE.get(code, OTHER) for code in codes)
    run = len(codes) - counts[NOT_RUN]
    score = f"{100 * counts[KILLED] / run:.1f}" if run else "-"
    if run and counts[NOT_RUN]:
        score += f" of the {run:,} run"
    return f"| {name} | {len(codes)} | " + " | ".join(str(counts[c]) for c in COLUMNS) + f" | {score} |"


def score_table(codes_by_module: dict[str, list[int | None]]) -> str:
    head = ("| module | mutants | killed | survived | timeout | no test | other | not run | killed % |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    rows = [score_row(f"`{module}`", codes) for module, codes in codes_by_module.items() if codes]
    every = [code for codes in codes_by_module.values() for code in codes]
    return head + "\n".join([*rows, score_row("**the package**", every)]) + "\n"


def write_table() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    codes_by_module = {module: [code for codes in kept["verdicts"].values() for code in codes]
                       for module, kept in kept_results().items()}
    TABLE.write_text(
        "# Mutation score\n\n"
        f"Written by `make mutation` (mutmut {version('mutmut')}) on {date.today()}, at commit {commit}.\n"
        "Killed % counts killed mutants among those run; a timeout, a mutant no test reaches and a\n"
        "survivor all count against it. `# pragma: no mutate` marks the lines whose mutants are\n"
        "equivalent (the reason is beside each). The verdicts themselves, with the hash of the\n"
        "function each was measured on, are in [mutation-results.json](mutation-results.json).\n\n"
        + score_table(codes_by_module))
    print(f"mutation: the scores are in {os.path.relpath(TABLE, ROOT)}")


def main(paths: list[str]) -> int:
    modules = [module_of(path) for path in paths] or module_files()
    hand_back_kept_results()
    names = to_run(modules)
    code = run_mutmut(names) if names else 0
    keep_results(module_files())
    write_table()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
