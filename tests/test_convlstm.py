"""--cell convlstm2d: each timestep an image, each slot's state (h, c) an image too. The setup's
rules and refusals, the shapes Keras builds, the command's answer held to real Keras, and
StateProbe on a user's own ConvLSTM2D. (Every Keras's run, slot by slot and number by number,
is in test_backends; the module next to Keras's layer in test_module_against_keras.)"""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from usage import usage_error

from lstm_inspect.cli import main
from lstm_inspect.core.errors import SpecError
from lstm_inspect.core.spec import Spec, parse_shape

CONV = ["--cell", "convlstm2d", "--batch", "4"]


@pytest.mark.parametrize(("words", "said"), [
    (["--shape", "8,3,1", *CONV], "--cell convlstm2d takes --shape N,T,H,W,C"),
    (["--shape", "8,3,5,6,2", "--batch", "4"], "--shape N,T,H,W,C (an image per timestep) is for --cell convlstm2d"),
    (["--shape", "8,3,5,6", *CONV], "expected N,T,F (samples,timesteps,features), or N,T,H,W,C"),
    (["--shape", "8,3,5,0,2", *CONV], "N, T, H, W and C must be positive integers"),
    (["--shape", "8,3,5,6,1", "--batch", "4", "--kernel", "3"], "--kernel is ConvLSTM2D's: it needs --cell convlstm2d"),
    (["--shape", "8,3,1", "--padding", "same"], "--padding is ConvLSTM2D's: it needs --cell convlstm2d"),
    (["--shape", "8,3,1", "--data-format", "channels_last"], "--data-format is ConvLSTM2D's: it needs --cell"),
    (["--shape", "8,3,2,5,6", *CONV, "--data-format", "channels_first", "--kernel", "6"],
     "Received `inputs shape=(B, 2, 5, 6)`, `kernel shape=(6, 6, 2, 8)`"),
    (["--shape", "8,3,5,6,2", *CONV, "--kernel", "6", "--keras", "2"],
     "tf-keras raises ValueError when the model is built: \"Negative dimension size caused by subtracting 6 from 5 "
     "for '{{node conv_lstm2d/convolution}} = Conv2D[...]' with input shapes: [B,5,6,2], [6,6,2,8]\""),
    (["--shape", "8,3,5,6,2", *CONV, "--kernel", "0"], "--kernel must be a positive integer"),
    (["--shape", "8,3,2", *CONV, "--data-format", "channels_first"],
     "takes --shape N,T,C,H,W: samples, timesteps, then"),
    (["--shape", "8,3,4,6,2", *CONV, "--kernel", "7"], "`kernel shape=(7, 7, 2, 8)`, ... `padding=valid`"),
    (["--shape", "8,3,5,6,2", *CONV, "--kernel", "6"],
     "Computed output size would be zero or negative. Received `inputs shape=(B, 5, 6, 2)`, `kernel shape=(6, 6, 2, "),
    (["--shape", "8,3,5,6,2", *CONV, "--kernel", "6"],
     "use padding='same' (--padding same), or a kernel_size of at most 5"),
    (["--shape", "8,3,5,6,2", *CONV, "--layers", "2"], "with padding='valid' shrink the frame layer by layer"),
    (["--shape", "8,3,5,6,2", *CONV, "--bidirectional"], "--bidirectional ConvLSTM2D is not followed yet"),
    (["--shape", "8,3,5,6,2", *CONV, "--stateful", "--backend", "tensorflow", "--replicas", "2"],
     "--replicas with ConvLSTM2D is not followed yet"),
    (["--shape", "8,3,5,6,2", *CONV, "--stateful", "--no-fixed-batch"],
     "Found dynamic batch size: sequence.shape=(None, 3, 5, 6, 2)\"): build it with "
     "keras.Input(batch_shape=(4, 3, 5, 6, 2)), or keras.Input(shape=(3, 5, 6, 2), batch_size=4)"),
])
def test_what_keras_rejects_or_is_not_followed_is_one_line(words, said):
    assert said in usage_error(*words)


def _data_advice(path, rows):
    result = CliRunner().invoke(main, ["--shape", f"{rows},3,3,4,2", *CONV, "--stateful", "--no-shuffle",
                                       "--backend", "torch", "--data", str(path), "--format", "json", "--dry-run"])
    assert result.exit_code == 0, result.output
    return next(item["text"] for item in json.loads(result.stdout)["advice"] if item["key"] == "data")


def test_data_of_images_in_series_order_gets_a_reorder_that_works(tmp_path):
    """4 series of 6 sliding windows of images, one series after another: the advice's reorder,
    applied, makes row j+4 row j moved a step on, which a stateful layer of batch 4 carries."""
    from lstm_inspect.data.datafile import continuity

    series = np.random.default_rng(0).uniform(-1, 1, (4, 8, 3, 4, 2)).astype("float32")
    x = np.concatenate([np.stack([one[j:j + 3] for j in range(6)]) for one in series])
    np.save(tmp_path / "x.npy", x)
    said = _data_advice(tmp_path / "x.npy", 24)
    assert "your rows are 4 series of 6 sliding windows each" in said
    reorder = said.split("and x.reshape", 1)[1].split(" makes row", 1)[0]
    reordered = eval("x.reshape" + reorder, {"x": x})  # the advice's own expression
    assert reordered.shape == x.shape and continuity(reordered, 4).slot_stride == 1


def test_stateful_layout_lays_out_images_row_j_plus_b_continuing_row_j(tmp_path):
    from lstm_inspect.layout import stateful_layout

    series = np.random.default_rng(1).uniform(-1, 1, (4, 9, 3, 4, 2)).astype("float32")
    laid = stateful_layout(series, timesteps=3, batch_size=4)
    assert laid.x.shape == (12, 3, 3, 4, 2)
    for row in range(8):
        np.testing.assert_array_equal(laid.x[row + 4][0], series[row % 4, 3 * (row // 4) + 3])
    np.save(tmp_path / "x.npy", laid.x)
    assert "no row of your 12 overlaps the next or the one 4 rows on" in _data_advice(tmp_path / "x.npy", 12)


def test_data_of_another_shape_names_the_images_expected(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((8, 3, 2), "float32"))
    assert "has shape (8, 3, 2), not --shape (8, 3, 5, 6, 2)" in usage_error(
        "--shape", "8,3,5,6,2", *CONV, "--data", str(tmp_path / "x.npy"))


def test_the_shape_takes_three_or_five_numbers():
    assert parse_shape("8,3,5,6,2") == (8, 3, 5, 6, 2)
    assert parse_shape("8, 3, 1") == (8, 3, 1)
    for wrong in ("8,3", "8,3,5,6", "8,3,5,6,2,1"):
        with pytest.raises(ValueError):
            parse_shape(wrong)


@pytest.mark.parametrize(("kernel", "padding", "state"), [(3, "valid", (3, 4, 6)), (5, "valid", (1, 2, 6)),
                                                          (2, "same", (5, 6, 6)), (6, "same", (5, 6, 6))])
def test_the_state_is_an_image_that_valid_padding_shrinks(kernel, padding, state):
    spec = Spec(8, 3, 2, batch_size=4, cell="convlstm2d", frame=(5, 6), kernel=kernel, padding=padding, units=6)
    assert spec.step_shape == (5, 6, 2) and spec.step_values == 60
    assert spec.state_shape == state and spec.state_width == np.prod(state)


def test_channels_first_takes_n_t_c_h_w_and_holds_filters_first(tmp_path):
    """Keras's data_format='channels_first': inputs (C, H, W) per timestep, states (filters, H', W')."""
    spec = Spec(8, 3, 2, batch_size=4, cell="convlstm2d", frame=(5, 6), units=4, data_format="channels_first")
    assert spec.step_shape == (2, 5, 6) and spec.state_shape == (4, 3, 4)
    result = CliRunner().invoke(main, ["--shape", "8,3,2,5,6", *CONV, "--units", "4", "--data-format",
                                       "channels_first", "--stateful", "--no-shuffle", "--backend", "torch",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["spec"]["features"], report["spec"]["frame"]) == (2, [5, 6])
    assert Spec.from_json(report["spec"]).data_format == "channels_first"
    assert all(step["verified"] for step in report["steps"])
    advice = CliRunner().invoke(main, ["--shape", "8,3,2,5,6", *CONV, "--data-format", "channels_first",
                                       "--stateful", "--no-shuffle", "--keras", "2", "--no-evidence", "--format",
                                       "json"]).stdout
    words = " ".join(item["text"] for item in json.loads(advice)["advice"])
    assert "(B, filters, 3, 4)" in words and 'ConvLSTM2D(filters, kernel_size, data_format="channels_first"' in words


def test_channels_first_is_channels_last_transposed():
    """The same weights on the same images, laid out either way, give the same states, transposed."""
    import torch

    from lstm_inspect import ConvLSTM2D

    torch.manual_seed(5)
    last = ConvLSTM2D(2, 3, 3, (5, 6), padding="same", num_layers=2)
    first = ConvLSTM2D(2, 3, 3, (5, 6), padding="same", num_layers=2, data_format="channels_first")
    first.load_state_dict(last.state_dict())
    x = torch.rand(4, 3, 5, 6, 2)
    with torch.no_grad():
        out_last, states_last = last(x)
        out_first, states_first = first(x.permute(0, 1, 4, 2, 3))
    torch.testing.assert_close(out_first, out_last.permute(0, 1, 4, 2, 3))
    for ours, theirs in zip(states_first, states_last):
        assert ours.shape == first.state_shape(4)
        torch.testing.assert_close(ours, theirs.permute(0, 1, 4, 2, 3))


def test_a_spec_round_trips_through_json_and_others_keep_their_json():
    spec = Spec(8, 3, 2, batch_size=4, cell="convlstm2d", frame=(5, 6), kernel=2, padding="same", layers=2)
    assert Spec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert {"frame", "kernel", "padding"}.isdisjoint(Spec(8, 3, 2, batch_size=4).to_json())
    with pytest.raises(SpecError) as raised:
        Spec(8, 3, 2, batch_size=4, kernel=5)
    assert raised.value.field == "kernel"


def test_a_kernel_larger_than_the_frame_runs_with_same_as_in_keras():
    result = CliRunner().invoke(main, ["--shape", "8,3,4,6,2", *CONV, "--kernel", "7", "--padding", "same",
                                       "--stateful", "--no-shuffle", "--units", "2", "--backend", "torch", "--format",
                                       "json"])
    assert result.exit_code == 0, result.output
    assert all(step["verified"] for step in json.loads(result.stdout)["steps"])


def test_the_table_names_the_cell_and_checks_both_images():
    result = CliRunner().invoke(main, ["--shape", "8,3,5,6,2", *CONV, "--stateful", "--no-shuffle", "--units", "3",
                                       "--backend", "torch", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["spec"]["frame"] == [5, 6] and report["spec"]["cell"] == "convlstm2d"
    assert [step["start"] for step in report["steps"]] == [["zeros"] * 4, ["train:0", "train:1", "train:2",
                                                                           "train:3"]]
    assert all(step["verified"] for step in report["steps"])
    assert "stateful ConvLSTM2D" in report["verdict"]


@pytest.mark.keras
def test_every_step_agrees_with_real_keras_on_the_command_line():
    result = CliRunner().invoke(main, ["--shape", "10,3,4,5,2", *CONV, "--stateful", "--no-shuffle", "--units", "3",
                                       "--kernel", "2", "--padding", "same", "--epochs", "2", "--reset", "epoch",
                                       "--predict-samples", "8", "--backend", "torch", "--against", "keras",
                                       "--format", "json"])
    report = json.loads(result.stdout)
    keras = report["keras"]
    # 10 in batches of 4: torch's Keras raises its ValueError at fit's partial batch, as predicted.
    assert result.exit_code == 3, result.output
    assert keras["agree"] is True and keras["max_state_diff"] < 1e-5
    assert [step["start"] for step in keras["steps"]] == [step["start"] for step in report["steps"]][:2]
    assert "Received batch size: 2" in report["error"]["message"]


@pytest.mark.keras
@pytest.mark.parametrize("keras_and_backend", [["--backend", "torch"], ["--backend", "tensorflow"],
                                               ["--backend", "jax"], ["--keras", "2"]])
def test_states_handed_back_by_hand_agree_with_real_keras(keras_and_backend):
    """A stateless ConvLSTM2D with return_state=True, its images passed back as initial_state,
    in batches of 4 and then of 2 (each batch starting from the rows it covers)."""
    result = CliRunner().invoke(main, ["--shape", "8,3,2,4,5", *CONV, "--units", "2", "--data-format",
                                       "channels_first", *keras_and_backend, "--against", "keras", "--format", "json",
                                       "--calls", 'predict(8, initial_state="previous") * 2; '
                                                  'predict(8, batch_size=2, initial_state="previous")'])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["keras"]["agree"] is True and report["keras"]["max_state_diff"] < 1e-5
    # predict's default batch_size=32: each of the first two is one batch of 8; then batches of 2.
    assert report["steps"][1]["start"] == [f"predict:{sample}" for sample in range(8)]
    assert report["steps"][-1]["start"] == ["predict:14", "predict:15"]


@pytest.mark.keras
def test_stateprobe_describes_a_users_convlstm2d(tmp_path):
    import keras

    probe = _probed((3, 5, 6, 2), keras.layers.ConvLSTM2D(4, 2, padding="same", stateful=True), flatten=True)
    spec = probe._spec_now()
    assert (spec.cell, spec.frame, spec.kernel, spec.padding, spec.units) == ("convlstm2d", (5, 6), 2, "same", 4)
    probe.save(tmp_path / "run.json")
    replayed = CliRunner().invoke(main, ["--replay", str(tmp_path / "run.json"), "--format", "json"])
    assert replayed.exit_code == 0 and json.loads(replayed.stdout)["spec"]["frame"] == [5, 6]


@pytest.mark.keras
def test_stateprobe_says_where_it_shows_a_convlstm2d_it_does_not_follow():
    import keras

    from lstm_inspect.keras.probe import StateProbe

    inputs = keras.Input(batch_shape=(2, 3, 5, 6, 2))
    hidden = keras.layers.ConvLSTM2D(4, 3, stateful=True, return_sequences=True)(inputs)
    model = keras.Model(inputs, keras.layers.Flatten()(keras.layers.ConvLSTM2D(4, 3, stateful=True)(hidden)))
    probe = StateProbe()
    x = np.random.default_rng(1).uniform(-1, 1, (4, 3, 5, 6, 2)).astype("float32")
    model.predict(x, batch_size=2, callbacks=[probe], verbose=0)
    report = probe.result()
    assert len(report.steps) == 2 and report.summary.slot_carries == 2
    assert report.warnings and "shrink the frame layer by layer" in report.warnings[0]


@pytest.mark.keras
@pytest.mark.parametrize(("options", "said"), [(dict(kernel_size=(3, 2)), "a 3 x 2 kernel"),
                                               (dict(kernel_size=3, strides=2), "strides=(2, 2)"),
                                               (dict(kernel_size=2, dilation_rate=2), "dilation_rate=(2, 2)")])
def test_stateprobe_warns_of_a_convlstm2d_its_spec_cannot_hold(options, said):
    import keras

    from lstm_inspect.keras.probe import StateProbe

    inputs = keras.Input(batch_shape=(2, 3, 7, 7, 2))
    model = keras.Model(inputs, keras.layers.ConvLSTM2D(2, stateful=True, **options)(inputs))
    probe = StateProbe()
    x = np.random.default_rng(2).uniform(-1, 1, (4, 3, 7, 7, 2)).astype("float32")
    model.predict(x, batch_size=2, callbacks=[probe], verbose=0)
    report = probe.result()
    assert len(report.steps) == 2 and report.summary.slot_carries == 2  # its states are still read
    assert report.warnings and "StateProbe shows this ConvLSTM2D's setup as a bare LSTM's" in report.warnings[0]
    assert said in report.warnings[0]


# ---- the mirror's ConvLSTM2D, held to torch's own LSTM where the two must agree --------------


def _random_conv(kernel, frame, padding, channels=2, filters=3, activation="sigmoid"):
    import torch

    from lstm_inspect import ConvLSTM2D

    conv = ConvLSTM2D(channels, filters, kernel, frame, padding=padding, recurrent_activation=activation)
    generator = torch.Generator().manual_seed(kernel * 10 + frame[0])
    with torch.no_grad():
        for parameter in conv.parameters():
            parameter.copy_(torch.rand(parameter.shape, generator=generator) - 0.5)
    return conv


def _lstm_of(conv, kernel_taps):
    """torch's nn.LSTM with the conv's weights at the taps given (input's, h's): one bias, as Keras."""
    import torch

    lstm = torch.nn.LSTM(kernel_taps[0](conv.weight_ih_l0).shape[1], conv.hidden_size, batch_first=True)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(kernel_taps[0](conv.weight_ih_l0))
        lstm.weight_hh_l0.copy_(kernel_taps[1](conv.weight_hh_l0))
        lstm.bias_ih_l0.copy_(conv.bias_l0)
        lstm.bias_hh_l0.zero_()
    return lstm


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_a_1x1_kernel_is_an_lstm_at_every_pixel(padding):
    import torch

    conv = _random_conv(1, (3, 4), padding)
    lstm = _lstm_of(conv, (lambda w: w[:, :, 0, 0], lambda w: w[:, :, 0, 0]))
    x = torch.rand(2, 5, 3, 4, 2) * 2 - 1
    h0, c0 = torch.rand(2, 1, 2, 3, 4, 3).unbind(0)
    with torch.no_grad():
        outputs, (h, c) = conv(x, (h0, c0))
        pixels = x.permute(0, 2, 3, 1, 4).reshape(24, 5, 2)  # one sequence per pixel
        expected, (lstm_h, lstm_c) = lstm(pixels, (h0.reshape(1, 24, 3), c0.reshape(1, 24, 3)))
    torch.testing.assert_close(outputs.permute(0, 2, 3, 1, 4).reshape(24, 5, 3), expected)
    torch.testing.assert_close(h.reshape(1, 24, 3), lstm_h)
    torch.testing.assert_close(c.reshape(1, 24, 3), lstm_c)


def test_a_kernel_the_frames_size_with_valid_is_an_lstm_over_the_whole_image():
    """The input's convolution covers the frame (no flip: both are cross-correlations); h's, over
    a 1 x 1 state padded 'same', meets the kernel's centre tap only."""
    import torch

    conv = _random_conv(3, (3, 3), "valid")
    lstm = _lstm_of(conv, (lambda w: w.permute(0, 2, 3, 1).reshape(w.shape[0], -1), lambda w: w[:, :, 1, 1]))
    x = torch.rand(2, 4, 3, 3, 2) * 2 - 1
    with torch.no_grad():
        outputs, (h, c) = conv(x)
        expected, (lstm_h, lstm_c) = lstm(x.reshape(2, 4, 18))
    assert outputs.shape == (2, 4, 1, 1, 3)
    torch.testing.assert_close(outputs.reshape(2, 4, 3), expected)
    torch.testing.assert_close((h.reshape(1, 2, 3), c.reshape(1, 2, 3)), (lstm_h, lstm_c))


@pytest.mark.parametrize("kernel", [2, 3, 4])
def test_same_pads_as_torchs_own_same_an_even_kernels_extra_pixel_after(kernel):
    import warnings

    import torch
    from torch.nn import functional

    conv = _random_conv(kernel, (5, 4), "same")
    x = torch.rand(1, 1, 5, 4, 2)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that an even kernel's 'same' copies the input
        _, (h, c) = conv(x)
        gates = functional.conv2d(x[:, 0].permute(0, 3, 1, 2), conv.weight_ih_l0, conv.bias_l0, padding="same")
    i, _, candidate, o = gates.chunk(4, dim=1)
    expected_c = torch.sigmoid(i) * torch.tanh(candidate)
    torch.testing.assert_close(c[0].permute(0, 3, 1, 2), expected_c)
    torch.testing.assert_close(h[0].permute(0, 3, 1, 2), torch.sigmoid(o) * torch.tanh(expected_c))


def test_tf_keras_gates_are_its_hard_sigmoid_and_keras_3s_the_sigmoid():
    """tf-keras's ConvLSTM2D defaults to recurrent_activation='hard_sigmoid': 0 below -2.5, 1
    above 2.5, 0.2 x + 0.5 between (its documentation's values)."""
    import torch

    from lstm_inspect.mirror.conv import GATE_ACTIVATIONS
    from lstm_inspect.mirror.inputs import build_rnn

    points = torch.tensor([-3.0, -2.5, 0.0, 1.0, 2.5, 3.0])
    torch.testing.assert_close(GATE_ACTIVATIONS["hard_sigmoid"](points), torch.tensor([0, 0, 0.5, 0.7, 1, 1.0]))
    shape = dict(batch_size=4, cell="convlstm2d", frame=(4, 4))
    assert build_rnn(Spec(8, 3, 1, **shape, keras="2"), torch.device("cpu")).recurrent_activation == "hard_sigmoid"
    for backend in ("torch", "tensorflow", "jax"):
        module = build_rnn(Spec(8, 3, 1, **shape, backend=backend), torch.device("cpu"))
        assert module.recurrent_activation == "sigmoid"


def test_a_new_convlstm2d_is_initialised_as_keras_initialises_one():
    """A module built by a user (and each --emit torch program) starts from Keras's initializers,
    not zeros: a zero ConvLSTM2D never leaves its zero state, so it would show no carry at all."""
    import torch

    from lstm_inspect import ConvLSTM2D

    filters, channels, kernel = 4, 3, 3
    module = ConvLSTM2D(channels, filters, kernel, (6, 6), padding="same", num_layers=2)
    for layer, inputs in ((0, channels), (1, filters)):
        bias = getattr(module, f"bias_l{layer}").detach()
        torch.testing.assert_close(bias, torch.tensor([0.0] * filters + [1.0] * filters + [0.0] * 2 * filters))
        weight_ih = getattr(module, f"weight_ih_l{layer}").detach()
        glorot = (6 / (kernel**2 * (inputs + 4 * filters)))**0.5
        assert weight_ih.abs().max() <= glorot and weight_ih.std() > glorot / 3
        rows = getattr(module, f"weight_hh_l{layer}").detach().reshape(4 * filters, -1)
        torch.testing.assert_close(rows @ rows.T, torch.eye(4 * filters), atol=1e-5, rtol=0)


@pytest.mark.keras
def test_the_initialisation_is_kerass_own(tmp_path):
    """Held to a real Keras ConvLSTM2D: the same bias, and kernels of Keras's spread."""
    import subprocess
    import sys

    import torch

    from lstm_inspect import ConvLSTM2D

    program = ("import os; os.environ['KERAS_BACKEND'] = 'torch'; import keras, numpy as np\n"
               "layer = keras.layers.ConvLSTM2D(8, 3, padding='same')\n"
               "layer.build((None, 2, 6, 6, 5))\n"
               "kernel, recurrent, bias = (keras.ops.convert_to_numpy(w) for w in layer.weights)\n"
               "print(kernel.std(), recurrent.std(), *bias)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    kernel_std, recurrent_std, *bias = map(float, done.stdout.split())
    module = ConvLSTM2D(5, 8, 3, (6, 6), padding="same")
    torch.testing.assert_close(module.bias_l0.detach(), torch.tensor(bias))
    assert module.weight_ih_l0.std().item() == pytest.approx(kernel_std, rel=0.1)
    assert module.weight_hh_l0.std().item() == pytest.approx(recurrent_std, rel=0.1)


@pytest.mark.keras
def test_stateprobe_reads_a_channels_first_convlstm2d():
    import keras

    spec = _probed((3, 2, 5, 6), keras.layers.ConvLSTM2D(4, 3, stateful=True, data_format="channels_first"))._spec_now()
    assert (spec.features, spec.frame, spec.data_format, spec.state_shape) == (2, (5, 6), "channels_first", (4, 3, 4))


def _probed(sample_shape, layer, flatten=False):
    """A StateProbe after two stateful predict batches of 2 through `layer`: both checked as carried."""
    import keras

    from lstm_inspect.keras.probe import StateProbe

    inputs = keras.Input(batch_shape=(2, *sample_shape))
    outputs = layer(inputs)
    model = keras.Model(inputs, keras.layers.Flatten()(outputs) if flatten else outputs)
    probe = StateProbe()
    x = np.random.default_rng(0).uniform(-1, 1, (4, *sample_shape)).astype("float32")
    model.predict(x, batch_size=2, callbacks=[probe], verbose=0)
    report = probe.result()
    assert report.warnings == ()
    assert [result.step.start_labels() for result in report.steps] == [
        ["zeros", "zeros"], ["predict b0/slot 0", "predict b0/slot 1"]]
    return probe
