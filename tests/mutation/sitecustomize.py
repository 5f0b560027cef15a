"""Loaded by each Python a test starts under `make mutation` (the tests' conftest puts this folder
on PYTHONPATH there, and only there).

mutmut learns which tests reach a function by counting, in its own process, the calls that pass
through the mutated copy's trampolines. A command a test starts as a subprocess counts its calls in
a process mutmut never sees, so without this the test would be run for no mutant and kill none.
Here the subprocess keeps the names of the functions it ran and leaves them, at exit, in the folder
the conftest named; the conftest adds them to the test that started it."""

import atexit
import os
from pathlib import Path

_HITS = os.environ.get("LSTM_INSPECT_MUTATION_HITS")

if _HITS and os.environ.get("MUTANT_UNDER_TEST") == "stats":
    from mutmut.mutation import trampoline

    _reached: set[str] = set()

    def _record(name: str, caller: str | None = None) -> None:
        # mutmut's own recorder reads its configuration from the working folder, which a test's
        # subprocess may have changed; the name is all the parent needs.
        _reached.add(name)

    trampoline.record_trampoline_hit = _record

    @atexit.register
    def _leave_names() -> None:
        if _reached:
            (Path(_HITS) / f"{os.getpid()}.txt").write_text("\n".join(sorted(_reached)))
