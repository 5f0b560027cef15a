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


class Spec(Protocol):
    """What these rules read of a spec.Spec."""

    @property
    def go_backwards(self) -> bool: ...
    @property
    def layers(self) -> int: ...
    @property
    def pad(self) -> str: ...


def stacked_backwards(spec: Spec) -> bool:
    """go_backwards layers stacked: the second runs in time order, the mask out of line with it."""
    return spec.go_backwards and spec.layers > 1


def padding_runs_first(spec: Spec) -> bool:
    """Whether a padded sample's padding runs before its valid steps: pre-padding, or post-padding
    run backwards."""
    return (spec.pad == "pre") != spec.go_backwards
