"""The report's sentences, word for word: the verdict's "Call by call: ..." for workflows (as
README.md's Workflows section shows real runs give it), what resets the state, the error sentence,
and the advice's numbers and words (the batch shape, the layout's rows and windows, shuffle and
resets, --batch 1). Dry runs, read from the JSON."""

import json

import pytest
from click.testing import CliRunner

from lstm_inspect.cli import main
from lstm_inspect.core.spec import Spec
from lstm_inspect.core.words import printable
from lstm_inspect.explain.advice import advise

STATEFUL = ["--shape", "8,5,1", "--batch", "4", "--stateful", "--backend", "torch"]
HEAD = ("Keras 3 (torch), stateful LSTM: Keras never resets the state by itself, in any call; slot i of each batch "
        "starts from the final state of slot i of the previous call, so sample j+4 continues sample j (4 parallel "
        "streams), not the last sample of the previous batch.")


def report(*arguments):
    result = CliRunner().invoke(main, [*arguments, "--dry-run", "--format", "json"])
    assert result.exit_code in (0, 3), result.output
    return json.loads(result.stdout)


def verdict(*arguments):
    return report(*arguments)["verdict"]


def advice(*arguments):
    return {item["key"]: item["text"] for item in report(*arguments)["advice"]}


def call_by_call(text):
    assert text.count(" Call by call: ") == 1, text
    return text.split(" Call by call: ")[1]


# ---- call by call ----------------------------------------------------------------------------------


@pytest.mark.parametrize("workflow, said", [
    # README: a twin for batch-1 prediction after training with batch 4.
    ("fit(epochs=2, shuffle=False, batch_size=4); twin(batch_size=1); predict(3, batch_size=1)",
     "train e0 b0 starts from zeros; train e1 b0 carries the state the previous epoch left; twin predict b0 starts "
     "from zeros (a twin is a new model: set_weights copies the weights, never the states)."),
    # README: a manual epoch loop with a reset after each epoch.
    ("(fit(shuffle=False, batch_size=4), reset_state()) * 3; predict(4)",
     "train e0 b0 and 2 more train calls start from zeros; predict b0 starts from zeros."),
    ("fit(validation_samples=4, shuffle=False, batch_size=4); predict(4); save_and_load(); predict(4)",
     "train e0 b0 starts from zeros; validation e0 b0 carries the state training left; predict b0 carries the state "
     "validation left; loaded predict b0 starts from zeros (model.save() keeps the weights, not the states: a loaded "
     "model starts from zeros)."),
    ("twin(batch_size=2); fit(epochs=2, shuffle=False, batch_size=2); predict(2)",
     "twin train e0 b0 starts from zeros (a twin is a new model: set_weights copies the weights, never the states); "
     "twin train e1 b0 carries the state the previous epoch left; twin predict b0 carries the state the twin's "
     "training left."),
    ("fit(shuffle=False, batch_size=4); evaluate(8, batch_size=4); train_on_batch(4) * 2",
     "train e0 b0 starts from zeros; evaluate b0 carries the state training left; train_on_batch b0 carries the "
     "state evaluate left; train_on_batch#2 b0 carries the state the train_on_batch call before it left."),
    ("predict_on_batch(4) * 3",
     "predict_on_batch b0 starts from zeros; predict_on_batch#2 b0 and 1 more predict_on_batch call carry the state "
     "the predict_on_batch call before it left."),
    ("predict(4); save_and_load(); fit(shuffle=False, batch_size=4); predict(4)",
     "predict b0 starts from zeros; loaded train e0 b0 starts from zeros (model.save() keeps the weights, not the "
     "states: a loaded model starts from zeros); loaded predict b0 carries the state the loaded model's training "
     "left."),
])
def test_the_verdict_says_how_each_call_began(workflow, said):
    assert call_by_call(verdict(*STATEFUL, "--calls", workflow)) == said


def test_a_serving_loop_of_batch_1_reads_as_readme_shows_it():
    text = verdict("--shape", "8,5,1", "--batch", "1", "--stateful", "--backend", "torch", "--calls", "predict(1) * 5")
    assert text == ("Keras 3 (torch), stateful LSTM: Keras never resets the state by itself, in any call; slot i of "
                    "each batch starts from the final state of slot i of the previous call, so sample j+1 continues "
                    "sample j (one slot, one stream): each batch's only sample continues the previous batch's. Nothing "
                    "resets it here: each slot's state runs on through every phase. Call by call: predict b0 starts "
                    "from zeros; predict#2 b0 and 3 more predict calls carry the state the predict call before it "
                    "left.")


def test_a_workflows_verdict_reads_whole():
    assert verdict(*STATEFUL, "--calls",
                   "fit(epochs=2, shuffle=False, batch_size=4); twin(batch_size=1); predict(3, batch_size=1)") == (
        HEAD + " Nothing resets it within a model; a twin or a loaded model starts from zeros. Call by call: "
        "train e0 b0 starts from zeros; train e1 b0 carries the state the previous epoch left; twin predict b0 starts "
        "from zeros (a twin is a new model: set_weights copies the weights, never the states).")
    assert verdict(*STATEFUL, "--calls", "predict(4); save_and_load(); predict(4)").startswith(
        HEAD + " Nothing resets it within a model; a twin or a loaded model starts from zeros. Call by call: ")
    assert verdict(*STATEFUL, "--calls", "(fit(shuffle=False, batch_size=4), reset_state()) * 3").startswith(
        HEAD + " Only your reset_state() calls zero it. Call by call: ")
    assert verdict(*STATEFUL, "--calls", "fit(shuffle=False, batch_size=4); predict(4)").startswith(
        HEAD + " Nothing resets it here: each slot's state runs on through every phase. Call by call: ")


def test_the_callbacks_resets_are_said_with_the_calls():
    text = verdict(*STATEFUL, "--reset", "epoch,validation,predict", "--calls",
                   "fit(epochs=2, validation_samples=4, shuffle=False, batch_size=4); predict(4); reset_state(); "
                   "predict(4)")
    assert text == (HEAD + " Your callback zeroes all slots before each epoch's first batch, so each slot carries "
                    "through the epoch. Your callback zeroes all slots before validation and evaluate (on_test_begin) "
                    "and before predict (on_predict_begin). So do your reset_state() calls. Call by call: train e0 b0 "
                    "and 1 more train call start from zeros; validation e0 b0 and 1 more validation call start from "
                    "zeros; predict b0 and 1 more predict call start from zeros.")


def test_a_workflow_that_raises_says_the_batch_size_it_was_built_for():
    text = verdict(*STATEFUL, "--calls", "fit(shuffle=False, batch_size=4); predict(2, batch_size=1)")
    assert text.endswith(" Call by call: train e0 b0 starts from zeros. But Keras raises ValueError at step 2: a "
                         "stateful layer needs every batch to hold exactly the batch size it was built for.")
    shorthand = verdict("--shape", "10,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--backend", "torch")
    assert shorthand.endswith(" But Keras raises ValueError at step 2: a stateful layer needs every batch to hold "
                              "exactly 4 samples.")
    assert "Call by call" not in shorthand


def test_a_stateless_workflow_carried_by_hand():
    text = verdict("--shape", "8,5,1", "--batch", "4", "--backend", "torch", "--calls",
                   'predict(4, initial_state="previous") * 3')
    assert text == ("Keras 3 (torch), stateless LSTM: the layer starts every call from zeros, one slot per sequence, "
                    "and keeps nothing between calls. The states you pass back by hand (return_state=True, then "
                    "initial_state=) carry sample k of one predict into sample k of the next, as slot k of a stateful "
                    "layer would. Call by call: predict b0 starts from zeros; predict#2 b0 and 1 more predict call "
                    "carry the state the predict call before it left.")
    plain = verdict("--shape", "8,5,1", "--batch", "4", "--backend", "torch", "--calls", "predict(4) * 2")
    assert "by hand" not in plain and call_by_call(plain) == "predict b0 and 1 more predict call start from zeros."


# ---- the shorthand's verdict ----------------------------------------------------------------------


@pytest.mark.parametrize("options, says", [
    (["--batch", "1"], "so sample j+1 continues sample j (one slot, one stream): each batch's only sample continues "
                       "the previous batch's. Nothing resets it here"),
    (["--batch", "4", "--reset", "every:2"], "(4 parallel streams), not the last sample of the previous batch. Your "
     "callback zeroes all slots before every training batch whose index is a multiple of 2, so each slot carries "
     "through at most 2 training batches."),
    (["--batch", "4", "--reset", "every:1"], "so each slot carries through at most 1 training batch."),
    (["--batch", "4", "--reset", "epoch", "--epochs", "2"], "Your callback zeroes all slots before each epoch's first "
     "batch, so each slot carries through the epoch's 2 training batches."),
    (["--batch", "8", "--reset", "epoch"], "so each slot carries through the epoch's 1 training batch."),
])
def test_the_shorthands_verdict_names_its_numbers(options, says):
    text = verdict("--shape", "8,5,1", "--stateful", "--no-shuffle", "--backend", "torch", *options)
    assert text.startswith("Keras 3 (torch), stateful LSTM: Keras never resets the state inside fit, validation or "
                           "predict; slot i of each batch starts from the final state of slot i of the previous call")
    assert says in text


# ---- the advice's numbers and words ------------------------------------------------------------------


def test_the_advice_names_the_batch_shape_and_the_layout_in_numbers():
    found = advice("--shape", "12,5,3", "--batch", "4", "--stateful", "--no-shuffle", "--backend", "torch")
    assert found["batch size"] == ("fix the batch size with keras.Input(batch_shape=(4, 5, 3)) or "
                                   "keras.Input(shape=(5, 3), batch_size=4): without it Keras raises \"When using "
                                   "`stateful=True` in a RNN, the batch size must be static\"; Keras 3 refuses "
                                   "LSTM(batch_input_shape=...) (\"Unrecognized keyword arguments passed to LSTM\")")
    assert found["layout"] == ("row j+4 must continue row j (slot i of batch k+1 continues slot i of batch k), not "
                               "row j+1: with 12 rows each slot runs 3 windows of one series. From long series, "
                               "lstm_inspect.layout.stateful_layout(series, timesteps=5, batch_size=4) orders the "
                               "windows so and returns where each row came from; reset every K batches where each "
                               "series holds K windows (--reset every:K), or once per epoch when it spans the epoch")
    assert found["stateful?"] == ("stateful fits when each row is a window of a longer series: the 4 slots are 4 "
                                  "series run side by side, each slot's state flowing from one window to the next. "
                                  "If each of the 12 samples is a whole sequence, use a stateless layer: here a state "
                                  "would flow into an unrelated sequence; and reset where a series ends (a callback, "
                                  "or reset_state() between series)")
    keras2 = advice("--shape", "12,5,3", "--batch", "4", "--stateful", "--keras", "2")
    assert "batch_input_shape=(4, 5, 3)), or keras.Input(batch_shape=(4, 5, 3))" in keras2["batch size"]
    assert "GRU(units, stateful=True" in advice("--shape", "12,5,3", "--batch", "4", "--stateful", "--keras", "2",
                                                "--cell", "gru")["batch size"]


def test_the_stateless_advice_names_its_numbers_and_the_flag():
    found = advice("--shape", "1000,600,2", "--batch", "32", "--backend", "torch")
    assert found["stateful?"] == ("stateless fits when each of the 1,000 samples is one whole sequence of 600 steps: "
                                  "every sample starts from zeros, and the batch size 32 only changes the "
                                  "optimisation, not what the layer sees. Stateful pays only when long series are cut "
                                  "into windows of 600 steps: then --stateful with B = the number of series run side "
                                  "by side, shuffle off, and a reset where a series ends. To run a model trained so "
                                  "over a long sequence in pieces (streaming, generation), predict on a stateful "
                                  "twin for batch 1, the weights copied (twin(batch_size=1, stateful=True)): each "
                                  "piece continues the one before, as one stateless run over the whole sequence "
                                  "would; reset_state() where it ends")
    assert {"batch size", "reset", "set states", "layout"}.isdisjoint(found)
    library = {item.key: item.text for item in advise(Spec(1000, 600, 2, batch_size=32, backend="torch"))}
    assert "then stateful with B = " in library["stateful?"]  # the library names its field, not the flag


@pytest.mark.parametrize("options, shuffle_said, reset_said", [
    ([], True, True),
    (["--no-shuffle"], False, True),
    (["--no-shuffle", "--reset", "epoch"], False, False),
    (["--no-shuffle", "--reset", "every:2"], False, False),
    (["--no-shuffle", "--reset", "predict"], False, False),
    (["--no-shuffle", "--reset", "validation"], False, True),
    (["--calls", "fit(shuffle=False, batch_size=4); predict(4)"], False, True),  # fit's own shuffle=False
    (["--no-shuffle", "--calls", "fit(shuffle=True, batch_size=4)"], True, True),
    (["--no-shuffle", "--calls", 'fit(batch_size=4); fit(shuffle="batch", batch_size=4)'], True, True),
    (["--calls", "predict(4) * 2"], False, True),  # no fit: nothing shuffles
])
def test_the_stateful_advice_asks_for_what_the_setup_lacks(options, shuffle_said, reset_said):
    text = advice(*STATEFUL, *options)["stateful?"]
    assert ("; turn shuffle off (--no-shuffle (shuffle=False)): shuffling breaks every series" in text) == shuffle_said
    assert ("; and reset where a series ends (a callback, or reset_state() between series)" in text) == reset_said


def test_batch_1_advice_names_one_slot_in_numbers():
    found = advice("--shape", "8,5,1", "--batch", "1", "--stateful", "--no-shuffle", "--backend", "torch")
    assert "keras.Input(batch_shape=(1, 5, 1))" in found["batch size"]
    assert "with 8 rows each slot runs 8 windows of one series" in found["layout"]
    assert "stateful_layout(series, timesteps=5, batch_size=1)" in found["layout"]
    assert found["layout"].startswith("row j+1 must continue row j (slot i of batch k+1 continues slot i of batch k)")


@pytest.mark.parametrize("words", [
    pytest.param("the 1 slot is 1 series", id="one slot"),
    pytest.param("row j+1 must continue row j (slot i of batch k+1 continues slot i of batch k): with", id="not j+1"),
])
def test_batch_1_advice_reads_for_one_slot(words):
    found = advice("--shape", "8,5,1", "--batch", "1", "--stateful", "--no-shuffle", "--backend", "torch")
    assert words in found["stateful?"] + " " + found["layout"]


def test_one_window_per_slot_is_singular():
    assert "each slot runs 1 window of one series" in advice("--shape", "4,5,1", "--batch", "4", "--stateful")["layout"]


@pytest.mark.parametrize("shape, batch, workflow, fix", [
    ("100,10,3", "1", "fit()", "fit() asks for batches of 32 (batch_size=32, Keras's default) from the model, built "
     "for 1: call it with batch_size=1"),  # 100 = 3 x 32 + 4: a twin for 32 would raise at the last batch
    ("96,10,3", "1", "fit()", "fit() asks for batches of 32 (batch_size=32, Keras's default) from the model, built "
     "for 1: call it with batch_size=1, or make a stateful twin for 32 first (twin(batch_size=32), which takes the "
     "weights and starts from zeros)"),
    ("10,3,1", "4", "predict(4); twin(1); predict(2)", "predict(2) sends its 2 samples as one batch (batch_size=32, "
     "Keras's default) to the twin model, built for 1: call it with batch_size=1, or make a stateful twin for 2 "
     "first (twin(batch_size=2), which takes the weights and starts from zeros)"),
    ("12,3,1", "2", "fit(batch_size=4, validation_samples=6)", "fit(batch_size=4, validation_samples=6) asks for "
     "batches of 4 (batch_size=4) from the model, built for 2: call it with batch_size=2"),  # 6 = 4 + 2
    ("8,3,1", "2", "predict(8, batch_size=4)", "predict(8, batch_size=4) asks for batches of 4 (batch_size=4) from "
     "the model, built for 2: call it with batch_size=2, or make a stateful twin for 4 first (twin(batch_size=4), "
     "which takes the weights and starts from zeros)"),
    ("10,3,1", "2", "predict(8, batch_size=4)", "predict(8, batch_size=4) asks for batches of 4 (batch_size=4) from "
     "the model, built for 2: call it with batch_size=2, or make a stateful twin for 4 first (twin(batch_size=4), "
     "which takes the weights and starts from zeros)"),  # the 8 samples predict takes, not the 10 of fit's data
    # batch_size=4 alone would leave a partial batch of 2
    ("8,3,1", "4", "predict(6)", "predict(6) sends its 6 samples as one batch (batch_size=32, Keras's default) to "
     "the model, built for 4: call it with batch_size=4 and a multiple of 4 samples (e.g. 4), or make a stateful "
     "twin for 6 first (twin(batch_size=6), which takes the weights and starts from zeros)"),
    ("9,3,1", "2", "fit(batch_size=4)", "fit(batch_size=4) asks for batches of 4 (batch_size=4) from the model, "
     "built for 2: call it with batch_size=2 and a multiple of 2 training samples (e.g. 8)"),
    ("12,3,1", "2", "fit(batch_size=4, validation_samples=3)", "fit(batch_size=4, validation_samples=3) asks for "
     "batches of 4 (batch_size=4) from the model, built for 2: call it with batch_size=2 and training and "
     "validation samples in multiples of 2"),
    # the model's own batch size, and still a batch of another size
    ("8,3,1", "4", "predict_on_batch(3)", "predict_on_batch(3) sends 3 samples at once to the model, built for "
     "batches of 4: send 4, or make a stateful twin for 3 first (twin(batch_size=3))"),
    ("8,3,1", "4", "predict(2, batch_size=4)", "predict(2, batch_size=4) sends 2 samples at once to the model, built "
     "for batches of 4: send 4, or make a stateful twin for 2 first (twin(batch_size=2))"),
    ("10,3,1", "4", "evaluate(10, batch_size=4)", "the 10 samples of evaluate(10, batch_size=4) end with a batch of 2: "
     "give it a multiple of 4 samples (e.g. 8), as drop_remainder does"),
    ("10,3,1", "4", "fit(batch_size=4)", "fit's 10 training samples (N) end with a batch of 2: give it a multiple of "
     "4 samples (e.g. 8), as drop_remainder does"),
    ("3,3,1", "4", "fit(batch_size=4)", "fit's 3 training samples (N) end with a batch of 3: give it a multiple of "
     "4 samples (e.g. 4), as drop_remainder does"),
])
def test_the_fix_for_a_calls_batch_size_says_what_it_sends_and_a_twin_only_where_one_works(shape, batch, workflow,
                                                                                          fix):
    found = report("--shape", shape, "--batch", batch, "--stateful", "--no-shuffle", "--backend", "torch",
                   "--calls", workflow)
    assert found["error"]["fix"] == fix


def test_text_read_from_a_file_is_shown_with_its_control_characters_escaped():
    assert printable("a b\tc") == "a b\\tc"
    assert printable("a b\x1b[2Jc\u200e d") == "a b\\x1b[2Jc\\u200e d"
    assert printable("plain text, ünïcode") == "plain text, ünïcode"
