"""lstm-inspect: when does Keras reset a recurrent layer's state, and when does it carry it?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lstm-inspect")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
