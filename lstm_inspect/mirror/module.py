"""`KerasStateful`: a trainable torch RNN whose state is handled as Keras's recurrent layers
handle theirs (keras/src/layers/rnn/rnn.py), by its own code: it never reads the schedule."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..core.choices import Backend, KerasVersion
from ..core.facts import FACTS, KerasStateError, keras_error
from .conv import ConvLSTM2D

States = tuple[torch.Tensor, ...]  # in the cell's order: (h, c) for an LSTM or a ConvLSTM2D, (h,) otherwise
Recurrent = nn.RNNBase | ConvLSTM2D


def forward(module: Recurrent, x: torch.Tensor, initial: States | None = None,
            mask: torch.Tensor | None = None, go_backwards: bool = False) -> tuple[torch.Tensor, States]:
    """Run the module; states always as a tuple, whether it takes (h, c) or h alone. `mask`
    (batch, timesteps; True where a step is kept), as Keras's: a masked step holds the state.
    `go_backwards`: as Keras's, the steps run last to first, and the output stays in the order
    they ran (its last step is x[:, 0]'s), never flipped back."""
    if go_backwards and module.num_layers > 1:
        return _backwards_layer_by_layer(module, x, initial, mask)
    if go_backwards:
        x, mask = x.flip(1), None if mask is None else mask.flip(1)
    hx = None if initial is None else initial if len(initial) == 2 else initial[0]
    if mask is not None and not bool(mask.all()):
        output, final = module(x, hx, mask) if isinstance(module, ConvLSTM2D) else _masked(module, x, hx, mask)
    else:
        output, final = module(x, hx)
    return output, tuple(final) if isinstance(final, tuple) else (final,)


def _backwards_layer_by_layer(module: Recurrent, x: torch.Tensor, initial: States | None,
                              mask: torch.Tensor | None) -> tuple[torch.Tensor, States]:
    """Stacked go_backwards layers, as Keras stacks them: each layer flips its input, so the second
    runs over the first's outputs (in the order the first ran them) last to first, that is in the
    input's own time order; and each is given the model's mask as it was, never flipped."""
    finals: list[States] = []
    for depth, layer in enumerate(_single_layers(module)):
        start = None if initial is None else tuple(state[depth:depth + 1] for state in initial)
        x, final = forward(layer, x, start, mask, go_backwards=True)
        finals.append(final)
    return x, tuple(torch.cat(states) for states in zip(*finals, strict=True))


_LAYERS: weakref.WeakKeyDictionary[Recurrent, list[Recurrent]] = weakref.WeakKeyDictionary()


def _single_layers(module: Recurrent) -> list[Recurrent]:
    """One-layer modules, one per layer of `module`, each holding that layer's very parameters."""
    if module not in _LAYERS:
        _LAYERS[module] = [_layer_of(module, depth) for depth in range(module.num_layers)]
    return _LAYERS[module]


def _layer_of(module: Recurrent, depth: int) -> Recurrent:
    layer: Recurrent
    below = module.input_size if depth == 0 else module.hidden_size
    if isinstance(module, ConvLSTM2D):
        layer = ConvLSTM2D(below, module.hidden_size, module.kernel_size, module.frame if depth == 0 else
                           module.state_frame, padding=module.padding, recurrent_activation=module.recurrent_activation,
                           data_format=module.data_format)
        names: tuple[str, ...] = ("weight_ih", "weight_hh", "bias")
    else:
        layer = getattr(nn, type(module).__name__)(below, module.hidden_size, batch_first=True)
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    for name in names:
        setattr(layer, f"{name}_l0", getattr(module, f"{name}_l{depth}"))
    return layer.train(module.training)


def _masked(module: nn.RNNBase, x: torch.Tensor, hx: torch.Tensor | States | None,
            mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | States]:
    """Keras's masked run: a masked step holds the state, so each sample's kept steps run in
    order as one shorter sequence (a packed one); every layer sees the same mask, as Keras
    passes it on. The output at a masked step is the last kept step's output (zeros before
    the first), or zeros in both directions of a bidirectional layer (Keras 3's Bidirectional
    sets zero_output_for_mask). A sample masked at every step keeps the state it began with and
    outputs zeros. Measured against Keras 3.15.1 on torch, TensorFlow and JAX, and tf-keras 2."""
    kept = mask.sum(dim=1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # kept steps first, in time order
    compact = x.gather(1, order[..., None].expand_as(x))
    # A packed sequence holds no empty one: a wholly masked sample runs one step, then is given back its start.
    packed = nn.utils.rnn.pack_padded_sequence(compact, kept.clamp(min=1).cpu(), batch_first=True,
                                               enforce_sorted=False)
    output_packed, final = module(packed, hx)
    output, _ = nn.utils.rnn.pad_packed_sequence(output_packed, batch_first=True, total_length=x.shape[1])
    last_kept = mask.cumsum(dim=1) - 1  # where each step's output comes from among the kept ones
    output = output.gather(1, last_kept.clamp(min=0)[..., None].expand(-1, -1, output.shape[-1]))
    blank = ~mask if module.bidirectional else last_kept < 0
    empty = kept == 0
    if bool(empty.any()):
        final = _held(final, hx, empty)
    return output.masked_fill(blank[..., None], 0.0), final


def _held(final: torch.Tensor | States, hx: torch.Tensor | States | None, empty: torch.Tensor
          ) -> torch.Tensor | States:
    """`final` with the samples `empty` marks given back the states they began with (zeros without hx)."""
    def held(state: torch.Tensor, start: torch.Tensor | None) -> torch.Tensor:
        return torch.where(empty[None, :, None], torch.zeros_like(state) if start is None else start, state)

    if isinstance(final, torch.Tensor):
        assert not isinstance(hx, tuple)
        return held(final, hx)
    starts = (None,) * len(final) if hx is None else hx
    assert isinstance(starts, tuple)
    return tuple(held(state, start) for state, start in zip(final, starts, strict=True))


def state_shape(module: Recurrent, slots: int) -> tuple[int, ...]:
    """Each state tensor's shape: (layers * directions, slots) and one slot's state."""
    if isinstance(module, ConvLSTM2D):
        return module.state_shape(slots)
    return (module.num_layers * (2 if module.bidirectional else 1), slots, module.hidden_size)


class KerasStateful(nn.Module):
    """A torch RNN (`nn.LSTM`, `nn.GRU` or `nn.RNN`, batch_first, or this package's `ConvLSTM2D`)
    with the state handling of Keras's recurrent layers (keras/src/layers/rnn/rnn.py), for every
    layer and direction.

    Stateful (the default): the state holds `batch_size` slots, starts as zeros, and slot i
    of each call starts from slot i's final state of the previous call, detached, so that
    gradients flow within a call and never across one (truncated backpropagation through
    time, as Keras's state variables give). `reset_state()` zeroes it; a call with another
    batch size raises `KerasStateError` (a ValueError) with Keras's message. The state is
    a buffer (None, meaning zeros, until first read): it follows `.to(device)` and, as in
    Keras, is not saved in `state_dict()`.
    Stateless: every call starts from zeros, whatever its batch size. `keras` and `backend`
    choose the wording of the error, as that Keras raises it. `go_backwards`: each call runs its
    steps last to first (see `forward`), so a stateful slot carries the state after x[:, 0].

    `forward` returns what the wrapped module returns: `(output, h_n)`, or
    `(output, (h_n, c_n))` for an LSTM, so it replaces the module in existing code.
    """

    def __init__(self, rnn: Recurrent, batch_size: int | None = None, *, stateful: bool = True,
                 keras: KerasVersion | str = KerasVersion.THREE, backend: Backend | str | None = None,
                 go_backwards: bool = False):
        super().__init__()
        if not isinstance(rnn, (nn.LSTM, nn.GRU, nn.RNN, ConvLSTM2D)):
            raise TypeError(f"expected an nn.LSTM, nn.GRU, nn.RNN or ConvLSTM2D, got {type(rnn).__name__}")
        if not rnn.batch_first:
            raise ValueError("the RNN must be built with batch_first=True, as Keras's inputs are")
        if getattr(rnn, "proj_size", 0):
            raise ValueError("an LSTM with proj_size has no Keras counterpart")
        if stateful and (batch_size is None or batch_size < 1):
            raise ValueError("a stateful layer needs a fixed, positive batch_size, as Keras's "
                             "Input(batch_shape=...) gives it")
        self.rnn = rnn
        self._batch_size = batch_size
        self.stateful = stateful
        self.go_backwards = go_backwards
        self.keras = KerasVersion(keras)
        self.backend = Backend(backend or (Backend.TENSORFLOW if self.keras == KerasVersion.TWO else Backend.TORCH))
        if (self.keras, self.backend) not in FACTS:
            raise ValueError(f"Keras {self.keras} does not run on {self.backend}: tf-keras (Keras 2) runs on "
                             "TensorFlow only")
        self.state_names = ("h", "c") if isinstance(rnn, nn.LSTM | ConvLSTM2D) else ("h",)  # its buffers
        if stateful:
            # Keras creates the state variables at build, as zeros of the fixed batch size. Here
            # None stands for those zeros until they are read: a call Keras refuses (a batch of
            # another size) then allocates nothing, however large the batch size.
            for name in self.state_names:
                self.register_buffer(name, None, persistent=False)

    @classmethod
    def from_keras(cls, layer_or_model: Any, *, for_inference: bool = False) -> KerasStateful:
        """A Keras layer, or a model's stack of recurrent layers, as this module: the weights converted
        (lstm_inspect.port.from_keras), stateful with the batch size of its states or stateless, and
        go_backwards, as the Keras layers are; the Keras and backend that made them. Its states start
        as zeros: set_states gives it Keras's."""
        from .port import PortError, keras_of, module_for, recurrent_stack

        stack = recurrent_stack(layer_or_model, for_inference=for_inference)
        first = stack[0].directions[0]
        batch_size = None
        if stack[0].stateful:
            if not first.states or first.states[0] is None:
                raise PortError(f"{first.name} is stateful but holds no states yet: build it with a fixed batch size")
            batch_size = int(first.states[0].shape[0])
        keras, backend = keras_of(first)
        return cls(module_for(stack), batch_size, stateful=stack[0].stateful, keras=keras, backend=backend,
                   go_backwards=stack[0].go_backwards)

    @property
    def batch_size(self) -> int | None:
        """Fixed at construction, as Keras's Input(batch_shape=...)."""
        return self._batch_size

    @property
    def states(self) -> States:
        """The state each slot holds now (stateful only), in the cell's order."""
        if not self.stateful:
            # Not AttributeError: nn.Module would turn it into "no attribute 'states'".
            raise TypeError("a stateless layer holds no state between calls")
        held = self._buffers
        if held[self.state_names[0]] is None:
            for name, zeros in zip(self.state_names, self.zeros(self.batch_size or 0)):
                held[name] = zeros
        return tuple(held[name] for name in self.state_names)  # type: ignore[misc]

    def zeros(self, slots: int) -> States:
        """Zero states for this many slots, in the cell's order, as Keras starts a call from."""
        weight = self.rnn.weight_hh_l0
        assert isinstance(weight, torch.Tensor)
        return tuple(weight.new_zeros(state_shape(self.rnn, slots)) for _ in self.state_names)

    def set_states(self, states: States) -> None:
        """Give every slot these states (as Keras 3's `layer.states[i].assign(v)`), in the
        cell's order, each of shape (layers * directions, batch_size, units), or a ConvLSTM2D's
        (layers, batch_size, H', W', filters) ((layers, batch_size, filters, H', W') channels_first);
        kept detached."""
        if not self.stateful:
            raise TypeError("a stateless layer holds no state between calls")
        if isinstance(states, torch.Tensor) or not isinstance(states, tuple | list) or len(states) != len(
                self.state_names):
            raise ValueError(f"set_states takes {len(self.state_names)} tensor(s), in the cell's order "
                             f"({', '.join(self.state_names)}), as `states` gives them")
        for name, current, state in zip(self.state_names, self.states, states):
            if not isinstance(state, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(state).__name__}")
            if state.shape != current.shape:
                raise ValueError(f"{name} must have shape {tuple(current.shape)}, got {tuple(state.shape)}")
            if state.dtype != current.dtype or state.device != current.device:
                raise ValueError(f"{name} must be {current.dtype} on {current.device}, as the layer's weights; got "
                                 f"{state.dtype} on {state.device}")
        self._hold(tuple(state.detach() for state in states))

    def reset_state(self, slots: Sequence[int] | None = None) -> None:
        """Zero every slot of every layer and direction, as Keras's `layer.reset_state()`; or
        only `slots` (say, the streams whose episode ended), as Keras's
        `state.assign(state * keep)` on each state variable and PyTorch's `h * (1 - done)` do.
        New tensors, so states read before the reset keep their values."""
        if not self.stateful:
            return
        if slots is None:
            self._hold((None,) * len(self.state_names))  # zeros, made when next read
            return
        chosen = sorted(set(slots))
        if chosen and not 0 <= chosen[0] <= chosen[-1] < (self.batch_size or 0):
            raise ValueError(f"slots are 0 to {(self.batch_size or 0) - 1}, got {list(slots)}")
        kept = tuple(state.clone() for state in self.states)
        for state in kept:
            state[:, chosen] = 0.0
        self._hold(kept)

    def call(self, x: torch.Tensor, initial_state: States | None = None,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, States, States]:
        """One call: (output, initial states, final states), the initial ones being the very
        tensors passed to the RNN; the final ones keep their graph. `initial_state`: start from these
        states, as Keras's `initial_state=` argument: instead of zeros, or, stateful, of the layer's
        own (which then take the final ones), but in tf-keras while its own are not all zeros.
        `mask` (batch, timesteps), True where a step is kept: a masked step holds the state, as
        Keras's mask (keras.layers.Masking, mask_zero=True) makes it."""
        slots = x.shape[0]
        if self.stateful and slots != self.batch_size:
            kind, message, _ = keras_error(FACTS[self.keras, self.backend], self.batch_size or 0, slots,
                                           state_shape(self.rnn, 1)[2:])
            raise KerasStateError(kind, message)
        if initial_state is not None and not self._keeps_own_states():
            initial = initial_state
        elif not self.stateful:
            initial = self.zeros(slots)
        else:
            initial = self.states
            if torch.is_grad_enabled():
                # A state left by a call under torch.inference_mode() (say, validation) cannot
                # take part in a backward pass; an ordinary copy can.
                initial = tuple(state.clone() if state.is_inference() else state for state in initial)
        output, final = forward(self.rnn, x, initial, mask, self.go_backwards)
        if self.stateful:
            # Keras assigns the final states to non-trainable variables: the next call sees
            # constants, so no gradient crosses a call boundary.
            self._hold(tuple(state.detach() for state in final))
        return output, initial, final

    def _hold(self, states: tuple[torch.Tensor | None, ...]) -> None:
        """The states the layer holds now, into the buffers registered at construction (set where
        nn.Module keeps them: its __setattr__ checks would cost more than a small batch's call)."""
        for name, state in zip(self.state_names, states):
            self._buffers[name] = state

    def _keeps_own_states(self) -> bool:
        """Whether a stateful layer given initial states starts from its own instead: tf-keras does
        while they are not all zeros (core/facts.py); Keras 3 never does."""
        return (self.stateful and FACTS[self.keras, self.backend].carry_beats_given_states
                and any(bool(state.any()) for state in self.states))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | States]:
        output, _, final = self.call(x, mask=mask)
        return output, final if len(final) == 2 else final[0]
