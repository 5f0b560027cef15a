"""ConvLSTM2D (--cell convlstm2d): each timestep is an image of H x W pixels of C channels, and
each slot's state, h and c, an image too: (H', W', filters) in Keras's default channels_last
layout, (filters, H', W') with data_format='channels_first' (inputs (C, H, W) then).
Measured on Keras 3.15.1 (torch, TensorFlow, JAX) and tf-keras 2.21: a stateful ConvLSTM2D
carries its states slot by slot as an LSTM does (a second predict equals one stateless run over
both halves of the sequence, exactly), reset_state() zeroes them, JAX carries nothing, TensorFlow
broadcasts a partial batch of one, and a batch of another size raises the LSTM's errors. The
input convolution pads as `padding` says (valid: H' = H - K + 1), the recurrent one always
'same'. A kernel larger than the frame with padding='valid' fails when the model is built.
channels_first runs on the CPU on every backend (measured: Keras 3 on torch, TensorFlow and JAX,
tf-keras), carrying as channels_last does."""

from __future__ import annotations

import math
from typing import Protocol

from .choices import Cell, KerasVersion
from .errors import SpecError

PADDINGS = ("valid", "same")
DEFAULT_KERNEL = 3
DEFAULT_PADDING = "valid"  # Keras's default
DATA_FORMATS = ("channels_last", "channels_first")
DEFAULT_DATA_FORMAT = "channels_last"  # Keras's default (its keras.json's image_data_format)


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
    def data_format(self) -> str: ...
    @property
    def keras(self) -> KerasVersion: ...
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


def check_frames(spec: Spec) -> None:
    """The convolutional settings: given together, as Keras builds them, and within what is followed."""
    if not spec.cell.convolutional:
        if spec.frame is not None:
            raise SpecError("frame", "{shape} N,T,H,W,C (an image per timestep) is for {cell} convlstm2d; "
                            "LSTM, GRU and SimpleRNN take N,T,F")
        for name, usual in (("kernel", DEFAULT_KERNEL), ("padding", DEFAULT_PADDING),
                            ("data_format", DEFAULT_DATA_FORMAT)):
            if getattr(spec, name) != usual:
                raise SpecError(name, f"{{{name}}} is ConvLSTM2D's {'kernel_size' if name == 'kernel' else name}: "
                                "it needs {cell} convlstm2d")
        return
    if spec.frame is None:
        if spec.data_format == "channels_first":
            raise SpecError("frame", "{cell} convlstm2d with {data_format} channels_first takes {shape} N,T,C,H,W: "
                            "samples, timesteps, then each timestep's channels, rows and columns")
        raise SpecError("frame", "{cell} convlstm2d takes {shape} N,T,H,W,C: samples, timesteps, then each "
                        "timestep's rows, columns and channels")
    if spec.padding not in PADDINGS:
        raise SpecError("padding", "{padding} is valid or same, got {got!r}", got=spec.padding)
    if spec.data_format not in DATA_FORMATS:
        raise SpecError("data_format", "{data_format} is channels_last or channels_first, got {got!r}",
                        got=spec.data_format)
    height, width = spec.frame
    if spec.padding == "valid" and spec.kernel > min(height, width):
        raise SpecError("kernel", f"{_too_large(spec)}: use padding='same' ({{padding}} same), or a kernel_size of at "
                        f"most {min(height, width)}")
    _check_followed(spec)


def _too_large(spec: Spec) -> str:
    """Keras's error for a kernel larger than a 'valid' frame, in each Keras's words (measured)."""
    assert spec.frame is not None
    height, width = spec.frame
    if spec.keras == KerasVersion.TWO:  # TensorFlow's own shape check, on the image made channels_last
        side = height if spec.kernel > height else width
        return ("tf-keras raises ValueError when the model is built: \"Negative dimension size caused by "
                f"subtracting {spec.kernel} from {side} for "
                "'{{{{node conv_lstm2d/convolution}}}} = Conv2D[...]' "  # TensorFlow's own double braces
                f"with input shapes: [B,{height},{width},{spec.features}], "
                f"[{spec.kernel},{spec.kernel},{spec.features},{spec.units}]\"")
    image = ", ".join(str(size) for size in step_shape(spec))
    return ("Keras raises ValueError when the model is built: \"Computed output size would be zero or negative. "
            f"Received `inputs shape=(B, {image})`, `kernel shape=({spec.kernel}, {spec.kernel}, {spec.features}, "
            f"{spec.units})`, ... `padding=valid`\"")


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


def step_shape(spec: Spec) -> tuple[int, ...]:
    """One timestep of one sample, as Keras's input takes it: (F,), or (H, W, C) for ConvLSTM2D
    ((C, H, W) channels_first)."""
    if spec.frame is None:
        return (spec.features,)
    return (spec.features, *spec.frame) if spec.data_format == "channels_first" else (*spec.frame, spec.features)


def state_shape(spec: Spec) -> tuple[int, ...]:
    """One slot's state tensor (h, or c) in one layer: (units,), or (H', W', filters) for ConvLSTM2D
    ((filters, H', W') channels_first)."""
    if spec.frame is None:
        return (spec.units,)
    shrink = spec.kernel - 1 if spec.padding == "valid" else 0
    image = (spec.frame[0] - shrink, spec.frame[1] - shrink)
    return (spec.units, *image) if spec.data_format == "channels_first" else (*image, spec.units)


def values(shape: tuple[int, ...]) -> int:
    return math.prod(shape)
