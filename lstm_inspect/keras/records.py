"""What a `StateProbe` saw on a real Keras model, as steps and a report the views render.

Pure numpy, no Keras: `lstm_inspect.keras.StateProbe` reads the states and hands them to a
`Recorder` here; `--replay` reads a saved run back with `load`. Each call's per-slot starts
are classified from the tensors alone: zeros, carried from slot j of the call before
(exactly its final states), or other (set by hand, or from a source the probe did not see).
Only the previous call's final states are kept, and the steps go to a file as they come:
memory does not grow with the number of batches.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO

import numpy as np

from ..check import inspection
from ..check.inspection import TORCH_OBSERVER, Report, StepResult
from ..check.observe import Observed
from ..core.choices import Phase
from ..core.errors import SpecError
from ..core.order import Call
from ..core.schedule import Start, Step
from ..core.spec import Spec
from ..core.words import Terms, plural, printable
from ..data.datafile import regular_file
from ..data.jsonfile import Items, NotAnObject, members
from ..data.memory import START_UP, rooms
from ..views.files import check_writable, write_atomically
from ..views.jsonout import step_to_json
from ..views.notebook import printed_view  # (importing it: a probe's report shows itself in notebooks too)

OBSERVER = "StateProbe"
OBSERVERS = (OBSERVER, TORCH_OBSERVER)  # lstm_inspect.torch's probe writes the same schema
ZEROS = Start.ZEROS.value
OTHER = "other"  # a slot whose state is neither zeros nor a final state of the call before
SLOT = "/slot "  # in a start label: "<call label>/slot <j>"


@dataclass(frozen=True, eq=False)
class ObservedStep(Step):
    """A step seen on a real model: `source_slot` is -1 for zeros, -2 for other, else the slot
    of `source` (the call before) whose final states this slot started from; `zeros` and
    `others` count the -1 and the -2 (see `observed_step`)."""

    zeros: int = 0
    others: int = 0

    @property
    def zero_slots(self) -> int:
        return self.zeros

    @property
    def seen_on_model(self) -> bool:
        return True

    @property
    def other_slots(self) -> int:
        return self.others

    @property
    def carried_slots(self) -> int:
        return 0 if self.source_slot is None else len(self.source_slot) - self.zeros - self.others

    def start_labels(self) -> list[str] | None:
        """Per slot: "zeros", "other", or "<call label>/slot <j>" (a call and slot, not a data index)."""
        if self.source_slot is None:
            return None
        source = self.source.label if self.source is not None else ""
        return [ZEROS if j == -1 else OTHER if j == -2 else f"{source}{SLOT}{j}"
                for j in self.source_slot.tolist()]

    def start_kinds(self) -> np.ndarray:
        """Carried from the same slot: the layout Keras keeps; from another slot, or other: unrelated."""
        assert self.source_slot is not None
        kinds = np.full(len(self.source_slot), Start.UNRELATED.value, dtype=object)
        kinds[self.source_slot == -1] = Start.ZEROS.value
        kinds[self.source_slot == np.arange(len(self.source_slot))] = Start.CONTINUED.value
        return kinds


def observed_step(call: Call, previous: Call | None, sources: np.ndarray) -> ObservedStep:
    """The step of `call` whose slots started from `sources` (see ObservedStep), counted."""
    zeros, others = int(np.count_nonzero(sources == -1)), int(np.count_nonzero(sources == -2))
    source = previous if zeros + others < len(sources) else None
    return ObservedStep(call, source, sources, zeros=zeros, others=others)


def classify(initial: np.ndarray, before: np.ndarray | None) -> np.ndarray:
    """Per slot (rows of `initial`: every state of every layer, flattened): -1 all zeros, j the
    row of `before` it equals exactly (its own row first), -2 otherwise."""
    found = np.full(len(initial), -2, dtype=np.int64)
    zero = np.logical_not(initial.any(axis=1), dtype=bool)
    found[zero] = -1
    if before is None or before.shape[1:] != initial.shape[1:]:
        return found
    shared = min(len(initial), len(before))
    own = np.zeros(len(initial), dtype=bool)  # each slot's own row first, compared all at once
    own[:shared] = ~zero[:shared] & (initial[:shared] == before[:shared]).all(axis=1)
    found[own] = np.flatnonzero(own)
    rest = np.flatnonzero(~zero & ~own)
    if rest.size:
        rows = {row.tobytes(): j for j, row in reversed(list(enumerate(before)))}
        for slot in rest:
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
        self.last_sources: np.ndarray | None = None  # the last call's per-slot sources (see classify)

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
        self.last_sources = sources
        step = observed_step(call, self.previous, sources)
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


class Recorded(abc.ABC):
    """What both probes (StateProbe, lstm_inspect.torch's TorchProbe) give of the calls their
    `_recorder` holds: the report, kept or printed as the command line prints it, and the run saved
    in the command line's JSON schema."""

    _recorder: Recorder

    @abc.abstractmethod
    def _spec_now(self) -> Spec:
        """The Spec standing for what was watched, in the views."""

    @abc.abstractmethod
    def _report_of(self, tally: Tally, steps: tuple[StepResult, ...] = ()) -> Report:
        """The report of the steps `tally` counted."""

    @abc.abstractmethod
    def _head(self) -> dict[str, Any]:
        """The saved run's members before its steps: schema, observed_by, spec, ..."""

    def _tail(self) -> dict[str, Any]:
        """Members the saved run holds after its verdict."""
        return {}

    def _counted(self, tally: Tally) -> Iterator[StepResult]:
        """The steps, read back once from the file, each counted into `tally` as it passes."""
        for result in self._recorder.results():
            tally.add(result)
            yield result

    def result(self) -> Report:
        """The report, every step kept in it (`Report.steps`)."""
        tally = Tally()
        steps = tuple(self._counted(tally))
        return self._report_of(tally, steps)

    def report(self, view: str = "table", console: Any = None, max_rows: int = 40) -> Report:
        """Print the table (or `view="timeline"`) and verdict, as the command line does; returns the report."""
        shown = printed_view(view, self._spec_now(), max_rows, console)
        tally = Tally()
        for result in self._counted(tally):
            shown.add(result)
        report = self._report_of(tally)
        shown.finish(report)
        return report

    def _json_pieces(self) -> Iterator[str]:
        yield json.dumps(self._head())[:-1] + ', "steps": ['
        tally = Tally()
        for index, result in enumerate(self._counted(tally)):
            yield ("" if index == 0 else ", ") + "\n  " + json.dumps(step_to_json(result))
        report = self._report_of(tally)
        tail = {"summary": report.summary.to_json(), "warnings": list(report.warnings), "verdict": report.verdict,
                **self._tail()}
        yield "\n], " + json.dumps(tail)[1:] + "\n"

    def to_json(self) -> dict[str, Any]:
        """What `save` writes: the JSON schema of the command line, steps named by their calls."""
        loaded: dict[str, Any] = json.loads("".join(self._json_pieces()))
        return loaded

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the run (`to_json`) to `path` (a str or a pathlib.Path), atomically: never a
        half-written file. ValueError where `path` cannot be written or is no regular file (a
        device, a FIFO, a link, a directory), as the command line refuses such an export;
        `lstm-inspect --replay` reads it."""
        path = os.fspath(path)
        problem = check_writable(path)
        if problem:
            raise ValueError(problem)
        write_atomically(path, self._json_pieces())


def results_from_lines(lines: Any) -> Iterator[StepResult]:
    """StepResults from step JSON objects, one per line (or an iterable of dicts)."""
    previous: Call | None = None
    for index, line in enumerate(lines):
        item = json.loads(line) if isinstance(line, str) else line
        result = result_from_json(item, index, previous)
        previous = result.step.call
        yield result


class _Checked(NamedTuple):
    """A step of a probe's JSON, every field checked: what its StepResult is made of."""

    phase: Phase
    epoch: int
    batch: int
    samples: list[int]
    segment: str  # the call's name, its control characters escaped
    sources: list[int]  # per slot, as ObservedStep.source_slot
    zeros: int
    others: int
    observed: Observed | None

    @property
    def carried(self) -> int:
        return len(self.sources) - self.zeros - self.others

    @property
    def label(self) -> str:
        return Call.label_of(self.segment, self.batch)


def result_from_json(item: Any, index: int, previous: Call | None) -> StepResult:
    """One step of a probe's JSON; ValueError naming the step and field where it is not one."""
    before = None if previous is None else (previous.label, len(previous.samples))
    return _result(_check(item, index, before), index, previous)


def _result(step: _Checked, index: int, previous: Call | None) -> StepResult:
    call = Call(index, step.phase, step.epoch, step.batch, np.array(step.samples, dtype=np.int64), 0, step.segment,
                step.phase)
    return StepResult(ObservedStep(call, previous if step.carried else None, np.array(step.sources, dtype=np.int64),
                                   zeros=step.zeros, others=step.others), step.observed, None)


def _check(item: Any, index: int, before: tuple[str, int] | None) -> _Checked:
    """The fields of one step, checked; `before`: the label and slots of the call before."""
    if not isinstance(item, dict):
        raise ValueError(f"step {index} is not an object")
    name, epoch, batch, samples, segment, starts = _typed(item, index)
    phase = _PHASES.get(name)
    if phase is None:
        raise ValueError(f"step {index}: phase {name!r} is none of {', '.join(member.value for member in Phase)}")
    if not (0 <= epoch < 10**18 and 0 <= batch < 10**18):
        raise ValueError(f"step {index}: {'batch' if 0 <= epoch < 10**18 else 'epoch'} must be a whole number from 0")
    # Whole numbers only (bool is an int to Python, not to JSON), within int64.
    if samples and (set(map(type, samples)) != {int} or min(samples) < 0 or max(samples) >= 10**18):
        raise ValueError(f"step {index}: samples holds something other than whole numbers from 0")
    segment = printable(segment)
    if len(starts) != len(samples):
        raise ValueError(f"step {index}: {len(samples)} samples but {len(starts)} starts")
    zeros, others = starts.count(ZEROS), starts.count(OTHER)
    own = _starts_of(before) if zeros + others < len(starts) else []
    if starts == own:  # every slot carried its own: the usual case, at C speed
        sources = list(range(len(starts)))
    else:
        codes = {**dict(zip(own, range(len(own)))), **_CODES}
        sources = [codes.get(start, -3) if type(start) is str else -3 for start in starts]
    if -3 in sources:
        slot = sources.index(-3)
        raise ValueError(f"step {index}: slot {slot} starts from {printable(str(starts[slot]))!r}, not a slot of "
                         "the call before")
    return _Checked(phase, epoch, batch, samples, segment, sources, zeros, others,
                    _observed(item.get("observed"), index))


_PHASES = {member.value: member for member in Phase}
_STEP_FIELDS = ("phase", "epoch", "batch", "samples", "call", "start")
_STEP_TYPES = (str, int, int, list, str, list)  # exactly: JSON's true is a bool, never an int
_TYPE_WORDS = {str: "text", int: "a whole number", list: "a list"}  # as JSON names them


def _typed(item: dict[str, Any], index: int) -> tuple[Any, ...]:
    """A step's fields (_STEP_FIELDS), each of its type; else the first that is not named."""
    values = tuple(map(item.get, _STEP_FIELDS))
    if tuple(map(type, values)) != _STEP_TYPES:
        name, kind = next((name, kind) for name, kind, value in zip(_STEP_FIELDS, _STEP_TYPES, values, strict=True)
                          if type(value) is not kind)
        raise ValueError(f"step {index}: {name} is not {_TYPE_WORDS[kind]}")
    return values
_CODES = {ZEROS: -1, OTHER: -2}  # the starts that are no slot of the call before


def _starts_of(before: tuple[str, int] | None) -> list[str]:
    """The start of each slot carried from the call before: "<its label>/slot <j>"."""
    if before is None:
        return []
    label, slots = before
    return [f"{label}{SLOT}{slot}" for slot in range(slots)]


def _count(item: dict[str, Any], name: str, index: int) -> int:
    value = item.get(name)
    # Within int64; and bool is an int to Python, not to JSON.
    if type(value) is not int or not 0 <= value < 10**18:
        raise ValueError(f"step {index}: {name} must be a whole number from 0")
    return value


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
        step = result.step
        self.observe(step.zero_slots, step.carried_slots, step.other_slots, result.observed is not None,
                     step.call.label)

    def observe(self, zero_slots: int, carried_slots: int, other_slots: int, checked: bool, label: str) -> None:
        self.count(zero_slots, carried_slots, checked)
        self.other += other_slots
        if zero_slots and len(self.resets) < 8:
            self.resets.append(label)


def probe_report(spec: Spec, tally: Tally, warnings: tuple[str, ...], stateful_layers: int,
                 steps: tuple[StepResult, ...] = (), observer: str = OBSERVER) -> Report:
    return Report(spec=spec, dry_run=False, summary=tally.freeze(None, ()), error=None, fix=None, mismatches=0,
                  first_difference=None, warnings=warnings, verdict=probe_verdict(spec, tally, stateful_layers),
                  evidence=(), claims=(), keras=None, terms=Terms(), steps=steps, observer=observer)


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


STEPS = "steps"
HEAD = ("observed_by", "schema", "spec")  # what the steps are read with (probe.save writes them first)
_STREAMED = object()  # the steps' place among the members: read, not kept


class _Refused(ValueError):
    """A refusal whose message is whole (it names the file)."""


@dataclass(frozen=True)
class SavedRun:
    """A run probe.save wrote, read through and checked by `load`: its spec, the members around
    its steps, and the steps' tally; `results()` reads the steps again, one at a time."""

    path: str
    spec: Spec
    data: dict[str, Any]  # every member but the steps
    tally: Tally
    identity: tuple[int, ...]  # of the file read: a later reading must find the same one

    def results(self) -> Iterator[StepResult]:
        """The steps, from the file `load` read: ValueError, before a step is read, where it
        has changed since (another file, or rewritten)."""
        return _made(self.checked())

    def checked(self) -> Iterator[_Checked]:
        """The steps, read again and checked, as results are made of."""
        file = _open(self.path)
        if _identity(file) != self.identity:
            file.close()
            raise ValueError(f"{self.path} changed after it was read: replay it again")
        return self._steps(file)

    def _steps(self, file: TextIO) -> Iterator[_Checked]:
        with file, _reading(self.path):
            for key, value in _members(file, self.path):
                if key == STEPS and isinstance(value, Items):
                    yield from _checked(value, self.spec)


def load(path: str) -> SavedRun:
    """A saved probe run, read once through, its steps checked and counted, not kept (memory
    does not grow with them); every field checked here, in one place. ValueError with one line
    saying what is wrong for anything else: not a regular file, unreadable, not JSON (or JSON's
    NaN and Infinity, which it never writes), nested past reason, truncated, another program's
    file, a damaged one, or one holding a value too large for the memory left."""
    regular_file(path)
    file = _open(path)
    with file, _reading(path):
        identity = _identity(file)
        data: dict[str, Any] = {}
        spec: Spec | None = None
        tally: Tally | None = None
        for key, value in _members(file, path):
            if key == STEPS and isinstance(value, Items):
                data[STEPS] = _STREAMED
                if all(name in data for name in HEAD):
                    spec = _head(data, path)
                    tally = _tallied(_checked(value, spec))
            else:
                data[key] = value
    with _reading(path):
        if spec is None:
            spec = _head(data, path)
        _check_top(data)
        saved = SavedRun(path, spec, data, tally or Tally(), identity)
        # Steps before the head (another writer's order): counted in a second reading, now the spec is known.
        return saved if tally is not None else dataclasses.replace(saved, tally=_tallied(saved.checked()))


def _open(path: str) -> TextIO:
    try:
        return open(path, encoding="utf-8")  # noqa: SIM115 (closed by its reader)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None


def _identity(file: TextIO) -> tuple[int, ...]:
    status = os.fstat(file.fileno())
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


@contextlib.contextmanager
def _reading(path: str) -> Iterator[None]:
    """Every failure to read the file, as one line naming it."""
    try:
        yield
    except _Refused:
        raise
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
    except NotAnObject:
        raise ValueError(_foreign(path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not JSON (or is cut short): {error}") from None
    except RecursionError:
        raise ValueError(f"{path} nests deeper than any StateProbe file: not one") from None
    except (TypeError, ValueError, SpecError) as error:
        raise ValueError(f"{path} is a damaged StateProbe file: {error}") from None


def _members(file: TextIO, path: str) -> Iterator[tuple[str, Any]]:
    return members(file, STEPS, room=lambda characters: _check_room(path, characters), parse_constant=_no_constant)


def _foreign(path: str) -> str:
    return (f"{path} is not a run saved by StateProbe (probe.save): no \"observed_by\": \"StateProbe\" with "
            "schema 1")


def _head(data: dict[str, Any], path: str) -> Spec:
    """The spec the steps are read with, once the file is known to be a probe's."""
    schema = data.get("schema")
    if data.get("observed_by") not in OBSERVERS or type(schema) is not int or schema != 1:
        raise _Refused(_foreign(path))
    if not isinstance(data.get("spec"), dict):
        raise ValueError("spec is not a dict")
    workflow = data["spec"].get("workflow")
    if workflow is not None and not isinstance(workflow, str):
        raise ValueError("spec's workflow is not text")
    return Spec.from_json(data["spec"])


# What one JSON value costs read back, per character of it: the text held, then its objects
# (measured: 5.7 to 5.8 bytes per byte, for runs of 100,000 and 300,000 steps read whole).
READ_BACK_BYTES_PER_BYTE = 6


def _check_room(path: str, characters: int) -> None:
    """Refused, before it is read, a value (a step, a verdict) longer than the text a reader
    holds, where reading it would take more memory than a limit leaves this process
    (data.memory.rooms): refused in a second, not killed in a minute."""
    needed = START_UP + READ_BACK_BYTES_PER_BYTE * characters
    for room in rooms():
        if needed > room.bytes:
            raise _Refused(f"{path} holds a value of {characters / 2**20:,.1f} MiB of JSON, which needs about "
                           f"{needed / 2**30:,.1f} GiB to be read back, more than the {room.bytes / 2**30:,.1f} GiB "
                           f"that {room.source} leaves: replay it where there is more memory")


def _checked(steps: Iterable[Any], spec: Spec) -> Iterator[_Checked]:
    """The steps, one at a time, each checked against the one before and the spec."""
    before: tuple[str, int] | None = None
    for index, item in enumerate(steps):
        step = _check(item, index, before)
        if len(step.samples) > spec.largest_batch:
            raise ValueError(f"step {index} holds {len(step.samples):,} slots, more than the spec's batch of "
                             f"{spec.largest_batch:,}")
        before = step.label, len(step.samples)
        yield step


def _tallied(steps: Iterator[_Checked]) -> Tally:
    tally = Tally()
    for step in steps:
        tally.observe(step.zeros, step.carried, step.others, step.observed is not None, step.label)
    return tally


def _made(steps: Iterator[_Checked]) -> Iterator[StepResult]:
    previous: Call | None = None
    for index, step in enumerate(steps):
        result = _result(step, index, previous)
        previous = result.step.call
        yield result


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is no number a StateProbe file holds")


def _check_top(data: dict[str, Any]) -> None:
    """The fields around the steps, each of the type probe.save writes."""
    if data.get(STEPS) is not _STREAMED:
        raise ValueError("steps is not a list")
    warnings = data.get("warnings", [])
    if not isinstance(warnings, list) or not all(isinstance(warning, str) for warning in warnings):
        raise ValueError("warnings is not a list of text")
    if not isinstance(data.get("verdict", ""), str):
        raise ValueError("verdict is not text")
    layers = data.get("stateful_layers", 0)
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
        raise ValueError("stateful_layers is not a whole number from 0")


def replayed(saved: SavedRun) -> Report:
    """The report of a saved run `load` read."""
    data = saved.data
    # Text from the file is data: shown with its control characters escaped.
    warnings = tuple(printable(str(warning)) for warning in data.get("warnings") or ())
    report = probe_report(saved.spec, saved.tally, warnings, int(data.get("stateful_layers", 0)),
                          observer=str(data["observed_by"]))
    return dataclasses.replace(report, verdict=printable(str(data.get("verdict") or report.verdict)))
