"""The --emit programs' templates: one per call kind in each program, the reset rule written once
and applied as ResetPolicy states it, and the templates shipped the way the package data ships them."""

import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from lstm_inspect.core.choices import Hook, ResetPolicy
from lstm_inspect.core.schedule import keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.core.workflow import Kind
from lstm_inspect.emit import engine
from lstm_inspect.emit.snippets import keras_snippet, torch_snippet

TEMPLATES = Path(engine.__file__).parent / "templates"


@pytest.mark.parametrize("program", engine.PROGRAMS)
def test_every_call_kind_has_a_template_in_each_program(program):
    kinds = {kind.value for kind in Kind}
    assert kinds - engine.call_templates(program) == set(), f"kinds without a {program} template"
    assert engine.call_templates(program) - kinds == set(), f"{program} templates of no kind"


def test_the_templates_are_what_the_package_data_ships():
    # pyproject ships templates/*.j2: a subfolder or another suffix would be missing from a wheel.
    assert all(path.is_file() and path.suffix == ".j2" for path in TEMPLATES.iterdir())
    for name in engine._environment().list_templates():
        engine._environment().get_template(name)  # every one parses


def test_the_every_k_condition_is_written_once():
    # The condition is "batch % k == 0"; a stream's wrap (batch %= its batch count) is another rule.
    written = [path.name for path in sorted(TEMPLATES.glob("*.j2"))
               for _ in re.finditer(r"batch % [^=\n]+ == 0", path.read_text(encoding="utf-8"))]
    assert written == ["macros.j2"]


def _reset_callback(text):
    """The emitted Keras program's ResetStates class, run on a stand-in for Keras: counts resets."""
    source = text[text.index("class ResetStates"):]
    source = source[:source.index("\n\n\nclass ShowStates")]
    resets = []
    model = types.SimpleNamespace(reset_states=lambda: resets.append("model"))
    layer = types.SimpleNamespace(reset_state=lambda: resets.append("layer"))
    scope = {"keras": types.SimpleNamespace(callbacks=types.SimpleNamespace(Callback=object)),
             "rnn_layers": lambda model: [layer]}
    exec(source, scope)  # the program this package wrote
    callback = scope["ResetStates"]()
    callback.model = model
    return callback, resets


def _resets_made(callback, resets, hook, batch):
    method = getattr(callback, hook, None)
    if method is None:
        return False
    before = len(resets)
    if hook == Hook.EPOCH_BEGIN:
        method(0)
    elif hook == Hook.TRAIN_BATCH_BEGIN:
        method(batch)
    else:
        method()
    return len(resets) > before


@pytest.mark.parametrize("keras", ["2", "3"])
@pytest.mark.parametrize(("reset", "workflow"), [
    ("epoch", None), ("every:3", None), ("every:1", None),
    ("every:3,validation", "fit(); evaluate(4)"), ("epoch,validation,predict", "fit(); predict(4)"),
    ("every:2,predict", "fit()"),
])
def test_the_keras_callback_resets_where_the_policy_says(keras, reset, workflow):
    spec = Spec(12, 3, 1, batch_size=4, stateful=True, shuffle=False, reset=reset, keras=keras,
                backend="tensorflow", workflow=workflow)
    callback, resets = _reset_callback(keras_snippet(spec, "test"))
    for hook in Hook:
        for batch in range(7):
            assert _resets_made(callback, resets, hook, batch) == spec.reset.resets_in(hook, batch), (hook, batch)
    assert set(resets) == {"model" if keras == "2" else "layer"}


def _printed(spec, snippet):
    done = subprocess.run([sys.executable, "-"], input=snippet, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("workflow", [None, "fit(epochs=2, shuffle=False, batch_size=4); predict(4)"],
                         ids=["shorthand", "workflow"])
def test_the_torch_program_resets_every_k_batches_as_the_schedule(workflow):
    # Seven batches an epoch: every:3 resets before batches 0, 3 and 6, and carries into the rest.
    spec = Spec(28, 3, 1, batch_size=4, stateful=True, shuffle=False, epochs=1 if workflow else 2,
                reset=ResetPolicy.parse("every:3"), workflow=workflow)
    expected = [f"{step.call.label}: zeros={step.zero_slots} carried={step.carried_slots}"
                for step in keras_steps(spec)]
    assert sum(line.startswith("train") and "zeros=4" in line for line in expected) == 6
    assert _printed(spec, torch_snippet(spec, "test")) == expected
