"""Plant, one at a time, the single-line bugs a review once found the suite letting through,
and check that the fast tests now catch each one (`make mutants`). The tree is restored after
every plant; the exit code is 1 if any plant survives.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/test_workflows.py", "tests/test_library.py", "tests/test_mirror.py", "tests/test_schedule.py",
         "tests/test_cli.py",
         "tests/test_robustness.py", "tests/test_backend_rules.py", "tests/test_output_failures.py",
         "tests/test_evidence_claims.py", "tests/test_memory.py", "tests/test_probe_records.py",
         "tests/test_advice.py", "tests/test_layout.py"]
# (name, file, original text, planted text)
PLANTS = [
    ("any zero slot verifies", "lstm_inspect/observe.py",
     "        verified = zero_slots == len(zero)", "        verified = zero_slots > 0"),
    ("only h compared", "lstm_inspect/observe.py", "    initial = record.initial\n",
     "    initial = record.initial[:1]\n    previous = previous and type(previous)("
     "previous.call, previous.initial[:1], previous.final[:1], previous.output)\n"),
    ("expected error masks wrong mirror", "lstm_inspect/cli.py",
     "        if failures or not report.ok:", "        if failures:"),
    ("checked_steps from steps", "lstm_inspect/inspection.py",
     '"checked_steps": self.checked_steps,', '"checked_steps": self.steps,'),
    ("dry run takes max-steps and device", "lstm_inspect/cli.py",
     '"dry_run": ("evidence", "evidence_batch", "against", "device", "max_steps"),',
     '"dry_run": ("evidence", "evidence_batch", "against"),'),
    ("schedule resets in validation", "lstm_inspect/schedule.py",
     "        return spec.reset.validation\n", "        return bool(spec.reset)\n"),
    ("mirror resets in validation", "lstm_inspect/mirror.py",
     "        return self.reset.predict if call.phase == Phase.PREDICT else self.reset.validation",
     "        return bool(self.reset)"),
    ("schedule every:K off by one", "lstm_inspect/schedule.py",
     "call.batch % spec.reset.every == 0", "(call.batch + 1) % spec.reset.every == 0"),
    ("mirror every:K off by one", "lstm_inspect/mirror.py", "call.batch % self.reset.every == 0",
     "(call.batch + 1) % self.reset.every == 0"),
    ("no detach", "lstm_inspect/mirror.py",
     "                setattr(self, name, state.detach())", "                setattr(self, name, state)"),
    ("mirror keeps the state on JAX", "lstm_inspect/mirror.py", "            layer.set_states(initial)\n",
     "            pass\n"),
    ("mirror raises for TensorFlow's lone sample", "lstm_inspect/mirror.py",
     "                x = x.expand(layer.batch_size or 1, -1, -1)\n", "                pass\n"),
    ("schedule carries on JAX", "lstm_inspect/schedule.py",
     '"Keras 3.15.1, jax 0.10.2", "3.15.1",\n        carries=False',
     '"Keras 3.15.1, jax 0.10.2", "3.15.1",\n        carries=True'),
    ("rich's exit 1 on a closed pipe", "lstm_inspect/render.py",
     "        raise BrokenPipeError\n", "        raise SystemExit(1)\n"),
    ("a closed stdout passes for written", "lstm_inspect/cli.py",
     "    if closed:\n        _output_failed(\"standard output is closed\")", "    if closed:\n        pass"),
    ("an option twice keeps the last", "lstm_inspect/cli.py",
     "            if counts[param.name] > 1:", "            if counts[param.name] > 9:"),
    ("the estimate forgets the weights", "lstm_inspect/memory.py",
     'parts["the weights"] = 4 * _parameters(spec) * 2', 'parts["the weights"] = 0'),
    ("the evidence unbounded", "lstm_inspect/memory.py",
     "EVIDENCE_SLOTS = 64 ", "EVIDENCE_SLOTS = 10**6 "),
    ("the zero state allocated up front", "lstm_inspect/mirror.py",
     "                self.register_buffer(name, None, persistent=False)",
     "                self.register_buffer(name, None, persistent=False)\n            self.states  # noqa: B018"),
    ("schedule raises for TensorFlow's lone sample", "lstm_inspect/schedule.py",
     "        carries=True, broadcasts_one=True, error_type=\"InvalidArgumentError\"",
     "        carries=True, broadcasts_one=False, error_type=\"InvalidArgumentError\""),
    # Workflows (--calls).
    ("schedule: a new model keeps the state", "lstm_inspect/schedule.py",
     "            held = None  # reset_state(), and a new model",
     "            held = held  # reset_state(), and a new model"),
    ("mirror: a loaded model is the saved one", "lstm_inspect/mirror.py",
     "            layer = _switch(layer, op)\n",
     "            layer = layer if op.kind == Kind.SAVE_AND_LOAD else _switch(layer, op)\n"),
    ("schedule: *_on_batch calls run the hooks", "lstm_inspect/schedule.py",
     "    if call.batch != 0 and call.phase != Phase.TRAIN or kind.one_batch:",
     "    if call.batch != 0 and call.phase != Phase.TRAIN:"),
    ("mirror: *_on_batch calls run the hooks", "lstm_inspect/mirror.py",
     "        if kind.one_batch:\n            return False", "        if False:\n            return False"),
    ("the predict data stands still", "lstm_inspect/schedule.py",
     "    cursors[phase] += op.samples", "    cursors[phase] += 0"),
    ("hand carry from the last batch", "lstm_inspect/schedule.py",
     "        return Step(call, returned[call.batch], ", "        return Step(call, returned[-1], "),
    ("mirror: hand-carried states dropped", "lstm_inspect/mirror.py",
     "                output, initial, final = layer.call(x, returned[call.batch])",
     "                output, initial, final = layer.call(x)"),
    ("the count ignores a twin's batch size", "lstm_inspect/spec.py",
     "_tally(spec, item.body, after, seen)", "_tally(spec, item.body, batch_size, seen)"),
    ("schedule: every trace fixes the batch", "lstm_inspect/schedule.py",
     "    if entry in traced:\n        return False\n", ""),
    ("mirror: every trace fixes the batch", "lstm_inspect/mirror.py",
     "        if function in self.traced:\n            return False\n", ""),
    ("mirror: a new model keeps the old traces", "lstm_inspect/mirror.py",
     "            compiled.new_model()\n", ""),
    ("probe: any state counts as its own slot's", "lstm_inspect/probe.py",
     "        if slot < len(before) and np.array_equal(initial[slot], before[slot]):",
     "        if slot < len(before):"),
    ("probe: zeros seen as carried", "lstm_inspect/probe.py", "    found[zero] = -1\n", ""),
    ("layout: windows reversed", "lstm_inspect/layout.py",
     "    steps = first[:, None] + np.arange(timesteps)\n",
     "    steps = first[:, None] + np.arange(timesteps)[::-1]\n"),
    ("continuity: the first chunk only", "lstm_inspect/layout.py",
     "               for start in range(0, rows - gap, chunk_rows)):", "               for start in range(0, 1)):"),
    ("advice: tf-keras's API for Keras 3", "lstm_inspect/advice.py",
     "    elif spec.keras == KerasVersion.TWO:", "    elif True:"),
    ("advice: any stride follows the carry", "lstm_inspect/advice.py",
     "        if spec.stateful and b * s == t:", "        if spec.stateful:"),
    ("validation_split rounds up", "lstm_inspect/spec.py",
     "return math.floor(self.samples * (1.0 - op.validation_split))",
     "return math.ceil(self.samples * (1.0 - op.validation_split))"),
]


def main() -> int:
    survivors = 0
    for name, path, old, new in PLANTS:
        source = ROOT / path
        text = source.read_text()
        if old not in text:
            print(f"{name}: the original text is gone from {path}: update this plant", file=sys.stderr)
            return 2
        source.write_text(text.replace(old, new, 1))
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                   "-m", "not keras", *TESTS], cwd=ROOT, capture_output=True, text=True)
        finally:
            source.write_text(text)
        if "ERROR" in done.stdout:
            print(f"{name}: the plant broke the code itself, not its behaviour: fix the plant", file=sys.stderr)
            return 2
        caught = [line.split(" - ")[0] for line in done.stdout.splitlines() if line.startswith("FAILED")]
        survivors += not caught
        print(f"{name:40s} {'caught by ' + caught[0][len('FAILED '):] if caught else 'SURVIVED'}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
