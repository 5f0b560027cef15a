"""The public `KerasStateful` module next to real Keras 3 (torch backend): the same weights and
inputs give the same outputs and states call after call, across a reset, and the same weights
after training steps that carry the state (Keras's `train_on_batch`, a plain PyTorch loop)."""

import numpy as np
import pytest
import torch
from torch import nn

from lstm_inspect import ConvLSTM2D, KerasStateful
from lstm_inspect.core.choices import Cell
from lstm_inspect.keras.oracle.model import import_keras
from lstm_inspect.mirror.port import keras_weights

keras = import_keras()
pytestmark = pytest.mark.keras

B, T, F, UNITS = 4, 5, 2, 3
TORCH_CELLS = {Cell.LSTM: nn.LSTM, Cell.GRU: nn.GRU, Cell.RNN: nn.RNN}


def _twins(cell: Cell):
    """A Keras stateful layer built for batch B and the public module, with one set of weights."""
    torch.manual_seed(1)
    rnn = TORCH_CELLS[cell](F, UNITS, batch_first=True)
    options = {} if cell == Cell.RNN else {"use_cudnn": False}  # keras-team/keras#20875
    inputs = keras.Input(batch_shape=(B, T, F))
    layer = getattr(keras.layers, cell.keras_name)(UNITS, stateful=True, **options)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights(keras_weights(cell, rnn, 0, reverse=False))
    return model, layer, KerasStateful(rnn, batch_size=B)


def _numpy(value) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(value))


@pytest.mark.parametrize("cell", [cell for cell in Cell if not cell.convolutional])
def test_calls_carry_and_reset_as_in_keras(cell):
    model, layer, module = _twins(cell)
    rng = np.random.default_rng(0)
    for call in range(4):
        if call == 2:
            layer.reset_state()
            module.reset_state()
        x = rng.uniform(-1, 1, (B, T, F)).astype("float32")
        expected = _numpy(model.predict_on_batch(x))
        with torch.no_grad():
            output, _ = module(torch.from_numpy(x))
        np.testing.assert_allclose(output[:, -1].numpy(), expected, atol=1e-5)
        for state, ours in zip(layer.states, module.states):
            np.testing.assert_allclose(ours[0].numpy(), _numpy(state), atol=1e-5)


def test_training_with_the_carried_state_matches_keras():
    model, layer, module = _twins(Cell.LSTM)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    # Keras has one bias where torch has two (bias_ih + bias_hh): both would take the same
    # gradient step, moving the sum twice as far. Keras's layer is torch's with bias_hh held at 0.
    with torch.no_grad():
        module.rnn.bias_ih_l0 += module.rnn.bias_hh_l0
        module.rnn.bias_hh_l0.zero_()
    module.rnn.bias_hh_l0.requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.5)
    _train_side_by_side(model, module, optimizer, (B, T, F), (B, UNITS))
    kernel, recurrent, bias = (_numpy(weight) for weight in layer.weights)
    ours = keras_weights(Cell.LSTM, module.rnn, 0, reverse=False)
    moved = np.abs(ours[0] - keras_weights(Cell.LSTM, _twins(Cell.LSTM)[2].rnn, 0, reverse=False)[0]).max()
    assert moved > 1e-3  # the weights did change
    for theirs, mine in zip((kernel, recurrent, bias), ours):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)
    for state, carried in zip(layer.states, module.states):
        np.testing.assert_allclose(carried[0].detach().numpy(), _numpy(state), atol=1e-5)


FRAME, KERNELS = (5, 6), [(3, "valid"), (2, "same"), (3, "same")]


def _conv_twins(kernel: int, padding: str, data_format: str = "channels_last"):
    """A Keras stateful ConvLSTM2D built for batch B and the public module wrapping this package's
    ConvLSTM2D, with one set of (random) weights."""
    torch.manual_seed(3)
    conv = ConvLSTM2D(F, UNITS, kernel, FRAME, padding=padding, data_format=data_format)
    with torch.no_grad():
        for parameter in conv.parameters():
            parameter.uniform_(-0.4, 0.4)
    inputs = keras.Input(batch_shape=(B, T, *_image(data_format)))
    layer = keras.layers.ConvLSTM2D(UNITS, kernel, padding=padding, stateful=True, data_format=data_format)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights(keras_weights(Cell.CONVLSTM2D, conv, 0, reverse=False))
    return model, layer, KerasStateful(conv, batch_size=B)


def _image(data_format: str) -> tuple[int, ...]:
    return (F, *FRAME) if data_format == "channels_first" else (*FRAME, F)


@pytest.mark.parametrize(("kernel", "padding", "data_format"),
                         [(*setup, "channels_last") for setup in KERNELS] + [(3, "valid", "channels_first"),
                                                                            (2, "same", "channels_first")])
def test_a_convlstm2d_carries_and_resets_as_kerass(kernel, padding, data_format):
    model, layer, module = _conv_twins(kernel, padding, data_format)
    rng = np.random.default_rng(1)
    for call in range(4):
        if call == 2:
            layer.reset_state()
            module.reset_state()
        x = rng.uniform(-1, 1, (B, T, *_image(data_format))).astype("float32")
        expected = _numpy(model.predict_on_batch(x))
        with torch.no_grad():
            output, _ = module(torch.from_numpy(x))
        assert output.shape[-3:] == expected.shape[-3:]
        np.testing.assert_allclose(output[:, -1].numpy(), expected, atol=1e-5)
        for state, ours in zip(layer.states, module.states):
            np.testing.assert_allclose(ours[0].numpy(), _numpy(state), atol=1e-5)


def test_training_a_convlstm2d_with_the_carried_state_matches_keras():
    """One bias, as Keras's: the same SGD steps move the same weights, no folding needed."""
    model, layer, module = _conv_twins(3, "same")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse")
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    before = [weight.copy() for weight in keras_weights(Cell.CONVLSTM2D, module.rnn, 0, reverse=False)]
    _train_side_by_side(model, module, optimizer, (B, T, *FRAME, F), (B, *FRAME, UNITS))
    ours = keras_weights(Cell.CONVLSTM2D, module.rnn, 0, reverse=False)
    assert np.abs(ours[0] - before[0]).max() > 1e-3  # the weights did change
    for theirs, mine in zip((_numpy(weight) for weight in layer.weights), ours):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)
    for state, carried in zip(layer.states, module.states):
        np.testing.assert_allclose(carried[0].detach().numpy(), _numpy(state), atol=1e-5)


def _train_side_by_side(model, module, optimizer, x_shape, y_shape):
    """Three SGD steps on the same batches in Keras and in the module, each starting from the
    state the previous one left."""
    rng = np.random.default_rng(2)
    for _ in range(3):
        x = rng.uniform(-1, 1, x_shape).astype("float32")
        y = rng.uniform(-1, 1, y_shape).astype("float32")
        model.train_on_batch(x, y)
        output, _ = module(torch.from_numpy(x))
        loss = nn.functional.mse_loss(output[:, -1], torch.from_numpy(y))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
