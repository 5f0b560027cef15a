"""How to make a setup that Keras refuses run: every stateful call a batch of exactly the
size the model was built for."""

from __future__ import annotations

import math

from ..core.order import iter_invocations
from ..core.spec import Spec
from ..core.words import Terms, plural
from ..core.workflow import CALLS, Kind, Op


def _divisors(n: int) -> list[int]:
    # (a range past the square root finds more of the same divisors: the set keeps each once)
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]  # pragma: no mutate
    return sorted(set(small + [n // d for d in small]))


def _either(separator: str, last: str, words: list[str]) -> str:
    return words[0] if len(words) == 1 else separator.join(words[:-1]) + last + words[-1]


def fix_for_partial_batch(spec: Spec, terms: Terms = Terms()) -> str:
    """How to make every stateful call hold exactly B samples, as Keras requires."""
    sizes = {terms.name("samples"): spec.samples, terms.name("val_samples"): spec.val_samples,
             terms.name("predict_samples"): spec.predict_samples}
    sizes = {name: size for name, size in sizes.items() if size}
    common = math.gcd(*sizes.values())
    divisors = _divisors(common)
    # The batch size divides none of them (else no batch were partial): < and <= agree, as > and >= do.
    below = [d for d in divisors if d < spec.batch_size]  # pragma: no mutate
    above = [d for d in divisors if d > spec.batch_size]  # pragma: no mutate
    near = below[-2:] + above[:2]
    choice = _either(", ", " or ", [str(d) for d in near])
    what = _either(", ", " and ", list(sizes))
    advice = f"use {terms.name('batch_size')} {choice} (divisors of {what} near {spec.batch_size})"
    truncations = [f"{name} to {size - size % spec.batch_size}" for name, size in sizes.items()
                   if size % spec.batch_size and size // spec.batch_size]  # keeping a whole batch at least
    if truncations:
        advice += (", or drop the remainder as drop_remainder does: truncate "
                   + ", ".join(truncations))
    return advice


def _fix_for_batch_size(spec: Spec, op: Op, size: int, slots: int, model: str, built: int) -> str:
    """The fix for a call whose batch_size `size` (given, or Keras's default) is not the model's."""
    default = ", Keras's default" if size == CALLS[op.kind].batch_size else ""
    asked = f"batch_size={size:,}{default}"
    head = (f"{op} sends its {plural(slots, 'sample')} as one batch ({asked}) to {model}" if slots < size
            else f"{op} asks for batches of {slots:,} ({asked}) from {model}")
    parts = [spec.fit_split(op), spec.fit_validation(op)] if op.kind == Kind.FIT else [op.samples]
    # Either fix works only where no part of the call ends with a partial batch.
    if all(part % built == 0 for part in parts):
        whole = ""
    elif op.kind == Kind.FIT and spec.fit_validation(op):
        whole = f" and training and validation samples in multiples of {built:,}"
    else:
        what = "training samples" if op.kind == Kind.FIT else "samples"
        whole = f" and a multiple of {built:,} {what} (e.g. {max(built, parts[0] - parts[0] % built):,})"
    twin = (f", or make a stateful twin for {slots:,} first (twin(batch_size={slots}), which takes the weights and "
            "starts from zeros)" if all(part % slots == 0 for part in parts) else "")
    return f"{head}, built for {built:,}: call it with batch_size={built}{whole}{twin}"


def fix_for_call(spec: Spec, index: int, terms: Terms = Terms()) -> str:
    """How to make the workflow's call that holds layer call `index` give its stateful layer
    batches of exactly the size the model was built for."""
    for invocation, calls in iter_invocations(spec):
        found = [call for call in calls if call.index == index]
        if not found:
            continue
        op, built = invocation.op, invocation.batch_size
        if empty := spec.empty_split_part(op):
            return (f"{op} leaves no {empty} sample of the {spec.samples:,}: give fit more samples, or a "
                    "validation_split that keeps at least one of each (or validation_samples=)")
        slots = len(found[0].samples)
        model = f"the {invocation.model} model" if invocation.model else "the model"
        if built == 1 and slots == 1 and op.batch_size is not None and op.batch_size != 1:
            # TensorFlow traced the call's step with its batch size open (Keras 3): see OPEN_TRACE_WHY.
            return (f"{op} runs in a step function traced with its batch size open (batch_size={op.batch_size:,}, "
                    f"more than its batches hold), where {model}, built for batch 1, cannot run: call it with "
                    "batch_size=1")
        if op.batch_size is not None and op.batch_size != built and found[0].batch == 0:
            return _fix_for_batch_size(spec, op, op.batch_size, slots, model, built)
        if op.kind.one_batch or slots != built and found[0].batch == 0 and op.kind != Kind.FIT:
            return (f"{op} sends {plural(slots, 'sample')} at once to {model}, built for batches of {built:,}: send "
                    f"{built:,}, or make a stateful twin for {slots:,} first (twin(batch_size={slots}))")
        total = spec.fit_split(op) if op.kind == Kind.FIT else op.samples
        what = f"fit's {total:,} training samples ({terms.name('samples')})" if op.kind == Kind.FIT \
            else f"the {total:,} samples of {op}"
        return (f"{what} end with a batch of {slots:,}: give it a multiple of {built:,} samples "
                f"(e.g. {max(built, total - total % built):,}), as drop_remainder does")
    raise ValueError(f"the workflow makes no layer call {index}")
