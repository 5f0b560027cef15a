"""Properties of Keras's schedule, for any setup hypothesis can think of."""

import dataclasses
import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_inspect.cli.setup import TERMS
from lstm_inspect.core.choices import Phase, ResetPolicy
from lstm_inspect.core.order import iter_calls
from lstm_inspect.core.schedule import Start, keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.explain.fixes import fix_for_partial_batch

resets = st.sampled_from(["never", "epoch", "every:1", "every:2", "every:3"]).map(ResetPolicy.parse)


# Every Keras the tool describes: Keras 3 on each backend, and Keras 2 (tf-keras, TensorFlow).
kerases = st.sampled_from([("3", "torch"), ("3", "tensorflow"), ("3", "jax"), ("2", "tensorflow")])


@st.composite
def specs(draw, stateful=st.booleans()):  # noqa: B008 (a strategy, built once, never mutated)
    is_stateful = draw(stateful)
    keras, backend = draw(kerases)
    return Spec(
        samples=draw(st.integers(1, 60)), timesteps=draw(st.integers(1, 4)), features=1,
        batch_size=draw(st.integers(1, 16)), stateful=is_stateful, epochs=draw(st.integers(1, 3)),
        shuffle=draw(st.sampled_from([True, False, "batch"])), reset=draw(resets) if is_stateful else ResetPolicy(),
        val_samples=draw(st.integers(0, 20)), predict_samples=draw(st.integers(0, 20)),
        seed=draw(st.integers(0, 2**32 - 1)),
        # The schedule must hold for every cell, depth, direction and Keras version.
        cell=draw(st.sampled_from(["lstm", "gru", "rnn"])), layers=draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()), keras=keras, backend=backend)


def broadcasts(spec):
    """TensorFlow runs a stateful batch of one sample in every slot (measured)."""
    return spec.backend == "tensorflow" and spec.stateful


def lone_broadcast(spec, call):
    """Whether this call's lone sample runs in every slot: TensorFlow, except the first batch of
    a predict on Keras 3, whose shape Keras checks itself (measured)."""
    checked = spec.keras == "3" and call.phase == Phase.PREDICT and call.batch == 0
    return len(call.samples) == 1 and spec.batch_size > 1 and broadcasts(spec) and not checked


def count_calls(spec):
    """Layer calls fit + predict make if nothing raises: Keras's batches, counted by hand."""
    per_epoch = math.ceil(spec.samples / spec.batch_size) + math.ceil(spec.val_samples / spec.batch_size)
    return spec.epochs * per_epoch + math.ceil(spec.predict_samples / spec.batch_size)


def _sizes(spec):
    return {Phase.TRAIN: spec.samples, Phase.VALIDATION: spec.val_samples, Phase.PREDICT: spec.predict_samples}


@given(specs())
def test_every_sample_appears_once_per_epoch_and_phase(spec):
    seen = defaultdict(list)
    for call in iter_calls(spec):
        seen[call.phase, call.epoch].extend(call.samples.tolist())
        assert 1 <= len(call.samples) <= spec.batch_size
    for (phase, _epoch), samples in seen.items():
        assert sorted(samples) == list(range(_sizes(spec)[phase]))
    assert len(seen) == spec.epochs * (1 + bool(spec.val_samples)) + bool(spec.predict_samples)
    assert sum(1 for _ in iter_calls(spec)) == count_calls(spec)


@given(specs())
def test_batch_shuffle_keeps_each_batch_within_one_chunk(spec):
    if spec.shuffle != "batch":
        return
    chunks = {tuple(range(start, min(start + spec.batch_size, spec.samples)))
              for start in range(0, spec.samples, spec.batch_size)}
    for call in iter_calls(spec):
        if call.phase == Phase.TRAIN:
            assert tuple(sorted(call.samples.tolist())) in chunks


@given(specs())
def test_resets_plus_carries_equal_slots(spec):
    for step in keras_steps(spec):
        if not step.raises:
            slots = spec.batch_size if lone_broadcast(spec, step.call) else len(step.call.samples)
            assert step.zero_slots + step.carried_slots == slots == len(step.call.slot_samples)
            assert len(step.start_labels()) == slots


@given(specs(stateful=st.just(False)))
def test_stateless_never_carries_and_never_raises(spec):
    steps = list(keras_steps(spec))
    assert len(steps) == count_calls(spec)
    assert all(not step.raises and step.carried_slots == 0 and step.source is None for step in steps)


@given(specs(stateful=st.just(True)))
def test_stateful_slot_i_carries_from_slot_i_of_the_previous_call(spec):
    previous = None
    for step in keras_steps(spec):
        if step.raises:
            break
        if step.carried_slots:
            assert step.source is previous
            assert np.array_equal(step.source_slot, np.arange(spec.batch_size))
        previous = step.call


@given(specs(stateful=st.just(True)))
def test_stateful_raises_at_the_first_call_with_a_partial_batch(spec):
    steps = list(keras_steps(spec))
    sizes = [len(call.samples) for call in iter_calls(spec)]
    partial = [index for index, (size, call) in enumerate(zip(sizes, iter_calls(spec)))
               if size != spec.batch_size and not lone_broadcast(spec, call)]
    if partial:
        assert len(steps) == partial[0] + 1 and steps[-1].raises
    else:
        assert len(steps) == len(sizes) and not any(step.raises for step in steps)


@given(specs(stateful=st.just(True)))
def test_stateful_resets_only_at_the_start_and_where_the_policy_says(spec):
    for step in keras_steps(spec):
        if step.raises:
            break
        call = step.call
        # Counted by hand, apart from the schedule's rule: epoch resets where a training epoch
        # begins; every:K where K divides the training batch's position in its epoch.
        text = str(spec.reset)
        policy_resets = call.phase == Phase.TRAIN and (
            (text == "epoch" and call.batch == 0)
            or (text.startswith("every:") and call.batch % int(text[len("every:"):]) == 0))
        # On JAX nothing carries inside fit, evaluate or predict: every call starts from zeros.
        assert (step.zero_slots > 0) == (call.index == 0 or policy_resets or spec.backend == "jax")


@settings(max_examples=50)
@given(specs(stateful=st.just(True)))
def test_without_shuffle_carries_within_a_phase_continue_sample_j_minus_b(spec):
    spec = dataclasses.replace(spec, shuffle=False)
    for step in keras_steps(spec):
        if step.raises or not step.carried_slots:
            continue
        kinds = set(step.start_kinds())
        same_epoch_phase = (step.source.phase, step.source.epoch) == (step.call.phase, step.call.epoch)
        lone = step.call.broadcast or step.source.broadcast  # a broadcast sample continues nothing
        assert kinds == {Start.CONTINUED.value if same_epoch_phase and not lone else Start.UNRELATED.value}


def test_shuffle_permutes_each_epoch_differently_and_reproducibly():
    spec = Spec(100, 2, 1, batch_size=10, epochs=2, shuffle=True, seed=7)
    first = [call.samples.tolist() for call in iter_calls(spec)]
    assert first == [call.samples.tolist() for call in iter_calls(spec)]
    assert first[:10] != first[10:]
    assert first[0] != list(range(10))


def test_validation_and_predict_are_never_shuffled():
    spec = Spec(8, 2, 1, batch_size=4, shuffle=True, val_samples=8, predict_samples=4)
    others = [call.samples.tolist() for call in iter_calls(spec) if call.phase != Phase.TRAIN]
    assert others == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3]]


def test_start_labels_name_the_sample_whose_state_is_carried():
    spec = Spec(8, 2, 1, batch_size=4, stateful=True, shuffle=False, val_samples=4)
    labels = [step.start_labels() for step in keras_steps(spec)]
    assert labels == [["zeros"] * 4, ["train:0", "train:1", "train:2", "train:3"],
                      ["train:4", "train:5", "train:6", "train:7"]]


@pytest.mark.parametrize("spec, expected", [
    (Spec(1000, 20, 1, batch_size=300, stateful=True),
     "use --batch 200, 250, 500 or 1000 (divisors of N near 300), or drop the remainder as drop_remainder "
     "does: truncate N to 900"),
    (Spec(10, 5, 1, batch_size=32, stateful=True), "use --batch 5 or 10 (divisors of N near 32)"),
    (Spec(12, 5, 1, batch_size=4, stateful=True, val_samples=6),
     "use --batch 2, 3 or 6 (divisors of N and --val-samples near 4), or drop the "
     "remainder as drop_remainder does: truncate --val-samples to 4"),
    (Spec(120, 5, 1, batch_size=7, stateful=True),
     "use --batch 5, 6, 8 or 10 (divisors of N near 7), or drop the remainder as drop_remainder does: "
     "truncate N to 119"),
    (Spec(100, 5, 1, batch_size=32, stateful=True, val_samples=50, predict_samples=30),
     "use --batch 5 or 10 (divisors of N, --val-samples and --predict-samples near 32), or drop the remainder as "
     "drop_remainder does: truncate N to 96, --val-samples to 32"),  # 30 holds no whole batch to keep
    (Spec(10, 5, 1, batch_size=4, stateful=True, val_samples=3),
     "use --batch 1 (divisors of N and --val-samples near 4), or drop the remainder as drop_remainder does: "
     "truncate N to 8"),
])
def test_fix_suggests_divisors_near_b_and_truncation(spec, expected):
    assert fix_for_partial_batch(spec, TERMS) == expected


def test_fix_names_spec_fields_by_default():
    spec = Spec(12, 5, 1, batch_size=4, stateful=True, val_samples=6)
    assert fix_for_partial_batch(spec) == ("use batch_size 2, 3 or 6 (divisors of samples and val_samples near 4), "
                                           "or drop the remainder as drop_remainder does: truncate val_samples to 4")


def test_each_slot_is_labelled_with_the_sample_it_continues_or_zeros():
    spec = Spec(8, 3, 1, batch_size=4, stateful=True, backend="torch",
                workflow="predict(4); reset_state(slots=[0, 2]); predict(4)")
    first, second = keras_steps(spec)
    assert first.start_labels() == ["zeros"] * 4
    assert second.start_labels() == ["zeros", "predict:1", "zeros", "predict:3"]


def test_a_step_either_raises_or_starts_its_slots():
    step = next(keras_steps(Spec(8, 3, 1, batch_size=4)))
    with pytest.raises(ValueError, match=r"^a step either raises \(error\) or starts its slots \(source_slot\), "
                                         r"not both$"):
        dataclasses.replace(step, source_slot=None)


def test_the_calls_are_named_by_phase_inside_fit_and_by_kind_outside_it():
    spec = Spec(8, 3, 1, batch_size=4, backend="torch",
                workflow="fit(validation_samples=4); test_on_batch(4); evaluate(4); fit(); predict_on_batch(4)")
    assert [call.segment for call in iter_calls(spec)] == [  # fit's batch_size is Keras's 32: one batch each
        "train e0", "validation e0", "test_on_batch", "evaluate", "train#2 e0", "predict_on_batch"]
