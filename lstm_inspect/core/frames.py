"""ConvLSTM2D (--cell convlstm2d): each timestep is an image of H x W pixels of C channels, and
each slot's state, h and c, an image too, (H', W', filters), in Keras's channels_last layout.
Measured on Keras 3.15.1 (torch, TensorFlow, JAX) and tf-keras 2.21: a stateful ConvLSTM2D
carries its states slot by slot as an LSTM does (a second predict equals one stateless run over
both halves of the sequence, exactly), reset_state() zeroes them, JAX carries nothing, TensorFlow
broadcasts a partial batch of one, and a batch of another size raises the LSTM's errors. The
input convolution pads as `padding` says (valid: H' = H - K + 1), the recurrent one always
'same'. A kernel larger than the frame with padding='valid' fails when the model is built."""

from __future__ import annotations

import math
from typing import Protocol

from .choices import Cell
from .errors import SpecError

PADDINGS = ("valid", "same")
DEFAULT_KERNEL = 3
DEFAULT_PADDING = "valid"  # Keras's default


class Spec(Protocol):
    """What these rules read of a spec.Spec (which checks itself with them: no import back)."""

    @property
    def cell(self) -> Cell: ...
    @property
    def frame(self) -> tuple[int, int] | None: ...
    @property
    def kernel(self) -> int: ...
    @property
    def padding(self) -> str: ...
    @property
    def features(self) -> int: ...
    @property
    def units(self) -> int: ...
    @property
    def layers(self) -> int: ...
    @property
    def bidirectional(self) -> bool: ...
    @property
    def replicas(self) -> int: ...
    @property
    def hand_carried(self) -> bool: ...


def check_frames(spec: Spec) -> None:
    """The convolutional settings: given together, as Keras builds them, and within what is followed."""
    if not spec.cell.convolutional:
        if spec.frame is not None:
            raise SpecError("frame", "{shape} N,T,H,W,C (an image per timestep) is for {cell} convlstm2d; "
                            "LSTM, GRU and SimpleRNN take N,T,F")
        for name, usual in (("kernel", DEFAULT_KERNEL), ("padding", DEFAULT_PADDING)):
            if getattr(spec, name) != usual:
                raise SpecError(name, f"{{{name}}} is ConvLSTM2D's {name if name == 'padding' else 'kernel_size'}: "
                                "it needs {cell} convlstm2d")
        return
    if spec.frame is None:
        raise SpecError("frame", "{cell} convlstm2d takes {shape} N,T,H,W,C: samples, timesteps, then each "
                        "timestep's rows, columns and channels")
    if spec.padding not in PADDINGS:
        raise SpecError("padding", "{padding} is valid or same, got {got!r}", got=spec.padding)
    if not 1 <= spec.kernel <= max(spec.frame):
        raise SpecError("kernel", f"{{kernel}} is between 1 and the frame's larger side, {max(spec.frame)}")
    height, width = spec.frame
    if spec.padding == "valid" and spec.kernel > min(height, width):
        raise SpecError("kernel", "Keras raises ValueError when the model is built: \"Computed output size would "
                        f"be zero or negative. Received `inputs shape=(B, {height}, {width}, {spec.features})`, "
                        f"`kernel shape=({spec.kernel}, {spec.kernel}, {spec.features}, {spec.units})`, ... "
                        "`padding=valid`\": use padding='same' ({padding} same), or a kernel_size of at most "
                        f"{min(height, width)}")
    _check_followed(spec)


def _check_followed(spec: Spec) -> None:
    """What lstm-inspect does not follow yet for ConvLSTM2D, each refused in one line."""
    if spec.layers > 1 and spec.padding == "valid":
        raise SpecError("layers", "stacked ConvLSTM2D layers ({layers} {count}) with padding='valid' shrink the "
                        "frame layer by layer, which lstm-inspect does not follow yet; stacked layers usually "
                        "take padding='same' ({padding} same)", count=spec.layers)
    if spec.bidirectional:
        raise SpecError("bidirectional", "{bidirectional} ConvLSTM2D is not followed yet")
    if spec.replicas > 1:
        raise SpecError("replicas", "{replicas} with ConvLSTM2D is not followed yet")
    if spec.hand_carried:
        raise SpecError("workflow", "{workflow}: initial_state= with ConvLSTM2D is not followed yet")


def step_shape(spec: Spec) -> tuple[int, ...]:
    """One timestep of one sample, as Keras's input takes it: (F,), or (H, W, C) for ConvLSTM2D."""
    return (*spec.frame, spec.features) if spec.frame is not None else (spec.features,)


def state_shape(spec: Spec) -> tuple[int, ...]:
    """One slot's state tensor (h, or c) in one layer: (units,), or (H', W', filters) for ConvLSTM2D."""
    if spec.frame is None:
        return (spec.units,)
    shrink = spec.kernel - 1 if spec.padding == "valid" else 0
    return (spec.frame[0] - shrink, spec.frame[1] - shrink, spec.units)


def values(shape: tuple[int, ...]) -> int:
    return math.prod(shape)
