"""Keras's recurrent weights to and from torch's: `from_keras` builds the `nn.LSTM`, `nn.GRU` or
`nn.RNN` that computes what a Keras layer (or a model's stack of them) computes, and `to_keras`
puts a torch module's weights into a Keras one. What has no torch equivalent is refused, saying why.

Keras objects are read through their own methods (get_weights, set_weights, the cell's attributes):
nothing here imports Keras. Layouts, measured on Keras 3.15.1 and tf-keras 2 against PyTorch 2.13:
Keras's kernels are torch's weights transposed; LSTM and SimpleRNN gates are in the same order
(i, f, c, o) and Keras's one bias is torch's bias_ih + bias_hh (any split with that sum computes the
same); GRU's blocks are Keras's z, r, h and torch's r, z, n, and Keras's reset_after=True bias (2, 3U)
is torch's bias_ih and bias_hh; a Bidirectional's directions each have their own weights.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.choices import Backend, Cell, KerasVersion

_CELLS = {"LSTMCell": Cell.LSTM, "GRUCell": Cell.GRU, "SimpleRNNCell": Cell.RNN}
_MODULES: dict[Cell, Any] = {Cell.LSTM: nn.LSTM, Cell.GRU: nn.GRU, Cell.RNN: nn.RNN}
_MASKING = "torch's recurrent modules take no mask"


class PortError(ValueError):
    """A Keras layer or model with no torch equivalent, or a torch module that does not fit it."""


def keras_weights(cell: Cell, module: Any, layer: int, reverse: bool) -> list[np.ndarray]:
    """One Keras RNN layer's weights, as its set_weights takes them, from one layer and direction
    of a torch module (a ConvLSTM2D's kernels (4F, C, K, K) are Keras's (K, K, C, 4F))."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")

    def weight(name: str) -> np.ndarray:
        return np.asarray(getattr(module, name + suffix).detach().cpu().numpy())

    if cell == Cell.CONVLSTM2D:
        return [weight("weight_ih").transpose(2, 3, 1, 0), weight("weight_hh").transpose(2, 3, 1, 0), weight("bias")]
    kernel, recurrent = weight("weight_ih"), weight("weight_hh")
    reorder = _keras_gates if cell == Cell.GRU else (lambda array: array)
    weights = [reorder(kernel).T, reorder(recurrent).T]
    if not getattr(module, "bias", True):
        return weights
    if cell == Cell.GRU:
        return weights + [np.stack([reorder(weight("bias_ih")), reorder(weight("bias_hh"))])]
    return weights + [weight("bias_ih") + weight("bias_hh")]


def _keras_gates(array: np.ndarray) -> np.ndarray:
    """torch's GRU blocks (r, z, n) in Keras's order (z, r, h); the same swap undoes itself."""
    first, second, candidate = np.split(array, 3, axis=0)
    return np.concatenate([second, first, candidate], axis=0)


@dataclass(frozen=True)
class KerasLayer:
    """One Keras recurrent layer as torch sees it: its cell, sizes and options, and its directions
    (one layer, or a Bidirectional's forward and backward layers)."""

    cell: Cell
    input_size: int
    units: int
    nonlinearity: str
    bias: bool
    directions: tuple[Any, ...]
    go_backwards: bool
    stateful: bool
    return_sequences: bool

    def options(self) -> tuple[Cell, int, str, bool, int]:
        """What must agree for two layers to stack in one torch module."""
        return self.cell, self.units, self.nonlinearity, self.bias, len(self.directions)


def recurrent_stack(layer_or_model: Any, *, for_inference: bool = False) -> list[KerasLayer]:
    """The Keras recurrent layers a torch module stands for: the layer itself, or a model's, in
    order, each checked to have a torch equivalent (PortError says why not)."""
    found = [_described(layer, for_inference) for layer in _recurrent(layer_or_model)]
    if not found:
        raise PortError(f"{type(layer_or_model).__name__} holds no LSTM, GRU or SimpleRNN layer")
    first = found[0]
    for below, above in zip(found, found[1:]):
        if above.options() != first.options():
            raise PortError("one torch module stacks layers of one cell, size, activation, bias and direction: "
                            f"a {_named(first)} and a {_named(above)} are two modules (from_keras each layer)")
        if (above.go_backwards, above.stateful) != (first.go_backwards, first.stateful):
            raise PortError("one torch module stacks layers that are all stateful or all not, and all go_backwards "
                            "or all not")
        if not below.return_sequences:
            raise PortError("a stacked layer below another must return_sequences=True, as torch's lower layers do")
    return found


def _named(layer: KerasLayer) -> str:
    way = "Bidirectional " if len(layer.directions) == 2 else ""
    return f"{way}{layer.cell.keras_name}({layer.units}, activation={layer.nonlinearity!r}, use_bias={layer.bias})"


def _recurrent(layer_or_model: Any) -> Iterator[Any]:
    """The recurrent layers of a model (through nested models), or the layer given; refused where
    another layer sits between two of them or a mask reaches them."""
    if not hasattr(layer_or_model, "layers") or hasattr(layer_or_model, "forward_layer"):
        yield layer_or_model
        return
    seen, between = False, ""
    for layer in _every_layer(layer_or_model):
        kind = type(layer).__name__
        if kind == "Masking" or getattr(layer, "mask_zero", False):
            raise PortError(f"the model masks its inputs ({kind}): {_MASKING}; pack each sequence's valid steps "
                            "(nn.utils.rnn.pack_padded_sequence), or call lstm_inspect.KerasStateful with mask=, "
                            "and from_keras the recurrent layers themselves")
        if hasattr(layer, "forward_layer") or hasattr(layer, "cell"):
            if seen and between:
                raise PortError(f"a {between} sits between two recurrent layers: one torch module cannot hold it "
                                "(from_keras each recurrent layer)")
            seen = True
            yield layer
        elif seen and kind != "InputLayer":
            between = kind


def _every_layer(model: Any) -> Iterator[Any]:
    for layer in model.layers:
        if hasattr(layer, "layers") and not hasattr(layer, "forward_layer"):
            yield from _every_layer(layer)
        else:
            yield layer


def _described(layer: Any, for_inference: bool) -> KerasLayer:
    if hasattr(layer, "forward_layer"):
        merge = layer.get_config().get("merge_mode", "concat")
        if merge != "concat":
            raise PortError(f"Bidirectional(merge_mode={merge!r}): torch concatenates the two directions; "
                            "merge_mode='concat' (the default) is what bidirectional=True computes")
        directions: tuple[Any, ...] = (layer.forward_layer, layer.backward_layer)
    else:
        directions = (layer,)
    first = _checked_layer(directions[0], for_inference)
    for backward in directions[1:]:
        checked = _checked_layer(backward, for_inference)
        if checked.options() != first.options() or checked.input_size != first.input_size:
            raise PortError("a Bidirectional whose two directions differ has no torch equivalent")
    go_backwards = bool(directions[0].go_backwards) and len(directions) == 1
    return KerasLayer(first.cell, first.input_size, first.units, first.nonlinearity, first.bias, directions,
                      go_backwards, bool(getattr(directions[0], "stateful", False)),
                      bool(getattr(layer, "return_sequences", directions[0].return_sequences)))


def _checked_layer(layer: Any, for_inference: bool) -> KerasLayer:
    """One direction, checked option by option against what torch's module computes."""
    cell_object: Any = getattr(layer, "cell", None)
    cell = _CELLS.get(type(cell_object).__name__)
    if cell is None:
        raise PortError(f"{type(layer).__name__} with a {type(cell_object).__name__}: from_keras converts LSTM, GRU "
                        "and SimpleRNN layers")
    activation = _name_of(cell_object.activation)
    allowed = ("tanh", "relu") if cell == Cell.RNN else ("tanh",)
    if activation not in allowed:
        raise PortError(f"activation={activation!r}: torch's {_MODULES[cell].__name__} computes "
                        f"{' or '.join(map(repr, allowed))} only")
    if cell != Cell.RNN and _name_of(cell_object.recurrent_activation) != "sigmoid":
        raise PortError(f"recurrent_activation={_name_of(cell_object.recurrent_activation)!r}: torch's gates are "
                        "sigmoid only (recurrent_activation='sigmoid', Keras's default)")
    if cell == Cell.GRU and not cell_object.reset_after:
        raise PortError("GRU(reset_after=False) applies the reset gate before the recurrent kernel; torch's GRU "
                        "applies it after, as reset_after=True (Keras 3's and tf-keras's default) does")
    dropped = [name for name in ("dropout", "recurrent_dropout") if float(getattr(cell_object, name, 0.0) or 0.0)]
    if dropped and not for_inference:
        raise PortError(f"{' and '.join(dropped)}: Keras drops a cell's inputs inside the recurrence, torch's "
                        "dropout= only between layers; no training equivalent (for_inference=True converts it, as "
                        "inference drops nothing)")
    if getattr(layer, "time_major", False):
        raise PortError("time_major=True reads (T, B, F), as batch_first=False does: from_keras builds batch_first "
                        "modules")
    weights = layer.get_weights()
    if not weights:
        raise PortError(f"{layer.name} is not built, and has no weights yet: build the model first (call it, or "
                        "give it keras.Input)")
    return KerasLayer(cell, int(weights[0].shape[0]), int(cell_object.units), activation,
                      bool(cell_object.use_bias), (layer,), bool(layer.go_backwards), bool(layer.stateful),
                      bool(layer.return_sequences))


def _name_of(activation: Any) -> str:
    return str(getattr(activation, "__name__", activation))


def from_keras(layer_or_model: Any, *, for_inference: bool = False) -> nn.RNNBase:
    """The torch module (batch_first=True) computing what `layer_or_model` computes: a Keras LSTM,
    GRU or SimpleRNN layer, a Bidirectional one, or a model whose recurrent layers stack into one
    torch module (same cell, size and direction, nothing between them), with the weights converted.
    The model's other layers (Dense, ...) are yours to port. A stateful or go_backwards layer's
    state handling is `KerasStateful.from_keras`'s."""
    stack = recurrent_stack(layer_or_model, for_inference=for_inference)
    if stack[0].go_backwards:
        raise PortError("go_backwards=True: a torch module runs forwards; KerasStateful.from_keras runs it last to "
                        "first, as Keras does")
    return module_for(stack)


def module_for(stack: list[KerasLayer]) -> nn.RNNBase:
    """The torch module for a checked stack (`recurrent_stack`), its weights converted."""
    first = stack[0]
    options: dict[str, Any] = {"nonlinearity": first.nonlinearity} if first.cell == Cell.RNN else {}
    module: nn.RNNBase = _MODULES[first.cell](first.input_size, first.units, num_layers=len(stack), bias=first.bias,
                                  batch_first=True, bidirectional=len(first.directions) == 2, **options)
    with torch.no_grad():
        for depth, layer in enumerate(stack):
            for reverse, direction in enumerate(layer.directions):
                _set_torch_weights(module, first.cell, depth, bool(reverse), direction.get_weights())
    return module.float()


def _set_torch_weights(module: nn.RNNBase, cell: Cell, depth: int, reverse: bool, weights: list[Any]) -> None:
    suffix = f"_l{depth}" + ("_reverse" if reverse else "")
    arrays = [np.asarray(weight, dtype=np.float32) for weight in weights]

    def put(name: str, value: np.ndarray) -> None:
        getattr(module, name + suffix).copy_(torch.from_numpy(np.ascontiguousarray(value)))

    reorder = _keras_gates if cell == Cell.GRU else (lambda array: array)
    put("weight_ih", reorder(arrays[0].T))
    put("weight_hh", reorder(arrays[1].T))
    if len(arrays) < 3:
        return
    if cell == Cell.GRU:
        put("bias_ih", reorder(arrays[2][0]))
        put("bias_hh", reorder(arrays[2][1]))
    else:
        put("bias_ih", arrays[2])
        put("bias_hh", np.zeros_like(arrays[2]))


def keras_of(layer_or_model: Any) -> tuple[KerasVersion, Backend]:
    """The Keras that made a layer or model, and its backend, read from the Keras already imported."""
    if type(layer_or_model).__module__.split(".")[0] == "tf_keras":
        return KerasVersion.TWO, Backend.TENSORFLOW
    keras = sys.modules.get("keras")
    return KerasVersion.THREE, Backend(keras.backend.backend() if keras is not None else Backend.TORCH)


def to_keras(rnn: Any, layer_or_model: Any) -> Any:
    """Put the weights of `rnn` (an nn.LSTM, nn.GRU or nn.RNN, or a KerasStateful around one) into
    the Keras layer or model `from_keras` would convert back to it; returns that layer or model."""
    module = getattr(rnn, "rnn", rnn)
    if not isinstance(module, nn.RNNBase) or module.proj_size:
        raise PortError(f"to_keras takes an nn.LSTM, nn.GRU or nn.RNN without proj_size, got {type(rnn).__name__}")
    stack = recurrent_stack(layer_or_model, for_inference=True)
    first = stack[0]
    found = (first.cell.torch_name, first.input_size, first.units, len(stack), 2 if module.bidirectional else 1)
    wanted = (type(module).__name__, module.input_size, module.hidden_size, module.num_layers, len(first.directions))
    if found != wanted or (first.cell == Cell.RNN and module.nonlinearity != first.nonlinearity):
        raise PortError(f"the Keras side is {found[0]} of {found[1]} features, {found[2]} units, {found[3]} "
                        f"layers, {found[4]} directions; the torch module {wanted[0]} of {wanted[1]}, {wanted[2]}, "
                        f"{wanted[3]}, {wanted[4]}")
    if module.bias and not first.bias:
        raise PortError("the torch module has biases and the Keras layers use_bias=False")
    for depth, layer in enumerate(stack):
        for reverse, direction in enumerate(layer.directions):
            weights = keras_weights(first.cell, module, depth, bool(reverse))
            if first.bias and not module.bias:  # torch without biases: Keras's bias is zero
                weights.append(np.zeros(direction.get_weights()[2].shape, dtype=np.float32))
            direction.set_weights(weights)
    return layer_or_model
