"""What a port meets, per cell and direction: the states a layer returns and takes, which index
holds what, and the notes for its PyTorch twin (weights, h_n's layout, batch_first, the carry).

Measured on Keras 3.15.1 (torch, TensorFlow, JAX), tf-keras 2 and PyTorch 2.13 (tests/test_port.py,
tests/test_advice.py). Pure: no torch, no Keras.
"""

from __future__ import annotations

from ..core.choices import Cell
from ..core.facts import facts_for
from ..core.spec import Spec


def returned_states(spec: Spec) -> tuple[str, ...]:
    """The final states `return_state=True` gives after the output, in Keras's order, as
    `initial_state=` takes them back: a Bidirectional's forward ones, then its backward ones."""
    names = spec.cell.state_names
    if spec.bidirectional:
        return tuple(f"fwd_{name}" for name in names) + tuple(f"bwd_{name}" for name in names)
    return names


def listed(names: tuple[str, ...]) -> str:
    """As Keras takes them: a list, or the one tensor alone."""
    return f"[{', '.join(names)}]" if len(names) > 1 else names[0]


def state_indices(spec: Spec) -> str:
    """Which index of `layer.states` holds what: "i = 0 for h and 1 for c", or h alone."""
    if len(spec.cell.state_names) == 2:
        return "i = 0 for h and 1 for c"
    return f"i = 0 for h: a {spec.cell.keras_name} holds one state (layer.states[1] raises IndexError)"


def torch_module(spec: Spec) -> str:
    """The PyTorch module standing for the setup's recurrent layers."""
    options = "".join([f", num_layers={spec.layers}" * (spec.layers > 1),
                       ", bidirectional=True" * spec.bidirectional])
    return f"nn.{spec.cell.torch_name}({spec.features}, units{options}, batch_first=True)"


def port_notes(spec: Spec) -> str:
    """The notes for a PyTorch port of this setup, one clause per thing it meets."""
    if spec.cell.convolutional:
        return ("PyTorch has no ConvLSTM2D: lstm_inspect.ConvLSTM2D is one, with Keras's gates (i, f, c, o) and one "
                "bias, its kernels Keras's (K, K, C, 4 x filters) as (4 x filters, C, K, K)")
    return "; ".join(part for part in (_module(spec), _weights(spec.cell), _final_states(spec), _carry(spec)) if part)


def _module(spec: Spec) -> str:
    return (f"in PyTorch, {torch_module(spec)} (without batch_first, x of (B, T, F) reads as T = B steps, the state "
            "flowing across samples); lstm_inspect.port.from_keras(model) converts the weights")


def _weights(cell: Cell) -> str:
    if cell == Cell.GRU:
        return ("kernels transposed, Keras's gates z, r, h reordered to PyTorch's r, z, n (a plain copy differs); "
                "Keras's default reset_after=True has two biases, bias_ih and bias_hh, and 3 x units more parameters "
                "than reset_after=False, which PyTorch cannot run")
    return "kernels transposed, Keras's one bias = bias_ih + bias_hh (any split)"


def _final_states(spec: Spec) -> str:
    states = "h_n and c_n are" if len(spec.cell.state_names) == 2 else "h_n is"
    text = f"{states} (layers x directions, batch, units), batch_first or not"
    if spec.bidirectional:
        return text + ": h_n[-2] = out[:, -1, :units] (forward, after the last step), h_n[-1] = out[:, 0, units:] " \
                      "(backward, after t = 0)"
    return text + ": h_n[-1] = out[:, -1]"


def _carry(spec: Spec) -> str:
    if not spec.stateful or not facts_for(spec).carries:
        return ""
    states = "(h_n, c_n), both" if len(spec.cell.state_names) == 2 else "h_n"
    last = spec.samples % spec.batch_size
    text = f"carry {states} detached into the next batch, DataLoader(shuffle=False{', drop_last=True' * bool(last)})"
    if not last:
        return text
    expected = "hidden[0]" if len(spec.cell.state_names) == 2 else "hidden"
    rows = spec.layers * spec.directions
    return (text + f": a last batch of {last} raises \"Expected {expected} size ({rows}, {last}, units), got "
            f"[{rows}, {spec.batch_size}, units]\"")
