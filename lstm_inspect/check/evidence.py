"""Evidence measured on the mirror's tensors, for the claims people make about Keras's state.

1. Batch independence: each sample of a batch rerun alone, from its own slot's initial
   state, gives the output it had inside the batch: nothing passes between samples.
2. Continuation (stateful): a slot's chain of calls equals one stateless run over the
   concatenated sequence: the state carried is exactly the state a longer sequence has.
3. Gradient truncation: with the carried state detached, as Keras's state variables are,
   the loss of a call has exactly zero gradient with respect to the previous call's
   inputs; without the detach (the usual PyTorch porting bug) it does not.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass, field

import torch

from ..core.backwards import stacked_backwards
from ..core.choices import Phase
from ..core.facts import KerasStateError, facts_for
from ..core.order import iter_calls
from ..core.spec import Spec
from ..core.words import plural
from ..data.memory import EVIDENCE_SLOTS, GRADIENT_STEPS, MAX_CHAIN_CALLS, MAX_CHAIN_STEPS, MAX_SAMPLES_ALONE
from ..explain.verdict import stateful_does_nothing
from ..mirror.inputs import batch_inputs, build_rnn, inputs_and_padding, padded_batch
from ..mirror.module import Recurrent, States, forward
from ..mirror.run import CallRecord, resolve_device, run_mirror

# Float32 outputs computed batched and alone differ only by summation order.
INDEPENDENCE_TOLERANCE = 1e-6
CONTINUATION_TOLERANCE = 1e-5



@dataclass(frozen=True)
class EvidenceItem:
    key: str
    title: str
    value: float | None  # the measured number; None when it does not apply to this setup
    passed: bool | None
    detail: str
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"key": self.key, "title": self.title, "value": self.value, "passed": self.passed,
                "detail": self.detail, **self.extra}


NO_LAYER_CALL = "the workflow makes no layer call: there is nothing to measure"


def batch_independence(spec: Spec, record: CallRecord | None, batch: int, run_calls: int,
                       device: torch.device) -> EvidenceItem:
    """`record`: epoch 0's training batch `batch` (or the last one that ran), its first slots,
    rerun sample by sample, at most one sample per call of the run."""
    if record is None:
        return EvidenceItem("batch_independence", "Batch independence", None, None,
                            NO_LAYER_CALL if not run_calls else "no batch ran: Keras raises at the first call")
    module = build_rnn(spec, device)
    slots = max(1, min(len(record.call.samples), MAX_SAMPLES_ALONE, run_calls, EVIDENCE_SLOTS))
    x, mask = padded_batch(spec, record.call.stream, record.call.samples[:slots], device)
    with torch.no_grad():
        alone = torch.cat([forward(module, x[i:i + 1], tuple(s[:, i:i + 1] for s in record.initial),
                                   None if mask is None else mask[i:i + 1], spec.go_backwards)[0][:, -1]
                           for i in range(slots)])
    diff = float((alone - record.output[:slots]).abs().max())
    checked = f"{slots:,} samples" + ("" if slots == len(record.call.samples) else
                                      f" (the first {slots:,} of {len(record.call.samples):,})")
    if record.call.batch != batch:
        which = "call" if spec.workflow is not None else "training batch"
        checked += f" ({which} {batch} never runs: Keras raises first)"
    return EvidenceItem(
        "batch_independence", "Batch independence", diff, diff <= INDEPENDENCE_TOLERANCE,
        f"{checked} of {record.call.label} rerun one at a time from their own initial state: "
        f"max |output in batch - output alone| = {diff:.1e}, so nothing passes between the "
        "samples of a batch", {"step": record.call.index, "samples_checked": slots})


def continuation(spec: Spec, records: list[CallRecord], chain_calls: int, run_calls: int,
                 device: torch.device) -> EvidenceItem:
    """`records`: the mirror's first calls; the chain from the first runs to the first reset.
    `chain_calls`: the most consecutive calls a slot runs through without a reset, in the run."""
    effective: dict[str, float] = {"effective_length": chain_calls * spec.timesteps, "chain_calls": chain_calls}
    if not spec.stateful and not spec.hand_carried or spec.stateful and not facts_for(spec).carries:
        # Measured on the model built first: a twin built stateful comes later, if at all.
        why = ("stateless" if not spec.any_stateful else "the model built first is stateless") if not spec.stateful \
            else stateful_does_nothing(spec)
        return EvidenceItem("continuation", "Continuation", None, None,
                            f"{why}: nothing is carried, each slot sees one {spec.timesteps}-step "
                            "sequence from zeros", effective)
    chain = _chain(spec, records)
    if not run_calls:
        return EvidenceItem("continuation", "Continuation", None, None, NO_LAYER_CALL, effective)
    if not chain:
        return EvidenceItem("continuation", "Continuation", None, None,
                            "no call of a full batch starts from zeros among the first calls (a lone "
                            "sample comes first, or Keras raises first)", effective)
    module = build_rnn(spec, device)
    slots = min(spec.batch_size, EVIDENCE_SLOTS)  # bounds the concatenated run's memory
    batches = [padded_batch(spec, r.call.stream, r.call.samples[:slots], device) for r in chain]
    blank = _wholly_masked(batches)
    gaps = _blanked(_chain_gaps(spec, module, batches, chain, slots), blank)
    # The forward direction: an RNN's first units; a ConvLSTM2D (one direction) all of its image.
    diff = float((gaps if spec.cell.convolutional else gaps[..., :spec.units]).max())
    steps = len(chain) * spec.timesteps
    which = "" if slots == spec.batch_size else f" (the first {slots:,} of {spec.batch_size:,} slots)"
    sequence = (f"one stateless {steps}-step sequence" if not spec.go_backwards else
                f"one stateless go_backwards pass over the {steps} steps of the calls in reverse order")
    detail = (f"{len(chain)} chained calls of {spec.timesteps} steps{which} equal {sequence}: max diff {diff:.1e}; "
              f"between resets a slot sees up to {chain_calls:,} calls, "
              f"an effective sequence of {chain_calls * spec.timesteps:,} steps. Measured with the weights "
              "fixed: inside a real fit they change between calls, so this is exact for predict only")
    if blank is not None and bool(blank.any()):
        detail += (f" ({plural(int(blank.sum()), 'call')} of a slot masked throughout left out: Keras outputs zeros "
                   "there, since a masked step repeats the last valid output of its own call)")
    if spec.go_backwards and len(chain) > 1:
        in_order = float(_blanked(_chain_gaps(spec, module, batches, chain, slots, time_order=True), blank).max())
        effective["time_order_diff"] = in_order
        detail += (f". Fed in time order they are not one backward pass over the whole sequence (diff "
                   f"{in_order:.1e}): each call carries the state after its x[:, 0] into the next call's "
                   "last step, so feed the chunks last first")
    if spec.bidirectional:
        backward = float(gaps[..., spec.units:].max())
        effective["backward_diff"] = backward
        detail += (f". Backward direction: diff {backward:.1e}, since its carried state is the one it "
                   "had at the previous batch's first timestep: stateful Bidirectional is not one long "
                   "bidirectional pass")
    passed: bool | None = diff <= CONTINUATION_TOLERANCE
    if spec.bidirectional and spec.layers > 1:
        # Above the first layer even the forward direction reads the backward one's outputs.
        passed = None
        detail += "; with stacked bidirectional layers no direction continues exactly"
    if stacked_backwards(spec):
        passed = None  # each layer flips its input: the second runs each call in time order
        detail += ("; stacked go_backwards layers run in turn backwards and in time order, so the calls chain in "
                   "neither order")
    return EvidenceItem("continuation", "Continuation", diff, passed, detail, effective)


def _chain_gaps(spec: Spec, module: Recurrent, batches: list[tuple[torch.Tensor, torch.Tensor | None]],
                chain: list[CallRecord], slots: int, time_order: bool = False) -> torch.Tensor:
    """|output of each chained call - the one stateless run's output where that call ends|, per
    call and slot. The one run goes over the calls' inputs concatenated in time order; with
    go_backwards, over them in reverse order, the order that runs their steps as the chain runs
    them (or, `time_order`, in time order: one backward pass over the whole sequence)."""
    if spec.go_backwards and not time_order:
        batches = batches[::-1]
    x = torch.cat([inputs for inputs, _ in batches], dim=1)
    masks = [mask for _, mask in batches if mask is not None]
    with torch.no_grad():
        whole = forward(module, x, mask=torch.cat(masks, dim=1) if masks else None, go_backwards=spec.go_backwards)[0]
    ends = whole[:, spec.timesteps - 1::spec.timesteps]  # the run's output as it finishes each call's steps
    if time_order and spec.go_backwards:
        ends = ends.flip(1)  # a backward pass finishes the last call's steps first
    return torch.stack([(ends[:, k] - r.output[:slots]).abs() for k, r in enumerate(chain)])


def _wholly_masked(batches: list[tuple[torch.Tensor, torch.Tensor | None]]) -> torch.Tensor | None:
    """(calls, slots): the calls a slot runs masked throughout. Such a call has no output of its own
    to compare: Keras outputs zeros there, its masked steps repeating this call's last valid
    output, not an earlier call's."""
    masks = [mask for _, mask in batches if mask is not None]
    return torch.stack([~mask.any(dim=1) for mask in masks]) if len(masks) == len(batches) else None


def _blanked(gaps: torch.Tensor, blank: torch.Tensor | None) -> torch.Tensor:
    """`gaps` (calls, slots, ...) with the calls `blank` (calls, slots) marks left out (as zeros)."""
    return gaps if blank is None else gaps.masked_fill(blank.view(*blank.shape, *(1,) * (gaps.dim() - 2)), 0.0)


def _chain(spec: Spec, records: list[CallRecord]) -> list[CallRecord]:
    """The first calls a slot runs through one after another. The chain starts from zeros, as the
    stateless run it is held to, and holds full calls only: a lone sample TensorFlow broadcasts
    continues no sequence."""
    most = min(MAX_CHAIN_CALLS, max(1, MAX_CHAIN_STEPS // spec.timesteps))
    starts = [index for index, record in enumerate(records)
              if len(record.call.samples) == spec.batch_size and not any(state.any() for state in record.initial)]
    if not starts:
        return []
    chain = [records[starts[0]]]
    for record in records[starts[0] + 1:starts[0] + most]:
        if len(record.call.samples) < spec.batch_size:
            break
        if not all(now.equal(before) for now, before in zip(record.initial, chain[-1].final)):
            break
        chain.append(record)
    return chain


def gradient_truncation(spec: Spec, device: torch.device) -> EvidenceItem:
    calls = iter_calls(spec)
    first, second = next(calls, None), next(calls, None)
    if first is None or second is None:
        return EvidenceItem("gradient_truncation", "Gradient truncation", None, None,
                            NO_LAYER_CALL if first is None
                            else "one call only: there is no batch boundary for a gradient to cross")
    slots = min(len(first.samples), len(second.samples), EVIDENCE_SLOTS)
    steps = min(spec.timesteps, GRADIENT_STEPS)
    module = build_rnn(spec, device).train()  # cuDNN runs backward only in training mode

    def gradient_norm(detach: bool) -> float:
        x1 = batch_inputs(spec, first.stream, first.samples[:slots], device)[:, :steps].requires_grad_()
        x2 = batch_inputs(spec, second.stream, second.samples[:slots], device)[:, :steps]
        _, final = forward(module, x1)
        carried = tuple(state.detach() for state in final) if detach else final
        loss = forward(module, x2, carried)[0].pow(2).mean()
        (gradient,) = torch.autograd.grad(loss, x1, allow_unused=True)
        return 0.0 if gradient is None else float(gradient.norm())

    with torch.enable_grad():
        detached, attached = gradient_norm(True), gradient_norm(False)
    return EvidenceItem(
        "gradient_truncation", "Gradient truncation", detached, detached == 0.0 and attached > 0.0,
        f"|d loss(next call) / d inputs(previous call)| = {detached:.1f} with the carried state "
        f"detached, as Keras does, and {attached:.2e} without: no gradient crosses a batch "
        "boundary in Keras; in PyTorch, detach() the carried state"
        + _measured_on(slots, len(first.samples), steps, spec.timesteps),
        {"with_detach": detached, "without_detach": attached})


def padding_effect(spec: Spec, record: CallRecord | None, device: torch.device) -> EvidenceItem:
    """`record`: the call batch independence reruns. Its first slots' final states, against each
    sample run alone on its valid steps only (no padding, no mask) from the state the call began
    with; and what the other setting, the mask on or off, would have left instead."""
    if record is None:
        return EvidenceItem("masking", "Masking", None, None, "no batch ran: Keras raises at the first call")
    module = build_rnn(spec, device)
    slots = max(1, min(len(record.call.samples), MAX_SAMPLES_ALONE, EVIDENCE_SLOTS))
    samples = record.call.samples[:slots]
    x, valid = inputs_and_padding(spec, record.call.stream, samples, device)
    assert valid is not None, "padding_effect measures padded samples"
    if bool(valid.all()):  # nothing padded among them: nothing to measure, rather than a pass of 0.0
        return EvidenceItem("masking", "Masking", None, None,
                            f"none of the {plural(slots, 'sample')} of {record.call.label} it reruns has a padded or "
                            "masked step: nothing to measure (--evidence-batch K reruns another batch)",
                            {"step": record.call.index, "masked": None, "unmasked": None})
    initial = tuple(state[:, :slots] for state in record.initial)
    with torch.no_grad():
        alone = [_run_alone(module, x[i:i + 1, valid[i]], tuple(state[:, i:i + 1] for state in initial),
                            spec.go_backwards) for i in range(slots)]
        # The other setting's final states.
        other = forward(module, x, initial, None if spec.mask else valid, spec.go_backwards)[1]

    def gap(final: tuple[torch.Tensor, ...]) -> float:
        return max(float((final[k][:, i] - alone[i][k][:, 0]).abs().max())
                   for i in range(slots) for k in range(len(final)))

    run = gap(tuple(state[:, :slots] for state in record.final))
    masked, unmasked = (run, gap(other)) if spec.mask else (gap(other), run)
    checked = f"{plural(slots, 'sample')} of {record.call.label} rerun alone on their valid steps only"
    promised = spec.mask and not stacked_backwards(spec)  # stacked, the mask stops lining up above layer 1
    if promised:
        step = "first valid step's (run last)" if spec.go_backwards else "last valid step's"
        detail = (f"{checked}: max |final state - unpadded run's| = {masked:.1e} with the mask, so the state carried "
                  f"is the {step}; unmasked, the padding would move it by {unmasked:.1e}")
    elif spec.mask:
        detail = (f"{checked}: max |final state - unpadded run's| = {masked:.1e} even with the mask: stacked "
                  "go_backwards layers are each given the mask unflipped while their inputs come flipped, so above "
                  f"the first layer it masks other steps than the padding; unmasked it would be {unmasked:.1e}")
    else:
        detail = (f"{checked}: the unmasked padding moves the final state by {unmasked:.1e} (max |final state - "
                  f"unpadded run's|); masked it would be {masked:.1e}")
    return EvidenceItem("masking", "Masking", run, run <= CONTINUATION_TOLERANCE if promised else None, detail,
                        {"step": record.call.index, "masked": masked, "unmasked": unmasked})


def _run_alone(module: Recurrent, steps: torch.Tensor, initial: States, go_backwards: bool) -> States:
    """The final states of one sample's valid steps run alone: its initial ones where it has none."""
    return forward(module, steps, initial, go_backwards=go_backwards)[1] if steps.shape[1] else initial


def _measured_on(slots: int, all_slots: int, steps: int, all_steps: int) -> str:
    """Which part of a call the gradient was measured on, where it was not the whole call."""
    parts = ([f"the first {slots:,} of {all_slots:,} slots"] if slots < all_slots else []) + (
        [f"the first {steps:,} of {all_steps:,} timesteps"] if steps < all_steps else [])
    return f" (measured on {' and '.join(parts)} of each call)" if parts else ""


def gather(spec: Spec, batch: int, chain_calls: int, run_calls: int, device: str = "cpu") -> list[EvidenceItem]:
    """`run_calls`: how many calls the run made, which the evidence's reruns do not exceed."""
    where = resolve_device(device)
    # cuDNN may compute in TF32 by default, whose rounding depends on the batch layout: the
    # evidence compares float32 results, as Keras computes them.
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        chain, chosen = _evidence_records(spec, where, batch)
        items = [batch_independence(spec, chosen, batch, run_calls, where),
                 continuation(spec, chain, chain_calls, run_calls, where), gradient_truncation(spec, where)]
        return items + [padding_effect(spec, chosen, where)] if spec.padded else items


def _evidence_records(spec: Spec, device: torch.device, batch: int) -> tuple[list[CallRecord], CallRecord | None]:
    """One run of the mirror serves batch independence and continuation: the first calls (for
    a chain) and epoch 0's training batch `batch`, or the last one before Keras raises. Each
    keeps copies of its first slots only, and no other call is kept, however far `batch` is."""
    chain: list[CallRecord] = []
    chosen = None
    with contextlib.suppress(KerasStateError):
        for index, record in enumerate(itertools.islice(run_mirror(spec, device), max(batch + 1, MAX_CHAIN_CALLS))):
            kept = CallRecord(record.call, _first(record.initial), _first(record.final),
                              record.output[:EVIDENCE_SLOTS].clone())
            if index < MAX_CHAIN_CALLS:
                chain.append(kept)
            # --evidence-batch K: epoch 0's training batch K, or, in a workflow, its K-th layer call.
            if index <= batch and (spec.workflow is not None or record.call.phase == Phase.TRAIN
                                   and record.call.epoch == 0):
                chosen = kept
    return chain, chosen


def _first(states: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(state[:, :EVIDENCE_SLOTS].clone() for state in states)
