"""go_backwards (--go-backwards): each call runs its timesteps last to first, and its output
stays in that order (not flipped back). Measured on Keras 3.15.1 (torch, TensorFlow, JAX) and
tf-keras 2 (tests/test_backends.py, the "go_backwards:" setups and outputs probe):
- a stateful slot carries the state after x[:, 0] into the next call, whose x[:, -1] runs first:
  chunks fed in time order are not one backward pass over the whole sequence; fed last first they
  are;
- stacked, each layer flips its input again: the second runs over the first's outputs, which come
  in the first's run order, last to first, that is in the input's own time order; and every layer
  is given the model's mask unflipped, so above the first layer it masks other steps than the
  padding (wherever the valid lengths are not symmetric about the middle)."""

from __future__ import annotations

from typing import Protocol

from .lengths import DataMask


class Spec(Protocol):
    """What these rules read of a spec.Spec."""

    @property
    def go_backwards(self) -> bool: ...
    @property
    def layers(self) -> int: ...
    @property
    def pad(self) -> str: ...
    @property
    def data_mask(self) -> DataMask | None: ...


def stacked_backwards(spec: Spec) -> bool:
    """go_backwards layers stacked: the second runs in time order, the mask out of line with it."""
    return spec.go_backwards and spec.layers > 1


def padding_runs_first(spec: Spec) -> bool:
    """Whether every padded sample's padding runs before its valid steps: pre-padding, or
    post-padding run backwards; with the data's own mask, every masked row's masked steps (a row
    masked throughout among them: it has no valid output either)."""
    return padding_only(spec, "post" if spec.go_backwards else "pre", wholly_masked=True)


def padding_runs_last(spec: Spec) -> bool:
    """Whether every padded sample's padding runs after its valid steps (see padding_runs_first)."""
    return padding_only(spec, "pre" if spec.go_backwards else "post", wholly_masked=False)


def padding_only(spec: Spec, place: str, wholly_masked: bool) -> bool:
    """Whether every padded sample's padding lies at `place` in time: "post" (after its valid steps)
    or "pre"; rows masked at every step count as so where `wholly_masked`."""
    if spec.data_mask is None:
        return spec.pad == place
    layout = spec.data_mask.layout
    other = layout.pre if place == "post" else layout.post
    return layout.ends == layout.middle == other == 0 and (wholly_masked or not layout.empty)


def where_padding_runs(spec: Spec) -> str:
    """Where the padding runs, said after "the padding runs": before, after or among the valid steps."""
    if padding_runs_first(spec):
        return "before the valid steps"
    if padding_runs_last(spec):
        return "after the valid steps"
    layout = None if spec.data_mask is None else spec.data_mask.layout
    if layout is not None and (layout.middle or layout.ends):
        return "between and around the valid steps"
    return "before or after the valid steps, by row"
