"""How much memory a command will use, and how much it may: checked before any work, so that
a setup the machine cannot hold is refused with a reason instead of being killed.

`estimate` adds up what each path allocates at its peak (start-up, the training order, one
batch of the mirror with its hashed inputs and every layer's outputs, the stateful state, the
evidence, the timeline's columns, real Keras's process); the test suite measures the real peak
for a grid of setups and holds the estimate to it. `rooms` reads the memory the kernel says is
available, the room left under this process's cgroup limits (v1 and v2, the cgroup and its
ancestors), and the room left under its address-space limit (`ulimit -v`). Torch-free.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from ..core.spec import Spec

MIB = 1 << 20
# Resident memory of a process before its work, measured here: Python with numpy, click and
# rich; that and torch; a process running real Keras with its backend.
START_UP = 48 * MIB
START_UP_TORCH = 256 * MIB
START_UP_KERAS = 900 * MIB
# Bytes a value of a batch costs while the mirror runs it: the inputs hashed in int64 with
# their temporaries, and each layer's gate projections and outputs at every timestep.
BYTES_PER_INPUT = 48
BYTES_PER_UNIT = 16
# A call's data indices and the sample each slot runs (int64 each); the timeline's start of each
# slot while a step is folded; float32 values; the stateful state's copies (carried, initial,
# final and one more); a weight with its temporary while drawn; the evidence's kept outputs per
# unit; real Keras's copies of the data (float32, three: the user's arrays, the batches, the backend's).
BYTES_PER_SLOT = 16
BYTES_PER_TIMELINE_SLOT = 8
FLOAT_BYTES = 4
STATE_COPIES = 4
BYTES_PER_WEIGHT = 2 * FLOAT_BYTES
BYTES_PER_EVIDENCE_UNIT = 8
KERAS_BYTES_PER_VALUE = 3 * FLOAT_BYTES
# The mirror hashes the inputs of a few calls at a time, up to this many values: a handful of
# kernel launches instead of a dozen per call (what costs on a GPU), memory still a few batches.
INPUT_GROUP_VALUES = 1 << 20
# Bounds that keep the evidence (evidence.py) no dearer than the run it explains, whatever the
# setup: it is measured on the first slots of a few calls, and each row says which.
EVIDENCE_SLOTS = 64  # slots kept from each call the evidence looks at
MAX_SAMPLES_ALONE = 16  # samples rerun one at a time (at most one per call the run made)
MAX_CHAIN_CALLS = 8
MAX_CHAIN_STEPS = 1024  # timesteps of the concatenated sequence
GRADIENT_STEPS = 64  # timesteps of each call the gradient runs through


# Address space torch maps beyond what it keeps resident (measured: 640 MB mapped, 225 MB resident).
VIRTUAL_ALLOWANCE = 512 * MIB


@dataclass(frozen=True)
class Room:
    bytes: int
    source: str  # what bounds it, e.g. "the cgroup's memory limit"
    virtual: bool = False  # the address-space limit, which counts mapped memory too


def estimate(spec: Spec, *, dry_run: bool, evidence: bool = False, against_keras: bool = False,
             timeline: bool = False) -> dict[str, int]:
    """The peak resident memory of the command, part by part, in bytes."""
    parts = {"start-up": START_UP if dry_run else START_UP_TORCH, "the training order": spec.order_bytes()}
    slots = spec.largest_batch
    parts["a call's samples"] = BYTES_PER_SLOT * slots
    if timeline:
        parts["the timeline's columns"] = BYTES_PER_TIMELINE_SLOT * slots
    if dry_run:
        return parts
    width = spec.state_width * spec.layers * spec.directions
    per_step = BYTES_PER_INPUT * spec.step_values + BYTES_PER_UNIT * width
    parts["one batch"] = slots * spec.timesteps * per_step + BYTES_PER_INPUT * INPUT_GROUP_VALUES
    tensors = len(spec.cell.state_names)
    if spec.any_stateful:
        parts["the state"] = STATE_COPIES * tensors * FLOAT_BYTES * slots * width
    # The network's weights, with their temporaries while drawn (the evidence's networks come
    # one at a time, after the run's is gone).
    parts["the weights"] = BYTES_PER_WEIGHT * _parameters(spec)
    if evidence:
        # Its longest run: a chain of calls of its first slots, outputs kept, gates not.
        steps = min(MAX_CHAIN_CALLS, max(1, MAX_CHAIN_STEPS // spec.timesteps), spec.calls) * spec.timesteps
        parts["the evidence"] = min(slots, EVIDENCE_SLOTS) * steps * (BYTES_PER_INPUT * spec.step_values
                                                                      + BYTES_PER_EVIDENCE_UNIT * width)
    if against_keras:
        samples = spec.samples + spec.val_samples + spec.predict_samples
        parts["real Keras"] = START_UP_KERAS + KERAS_BYTES_PER_VALUE * samples * spec.timesteps * spec.step_values
    return parts


def _parameters(spec: Spec) -> int:
    """The recurrent layers' weights and biases, as torch holds them."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1, "convlstm2d": 4}[str(spec.cell)] * spec.units
    taps = spec.kernel**2 if spec.cell.convolutional else 1  # a convolution's weights per channel
    total = 0
    for layer in range(spec.layers):
        inputs = spec.features if layer == 0 else spec.units * spec.directions
        biases = 1 if spec.cell.convolutional else 2  # torch's bias_ih and bias_hh; ConvLSTM2D's one, as Keras's
        total += spec.directions * gates * (taps * (inputs + spec.units) + biases)
    return total


# The kernel's own paths by default (tests name their own).
def rooms(cgroup_root: str = "/sys/fs/cgroup", proc: str = "/proc") -> list[Room]:  # pragma: no mutate
    """The room each limit leaves this process, where it can be read."""
    return [room for room in (_mem_available(proc), _cgroup_room(cgroup_root, proc), _address_space_room(proc))
            if room is not None]


def _lines(path: str) -> list[str]:
    """The lines of a kernel file; none where it cannot be read."""
    try:
        with open(path, encoding="ascii") as file:  # pragma: no mutate (kernel files are ASCII: any codec reads them)
            return file.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def _number(path: str) -> int | None:
    """The whole number a one-value kernel file holds (None for "max", or where unreadable)."""
    lines = _lines(path)
    return int(lines[0]) if lines and lines[0].strip().isdigit() else None


def _mem_available(proc: str) -> Room | None:
    for line in _lines(os.path.join(proc, "meminfo")):
        if line.startswith("MemAvailable:"):
            return Room(int(line.split()[1]) * 1024, "the memory available")
    return None


def _cgroup_room(root: str, proc: str) -> Room | None:
    """The least room under this process's memory cgroup and its ancestors: limit minus the
    usage that cannot be reclaimed (page cache that is inactive can). v2 (memory.max,
    memory.current) or v1 (memory.limit_in_bytes, memory.usage_in_bytes), whose cgroup may
    show at the mount's root where the container has no cgroup namespace."""
    found = []
    for line in _lines(os.path.join(proc, "self", "cgroup")):
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        number, controllers, path = fields
        # The kernel writes an empty controller list for hierarchy 0 only, the v2 one (and, or agree).
        if number == "0" and controllers == "":  # pragma: no mutate
            base, names = root, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            base, names = os.path.join(root, "memory"), ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                                         "total_inactive_file")
        else:
            continue
        parts = [part for part in path.split("/") if part]
        # The cgroup, then each ancestor, then the root (a depth of -1 would repeat the parent: the
        # least room is the same).
        for depth in range(len(parts), -1, -1):  # pragma: no mutate
            room = _room_in(os.path.join(base, *parts[:depth]), *names)
            if room is not None:
                found.append(room)
    return Room(min(found), "the cgroup's memory limit") if found else None


def _room_in(folder: str, limit_name: str, usage_name: str, inactive_name: str) -> int | None:
    limit, usage = _number(os.path.join(folder, limit_name)), _number(os.path.join(folder, usage_name))
    # v1 writes "no limit" as ~2**63; no real limit is 2**62 itself (> and >= agree).
    if limit is None or usage is None or limit >= 1 << 62:  # pragma: no mutate
        return None
    inactive = 0
    for line in _lines(os.path.join(folder, "memory.stat")):
        name, _, value = line.partition(" ")  # pragma: no mutate (one space a line: rpartition agrees)
        if name == inactive_name and value.strip().isdigit():
            inactive = int(value)
    return max(0, limit - max(0, usage - inactive))


def _address_space_room(proc: str) -> Room | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = 0
    for line in _lines(os.path.join(proc, "self", "status")):
        if line.startswith("VmSize:"):
            used = int(line.split()[1]) * 1024
    return Room(max(0, soft - used), "the address-space limit (ulimit -v)", virtual=True)
