"""lstm-inspect: when does Keras reset a recurrent layer's state, and when does it carry it?

The library under the command, torch-free to import (torch loads on first use of what needs it):

- the setup: `Spec`, with `Shuffle`, `ResetPolicy`, `Cell`, `KerasVersion`, `Phase`; an invalid one
  raises `SpecError`, naming the field;
- the schedule: `keras_steps(spec)` yields Keras's `Step`s, each slot's start predicted; the
  raising step carries its `KerasError`; `iter_calls(spec)` is the data order alone;
- the mirror: `KerasStateful(rnn, batch_size=B)`, a trainable `torch.nn.Module` that handles
  state as Keras does, raising `KerasStateError` (a ValueError) as Keras does;
- a checked run: `inspect(spec)` streams `StepResult`s once and ends in a frozen `Report`
  (`inspect(spec).run()` keeps the steps too).
"""

from __future__ import annotations

from importlib import import_module  # importlib alone, not importlib.metadata

# Nothing here may take time to import: the console script (`entry`) answers Ctrl-C only once this
# package has loaded. So typing is for the type checker only, and the version is read from the
# package's metadata (importlib.metadata: some 40 ms) when it is first asked for.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__: str  # resolved by __getattr__ on first access

# Public name -> the module that defines it, imported on first use.
_EXPORTS = {
    "Spec": "core.spec", "SpecError": "core.errors", "Shuffle": "core.choices", "ResetPolicy": "core.choices",
    "ResetKind": "core.choices", "Cell": "core.choices", "KerasVersion": "core.choices", "Phase": "core.choices",
    "Terms": "core.words", "Backend": "core.choices", "default_backend": "core.choices",
    "keras_steps": "core.schedule", "iter_calls": "core.order", "Step": "core.schedule", "Call": "core.order",
    "Start": "core.schedule", "KerasError": "core.facts", "KerasStateError": "core.facts", "FACTS": "core.facts",
    "Facts": "core.facts",
    "KerasStateful": "mirror.module", "ConvLSTM2D": "mirror.conv",
    "inspect": "api", "Inspection": "check.inspection", "Report": "check.inspection",
    "StepResult": "check.inspection", "Summary": "check.inspection",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _installed_version()
    elif name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'lstm_inspect' has no attribute {name!r}")
    globals()[name] = value
    return value


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lstm-inspect")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __dir__() -> list[str]:
    return sorted(__all__)
