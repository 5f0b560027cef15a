"""The probe's pure part: classifying slots from tensors, and its steps kept out of memory."""

import tracemalloc

import numpy as np

from lstm_inspect.core.choices import Phase
from lstm_inspect.keras.records import Recorder, classify


def test_each_slot_is_zeros_its_own_carry_another_slots_or_other():
    before = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    initial = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 4.0], [7.0, 8.0]])
    assert classify(initial, before).tolist() == [0, -1, 1, -2]
    assert classify(initial, None).tolist() == [-2, -1, -2, -2]
    # Exactly equal, not close: a state nudged by 1e-7 was not carried.
    assert classify(before + 1e-7, before).tolist() == [-2, -2, -2]


def test_the_recorder_keeps_only_the_last_final_states_and_names_calls_as_the_tool():
    recorder = Recorder()
    recorder.start("fit")
    states = np.arange(8.0).reshape(4, 2) + 1
    call = recorder.begin(Phase.TRAIN, recorder.segment("train", 0), 0, 0, np.zeros((4, 2)), 4)
    recorder.end(call, states)
    call = recorder.begin(Phase.TRAIN, recorder.segment("train", 0), 0, 1, states, 4)
    recorder.end(call, states * 2)
    recorder.start("predict")
    recorder.start("predict")
    call = recorder.begin(Phase.PREDICT, recorder.segment("predict", None), 0, 0, states[::-1] * 2, 4)
    labels = [(result.step.call.label, result.step.start_labels()) for result in recorder.results()]
    assert labels == [("train e0 b0", ["zeros"] * 4),
                      ("train e0 b1", [f"train e0 b0/slot {j}" for j in range(4)]),
                      ("predict#2 b0", [f"train e0 b1/slot {j}" for j in (3, 2, 1, 0)])]
    recorder.close()


def test_ten_thousand_batches_hold_no_more_than_a_thousand():
    def peak(batches):
        recorder = Recorder()
        recorder.start("fit")
        states = np.ones((32, 64))
        tracemalloc.start()
        for batch in range(batches):
            call = recorder.begin(Phase.TRAIN, "train e0", 0, batch, states, 32)
            recorder.end(call, states)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        recorder.close()
        return top

    assert peak(10_000) < 1.5 * peak(1_000) + 100_000
