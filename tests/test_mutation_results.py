"""`make mutation` keeps mutmut's verdicts in the repository (scripts/mutation.py): they go back to
mutmut on a fresh clone, and only what is not known to be killed on the function's present source
is run again."""

import importlib.util
import json
from pathlib import Path

import pytest

# The script, not the package: inside make mutation's copy its sources are the mutated ones.
pytestmark = pytest.mark.unmutated
ROOT = Path(__file__).resolve().parents[1]
MODULE = "lstm_inspect.core.digits"  # a small module: two mutants in one function


@pytest.fixture
def mutation(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("mutation_script", ROOT / "scripts" / "mutation.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "MUTANTS", tmp_path / "mutants")
    monkeypatch.setattr(script, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(script, "TABLE", tmp_path / "mutation.md")
    return script


def write_meta(mutation, verdicts, hashes):
    meta = mutation.meta_of(MODULE)
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": verdicts, "hash_by_function_name": hashes,
                                "type_check_error_by_key": {}, "durations_by_key": {},
                                "estimated_durations_by_key": {}}))


def test_kept_verdicts_go_back_to_mutmut_and_only_the_unkilled_run_again(mutation):
    mutants, hashes = mutation.current_functions(MODULE)
    names = [f"{MODULE}.{mutant}" for mutant in mutants]
    assert len(names) >= 2
    verdicts = {name: 1 for name in names} | {names[-1]: 0}  # all killed but the last, which survived
    write_meta(mutation, verdicts, hashes)
    mutation.keep_results([MODULE])
    kept = json.loads(mutation.RESULTS.read_text())["modules"][MODULE]
    assert kept["hashes"] == hashes
    assert sum(len(codes) for codes in kept["verdicts"].values()) == len(names)

    mutation.meta_of(MODULE).unlink()  # a fresh clone: no mutants/ folder
    mutation.hand_back_kept_results()
    handed, measured_on = mutation.read_meta(MODULE)
    assert handed == verdicts and measured_on == hashes
    assert mutation.to_run([MODULE]) == [names[-1]]  # the survivor only

    changed = {function: "0" * 12 for function in hashes}  # measured on another source
    write_meta(mutation, verdicts, changed)
    assert mutation.to_run([MODULE]) == [f"{MODULE}.x*"]  # all of them: the module's pattern


def test_the_table_counts_the_kept_verdicts(mutation):
    mutants, hashes = mutation.current_functions(MODULE)
    names = [f"{MODULE}.{mutant}" for mutant in mutants]
    write_meta(mutation, {name: code for name, code in zip(names, [1, 0] + [None] * len(names))}, hashes)
    mutation.keep_results([MODULE])
    mutation.write_table()
    row = next(line for line in mutation.TABLE.read_text().splitlines() if line.startswith(f"| `{MODULE}`"))
    not_run = len(names) - 2
    assert row == f"| `{MODULE}` | {len(names)} | 1 | 1 | 0 | 0 | 0 | {not_run} | 50.0" + (
        " of the 2 run |" if not_run else " |")
