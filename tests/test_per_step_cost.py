"""What makes many small calls cheap must not change what a run finds: the window of plain steps
checks each as `observe` checks it alone (planted faults included), inputs made for many calls at
once are each call's own, and a small call's single thread never leaks to the caller."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lstm_inspect.check import inspection as inspection_module
from lstm_inspect.check.inspection import Inspection
from lstm_inspect.check.observe import WINDOW, WINDOW_VALUES, Window, observe
from lstm_inspect.core.choices import Phase
from lstm_inspect.core.schedule import keras_steps
from lstm_inspect.core.spec import Spec
from lstm_inspect.mirror import run as mirror_run
from lstm_inspect.mirror.inputs import batch_inputs
from lstm_inspect.mirror.module import forward
from lstm_inspect.mirror.run import mirror_records

SERVING = Spec(100, 5, 2, batch_size=1, stateful=True, shuffle=False, workflow="predict(1) * 40")
SLOTS = Spec(24, 4, 2, batch_size=4, stateful=True, shuffle=False, epochs=3, cell="gru", layers=2,
             bidirectional=True)


def _pairs(spec: Spec):
    steps = list(keras_steps(spec))
    records = mirror_records(spec)
    return list(zip(steps, records, strict=False))


def _tamper(record, how: str):
    """The record with its initial states changed as a broken mirror would pass them."""
    states = [state.clone() for state in record.initial]
    if how == "zeros":
        states = [torch.zeros_like(state) for state in states]
    elif how == "one slot zeroed":
        states[-1][:, -1] = 0.0
    elif how == "one value off":
        states[0][-1, 0, -1] = torch.nextafter(states[0][-1, 0, -1], torch.tensor(9.0))
    elif how == "slots swapped" and states[0].shape[1] > 1:
        states = [state.flip(1) for state in states]
    return dataclasses.replace(record, initial=tuple(states))


@pytest.mark.parametrize("spec", [SERVING, SLOTS], ids=["serving loop", "slots, layers, directions"])
@pytest.mark.parametrize("how", [None, "zeros", "one slot zeroed", "one value off", "slots swapped"])
def test_a_window_finds_what_observe_finds_step_by_step(spec, how):
    pairs = _pairs(spec)
    window, expected, last = Window(), [], None
    for index, (step, record) in enumerate(pairs):
        if how is not None and index % 3 == 2:
            record = _tamper(record, how)
        if last is not None and window.takes(step, record, last, last):
            window.add(step, record, last)
            expected.append(observe(step, record, last))
        last = pairs[index][1]  # the untampered call: what the next one carries from
    found = [(checked.observed, checked.verified) for checked in window.flush()]
    assert len(found) == len(pairs) - 1  # every step but the first (no call before it) is plain here
    assert found == expected
    if how is not None and not (how == "slots swapped" and spec.batch_size == 1):  # one slot: nothing to swap
        assert any(verified is False for _, verified in found)


def test_a_full_window_is_checked_and_the_next_steps_start_a_new_one():
    spec = dataclasses.replace(SERVING, workflow=f"predict(1) * {WINDOW + 5}")
    pairs = _pairs(spec)
    window, full = Window(), 0
    for (_, previous), (step, record) in zip(pairs, pairs[1:]):
        assert window.takes(step, record, previous, previous)
        if window.add(step, record, previous):
            full += 1
            assert len(list(window.flush())) == WINDOW
    assert full == 1 and len(list(window.flush())) == 4


def test_a_window_of_large_states_holds_fewer_steps():
    # Slots of 64 units, h and c, half a window's values a step: two steps fill a window.
    slots = WINDOW_VALUES // (2 * 2 * 64)
    spec = Spec(slots * 4, 2, 1, batch_size=slots, stateful=True, shuffle=False, units=64, epochs=1)
    pairs = _pairs(spec)
    window = Window()
    full = [window.add(step, record, previous) for (_, previous), (step, record) in zip(pairs, pairs[1:])]
    assert full == [False, True, True]


def test_steps_that_are_not_plain_are_left_to_observe():
    # A twin of another batch size starts from zeros in states of another shape; a partial reset
    # zeroes some slots only: neither is a plain step.
    spec = Spec(16, 4, 2, batch_size=4, stateful=True, shuffle=False,
                workflow="predict(4) * 2; reset_state(slots=[1]); predict(4); twin(batch_size=2); predict(2)")
    pairs = _pairs(spec)
    taken = [Window().takes(step, record, previous, previous)
             for (_, previous), (step, record) in zip(pairs, pairs[1:])]
    assert taken == [True, False, False]


def test_a_mirror_that_carries_where_zeros_are_due_is_caught_inside_a_window(monkeypatch):
    # Every call of a serving loop is plain: the window alone checks them. A mirror whose
    # reset_state() forgets to zero must show at the steps after each reset.
    spec = dataclasses.replace(SERVING, workflow="(predict(1) * 3, reset_state()) * 10")
    monkeypatch.setattr(mirror_run, "MODEL_CHANGES", {**mirror_run.MODEL_CHANGES,
                                                      mirror_run.Kind.RESET_STATE: lambda layer, op: layer})
    results = list(Inspection(spec))
    wrong = [result.step.call.index for result in results if result.verified is False]
    assert wrong == list(range(3, 30, 3))
    assert all(results[index].observed.differing == ("h[layer 0]", "c[layer 0]") for index in wrong)


def test_a_serving_loop_makes_its_inputs_for_many_calls_at_once(monkeypatch):
    made = []
    original = mirror_run.padded_batch

    def counted(spec, stream, samples, device):
        made.append(len(samples))
        return original(spec, stream, samples, device)

    monkeypatch.setattr(mirror_run, "padded_batch", counted)
    spec = dataclasses.replace(SERVING, workflow="predict(1) * 3000")
    records = mirror_records(spec)
    assert made == [1024, 1024, 952]
    # Each call ran its own sample's input, as made alone (a sample's data depend on its index
    # only): the layer rerun from the call's initial states on that input gives the call's output.
    module = mirror_run.build_rnn(spec, torch.device("cpu"))
    for record in (records[0], records[1500], records[-1]):
        assert record.call.samples.tolist() == [record.call.index]
        alone = batch_inputs(spec, Phase.PREDICT, record.call.samples, torch.device("cpu"))
        with torch.no_grad():
            output, _ = forward(module, alone, record.initial)
        assert torch.equal(output[:, -1], record.output)


def test_calls_of_other_data_between_them_each_run_their_own_inputs():
    # fit's training and validation batches, then predicts: each call's inputs come from its own
    # data (Phase salts the hash), though their inputs are made a chunk at a time.
    spec = Spec(12, 4, 2, batch_size=4, stateful=True, shuffle=False,
                workflow="fit(epochs=2, batch_size=4, validation_samples=8); predict(4, batch_size=4) * 2; "
                "evaluate(8, batch_size=4)")
    module = mirror_run.build_rnn(spec, torch.device("cpu"))
    records = mirror_records(spec)
    assert {record.call.stream for record in records} == {Phase.TRAIN, Phase.VALIDATION, Phase.PREDICT,
                                                          Phase.EVALUATE}
    for record in records:
        alone = batch_inputs(spec, record.call.stream, record.call.samples, torch.device("cpu"))
        with torch.no_grad():
            output, _ = forward(module, alone, record.initial)
        assert torch.equal(output[:, -1], record.output), record.call.label


def test_small_calls_run_on_one_thread_and_the_callers_threads_come_back(monkeypatch):
    seen = []
    original = mirror_run.KerasStateful.call

    def watched(self, x, initial_state=None, mask=None):
        seen.append(torch.get_num_threads())
        return original(self, x, initial_state, mask)

    monkeypatch.setattr(mirror_run.KerasStateful, "call", watched)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        records = mirror_run.run_mirror(SERVING)
        next(records)
        assert torch.get_num_threads() == 2  # between steps, the caller's own count
        list(records)
        assert set(seen) == {1}
        seen.clear()
        large = Spec(512, 50, 8, batch_size=256, stateful=True, shuffle=False, units=64)
        assert mirror_run.call_work(large) >= mirror_run.SMALL_CALL_WORK
        list(mirror_run.run_mirror(large))
        assert set(seen) == {2}
    finally:
        torch.set_num_threads(before)


def test_the_callers_threads_come_back_when_keras_would_raise_inside_the_call(monkeypatch):
    def raising(self, x, initial_state=None, mask=None):
        raise mirror_run.KerasStateError("ValueError", "planted")

    monkeypatch.setattr(mirror_run.KerasStateful, "call", raising)
    before = torch.get_num_threads()
    with pytest.raises(mirror_run.KerasStateError):
        next(mirror_run.run_mirror(SERVING))
    assert torch.get_num_threads() == before


def test_the_inspection_module_still_loads_no_torch_of_its_own():
    assert "torch" not in vars(inspection_module)


def test_inputs_made_ahead_on_the_cpu_stay_small_enough_for_the_cache(monkeypatch):
    made = []
    original = mirror_run.padded_batch

    def watched(spec, phase, samples, device):
        made.append(len(samples) * spec.timesteps * spec.step_values)
        return original(spec, phase, samples, device)

    monkeypatch.setattr(mirror_run, "padded_batch", watched)
    large = Spec(1024, 50, 8, batch_size=256, stateful=True, shuffle=False, units=8)
    list(mirror_run.run_mirror(large))
    assert made == [256 * 50 * 8] * 4  # each call's inputs made alone, just before it runs
    made.clear()
    small = Spec(32 * 200, 20, 1, batch_size=32, stateful=True, shuffle=False, units=8)
    list(mirror_run.run_mirror(small))
    grouped = mirror_run.CPU_GROUP_VALUES // (32 * 20)  # 102 calls of 640 values
    assert made == [grouped * 32 * 20, (200 - grouped) * 32 * 20]
