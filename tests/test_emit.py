"""The --emit snippets run (the Keras one on real Keras) and reproduce the tool's schedule."""

import ast
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lstm_inspect.cli import main
from lstm_inspect.cli.setup import command_line
from lstm_inspect.core.choices import Phase, ResetPolicy
from lstm_inspect.core.schedule import keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.mirror.inputs import build_rnn, padded_batch
from lstm_inspect.mirror.module import forward

SETUPS = {
    "stateless": Spec(10, 5, 1, batch_size=4, epochs=2, val_samples=6, predict_samples=3),
    "stateful, validation, predict": Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2,
                                          val_samples=4, predict_samples=4),
    "stateful, reset epoch": Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2,
                                  reset=ResetPolicy.parse("epoch")),
    "stateful, reset every:2": Spec(16, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2,
                                    reset=ResetPolicy.parse("every:2"), val_samples=4),
    "stateful, partial batch": Spec(10, 5, 1, batch_size=4, stateful=True, shuffle=False),
    "stateful 2-layer GRU, reset epoch": Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2,
                                              cell="gru", layers=2, reset=ResetPolicy.parse("epoch")),
    "stateful bidirectional SimpleRNN": Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False,
                                             cell="rnn", bidirectional=True, predict_samples=4),
    "stateless bidirectional, shuffle batch": Spec(10, 5, 1, batch_size=4, shuffle="batch", bidirectional=True),
    "workflow: hooks, twin, save and load, *_on_batch": Spec(
        8, 3, 1, batch_size=4, stateful=True, reset="epoch,validation,predict",
        workflow="fit(epochs=2, validation_samples=4, shuffle=False, batch_size=4); predict(4) * 2; "
                 "evaluate(8, batch_size=4); twin(batch_size=1); predict(2, batch_size=1); save_and_load(); "
                 "(train_on_batch(1), reset_state()) * 2; "
                 "test_on_batch(1); predict_on_batch(1)"),
    "workflow: validation_split, every:2, a raising predict": Spec(
        12, 3, 1, batch_size=4, stateful=True, reset="every:2", cell="gru",
        workflow="fit(epochs=2, validation_split=0.33, validation_freq=2, shuffle=False, batch_size=4); "
                 "predict(3)"),
    "workflow: a stateful twin of a stateless model, and a stateless twin of it": Spec(
        8, 3, 1, batch_size=4, workflow="fit(batch_size=4); twin(batch_size=1, stateful=True); predict(1) * 3; "
                                        "save_and_load(); predict(2, batch_size=1); twin(2); predict(2); "
                                        "twin(2, stateful=False); predict(4)"),
    "workflow: a stateless twin of a stateful model, then a stateful one": Spec(
        8, 3, 1, batch_size=4, stateful=True, cell="gru", reset="predict",
        workflow="fit(epochs=2, shuffle=False, batch_size=4); twin(batch_size=2, stateful=False); predict(4); "
                 "twin(batch_size=2, stateful=True); predict(4, batch_size=2) * 2"),
    "workflow: steps_per_epoch over arrays, a dataset, a generator; evaluate and predict steps": Spec(
        16, 3, 1, batch_size=4, stateful=True, reset="predict",
        workflow="fit(epochs=3, shuffle=False, batch_size=4, steps_per_epoch=3); "
                 'fit(epochs=2, batch_size=4, data="dataset", repeat=True, steps_per_epoch=3, validation_samples=4); '
                 'fit(epochs=2, batch_size=4, data="generator", steps_per_epoch=5); '
                 'fit(batch_size=4, data="dataset"); evaluate(16, batch_size=4, steps=2); predict(16, batch_size=4, '
                 "steps=3)"),
    "workflow: evaluate and predict given a generator, a dataset, a PyDataset; a partial batch raising": Spec(
        8, 3, 1, batch_size=4, stateful=True,
        workflow='fit(batch_size=4, shuffle=False); evaluate(10, batch_size=4, data="generator", drop_remainder=True, '
                 'steps=5); predict(8, batch_size=4, data="dataset", repeat=True, steps=3); '
                 'predict(12, batch_size=4, data="pydataset", steps=2); '
                 'predict(10, batch_size=4, data="pydataset", drop_remainder=True); predict(10, batch_size=4, '
                 'data="dataset")'),
    "workflow: stateless, round a PyDataset of no length and a generator dropping its partial batch": Spec(
        8, 3, 1, batch_size=4, workflow='predict(6, batch_size=4, data="pydataset", repeat=True, steps=3); '
                                        'evaluate(6, batch_size=4, data="dataset"); '
                                        'predict(10, batch_size=4, data="generator", drop_remainder=True, steps=3)'),
    "workflow: steps_per_epoch on a generator that ends with a partial batch": Spec(
        14, 3, 1, batch_size=4, stateful=True, cell="gru",
        workflow='fit(epochs=3, batch_size=4, data="generator", steps_per_epoch=3)'),
    "workflow: PyDatasets shuffled, with steps_per_epoch, endless, then a partial item": Spec(
        14, 3, 1, batch_size=4, stateful=True,
        workflow='fit(epochs=2, batch_size=4, data="pydataset", drop_remainder=True); '
                 'fit(epochs=3, batch_size=4, data="pydataset", shuffle=False, steps_per_epoch=2, '
                 'drop_remainder=True); '
                 'fit(epochs=2, batch_size=4, data="pydataset", repeat=True, drop_remainder=True, steps_per_epoch=5); '
                 'fit(batch_size=4, data="pydataset", shuffle=False)'),
    "workflow: tf-keras Sequences, restarted every epoch": Spec(
        16, 3, 1, batch_size=4, stateful=True, keras="2",
        workflow='fit(epochs=3, batch_size=4, data="pydataset", shuffle=False, steps_per_epoch=3); '
                 'fit(epochs=2, batch_size=4, data="pydataset", steps_per_epoch=2)'),
    "workflow: stateless, states carried by hand": Spec(
        8, 3, 1, batch_size=4, layers=2, workflow='predict(8, initial_state="previous") * 2; save_and_load(); '
                                                  'predict(8, initial_state="previous")'),
    "workflow: stateless, states handed back in other batches": Spec(
        8, 3, 1, batch_size=4, workflow='predict(8); predict(8, batch_size=2, initial_state="previous"); '
                                        'predict(8, batch_size=1, initial_state="previous")'),
    "stateful ConvLSTM2D, validation, predict, reset epoch": Spec(
        8, 3, 2, batch_size=4, stateful=True, shuffle=False, epochs=2, val_samples=4, predict_samples=8,
        cell="convlstm2d", frame=(5, 6), units=3, reset=ResetPolicy.parse("epoch")),
    "stateless ConvLSTM2D, padding same, a partial batch": Spec(
        10, 2, 1, batch_size=4, cell="convlstm2d", frame=(4, 4), kernel=2, padding="same", units=2,
        predict_samples=3),
    "workflow: stacked ConvLSTM2D (same), twin, save and load, *_on_batch, a raising predict": Spec(
        8, 2, 2, batch_size=4, stateful=True, cell="convlstm2d", frame=(4, 5), padding="same", layers=2, units=2,
        reset="predict", workflow="fit(epochs=2, shuffle=False, batch_size=4); predict(4) * 2; twin(batch_size=2); "
                                   "predict(4, batch_size=2); save_and_load(); train_on_batch(2); "
                                   "test_on_batch(2); predict(3, batch_size=2)"),
    "stateful ConvLSTM2D channels_first, reset every:2": Spec(
        12, 2, 2, batch_size=4, stateful=True, shuffle=False, epochs=2, predict_samples=4, cell="convlstm2d",
        frame=(4, 5), units=2, data_format="channels_first", reset=ResetPolicy.parse("every:2")),
    "workflow: stateless ConvLSTM2D channels_first, states handed back by hand in other batches": Spec(
        8, 2, 2, batch_size=4, cell="convlstm2d", frame=(4, 4), units=2, data_format="channels_first",
        workflow='predict(8, initial_state="previous") * 2; predict(8, batch_size=2, initial_state="previous")'),
    "padding: post, masked, stateful 2-layer GRU, validation, predict": Spec(
        12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2, val_samples=4, predict_samples=4,
        cell="gru", layers=2, lengths="2-5"),
    "padding: pre, masked, stateless bidirectional LSTM": Spec(10, 5, 2, batch_size=4, bidirectional=True,
                                                              lengths="1,3,5", pad="pre", predict_samples=3),
    "padding: post, unmasked, stateful SimpleRNN": Spec(8, 5, 1, batch_size=4, stateful=True, shuffle=False,
                                                       cell="rnn", lengths="2,4", mask=False),
    "go_backwards: stateful LSTM, pre padding, masked, reset epoch": Spec(
        12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2, go_backwards=True, lengths="2-5",
        pad="pre", reset=ResetPolicy.parse("epoch"), predict_samples=4),
    "go_backwards: stateless GRU, unpadded": Spec(10, 5, 1, batch_size=4, cell="gru", go_backwards=True,
                                                 val_samples=3),
    "workflow: padded, masked, stateful GRU: fit with validation, a twin, save and load, predict": Spec(
        8, 4, 2, batch_size=4, stateful=True, cell="gru", lengths="1-4",
        workflow="fit(epochs=2, validation_samples=4, shuffle=False, batch_size=4); twin(batch_size=2); "
                 "predict(4, batch_size=2); save_and_load(); predict(2, batch_size=2)"),
    "workflow: go_backwards, pre padding, states carried by hand on tf-keras": Spec(
        8, 4, 1, batch_size=4, go_backwards=True, lengths="2,4", pad="pre", keras="2",
        workflow='predict(8, initial_state="previous") * 2; save_and_load(); predict(8)'),
    "workflow: unmasked padding, go_backwards, stateful, a dataset": Spec(
        8, 4, 1, batch_size=4, stateful=True, go_backwards=True, lengths="1-4", mask=False,
        workflow='fit(epochs=2, batch_size=4, data="dataset", shuffle=False); predict(8, batch_size=4)'),
    "workflow: per-slot resets, a stateful bidirectional GRU, fit, a twin": Spec(
        8, 3, 1, batch_size=4, stateful=True, cell="gru", bidirectional=True,
        workflow="predict(4); reset_state(slots=[1, 3]); predict(4); fit(batch_size=4, shuffle=False); "
                 "reset_state(slots=[0]); reset_state(slots=[2]); train_on_batch(4); twin(batch_size=2); "
                 "predict(2, batch_size=2); reset_state(slots=[1]); predict(2, batch_size=2)"),
    "workflow: per-slot resets of a stateful ConvLSTM2D on tf-keras": Spec(
        8, 2, 1, batch_size=4, stateful=True, cell="convlstm2d", frame=(4, 4), units=2, keras="2",
        workflow="predict(4); reset_state(slots=[0, 2]); predict(4); reset_state(); predict(4)"),
    "tf-keras stateful ConvLSTM2D": Spec(
        8, 3, 2, batch_size=4, stateful=True, shuffle=False, val_samples=4, predict_samples=4, cell="convlstm2d",
        frame=(5, 5), units=2, keras="2"),
}


def expected_lines(spec):
    return [f"{step.call.label}: zeros={step.zero_slots} carried={step.carried_slots}"
            for step in keras_steps(spec) if not step.raises]


def run_snippet(spec, language):
    emitted = CliRunner().invoke(main, [*shlex.split(command_line(spec)), "--emit", language])
    assert emitted.exit_code == 0
    compile(emitted.stdout, "snippet", "exec")
    return subprocess.run([sys.executable, "-"], input=emitted.stdout, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("language", ["torch", pytest.param("keras", marks=pytest.mark.keras)])
@pytest.mark.parametrize("name", list(SETUPS))
def test_snippet_reproduces_the_schedule(name, language):
    spec = SETUPS[name]
    done = run_snippet(spec, language)
    raising = [step for step in keras_steps(spec) if step.raises]
    # Keras's on_*_batch_begin still runs for the call that then raises: its line says nothing.
    lines = [line for line in done.stdout.splitlines() if line.split(":")[0] not in {s.call.label for s in raising}]
    assert lines == expected_lines(spec), done.stderr
    assert (done.returncode != 0) == bool(raising), done.stderr
    if raising:
        expected = re.search(r"Expected batch size: \d+", raising[-1].error.message).group()
        assert "ValueError" in done.stderr and expected in done.stderr


def test_keras_snippet_resets_through_the_layers_not_the_model():
    text = CliRunner().invoke(main, ["--shape", "12,5,1", "--batch", "4", "--stateful", "--reset", "epoch",
                                     "--emit", "keras"]).stdout
    assert "rnn.reset_state()" in text and "model.reset_state" not in text
    assert "batch_shape=(B, T, F)" in text and "shuffle=False" in text and "use_cudnn=False" in text


def test_torch_snippet_detaches_and_zeroes():
    text = CliRunner().invoke(main, ["--shape", "12,5,1", "--batch", "4", "--stateful", "--reset", "every:3",
                                     "--emit", "torch"]).stdout
    assert "tuple(s.detach() for s in final)" in text and "if batch % 3 == 0" in text


def test_emit_conflicts_with_running_options():
    result = CliRunner().invoke(main, ["--shape", "12,5,1", "--emit", "torch", "--format", "json"])
    assert result.exit_code == 2 and "--emit cannot be combined with --format" in result.stderr


@pytest.mark.keras
@pytest.mark.parametrize("spec", [
    Spec(9, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2, predict_samples=5, backend="tensorflow"),
    Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2, val_samples=4, backend="jax",
         reset=ResetPolicy.parse("epoch")),
], ids=["tensorflow, lone samples broadcast", "jax, nothing carried"])
def test_keras_snippet_reproduces_the_schedule_on_its_backend(spec):
    done = run_snippet(spec, "keras")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected_lines(spec)


def torch_program_epochs(workflow, *options):
    """The batches of each epoch of the torch program's first fit: its own helpers, run on its own line."""
    program = CliRunner().invoke(main, ["--shape", "16,3,1", "--batch", "4", "--stateful", *options, "--calls",
                                        workflow, "--emit", "torch"]).stdout
    helpers = [node for node in ast.parse(program).body
               if isinstance(node, ast.FunctionDef) and node.name in {"batches_of", "shuffled", "epochs_of"}]
    namespace = {"torch": torch}
    exec(compile(ast.Module(helpers, []), "program", "exec"), namespace)
    exec(next(line for line in program.splitlines() if line.startswith("epochs = epochs_of(")), namespace)
    return [[batch.tolist() for batch in batches] for batches in namespace["epochs"]]


CHUNKS = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]]


def test_the_torch_program_orders_a_pydatasets_items_as_fit_does():
    torch.manual_seed(0)
    shuffled = torch_program_epochs('fit(epochs=4, batch_size=4, data="pydataset")')
    assert len(shuffled) == 4 and all(sorted(epoch) == CHUNKS for epoch in shuffled)  # each item whole
    assert any(epoch != CHUNKS for epoch in shuffled)
    assert torch_program_epochs('fit(epochs=2, batch_size=4, data="pydataset", shuffle=False)') == [CHUNKS] * 2
    steps = 'fit(epochs=3, batch_size=4, data="pydataset", shuffle=False, steps_per_epoch=3)'
    assert torch_program_epochs(steps) == [CHUNKS[:3], CHUNKS[3:], CHUNKS[:3]]
    assert torch_program_epochs(steps, "--keras", "2") == [CHUNKS[:3]] * 3  # tf-keras restarts its Sequence


def _program_helpers(spec, *names):
    """The torch program's helpers `names`, run on their own lines with `rnn` (the spec's module)."""
    program = CliRunner().invoke(main, [*shlex.split(command_line(spec)), "--emit", "torch"]).stdout
    helpers = [node for node in ast.parse(program).body if isinstance(node, ast.FunctionDef) and node.name in names]
    assert {node.name for node in helpers} == set(names)
    namespace = {"torch": torch, "nn": torch.nn, "T": spec.timesteps}
    exec(compile(ast.Module(helpers, []), "program", "exec"), namespace)
    return namespace


@pytest.mark.parametrize(("cell", "pad", "go_backwards", "bidirectional"), [
    ("lstm", "post", False, False), ("gru", "pre", False, True), ("lstm", "pre", True, False),
    ("rnn", "post", True, False), ("lstm", "post", False, True)])
def test_the_torch_programs_masked_run_ends_in_the_mirrors_states(cell, pad, go_backwards, bidirectional):
    spec = Spec(6, 5, 2, units=3, cell=cell, lengths="1-5", pad=pad, go_backwards=go_backwards,
                bidirectional=bidirectional, stateful=True, batch_size=6)
    run = _program_helpers(spec, "run")["run"]
    module = build_rnn(spec, torch.device("cpu"))
    x, mask = padded_batch(spec, Phase.TRAIN, np.arange(6), torch.device("cpu"))
    initial = tuple(torch.rand(spec.directions, 6, 3) for _ in spec.cell.state_names)
    with torch.no_grad():
        output, final = run(module, x, initial if len(initial) == 2 else initial[0])
        expected = forward(module, x, initial, mask, go_backwards)[1]
    final = final if isinstance(final, tuple) else (final,)
    for got, want in zip(final, expected, strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    top = expected[0][-2:].permute(1, 0, 2).flatten(1) if bidirectional else expected[0][-1]
    assert torch.allclose(output, top, atol=1e-6)  # h_n, not out[:, -1]


@pytest.mark.parametrize("pad", ["post", "pre"])
def test_the_programs_pad_after_or_before_each_rows_valid_steps(pad):
    spec = Spec(40, 6, 2, lengths="2-5", pad=pad)
    padded = _program_helpers(spec, "padded")["padded"]
    kept = (padded(torch.rand(40, 6, 2) + 0.5) != 0).any(2)
    lengths = kept.sum(1)
    assert set(lengths.tolist()) == {2, 3, 4, 5}
    steps = torch.arange(6)[None, :]
    assert torch.equal(kept, steps < lengths[:, None] if pad == "post" else steps >= 6 - lengths[:, None])


def test_emit_refuses_padded_frames_and_stacked_go_backwards_in_one_line():
    from usage import usage_error

    assert "packs no frames" in usage_error("--shape", "8,3,4,4,1", "--cell", "convlstm2d", "--padding", "same",
                                            "--lengths", "2", "--emit", "torch")
    assert "stacked --go-backwards" in usage_error("--shape", "8,5,1", "--go-backwards", "--layers", "2",
                                                   "--emit", "keras")


@pytest.mark.parametrize("mask", [True, False])
def test_the_keras_program_masks_pads_every_phase_and_goes_backwards_as_asked(mask):
    words = ["--shape", "8,5,2", "--batch", "4", "--lengths", "2-5", "--val-samples", "4", "--predict-samples", "4",
             "--go-backwards", *([] if mask else ["--no-mask"]), "--emit", "keras"]
    program = CliRunner().invoke(main, words).stdout
    assert ("keras.layers.Masking(mask_value=0.0)(inputs)" in program) == mask
    assert "go_backwards=True" in program
    assert "x = padded(x)" in program and "x_val, y_val = padded(" in program and "model.predict(padded(" in program
