"""The PyTorch side: `watch(model)`, a probe on your own PyTorch loop (probe.py), and `compare`,
whether it does what a Keras setup does. Imports torch when used."""

from importlib import import_module
from typing import Any

_EXPORTS = {"watch": "probe", "TorchProbe": "probe", "Finding": "probe", "Comparison": "compare"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lstm_inspect.torch' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
