"""--calls: the workflow parser, the schedule it gives, and the command line around it.

The same workflows against real Keras are in test_workflows_against_keras.py.
"""

import dataclasses
import json
import shlex
import tracemalloc

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_inspect.api import inspect
from lstm_inspect.cli import main
from lstm_inspect.cli.setup import command_line
from lstm_inspect.core.choices import Shuffle
from lstm_inspect.core.errors import SpecError
from lstm_inspect.core.facts import KerasStateError
from lstm_inspect.core.order import iter_calls
from lstm_inspect.core.schedule import Start, keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.core.workflow import Kind, Op, Repeat, Source, ops, parse, text
from lstm_inspect.explain.verdict import warnings_for
from lstm_inspect.mirror.run import run_mirror


def steps(workflow, **settings):
    spec = Spec(**{"samples": 8, "timesteps": 3, "features": 1, "batch_size": 4, "stateful": True,
                   "backend": "torch", **settings}, workflow=workflow)
    return list(keras_steps(spec))


def starts(workflow, **settings):
    """Per step: its label and how its slots start ("zeros", or the call it carries from)."""
    return [(step.call.label, "raises" if step.raises else step.source.label if step.source else "zeros")
            for step in steps(workflow, **settings)]


# ---- the parser -------------------------------------------------------------------------------


@pytest.mark.parametrize("written, expected", [
    ("predict(1) * 3", (Repeat((Op(Kind.PREDICT, 1, batch_size=32),), 3),)),
    ("3 * predict(1)", (Repeat((Op(Kind.PREDICT, 1, batch_size=32),), 3),)),
    ("model.fit(epochs=2, shuffle=False); model.reset_states()",
     (Op(Kind.FIT, epochs=2, shuffle=Shuffle.FALSE, batch_size=32), Op(Kind.RESET_STATE))),
    ("twin(1); twin(batch_size=2)", (Op(Kind.TWIN, batch_size=1), Op(Kind.TWIN, batch_size=2))),
    ('fit(steps_per_epoch=3, data="dataset", repeat=True, drop_remainder=True); evaluate(8, steps=2)',
     (Op(Kind.FIT, batch_size=32, steps_per_epoch=3, data=Source.DATASET, repeat=True, drop_remainder=True),
      Op(Kind.EVALUATE, 8, batch_size=32, steps=2))),
    ("twin(1, stateful=True); twin(batch_size=2, stateful=False)",
     (Op(Kind.TWIN, batch_size=1, stateful=True), Op(Kind.TWIN, batch_size=2, stateful=False))),
    ('(fit(shuffle="batch"), (predict(2), reset_state()) * 2) * 3',
     (Repeat((Op(Kind.FIT, shuffle=Shuffle.BATCH, batch_size=32),
              Repeat((Op(Kind.PREDICT, 2, batch_size=32), Op(Kind.RESET_STATE)), 2)), 3),)),
    ("fit(validation_split=0.25, validation_freq=2, epochs=4, initial_epoch=1)",
     (Op(Kind.FIT, epochs=4, validation_split=0.25, validation_freq=2, initial_epoch=1, batch_size=32),)),
    ("evaluate(40); train_on_batch(40); evaluate(40, batch_size=32)",
     (Op(Kind.EVALUATE, 40, batch_size=32), Op(Kind.TRAIN_ON_BATCH, 40), Op(Kind.EVALUATE, 40, batch_size=32))),
    ('predict(4, initial_state="previous", batch_size=2)',
     (Op(Kind.PREDICT, 4, batch_size=2, initial_state="previous"),)),
])
def test_the_accepted_forms_parse_and_print_back(written, expected):
    assert parse(written) == expected
    assert parse(text(expected)) == expected


def test_fit_evaluate_and_predict_default_to_kerass_batch_size_of_32_whatever_the_model():
    # Keras's own example: a stateful model built with Input(batch_shape=(1, 10, 3)), then
    # model.fit(X, y) on 100 samples, raises "Expected batch size: 1 - Received batch size: 32".
    found = steps("fit(shuffle=False)", samples=100, batch_size=1)
    assert len(found) == 1 and found[0].raises and len(found[0].call.samples) == 32
    assert "Expected batch size: 1" in found[0].error.message
    assert "Received batch size: 32" in found[0].error.message
    stateless = steps("fit(shuffle=False); evaluate(40); predict(70)", samples=100, batch_size=1, stateful=False)
    assert [len(step.call.samples) for step in stateless] == [32, 32, 32, 4, 32, 8, 32, 32, 6]
    assert text(parse("fit(); predict(4, batch_size=32)")) == "fit(); predict(4)"  # the default, left out


def unset_batch_sizes(workflow):
    """The workflow (text, or parsed) with every batch_size but a twin's left unset (None: the
    model's), as a workflow built in Python may leave it."""
    return tuple(Repeat(unset_batch_sizes(item.body), item.times) if isinstance(item, Repeat)
                 else item if item.kind == Kind.TWIN else dataclasses.replace(item, batch_size=None)
                 for item in (parse(workflow) if isinstance(workflow, str) else workflow))


@pytest.mark.parametrize("written, says", [
    ("foo(1)", "unknown call foo()"),
    ("__import__('os').system('x')", "only plain calls"),
    ("os.system('x')", "only plain calls"),
    ("predict(1) * 10**12", "a repeat is a call or a tuple of calls times a whole number"),
    ("predict(1) * 1000000000000", "a repeat count must be at most 100,000,000"),
    ("predict(1) * 0", "a repeat count must be at least 1"),
    ("predict(-1)", "predict's sample count must be at least 1"),
    ("predict(0)", "predict's sample count must be at least 1"),
    ("predict(1.5)", "predict's sample count must be a whole number"),
    ("predict(True)", "predict's sample count must be a whole number"),
    ("predict()", "predict takes one sample count"),
    ("predict(predict(1))", "predict's sample count must be a whole number"),
    ("predict(1);;", "invalid syntax"),
    ("", "is empty"),
    ("predict(1), predict(2)", "a tuple of calls needs a repeat count"),
    ("x = predict(1)", "only calls are understood"),
    ("import os", "only calls are understood"),
    ("fit(epochs='2')", "epochs must be a whole number"),
    ("fit(epochs=2, epochs=3)", "epochs given twice"),
    ("fit(nonsense=1)", "fit takes no keyword nonsense"),
    ("predict(2, **kw)", "predict takes no keyword **"),
    ("fit(shuffle=1)", "shuffle is True, False or \"batch\""),
    ("fit(validation_split=1.0)", "validation_split is a number from 0 up to"),
    ("fit(validation_split=0.2, validation_samples=4)", "choose one"),
    ("fit(epochs=2, initial_epoch=2)", "initial_epoch must be below epochs"),
    ("twin()", "twin needs batch_size=b"),
    ("twin(stateful=True)", "twin needs batch_size=b"),
    ('fit(data="generator")', "a PyDataset of no length) needs steps_per_epoch=K"),
    ('fit(data="dataset", repeat=True)', "a PyDataset of no length) needs steps_per_epoch=K"),
    ('fit(data="pydataset", repeat=True)', "a PyDataset of no length) needs steps_per_epoch=K"),
    ("fit(repeat=True)", "repeat is the dataset's .repeat(), or a PyDataset of no length: it needs data=\"dataset\""),
    ('fit(data="generator", repeat=True, steps_per_epoch=2)', 'it needs data="dataset" or data="pydataset"'),
    ("fit(drop_remainder=True)", 'drop_remainder is the batching of a stream: it needs data="dataset", "generator"'),
    ('fit(data="frame")', 'data is "arrays", "dataset", "generator" or "pydataset"'),
    ('fit(data="pydataset", validation_split=0.5)', "`validation_split` is only supported for Tensors or NumPy"),
    ('fit(data="dataset", validation_split=0.5)', "`validation_split` is only supported for Tensors or NumPy"),
    ("fit(steps_per_epoch=0)", "steps_per_epoch must be at least 1"),
    ("predict(4, steps=0)", "steps must be at least 1"),
    ("predict_on_batch(4, steps=1)", "predict_on_batch takes no keyword steps"),
    ('predict(4, steps=1, initial_state="previous")', "steps= runs part of the samples"),
    ("twin(1, stateful=1)", "stateful is True or False"),
    ("twin(1, batch_size=2)", "batch_size given twice"),
    ("predict(1, stateful=True)", "predict takes no keyword stateful"),
    ("reset_state(1)", "reset_state takes no positional argument"),
    ("predict(2, initial_state='mine')", 'initial_state takes "previous" (the states the previous predict returned) '
                                         'or "zeros"'),
    ("predict(1) * predict(1)", "a repeat is a call or a tuple of calls times a whole number"),
    ("lambda: predict(1)", "not a call"),
])
def test_bad_workflows_are_one_line_usage_errors_and_nothing_runs(written, says):
    with pytest.raises(SpecError) as error:
        parse(written)
    assert error.value.field == "workflow" and says in str(error.value)
    result = CliRunner().invoke(main, ["--shape", "8,3,1", "--batch", "4", "--calls", written])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and says in result.output and "--calls" in result.output
    assert "Traceback" not in result.output and "Steps of" not in result.output


def test_hand_carried_predicts_are_alike_when_keras_batches_them_alike():
    # Keras's batch_size=32 and batch_size=2 make one batch of 2 samples alike.
    alike = Spec(9, 2, 1, batch_size=2, backend="torch",
                 workflow='predict(2, batch_size=2); predict(2, initial_state="previous") * 2')
    assert [len(step.call.samples) for step in keras_steps(alike)] == [2, 2, 2]
    with pytest.raises(SpecError, match=r"predict\(4, initial_state='previous'\) takes back the states "
                                        r"predict\(4, batch_size=2\) returned in batches of 2: its batches of 4 "
                                        r"would each start from two of them, which lstm-inspect does not follow yet "
                                        r"\(Keras runs it\); use a batch_size that divides 2"):
        Spec(9, 2, 1, batch_size=2, backend="torch", workflow='predict(4, batch_size=2); '
                                                                'predict(4, initial_state="previous")')


def test_states_handed_back_to_a_predict_batched_otherwise_start_each_sample_from_its_own():
    # One batch of 8, then batches of 4, 2 and 1 (each within a batch of the predict before):
    # sample k of each predict starts from the states the one before returned for its sample k.
    handed = Spec(8, 2, 1, batch_size=4, backend="torch", workflow=(
        'predict(8); predict(8, batch_size=4, initial_state="previous"); reset_state(); '
        'predict(8, batch_size=2, initial_state="previous"); predict(8, batch_size=1, initial_state="previous")'))
    steps = list(keras_steps(handed))
    assert [len(step.call.samples) for step in steps] == [8, 4, 4, 2, 2, 2, 2] + [1] * 8
    assert [step.start_labels() for step in steps[1:3]] == [[f"predict:{k}" for k in range(4)],
                                                            [f"predict:{k}" for k in range(4, 8)]]
    assert [step.source.label for step in steps[3:7]] == ["predict#2 b0", "predict#2 b0", "predict#2 b1",
                                                          "predict#2 b1"]
    assert [step.source_slot.tolist() for step in steps[3:7]] == [[0, 1], [2, 3], [0, 1], [2, 3]]
    assert [(step.source.label, step.source_slot.tolist()) for step in steps[7:]] == [
        (f"predict#3 b{k // 2}", [k % 2]) for k in range(8)]
    assert all(kind == "continued" for step in steps[1:] for kind in step.start_kinds())
    # A repeat hands its last predict's states to its first: batches of 2 to one of 8, refused.
    with pytest.raises(SpecError, match="returned in batches of 2: its batches of 8"):
        Spec(8, 2, 1, batch_size=4, workflow='(predict(8, initial_state="previous"), '
                                             'predict(8, batch_size=2, initial_state="previous")) * 2')
    Spec(8, 2, 1, batch_size=4, workflow='(predict(8, initial_state="previous"), '
                                         'predict(8, batch_size=2, initial_state="previous")) * 1')
    # A predict that takes nothing back may run other samples in other batches.
    Spec(8, 2, 1, batch_size=4, workflow='predict(3, batch_size=1); predict(8); predict(8, initial_state="previous")')


@pytest.mark.parametrize("arguments, says", [
    (["--epochs", "2"], "--calls cannot be combined with --epochs"),
    (["--predict-samples", "4"], "--calls cannot be combined with --predict-samples"),
    (["--val-samples", "4"], "--calls cannot be combined with --val-samples"),
])
def test_the_shorthand_and_a_workflow_do_not_mix(arguments, says):
    result = CliRunner().invoke(main, ["--shape", "8,3,1", "--calls", "predict(4)", *arguments])
    assert result.exit_code == 2 and says in result.output
    with pytest.raises(SpecError, match="writes the whole workflow"):
        Spec(8, 3, 1, epochs=2, workflow="predict(4)")


def test_spec_level_refusals_name_the_call():
    with pytest.raises(SpecError, match="a workflow of predict calls .*, not fit"):
        Spec(8, 3, 1, stateful=True, workflow='fit(batch_size=4); predict(4, initial_state="zeros")')
    with pytest.raises(SpecError, match="the predicts carried by hand must run as many samples"):
        Spec(8, 3, 1, workflow='predict(4); predict(2, initial_state="previous")')
    with pytest.raises(SpecError, match="a workflow of predict calls .*, not fit, twin"):
        Spec(8, 3, 1, workflow='predict(4, initial_state="previous"); fit(); twin(batch_size=2)')


@pytest.mark.parametrize(("samples", "workflow", "left"), [
    (3, "predict(3); fit(validation_split=0.9); predict(3)", "no training"),
    # Keras floors a float product: 5 * (1 - 0.8) is 0.9999999999999998, so no training sample is left.
    (5, "predict(5); fit(validation_split=0.8); predict(5)", "no training"),
])
def test_a_validation_split_that_leaves_no_sample_raises_where_that_fit_starts(samples, workflow, left):
    # Keras runs the calls before it, then raises ValueError as the fit starts (train_validation_split).
    spec = Spec(samples, 3, 1, batch_size=samples, stateful=True, workflow=workflow)
    found = list(keras_steps(spec))
    assert [step.raises for step in found] == [False, True]
    error = found[1].error
    assert error.step == 1 and error.type == "ValueError" and error.when.startswith("as fit starts")
    assert error.message.startswith(f"Training data contains {samples} samples, which is not sufficient to split")
    assert error.why == f"{spec.plan[1]} leaves {left} sample of the {samples}"
    records = []
    with pytest.raises(KerasStateError, match=f"Training data contains {samples} samples") as raised:
        records.extend(run_mirror(spec))
    assert raised.value.keras_type == "ValueError" and len(records) == 1
    result = CliRunner().invoke(main, ["--shape", f"{samples},3,1", "--batch", str(samples), "--stateful",
                                       "--calls", workflow, "--format", "json", "--no-evidence"])
    assert result.exit_code == 3, result.output
    report = json.loads(result.stdout)
    assert report["error"]["step"] == 1 and "validation_split" in report["error"]["fix"]


# ---- the schedule -----------------------------------------------------------------------------


def test_the_shorthand_is_the_workflow_it_stands_for():
    shorthand = Spec(10, 3, 1, batch_size=4, stateful=True, epochs=2, val_samples=4, predict_samples=5,
                     backend="torch")
    written = Spec(10, 3, 1, batch_size=4, stateful=True, backend="torch",
                   workflow="fit(epochs=2, validation_samples=4, batch_size=4); predict(5, batch_size=4)")
    assert text(shorthand.plan) == text(written.plan) == \
        "fit(batch_size=4, epochs=2, validation_samples=4); predict(5, batch_size=4)"
    old, new = list(keras_steps(shorthand)), list(keras_steps(written))
    assert [(s.call.label, s.start_labels(), s.raises) for s in old] == \
        [(s.call.label, s.start_labels(), s.raises) for s in new]


def test_a_serving_loop_carries_each_request_into_the_next():
    assert starts("predict(1) * 4", batch_size=1) == [
        ("predict b0", "zeros"), ("predict#2 b0", "predict b0"), ("predict#3 b0", "predict#2 b0"),
        ("predict#4 b0", "predict#3 b0")]
    assert starts("predict(1) * 3", batch_size=1, reset="predict") == [
        ("predict b0", "zeros"), ("predict#2 b0", "zeros"), ("predict#3 b0", "zeros")]
    assert starts("(predict(1), reset_state()) * 2", batch_size=1) == [
        ("predict b0", "zeros"), ("predict#2 b0", "zeros")]


def test_hooks_reset_before_validation_evaluate_and_predict_only():
    found = starts("fit(epochs=2, validation_samples=4, shuffle=False, batch_size=4); evaluate(4); "
                   "test_on_batch(4); predict(4); predict_on_batch(4)", reset="validation,predict")
    assert found == [
        ("train e0 b0", "zeros"), ("train e0 b1", "train e0 b0"),
        ("validation e0 b0", "zeros"),  # on_test_begin
        ("train e1 b0", "validation e0 b0"), ("train e1 b1", "train e1 b0"),
        ("validation e1 b0", "zeros"),
        ("evaluate b0", "zeros"),  # on_test_begin again
        ("test_on_batch b0", "evaluate b0"),  # the *_on_batch calls run no callbacks
        ("predict b0", "zeros"),  # on_predict_begin
        ("predict_on_batch b0", "predict b0")]


def test_a_twin_and_a_loaded_model_start_from_zeros_and_raise_for_another_batch_size():
    assert starts("predict(4); twin(batch_size=1); predict(2, batch_size=1); save_and_load(); predict(1)") == [
        ("predict b0", "zeros"), ("twin predict b0", "zeros"), ("twin predict b1", "twin predict b0"),
        ("loaded predict b0", "zeros")]
    raising = steps("predict(4); predict(4, batch_size=1)")
    assert [step.raises for step in raising] == [False, True]
    assert raising[1].error is not None and "Expected batch size: 4" in raising[1].error.message
    assert "- Received batch size: 1" in raising[1].error.message


def test_validation_split_takes_the_last_samples_before_any_shuffle():
    found = steps("fit(validation_split=0.25, shuffle=False, batch_size=3)", samples=12, batch_size=3)
    assert [(step.call.label, step.call.stream, step.call.samples.tolist()) for step in found] == [
        ("train e0 b0", "train", [0, 1, 2]), ("train e0 b1", "train", [3, 4, 5]),
        ("train e0 b2", "train", [6, 7, 8]), ("validation e0 b0", "train", [9, 10, 11])]
    # Sample 9 follows sample 6 in the same data: the validation rows continue the training rows.
    assert list(found[3].start_kinds()) == [Start.CONTINUED] * 3
    partial = steps("fit(validation_split=0.2, batch_size=4)", samples=10, batch_size=4, shuffle=False)
    assert [step.raises for step in partial] == [False, False, True]
    assert partial[2].call.label == "validation e0 b0" and len(partial[2].call.samples) == 2


def test_validation_freq_and_initial_epoch_pick_the_epochs_keras_runs():
    labels = [step.call.label for step in steps("fit(epochs=4, initial_epoch=1, validation_freq=2, "
                                                "validation_samples=4, batch_size=4)")]
    assert labels == ["train e1 b0", "train e1 b1", "validation e1 b0", "train e2 b0", "train e2 b1",
                      "train e3 b0", "train e3 b1", "validation e3 b0"]


@settings(max_examples=40, deadline=None)
@given(batches=st.integers(1, 5), batch_size=st.integers(1, 4), epochs=st.integers(1, 3),
       reset=st.sampled_from(["never", "every:2"]))
def test_a_train_on_batch_loop_is_fit_without_shuffle(batches, batch_size, epochs, reset):
    samples = batches * batch_size
    settings_ = {"samples": samples, "batch_size": batch_size, "reset": reset}
    fitted = steps(f"fit(epochs={epochs}, shuffle=False, batch_size={batch_size})", **settings_)
    looped = steps(f"train_on_batch({batch_size}) * {batches * epochs}", **{**settings_, "reset": "never"})
    assert [step.call.samples.tolist() for step in fitted] == [step.call.samples.tolist() for step in looped]
    if reset == "never":  # no callback runs in a train_on_batch loop
        assert [step.start_labels() for step in fitted] == [step.start_labels() for step in looped]
        assert [list(step.start_kinds()) for step in fitted] == [list(step.start_kinds()) for step in looped]


def test_carried_states_by_hand_match_the_stateful_carry():
    by_hand = steps('predict(4, initial_state="previous") * 3', stateful=False)
    stateful = steps("predict(4) * 3")
    assert [(s.start_labels(), list(s.start_kinds())) for s in by_hand] == \
        [(s.start_labels(), list(s.start_kinds())) for s in stateful]
    # Sample k starts from sample k of the previous predict, whatever the batches inside it.
    split = steps('predict(8, batch_size=4, initial_state="previous") * 2', stateful=False)
    assert [s.start_labels() for s in split[2:]] == [["predict:0", "predict:1", "predict:2", "predict:3"],
                                                     ["predict:4", "predict:5", "predict:6", "predict:7"]]
    assert all(kind == Start.CONTINUED for step in split[2:] for kind in step.start_kinds())


workflow_parts = st.sampled_from([
    "fit(epochs=2)", "fit(validation_samples=3)", "fit(validation_split=0.25, validation_freq=2, epochs=3)",
    "evaluate(5)", "predict(3)", "predict(2, batch_size=1)", "train_on_batch(4)", "test_on_batch(4)",
    "predict_on_batch(4)", "reset_state()", "save_and_load()", "twin(batch_size=2)", "twin(batch_size=4)"])


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(workflow_parts, min_size=1, max_size=4), times=st.integers(1, 4), stateful=st.booleans())
def test_the_call_count_needs_no_unrolling_and_matches_the_calls_made(parts, times, stateful):
    workflow = f"({', '.join(parts)},) * {times}" if len(parts) > 1 else f"{parts[0]} * {times}"
    spec = Spec(8, 3, 1, batch_size=4, stateful=stateful, backend="torch", workflow=workflow)
    assert spec.calls == sum(1 for _ in iter_calls(spec))
    assert spec.largest_batch == max((len(call.samples) for call in iter_calls(spec)), default=0)
    assert parse(text(spec.workflow)) == spec.workflow


def test_a_twin_inside_a_repeat_counts_its_batch_size_from_the_second_time_on():
    # predict(4) with the model's batch size runs one batch on the model built for 4, then two on
    # each twin built for 2; with Keras's default (32) one batch on each.
    workflow = "(predict(4), twin(batch_size=2)) * 3"
    spec = Spec(8, 3, 1, batch_size=4, backend="torch", workflow=unset_batch_sizes(workflow))
    assert spec.calls == 1 + 2 + 2 == sum(1 for _ in iter_calls(spec))
    assert Spec(8, 3, 1, batch_size=4, backend="torch", workflow=workflow).calls == 3


def test_ten_thousand_calls_stream_in_flat_memory():
    def peak(count):
        spec = Spec(1000, 20, 1, batch_size=1, stateful=True, shuffle=False, backend="torch",
                    workflow=f"predict(1) * {count}")
        tracemalloc.start()
        inspection = inspect(spec, dry_run=True)
        for _ in inspection:
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert inspection.report.summary.steps == count
        return top

    assert peak(10_000) < 2 * peak(1_000) + 200_000
    # A repeat is never unrolled ahead: its calls come one at a time.
    first = ops(parse("predict(1) * 100000000"))
    assert next(first) == Op(Kind.PREDICT, 1, batch_size=32)


# ---- the command line -------------------------------------------------------------------------


def run(*arguments, batch="4"):
    return CliRunner().invoke(main, ["--shape", "8,3,1", "--batch", batch, "--backend", "torch", *arguments])


def test_every_output_names_the_calls():
    workflow = "predict(4) * 2; twin(batch_size=1); predict(2, batch_size=1)"
    table = run("--stateful", "--calls", workflow, "--no-evidence")
    assert table.exit_code == 0, table.output
    for label in ("predict b0", "predict#2 b0", "twin predict b0", "twin predict b1"):
        assert label in table.stdout
    assert "twin predict b0 starts from zeros (a twin is a new model" in " ".join(table.stdout.split())
    report = json.loads(run("--stateful", "--calls", workflow, "--format", "json", "--no-evidence").stdout)
    assert report["spec"]["workflow"] == report["spec"]["calls"] == workflow
    assert [step["call"] for step in report["steps"]] == ["predict", "predict#2", "twin predict", "twin predict"]
    csv_rows = run("--stateful", "--calls", workflow, "--format", "csv", "--no-evidence").stdout.splitlines()
    assert csv_rows[0].endswith(",call") and csv_rows[-1].endswith(",twin predict")
    markdown = run("--stateful", "--calls", workflow, "--format", "markdown", "--no-evidence").stdout
    assert "twin predict b1" in markdown and f"--calls '{workflow}'" in markdown
    timeline = run("--stateful", "--calls", workflow, "--view", "timeline", "--no-evidence")
    assert timeline.exit_code == 0 and "slot 3" in timeline.stdout


def test_a_serving_loop_is_warned_about_and_counted():
    result = run("--stateful", "--calls", "predict(1) * 100", "--no-evidence", "--expect-resets", "1", batch="1")
    assert result.exit_code == 0, result.output
    assert "each predict call carries the state the predict before it left (99 times)" in result.stderr
    strict = run("--stateful", "--calls", "predict(1) * 3", "--dry-run", "--strict", batch="1")
    assert strict.exit_code == 1
    reset = run("--stateful", "--calls", "predict(1) * 3", "--reset", "predict", "--dry-run",
                "--expect-resets", "3", "--strict", batch="1")
    assert reset.exit_code == 0, reset.output


def test_a_call_keras_refuses_exits_3_with_a_fix_that_keeps_the_training():
    result = run("--stateful", "--calls", "fit(shuffle=False, batch_size=4); predict(1)", "--no-evidence")
    assert result.exit_code == 3
    flat = " ".join(result.stdout.split())
    assert "Expected batch size: 4" in flat and "twin(batch_size=1)" in flat


def test_the_command_line_round_trips_a_workflow():
    spec = Spec(8, 3, 1, batch_size=4, stateful=True, backend="torch", reset="epoch,predict",
                workflow="(fit(shuffle=False), reset_state()) * 2; predict(4)")
    again = CliRunner().invoke(main, [*shlex.split(command_line(spec)), "--dry-run", "--format", "json"])
    assert json.loads(again.stdout)["spec"] == spec.to_json()


def test_a_dry_run_of_a_workflow_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; from lstm_inspect.cli import main; "
            "sys.argv = ['lstm-inspect', '--shape', '8,3,1', '--batch', '1', '--stateful', '--calls', "
            "'predict(1) * 50; twin(batch_size=2); predict(4)', '--dry-run', '--format', 'json']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_jax_says_that_only_eager_calls_carry():
    result = CliRunner().invoke(main, ["--shape", "8,3,1", "--batch", "1", "--stateful", "--backend", "jax",
                                       "--calls", "predict(1) * 3", "--dry-run"])
    flat = " ".join(result.output.split())
    assert "Only a direct call, model(x), runs eagerly and carries the state on jax" in flat
    assert "predict#2 b0" in result.stdout


CUDNN = ('Keras 3 (torch) cannot train a stateful {cell} with use_cudnn="auto" (its default): fit and '
         "train_on_batch raise RuntimeError in the first batch's backward (a variable needed for gradient computation "
         "has been modified by an inplace operation), on the CPU too, while predict runs; build it with "
         "{cell}(..., stateful=True, use_cudnn=False), as this tool's models are")


@pytest.mark.parametrize("arguments, said", [
    (["--stateful", "--calls", "fit(batch_size=4)"], CUDNN.format(cell="LSTM")),
    (["--stateful", "--cell", "gru", "--calls", "train_on_batch(4)"], CUDNN.format(cell="GRU")),
    (["--stateful", "--epochs", "2"], CUDNN.format(cell="LSTM")),  # the shorthand fits
    (["--stateful", "--calls", "fit(batch_size=4); save_and_load(); fit(batch_size=4)"],
     CUDNN.format(cell="LSTM") + ": it is not saved, so set rnn.use_cudnn = False again on each layer "
                                 "keras.models.load_model returns"),
    (["--stateful", "--calls", "predict(4) * 2"], None),  # predict runs
    (["--stateful", "--cell", "rnn", "--calls", "fit(batch_size=4); save_and_load(); fit(batch_size=4)"], None),
    (["--calls", "fit(batch_size=4)"], None),  # stateless
    (["--stateful", "--calls", "fit(batch_size=4)", "--backend", "tensorflow"], None),
    (["--stateful", "--calls", "fit(batch_size=4)", "--backend", "jax"], None),
])
def test_stateful_lstm_and_gru_training_on_torch_is_warned_about_use_cudnn(arguments, said):
    backend = [] if "--backend" in arguments else ["--backend", "torch"]
    result = CliRunner().invoke(main, ["--shape", "8,3,1", "--batch", "4", *backend, "--no-shuffle", *arguments,
                                       "--dry-run", "--format", "json"])
    warnings = [warning for warning in json.loads(result.stdout)["warnings"] if "use_cudnn" in warning]
    assert warnings == ([said] if said else [])


@pytest.mark.parametrize("workflow, settings", [
    ("fit(epochs=2, validation_samples=4, batch_size=4); evaluate(8, batch_size=4); predict(8, batch_size=4); "
     "predict_on_batch(4); test_on_batch(4)",
     {"reset": "epoch,validation,predict"}),
    ("(train_on_batch(4), reset_state()) * 2; twin(batch_size=2); predict(4, batch_size=2) * 2; save_and_load(); "
     "predict(2)", {}),
    ("fit(validation_split=0.5, shuffle=False, batch_size=4); save_and_load(); "
     "fit(epochs=2, shuffle=\"batch\", batch_size=4)",
     {"reset": "every:2"}),
    ('predict(8, initial_state="previous") * 3; save_and_load(); predict(8, initial_state="previous")',
     {"stateful": False}),
    ("fit(epochs=2, validation_split=0.25); twin(batch_size=3); evaluate(5); predict(2)", {"stateful": False}),
    ("predict(4) * 2; twin(batch_size=1); predict(3, batch_size=1)", {"cell": "gru", "layers": 2,
                                                                      "bidirectional": True}),
    ("fit(batch_size=4); twin(1, stateful=True); predict(1) * 3; twin(4, stateful=False); predict(8)",
     {"stateful": False}),
    ("(predict(4), twin(2, stateful=False), predict(4), twin(4, stateful=True)) * 2", {"reset": "predict"}),
])
def test_the_mirror_follows_the_schedule_through_every_kind_of_call(workflow, settings):
    spec = Spec(**{"samples": 8, "timesteps": 3, "features": 2, "batch_size": 4, "stateful": True,
                   "backend": "torch", **settings}, workflow=workflow)
    report = inspect(spec, evidence=False).run()
    assert report.error is None
    assert report.ok and report.summary.verified, [step.step.call.label for step in report.steps
                                                   if step.verified is False]
    assert report.summary.checked_steps == spec.calls


def test_each_request_takes_the_next_samples_of_its_data():
    found = steps("predict(2) * 3; evaluate(2) * 2; train_on_batch(3) * 3", stateful=False)
    assert [step.call.samples.tolist() for step in found] == [
        [0, 1], [2, 3], [4, 5], [0, 1], [2, 3], [0, 1, 2], [3, 4, 5], [6, 7, 0]]


@pytest.mark.parametrize("workflow, keras, backend, outcome", [
    # TensorFlow compiles a function per kind of call and model; its first trace fixes the batch
    # dimension when every batch of the call has one size, and Keras's own check sees it.
    ("predict(4); predict(2, batch_size=1)", "3", "tensorflow", "broadcast"),
    ("predict(4); predict(2, batch_size=1)", "2", "tensorflow", "broadcast"),
    ("predict(4); predict(2, batch_size=1)", "3", "torch", "ValueError"),
    ("predict(2, batch_size=1)", "3", "tensorflow", "ValueError"),
    ("predict(2, batch_size=1)", "2", "tensorflow", "ValueError"),
    ("predict(2)", "3", "tensorflow", "ValueError"),  # Keras 3's predict fixes a short one too
    ("predict(2)", "2", "tensorflow", "InvalidArgumentError"),
    ("fit(batch_size=4); train_on_batch(1)", "3", "tensorflow", "ValueError"),  # its own function
    ("fit(batch_size=4); train_on_batch(1)", "2", "tensorflow", "broadcast"),  # fit's function
    ("evaluate(8, batch_size=4); test_on_batch(1)", "3", "tensorflow", "ValueError"),
    ("evaluate(8, batch_size=4); test_on_batch(1)", "2", "tensorflow", "broadcast"),
    ("predict(4); predict_on_batch(1)", "2", "tensorflow", "ValueError"),
    ("predict(4); twin(batch_size=4); predict(1, batch_size=1)", "3", "tensorflow", "ValueError"),  # a new model
    ("fit(batch_size=4); fit(batch_size=2)", "3", "tensorflow", "InvalidArgumentError"),
])
def test_tensorflow_checks_the_batch_size_where_a_first_trace_fixes_it(workflow, keras, backend, outcome):
    spec = Spec(8, 3, 1, batch_size=4, stateful=True, shuffle=False, keras=keras, backend=backend,
                workflow=workflow)
    found = list(keras_steps(spec))
    raising = [step.error.type for step in found if step.error is not None]
    assert (raising or ["broadcast" if any(step.call.broadcast for step in found) else "runs"]) == [outcome]
    report = inspect(spec, evidence=False).run()
    assert report.mismatches == 0 and report.error == (found[-1].error if raising else None)


@pytest.mark.parametrize("written, says", [
    ("predict({workflow.__class__.__mro__})", "in `{workflow.__class__.__mro__}`"),  # text, never looked up
    ("fit(**{'epochs': 2})", "fit takes no keyword **"),
    ("predict(4) * -3", "a repeat count must be at least 1"),
    ("predict(" + "9" * 19 + ")", "predict's sample count has more than 18 digits"),
    ("predict(" + "9" * 4000 + ")", "predict's sample count has more than 18 digits"),  # never printed
    ("predict(1) * " + "9" * 4000, "a repeat count has more than 18 digits"),
    ("predict(4)" + " * 2" * 3000, "nests too deep"),
    ("(" * 40 + "predict(4)" + ") * 2" * 40, "repeats nest more than 32 deep"),
])
def test_hostile_workflows_are_refused_as_text(written, says):
    result = CliRunner().invoke(main, ["--shape", "8,3,1", "--calls", written, "--dry-run"])
    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output, result.output
    assert "<class" not in result.output


def test_nested_repeats_are_counted_in_the_time_their_text_takes():
    written = "(" * 30 + "predict(4, batch_size=2), twin(batch_size=2)" + ") * 2" * 30
    spec = Spec(8, 3, 1, batch_size=4, backend="torch", workflow=written)
    assert spec.calls == 2**31  # predict(4, batch_size=2): 2 calls on each model
    # With the model's batch size: 1 call on the first model, then 2 on each twin.
    unset = Spec(8, 3, 1, batch_size=4, backend="torch", workflow=unset_batch_sizes(written))
    assert unset.calls == 2**31 - 1
    too_many = CliRunner().invoke(main, ["--shape", "8,3,1", "--batch", "4", "--calls", written, "--dry-run"])
    assert too_many.exit_code == 2 and "lstm-inspect follows at most" in too_many.output


def test_a_predict_on_batch_loop_is_told_to_reset_by_hand_and_a_workflow_broadcast_is_named():
    loop = run("--stateful", "--calls", "predict_on_batch(4) * 3", "--dry-run")
    warning = " ".join(loop.stderr.split())
    assert "each predict_on_batch call carries" in warning and "(reset_state() between calls)" in warning
    broadcast = CliRunner().invoke(main, ["--shape", "9,3,1", "--batch", "4", "--stateful", "--no-shuffle",
                                          "--backend", "tensorflow", "--calls",
                                          "fit(validation_split=0.1, batch_size=4)", "--dry-run"])
    assert "one sample (validation e0 b0)" in " ".join(broadcast.stderr.split())


@pytest.mark.parametrize("workflow", ["reset_state()", "save_and_load()", "twin(batch_size=2)"])
def test_a_workflow_with_no_layer_call_runs_no_step_and_measures_nothing(workflow):
    # Keras runs such a workflow with no step; the check once divided by the largest batch (0).
    result = run("--stateful", "--calls", workflow, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["steps"] == [] and report["error"] is None
    assert [item["passed"] for item in report["evidence"]] == [None, None, None]
    assert all(item["detail"] == "the workflow makes no layer call: there is nothing to measure"
               for item in report["evidence"])


def test_a_twin_built_stateful_carries_where_the_model_did_not_and_one_built_stateless_does_not():
    # Train stateless, then predict step by step with a stateful twin for batch 1, weights copied.
    assert starts("fit(batch_size=4); twin(batch_size=1, stateful=True); predict(1) * 3; reset_state(); "
                  "predict(1)", stateful=False) == [
        ("train e0 b0", "zeros"), ("train e0 b1", "zeros"), ("twin predict b0", "zeros"),
        ("twin predict#2 b0", "twin predict b0"), ("twin predict#3 b0", "twin predict#2 b0"),
        ("twin predict#4 b0", "zeros")]
    # Without stateful=, a twin is as the model it copies: a twin of the stateful twin carries.
    assert starts("predict(4) * 2; twin(2, stateful=False); predict(4) * 2; twin(2); predict(2) * 2; "
                  "twin(2, stateful=True); predict(2) * 2") == [
        ("predict b0", "zeros"), ("predict#2 b0", "predict b0"), ("twin predict b0", "zeros"),
        ("twin predict#2 b0", "zeros"), ("twin#2 predict b0", "zeros"), ("twin#2 predict#2 b0", "zeros"),
        ("twin#3 predict b0", "zeros"), ("twin#3 predict#2 b0", "twin#3 predict b0")]
    # A stateless twin takes any batch; a stateful one raises for a batch of another size.
    raising = steps("twin(2, stateful=True); predict(4)", stateful=False)
    assert len(raising) == 1 and raising[0].raises and "Expected batch size: 2" in raising[0].error.message
    assert not steps("twin(2, stateful=False); predict(5)")[0].raises


def test_a_stateful_twin_of_a_stateless_model_is_what_the_verdict_and_the_reset_policy_know():
    spec = Spec(8, 3, 1, batch_size=4, backend="torch", reset="predict",  # a reset needs a stateful model
                workflow="fit(batch_size=4); twin(batch_size=1, stateful=True); predict(1) * 3")
    report = inspect(spec, evidence=False).run()
    assert report.ok and report.summary.verified
    said = " ".join(report.verdict.split())
    assert "stateless LSTM: the model built first starts every call from zeros" in said
    assert ("Your twin(batch_size=1, stateful=True) builds a stateful model (the weights copied, the state from "
            "zeros): slot i of each of its calls starts from the final state of slot i of its call before, until "
            "a reset_state(), so one stream: each sample continues the one before it.") in said
    stateful = Spec(8, 3, 1, batch_size=4, stateful=True, backend="torch",
                    workflow="predict(4); twin(batch_size=2, stateful=False); predict(4)")
    assert "Your twin(batch_size=2, stateful=False) builds a stateless model: each of its calls starts from " \
           "zeros." in " ".join(inspect(stateful, evidence=False).run().verdict.split())
    with pytest.raises(SpecError, match=r"needs stateful \(or a twin built with stateful=True\)"):
        Spec(8, 3, 1, batch_size=4, reset="predict", workflow="fit(); twin(batch_size=1, stateful=False)")


@pytest.mark.parametrize("workflow, warned", [
    ("fit(batch_size=4); twin(batch_size=4, stateful=True); predict(4)", False),  # trains the stateless model
    ("twin(batch_size=4, stateful=True); fit(batch_size=4)", True),
    ("(fit(batch_size=4), twin(batch_size=4, stateful=True)) * 2", True),  # the second fit is on a twin
])
def test_the_cudnn_warning_is_for_training_a_stateful_model_only(workflow, warned):
    spec = Spec(8, 3, 1, batch_size=4, backend="torch", workflow=workflow)
    assert any("use_cudnn" in warning for warning in warnings_for(spec)) == warned



def batches_of(workflow, samples=16, keras="3"):
    return [(step.call.label, step.call.samples.tolist()) for step in steps(workflow, samples=samples, keras=keras,
                                                                              backend="tensorflow")]


FIRST, SECOND, THIRD, FOURTH = [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]


def test_steps_per_epoch_over_arrays_ends_an_epoch_where_the_pass_ends_on_keras_3_and_runs_on_in_keras_2():
    # Measured (Keras 3.15.1 on torch, TensorFlow and JAX; tf-keras 2.21): 16 samples, 4 batches a pass.
    workflow = "fit(epochs=3, shuffle=False, batch_size=4, steps_per_epoch=3)"
    assert batches_of(workflow) == [
        ("train e0 b0", FIRST), ("train e0 b1", SECOND), ("train e0 b2", THIRD), ("train e1 b0", FOURTH),
        ("train e2 b0", FIRST), ("train e2 b1", SECOND), ("train e2 b2", THIRD)]
    assert batches_of(workflow, keras="2") == [
        ("train e0 b0", FIRST), ("train e0 b1", SECOND), ("train e0 b2", THIRD), ("train e1 b0", FOURTH),
        ("train e1 b1", FIRST), ("train e1 b2", SECOND), ("train e2 b0", THIRD), ("train e2 b1", FOURTH),
        ("train e2 b2", FIRST)]
    more = "fit(epochs=2, shuffle=False, batch_size=4, steps_per_epoch=6)"
    assert [label for label, _ in batches_of(more)] == [f"train e{e} b{b}" for e in (0, 1) for b in range(4)]
    assert len(batches_of(more, keras="2")) == 12


def test_an_endless_stream_goes_on_across_epochs_and_its_partial_batch_raises_where_it_comes():
    for source in ('data="generator"', 'data="dataset", repeat=True'):
        assert batches_of(f"fit(epochs=3, batch_size=4, steps_per_epoch=3, {source})") == [
            ("train e0 b0", FIRST), ("train e0 b1", SECOND), ("train e0 b2", THIRD), ("train e1 b0", FOURTH),
            ("train e1 b1", FIRST), ("train e1 b2", SECOND), ("train e2 b0", THIRD), ("train e2 b1", FOURTH),
            ("train e2 b2", FIRST)]
    partial = steps('fit(epochs=3, batch_size=4, steps_per_epoch=3, data="generator")', samples=14)
    assert [step.call.label for step in partial] == ["train e0 b0", "train e0 b1", "train e0 b2", "train e1 b0"]
    assert partial[-1].raises and "Received batch size: 2" in partial[-1].error.message
    dropped = batches_of('fit(epochs=2, batch_size=4, data="dataset", drop_remainder=True)', samples=14)
    assert dropped == [(f"train e{e} b{b}", samples) for e in (0, 1) for b, samples in enumerate((FIRST, SECOND,
                                                                                                  THIRD))]


def test_the_state_carries_across_an_epoch_boundary_as_the_series_continues():
    found = steps('fit(epochs=2, batch_size=4, steps_per_epoch=3, data="generator")')
    kinds = {step.call.label: set(step.start_kinds()) for step in found}
    assert kinds["train e1 b0"] == {Start.CONTINUED.value}  # sample 12 continues sample 8, across the epoch
    assert kinds["train e1 b1"] == {Start.UNRELATED.value}  # a new pass: sample 0 follows sample 12


def test_evaluate_and_predict_steps_run_the_first_batches_and_the_counts_agree():
    workflow = "evaluate(16, batch_size=4, steps=2); predict(16, batch_size=4, steps=6); predict(4, batch_size=4)"
    assert batches_of(workflow) == [("evaluate b0", FIRST), ("evaluate b1", SECOND), ("predict b0", FIRST),
                                    ("predict b1", SECOND), ("predict b2", THIRD), ("predict b3", FOURTH),
                                    ("predict#2 b0", [16, 17, 18, 19])]
    for written in (workflow, "fit(epochs=3, shuffle=False, batch_size=4, steps_per_epoch=3)",
                    '(fit(epochs=5, batch_size=4, steps_per_epoch=3), reset_state()) * 3',
                    'fit(epochs=3, batch_size=4, steps_per_epoch=5, data="generator", drop_remainder=True)'):
        for keras in ("2", "3"):
            spec = Spec(16, 3, 1, batch_size=4, stateful=True, workflow=written, keras=keras, backend="tensorflow")
            assert spec.calls == len(list(keras_steps(spec))), (written, keras)


def test_evaluate_and_predict_given_a_stream_run_its_batches_in_order_round_and_round_only_if_endless():
    # Measured (Keras 3.15.1 on torch, TensorFlow, JAX; tf-keras 2.21), 5 samples in batches of 2:
    # steps=5 runs 3 batches of a dataset or PyDataset run once, and wraps round an endless stream.
    five = ([0, 1], [2, 3], [4])

    def batches_of(workflow):  # a stateless model: every batch runs
        return [(step.call.label, step.call.samples.tolist()) for step in steps(workflow, stateful=False)]

    for kind in ("evaluate", "predict"):
        for source in ('data="dataset"', 'data="pydataset"'):
            for most in ("", ", steps=5"):
                assert [samples for _, samples in batches_of(f"{kind}(5, batch_size=2, {source}{most})")] == \
                    list(five), (kind, source, most)
        for source in ('data="generator"', 'data="dataset", repeat=True', 'data="pydataset", repeat=True'):
            assert [samples for _, samples in batches_of(f"{kind}(5, batch_size=2, {source}, steps=5)")] == \
                [*five, [0, 1], [2, 3]], source
        dropped = batches_of(f'{kind}(5, batch_size=2, data="generator", drop_remainder=True, steps=5)')
        assert [samples for _, samples in dropped] == [[0, 1], [2, 3], [0, 1], [2, 3], [0, 1]]
        assert [samples for _, samples in batches_of(f'{kind}(5, batch_size=2, data="dataset", drop_remainder=True, '
                                                     "steps=5)")] == [[0, 1], [2, 3]]
    # The next call takes the next samples, wherever the stream stopped.
    assert batches_of('predict(5, batch_size=2, data="generator", steps=4); predict(2, batch_size=2)')[-1] == \
        ("predict#2 b0", [5, 6])
    for written in ('evaluate(5, batch_size=2, data="generator", steps=7); predict(9, batch_size=2, data="dataset", '
                    'drop_remainder=True, steps=9)',
                    'predict(6, batch_size=4, data="pydataset", repeat=True, steps=3)'):
        spec = Spec(16, 3, 1, batch_size=4, workflow=written, backend="tensorflow")
        assert spec.calls == len(list(keras_steps(spec))), written


def test_a_wrapped_streams_first_batch_continues_nothing():
    found = steps('predict(8, batch_size=4, data="generator", steps=3)')
    assert [set(step.start_kinds()) for step in found] == [{Start.ZEROS.value}, {Start.CONTINUED.value},
                                                          {Start.UNRELATED.value}]


@pytest.mark.parametrize("written, says", [
    ('predict(8, batch_size=4, data="generator")', "needs steps=K: without it Keras's predict never ends"),
    ('evaluate(8, batch_size=4, data="dataset", repeat=True)', "needs steps=K: without it Keras's evaluate never ends"),
    ('predict(3, batch_size=4, data="dataset", drop_remainder=True)', "drops the only batch, of 3 samples"),
    ('predict(4, batch_size=4, data="dataset", initial_state="previous")', "give the predict arrays (no data=)"),
    ('evaluate(8, batch_size=4, repeat=True)', 'it needs data="dataset" or data="pydataset"'),
    ('predict(8, batch_size=4, drop_remainder=True)', 'it needs data="dataset", "generator" or "pydataset"'),
])
def test_a_stream_keras_never_finishes_or_runs_nothing_of_is_refused_in_one_line(written, says):
    result = run("--stateful", "--calls", written, "--dry-run")
    assert result.exit_code == 2 and says in result.output and len(result.output.strip().splitlines()) == 1, \
        result.output


def test_the_verdict_says_where_a_stream_goes_round_or_runs_out_before_steps():
    def verdict(workflow):
        spec = Spec(8, 3, 1, batch_size=4, stateful=True, backend="torch", workflow=workflow)
        return " ".join(inspect(spec, evidence=False).run().verdict.split())

    assert "the stream goes round its 8 samples, so batch 2 runs them again from the first" in \
        verdict('predict(8, batch_size=4, data="generator", steps=3)')
    assert "the stream holds 2 batches, fewer than steps=3: Keras runs those and stops there" in \
        verdict('evaluate(8, batch_size=4, data="dataset", steps=3)')
    for quiet in ('predict(8, batch_size=4, data="generator", steps=2)', 'evaluate(8, batch_size=4, data="dataset")',
                  "predict(8, batch_size=4, steps=3)"):
        said = verdict(quiet)
        assert "goes round" not in said and "stops there" not in said, quiet


def test_tf_keras_has_no_endless_sequence_for_evaluate_either():
    with pytest.raises(SpecError, match="there is no endless one"):
        Spec(16, 3, 1, batch_size=4, keras="2", workflow='evaluate(8, batch_size=4, data="pydataset", repeat=True, '
                                                         "steps=3)")


def test_tf_keras_stops_fit_where_a_dataset_run_once_runs_out_and_the_tool_says_so():
    with pytest.raises(SpecError, match="tf-keras stops fit where they run out"):
        Spec(16, 3, 1, batch_size=4, keras="2", workflow='fit(epochs=3, batch_size=4, data="dataset", '
                                                         "steps_per_epoch=3)")
    Spec(16, 3, 1, batch_size=4, keras="3", workflow='fit(epochs=3, batch_size=4, data="dataset", steps_per_epoch=3)')
    with pytest.raises(SpecError, match="drops the only batch"):
        Spec(3, 3, 1, batch_size=4, workflow='fit(batch_size=4, data="dataset", drop_remainder=True)')


CHUNKS = [FIRST, SECOND, THIRD, FOURTH]


def epochs_of(found):
    """The batches of each epoch, from (label, samples) pairs."""
    epochs = {}
    for label, samples in found:
        epochs.setdefault(label.split()[1], []).append(samples)
    return list(epochs.values())


def test_fit_shuffles_a_pydatasets_batch_order_each_epoch_each_batch_kept_whole():
    # Measured (Keras 3.15.1 on torch, TensorFlow, JAX; tf-keras 2.21): fit's shuffle, True unless
    # given, draws a new order of the items each epoch; "batch" does the same; False keeps them.
    shuffled = epochs_of(batches_of('fit(epochs=4, batch_size=4, data="pydataset")'))
    assert all(sorted(epoch) == CHUNKS for epoch in shuffled)
    assert any(epoch != CHUNKS for epoch in shuffled) and len({str(epoch) for epoch in shuffled}) > 1
    assert epochs_of(batches_of('fit(epochs=4, batch_size=4, data="pydataset", shuffle="batch")')) == shuffled
    assert epochs_of(batches_of('fit(epochs=2, batch_size=4, data="pydataset", shuffle=False)')) == [CHUNKS] * 2
    # A PyDataset of no length: Keras asks for items 0, 1, 2, ... and shuffles nothing.
    endless = batches_of('fit(epochs=2, batch_size=4, data="pydataset", repeat=True, steps_per_epoch=3)')
    assert epochs_of(endless) == [[FIRST, SECOND, THIRD], [FOURTH, FIRST, SECOND]]


def test_steps_per_epoch_on_a_pydataset_goes_on_in_keras_3_and_restarts_every_epoch_in_tf_keras():
    # Measured: 3 items, steps_per_epoch=2: Keras 3 runs 0 1 | 2 | 0 1, tf-keras 0 1 | 0 1 | 0 1.
    workflow = 'fit(epochs=3, batch_size=4, data="pydataset", shuffle=False, steps_per_epoch=3)'
    assert epochs_of(batches_of(workflow)) == [[FIRST, SECOND, THIRD], [FOURTH], [FIRST, SECOND, THIRD]]
    assert epochs_of(batches_of(workflow, keras="2")) == [[FIRST, SECOND, THIRD]] * 3
    restarted = epochs_of(batches_of(workflow.replace("shuffle=False", "shuffle=True"), keras="2"))
    assert all(len(epoch) == 3 and len({str(batch) for batch in epoch}) == 3 for epoch in restarted)
    spec = Spec(16, 3, 1, batch_size=4, keras="2", stateful=True, workflow=workflow)
    assert spec.calls == 9 == len(list(keras_steps(spec)))
    with pytest.raises(SpecError, match="stops fit at the end of its first epoch"):
        Spec(16, 3, 1, batch_size=4, keras="2", workflow='fit(epochs=2, batch_size=4, data="pydataset", '
                                                         "steps_per_epoch=5)")
    with pytest.raises(SpecError, match="there is no endless one"):
        Spec(16, 3, 1, batch_size=4, keras="2", workflow='fit(epochs=2, batch_size=4, data="pydataset", '
                                                         "repeat=True, steps_per_epoch=3)")


def test_a_shuffled_pydatasets_partial_batch_raises_wherever_the_order_puts_it():
    found = steps('fit(epochs=2, batch_size=4, data="pydataset")', samples=14)
    assert found[-1].raises and "Received batch size: 2" in found[-1].error.message
    assert found[-1].call.samples.tolist() == [12, 13] and found[-1].call.epoch == 0
    assert not any(step.raises for step in found[:-1])
    dropped = steps('fit(epochs=2, batch_size=4, data="pydataset", drop_remainder=True)', samples=14)
    assert len(dropped) == 6 and not any(step.raises for step in dropped)


def test_the_warning_says_fit_shuffles_a_pydataset_unless_told_not_to():
    def warned(workflow):
        spec = Spec(16, 3, 1, batch_size=4, stateful=True, backend="torch", workflow=workflow)
        return " ".join(warning for warning in warnings_for(spec) if "shuffle is on" in warning)

    assert "reorders a PyDataset's batches each epoch" in warned('fit(epochs=2, batch_size=4, data="pydataset")')
    assert warned('fit(epochs=2, batch_size=4, data="pydataset", shuffle=False)') == ""
    assert warned('fit(epochs=2, batch_size=4, data="pydataset", repeat=True, steps_per_epoch=3)') == ""
    assert "PyDataset" not in warned("fit(epochs=2, batch_size=4)")


def test_the_verdict_says_where_steps_per_epoch_ends_an_epoch():
    for written, said in (('fit(epochs=2, batch_size=4, steps_per_epoch=3, data="generator")',
                           "each epoch takes 3 batches of a stream that goes on where the epoch before left it"),
                          ("fit(epochs=2, shuffle=False, batch_size=4, steps_per_epoch=3)",
                           "an epoch ends after 3 batches or where the pass over the data ends")):
        spec = Spec(16, 3, 1, batch_size=4, stateful=True, backend="torch", workflow=written)
        verdict = " ".join(inspect(spec, evidence=False).run().verdict.split())
        assert said in verdict
    generator = Spec(16, 3, 1, batch_size=4, stateful=True, backend="torch",
                     workflow='fit(epochs=2, batch_size=4, steps_per_epoch=3, data="generator")')
    assert not any("shuffle is on" in warning for warning in warnings_for(generator))  # Keras shuffles no generator
