"""Data laid out for a stateful layer (row j+B continues row j), and what a data file's rows
show: the public face of `lstm_inspect.data`.

    >>> from lstm_inspect.layout import stateful_layout
"""

from .data.datafile import Continuity, continuity, open_data
from .data.layout import Layout, stateful_layout

__all__ = ["Continuity", "Layout", "continuity", "open_data", "stateful_layout"]
