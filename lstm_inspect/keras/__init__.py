"""Watch your own Keras 3 model's recurrent states during its real run (`StateProbe`), read a
run it saved (`records`), and drive real Keras as the test oracle (`oracle`).

Only this package imports Keras, and only where it is used: `from lstm_inspect.keras import
StateProbe` imports Keras; `import lstm_inspect`, the command line and `--replay` do not.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {"StateProbe": "probe", "recurrent_layers": "probe"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lstm_inspect.keras' has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
