"""The library's error for an invalid setup: it names the field at fault, never a command-line flag."""

from __future__ import annotations

import re
from collections.abc import Mapping


class SpecError(ValueError):
    """An invalid setup. `field` names the Spec field at fault; the message names fields as
    `{field}` placeholders, which `describe` fills with the caller's own names for them (the
    command line's flags, say). str() names the fields as Spec spells them."""

    def __init__(self, field: str, template: str, **values: object):
        self.field = field
        self.template = template
        self.values = values
        super().__init__(self.describe())

    def describe(self, names: Mapping[str, str] | None = None) -> str:
        """The message, each `{field}` spelt by `names` (default: the field's own name)."""
        names = names or {}
        fields = set(re.findall(r"\{(\w+)\}", self.template)) - set(self.values)
        return self.template.format(**{name: names.get(name, name) for name in fields}, **self.values)
