"""Every mark a view draws, in Unicode or in plain ASCII, and which a stream can take."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..core.schedule import Start

RAISES = "raises"  # a call where Keras raises
EMPTY = "empty"  # a slot the call does not fill (a stateless partial batch)


@dataclass(frozen=True)
class Glyphs:
    """Every mark a view draws, in Unicode or in plain ASCII."""

    ok: str
    bad: str
    none: str
    more: str  # a table row or list that stands for folded items
    zeros: str  # timeline cells, one character each
    continued: str
    unrelated: str
    raises: str
    boundary: str
    gap: str  # the timeline's folded columns

    def of(self, kind: str) -> str:
        """A timeline cell: a Start value, RAISES or EMPTY."""
        return {Start.ZEROS.value: self.zeros, Start.CONTINUED.value: self.continued,
                Start.UNRELATED.value: self.unrelated, RAISES: self.raises, EMPTY: " "}[kind]


UNICODE = Glyphs("✓", "✗", "—", "…", "○", "─", "╳", "!", "│", "…")
ASCII = Glyphs("ok", "X", "-", "...", "o", "-", "x", "!", "|", "~")
_BOXES = "│━┃"  # rich's table borders


def choose_glyphs(stream: Any, ascii_only: bool = False) -> Glyphs:
    """ASCII when asked for, or when the stream's encoding cannot write the Unicode marks."""
    unicode = "".join(str(value) for value in dataclasses.astuple(UNICODE)) + _BOXES
    return ASCII if ascii_only or not can_encode(stream, unicode) else UNICODE


def can_encode(stream: Any, text: str) -> bool:
    """Whether a console or a text stream can write `text` in its encoding."""
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True
