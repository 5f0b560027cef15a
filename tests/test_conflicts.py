"""Options that make no sense together are refused with exit 2 and one line, never settled silently.

The pairs are written here from what each option means, not read from lstm_inspect/cli/conflicts.py,
so that a pair the tables lose is caught: every pair of CONFLICTS, FORMAT_ONLY and REPLAY_CONFLICTS,
and the few rules written apart (--max-rows with the timeline, --evidence-batch with --no-evidence,
--data-key without --data). Each option is given a value it takes alone."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_inspect.cli import main
from lstm_inspect.cli.conflicts import CONFLICTS, FORMAT_ONLY, REPLAY_CONFLICTS

BASE = ["--shape", "8,5,1", "--batch", "4", "--backend", "torch"]
# A conflict is refused before the setup is read: with a batch of 0 a conflict missed is another error
# (and nothing runs).
POISONED = ["--shape", "8,5,1", "--batch", "0", "--backend", "torch"]
REPLAY = str(Path(__file__).parent.parent / "examples" / "probe-run.json")

# A value each option takes (its flag as given on the command line).
VALUES = {
    "shape": ["--shape", "8,5,1"], "batch_size": ["--batch", "4"], "stateful": ["--stateful"],
    "epochs": ["--epochs", "2"], "shuffle": ["--shuffle", "false"], "no_shuffle": ["--no-shuffle"],
    "cell": ["--cell", "gru"], "layers": ["--layers", "2"], "bidirectional": ["--bidirectional"],
    "keras": ["--keras", "3"], "backend": ["--backend", "torch"], "reset": ["--reset", "never"],
    "val_samples": ["--val-samples", "4"], "predict_samples": ["--predict-samples", "4"],
    "workflow": ["--calls", "fit(); predict(4)"], "data": ["--data", "{data}"], "data_key": ["--data-key", "x"],
    "units": ["--units", "4"], "seed": ["--seed", "3"], "fixed_batch": ["--no-fixed-batch"],
    "replicas": ["--replicas", "1"], "kernel": ["--kernel", "3"], "padding": ["--padding", "valid"],
    "data_format": ["--data-format", "channels_last"], "lengths": ["--lengths", "5"], "pad": ["--pad", "post"],
    "mask": ["--mask"], "go_backwards": ["--go-backwards"], "mask_value": ["--mask-value", "0"],
    "output_format": ["--format", "json"], "view": ["--view", "timeline"],
    "ascii_only": ["--ascii"],
    "svg": ["--svg", "{export}.svg"], "html": ["--html", "{export}.html"], "max_rows": ["--max-rows", "5"],
    "diagram": ["--diagram", "{export}.diagram.svg"],
    "no_slots": ["--no-slots"], "advice": ["--no-advice"], "no_progress": ["--no-progress"],
    "device": ["--device", "cpu"], "max_steps": ["--max-steps", "2"], "dry_run": ["--dry-run"],
    "evidence": ["--no-evidence"], "evidence_batch": ["--evidence-batch", "0"], "against": ["--against", "keras"],
    "emit": ["--emit", "keras"], "replay": ["--replay", REPLAY],
    "expect_resets": ["--expect-resets", "1"], "expect_slot_resets": ["--expect-slot-resets", "4"],
    "expect_carries": ["--expect-carries", "4"], "expect_error": ["--expect-no-error"], "strict": ["--strict"],
    "quiet": ["--quiet"],
}
SETUP = ["shape", "batch_size", "stateful", "epochs", "shuffle", "no_shuffle", "cell", "layers", "bidirectional",
         "keras", "backend", "reset", "val_samples", "predict_samples", "workflow", "data", "data_key", "units", "seed",
         "fixed_batch", "replicas", "kernel", "padding", "data_format", "lengths", "pad", "mask",
         "go_backwards", "mask_value"]
OUTPUT = ["output_format", "view", "ascii_only", "svg", "html", "diagram", "max_rows", "no_slots", "advice",
          "no_progress"]
RUN = ["device", "max_steps", "dry_run", "evidence", "evidence_batch", "against"]
CI = ["expect_resets", "expect_slot_resets", "expect_carries", "expect_error", "strict", "quiet"]

# What clashes, by what each option means.
PAIRS = sorted({
    ("no_shuffle", "shuffle"),
    # --calls writes the whole workflow; the shorthand writes one.
    *[("workflow", other) for other in ("epochs", "val_samples", "predict_samples")],
    # --emit prints code instead of running: everything about the run, its output and its checks.
    *[("emit", other) for other in ["data", *OUTPUT, *RUN, *CI]],
    ("emit", "replicas"),  # the programs build no MirroredStrategy yet
    ("lengths", "data"),  # the data's own padding is in the data, not made
    ("emit", "mask_value"),  # nor mask the data's steps
    ("mask_value", "pad"),  # the data's masked steps are where the data has them
    # --quiet prints nothing: nothing about how to print.
    *[("quiet", other) for other in ("output_format", "max_rows", "view", "svg", "html", "diagram", "ascii_only",
                                     "no_progress")],
    # A dry run runs nothing: nothing about the run.
    *[("dry_run", other) for other in ("evidence", "evidence_batch", "against", "device", "max_steps")],
    ("against", "max_steps"),  # real Keras runs every step: all of the mirror's must be checked
})
# The formats each output option shapes.
FORMATS = {"view": ("table",), "ascii_only": ("table",), "svg": ("table",), "html": ("table",),
           "max_rows": ("table", "markdown"), "no_slots": ("json",), "against": ("table", "json")}
ALL_FORMATS = ("table", "json", "markdown", "csv")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conflicts")
    data = folder / "x.npy"
    np.save(data, np.zeros((8, 5, 1), "float32"))
    return {"data": str(data), "export": str(folder / "export")}


def value(name, files):
    return [word.format(**files) for word in VALUES[name]]


def flag_of(name):
    """The option as the refusal names it: as given (--no-advice, not --advice)."""
    return VALUES[name][0]


def refused(arguments):
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2, (arguments, result.output)
    assert result.stdout == "" and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), (arguments, result.stderr)
    return lines[0]


def test_every_option_is_classified_here():
    assert set(VALUES) | {"version", "example"} == {param.name for param in main.params}  # both print and exit
    assert set(SETUP) | set(OUTPUT) | set(RUN) | set(CI) | {"emit", "replay"} == set(VALUES)


@pytest.mark.parametrize("first, second", PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_a_conflicting_pair_is_refused_in_either_order(files, first, second):
    for order in ((first, second), (second, first)):
        line = refused([*POISONED, *value(order[0], files), *value(order[1], files)])
        if (first, second) == ("emit", "no_slots"):
            # --no-slots shapes JSON only, and --emit gives no JSON: refused for the format first.
            assert "--no-slots cannot be combined with --format table" in line
            continue
        said = (f"{flag_of(first)} cannot be combined with {flag_of(second)}",
                f"{flag_of(second)} cannot be combined with {flag_of(first)}")
        assert any(text in line for text in said), line


HARMLESS = [("--seed", "3"), ("--units", "4"), ("--cell", "gru"), ("--layers", "2"), ("--stateful",),
            ("--bidirectional",), ("--keras", "3")]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(pair=st.sampled_from([pair for pair in PAIRS if pair != ("emit", "no_slots")]),
       extras=st.lists(st.sampled_from(HARMLESS), max_size=3, unique=True),
       order=st.randoms(use_true_random=False))
def test_a_conflict_is_refused_whatever_else_is_given_and_in_any_order(pair, extras, order):
    groups = [VALUES[pair[0]], VALUES[pair[1]], *extras]
    order.shuffle(groups)
    arguments = ["--shape", "8,5,1", "--batch", "0"] + [word.format(data="x.npy", export="out") for group in groups
                                                        for word in group]
    line = refused(arguments)
    assert flag_of(pair[0]) in line and flag_of(pair[1]) in line and "cannot be combined with" in line


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_an_output_option_is_refused_for_the_formats_it_does_not_shape(files, name):
    for output_format in ALL_FORMATS:
        if output_format in FORMATS[name]:
            continue
        line = refused([*POISONED, *value(name, files), "--format", output_format])
        shaped = " or ".join(FORMATS[name])
        assert f"{flag_of(name)} cannot be combined with --format {output_format}: it applies to --format {shaped}" \
            in line


@pytest.mark.parametrize("name", sorted(set(FORMATS) - {"against"}))
def test_an_output_option_is_taken_with_the_formats_it_shapes(files, name):
    for output_format in FORMATS[name]:
        result = CliRunner().invoke(main, [*BASE, *value(name, files), "--format", output_format, "--dry-run"])
        assert result.exit_code == 0, (name, output_format, result.output)


@pytest.mark.parametrize("name", SETUP + RUN + ["emit"])
def test_replay_refuses_every_option_of_the_setup_and_the_run(files, name):
    line = refused(["--replay", REPLAY, *value(name, files)])
    assert line == f"Error: --replay cannot be combined with {flag_of(name)}: the saved run holds its own setup"


@pytest.mark.parametrize("name", [name for name in OUTPUT + CI])
def test_replay_takes_every_option_of_the_output_and_the_checks(files, name):
    result = CliRunner().invoke(main, ["--replay", REPLAY, *value(name, files)]
                                + (["--format", "json"] if name == "no_slots" else []))
    assert result.exit_code in (0, 1), (name, result.output)  # 1: an --expect-* check that fails
    assert result.exception is None or isinstance(result.exception, SystemExit)


TABLED = sorted({(option, other) for option, others in CONFLICTS.items() for other in others} - {("emit", "no_slots")})


@pytest.mark.parametrize("first, second", TABLED, ids=[f"{a}+{b}" for a, b in TABLED])
def test_every_pair_the_tables_list_is_refused(files, first, second):
    line = refused([*POISONED, *value(first, files), *value(second, files)])
    assert f"{flag_of(first)} cannot be combined with {flag_of(second)}" in line
    for name, formats in FORMAT_ONLY.items():
        other = next(output_format for output_format in ALL_FORMATS if output_format not in formats)
        assert "cannot be combined with --format" in refused([*POISONED, *value(name, files), "--format", other])
    for name in REPLAY_CONFLICTS[:1]:
        assert "--replay cannot be combined" in refused(["--replay", REPLAY, *value(name, files)])


@pytest.mark.parametrize("name", [name for name in SETUP + OUTPUT + RUN + CI
                                  if name not in ("against", "data_key", "shape")])
def test_each_value_is_taken_alone(files, name):
    extra = [] if name in ("device", "max_steps", "evidence", "evidence_batch", "dry_run") else ["--dry-run"]
    if name == "data":
        extra += ["--shape", "8,5,1"]
    if name == "mask_value":  # it reads the data's rows
        extra += ["--shape", "8,5,1", *value("data", files)]
    if name == "no_slots":
        extra += ["--format", "json"]
    if name in ("kernel", "padding", "data_format"):
        extra += ["--cell", "convlstm2d", "--shape", "8,5,4,4,1"]
    arguments = [*value(name, files), *extra]
    arguments = arguments if "--shape" in arguments else ["--shape", "8,5,1", *arguments]
    result = CliRunner().invoke(main, [*arguments, "--no-advice"] if name not in ("advice", "data", "mask_value")
                                else arguments)
    assert result.exit_code in (0, 1, 3), (name, result.output)  # 1: an --expect-* check; 3: Keras raises


# ---- the rules written apart from the tables ------------------------------------------------------


def test_max_rows_is_refused_with_the_timeline():
    line = refused([*POISONED, "--view", "timeline", "--max-rows", "5"])
    assert "--max-rows cannot be combined with --view timeline: the timeline folds to the terminal's width" in line
    assert CliRunner().invoke(main, [*BASE, "--view", "table", "--max-rows", "5", "--dry-run"]).exit_code == 0


def test_evidence_batch_is_refused_without_the_evidence():
    line = refused([*POISONED, "--no-evidence", "--evidence-batch", "1"])
    assert "--evidence-batch cannot be combined with --no-evidence" in line


def test_a_data_key_needs_data(files):
    line = refused([*BASE, "--data-key", "x", "--dry-run"])
    assert line == "Error: --data-key names an array of the file --data gives: give --data too"
    line = refused([*BASE, "--data-key", "x"])
    assert "give --data too" in line


def test_replay_with_data_is_refused(files):
    line = refused(["--replay", REPLAY, "--data", files["data"]])
    assert line == "Error: --replay cannot be combined with --data: the saved run holds its own setup"


def test_a_data_key_is_refused_with_emit():
    line = refused([*BASE, "--emit", "keras", "--data-key", "x"])
    assert "--data-key" in line
