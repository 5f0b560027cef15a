"""How much memory a command will use, and how much it may: checked before any work, so that
a setup the machine cannot hold is refused with a reason instead of being killed.

`estimate` adds up what each path allocates at its peak (start-up, the training order, one
batch of the mirror with its hashed inputs and every layer's outputs, the stateful state, the
evidence, the timeline's columns, real Keras's process); the test suite measures the real peak
for a grid of setups and holds the estimate to it. `available` is the smallest of the memory
the kernel says is available, the room left under this process's cgroup limit (v1 and v2),
and the room left under its address-space limit (`ulimit -v`). Torch-free.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

from .spec import Spec

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
INPUT_GROUP_VALUES = 1 << 20  # the mirror hashes the inputs of a few calls at once (mirror.py)
EVIDENCE_SLOTS, EVIDENCE_STEPS = 64, 1024  # the evidence's bounds (evidence.py)


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
    if timeline:
        parts["the timeline's columns"] = 8 * slots  # one step's starts, slot by slot, while it is folded
    if dry_run:
        return parts
    width = spec.units * spec.layers * spec.directions
    per_step = BYTES_PER_INPUT * spec.features + BYTES_PER_UNIT * width
    parts["one batch"] = slots * spec.timesteps * per_step + BYTES_PER_INPUT * INPUT_GROUP_VALUES
    tensors = len(spec.cell.state_names)
    if spec.stateful:
        parts["the state"] = 4 * tensors * 4 * slots * width  # carried, initial, final and a copy
    if evidence:
        # Its longest run: a chain of calls of its first slots, outputs kept, gates not.
        steps = min(EVIDENCE_STEPS, max(spec.timesteps, EVIDENCE_STEPS // spec.timesteps * spec.timesteps))
        parts["the evidence"] = min(slots, EVIDENCE_SLOTS) * steps * (BYTES_PER_INPUT * spec.features + 8 * width)
    if against_keras:
        samples = spec.samples + spec.val_samples + spec.predict_samples
        parts["real Keras"] = START_UP_KERAS + 3 * 4 * samples * spec.timesteps * spec.features
    return parts


def available(cgroup_root: str = "/sys/fs/cgroup", proc: str = "/proc") -> Room | None:
    """The least room any limit leaves this process, or None where none can be read."""
    rooms = [room for room in (_mem_available(proc), _cgroup_room(cgroup_root, proc), _address_space_room(proc))
             if room is not None]
    return min(rooms, key=lambda room: room.bytes, default=None)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return None


def _mem_available(proc: str) -> Room | None:
    for line in (_read(os.path.join(proc, "meminfo")) or "").splitlines():
        if line.startswith("MemAvailable:"):
            return Room(int(line.split()[1]) * 1024, "the memory available")
    return None


def _cgroup_room(root: str, proc: str) -> Room | None:
    """Limit minus usage of this process's memory cgroup: v2 (memory.max, memory.current) or
    v1 (memory.limit_in_bytes, memory.usage_in_bytes); None without a limit."""
    for line in (_read(os.path.join(proc, "self", "cgroup")) or "").splitlines():
        number, controllers, path = line.split(":", 2)
        if number == "0" and controllers == "":
            folder, limit_file, usage_file = os.path.join(root, path.lstrip("/")), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            folder = os.path.join(root, "memory", path.lstrip("/"))
            limit_file, usage_file = "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        limit = (_read(os.path.join(folder, limit_file)) or "").strip()
        usage = (_read(os.path.join(folder, usage_file)) or "0").strip()
        if limit.isdigit() and int(limit) < 1 << 62 and usage.isdigit():  # v1 writes "no limit" as ~2**63
            return Room(max(0, int(limit) - int(usage)), "the cgroup's memory limit")
    return None


def _address_space_room(proc: str) -> Room | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = 0
    for line in (_read(os.path.join(proc, "self", "status")) or "").splitlines():
        if line.startswith("VmSize:"):
            used = int(line.split()[1]) * 1024
    return Room(max(0, soft - used), "the address-space limit (ulimit -v)", virtual=True)
