"""From the command line to the library: the Spec the options describe, the flags that name its
fields, the command line that gives a Spec back, and --data."""

from __future__ import annotations

import dataclasses
import importlib.resources
import shlex
from typing import Any

import click
import numpy as np

from ..core.choices import KerasVersion, Shuffle
from ..core.errors import SpecError
from ..core.lengths import DataMask
from ..core.spec import Spec
from ..core.words import Terms
from ..core.workflow import text
from ..data.datafile import Continuity, continuity, open_data
from ..data.masks import layout_of

FLAGS = {"samples": "--shape", "timesteps": "--shape", "features": "--shape", "shape": "--shape",
         "batch_size": "--batch", "stateful": "--stateful", "epochs": "--epochs", "shuffle": "--shuffle",
         "cell": "--cell", "layers": "--layers", "bidirectional": "--bidirectional", "keras": "--keras",
         "backend": "--backend",
         "reset": "--reset", "val_samples": "--val-samples", "predict_samples": "--predict-samples",
         "workflow": "--calls", "fixed_batch": "--no-fixed-batch", "replicas": "--replicas",
         "frame": "--shape", "kernel": "--kernel", "padding": "--padding",
         "data_format": "--data-format", "lengths": "--lengths", "pad": "--pad", "mask": "--no-mask",
         "go_backwards": "--go-backwards", "data_mask": "--mask-value",
         "units": "--units", "seed": "--seed", "max_steps": "--max-steps"}
DATA_FLAGS = {"key": "--data-key"}  # open_data's fields
# In sentences, the data's N stands for the samples (N of --shape N,T,F).
TERMS = Terms({**FLAGS, "samples": "N"}, {"shuffle=False": "--no-shuffle (shuffle=False)",
                                             "mask=True": "--mask"})


def build_spec(params: dict[str, Any]) -> Spec:
    shape: tuple[int, ...] = params["shape"]
    samples, timesteps, *frame, features = shape
    if frame and params.get("data_format") == "channels_first":  # N,T,C,H,W
        features, *frame = shape[2:]
    shuffle = Shuffle.FALSE if params["no_shuffle"] else Shuffle(params["shuffle"])
    given = {field.name: params[field.name] for field in dataclasses.fields(Spec) if field.name in params}
    given.update(shuffle=shuffle, frame=tuple(frame) or None, data_mask=_data_mask(params))
    try:
        return Spec(samples, timesteps, features, **given)
    except SpecError as error:
        raise click.BadParameter(error.describe(FLAGS), param_hint=f"'{FLAGS[error.field]}'") from None


def _data_mask(params: dict[str, Any]) -> DataMask | None:
    """--mask-value V: the mask read from the rows of --data."""
    value = params.get("mask_value")
    if value is None:
        return None
    if params.get("data") is None:
        raise click.UsageError("--mask-value reads each sample's mask from its row of --data: give --data too")
    x = _checked_data(tuple(params["shape"]), params["data"], params["data_key"])
    return layout_of(x, value, params["data"], params["data_key"])


def command_line(spec: Spec) -> str:
    """The lstm-inspect arguments that give this spec (defaults left out, but a ConvLSTM2D's
    kernel, padding and data_format, always said)."""
    words = [f"--shape {','.join(str(size) for size in (spec.samples, spec.timesteps, *spec.step_shape))}"]
    default = Spec(1, 1, 1)
    for name in ("batch_size", "epochs", "val_samples", "predict_samples", "units", "seed"):
        if getattr(spec, name) != getattr(default, name):
            words.append(f"{FLAGS[name]} {getattr(spec, name)}")
    words += ["--stateful"] * spec.stateful + ["--no-shuffle"] * (spec.shuffle == Shuffle.FALSE)
    words += ["--shuffle batch"] * (spec.shuffle == Shuffle.BATCH)
    for name in ("cell", "layers", "keras"):
        if getattr(spec, name) != getattr(default, name):
            words.append(f"{FLAGS[name]} {getattr(spec, name)}")
    if spec.keras == KerasVersion.THREE:  # the default depends on the machine: always say which
        words.append(f"--backend {spec.backend}")
    words += ["--bidirectional"] * spec.bidirectional + ["--go-backwards"] * spec.go_backwards
    words += ["--no-fixed-batch"] * (not spec.fixed_batch)
    words += [f"--replicas {spec.replicas}"] * (spec.replicas > 1)
    if spec.cell.convolutional:
        words += [f"--kernel {spec.kernel}", f"--padding {spec.padding}", f"--data-format {spec.data_format}"]
    if spec.lengths:
        words += [f"--lengths {spec.lengths}", f"--pad {spec.pad}"] + ["--no-mask"] * (not spec.mask)
    if spec.data_mask is not None:
        words += [f"--data {shlex.quote(spec.data_mask.path)}"] + [
            f"--data-key {shlex.quote(spec.data_mask.key)}"] * bool(spec.data_mask.key)
        words += [f"--mask-value {spec.data_mask.value!r}"] + ["--no-mask"] * (not spec.mask)
    if spec.reset != default.reset:
        words.append(f"--reset {spec.reset}")
    if spec.workflow is not None:
        words.append(f"--calls {shlex.quote(text(spec.workflow))}")
    return " ".join(words)


def read_data(spec: Spec, params: dict[str, Any]) -> Continuity | None:
    """--data: the user's x, memory-mapped, checked against --shape and read for its continuity."""
    path, key = params["data"], params["data_key"]
    if path is None:
        if key is not None:
            raise click.UsageError("--data-key names an array of the file --data gives: give --data too")
        return None
    return continuity(_checked_data((spec.samples, spec.timesteps, *spec.step_shape), path, key), spec.batch_size,
                      path=path)


def _checked_data(expected: tuple[int, ...], path: str, key: str | None) -> np.ndarray:
    """The array of --data (--data-key), memory-mapped, checked against --shape."""
    try:
        x = open_data(path, key)
    except SpecError as error:
        raise click.BadParameter(error.describe(DATA_FLAGS), param_hint="'--data'") from None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--data'") from None
    if tuple(x.shape) != expected:
        raise click.BadParameter(f"{path} has shape {tuple(x.shape)}, not --shape {expected}", param_hint="'--data'")
    if not np.issubdtype(x.dtype, np.floating):
        raise click.BadParameter(f"{path} holds {x.dtype}, not floating-point numbers", param_hint="'--data'")
    return x


# The examples the README's commands read, shipped in the package (a link to them in a checkout).
EXAMPLES_FOLDER = importlib.resources.files("lstm_inspect") / "examples"
EXAMPLES = sorted(entry.name for entry in EXAMPLES_FOLDER.iterdir() if entry.name.endswith((".json", ".npy")))


def print_example(ctx: click.Context, param: click.Parameter, name: str | None) -> None:
    """--example NAME: where that shipped example is, for --replay and --data to read; then exit."""
    if name is None or ctx.resilient_parsing:
        return
    click.echo(str(EXAMPLES_FOLDER / name))
    ctx.exit()
