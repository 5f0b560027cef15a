import json

import pytest
from click.testing import CliRunner

from lstm_inspect.cli import main
from lstm_inspect.core.choices import Hook, ResetKind, ResetPolicy, Shuffle
from lstm_inspect.core.errors import SpecError
from lstm_inspect.core.spec import Spec, parse_shape


@pytest.mark.parametrize("text, expected", [("1000,20,1", (1000, 20, 1)), (" 1000 , 20 , 1 ", (1000, 20, 1))])
def test_parse_shape_accepts_three_positive_integers(text, expected):
    assert parse_shape(text) == expected


@pytest.mark.parametrize("text", ["1000,20", "a,b,c", "0,20,1", "-5,20,1", "1e3,20,1", "1,2,3,4", ""])
def test_parse_shape_rejects(text):
    with pytest.raises(SpecError) as raised:
        parse_shape(text)
    assert raised.value.field == "shape"


@pytest.mark.parametrize("text, kind, every", [("never", ResetKind.NEVER, 0), ("epoch", ResetKind.EPOCH, 0),
                                               ("every:3", ResetKind.EVERY, 3)])
def test_reset_policy_parses(text, kind, every):
    policy = ResetPolicy.parse(text)
    assert (policy.kind, policy.every) == (kind, every)
    assert str(policy) == text


@pytest.mark.parametrize("text", ["every:0", "every:", "every:x", "sometimes", "every"])
def test_reset_policy_rejects(text):
    with pytest.raises(SpecError):
        ResetPolicy.parse(text)


@pytest.mark.parametrize("text, expected", [
    ("validation", "validation"), (" Predict , VALIDATION ", "validation,predict"),
    ("every:1,predict", "every:1,predict"),
    ("predict,epoch", "epoch,predict")])
def test_reset_policy_names_its_hooks_in_one_order(text, expected):
    policy = ResetPolicy.parse(text)
    assert str(policy) == expected and bool(policy)
    assert ResetPolicy.parse(str(policy)) == policy


def test_a_reset_policy_is_true_where_it_resets_anywhere():
    assert not ResetPolicy() and not ResetPolicy.parse("never")
    assert ResetPolicy(validation=True) and ResetPolicy(predict=True) and ResetPolicy(ResetKind.EPOCH)


def test_every_k_resets_at_batch_0_when_no_batch_is_named():
    policy = ResetPolicy.parse("every:2")
    assert policy.resets_in(Hook.TRAIN_BATCH_BEGIN)
    assert [policy.resets_in(Hook.TRAIN_BATCH_BEGIN, batch) for batch in range(4)] == [True, False, True, False]
    assert not policy.resets_in(Hook.EPOCH_BEGIN)


@pytest.mark.parametrize("text, message", [
    ("epoch,every:2", "--reset takes one training hook, epoch or every:K (every:K resets at each epoch's batch 0 "
                      "already), got 'epoch,every:2'"),
    ("every:0", "every:K needs a positive integer K, got '0'"),
    ("every:1" + "0" * 18, "every:K takes K of at most 18 digits"),
    ("every:²", "every:K needs a positive integer K, got '²'"),
    ("sometimes", "expected never, or hooks among epoch, every:K, validation and predict separated by commas, "
                  "got 'sometimes'")])
def test_reset_policy_refusals_say_what_it_takes(text, message):
    with pytest.raises(SpecError) as raised:
        ResetPolicy.parse(text)
    assert raised.value.field == "reset"
    assert raised.value.describe({"reset": "--reset"}) == message


@pytest.mark.parametrize("value, expected", [(True, Shuffle.TRUE), (False, Shuffle.FALSE), ("batch", Shuffle.BATCH),
                                             ("false", Shuffle.FALSE)])
def test_shuffle_takes_what_fit_takes(value, expected):
    assert Shuffle.of(value) is expected
    assert Shuffle.of(expected.keras_value) is expected
    assert bool(expected) == (expected is not Shuffle.FALSE)


def test_shuffle_refuses_what_fit_does_not_take():
    with pytest.raises(SpecError) as raised:
        Shuffle.of("sometimes")
    assert raised.value.field == "shuffle"
    assert raised.value.describe({"shuffle": "--shuffle"}) == "--shuffle is True, False or 'batch', got 'sometimes'"


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("epochs", 0), ("units", 0), ("val_samples", -1),
                                          ("seed", -1), ("samples", 0), ("layers", 0)])
def test_spec_rejects_out_of_range_naming_the_field_not_a_flag(field, value):
    with pytest.raises(SpecError) as raised:
        Spec(**{"samples": 10, "timesteps": 5, "features": 1, field: value})
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field} must be") and "--" not in str(raised.value)
    assert raised.value.describe({field: "--flag"}).startswith("--flag must be")


def test_reset_policy_needs_stateful():
    with pytest.raises(SpecError, match="needs stateful"):
        Spec(10, 5, 1, reset=ResetPolicy.parse("epoch"))
    assert Spec(10, 5, 1, stateful=True, reset=ResetPolicy.parse("epoch")).reset.kind == ResetKind.EPOCH


def test_spec_json_names_every_field():
    assert Spec(10, 5, 1, stateful=True, reset=ResetPolicy.parse("every:2")).to_json() == {
        "samples": 10, "timesteps": 5, "features": 1, "batch_size": 32, "stateful": True, "epochs": 1,
        "shuffle": True, "reset": "every:2", "val_samples": 0, "predict_samples": 0, "units": 8, "seed": 0,
        "cell": "lstm", "layers": 1, "bidirectional": False, "keras": "3",
        "backend": "torch", "workflow": None, "calls": "fit()"}


@pytest.mark.parametrize("keras, said, fix", [
    ("3", "When using `stateful=True` in a RNN, the batch size must be static. Found dynamic batch size: "
          "sequence.shape=(None, 5, 2)",
     "keras.Input(batch_shape=(4, 5, 2)), or keras.Input(shape=(5, 2), batch_size=4)"),
    ("2", "If a RNN is stateful, it needs to know its batch size. Specify the batch size of your input tensors",
     "batch_input_shape=(4, 5, 2) on the first layer, or keras.Input(batch_shape=(4, 5, 2))"),
])
def test_a_stateful_layer_on_an_input_of_no_fixed_batch_size_is_kerass_build_error(keras, said, fix):
    result = CliRunner().invoke(main, ["--shape", "8,5,2", "--batch", "4", "--stateful", "--no-fixed-batch",
                                       "--keras", keras, "--dry-run"])
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1, result.output
    assert (f"--stateful with --no-fixed-batch: Keras raises ValueError when the model is built, before any call "
            f"(\"{said}\"): build it with {fix}") in result.stderr
    with pytest.raises(SpecError) as error:
        Spec(8, 5, 2, batch_size=4, stateful=True, keras=keras, fixed_batch=False)
    assert error.value.field == "fixed_batch"
    # A stateless layer needs no fixed batch size: the same answer, said in the JSON's spec.
    stateless = CliRunner().invoke(main, ["--shape", "8,5,2", "--batch", "4", "--no-fixed-batch", "--dry-run",
                                          "--format", "json"])
    fixed = CliRunner().invoke(main, ["--shape", "8,5,2", "--batch", "4", "--dry-run", "--format", "json"])
    unfixed_report, fixed_report = json.loads(stateless.stdout), json.loads(fixed.stdout)
    assert unfixed_report["spec"].pop("fixed_batch") is False and "fixed_batch" not in fixed_report["spec"]
    assert unfixed_report == fixed_report
    assert Spec.from_json(json.loads(stateless.stdout)["spec"]).fixed_batch is False
