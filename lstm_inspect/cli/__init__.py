"""The command line: the only package that knows click. Options come in groups, each building
one object; the library's field names become flags here; here, too, are the exit codes and the
checks made before any work."""

from .main import main

__all__ = ["main"]
