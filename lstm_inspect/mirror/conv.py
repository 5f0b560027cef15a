"""`ConvLSTM2D`: Keras's ConvLSTM2D (keras/src/layers/rnn/conv_lstm.py) in torch, stride 1, as
`KerasStateful` wraps torch's own RNN modules: the same attributes (input_size, hidden_size,
num_layers, bidirectional, batch_first) and the same call, states (h, c) each of shape
(layers, batch, H', W', filters), in Keras's layout: channels_last by default, (layers, batch,
filters, H', W') with data_format='channels_first', as Keras's inputs and states are then."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as functional
from torch import nn

_GATES = 4  # i, f, c, o: Keras's order, in both kernels and the bias


def _hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """tf-keras's hard_sigmoid: a straight line through (0, 0.5), clipped to [0, 1]."""
    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


GATE_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"sigmoid": torch.sigmoid,
                                                                      "hard_sigmoid": _hard_sigmoid}


class ConvLSTM2D(nn.Module):
    """Per layer: `weight_ih_l{k}` (4F, C, K, K) and `weight_hh_l{k}` (4F, F, K, K), torch's
    convolution layout of Keras's kernel and recurrent_kernel (K, K, C, 4F), and one `bias_l{k}`
    (4F). Each gate is sigmoid (tanh for the candidate) of the input's convolution, padded as
    `padding` says, plus h's, always padded 'same', as Keras computes them; i, f and o take
    `recurrent_activation` (Keras 3's default sigmoid, tf-keras's hard_sigmoid)."""

    bidirectional = False  # Keras wraps it in Bidirectional; lstm-inspect does not follow that yet
    batch_first = True  # Keras's inputs are (batch, time, H, W, C)

    def __init__(self, input_size: int, hidden_size: int, kernel_size: int, frame: tuple[int, int], *,
                 padding: str = "valid", num_layers: int = 1, recurrent_activation: str = "sigmoid",
                 data_format: str = "channels_last"):
        super().__init__()
        if padding not in ("valid", "same"):
            raise ValueError(f"padding is 'valid' or 'same', got {padding!r}")
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"data_format is 'channels_last' or 'channels_first', got {data_format!r}")
        if recurrent_activation not in GATE_ACTIVATIONS:
            raise ValueError(f"recurrent_activation is one of {', '.join(GATE_ACTIVATIONS)}, got "
                             f"{recurrent_activation!r}")
        if num_layers > 1 and padding == "valid":
            raise ValueError("stacked layers with padding='valid' shrink the frame layer by layer; use 'same'")
        shrink = kernel_size - 1 if padding == "valid" else 0
        if min(frame) - shrink < 1:
            raise ValueError(f"a {kernel_size} x {kernel_size} kernel leaves nothing of a {frame[0]} x {frame[1]} "
                             "frame with padding='valid'")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.kernel_size, self.frame, self.padding = kernel_size, frame, padding
        self.recurrent_activation, self.data_format = recurrent_activation, data_format
        self.channels_last = data_format == "channels_last"
        self.state_frame = (frame[0] - shrink, frame[1] - shrink)
        for layer in range(num_layers):
            channels = input_size if layer == 0 else hidden_size
            size = (kernel_size, kernel_size)
            self.register_parameter(f"weight_ih_l{layer}",
                                    nn.Parameter(torch.zeros(_GATES * hidden_size, channels, *size)))
            self.register_parameter(f"weight_hh_l{layer}",
                                    nn.Parameter(torch.zeros(_GATES * hidden_size, hidden_size, *size)))
            self.register_parameter(f"bias_l{layer}", nn.Parameter(torch.zeros(_GATES * hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras's initializers, from torch's global RNG as torch's own RNNs draw: the input kernel
        glorot_uniform (torch's fans of a conv weight are Keras's), the recurrent kernel orthogonal
        (torch's flattening of it is Keras's, transposed and permuted: orthogonal alike), the
        bias zeros with the forget gate's at one (unit_forget_bias)."""
        with torch.no_grad():
            for layer in range(self.num_layers):
                nn.init.xavier_uniform_(getattr(self, f"weight_ih_l{layer}"))
                nn.init.orthogonal_(getattr(self, f"weight_hh_l{layer}"))
                bias = getattr(self, f"bias_l{layer}")
                bias.zero_()
                bias[self.hidden_size:2 * self.hidden_size] = 1.0

    def like(self) -> ConvLSTM2D:
        """A module of the same build, its own fresh weights."""
        return ConvLSTM2D(self.input_size, self.hidden_size, self.kernel_size, self.frame, padding=self.padding,
                          num_layers=self.num_layers, recurrent_activation=self.recurrent_activation,
                          data_format=self.data_format)

    def state_shape(self, slots: int) -> tuple[int, ...]:
        if self.channels_last:
            return (self.num_layers, slots, *self.state_frame, self.hidden_size)
        return (self.num_layers, slots, self.hidden_size, *self.state_frame)

    def forward(self, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x: (batch, time, H, W, C) (channels_first: (batch, time, C, H, W)); returns the last
        layer's outputs (batch, time, H', W', F) (or (batch, time, F, H', W')) and every layer's
        final (h, c). `mask` (batch, time), True where a step is kept: a masked step holds the
        states and outputs the step before's output (zeros before the first), as Keras's loop does
        with a padded frame masked whole (padding="same"; see core/lengths.py)."""
        if hx is None:
            zeros = x.new_zeros(self.state_shape(x.shape[0]))
            hx = (zeros, zeros)
        # torch convolves (batch, channels, H, W): channels_last goes through it and back.
        sequence = x.permute(0, 1, 4, 2, 3) if self.channels_last else x
        h0, c0 = (state.permute(0, 1, 4, 2, 3) if self.channels_last else state for state in hx)
        finals_h, finals_c = [], []
        for layer in range(self.num_layers):
            kernel, recurrent, bias = (getattr(self, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias"))
            sequence, h, c = self._layer(sequence, h0[layer], c0[layer], kernel, recurrent, bias, mask)
            finals_h.append(h)
            finals_c.append(c)
        h, c = torch.stack(finals_h), torch.stack(finals_c)
        if self.channels_last:
            return sequence.permute(0, 1, 3, 4, 2), (h.permute(0, 1, 3, 4, 2), c.permute(0, 1, 3, 4, 2))
        return sequence, (h, c)

    def _layer(self, sequence: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, kernel: torch.Tensor,
               recurrent: torch.Tensor, bias: torch.Tensor, mask: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One layer over the sequence (batch, time, channels, H, W), from states (batch, F, H', W')."""
        batch, steps = sequence.shape[:2]
        # The input's convolutions for every timestep at once; h's depend on the step before.
        frames = sequence.flatten(0, 1)
        inputs = functional.conv2d(_padded_same(frames, self.kernel_size) if self.padding == "same" else frames,
                                   kernel, bias)
        inputs = inputs.view(batch, steps, *inputs.shape[1:])
        h, c = h0, c0
        outputs: list[torch.Tensor] = []
        gate = GATE_ACTIVATIONS[self.recurrent_activation]
        for step in range(steps):
            gates = inputs[:, step] + functional.conv2d(_padded_same(h, self.kernel_size), recurrent)
            i, f, candidate, o = gates.chunk(_GATES, dim=1)
            c_next = gate(f) * c + gate(i) * torch.tanh(candidate)
            h_next = gate(o) * torch.tanh(c_next)
            if mask is None:
                h, c = h_next, c_next
                outputs.append(h)
                continue
            kept = mask[:, step].bool().view(batch, 1, 1, 1)
            h, c = torch.where(kept, h_next, h), torch.where(kept, c_next, c)
            outputs.append(torch.where(kept, h_next, outputs[-1] if outputs else torch.zeros_like(h_next)))
        return torch.stack(outputs, dim=1), h, c


def _padded_same(images: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Zeros around (batch, channels, H, W) for a 'same' convolution, as Keras pads: an even
    kernel's extra pixel after, not before (torch's padding='same' agrees, with a warning and a copy
    for even kernels)."""
    before = (kernel_size - 1) // 2
    after = kernel_size - 1 - before
    return functional.pad(images, (before, after, before, after))
