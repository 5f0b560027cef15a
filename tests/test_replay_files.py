"""--replay FILE: runs StateProbe saved, written by hand in the schema keras/records.py reads (see
examples/probe-run.json). What the summary, the verdict and the --expect-* checks count (slots from
"other" states are neither resets nor carries), files that replay to themselves, and damaged or
foreign files, each refused with exit 2 and one line. No Keras: the records are pure numpy."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_inspect.cli import main
from lstm_inspect.core.choices import Phase
from lstm_inspect.keras.records import Recorder, classify

EXAMPLE = json.loads((Path(__file__).parent.parent / "examples" / "probe-run.json").read_text())
SPEC = EXAMPLE["spec"]  # 4 slots, 2 stateful layers


def step(call, batch, start, phase=None, epoch=0, observed=None):
    item = {"call": call, "phase": phase or call.split()[0].split("#")[0], "epoch": epoch, "batch": batch,
            "samples": list(range(len(start))), "start": start}
    if observed is not None:
        item["observed"] = observed
    item["verified"] = None
    return item


def probe_file(path, steps, verdict=None, **fields):
    """A StateProbe file; without `verdict`, the replay says its own."""
    data = {"schema": 1, "observed_by": "StateProbe", "keras_version": "3.15.1", "spec": SPEC,
            "stateful_layers": 2, "steps": steps, **fields}
    if verdict is not None:
        data["verdict"] = verdict
    path.write_text(json.dumps(data))
    return str(path)


def replay(path, *arguments):
    return CliRunner().invoke(main, ["--replay", str(path), *arguments])


def replay_json(path, *arguments):
    result = replay(path, "--format", "json", *arguments)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def carried(label, slots=4):
    return [f"{label}/slot {j}" for j in range(slots)]


# A fit of three batches: zeros, then a batch whose slots were all set by hand ("other"), then one
# carried from it; a predict with one slot of each kind.
STEPS = [
    step("train e0", 0, ["zeros"] * 4),
    step("train e0", 1, ["other"] * 4),
    step("train e0", 2, carried("train e0 b1")),
    step("predict", 0, ["other", "zeros", "train e0 b2/slot 1", "train e0 b2/slot 1"]),
]


# ---- what "other" slots count as -----------------------------------------------------------------


def test_slots_from_other_states_are_neither_resets_nor_carries(tmp_path):
    report = replay_json(probe_file(tmp_path / "run.json", STEPS))
    assert report["summary"] == {"steps": 4, "reset_events": 2, "slot_resets": 5, "tensors_checked": [],
                                 "slot_carries": 6, "checked_steps": 0, "verified": None}
    assert [item["start"] for item in report["steps"]] == [item["start"] for item in STEPS]
    assert report["observed_by"] == "StateProbe"
    assert report["verdict"] == (
        "Observed on your model, Keras 3 (torch): 2 stateful recurrent layers, 4 calls. 2 calls started slots "
        "from zeros (train e0 b0, predict b0); 6 slots carried the final state of a slot of the call before; "
        "5 slots started from other states (set by hand, or from a call the probe did not see).")


def test_a_run_of_other_states_only_has_no_reset_event(tmp_path):
    path = probe_file(tmp_path / "run.json", [step("train e0", 0, ["other"] * 4), step("train e0", 1, ["other"] * 4)])
    report = replay_json(path)
    assert (report["summary"]["reset_events"], report["summary"]["slot_resets"]) == (0, 0)
    assert report["summary"]["slot_carries"] == 0
    assert "0 calls started slots from zeros; 0 slots carried" in report["verdict"]
    assert "8 slots started from other states" in report["verdict"]
    table = replay(path)
    assert table.exit_code == 0 and "other x4" in table.stdout and "reset x" not in table.stdout


def test_the_ci_checks_count_other_slots_as_neither(tmp_path):
    path = probe_file(tmp_path / "run.json", STEPS)
    assert replay(path, "--expect-resets", "2", "--expect-slot-resets", "5", "--expect-carries", "6").exit_code == 0
    for option, wrong in (("--expect-resets", "4"), ("--expect-slot-resets", "9"), ("--expect-carries", "11")):
        result = replay(path, "--quiet", option, wrong)
        assert result.exit_code == 1, (option, result.output)
        assert result.stderr.startswith("failed: expected ")
    failed = replay(path, "--quiet", "--expect-resets", "4").stderr
    assert "expected 4 reset events, found 2 (5 slot resets, 6 slot carries)" in failed


def test_the_verdict_names_the_first_eight_calls_that_reset_and_counts_the_rest(tmp_path):
    steps = [step("predict" + (f"#{k + 1}" if k else ""), 0, ["zeros"] * 4) for k in range(11)]
    report = replay_json(probe_file(tmp_path / "run.json", steps))
    named = ", ".join(["predict b0"] + [f"predict#{k} b0" for k in range(2, 9)])
    assert f"11 calls started slots from zeros ({named} and 3 more); 0 slots carried" in report["verdict"]
    assert "other states" not in report["verdict"]


def test_a_saved_verdict_is_shown_as_saved(tmp_path):
    report = replay_json(probe_file(tmp_path / "run.json", STEPS, verdict="As the probe said."))
    assert report["verdict"] == "As the probe said."


def test_a_stateless_models_run_says_so(tmp_path):
    steps = [step("train e0", batch, []) for batch in range(3)]
    report = replay_json(probe_file(tmp_path / "run.json", steps, stateful_layers=0))
    assert report["verdict"] == ("Observed on your model, Keras 3 (torch): its recurrent layers are stateless, "
                                 "with no state variables to read: every one of its 3 calls starts every slot "
                                 "from zeros.")


# ---- runs that replay to themselves ------------------------------------------------------------

SEGMENTS = [("train e0", "train", 0), ("train e1", "train", 1), ("validation e0", "validation", 0),
            ("evaluate", "evaluate", 0), ("predict", "predict", 0), ("predict#2", "predict", 0),
            ("train_on_batch", "train", 0)]


@st.composite
def probe_runs(draw):
    steps, previous = [], None  # previous: (label, slots)
    for _ in range(draw(st.integers(1, 7))):
        segment, phase, epoch = draw(st.sampled_from(SEGMENTS))
        batch, slots = draw(st.integers(0, 3)), draw(st.integers(1, 5))
        choices = ["zeros", "other"] + ([f"{previous[0]}/slot {j}" for j in range(previous[1])] if previous else [])
        start = draw(st.lists(st.sampled_from(choices), min_size=slots, max_size=slots))
        observed = draw(st.none() | st.builds(lambda z, c, h: {"zero_slots": z, "carried_slots": c, "max_abs_h0": h},
                                              st.integers(0, 5), st.integers(0, 5), st.floats(0, 2)))
        steps.append(step(segment, batch, start, phase, epoch, observed))
        previous = (f"{segment} b{batch}", slots)
    return steps


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=probe_runs(), view=st.sampled_from([[], ["--view", "timeline"], ["--format", "csv"],
                                                  ["--format", "markdown"]]))
def test_a_valid_run_replays_to_itself_with_counts_read_from_its_starts(tmp_path, steps, view):
    spec = {**SPEC, "samples": 5, "batch_size": 5}  # as many slots as any step holds
    path = probe_file(tmp_path / "run.json", steps, spec=spec)
    report = replay_json(path)
    starts = [item["start"] for item in steps]
    assert [item["start"] for item in report["steps"]] == starts
    assert [(s["call"], s["phase"], s["epoch"], s["batch"], s["samples"]) for s in report["steps"]] == \
        [(s["call"], s["phase"], s["epoch"], s["batch"], s["samples"]) for s in steps]
    zeros = [start.count("zeros") for start in starts]
    carries = sum(1 for start in starts for label in start if "/slot " in label)
    others = sum(start.count("other") for start in starts)
    assert report["summary"]["steps"] == len(steps)
    assert report["summary"]["reset_events"] == sum(1 for count in zeros if count)
    assert report["summary"]["slot_resets"] == sum(zeros)
    assert report["summary"]["slot_carries"] == carries
    assert (f"{others:,} slot{'s' * (others != 1)} started from other states" in report["verdict"]) == (others > 0)
    # Its own JSON is a StateProbe file again, and replays to the same bytes.
    again = tmp_path / "again.json"
    again.write_text(replay(path, "--format", "json").stdout)
    assert replay(again, "--format", "json").stdout == replay(path, "--format", "json").stdout
    shown = replay(path, *view)
    assert shown.exit_code == 0 and shown.exception is None, shown.output


# ---- damaged and foreign files -------------------------------------------------------------------


def damaged(data):
    return json.dumps(data)


def changed(change):
    data = copy.deepcopy(EXAMPLE)
    change(data)
    return json.dumps(data)


DAMAGED = {
    "not JSON": ("hello, world", "is not JSON (or is cut short)"),
    "empty": ("", "is not JSON (or is cut short)"),
    "cut short": (json.dumps(EXAMPLE)[:700], "is not JSON (or is cut short)"),
    "not an object": ("[1, 2, 3]", 'is not a run saved by StateProbe (probe.save): no "observed_by"'),
    "observed_by missing": (changed(lambda d: d.pop("observed_by")), "is not a run saved by StateProbe"),
    "another program's": (changed(lambda d: d.update(observed_by="lstm-inspect")), "is not a run saved by StateProbe"),
    "the command's own JSON": (json.dumps({"schema": 1, "spec": SPEC, "steps": []}), "is not a run saved by"),
    "schema 2": (changed(lambda d: d.update(schema=2)), 'with schema 1'),
    "schema missing": (changed(lambda d: d.pop("schema")), 'with schema 1'),
    "schema as text": (changed(lambda d: d.update(schema="1")), 'with schema 1'),
    "fewer starts than samples": (changed(lambda d: d["steps"][2].update(start=["zeros"] * 3)),
                                  "is a damaged StateProbe file: step 2: 4 samples but 3 starts"),
    "more starts than samples": (changed(lambda d: d["steps"][0].update(start=["zeros"] * 5)),
                                 "step 0: 4 samples but 5 starts"),
    "starts not a list": (changed(lambda d: d["steps"][1].update(start="zeros")), "step 1: start is not a list"),
    "a slot of an older call": (changed(lambda d: d["steps"][2].update(start=carried("train e0 b0"))),
                                "step 2: slot 0 starts from 'train e0 b0/slot 0', not a slot of the call before"),
    "a slot of a later call": (changed(lambda d: d["steps"][1].update(start=carried("train e0 b2"))),
                               "step 1: slot 0 starts from 'train e0 b2/slot 0', not a slot of the call before"),
    "a slot before any call": (changed(lambda d: d["steps"][0].update(start=carried("train e0 b0"))),
                               "step 0: slot 0 starts from 'train e0 b0/slot 0', not a slot of the call before"),
    "a slot the call before lacks": (changed(lambda d: d["steps"][1].update(start=carried("train e0 b0")[:3] + [
        "train e0 b0/slot 4"])), "step 1: slot 3 starts from 'train e0 b0/slot 4', not a slot of the call before"),
    "a slot that is no number": (changed(lambda d: d["steps"][1].update(start=carried("train e0 b0")[:3] + [
        "train e0 b0/slot x"])), "step 1: slot 3 starts from 'train e0 b0/slot x'"),
    "an unknown start": (changed(lambda d: d["steps"][1].update(start=["zeros", "zeros", "zeros", "ones"])),
                         "step 1: slot 3 starts from 'ones'"),
    "an unknown phase": (changed(lambda d: d["steps"][3].update(phase="testing")), "is a damaged StateProbe file"),
    "a step without its call": (changed(lambda d: d["steps"][3].pop("call")), "damaged StateProbe file: step 3: call"),
    "a step that is no object": (changed(lambda d: d["steps"].insert(1, 5)), "is a damaged StateProbe file"),
    "steps not a list": (changed(lambda d: d.update(steps={"0": 1})),
                         "is a damaged StateProbe file: steps is not a list"),
    "no steps": (changed(lambda d: d.pop("steps")), "is a damaged StateProbe file: steps is not a list"),
    "no spec": (changed(lambda d: d.pop("spec")), "is a damaged StateProbe file: spec is not a"),
    "a batch size of 0": (changed(lambda d: d["spec"].update(batch_size=0)),
                          "is a damaged StateProbe file: batch_size must be a positive integer"),
    "an unknown cell": (changed(lambda d: d["spec"].update(cell="transformer")),
                        "is a damaged StateProbe file: cell is one of lstm, gru, rnn, convlstm2d, got 'transformer'"),
    "an unknown reset": (changed(lambda d: d["spec"].update(reset="sometimes")), "is a damaged StateProbe file"),
    "an unknown backend": (changed(lambda d: d["spec"].update(backend="theano")),
                           "is a damaged StateProbe file: backend is one of torch, tensorflow, jax"),
    "a spec without samples": (changed(lambda d: d["spec"].pop("samples")), "is a damaged StateProbe file"),
    "a workflow that is not one": (changed(lambda d: d["spec"].update(workflow="foo()")),
                                   "is a damaged StateProbe file: workflow: unknown call foo()"),
    "a negative seed": (changed(lambda d: d["spec"].update(seed=-1)), "seed must be between 0 and 2**32 - 1"),
    "a verdict that is no text": (changed(lambda d: d.update(verdict=5)),
                                  "damaged StateProbe file: verdict is not text"),
    "a batch that is true": (changed(lambda d: d["steps"][0].update(batch=True)),
                             "damaged StateProbe file: step 0: batch is not a whole number"),
    "a call that is a number": (changed(lambda d: d["steps"][2].update(call=2)),
                                "damaged StateProbe file: step 2: call is not text"),
    "an epoch past int64": (changed(lambda d: d["steps"][0].update(epoch=10**18)),
                            "damaged StateProbe file: step 0: epoch must be a whole number from 0"),
    "zero slots past int64": (changed(lambda d: d["steps"][0]["observed"].update(zero_slots=10**18)),
                              "damaged StateProbe file: step 0: zero_slots must be a whole number from 0"),
    "zero slots that are false": (changed(lambda d: d["steps"][1]["observed"].update(zero_slots=False)),
                                  "damaged StateProbe file: step 1: zero_slots must be a whole number from 0"),
    "fewer than no layers": (changed(lambda d: d.update(stateful_layers=-1)),
                             "damaged StateProbe file: stateful_layers is not a whole number from 0"),
}


@pytest.mark.parametrize("name", list(DAMAGED))
def test_a_damaged_or_foreign_file_exits_2_with_one_line(tmp_path, name):
    text, says = DAMAGED[name]
    path = tmp_path / "run.json"
    path.write_text(text)
    for view in ([], ["--format", "json"], ["--view", "timeline"]):
        result = replay(path, *view)
        assert result.exit_code == 2, (name, result.output)
        assert result.stdout == "" and "Traceback" not in result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: Invalid value for '--replay': "), result.stderr
        assert str(path) in lines[0] and says in lines[0], lines[0]


def test_a_missing_or_unreadable_file_exits_2_with_one_line(tmp_path):
    result = replay(tmp_path / "absent.json")
    assert result.exit_code == 2 and "cannot read" in result.stderr and result.stderr.count("\n") == 1
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00{")
    result = replay(binary)
    assert result.exit_code == 2 and "is not JSON" in result.stderr and result.stderr.count("\n") == 1


# Damage that once got past load() and ended in a traceback (exit 1), each now refused field by field.
ONCE_CRASHED = {
    "stateful as text, shown as markdown": (lambda d: d["spec"].update(stateful="yes"), ["--format", "markdown"],
                                            "stateful must be True or False"),
    "samples as NaN": (lambda d: d["spec"].update(samples=float("nan")), [], "NaN is no number"),
    "a workflow that is a number": (lambda d: d["spec"].update(workflow=0), [], "workflow is not text"),
    "steps of more slots than the spec's batch, as a timeline": (
        lambda d: d["spec"].update(samples=1, batch_size=1), ["--view", "timeline"],
        "step 0 holds 4 slots, more than the spec's batch of 1"),
    "a sample index past int64": (lambda d: d["steps"][0].update(samples=[10**30, 1, 2, 3]), [],
                                  "step 0: samples holds something other than whole numbers from 0"),
    "stateful_layers as text": (lambda d: d.update(stateful_layers="two"), [], "stateful_layers is not a whole number"),
    "warnings as a number": (lambda d: d.update(warnings=5), [], "warnings is not a list of text"),
    "warnings as text": (lambda d: d.update(warnings="abc"), [], "warnings is not a list of text"),
}


@pytest.mark.parametrize("name", list(ONCE_CRASHED))
def test_damage_past_the_first_checks_still_exits_2_with_one_line(tmp_path, name):
    change, view, says = ONCE_CRASHED[name]
    path = tmp_path / "run.json"
    path.write_text(changed(change))
    result = replay(path, *view)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1, result.output
    assert says in result.stderr, result.stderr


# ---- the records, as StateProbe makes them ----------------------------------------------------------


def test_the_recorder_counts_other_slots_apart_from_zeros_and_carries():
    recorder = Recorder()
    recorder.start("fit")
    first = np.arange(8.0).reshape(4, 2) + 1
    call = recorder.begin(Phase.TRAIN, "train e0", 0, 0, np.zeros((4, 2)), 4)
    recorder.end(call, first)
    # Slot 0 carries its own, slot 1 is zeros, slot 2 another slot's, slot 3 a state set by hand.
    initial = np.stack([first[0], np.zeros(2), first[0], np.array([9.0, 9.0])])
    call = recorder.begin(Phase.TRAIN, "train e0", 0, 1, initial, 4)
    results = list(recorder.results())
    recorder.close()
    observed = results[1].observed
    assert (observed.zero_slots, observed.carried_slots, observed.max_abs_initial) == (1, 2, 9.0)
    assert results[1].step.start_labels() == ["train e0 b0/slot 0", "zeros", "train e0 b0/slot 0", "other"]
    assert (results[1].step.zero_slots, results[1].step.carried_slots, results[1].step.other_slots) == (1, 2, 1)
    assert results[0].observed.zero_slots == 4 and results[0].step.source is None


def test_a_state_equal_to_several_slots_is_named_after_its_own_then_the_first():
    before = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [5.0, 6.0]])
    assert classify(np.array([[5.0, 6.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]), before).tolist() == [3, 1, 2, 0]
    # More slots than the call before had: the extra ones are named after the first equal row, or other.
    assert classify(np.array([[0.0, 0.0], [1.0, 2.0], [1.0, 2.0], [5.0, 6.0], [1.0, 2.0], [7.0, 7.0]]),
                    before).tolist() == [-1, 1, 2, 3, 0, -2]


def test_a_run_is_read_a_chunk_at_a_time_and_a_value_too_large_for_the_memory_left_refused(tmp_path, monkeypatch):
    from lstm_inspect.data import jsonfile
    from lstm_inspect.data.memory import START_UP, Room
    from lstm_inspect.keras import records

    monkeypatch.setattr(jsonfile, "CHUNK", 1024)
    # Room for a value of two chunks, read back: a run of 40 KiB replays in it, step by step.
    room = START_UP + records.READ_BACK_BYTES_PER_BYTE * 2 * 1024
    monkeypatch.setattr(records, "rooms", lambda: [Room(room, "the memory available")])
    steps = [step("predict", 0, ["zeros"] * 4)] + [step("predict", batch, carried(f"predict b{batch - 1}"))
                                                   for batch in range(1, 200)]
    long_run = probe_file(tmp_path / "long.json", steps)
    assert Path(long_run).stat().st_size > 40 * 1024
    assert replay_json(long_run)["summary"]["slot_carries"] == 199 * 4
    # A verdict of 20,000 characters is one value: refused, with one line, before it is decoded.
    decoded = []
    decode = json.JSONDecoder.raw_decode
    monkeypatch.setattr(json.JSONDecoder, "raw_decode",
                        lambda self, text, at: decoded.append(decode(self, text, at)[0]) or decode(self, text, at))
    path = probe_file(tmp_path / "run.json", STEPS, verdict="x" * 20_000)
    result = replay(path)
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1, result.output
    assert (f"{path} holds a value of 0.0 MiB of JSON, which needs about {(START_UP + 6 * 2 * 1024) / 2**30:,.1f} "
            f"GiB to be read back, more than the {room / 2**30:,.1f} GiB that the memory available leaves: replay "
            "it where there is more memory") in result.stderr, result.stderr
    assert decoded and "x" * 20_000 not in decoded
    monkeypatch.setattr(records, "rooms", lambda: [Room(room * 4, "the memory available")])
    assert replay(path).exit_code == 0  # as much room as it needs: read


def test_steps_written_before_the_head_replay_as_they_do_after_it(tmp_path):
    usual = replay_json(probe_file(tmp_path / "usual.json", STEPS))
    path = tmp_path / "steps-first.json"
    path.write_text(json.dumps({"steps": STEPS, "schema": 1, "observed_by": "StateProbe", "spec": SPEC,
                                "stateful_layers": 2}))
    assert replay_json(path) == usual
    path.write_text(json.dumps({"steps": STEPS[:1] + [5], "schema": 1, "observed_by": "StateProbe", "spec": SPEC}))
    result = replay(path)
    assert result.exit_code == 2 and result.stdout == "" and "step 1 is not an object" in result.stderr


def test_a_file_changed_after_it_was_checked_is_refused_before_a_step_is_shown(tmp_path, monkeypatch):
    from lstm_inspect.keras import records

    path = probe_file(tmp_path / "run.json", STEPS)
    checked = records.replayed

    def then_rewritten(saved):  # another process writes the file between the checking and the showing
        Path(path).write_text(json.dumps({**json.loads(Path(path).read_text()), "verdict": "rewritten"}))
        return checked(saved)

    monkeypatch.setattr(records, "replayed", then_rewritten)
    result = replay(path, "--format", "json")
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1, result.output
    assert f"{path} changed after it was read: replay it again" in result.stderr
