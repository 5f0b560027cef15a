"""How the library's sentences name settings and count things."""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Terms:
    """How the library's sentences name a setting: as Spec's fields (`batch_size`,
    `shuffle=False`), or, given `flags`, as a command line spells them."""

    flags: Mapping[str, str] = dataclasses.field(default_factory=dict)  # field -> option
    settings: Mapping[str, str] = dataclasses.field(default_factory=dict)  # "shuffle=False" -> its option

    def name(self, field: str) -> str:
        return self.flags.get(field, field)

    def setting(self, field: str, value: object) -> str:
        python = f"{field}={value!r}"
        if field not in self.flags:
            return python
        return self.settings.get(python, f"{self.flags[field]} {value}")


def plural(count: int, word: str, many: str | None = None) -> str:
    """E.g. "1 sample", "2,000 samples", "3 slot carries" (with `many`)."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def printable(text: str) -> str:
    """`text` with every control character escaped (\\x1b, \\u200e, ...): text read from a file is
    data, never a terminal's instruction to clear the screen or erase a line."""
    if text.isprintable():
        return text  # the usual case, at C speed
    return "".join(char if unicodedata.category(char)[0] != "C"
                   else char.encode("unicode_escape").decode("ascii")  # pragma: no mutate (codec names: any case)
                   for char in text)
