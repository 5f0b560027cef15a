"""Whole numbers as the setup takes them: ASCII digits, and few enough of them to mean data."""

from __future__ import annotations

MAX_DIGITS = 18  # past int64 a count describes no data anyone holds (and int() refuses 4,300 digits)


def is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²", which int() rejects."""
    return text.isascii() and text.isdigit()


def too_long(text: str) -> bool:
    return len(text.strip().lstrip("0")) > MAX_DIGITS
