"""Benchmark: lstm-inspect measured side by side with the limits it is held to.

    python bench/bench.py [--quick] [--only a,b,c,...]    (or: make bench)

Parts: (a) the mirror's checked run vs a bare PyTorch loop on the CPU; (b) the mirror vs
real Keras 3; (c) wall time of the headline command vs `import torch`; (d) peak memory as
N grows; (e) part (a) on the GPU, when there is one; (f) a StateProbe's cost on a real
Keras fit: time and peak memory against the same fit without it; (g) --data on a large file,
memory-mapped: peak memory against the same command without it; (h) padded sequences: the
masked and the unmasked checked run against the same run unpadded and a bare PyTorch loop of
packed sequences, and peak memory as N grows; (i) lstm_inspect.torch.watch on a real PyTorch
training loop: time and peak memory against the same loop without it; (j) workflows of many small
calls (a serving loop of one-sample predicts, train_on_batch(4) calls): the checked run after
start-up against a bare PyTorch loop with the same state handling. The targets come from
shared/docs/performance-anchors.md and are printed beside the figures. Absolute times drift
on shared machines, so each comparison is measured in this one run, interleaved, best of a
few repeats after a warm-up. A missed target is reported, never a failure: this is a
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Keras reads its backend once, at import; part (b) is about Keras on torch, whatever the
# caller's environment says.
os.environ["KERAS_BACKEND"] = "torch"

import numpy as np
import torch
from torch import nn

from lstm_inspect.check.inspection import Inspection, Report
from lstm_inspect.core.order import iter_calls
from lstm_inspect.core.spec import Spec
from lstm_inspect.data.masks import read_mask
from lstm_inspect.keras.oracle.model import copy_weights, import_keras
from lstm_inspect.mirror.inputs import batch_inputs, build_rnn
from lstm_inspect.mirror.run import run_mirror

# The interpreter running this script is the venv's (make bench runs $(BIN)/python), so its
# folder holds the lstm-inspect entry point the users run.
BIN = Path(sys.executable).parent
LSTM_INSPECT = str(BIN / "lstm-inspect")
PARTS = "abcdefghij"


@dataclass(frozen=True)
class Sizes:
    """What a run measures: the full sizes of the brief, or a smoke run's smaller ones."""

    a_samples: int  # N of parts (a) and (e)
    repeats: int  # timed repeats per measurement (best one kept)
    d_samples: tuple[int, ...]  # N of part (d)'s memory series, smallest first
    big_samples: int  # N of part (d)'s large dry run
    calls: int  # predict calls of part (d)'s serving loop (and ten times as many)
    probe_samples: int  # part (f)'s fit (and ten times as many, for its memory)
    data_rows: int  # rows of part (g)'s data file (50 steps of 8 float32 features each)


FULL = Sizes(a_samples=100_000, repeats=3, d_samples=(10**4, 10**5, 10**6), big_samples=10**7, calls=10**4,
             probe_samples=10_000, data_rows=10**6)
QUICK = Sizes(a_samples=10_000, repeats=1, d_samples=(10**3, 10**4, 10**5), big_samples=10**6, calls=10**3,
              probe_samples=1_000, data_rows=10**5)


# --- output -------------------------------------------------------------------------------

def duration(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def megabytes(kilobytes: int) -> str:
    return f"{kilobytes / 1024:.0f} MB"


def heading(text: str) -> None:
    print(f"\n{text}", flush=True)


def row(label: str, value: str, target: str = "", met: bool | None = None) -> None:
    """One line of a part's table: what, the figure, and the target with its outcome."""
    outcome = "" if met is None else ("met" if met else "MISSED")
    print(f"  {label:<44} {value:>12}   {target:<16} {outcome}".rstrip(), flush=True)


# --- measuring ------------------------------------------------------------------------------

def best_times(runs: dict[str, Callable[[], object]], repeats: int,
               sync: Callable[[], None] = lambda: None) -> tuple[dict[str, float], dict[str, object]]:
    """Best wall time of each run, and what its warm-up returned.

    One warm-up each (first-call costs: allocator, thread pool, Keras's predict function,
    cuDNN), then `repeats` rounds that take the runs in turn, so that load from elsewhere
    on the machine falls on all of them alike. `sync` waits for queued GPU work.
    """
    results = {name: run() for name, run in runs.items()}
    best = {name: math.inf for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results


@dataclass(frozen=True)
class Process:
    seconds: float
    max_rss_kb: int
    exit_code: int


# Runs a command and reports its wall time, peak RSS and exit code. It runs in a small
# Python of its own because Linux counts in a child's peak RSS the memory of the process
# that spawned it, up to the exec: spawned from this script, which holds torch and Keras,
# every command would show this script's few hundred MB. The small Python's own ~12 MB is
# the floor of what it reports.
_MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
seconds = time.perf_counter() - start
print(seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def run_process(argv: list[str]) -> Process:
    """Wall time, peak RSS and exit code of one fresh process, its output discarded."""
    report = subprocess.run([sys.executable, "-c", _MEASURE, *argv], capture_output=True, text=True,
                            check=True)
    seconds, max_rss_kb, exit_code = report.stdout.split()
    return Process(float(seconds), int(max_rss_kb), int(exit_code))


def best_process(argv: list[str], repeats: int) -> Process:
    """The fastest of `repeats` runs (the OS's file cache is warmed by the first)."""
    return min((run_process(argv) for _ in range(repeats)), key=lambda p: p.seconds)


# --- (a) and (e): the mirror's checked run vs a bare PyTorch loop ---------------------------

def stateful_spec(samples: int, timesteps: int, features: int, batch: int, units: int) -> Spec:
    return Spec(samples, timesteps, features, batch_size=batch, stateful=True, shuffle=False, units=units)


def checked_run(spec: Spec, device: str) -> Report:
    inspection = Inspection(spec, device=device)
    for _ in inspection:  # streamed, as the command does: no step kept
        pass
    return inspection.report


def bare_loop(spec: Spec, device: str) -> int:
    """The limit the mirror is held to: the same forward calls with Keras's stateful state
    handling written inline, nothing recorded or checked. Full batches only, as in the
    mirror, since Keras raises at a stateful call with a partial batch. Returns the calls."""
    lstm = nn.LSTM(spec.features, spec.units, batch_first=True).to(device).eval()
    shape = (1, spec.batch_size, spec.units)
    state = (torch.zeros(shape, device=device), torch.zeros(shape, device=device))
    calls = spec.samples // spec.batch_size
    with torch.no_grad():
        for _ in range(calls):
            x = torch.rand(spec.batch_size, spec.timesteps, spec.features, device=device)
            _, (h, c) = lstm(x, state)
            state = (h.detach(), c.detach())
    return calls


def mirror_vs_bare(sizes: Sizes, device: str, sync: Callable[[], None]) -> None:
    spec = stateful_spec(sizes.a_samples, 50, 8, batch=256, units=64)
    print(f"  N={spec.samples:,} T={spec.timesteps} F={spec.features} B={spec.batch_size} "
          f"U={spec.units}, stateful, no shuffle, one epoch; best of {sizes.repeats}")
    best, results = best_times({"mirror": lambda: checked_run(spec, device),
                                "bare": lambda: bare_loop(spec, device)}, sizes.repeats, sync)
    report = results["mirror"]
    # The mirror's steps include the one where Keras raises (a partial last batch): no forward.
    mirror_calls = report.summary.steps - (report.error is not None)
    ending = f", then Keras raises at step {report.error.step}" if report.error else ""
    row("bare PyTorch loop", duration(best["bare"]))
    row("mirror, checked run (Inspection)", duration(best["mirror"]))
    row("ratio mirror / bare", f"{best['mirror'] / best['bare']:.2f}x", "<= 1.10x",
        best["mirror"] / best["bare"] <= 1.10)
    print(f"  forward calls: mirror {mirror_calls:,}, bare {results['bare']:,}{ending}; "
          f"every step verified: {report.summary.verified}")


def part_a(sizes: Sizes) -> None:
    heading(f"(a) CPU ({torch.get_num_threads()} torch threads): mirror's checked run vs bare PyTorch loop")
    mirror_vs_bare(sizes, "cpu", sync=lambda: None)


def part_e(sizes: Sizes) -> None:
    if not torch.cuda.is_available():
        heading("(e) skipped: no CUDA")
        return
    heading(f"(e) GPU ({torch.cuda.get_device_name()}): mirror's checked run vs bare PyTorch loop")
    mirror_vs_bare(sizes, "cuda", sync=torch.cuda.synchronize)


# --- (b): the mirror vs real Keras 3 ------------------------------------------------------------

def part_b(sizes: Sizes) -> None:
    keras = import_keras()
    spec = stateful_spec(1000, 20, 1, batch=200, units=32)
    heading(f"(b) CPU: mirror vs real Keras {keras.__version__} ({keras.backend.backend()} backend, "
            "use_cudnn=False, stateful, predict_on_batch per batch)")
    print(f"  N={spec.samples:,} T={spec.timesteps} F={spec.features} B={spec.batch_size} "
          f"U={spec.units}, one epoch of forward calls; best of {sizes.repeats * 3}")
    inputs = keras.Input(batch_shape=(spec.batch_size, spec.timesteps, spec.features))
    layer = keras.layers.LSTM(spec.units, stateful=True, use_cudnn=False)
    model = keras.Model(inputs, layer(inputs))
    copy_weights([layer], spec, build_rnn(spec, torch.device("cpu")))  # the mirror's weights
    # The mirror's own inputs, made before timing: Keras is not charged for making them.
    batches = [batch_inputs(spec, call.phase, call.samples, torch.device("cpu")).numpy()
               for call in iter_calls(spec)]

    def keras_epoch():
        layer.reset_state()  # each epoch starts from zeros, as each mirror run does
        return [model.predict_on_batch(x) for x in batches]

    def mirror_forward():
        return [record.output for record in run_mirror(spec)]

    # Repeats are cheap at this size and single runs are a few milliseconds: take more.
    best, results = best_times({"keras": keras_epoch, "mirror": mirror_forward,
                                "checked": lambda: checked_run(spec, "cpu")}, sizes.repeats * 3)
    # Same weights, same inputs, same state handling: the outputs must agree.
    agree = all(np.allclose(k, m.numpy(), atol=1e-5) for k, m in zip(results["keras"], results["mirror"]))
    row("real Keras, predict_on_batch", duration(best["keras"]))
    row("mirror, forward only (run_mirror)", duration(best["mirror"]))
    row("mirror, checked run (Inspection)", duration(best["checked"]))
    row("speed-up Keras / mirror forward", f"{best['keras'] / best['mirror']:.1f}x", ">= 10x",
        best["keras"] / best["mirror"] >= 10)
    row("speed-up Keras / mirror checked", f"{best['keras'] / best['checked']:.1f}x")
    print(f"  outputs of Keras and the mirror agree (atol 1e-5): {agree}")


# --- (c): wall time of the headline command -------------------------------------------------------

def part_c(sizes: Sizes) -> None:
    heading(f"(c) wall time of fresh processes (venv binaries, best of {sizes.repeats})")
    headline = [LSTM_INSPECT, "--shape", "1000,20,1", "--batch", "200"]
    commands = {"python -c 'import torch'": [sys.executable, "-c", "import torch"],
                "lstm-inspect --shape 1000,20,1 --batch 200": headline,
                "  ... --dry-run": headline + ["--dry-run"]}
    measured = {label: best_process(argv, sizes.repeats) for label, argv in commands.items()}
    torch_seconds = measured["python -c 'import torch'"].seconds
    for label, process in measured.items():
        note = f"{process.seconds / torch_seconds:.2f}x import torch"
        row(label, duration(process.seconds), f"{note}, exit {process.exit_code}")


# --- (d): peak memory as N grows ---------------------------------------------------------------

def part_d(sizes: Sizes) -> None:
    heading("(d) peak RSS of fresh processes, T=20 F=1 B=1000, --format json to /dev/null")
    base = [LSTM_INSPECT, "--batch", "1000", "--format", "json"]
    print(f"  {'N':>12} {'dry-run RSS':>12} {'time (1 run)':>13} {'real-run RSS':>13} {'time (1 run)':>13}")
    dry, real = {}, {}
    for samples in sizes.d_samples:
        shape = ["--shape", f"{samples},20,1"]
        dry[samples] = run_process(base + shape + ["--dry-run"])
        real[samples] = run_process(base + shape)
        print(f"  {samples:>12,} {megabytes(dry[samples].max_rss_kb):>12} {duration(dry[samples].seconds):>13} "
              f"{megabytes(real[samples].max_rss_kb):>13} {duration(real[samples].seconds):>13}", flush=True)
    small, large = sizes.d_samples[0], sizes.d_samples[-1]
    for name, series in (("dry run", dry), ("real run", real)):
        ratio = series[large].max_rss_kb / series[small].max_rss_kb
        row(f"{name} RSS, N={large:,} / N={small:,}", f"{ratio:.2f}x", "<= 1.3x", ratio <= 1.3)
    # --no-slots is planned, not yet there in every version: pass it where --help lists it.
    help_text = subprocess.run([LSTM_INSPECT, "--help"], capture_output=True, text=True).stdout
    no_slots = ["--no-slots"] if "--no-slots" in help_text else []
    big = run_process(base + ["--shape", f"{sizes.big_samples},20,1", "--dry-run"] + no_slots)
    label = f"N={sizes.big_samples:,} --dry-run{' --no-slots' if no_slots else ''}"
    row(f"{label}: time", duration(big.seconds))
    row(f"{label}: peak RSS", megabytes(big.max_rss_kb), f"exit {big.exit_code}")
    # A workflow streams like the steps: a serving loop of predict calls, memory flat in its length.
    serving = [LSTM_INSPECT, "--shape", "1000,20,1", "--batch", "1", "--stateful", "--no-shuffle", "--format",
               "json", "--no-slots"]
    loops = {}
    for calls in (sizes.calls, sizes.calls * 10):
        for dry in (True, False):
            loops[calls, dry] = run_process(serving + ["--calls", f"predict(1) * {calls}"] + ["--dry-run"] * dry)
            label = f"--calls 'predict(1) * {calls:,}'{' --dry-run' if dry else ''}"
            anchored = dry and calls == sizes.calls  # the figure: under 3 s and 300 MB
            found = loops[calls, dry]
            row(f"{label}: time", duration(found.seconds), "< 3 s" * anchored,
                found.seconds < 3 if anchored else None)
            row(f"{label}: peak RSS", megabytes(found.max_rss_kb), "< 300 MB" * anchored,
                found.max_rss_kb < 300 * 1024 if anchored else None)
    for dry in (True, False):
        ratio = loops[sizes.calls * 10, dry].max_rss_kb / loops[sizes.calls, dry].max_rss_kb
        row(f"serving loop{' dry run' if dry else ''} RSS, {sizes.calls * 10:,} / {sizes.calls:,} calls",
            f"{ratio:.2f}x", "<= 1.3x", ratio <= 1.3)
    replays = {}
    for replay_steps in (sizes.calls * 10, sizes.calls * 100):  # 100,000 and 1,000,000 in the full run
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "run.json"
            _write_replay(path, replay_steps)
            size = path.stat().st_size
            replays[replay_steps] = replay = run_process([LSTM_INSPECT, "--replay", str(path), "--format", "json",
                                                          "--no-slots"])
        label = f"--replay of {replay_steps:,} steps ({size / 2**20:,.0f} MiB)"
        row(f"{label}: time", duration(replay.seconds), f"exit {replay.exit_code}")
        row(f"{label}: peak RSS", megabytes(replay.max_rss_kb))
    ratio = replays[sizes.calls * 100].max_rss_kb / replays[sizes.calls * 10].max_rss_kb
    row(f"--replay RSS, {sizes.calls * 100:,} / {sizes.calls * 10:,} steps", f"{ratio:.2f}x", "<= 1.3x", ratio <= 1.3)


def _write_replay(path: Path, steps: int) -> None:
    """A StateProbe file of `steps` predict calls of 4 slots, each carrying the one before, written
    as probe.save writes it (one step per line)."""
    head = {"schema": 1, "observed_by": "StateProbe", "keras_version": "3.15.1",
            "spec": Spec(4, 3, 1, batch_size=4, stateful=True, backend="torch").to_json(), "stateful_layers": 1}
    with path.open("w") as file:
        file.write(json.dumps(head)[:-1] + ', "steps": [')
        for index in range(steps):
            start = ["zeros"] * 4 if index == 0 else [f"predict b{index - 1}/slot {slot}" for slot in range(4)]
            step = {"call": "predict", "phase": "predict", "epoch": 0, "batch": index, "samples": [0, 1, 2, 3],
                    "start": start, "verified": None}
            file.write(("" if index == 0 else ",") + "\n  " + json.dumps(step))
        file.write('\n], "warnings": [], "verdict": ""}\n')


def part_f(sizes: Sizes) -> None:
    heading(f"(f) StateProbe on a real Keras fit: {sizes.probe_samples:,} samples, T=20, a stateful LSTM of 64 "
            "units, batch 100")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from probe_fit import fit, model_and_data

    from lstm_inspect.keras import StateProbe

    model, x, y = model_and_data(sizes.probe_samples)
    times, _ = best_times({"without": lambda: fit(model, x, y, None),
                           "with": lambda: fit(model, x, y, StateProbe())}, sizes.repeats)
    ratio = times["with"] / times["without"]
    row("fit with the probe / without", f"{ratio:.2f}x", "(reported)")
    row("fit without the probe", duration(times["without"]))
    script = str(Path(__file__).resolve().parent / "probe_fit.py")
    peaks = {}
    for samples in (sizes.probe_samples, sizes.probe_samples * 10):
        for mode in ("none", "probe"):
            peaks[samples, mode] = run_process([sys.executable, script, str(samples), mode]).max_rss_kb
        row(f"peak RSS, {samples:,} samples: with / without", f"{megabytes(peaks[samples, 'probe'])} / "
            f"{megabytes(peaks[samples, 'none'])}")
    added = [peaks[samples, "probe"] - peaks[samples, "none"] for samples in (sizes.probe_samples,
                                                                                 sizes.probe_samples * 10)]
    row("the probe's memory, 10x the batches", f"{added[1] / 1024:+.0f} MB vs {added[0] / 1024:+.0f} MB",
        "flat", abs(added[1] - added[0]) < 20 * 1024)


def part_g(sizes: Sizes) -> None:
    rows, timesteps, features = sizes.data_rows, 50, 8
    heading(f"(g) --data on a {rows:,} x {timesteps} x {features} float32 file "
            f"({rows * timesteps * features * 4 / 2**30:.1f} GiB), --dry-run --no-slots, B=1000")

    base = [LSTM_INSPECT, "--shape", f"{rows},{timesteps},{features}", "--batch", "1000", "--stateful",
            "--no-shuffle", "--dry-run", "--format", "json", "--no-slots"]
    without = run_process(base)
    row("without --data: time, peak RSS", f"{duration(without.seconds)}, {megabytes(without.max_rss_kb)}")
    # Random rows end the scan at the first two; sliding windows are verified over every row.
    for kind in ("random rows", "sliding windows"):
        with tempfile.TemporaryDirectory(prefix="lstm-inspect-bench-") as folder:
            path = os.path.join(folder, "x.npy")
            _write_rows(path, rows, timesteps, features, sliding=kind == "sliding windows")
            found = run_process(base + ["--data", path])
        ratio = found.max_rss_kb / without.max_rss_kb
        row(f"--data, {kind}: time, peak RSS", f"{duration(found.seconds)}, {megabytes(found.max_rss_kb)}",
            f"exit {found.exit_code}")
        row(f"--data, {kind}: peak RSS / without", f"{ratio:.2f}x", "< 1.5x", ratio < 1.5)


# --- (h): padded sequences --------------------------------------------------------------------

PADDED_LENGTHS = "10-50"  # each sample's valid steps of T = 50, drawn per sample


def bare_packed_loop(spec: Spec) -> int:
    """Part (a)'s bare loop over padded batches as a PyTorch port runs them: each batch's valid
    lengths, pack_padded_sequence(enforce_sorted=False), the final states carried. Returns the calls."""
    lstm = nn.LSTM(spec.features, spec.units, batch_first=True).eval()
    shape = (1, spec.batch_size, spec.units)
    state = (torch.zeros(shape), torch.zeros(shape))
    generator = torch.Generator().manual_seed(0)
    calls = spec.samples // spec.batch_size
    with torch.no_grad():
        for _ in range(calls):
            x = torch.rand(spec.batch_size, spec.timesteps, spec.features)
            lengths = torch.randint(10, spec.timesteps + 1, (spec.batch_size,), generator=generator)
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            _, (h, c) = lstm(packed, state)
            state = (h.detach(), c.detach())
    return calls


def part_h(sizes: Sizes) -> None:
    heading(f"(h) padded sequences, --lengths {PADDED_LENGTHS} of T=50: checked runs vs unpadded and a bare "
            "packed loop")
    unpadded = stateful_spec(sizes.a_samples, 50, 8, batch=256, units=64)
    masked = dataclasses.replace(unpadded, lengths=PADDED_LENGTHS)
    unmasked = dataclasses.replace(masked, mask=False)
    print(f"  N={unpadded.samples:,} T=50 F=8 B=256 U=64, stateful, no shuffle, one epoch; best of {sizes.repeats}")
    best, results = best_times({"unpadded": lambda: checked_run(unpadded, "cpu"),
                                "masked": lambda: checked_run(masked, "cpu"),
                                "unmasked": lambda: checked_run(unmasked, "cpu"),
                                "bare": lambda: bare_packed_loop(unpadded)}, sizes.repeats)
    row("bare PyTorch loop, packed sequences", duration(best["bare"]))
    row("checked run, unpadded", duration(best["unpadded"]))
    row("checked run, padded and masked (packed)", duration(best["masked"]))
    row("checked run, padded, --no-mask", duration(best["unmasked"]))
    # Reported, not held to (a)'s limit: the mirror also unpacks every output as Keras gives it.
    row("ratio masked / bare packed loop", f"{best['masked'] / best['bare']:.2f}x", "(reported)")
    row("cost of masking: masked / unpadded", f"{best['masked'] / best['unpadded']:.2f}x")
    row("cost of padding unmasked: --no-mask / unpadded", f"{best['unmasked'] / best['unpadded']:.2f}x")
    verified = all(report.summary.verified for name, report in results.items() if name != "bare")
    print(f"  every step verified in the three checked runs: {verified}")
    command = [LSTM_INSPECT, "--batch", "256", "--stateful", "--no-shuffle", "--lengths", PADDED_LENGTHS,
               "--format", "json", "--no-slots", "--no-evidence", "--no-advice"]
    small, large = sizes.d_samples[0], sizes.d_samples[1]
    peak = {samples: run_process(command + ["--shape", f"{samples},50,8"]) for samples in (small, large)}
    for samples, found in peak.items():
        row(f"N={samples:,} padded, masked: time (1 run)", duration(found.seconds), f"exit {found.exit_code}")
        row(f"N={samples:,} padded, masked: peak RSS", megabytes(found.max_rss_kb))
    ratio = peak[large].max_rss_kb / peak[small].max_rss_kb
    row(f"padded RSS, N={large:,} / N={small:,}", f"{ratio:.2f}x", "<= 1.3x", ratio <= 1.3)
    _data_masks(sizes, unpadded, best["masked"])


def _data_masks(sizes: Sizes, unpadded: Spec, made_masked: float) -> None:
    """--mask-value on the user's own rows: each batch reads its rows' masks from the file."""
    with tempfile.TemporaryDirectory(prefix="lstm-inspect-bench-") as folder:
        files = {}
        for samples in (unpadded.samples, *sizes.d_samples[:2]):
            files[samples] = os.path.join(folder, f"masked-{samples}.npy")
            _write_masked_rows(files[samples], samples, 50, 8)
        spec = dataclasses.replace(unpadded, data_mask=read_mask(files[unpadded.samples], 0.0))
        best, results = best_times({"data": lambda: checked_run(spec, "cpu")}, sizes.repeats)
        row("checked run, --data masks (10-50 valid, every 10th row a gap)", duration(best["data"]),
            f"verified {results['data'].summary.verified}")
        row("ratio --data masks / made padding, masked", f"{best['data'] / made_masked:.2f}x", "(reported)")
        small, large = sizes.d_samples[0], sizes.d_samples[1]
        peak = {samples: run_process([LSTM_INSPECT, "--shape", f"{samples},50,8", "--batch", "256", "--stateful",
                                      "--no-shuffle", "--data", files[samples], "--mask-value", "0", "--format",
                                      "json", "--no-slots", "--no-evidence"]) for samples in (small, large)}
    for samples, found in peak.items():
        row(f"N={samples:,} --data masks: time, peak RSS", f"{duration(found.seconds)}, "
            f"{megabytes(found.max_rss_kb)}", f"exit {found.exit_code}")
    ratio = peak[large].max_rss_kb / peak[small].max_rss_kb
    row(f"--data masks RSS, N={large:,} / N={small:,}", f"{ratio:.2f}x", "<= 1.3x", ratio <= 1.3)


def _write_masked_rows(path: str, rows: int, timesteps: int, features: int) -> None:
    """A padded .npy file written a block at a time: each row 10 to 50 valid steps then zeros, and
    every 10th row also a gap of zeros in the middle."""
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, timesteps, features))
    block = 50_000
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        rng = np.random.default_rng(start)
        values = rng.uniform(0.1, 1, (stop - start, timesteps, features)).astype(np.float32)
        lengths = rng.integers(10, timesteps + 1, stop - start)
        values[np.arange(timesteps)[None, :] >= lengths[:, None]] = 0.0
        values[(np.arange(start, stop) % 10 == 0), 3:6] = 0.0
        x[start:stop] = values
    x.flush()


def _write_rows(path: str, rows: int, timesteps: int, features: int, sliding: bool) -> None:
    """A .npy file written a block of rows at a time, never held whole: random rows, or windows
    sliding one step at a time over one series."""
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, timesteps, features))
    block = 50_000
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        rng = np.random.default_rng(start)
        if sliding:
            series = np.arange(start, stop + timesteps - 1, dtype=np.float32)[:, None] + np.arange(features)
            x[start:stop] = np.lib.stride_tricks.sliding_window_view(series, timesteps, axis=0).transpose(0, 2, 1)
        else:
            x[start:stop] = rng.uniform(-1, 1, (stop - start, timesteps, features))
    x.flush()


# --- (i): the PyTorch probe ----------------------------------------------------------------------

def part_i(sizes: Sizes) -> None:
    samples = sizes.probe_samples
    heading(f"(i) lstm_inspect.torch.watch on a PyTorch training loop: {samples:,} samples, T=20, F=8, an LSTM of "
            "64 units, batch 100, the state carried detached, SGD; two epochs")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from torch_loop import model_and_data, train, watched

    model, x = model_and_data(samples)
    times, _ = best_times({"without": lambda: train(model, x, 2), "with": lambda: watched(model, x, 2)},
                          sizes.repeats)
    ratio = times["with"] / times["without"]
    row("loop without the probe", duration(times["without"]))
    row("loop with the probe", duration(times["with"]))
    row("with the probe / without", f"{ratio:.2f}x", "(reported)")
    script = str(Path(__file__).resolve().parent / "torch_loop.py")
    added = []
    for count in (samples, samples * 10):
        peaks = {mode: run_process([sys.executable, script, str(count), mode]).max_rss_kb for mode in ("none", "probe")}
        added.append(peaks["probe"] - peaks["none"])
        row(f"peak RSS, {count:,} samples: with / without", f"{megabytes(peaks['probe'])} / "
            f"{megabytes(peaks['none'])}")
    row("the probe's memory, 10x the batches", f"{added[1] / 1024:+.0f} MB vs {added[0] / 1024:+.0f} MB",
        "flat", abs(added[1] - added[0]) < 20 * 1024)


# --- (j): many small calls ------------------------------------------------------------------------

def interleaved_best(commands: dict[str, list[str]], repeats: int) -> dict[str, Process]:
    """The fastest run of each command, the commands taken in turn each round (drift falls on all)."""
    best: dict[str, Process] = {}
    for _ in range(repeats):
        for label, argv in commands.items():
            found = run_process(argv)
            if label not in best or found.seconds < best[label].seconds:
                best[label] = found
    return best


def _checked_workflow(workflow: str, batch: int, count: int) -> list[str]:
    return [LSTM_INSPECT, "--shape", "1000,20,1", "--batch", str(batch), "--stateful", "--no-shuffle", "--calls",
            f"{workflow} * {count}", "--no-evidence", "--format", "json", "--no-slots"]


def _bare_workflow(batch: int, count: int, threads: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve().parent / "serving_loop.py"), str(count), str(batch),
            str(threads)]


def part_j(sizes: Sizes) -> None:
    calls = sizes.calls
    heading(f"(j) many small calls, {calls:,} per workflow, after start-up (a run of {calls:,} calls less a run of "
            f"one); best of {sizes.repeats + 2}, interleaved")
    print("  bare: the same forward calls (T=20, F=1, 8 units), the state carried detached, one torch.equal per "
          "call;\n  the checked run trains nothing either: it mirrors the state, so both run forward only")
    for workflow, batch in (("predict(1)", 1), ("train_on_batch(4)", 4)):
        found = interleaved_best({
            "checked": _checked_workflow(workflow, batch, calls), "checked once": _checked_workflow(workflow, batch, 1),
            "bare": _bare_workflow(batch, calls, 0), "bare once": _bare_workflow(batch, 1, 0),
            "bare 1 thread": _bare_workflow(batch, calls, 1), "bare 1 thread once": _bare_workflow(batch, 1, 1)},
            sizes.repeats + 2)
        run = {name: found[name].seconds - found[f"{name} once"].seconds
               for name in ("checked", "bare", "bare 1 thread")}
        exits = sorted({process.exit_code for process in found.values()})
        print(f"  --calls '{workflow} * {calls:,}' --batch {batch} (exit codes {exits}):")
        row("  bare PyTorch loop, torch's threads", duration(run["bare"]))
        row("  bare PyTorch loop, one thread", duration(run["bare 1 thread"]))
        row("  checked run (lstm-inspect, JSON)", duration(run["checked"]),
            f"peak {megabytes(found['checked'].max_rss_kb)}")
        row("  ratio checked / bare", f"{run['checked'] / run['bare']:.2f}x", "<= 1.5x",
            run["checked"] / run["bare"] <= 1.5)
        # The checked run makes a small call on one thread (mirror/run.py): the ratio to a bare loop
        # that does so too.
        row("  ratio checked / bare on one thread", f"{run['checked'] / run['bare 1 thread']:.2f}x", "(reported)")
        row("  per call: checked, bare", f"{run['checked'] / calls * 1e6:.0f} us, {run['bare'] / calls * 1e6:.0f} us")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N and one repeat: a fast smoke run")
    parser.add_argument("--only", default=",".join(PARTS), metavar="a,b,...",
                        help="parts to run, comma-separated (default: all)")
    args = parser.parse_args()
    args.only = {part.strip() for part in args.only.split(",") if part.strip()}
    if not args.only or not args.only <= set(PARTS):
        parser.error(f"--only takes parts from {', '.join(PARTS)}")
    return args


def compile_package() -> None:
    """The package's bytecode, written as pip writes an installed wheel's. An editable install where
    PYTHONDONTWRITEBYTECODE is set (this machine sets it) would compile every module of lstm-inspect
    anew in each process, some 50 ms of every start-up that no installed copy pays."""
    import lstm_inspect

    compileall.compile_dir(str(Path(lstm_inspect.__file__).parent), quiet=1)


def main() -> None:
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    compile_package()
    print(f"lstm-inspect benchmark{' (quick)' if args.quick else ''}: torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs; targets from shared/docs/performance-anchors.md")
    runners = {"a": part_a, "b": part_b, "c": part_c, "d": part_d, "e": part_e, "f": part_f, "g": part_g,
               "h": part_h, "i": part_i, "j": part_j}
    for part in PARTS:
        if part in args.only:
            runners[part](sizes)


if __name__ == "__main__":
    main()
