"""Keras's recurrent weights to and from PyTorch's, torch-free to import (torch loads on first use):

    rnn = lstm_inspect.port.from_keras(model)       # nn.LSTM / nn.GRU / nn.RNN, batch_first=True
    lstm_inspect.port.to_keras(rnn, other_model)    # the weights back into a Keras layer or model
    lstm_inspect.KerasStateful.from_keras(model)    # with Keras's state handling too

What has no PyTorch equivalent raises `PortError` (a ValueError) saying why (see mirror/port.py).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = ("PortError", "from_keras", "to_keras")

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lstm_inspect.port' has no attribute {name!r}")
    return getattr(import_module(".mirror.port", __package__), name)
