"""The one place the emitted programs are rendered: Jinja2 templates in templates/.

Each program is a template (keras.j2, torch.j2, and keras_workflow.j2 and torch_workflow.j2 for
--calls), and each kind of workflow call has one template per program, named by the Kind's value
(`keras_call_fit.j2`, `torch_call_twin.j2`, ...): a new kind of call is a new file in each, and
`call_templates` tells which kinds have one. The folder stays flat, as the package data ships
`templates/*.j2`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2 import Environment

PROGRAMS = ("keras", "torch")
_CALL = "_call_"  # in the name of a call's template: <program>_call_<kind>.j2


@functools.cache
def _environment() -> Environment:
    # Imported here: only --emit renders, and every other command starts without Jinja2.
    from jinja2 import Environment, PackageLoader, StrictUndefined

    environment = Environment(
        loader=PackageLoader("lstm_inspect.emit", "templates"),
        # The output is Python, never HTML: nothing is escaped.
        autoescape=False,
        # Block tags and comments sit on lines of their own and leave neither the line's newline
        # nor its indentation behind; the program's last newline stays.
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        # A name a template misses is a bug, never an empty string in a program.
        undefined=StrictUndefined,
    )
    environment.filters["repr"] = repr  # Python literals as the program writes them: 'batch', True
    return environment


def render(template: str, **values: object) -> str:
    """The text of `template` with `values`."""
    return _environment().get_template(template).render(**values)


def call_template(program: str, kind: str) -> str:
    """The template of one kind of workflow call (a Kind's value) in `program`."""
    return f"{program}{_CALL}{kind}.j2"


def call_templates(program: str) -> set[str]:
    """The kinds of call (Kind values) that have a template in `program`."""
    prefix = f"{program}{_CALL}"
    # Every file there is a template, with or without the filter, which keeps stray files out.
    names = _environment().list_templates(extensions=["j2"])  # pragma: no mutate
    return {name.removeprefix(prefix).removesuffix(".j2") for name in names if name.startswith(prefix)}
