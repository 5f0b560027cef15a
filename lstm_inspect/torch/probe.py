"""Watch your own PyTorch loop's recurrent states: `watch(model)`.

    with watch(model) as probe:
        for x, y in loader:                 # your loop, as it is
            out, h = model(x, h)
    probe.report()                          # the table, verdict and findings the command line prints
    probe.compare(Spec(1000, 20, 1, batch_size=50, stateful=True, shuffle=False))
    probe.save("run.json")                  # lstm-inspect --replay run.json --expect-resets 2

Hooks on every nn.LSTM, nn.GRU and nn.RNN of the model (wherever they sit) read each call's initial
states and final states; each slot's start is classified from the tensors alone, as StateProbe's
are (keras/records.py): zeros (or no state given), the final state of slot j of the module's call
before (exactly), or other (set by hand, averaged, learned, from another module). Zeroed rows among
carried ones are a per-slot reset. It also finds a carried state that was not detached, a state
whose batch differs from its input's (PyTorch raises then), an averaged state, and rows reordered
from one pass over the data to the next. The hooks go on exit, the model's mode is restored, and
only each module's last final states are kept: the steps go to a temporary file.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..check.inspection import TORCH_OBSERVER, Report, StepResult
from ..core.choices import Backend, Cell, Phase
from ..core.order import Call
from ..core.spec import Spec
from ..core.words import plural
from ..keras.records import Recorded, Recorder, Tally, probe_report
from ..views.jsonout import SCHEMA_VERSION
from .passes import Passes

OBSERVER = TORCH_OBSERVER
_CELLS = {nn.LSTM: Cell.LSTM, nn.GRU: Cell.GRU, nn.RNN: Cell.RNN}


@dataclass(frozen=True)
class Finding:
    """Something in the loop that Keras would not do, or that PyTorch will refuse: `key` is one of
    "not detached", "batch size", "averaged", "shuffled"; `call` the step's label."""

    key: str
    call: str
    text: str

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "call": self.call, "text": self.text}


@dataclass(frozen=True)
class _Seen:
    """One module call's inputs as the hooks read them."""

    slots: int
    rows: np.ndarray | None  # the input, one row per slot (None for a packed sequence)
    states: tuple[torch.Tensor, ...]  # the initial states given, in the cell's order; () for none
    shape: tuple[int, ...]  # the input's, as given
    timesteps: int


class TorchProbe(Recorded):
    """The calls of a model's recurrent modules, as `watch` records them (see the module's doc)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modules = [(name or type(module).__name__, module) for name, module in model.named_modules()
                        if isinstance(module, nn.RNNBase)]
        if not self.modules:
            raise TypeError(f"{type(model).__name__} holds no nn.LSTM, nn.GRU or nn.RNN to watch")
        self.findings: list[Finding] = []
        self.shapes: list[tuple[int, ...]] = []  # each call's input shape, as given
        self._recorder = Recorder()
        self._last: dict[int, tuple[Call, np.ndarray]] = {}  # per module: its last call and final states
        self._under_way: dict[int, Call] = {}
        self._passes: dict[tuple[int, Phase], Passes] = {}
        self._handles: list[Any] = []
        self._mode = model.training
        self._spec: Spec | None = None
        self._reported: set[str] = set()

    # --- the hooks -------------------------------------------------------------------------

    def __enter__(self) -> TorchProbe:
        self._mode = self.model.training
        for _, module in self.modules:
            self._handles.append(module.register_forward_pre_hook(self._before, with_kwargs=True))
            self._handles.append(module.register_forward_hook(self._after, with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.model.train(self._mode)

    def _before(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        assert isinstance(module, nn.RNNBase)
        given = args[1] if len(args) > 1 else kwargs.get("hx")
        seen = _read(module, args[0] if args else kwargs["input"], given)
        phase = Phase.TRAIN if module.training and torch.is_grad_enabled() else Phase.PREDICT
        passes = self._passes.setdefault((id(module), phase), Passes())
        epoch, batch, reordered = passes.place(seen.rows)
        word = "train" if phase == Phase.TRAIN else "predict"
        label = self._label(module, f"{word} e{epoch}")
        self._recorder.previous, before = self._last.get(id(module), (None, None))
        self._recorder.final = before
        initial = _rows(seen.states) if seen.states else None
        if initial is not None and len(initial) != seen.slots:
            self._batch_mismatch(module, label, batch, seen)
            return
        if self._spec is None:
            self._spec = _describe(module, seen, bool(seen.states))
        call = self._recorder.begin(phase, label, epoch, batch, initial, seen.slots)
        self._under_way[id(module)] = call
        self.shapes.append(seen.shape)
        self._check(call, seen, initial, before, reordered)

    def _after(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        call = self._under_way.pop(id(module), None)
        if call is None:
            return
        final = output[1]
        self._last[id(module)] = call, _rows(final if isinstance(final, tuple) else (final,))
        self._recorder.end(call, None)

    def _label(self, module: nn.Module, segment: str) -> str:
        if len(self.modules) == 1:
            return segment
        return f"{next(name for name, held in self.modules if held is module)} {segment}"

    # --- the findings ----------------------------------------------------------------------

    def _find(self, key: str, call: str, text: str) -> None:
        """Each kind of finding once: the first call that shows it."""
        if key not in self._reported:
            self._reported.add(key)
            self.findings.append(Finding(key, call, text))

    def _check(self, call: Call, seen: _Seen, initial: np.ndarray | None, before: np.ndarray | None,
               reordered: bool) -> None:
        label = f"{call.segment} b{call.batch}"
        sources = self._recorder.last_sources
        carried = sources is not None and bool((sources >= 0).any())
        attached = [name for name, state in zip(_names(seen.states), seen.states) if state.grad_fn is not None]
        if carried and attached:
            fix = " and ".join(f"{name}.detach()" for name in _names(seen.states))
            self._find("not detached", label, f"{label}: the carried {' and '.join(attached)} "
                       f"{'is' if len(attached) == 1 else 'are'} not detached, so a backward reaches the call before, "
                       "which Keras's stateful layer never does (it truncates at each call); PyTorch raises "
                       "\"Trying to backward through the graph a second time\" once that graph is freed. Pass "
                       f"{fix} to the next call (both, where there are two: one alone still raises)")
        if initial is not None and before is not None and sources is not None and len(before) > 1:
            mean = before.mean(axis=0)
            if any(np.allclose(initial[slot], mean, rtol=1e-5, atol=1e-6) for slot in np.flatnonzero(sources == -2)):
                self._find("averaged", label, f"{label}: a slot starts from the mean over the slots of the call "
                           "before: averaging h over the batch merges the slots' streams, which Keras never does "
                           "(slot i carries slot i)")
        if reordered and carried:
            self._find("shuffled", label, f"{label}: the rows come in another order than in the first pass over "
                       "the data (DataLoader(shuffle=True)), while the state is carried: slot i no longer continues "
                       "its series. Keras's stateful layers want shuffle=False")

    def _batch_mismatch(self, module: nn.RNNBase, label: str, batch: int, seen: _Seen) -> None:
        rows = module.num_layers * (2 if module.bidirectional else 1)
        size = module.proj_size or module.hidden_size
        name = "hidden[0]" if isinstance(module, nn.LSTM) else "hidden"
        given = len(_rows(seen.states))
        self._find("batch size", f"{label} b{batch}",
                   f"{label} b{batch}: a state of {given} slots for an input of {seen.slots}: PyTorch raises "
                   f"\"Expected {name} size ({rows}, {seen.slots}, {size}), got [{rows}, {given}, {size}]\". A "
                   "last batch smaller than the carried state: DataLoader(drop_last=True), or cut the state to the "
                   f"batch (h[:, :{seen.slots}]); Keras raises for a stateful layer's smaller batch too")

    # --- what it saw -----------------------------------------------------------------------

    def _spec_now(self) -> Spec:
        return self._spec or Spec(1, 1, 1, batch_size=1, backend=Backend.TORCH)

    def _report_of(self, tally: Tally, steps: tuple[StepResult, ...] = ()) -> Report:
        report = probe_report(self._spec_now(), tally, tuple(finding.text for finding in self.findings), 0, steps,
                              observer=OBSERVER)
        return _with_verdict(report, tally, len(self.modules))

    def compare(self, spec: Spec) -> Any:
        """Whether the loop is Keras's `spec`, call for call and slot for slot (see compare.py)."""
        from .compare import compare

        return compare(self, spec)

    def steps(self) -> Iterator[StepResult]:
        """The steps recorded, read back once more."""
        yield from self._recorder.results()

    def _head(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, "observed_by": OBSERVER, "torch_version": torch.__version__,
                "spec": self._spec_now().to_json(), "stateful_layers": 0}

    def _tail(self) -> dict[str, Any]:
        return {"findings": [finding.to_json() for finding in self.findings]}


@contextlib.contextmanager
def watch(model: nn.Module) -> Iterator[TorchProbe]:
    """Record the calls of every recurrent module of `model` while the block runs (see TorchProbe)."""
    probe = TorchProbe(model)
    with probe:
        yield probe


def _read(module: nn.RNNBase, x: Any, given: Any) -> _Seen:
    states = () if given is None else tuple(given) if isinstance(given, tuple | list) else (given,)
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return _Seen(int(x.batch_sizes[0]), None, states, tuple(x.data.shape), len(x.batch_sizes))
    if x.dim() == 2:  # one unbatched sequence (T, F)
        return _Seen(1, x.detach().reshape(1, -1).cpu().numpy(), states, tuple(x.shape), int(x.shape[0]))
    rows = x.detach() if module.batch_first else x.detach().transpose(0, 1)
    return _Seen(int(rows.shape[0]), rows.reshape(rows.shape[0], -1).cpu().numpy(), states, tuple(x.shape),
                 int(rows.shape[1]))


def _rows(states: tuple[torch.Tensor, ...]) -> np.ndarray:
    """Every state, one row per slot: (layers x directions, batch, units) to (batch, everything)."""
    parts = []
    for state in states:
        value = state.detach().cpu().numpy()
        if value.ndim == 2:  # an unbatched call's (layers x directions, units)
            value = value[:, None]
        parts.append(value.transpose(1, 0, 2).reshape(value.shape[1], -1))
    return np.concatenate(parts, axis=1)


def _names(states: tuple[torch.Tensor, ...]) -> list[str]:
    return ["h", "c"][:len(states)]


def _describe(module: nn.RNNBase, seen: _Seen, given: bool) -> Spec:
    """The Spec standing for the loop in the views: the first module's cell and sizes, its first call's batch."""
    return Spec(seen.slots, seen.timesteps, module.input_size,
                batch_size=seen.slots, stateful=given, units=module.hidden_size, layers=module.num_layers,
                bidirectional=module.bidirectional, cell=_CELLS.get(type(module), Cell.LSTM), backend=Backend.TORCH)


def _with_verdict(report: Report, tally: Tally, modules: int) -> Report:
    text = (f"Observed on your PyTorch loop: {plural(modules, 'recurrent module')}, {plural(tally.steps, 'call')}. "
            f"{plural(tally.reset_events, 'call')} started slots from zeros")
    if tally.resets:
        more = tally.reset_events - len(tally.resets)
        text += f" ({', '.join(tally.resets)}{f' and {more:,} more' if more > 0 else ''})"
    text += f"; {plural(tally.slot_carries, 'slot')} carried the final state of a slot of the call before"
    if tally.other:
        text += f"; {plural(tally.other, 'slot')} started from other states (set by hand, averaged, learned)"
    return dataclasses.replace(report, verdict=text + ".")
