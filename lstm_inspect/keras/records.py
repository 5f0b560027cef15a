"""What a `StateProbe` saw on a real Keras model, as steps and a report the views render.

Pure numpy, no Keras: `lstm_inspect.keras.StateProbe` reads the states and hands them to a
`Recorder` here; `--replay` reads a saved run back with `load`. Each call's per-slot starts
are classified from the tensors alone: zeros, carried from slot j of the call before
(exactly its final states), or other (set by hand, or from a source the probe did not see).
Only the previous call's final states are kept, and the steps go to a file as they come:
memory does not grow with the number of batches.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from ..check import inspection
from ..check.inspection import Report, StepResult
from ..check.observe import Observed
from ..core.choices import Phase
from ..core.errors import SpecError
from ..core.order import Call
from ..core.schedule import Start, Step
from ..core.spec import Spec
from ..core.words import Terms, plural, printable
from ..data.datafile import regular_file
from ..data.memory import START_UP, rooms
from ..views.jsonout import step_to_json

OBSERVER = "StateProbe"
OTHER = "other"  # a slot whose state is neither zeros nor a final state of the call before
SLOT = "/slot "  # in a start label: "<call label>/slot <j>"


@dataclass(frozen=True, eq=False)
class ObservedStep(Step):
    """A step seen on a real model: `source_slot` is -1 for zeros, -2 for other, else the slot
    of `source` (the call before) whose final states this slot started from."""

    @functools.cached_property
    def zero_slots(self) -> int:
        return 0 if self.source_slot is None else int(np.count_nonzero(self.source_slot == -1))

    @property
    def seen_on_model(self) -> bool:
        return True

    @functools.cached_property
    def other_slots(self) -> int:
        return 0 if self.source_slot is None else int(np.count_nonzero(self.source_slot == -2))

    @functools.cached_property
    def carried_slots(self) -> int:
        return 0 if self.source_slot is None else int(np.count_nonzero(self.source_slot >= 0))

    def start_labels(self) -> list[str] | None:
        """Per slot: "zeros", "other", or "<call label>/slot <j>" (a call and slot, not a data index)."""
        if self.source_slot is None:
            return None
        source = self.source.label if self.source is not None else ""
        return [Start.ZEROS.value if j == -1 else OTHER if j == -2 else f"{source}{SLOT}{j}"
                for j in self.source_slot.tolist()]

    def start_kinds(self) -> np.ndarray:
        """Carried from the same slot: the layout Keras keeps; from another slot, or other: unrelated."""
        assert self.source_slot is not None
        kinds = np.full(len(self.source_slot), Start.UNRELATED.value, dtype=object)
        kinds[self.source_slot == -1] = Start.ZEROS.value
        kinds[self.source_slot == np.arange(len(self.source_slot))] = Start.CONTINUED.value
        return kinds


def classify(initial: np.ndarray, before: np.ndarray | None) -> np.ndarray:
    """Per slot (rows of `initial`: every state of every layer, flattened): -1 all zeros, j the
    row of `before` it equals exactly (its own row first), -2 otherwise."""
    found = np.full(len(initial), -2, dtype=np.int64)
    zero = ~initial.any(axis=1)
    found[zero] = -1
    if before is None:
        return found
    rows = {row.tobytes(): j for j, row in reversed(list(enumerate(before)))}
    for slot in np.flatnonzero(~zero):
        if slot < len(before) and np.array_equal(initial[slot], before[slot]):
            found[slot] = slot
        else:
            found[slot] = rows.get(initial[slot].tobytes(), -2)
    return found


class Recorder:
    """The calls as they happen: names them as lstm-inspect does, classifies each one's slots,
    and writes each step to a temporary file (one JSON line); keeps the last final states only."""

    def __init__(self) -> None:
        self.file: TextIO = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.steps = 0
        self.previous: Call | None = None
        self.final: np.ndarray | None = None
        self.counts: dict[str, int] = {}
        self.number = 1
        self.invocation = -1

    def start(self, kind: str) -> None:
        """A new call of the workflow (fit, evaluate, predict, train_on_batch, ...)."""
        self.counts[kind] = self.number = self.counts.get(kind, 0) + 1
        self.invocation += 1

    def segment(self, word: str, epoch: int | None) -> str:
        numbered = word + (f"#{self.number}" if self.number > 1 else "")
        return numbered if epoch is None else f"{numbered} e{epoch}"

    def begin(self, phase: Phase, segment: str, epoch: int, batch: int, initial: np.ndarray | None,
              slots: int) -> Call:
        """A layer call starts; `initial` is None for a model without state variables."""
        call = Call(self.steps, phase, epoch, batch, np.arange(slots), 0, segment, phase, self.invocation)
        if initial is None:
            sources = np.full(slots, -1)
            observed = Observed(slots, 0, 0.0)
        else:
            sources = classify(initial, self.final)
            observed = Observed(int(np.count_nonzero(sources == -1)), int(np.count_nonzero(sources >= 0)),
                                float(np.abs(initial).max()) if initial.size else 0.0)
        source = self.previous if (sources >= 0).any() else None
        step = ObservedStep(call, source, sources)
        self.file.write(json.dumps(step_to_json(StepResult(step, observed, None))) + "\n")
        self.steps += 1
        return call

    def end(self, call: Call, final: np.ndarray | None) -> None:
        self.previous, self.final = call, final

    def results(self) -> Iterator[StepResult]:
        self.file.flush()
        self.file.seek(0)
        yield from results_from_lines(self.file)
        self.file.seek(0, 2)

    def close(self) -> None:
        self.file.close()


def results_from_lines(lines: Any) -> Iterator[StepResult]:
    """StepResults from step JSON objects, one per line (or an iterable of dicts)."""
    previous: Call | None = None
    for index, line in enumerate(lines):
        item = json.loads(line) if isinstance(line, str) else line
        result = result_from_json(item, index, previous)
        previous = result.step.call
        yield result


def result_from_json(item: Any, index: int, previous: Call | None) -> StepResult:
    """One step of a probe's JSON; ValueError naming the step and field where it is not one."""
    if not isinstance(item, dict):
        raise ValueError(f"step {index} is not an object")
    phase = _field(item, "phase", str, index)
    if phase not in _PHASES:
        raise ValueError(f"step {index}: phase {phase!r} is none of {', '.join(member.value for member in Phase)}")
    epoch, batch = _count(item, "epoch", index), _count(item, "batch", index)
    samples = _field(item, "samples", list, index)
    if not all(isinstance(sample, int) and not isinstance(sample, bool) and 0 <= sample < 10**18
               for sample in samples):
        raise ValueError(f"step {index}: samples holds something other than whole numbers from 0")
    call = Call(index, Phase(phase), epoch, batch, np.asarray(samples, dtype=np.int64), 0,
                printable(_field(item, "call", str, index)), Phase(phase))
    starts = _field(item, "start", list, index)
    if len(starts) != len(samples):
        raise ValueError(f"step {index}: {len(samples)} samples but {len(starts)} starts")
    sources = np.array([_source(start, slot, index, previous) for slot, start in enumerate(starts)], dtype=np.int64)
    source = previous if (sources >= 0).any() else None
    return StepResult(ObservedStep(call, source, sources), _observed(item.get("observed"), index), None)


_PHASES = {member.value for member in Phase}


def _field(item: dict[str, Any], name: str, kind: type, index: int) -> Any:
    value = item.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"step {index}: {name} is not a {kind.__name__}")
    return value


def _count(item: dict[str, Any], name: str, index: int) -> int:
    value: int = _field(item, name, int, index)
    if not 0 <= value < 10**18:
        raise ValueError(f"step {index}: {name} must be a whole number from 0")
    return value


def _source(start: Any, slot: int, index: int, previous: Call | None) -> int:
    """-1 for zeros, -2 for other, else the slot of the call before that this slot started from."""
    if start == Start.ZEROS.value:
        return -1
    if start == OTHER:
        return -2
    label, _, row = str(start).rpartition(SLOT)
    if previous is None or label != previous.label or not row.isdigit() or int(row) >= len(previous.samples):
        raise ValueError(f"step {index}: slot {slot} starts from {printable(str(start))!r}, not a slot of the call "
                         "before")
    return int(row)


def _observed(observed: Any, index: int) -> Observed | None:
    if observed is None:
        return None
    if not isinstance(observed, dict):
        raise ValueError(f"step {index}: observed is not an object")
    zeros, carried = _count(observed, "zero_slots", index), _count(observed, "carried_slots", index)
    largest = observed.get("max_abs_h0")
    if isinstance(largest, bool) or not isinstance(largest, int | float) or not math.isfinite(largest):
        raise ValueError(f"step {index}: observed max_abs_h0 is not a finite number")
    return Observed(zeros, carried, float(largest))


class Tally(inspection.Tally):
    """The summary's counts, the slots from other states, and the first calls where a slot
    started from zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.other = 0
        self.resets: list[str] = []

    def add(self, result: StepResult) -> None:
        super().add(result)
        self.other += result.step.other_slots
        if result.step.zero_slots and len(self.resets) < 8:
            self.resets.append(result.step.call.label)


def probe_report(spec: Spec, tally: Tally, warnings: tuple[str, ...], stateful_layers: int,
                 steps: tuple[StepResult, ...] = ()) -> Report:
    return Report(spec=spec, dry_run=False, summary=tally.freeze(None, ()), error=None, fix=None, mismatches=0,
                  first_difference=None, warnings=warnings, verdict=probe_verdict(spec, tally, stateful_layers),
                  evidence=(), claims=(), keras=None, terms=Terms(), steps=steps, observer=OBSERVER)


def probe_verdict(spec: Spec, tally: Tally, stateful_layers: int) -> str:
    name = f"Keras {spec.keras} ({spec.backend})"
    if not stateful_layers:
        return (f"Observed on your model, {name}: its recurrent layers are stateless, with no state variables to "
                f"read: every one of its {plural(tally.steps, 'call')} starts every slot from zeros.")
    text = (f"Observed on your model, {name}: {plural(stateful_layers, 'stateful recurrent layer')}, "
            f"{plural(tally.steps, 'call')}. {plural(tally.reset_events, 'call')} started slots from zeros")
    if tally.resets:
        more = tally.reset_events - len(tally.resets)
        text += f" ({', '.join(tally.resets)}{f' and {more:,} more' if more > 0 else ''})"
    text += (f"; {plural(tally.slot_carries, 'slot')} carried the final state of a slot of the call before"
             + (f"; {plural(tally.other, 'slot')} started from other states (set by hand, or from a call the "
                "probe did not see)" if tally.other else "") + ".")
    return text


def load(path: str) -> tuple[Spec, list[StepResult], dict[str, Any]]:
    """A saved probe run: its spec, its steps (read once) and the rest, every field checked
    here, in one place. ValueError with one line saying what is wrong for anything else: not a
    regular file, unreadable, not JSON (or JSON's NaN and Infinity, which it never writes), nested
    past reason, truncated, another program's file, or a damaged one."""
    regular_file(path)
    _check_room(path)
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file, parse_constant=_no_constant)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"{path} is not JSON (or is cut short): {error}") from None
    except RecursionError:
        raise ValueError(f"{path} nests deeper than any StateProbe file: not one") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("observed_by") != OBSERVER or type(schema) is not int or schema != 1:
        raise ValueError(f"{path} is not a run saved by StateProbe (probe.save): no \"observed_by\": "
                         "\"StateProbe\" with schema 1")
    try:
        _check_top(data)
        spec = Spec.from_json(data["spec"])
        results = list(_read_steps(data.pop("steps"), spec))  # every step, before anything is shown
    except (TypeError, ValueError, SpecError) as error:
        raise ValueError(f"{path} is a damaged StateProbe file: {error}") from None
    return spec, results, data


# What a run read back holds, per byte of its file: the JSON's objects, then the steps as results
# (measured: 5.7 to 5.8 bytes per byte, for runs of 100,000 and 300,000 steps, in every format).
READ_BACK_BYTES_PER_BYTE = 6


def _check_room(path: str) -> None:
    """ValueError, before the file is read, where reading the run back would take more memory than
    a limit leaves this process (data.memory.rooms): refused in a second, not killed in a minute."""
    size = os.stat(path).st_size
    needed = START_UP + READ_BACK_BYTES_PER_BYTE * size
    for room in rooms():
        if needed > room.bytes:
            raise ValueError(f"{path} ({size / 2**20:,.0f} MiB of JSON) needs about {needed / 2**30:,.1f} GiB to be "
                             f"read back, more than the {room.bytes / 2**30:,.1f} GiB that {room.source} leaves: "
                             "replay it where there is more memory, or save shorter runs (a probe per fit)")


def _read_steps(steps: list[Any], spec: Spec) -> Iterator[StepResult]:
    """The steps, each JSON object let go once read (a long run is held once, as results)."""
    previous: Call | None = None
    for index in range(len(steps)):
        result = result_from_json(steps[index], index, previous)
        steps[index] = None
        if len(result.step.call.samples) > spec.largest_batch:
            raise ValueError(f"step {index} holds {len(result.step.call.samples):,} slots, more than the spec's "
                             f"batch of {spec.largest_batch:,}")
        previous = result.step.call
        yield result


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is no number a StateProbe file holds")


def _check_top(data: dict[str, Any]) -> None:
    """The fields around the steps, each of the type probe.save writes."""
    for name, kind in (("spec", dict), ("steps", list)):
        if not isinstance(data.get(name), kind):
            raise ValueError(f"{name} is not a {kind.__name__}")
    warnings = data.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(warning, str) for warning in warnings):
        raise ValueError("warnings is not a list of text")
    if not isinstance(data.get("verdict", ""), str):
        raise ValueError("verdict is not text")
    layers = data.get("stateful_layers", 0)
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
        raise ValueError("stateful_layers is not a whole number from 0")
    workflow = data["spec"].get("workflow")
    if workflow is not None and not isinstance(workflow, str):
        raise ValueError("spec's workflow is not text")


def replayed(spec: Spec, results: list[StepResult], data: dict[str, Any]) -> Report:
    """The report of a saved run `load` read."""
    tally = Tally()
    for result in results:
        tally.add(result)
    # Text from the file is data: shown with its control characters escaped.
    warnings = tuple(printable(str(warning)) for warning in data.get("warnings") or ())
    report = probe_report(spec, tally, warnings, int(data.get("stateful_layers", 0)))
    return dataclasses.replace(report, verdict=printable(str(data.get("verdict") or report.verdict)))
