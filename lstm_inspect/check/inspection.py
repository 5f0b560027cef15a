"""One checked run: the schedule's steps against the mirror's tensors, ending in a frozen Report.

`inspect(spec)` returns an `Inspection`: iterate it once for the step results (streamed,
nothing kept but the previous call's final states), then read its `report`. A second
pass, or the report before the end, is an error rather than a silent double count or a
plausible wrong answer. `Inspection.run()` does both at once for a setup small enough to
keep every step. This module never imports torch: the mirror is loaded when a run starts.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.facts import KerasError, KerasStateError, facts_for
from ..core.schedule import Step, keras_steps
from ..core.spec import Spec
from ..core.words import Terms
from ..data.masks import valid_lengths
from ..explain.advice import advise
from ..explain.claims import Claim, Landmarks, judge
from ..explain.fixes import fix_for_call, fix_for_partial_batch
from ..explain.verdict import Passes, verdict, warnings_for, workflow_warnings
from .observe import Checked, Observed, Window, differing_tensors, observe, tensor_names

if TYPE_CHECKING:
    from ..data.datafile import Continuity
    from ..explain.advice import Advice
    from .against import KerasComparison
    from .evidence import EvidenceItem


@dataclass(frozen=True)
class StepResult:
    step: Step
    observed: Observed | None  # None on a dry run, past max_steps, and for the call where Keras raises
    verified: bool | None  # None when nothing was observed
    lengths: np.ndarray | None = None  # each slot's valid timesteps, where the spec pads (--lengths)


@dataclass(frozen=True)
class Summary:
    steps: int = 0
    reset_events: int = 0  # steps where any slot started from zeros
    slot_resets: int = 0
    slot_carries: int = 0
    checked_steps: int = 0  # steps whose start was read from the mirror's tensors
    verified: bool | None = None  # None on a dry run
    tensors_checked: tuple[str, ...] = ()  # e.g. "h[layer 0, backward]"

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "reset_events": self.reset_events, "slot_resets": self.slot_resets,
                "tensors_checked": list(self.tensors_checked),
                "slot_carries": self.slot_carries, "checked_steps": self.checked_steps,
                "verified": self.verified}


class Tally:
    """The summary's counts, added up while the steps stream past."""

    def __init__(self) -> None:
        self.steps = self.reset_events = self.slot_resets = self.slot_carries = self.checked_steps = 0

    def add(self, result: StepResult) -> None:
        self.count(result.step.zero_slots, result.step.carried_slots, result.observed is not None)

    def count(self, zero_slots: int, carried_slots: int, checked: bool) -> None:
        self.steps += 1
        self.checked_steps += checked
        self.slot_resets += zero_slots
        self.slot_carries += carried_slots
        self.reset_events += zero_slots > 0

    def freeze(self, verified: bool | None, tensors: tuple[str, ...]) -> Summary:
        return Summary(self.steps, self.reset_events, self.slot_resets, self.slot_carries, self.checked_steps,
                       verified, tensors)


@dataclass(frozen=True)
class Report:
    """Everything one checked run found, after its last step.

    `ok`: the tensors (and real Keras, when compared) agree with the schedule and every
    evidence item that applies passed. `error`: what Keras raises for this setup, if it
    does, with `fix`. `steps`: every step result when kept (`Inspection.run()`), else empty.
    """

    spec: Spec
    dry_run: bool
    summary: Summary
    error: KerasError | None
    fix: str | None
    mismatches: int  # steps (and extra mirror calls) that break the prediction
    first_difference: tuple[int, tuple[str, ...]] | None  # step, and the tensors at fault
    warnings: tuple[str, ...]
    verdict: str
    evidence: tuple[EvidenceItem, ...]
    claims: tuple[Claim, ...]  # judged only when the evidence was measured
    keras: KerasComparison | None
    terms: Terms
    steps: tuple[StepResult, ...] = ()
    observer: str = ""  # who saw the steps on a real model (StateProbe); "" for the mirror's run
    advice: tuple[Advice, ...] = ()
    data: Continuity | None = None  # what the user's data file showed (--data)

    @property
    def evidence_failed(self) -> bool:
        return any(item.passed is False for item in self.evidence)

    def __repr__(self) -> str:
        """Short: a notebook shows the table itself (`_repr_html_`), and a report holds every step."""
        seen = f", seen by {self.observer}" if self.observer else ", dry run" if self.dry_run else ""
        outcome = "ok" if self.ok else f"{self.mismatches:,} mismatches" if self.mismatches else "not ok"
        kept = f", {len(self.steps):,} kept" if self.steps else ""
        raises = f", Keras raises {self.error.type} at step {self.error.step}" if self.error else ""
        kind = "stateful " if self.spec.stateful else "stateless "
        name = facts_for(self.spec).name
        if self.observer == TORCH_OBSERVER:  # its spec stands for the loop's module: no Keras ran
            name, kind = "your PyTorch loop", ""
        return (f"<Report: {name}, {kind}{self.spec.layer_name}; {self.summary.steps:,} steps"
                f"{kept}{seen}{raises}; {outcome}>")

    def show(self, view: str = "table", max_rows: int = 40, console: Any = None) -> None:
        """Print it as the command line does: the table (or `view="timeline"`, from the kept
        steps), then the summary, verdict and advice."""
        _display("show")(self, view=view, max_rows=max_rows, console=console)

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        """The table and what follows it, in any rich console."""
        yield _display("rich")(self)

    def _repr_html_(self) -> str:
        """The table, summary, verdict and advice as HTML, for notebooks."""
        html: str = _display("html")(self)
        return html

    @property
    def ok(self) -> bool:
        return (self.mismatches == 0 and not self.evidence_failed
                and (self.keras is None or self.keras.agree))


# Who saw the steps of a plain PyTorch loop (lstm_inspect.torch.watch): its report runs no Keras.
TORCH_OBSERVER = "TorchProbe"

# How a finished report shows itself (in a notebook, a rich console, printed): this layer renders
# nothing, views/notebook.py plugs its renderers in when imported (lstm_inspect.inspect and the
# probes import it).
DISPLAYS: dict[str, Any] = {}


def _display(kind: str) -> Any:
    if kind not in DISPLAYS:
        raise RuntimeError("the report's views are not loaded: import lstm_inspect.views.notebook")
    return DISPLAYS[kind]


class Inspection:
    """One pass over Keras's steps for `spec`, checked on the mirror unless `dry_run`.

    Iterate it once; `report` is there after the last step."""

    def __init__(self, spec: Spec, *, dry_run: bool = False, device: str = "cpu", evidence: bool = False,
                 evidence_batch: int = 0, max_steps: int | None = None,
                 keras: KerasComparison | None = None, terms: Terms = Terms(), advice: bool = False,
                 data: Continuity | None = None):
        if dry_run and (evidence or max_steps is not None or keras is not None):
            raise ValueError("a dry run observes nothing: no evidence, max_steps or Keras comparison")
        self.spec, self.dry_run, self.device = spec, dry_run, device
        self.with_evidence, self.evidence_batch, self.max_steps = evidence, evidence_batch, max_steps
        self.keras, self.terms, self.with_advice, self.data = keras, terms, advice, data
        self._started = False
        self._report: Report | None = None
        self._tally = Tally()
        self._landmarks = Landmarks()
        self._passes = Passes()
        self._error: KerasError | None = None
        self._mismatches = 0
        self._first_difference: tuple[int, tuple[str, ...]] | None = None

    def __repr__(self) -> str:
        kind = "stateful" if self.spec.stateful else "stateless"
        state = (f"finished, {self._tally.steps:,} steps (.report)" if self._report is not None
                 else f"running, {self._tally.steps:,} steps so far" if self._started
                 else "not started (iterate it, or .run())")
        return (f"<Inspection of {facts_for(self.spec).name}, {kind} {self.spec.layer_name}"
                f"{' (dry run)' if self.dry_run else ''}: {state}>")

    @property
    def report(self) -> Report:
        if self._report is None:
            raise RuntimeError("the inspection has not finished: iterate over every step first, "
                               "or call run()")
        return self._report

    @property
    def warnings(self) -> list[str]:
        """Known before the run: they depend on the setup alone (the report adds those the
        run of a workflow shows)."""
        return warnings_for(self.spec, self.terms)

    def run(self) -> Report:
        """Run to the end, keeping every step in the report."""
        steps = tuple(self)
        self._report = dataclasses.replace(self.report, steps=steps)
        return self._report

    def __iter__(self) -> Iterator[StepResult]:
        if self._started:
            raise RuntimeError("an Inspection streams its steps once: start a new one for another pass")
        self._started = True
        spec = self.spec
        for result in (self._predicted(keras_steps(spec)) if self.dry_run else self._checked()):
            if spec.padded:
                call = result.step.call
                result = dataclasses.replace(result, lengths=valid_lengths(spec, call.stream, call.slot_samples))
            self._tally.add(result)
            self._landmarks.add(result.step)
            self._passes.add(result.step)
            self._mismatches += result.verified is False
            if self._first_difference is None and result.observed is not None and result.observed.differing:
                self._first_difference = (result.step.call.index, result.observed.differing)
            yield result
        self._report = self._finish()

    def _finish(self) -> Report:
        spec = self.spec
        evidence: tuple[EvidenceItem, ...] = ()
        if self.with_evidence:
            from .evidence import gather  # needs torch, like the run

            evidence = tuple(gather(spec, self.evidence_batch, self._landmarks.longest_chain, self._tally.steps,
                                    self.device))
        verified = None if self.dry_run else self._mismatches == 0
        summary = self._tally.freeze(verified, () if self.dry_run else tuple(tensor_names(spec)))
        claims = judge(spec, self._landmarks, {item.key: item.value for item in evidence}, self.terms) \
            if self.with_evidence else []
        return Report(spec=spec, dry_run=self.dry_run, summary=summary, error=self._error,
                      fix=self._fix(),
                      mismatches=self._mismatches, first_difference=self._first_difference,
                      warnings=tuple(self.warnings + workflow_warnings(spec, self._passes, self.terms)),
                      verdict=verdict(spec, self._error, self._passes),
                      evidence=evidence, claims=tuple(claims), keras=self.keras, terms=self.terms,
                      advice=tuple(advise(spec, self.data, self.terms)) if self.with_advice else (),
                      data=self.data)

    def _fix(self) -> str | None:
        if self._error is None:
            return None
        if self.spec.workflow is None:
            return fix_for_partial_batch(self.spec, self.terms)
        return fix_for_call(self.spec, self._error.step, self.terms)

    def _predicted(self, steps: Iterable[Step]) -> Iterator[StepResult]:
        for step in steps:
            if step.error is not None:
                self._error = step.error
            yield StepResult(step, None, None)

    def _raised_by_mirror(self, step: Step, raised: KerasStateError) -> StepResult:
        """The mirror raised: right only where, and as, the schedule says Keras raises."""
        expected = step.error is not None and (step.error.type, step.error.message) == (raised.keras_type, str(raised))
        self._error = step.error if expected else KerasError(step.call.index, raised.keras_type, str(raised))
        return StepResult(step, None, None if expected else False)

    def _checked(self) -> Iterator[StepResult]:
        from ..mirror import run as mirror  # torch is imported here, only when the run needs it

        records = mirror.run_mirror(self.spec, mirror.resolve_device(self.device))
        kept: dict[int, mirror.CallRecord] = {}  # by call index: the final states later steps start from
        last = None  # the call before, compared with where zeros are predicted: it shows a wrong carry
        window = Window()  # plain steps, checked a few hundred at a time
        steps = keras_steps(self.spec)
        for step in steps:
            if step.call.index == self.max_steps:
                records.close()
                yield from self._results(window.flush())
                yield from self._predicted(itertools.chain([step], steps))
                return
            try:
                record = next(records, None)
            except KerasStateError as raised:
                yield from self._results(window.flush())
                yield self._raised_by_mirror(step, raised)
                return
            if step.error is not None or record is None:
                # The mirror ran a call where Keras raises (or stopped early): a disagreement.
                yield from self._results(window.flush())
                self._error = step.error
                yield StepResult(step, None, False)
                return
            source = kept.get(step.source.index) if step.source is not None else last
            if window.takes(step, record, source, last):
                assert last is not None, "a plain step follows a call"
                if window.add(step, record, last):
                    yield from self._results(window.flush())
            else:
                yield from self._results(window.flush())
                observed, verified = observe(step, record, source)
                yield self._result(step, record, source, observed, verified)
            for index in [index for index in kept if index < step.keep_from]:
                del kept[index]
            if step.kept:
                kept[step.call.index] = record
            last = record
        yield from self._results(window.flush())
        try:
            if next(records, None) is not None:
                self._mismatches += 1  # the mirror made more calls than Keras does
        except KerasStateError:
            self._mismatches += 1  # ... and raised where Keras does not

    def _results(self, checked: Iterable[Checked]) -> Iterator[StepResult]:
        for found in checked:
            yield self._result(found.step, found.record, found.previous, found.observed, found.verified)

    def _result(self, step: Step, record: Any, source: Any, observed: Observed, verified: bool) -> StepResult:
        if not verified:
            observed = dataclasses.replace(observed, differing=differing_tensors(self.spec, step, record, source))
        return StepResult(step, observed, verified)
