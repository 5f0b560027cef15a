"""tf.distribute.MirroredStrategy over R replicas, as measured on Keras 3.15.1 with TensorFlow
2.21 (logical CPU devices). A call's global batch is split over the replicas in order, the first
ones taking one sample more where R does not divide it (7 over 2: 4 and 3). A stateful model
built inside the strategy's scope for the per-replica batch b keeps one state per replica, each
slot by slot: slot j of the next global batch starts from slot j, exactly as one model built
for R x b would (outputs equal to 3e-8), so the mirror runs that model. `layer.states` reads
replica 0's rows only. A model built for the global batch raises Keras's stateful batch-size
error; a partial global batch raises or broadcasts by how it splits, which is not followed yet."""

from __future__ import annotations

from typing import Protocol

from .choices import Backend, KerasVersion, Phase
from .errors import SpecError
from .workflow import Kind, Op, Source, Workflow, distinct


class Spec(Protocol):
    """What these rules read of a spec.Spec (which checks itself with them: no import back)."""

    @property
    def replicas(self) -> int: ...
    @property
    def keras(self) -> KerasVersion: ...
    @property
    def backend(self) -> Backend: ...
    @property
    def stateful(self) -> bool: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def workflow(self) -> Workflow | None: ...
    @property
    def plan(self) -> Workflow: ...

    def samples_of(self, op: Op, phase: Phase) -> int: ...

MAX_REPLICAS = 64
_FOLLOWED = (Kind.FIT, Kind.EVALUATE, Kind.PREDICT, Kind.RESET_STATE)
_PHASES = {Kind.FIT: (Phase.TRAIN, Phase.VALIDATION), Kind.EVALUATE: (Phase.EVALUATE,)}


def replica_rows(global_batch: int, replicas: int) -> list[range]:
    """The rows of a global batch each replica takes, in replica order."""
    size, more = divmod(global_batch, replicas)
    rows, start = [], 0
    for replica in range(replicas):
        end = start + size + (replica < more)
        rows.append(range(start, end))
        start = end
    return rows


def check_replicas(spec: Spec) -> None:
    """What lstm-inspect follows under MirroredStrategy, and Keras's own refusals."""
    if not 1 <= spec.replicas <= MAX_REPLICAS:
        raise SpecError("replicas", f"{{replicas}} is between 1 and {MAX_REPLICAS}")
    if spec.replicas == 1:
        return
    if spec.keras != KerasVersion.THREE or spec.backend != Backend.TENSORFLOW:
        raise SpecError("replicas", "{replicas} runs tf.distribute.MirroredStrategy, measured on Keras 3's "
                        "TensorFlow backend only: add {backend} tensorflow")
    if not spec.stateful:
        raise SpecError("replicas", "{replicas} follows a stateful layer ({stateful}): a stateless one starts "
                        "every sample from zeros on every replica alike")
    if spec.batch_size % spec.replicas:
        raise SpecError("replicas", "{batch_size} {batch} is the global batch, split over {count} replicas: the "
                        "model is built for the per-replica batch, so {replicas} must divide it",
                        batch=spec.batch_size, count=spec.replicas)
    for op in sorted(distinct(spec.plan), key=str):
        _check_call(spec, op)


def _check_call(spec: Spec, op: Op) -> None:
    if op.kind not in _FOLLOWED or op.gives_states or op.steps or op.steps_per_epoch or op.data != Source.ARRAYS:
        raise SpecError("workflow", "{workflow}: " + f"{op}: under {{replicas}} lstm-inspect follows fit, evaluate "
                        "and predict over arrays, all batches, and reset_state(), not yet this call")
    if not op.kind.runs_batches:
        return
    phases = _PHASES.get(op.kind, (Phase.PREDICT,))
    for samples in filter(None, (spec.samples_of(op, phase) for phase in phases)):
        problem = _batches_problem(spec, op, op.batch_size or spec.batch_size, samples)
        if problem and spec.workflow is None:  # the shorthand options' calls
            raise SpecError("replicas", "{replicas} " + f"{spec.replicas}: {op}: " + problem)
        if problem:
            raise SpecError("workflow", "{workflow}: " + f"{op}: " + problem)


def _batches_problem(spec: Spec, op: Op, size: int, samples: int) -> str:
    """Why `samples` in global batches of `size` do not run as lstm-inspect follows them ("" if they do)."""
    replicas, per_replica = spec.replicas, spec.batch_size // spec.replicas
    if size != spec.batch_size and size % replicas == 0 and size // replicas > 1 and samples % size == 0:
        return _built_for_another(size, per_replica, replicas)
    if size != spec.batch_size:
        return (f"a global batch of {size:,} gives the {replicas} replicas {_split(size, replicas)}, where "
                f"the model is built for {per_replica:,}; " + _NOT_FOLLOWED +
                f"give the call batch_size={spec.batch_size:,}")
    if samples % size:
        return (f"{samples:,} samples in global batches of {size:,} end in a batch of {samples % size:,}, which "
                f"gives the {replicas} replicas {_split(samples % size, replicas)} where the model is built "
                f"for {per_replica:,}; " + _NOT_FOLLOWED + f"give the call a multiple of {size:,} samples")
    return ""


# Measured: a replica's lone sample broadcasts over its rows, an empty share or another size raises.
_NOT_FOLLOWED = ("Keras then raises or broadcasts by how the batch splits, which lstm-inspect does not follow "
                 "yet: ")


def _split(size: int, replicas: int) -> str:
    shares = [len(rows) for rows in replica_rows(size, replicas)]
    if len(set(shares)) == 1:
        return f"{shares[0]:,} sample{'s' * (shares[0] != 1)} each"
    return " and ".join(f"{share:,}" for share in shares) + " samples"


def _built_for_another(size: int, per_replica: int, replicas: int) -> str:
    """Keras's error where each replica receives another batch than the model is built for."""
    received = size // replicas
    return (f"each of the {replicas} replicas receives {received:,} samples of each global batch of "
            f"{size:,}, where the model is built for {per_replica:,}: Keras raises ValueError in the first batch "
            f"(\"If an RNN is stateful, the batch size of the input sequences must be the same as the batch size "
            f"of the initial state. - Expected batch size: {per_replica:,} - Received batch size: {received:,}\"); "
            f"build the model for the per-replica batch, keras.Input(batch_shape=({received:,}, T, F)) inside "
            f"strategy.scope(), or give the call batch_size={per_replica * replicas:,}")


def per_replica_batch(spec: Spec) -> int:
    """The batch each replica's model is built for: the global batch over the replicas."""
    return spec.batch_size // spec.replicas


def replica_sentence(spec: Spec) -> str:
    """The verdict's sentence on the replicas: who holds which slots, whose state is whose."""
    b = per_replica_batch(spec)
    held = "; ".join(f"replica {replica} slots {rows.start}-{rows.stop - 1}" if len(rows) > 1 else
                     f"replica {replica} slot {rows.start}"
                     for replica, rows in enumerate(replica_rows(spec.batch_size, spec.replicas)))
    return (f" MirroredStrategy over {spec.replicas} replicas splits each global batch of {spec.batch_size:,} in "
            f"order ({held}), the model built for the per-replica batch of {b:,}; each replica keeps its own state "
            f"and carries it slot by slot, so the run is that of one model built for {spec.batch_size:,}. "
            f"layer.states shows replica 0's {b:,} rows only (each replica's: "
            "layer.states[i].value.values). A model built for the global batch raises Keras's stateful "
            "batch-size error.")
