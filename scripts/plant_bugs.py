"""Plant, one at a time, single-line bugs (each a review found the suite letting through, or one
like them), and check that the fast tests catch every one (`make mutants`).

Each plant replaces an exact original text, found exactly once in its file, by a planted text,
runs the test files that plant names (the likeliest killer first, `pytest -x`), and restores the
file. The plants are made in private copies of the tree (one per worker), never in the working
tree itself: people editing or testing it at the same time never see a planted bug, and a file
changed meanwhile is never overwritten. The exit code is 1 if any plant survives, 2 if a plant no
longer applies (its original text is gone, or found twice) or breaks the code instead of its
behaviour.

    .venv/bin/python scripts/plant_bugs.py                 # every plant, 2 workers
    .venv/bin/python scripts/plant_bugs.py --only replay   # plants whose name contains "replay"
    .venv/bin/python scripts/plant_bugs.py --all-tests     # each plant against every file of TESTS
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The fast test files: no real Keras (tests marked `keras` are deselected), seconds each. Golden
# outputs are fast and legitimate killers.
TESTS = [
    "tests/test_workflow_limits.py", "tests/test_backend_traces.py", "tests/test_replay_files.py",
    "tests/test_go_backwards.py", "tests/test_given_states.py",
    "tests/test_data_windows.py", "tests/test_conflicts.py", "tests/test_sentences.py", "tests/test_reset_hooks.py",
    "tests/test_memory_limits.py",
    "tests/test_workflows.py", "tests/test_library.py", "tests/test_mirror.py", "tests/test_schedule.py",
    "tests/test_spec.py", "tests/test_cli.py", "tests/test_robustness.py", "tests/test_backend_rules.py",
    "tests/test_output_failures.py", "tests/test_evidence_claims.py", "tests/test_memory.py",
    "tests/test_probe_records.py", "tests/test_advice.py", "tests/test_port.py", "tests/test_torch_probe.py",
    "tests/test_slot_resets.py", "tests/test_diagram.py",
    "tests/test_layout.py", "tests/test_golden.py",
    "tests/test_views_and_formats.py", "tests/test_hostile_inputs.py", "tests/test_json_stream.py",
    "tests/test_replicas.py", "tests/test_convlstm.py", "tests/test_padding.py", "tests/test_data_mask.py",
]
# Where the emitted snippets are being rewritten: no plant goes there.
NO_PLANTS_UNDER = ("lstm_inspect/emit/",)
# What a copy of the tree needs for the tests.
COPIED = ("lstm_inspect", "tests", "examples", "pyproject.toml", "README.md")
# A failure of one of these is the plant breaking the code, not its behaviour.
BROKEN = ("SyntaxError", "IndentationError", "NameError", "ImportError", "ModuleNotFoundError")
TIMEOUT = 300  # seconds a plant's tests may run


@dataclass(frozen=True)
class Plant:
    name: str
    path: str
    original: str
    planted: str
    # Test files or node ids among TESTS, run with -x: the likeliest killer first. A node runs alone
    # when named alone; named with its own file, the whole file runs in the file's order.
    tests: tuple[str, ...]


def plant(name: str, path: str, original: str, planted: str, *tests: str) -> Plant:
    return Plant(name, path, original, planted, tests)


W, BT, R, D = ("tests/test_workflow_limits.py", "tests/test_backend_traces.py", "tests/test_replay_files.py",
               "tests/test_data_windows.py")
C, S, H = "tests/test_conflicts.py", "tests/test_sentences.py", "tests/test_reset_hooks.py"
WF, LIB = "tests/test_workflows.py", "tests/test_library.py"
CONVLSTM, PADDING = "tests/test_convlstm.py", "tests/test_padding.py"
BACKWARDS, GIVEN = "tests/test_go_backwards.py", "tests/test_given_states.py"
MASKED = "tests/test_data_mask.py"
TP, SR, DG = "tests/test_torch_probe.py", "tests/test_slot_resets.py", "tests/test_diagram.py"

CORE, CHECK, CLI, KERAS = "lstm_inspect/core/", "lstm_inspect/check/", "lstm_inspect/cli/", "lstm_inspect/keras/"
DATA, EXPLAIN, MIRROR = "lstm_inspect/data/", "lstm_inspect/explain/", "lstm_inspect/mirror/"
TORCH, VIEWS = "lstm_inspect/torch/", "lstm_inspect/views/"

PLANTS = [
    # ---- the workflow parser and its counts (core/workflow.py, core/spec.py, core/order.py) ----------
    plant("parser: MAX_DEPTH repeats refused", CORE + "workflow.py",
          "    if depth > MAX_DEPTH:", "    if depth >= MAX_DEPTH:", W),
    plant("parser: MAX_DEPTH + 1 repeats accepted", CORE + "workflow.py",
          "    if depth > MAX_DEPTH:", "    if depth > MAX_DEPTH + 1:", W),
    plant("parser: a statement starts one deep", CORE + "workflow.py",
          "        items.append(_item(statement.value, source, 0))",
          "        items.append(_item(statement.value, source, 1))", W),
    plant("parser: initial_epoch=0 refused", CORE + "workflow.py",
          'minimum = 0 if name in ("validation_samples", "initial_epoch") else 1',
          'minimum = 0 if name in ("validation_samples",) else 1', W),
    plant("parser: validation_samples=0 refused", CORE + "workflow.py",
          'minimum = 0 if name in ("validation_samples", "initial_epoch") else 1',
          'minimum = 0 if name in ("initial_epoch",) else 1', W),
    plant("parser: a repeat of MAX_REPEAT refused", CORE + "workflow.py",
          "    if maximum is not None and value > maximum:", "    if maximum is not None and value >= maximum:", W),
    plant("parser: twin(b) not read as twin(batch_size=b)", CORE + "workflow.py",
          "    elif kind == Kind.TWIN and len(node.args) == 1:", "    elif kind == Kind.TWIN and not node.args:", WF),
    plant("fit ignores initial_epoch", CORE + "order.py",
          "        for epoch in range(op.initial_epoch, op.epochs):", "        for epoch in range(op.epochs):",
          W + "::test_initial_epoch_one_of_two_runs_epoch_one_only"),
    plant("fit validates from epoch 0 on", CORE + "order.py",
          "            if (epoch + 1) % op.validation_freq:", "            if epoch % op.validation_freq:", W, WF),
    plant("the predict data stands still", CORE + "order.py",
          "    cursors[phase] += op.samples", "    cursors[phase] += 0", WF),
    plant("count: initial_epoch ignored", CORE + "workflow.py",
          "        epochs, most = self.epochs - self.initial_epoch, self.steps_per_epoch",
          "        epochs, most = self.epochs, self.steps_per_epoch", W),
    plant("count: the validated epochs out of step", CORE + "spec.py",
          "validated = item.epochs // freq - item.initial_epoch // freq if validation else 0",
          "validated = (item.epochs - item.initial_epoch) // freq if validation else 0", W),
    plant("count: validation_freq from epoch 0", CORE + "spec.py",
          "validated = item.epochs // freq - item.initial_epoch // freq if validation else 0",
          "validated = -(-item.epochs // freq) + item.initial_epoch // -freq if validation else 0", W),
    plant("count: a one-batch call counted in batches", CORE + "spec.py",
          "calls += 1 if item.kind.one_batch else item.run_batches(size)", "calls += item.run_batches(size)", W),
    plant("count: a repeat's body once too often", CORE + "spec.py",
          "calls += first + (item.times - 1) * again", "calls += first + item.times * again", W),
    plant("count: a twin's batch size ignored", CORE + "spec.py",
          "_tally(spec, item.body, after, seen)", "_tally(spec, item.body, batch_size, seen)", W, WF),
    plant("validation_split rounds up", CORE + "spec.py",
          "return math.floor(self.samples * (1.0 - op.validation_split))",
          "return math.ceil(self.samples * (1.0 - op.validation_split))", WF),

    # ---- the reset callback's hooks (core/choices.py, core/hooks.py), applied by schedule and mirror ----
    plant("the callback resets in every hook", CORE + "choices.py",
          "        return self.validation if hook == Hook.TEST_BEGIN else self.predict", "        return bool(self)",
          H),
    plant("predict resets with validation's setting", CORE + "choices.py",
          "        return self.validation if hook == Hook.TEST_BEGIN else self.predict",
          "        return self.validation if hook == Hook.TEST_BEGIN else self.validation", H),
    plant("every:K off by one", CORE + "choices.py",
          "batch % self.every == 0", "(batch + 1) % self.every == 0", H),
    plant("the *_on_batch calls run the hooks", CORE + "hooks.py",
          "    if not CALLS[kind].callbacks:\n        return ()\n", "", H),
    plant("on_epoch_begin before every batch", CORE + "hooks.py",
          "if batch == 0 else (Hook.TRAIN_BATCH_BEGIN,)", "if True else (Hook.TRAIN_BATCH_BEGIN,)", H),
    plant("on_test_begin before every batch", CORE + "hooks.py", "    if batch:\n        return ()\n", "", H),
    plant("mirror: the callback never called", MIRROR + "run.py",
          "        if resets_before(spec.reset, op.kind, call.phase, call.batch):", "        if False:", H),

    # ---- the schedule (core/schedule.py) ----------------------------------------------------------------
    plant("schedule: a new model keeps the state", CORE + "schedule.py",
          "if op.slots and held is not None else (None, frozenset())",
          "if op.slots or held is None else (held, frozenset())",
          S, WF),
    plant("schedule: hand carry from the last batch", CORE + "schedule.py",
          "    return calls[batch], ends[batch - 1] if batch else 0",
          "    return calls[-1], ends[batch - 1] if batch else 0", WF),
    plant("schedule: a hand carry is no continuation", CORE + "schedule.py",
          "stride=op.samples, kept=kept", "stride=0, kept=kept", WF),
    plant("schedule: JAX carries", CORE + "schedule.py",
          "    if stateful and facts.carries and held is not None and not resets and carry_wins:",
          "    if stateful and held is not None and not resets and carry_wins:", BT, "tests/test_backend_rules.py"),

    # ---- TensorFlow's and JAX's rules (core/facts.py: FACTS, Traces) --------------------------------------
    plant("JAX carries", CORE + "facts.py",
          '"Keras 3.15.1, jax 0.10.2", "3.15.1",\n        carries=False',
          '"Keras 3.15.1, jax 0.10.2", "3.15.1",\n        carries=True', BT, "tests/test_backend_rules.py"),
    plant("TensorFlow raises for its lone sample", CORE + "facts.py",
          '"Keras 3.15.1, tensorflow-cpu 2.21.0", "3.15.1",\n        carries=True, broadcasts_one=True',
          '"Keras 3.15.1, tensorflow-cpu 2.21.0", "3.15.1",\n        carries=True, broadcasts_one=False',
          BT, "tests/test_backend_rules.py"),
    plant("torch raises inside the first batch", CORE + "facts.py",
          'carries=True, broadcasts_one=False, error_type="ValueError", raises_before_first_batch=True',
          'carries=True, broadcasts_one=False, error_type="ValueError", raises_before_first_batch=False', BT),
    plant("Keras 3's predict keeps a short batch open", CORE + "facts.py",
          "predict_fixes_first=True,", "predict_fixes_first=False,", BT, WF),
    plant("fit's validation traces fit's function", CORE + "facts.py",
          'function = functions["validation" if phase == Phase.VALIDATION else str(kind)]',
          "function = functions[str(kind)]", BT),
    plant("Keras 3's validation traces a function of its own", CORE + "facts.py",
          'traces={"fit": "train", "validation": "test", "evaluate": "test",',
          'traces={"fit": "train", "validation": "validation", "evaluate": "test",', BT),
    plant("tf-keras's train_on_batch traces its own function", CORE + "facts.py",
          'traces={"fit": "train", "train_on_batch": "train",', 'traces={"fit": "train", "train_on_batch": "tob",',
          WF),
    plant("every trace fixes the batch", CORE + "facts.py",
          "        if function in self.traced:\n            return None\n", "", BT, WF),
    plant("a new model keeps its traces", CORE + "facts.py", "        self.traced = set()", "        pass", BT),
    plant("every kind's first trace fixed as predict's", CORE + "facts.py",
          "(self.facts.predict_fixes_first and kind == Kind.PREDICT)", "self.facts.predict_fixes_first", BT),
    plant("uneven batches fix the first trace", CORE + "facts.py",
          "return count % size == 0 or (", "return True or (", BT),
    plant("the *_on_batch calls' first trace stays open", CORE + "facts.py",
          "            return True  # one batch of all its samples", "            return False", BT),
    plant("fit's first trace at epoch 0 only", CORE + "facts.py",
          "call.epoch == op.initial_epoch)", "call.epoch == 0)", BT),
    plant("schedule: a new model keeps its traces", CORE + "schedule.py",
          "                traces.new_model()\n", "                pass\n", BT, WF),
    plant("TensorFlow's message swaps the sizes", CORE + "facts.py",
          'message = (f"Incompatible shapes between the {received}-sample batch and the {expected}-row state "',
          'message = (f"Incompatible shapes between the {expected}-sample batch and the {received}-row state "', BT),
    plant("tf-keras names the layer's class", CORE + "facts.py",
          'f\'Input 0 of layer "{spec.cell.keras_layer_name}"', 'f\'Input 0 of layer "{spec.cell.keras_name}"', BT),
    plant("predict's first batch raises after on_test_batch_begin", CORE + "schedule.py",
          'Phase.PREDICT: "on_predict_batch_begin"}', 'Phase.PREDICT: "on_test_batch_begin"}', BT),
    plant("lone samples broadcast past the phase that raises", CORE + "facts.py",
          "        if remainder > 1 or first_short:", "        if remainder > 1:", BT),

    # ---- the mirror's own handling (mirror/run.py _Loop, mirror/module.py KerasStateful) -----------------
    plant("mirror: no detach", MIRROR + "module.py",
          "                setattr(self, name, state.detach())", "                setattr(self, name, state)",
          LIB + "::test_no_gradient_crosses_a_call_and_one_flows_within_it"),
    plant("mirror: the zero state allocated up front", MIRROR + "module.py",
          "                self.register_buffer(name, None, persistent=False)",
          "                self.register_buffer(name, None, persistent=False)\n            self.states  # noqa: B018",
          "tests/test_memory.py::test_a_batch_keras_refuses_allocates_nothing"),
    plant("mirror: keeps the state on JAX", MIRROR + "run.py", "            layer.set_states(before)",
          "            pass", BT, "tests/test_backend_rules.py"),
    plant("mirror: raises for TensorFlow's lone sample", MIRROR + "run.py",
          "                x = x.expand(layer.batch_size or 1, *x.shape[1:])\n", "                pass\n",
          "tests/test_backend_rules.py", WF),
    plant("mirror: a loaded model is the saved one", MIRROR + "run.py", "    return loaded\n", "    return layer\n",
          WF + "::test_the_mirror_follows_the_schedule_through_every_kind_of_call"),
    plant("mirror: hand-carried states dropped", MIRROR + "run.py",
          "            output, initial, final = layer.call(x, handed, mask)",
          "            output, initial, final = layer.call(x, mask=mask)",
          WF + "::test_the_mirror_follows_the_schedule_through_every_kind_of_call"),
    plant("mirror: a new model keeps its traces", MIRROR + "run.py", "            self.traces.new_model()\n",
          "            pass\n", WF),

    # ---- checking the tensors and the exit codes (check/, cli/policy.py) ---------------------------------
    plant("any zero slot verifies", CHECK + "observe.py",
          "        verified = zero_slots == len(zero)", "        verified = zero_slots > 0",
          LIB + "::test_a_step_is_verified_only_when_all_predicted_zero_slots_are_zero"),
    plant("only h compared", CHECK + "observe.py", "    initial = _flat(record.initial)\n",
          "    initial = _flat(record.initial[:1])\n    previous = previous and type(previous)("
          "previous.call, previous.initial[:1], previous.final[:1], previous.output)\n",
          LIB + "::test_the_cell_state_c_is_checked_not_only_h"),
    plant("checked_steps from steps", CHECK + "inspection.py",
          '"checked_steps": self.checked_steps,', '"checked_steps": self.steps,',
          LIB + "::test_json_counts_only_the_steps_checked_on_tensors"),
    plant("every step a reset event", CHECK + "inspection.py",
          "self.reset_events += zero_slots > 0", "self.reset_events += 1", R, H),
    plant("expected error masks a wrong mirror", CLI + "policy.py",
          "        if failures or not report.ok:", "        if failures:",
          LIB + "::test_an_expected_keras_error_does_not_hide_a_wrong_mirror"),
    plant("an expected error exits 3", CLI + "policy.py",
          "        if report.error and not self.error:", "        if report.error:",
          LIB + "::test_an_expected_keras_error_with_a_right_mirror_exits_0"),
    plant("the --expect-* counts never checked", CLI + "policy.py",
          "            if expected is not None and expected != actual:", "            if False:", R),

    # ---- the probe's records and --replay (keras/records.py) ---------------------------------------------
    plant("probe: any state counts as its own slot's", KERAS + "records.py",
          "~zero[:shared] & (initial[:shared] == before[:shared]).all(axis=1)", "~zero[:shared]",
          "tests/test_probe_records.py", R),
    plant("probe: zeros seen as carried", KERAS + "records.py", "    found[zero] = -1\n", "",
          "tests/test_probe_records.py"),
    plant("probe: an equal state named after the last slot", KERAS + "records.py",
          "reversed(list(enumerate(before)))", "list(enumerate(before))", R),
    plant("probe: other slots observed as zeros", KERAS + "records.py",
          "Observed(int(np.count_nonzero(sources == -1)),", "Observed(int(np.count_nonzero(sources < 0)),", R),
    plant("probe: the first call numbered", KERAS + "records.py",
          'numbered = word + (f"#{self.number}" if self.number > 1 else "")',
          'numbered = word + (f"#{self.number}" if self.number > 0 else "")', "tests/test_probe_records.py"),
    plant("replay: other slots counted as resets", KERAS + "records.py",
          "    zeros, others = starts.count(ZEROS), starts.count(OTHER)",
          "    zeros, others = starts.count(ZEROS) + starts.count(OTHER), starts.count(OTHER)", R),
    plant("replay: other starts read as zeros", KERAS + "records.py",
          "_CODES = {ZEROS: -1, OTHER: -2}", "_CODES = {ZEROS: -1, OTHER: -1}", R),
    plant("replay: other slots uncounted", KERAS + "records.py",
          "        self.other += other_slots", "        self.other += 0", R),
    plant("replay: one reset named", KERAS + "records.py",
          "if zero_slots and len(self.resets) < 8:", "if zero_slots and len(self.resets) < 1:", R),
    plant("replay: schema 2 taken", KERAS + "records.py",
          "type(schema) is not int or schema != 1:", "type(schema) is not int or schema not in (1, 2):", R),
    plant("replay: another program's file taken", KERAS + "records.py",
          'if data.get("observed_by") not in OBSERVERS or ', "if ", R),
    plant("replay: starts of another length taken", KERAS + "records.py",
          "    if len(starts) != len(samples):", "    if False:", R),
    plant("replay: a slot of an older call taken", KERAS + "records.py",
          '    return [f"{label}{SLOT}{slot}" for slot in range(slots)]',
          '    return [f"{label.split()[0]}{SLOT}{slot}" for slot in range(slots)]', R),
    plant("replay: a slot the call before lacks taken", KERAS + "records.py",
          '    return [f"{label}{SLOT}{slot}" for slot in range(slots)]',
          '    return [f"{label}{SLOT}{slot}" for slot in range(slots + 1)]', R),
    plant("replay: a value too large for the memory left read", "lstm_inspect/data/jsonfile.py",
          "        if kept > self.chunk:", "        if False:", R),
    plant("replay: a number cut at the end of the text taken", "lstm_inspect/data/jsonfile.py",
          "            if end > len(self.text) - _TOKEN and self.more():",
          "            if end == len(self.text) and self.more():", "tests/test_json_stream.py"),
    plant("replay: a key given twice taken", "lstm_inspect/data/jsonfile.py",
          "            if key in seen:", "            if False:", "tests/test_json_stream.py"),
    plant("replay: the steps read again from a changed file", KERAS + "records.py",
          "        if _identity(file) != self.identity:", "        if False:", R),
    plant("replay: steps before the head uncounted", KERAS + "records.py",
          "return saved if tally is not None else", "return saved if True else", R),
    plant("replay: steps shown before they parse", KERAS + "records.py",
          "                    tally = _tallied(_checked(value, spec))", "                    tally = Tally()", R),
    plant("replay: a damaged step is a traceback", KERAS + "records.py",
          "    except (TypeError, ValueError, SpecError) as error:", "    except (TypeError, SpecError) as error:", R),
    plant("replay: more slots than the spec's batch taken", KERAS + "records.py",
          "        if len(step.samples) > spec.largest_batch:", "        if False:", R),
    plant("replay: JSON's NaN taken", KERAS + "records.py",
          "room=lambda characters: _check_room(path, characters), parse_constant=_no_constant)",
          "room=lambda characters: _check_room(path, characters))", R),
    plant("replay: warnings unchecked", KERAS + "records.py",
          "    if not isinstance(warnings, list) or not all(isinstance(warning, str) for warning in warnings):",
          "    if False:", R),
    plant("replay: stateful_layers unchecked", KERAS + "records.py",
          "    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:", "    if False:", R),

    # ---- --data (data/datafile.py, cli/setup.py) and the layout (data/layout.py) ---------------------------
    plant("--data misses stride 1", DATA + "datafile.py",
          "for stride in found if 0 < stride < timesteps)", "for stride in found if 1 < stride < timesteps)", D),
    plant("--data: one batch of data crashes", DATA + "datafile.py",
          "    if rows <= gap or timesteps < 2:", "    if rows < gap or timesteps < 2:", D),
    plant("--data: chunk boundaries unread", DATA + "datafile.py",
          "min(rows, start + chunk_rows + gap)", "min(rows, start + chunk_rows)", D),
    plant("--data: the first chunk only", DATA + "datafile.py",
          "               for start in range(0, rows - gap, chunk_rows)):", "               for start in range(0, 1)):",
          D, "tests/test_layout.py"),
    plant("--data: a slot stride for batch 1", DATA + "datafile.py",
          "_shift(x, batch_size, chunk_rows) if batch_size > 1 else None,",
          "_shift(x, batch_size, chunk_rows) if batch_size > 0 else None,", D),
    plant("--data: a map read from the file's start", DATA + "datafile.py",
          "    file.seek(x.offset + start * row_bytes)", "    file.seek(start * row_bytes)",
          "tests/test_layout.py", D),
    plant("--data: another shape taken", CLI + "setup.py",
          "    if tuple(x.shape) != expected:", "    if False:", "tests/test_advice.py"),
    plant("--data-key without --data taken", CLI + "setup.py", "        if key is not None:", "        if False:",
          C + "::test_a_data_key_needs_data"),
    plant("layout: windows reversed", DATA + "layout.py",
          "    steps = first[:, None] + np.arange(timesteps)\n",
          "    steps = first[:, None] + np.arange(timesteps)[::-1]\n",
          "tests/test_layout.py"),

    # ---- the diagram (views/diagram.py) ----------------------------------------------------------------
    plant("diagram: no arrow into a carried cell", VIEWS + "diagram.py",
          "    if cell.source_slot < 0 or column.source is None or cell.kind == \"raises\":",
          "    if True:", DG),
    plant("diagram: every carry drawn as a continuation", VIEWS + "diagram.py",
          "    kind = Start.CONTINUED.value if cell.kind == Start.CONTINUED.value else Start.UNRELATED.value",
          "    kind = Start.CONTINUED.value", DG),
    plant("diagram: the fold not counted", VIEWS + "diagram.py", "        folded = self.total - len(columns)",
          "        folded = 0", DG),
    plant("diagram: the title on one line", VIEWS + "diagram.py",
          "        if line and len(line) + 1 + len(word) > per_line:", "        if False:", DG),

    # ---- per-slot resets (reset_state(slots=...)) ------------------------------------------------------
    plant("slot resets: the schedule zeroes no slot", CORE + "schedule.py",
          "    source_slot[[slot for slot in zeroed if slot < len(source_slot)]] = -1\n", "", SR),
    plant("slot resets: a second reset forgets the first", CORE + "schedule.py",
          "(held, zeroed | set(op.slots))", "(held, frozenset(op.slots))", SR),
    plant("slot resets: the mirror zeroes every slot", MIRROR + "module.py", "            kept[:, chosen] = 0.0",
          "            kept[:] = 0.0", SR),
    plant("slot resets: the last slot taken as out of range", CORE + "workflow.py",
          "        elif item.slots and item.slots[-1] >= batch_size:",
          "        elif item.slots and item.slots[-1] >= batch_size - 1:", SR),
    plant("slot resets: a repeat's twin forgotten", CORE + "workflow.py",
          "            if item.times > 1 and after != (batch_size, stateful):", "            if False:", SR),
    plant("slot resets: the carry of the rest unsaid", EXPLAIN + "verdict.py",
          'outcome = ("carries part:" if step.zero_slots else "carries:")', 'outcome = "carries:"', SR),

    # ---- the PyTorch probe (torch/) -----------------------------------------------------------------------
    plant("torch probe: an attached state counted as detached", TORCH + "probe.py",
          "if state.grad_fn is not None]", "if state.grad_fn is None]", TP),
    plant("torch probe: a repeated row begins no new epoch", TORCH + "passes.py",
          "        if self.epoch == 0 and int(hashes[0]) in self.seen:", "        if False:", TP),
    plant("torch probe: a reordered pass taken as the first", TORCH + "passes.py",
          "not np.array_equal(hashes, expected)", "np.array_equal(hashes, expected)", TP),
    plant("torch probe: the state's batch read as the input's", TORCH + "probe.py",
          "        if initial is not None and len(initial) != seen.slots:", "        if False:", TP),
    plant("torch probe: batch_first ignored", TORCH + "probe.py",
          "    rows = x.detach() if module.batch_first else x.detach().transpose(0, 1)", "    rows = x.detach()", TP),
    plant("torch compare: any start agrees", TORCH + "compare.py", "        if found != expected:", "        if False:",
          TP),
    plant("torch compare: a shorter loop matches", TORCH + "compare.py", "        if ours is None or theirs is None:",
          "        if theirs is None:", TP),

    # ---- the port notes (explain/porting.py) ---------------------------------------------------------------
    plant("porting: a Bidirectional returns one direction's states", EXPLAIN + "porting.py",
          "    if spec.bidirectional:\n        return tuple(f\"fwd_", "    if False:\n        return tuple(f\"fwd_",
          "tests/test_advice.py"),
    plant("porting: every cell indexes c", EXPLAIN + "porting.py",
          "    if len(spec.cell.state_names) == 2:\n        return \"i = 0",
          "    if True:\n        return \"i = 0", "tests/test_advice.py"),
    plant("porting: the backward state read at the last step", EXPLAIN + "porting.py",
          "h_n[-1] = out[:, 0, units:]", "h_n[-1] = out[:, -1, units:]", "tests/test_port.py"),
    plant("porting: the last batch's size is the batch size", EXPLAIN + "porting.py",
          "    last = spec.samples % spec.batch_size\n", "    last = spec.batch_size\n", "tests/test_advice.py"),
    plant("porting: GRU's gates in LSTM's order", EXPLAIN + "porting.py",
          "    if cell == Cell.GRU:\n        return (\"kernels", "    if False:\n        return (\"kernels",
          "tests/test_advice.py"),

    # ---- the advice (explain/advice.py) --------------------------------------------------------------------
    plant("advice: tf-keras's API for Keras 3", EXPLAIN + "advice.py",
          "    elif spec.keras == KerasVersion.TWO:", "    elif True:", S, "tests/test_advice.py"),
    plant("advice: any stride follows the carry", EXPLAIN + "advice.py",
          "        if spec.stateful and b * s == t:", "        if spec.stateful:", D),
    plant("advice: b x s written s x b", EXPLAIN + "advice.py",
          "({b:,} x {s:,} = {t:,} steps)", "({s:,} x {b:,} = {t:,} steps)", D),
    plant("advice: skips and re-reads swapped", EXPLAIN + "advice.py",
          "{'re-reads' if rereads else 'skips'}", "{'skips' if rereads else 're-reads'}", D),
    plant("advice: a stateless layer carries rows", EXPLAIN + "advice.py",
          'carries = (f"a stateful layer carries row j into row j+{b:,}" if spec.stateful',
          'carries = (f"a stateful layer carries row j into row j+{b:,}" if True', D),
    plant("advice: a stateless layer re-reads", EXPLAIN + "advice.py", "        elif spec.stateful:\n",
          "        else:\n", D),
    plant("advice: the windows per slot", EXPLAIN + "advice.py",
          "    per_slot = spec.samples // b", "    per_slot = spec.samples // t", S),
    plant("advice: the batch shape's order", EXPLAIN + "advice.py",
          'f"fix the batch size with keras.Input(batch_shape=({b}, {t}, {f})) "',
          'f"fix the batch size with keras.Input(batch_shape=({b}, {f}, {t})) "', S),
    plant("advice: a fit's own shuffle ignored", EXPLAIN + "advice.py",
          "op.kind == Kind.FIT and op.fit_shuffle(spec.shuffle)]", "op.kind == Kind.FIT and op.fit_shuffle(True)]", S),
    plant("advice: a predict reset ends no series", EXPLAIN + "advice.py",
          "    if spec.reset.kind == ResetKind.NEVER and not spec.reset.predict:",
          "    if spec.reset.kind == ResetKind.NEVER:", S),
    plant("advice: JAX's hand carry unsaid", EXPLAIN + "advice.py",
          "    if spec.stateful and not facts_for(spec).carries and spec.backend == Backend.JAX:", "    if False:",
          "tests/test_advice.py"),

    # ---- the verdict (explain/verdict.py) ------------------------------------------------------------------
    plant("verdict: the first call counted among the more", EXPLAIN + "verdict.py",
          "plural(count - 1, 'more ' + kind + ' call')", "plural(count, 'more ' + kind + ' call')", S),
    plant("verdict: calls joined by commas", EXPLAIN + "verdict.py",
          "call_by_call = f\" Call by call: {'; '.join(said)}.\"",
          "call_by_call = f\" Call by call: {', '.join(said)}.\"",
          S),
    plant("verdict: every step a call", EXPLAIN + "verdict.py",
          "        if segment == self._segment:\n            return\n", "", S),
    plant("verdict: epochs tell calls apart", EXPLAIN + "verdict.py",
          ' else "carries:") + _passes(step.source.segment)', ' else "carries:") + step.source.segment', S),
    plant("verdict: the twin's training forgotten", EXPLAIN + "verdict.py",
          '_SOURCE = {"train": "training", "twin train": "the twin\'s training", ',
          '_SOURCE = {"train": "training", ', S),
    plant("verdict: a twin's epochs read as calls", EXPLAIN + "verdict.py",
          'left = "the previous epoch left" if kind.endswith("train")',
          'left = "the previous epoch left" if kind == "train"', S),
    plant("verdict: a twin's zeros unexplained", EXPLAIN + "verdict.py",
          '    if kind.startswith("twin"):', '    if kind == "twin":', S),
    plant("verdict: batch 1 read as parallel streams", EXPLAIN + "verdict.py",
          "    if spec.batch_size == 1:", "    if spec.batch_size == 0:", S),
    plant("verdict: a loaded model resets nothing", EXPLAIN + "verdict.py",
          "        if kinds & {Kind.TWIN, Kind.SAVE_AND_LOAD}:", "        if kinds & {Kind.TWIN}:", S),
    plant("verdict: a workflow's error names --batch", EXPLAIN + "verdict.py",
          'f"batch to hold exactly the batch size it was built for." if spec.workflow is not None else',
          'f"batch to hold exactly the batch size it was built for." if spec.workflow is None else', S),

    # ---- the command line: conflicts, replay, output (cli/) --------------------------------------------------
    plant("a dry run takes --max-steps and --device", CLI + "conflicts.py",
          '"dry_run": ("evidence", "evidence_batch", "against", "device", "max_steps"),',
          '"dry_run": ("evidence", "evidence_batch", "against"),', C),
    plant("--calls takes --epochs", CLI + "conflicts.py",
          '"workflow": ("epochs", "val_samples", "predict_samples"),',
          '"workflow": ("val_samples", "predict_samples"),',
          C),
    plant("--emit takes --data", CLI + "conflicts.py", '"emit": ("data", "data_key", "advice",',
          '"emit": ("data_key", "advice",', C),
    plant("--quiet takes --ascii", CLI + "conflicts.py",
          '"svg", "html", "diagram", "ascii_only", "no_progress"),',
          '"svg", "html", "diagram", "no_progress"),', C),
    plant("--against takes --max-steps", CLI + "conflicts.py", '"against": ("max_steps",),', '"against": (),', C),
    plant("markdown refuses --max-rows", CLI + "conflicts.py",
          '"max_rows": ("table", "markdown")', '"max_rows": ("table",)', C),
    plant("csv takes --no-slots", CLI + "conflicts.py", '"no_slots": ("json",)', '"no_slots": ("json", "csv")', C),
    plant("--max-rows taken with the timeline", CLI + "conflicts.py",
          '    if "max_rows" in given and ctx.params["view"] == ViewName.TIMELINE:', "    if False:",
          C + "::test_max_rows_is_refused_with_the_timeline"),
    plant("--evidence-batch taken with --no-evidence", CLI + "conflicts.py",
          '    if "evidence_batch" in given and not ctx.params["evidence"]:', "    if False:",
          C + "::test_evidence_batch_is_refused_without_the_evidence"),
    plant("--replay takes --data", CLI + "conflicts.py",
          'REPLAY_CONFLICTS = ("data", "data_key", ', 'REPLAY_CONFLICTS = ("data_key", ', C),
    plant("--replay takes --emit", CLI + "conflicts.py", '"against", "emit")', '"against")', C),
    plant("--replay takes every setup option", CLI + "main.py",
          "        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:", "        if False:",
          C),
    plant("an option twice keeps the last", CLI + "command.py",
          "            if counts[param.name] > 1:", "            if counts[param.name] > 9:",
          "tests/test_robustness.py::test_bad_input_is_one_clear_line_and_exit_2"),
    plant("rich's exit 1 on a closed pipe", "lstm_inspect/views/console.py",
          "        raise BrokenPipeError\n", "        raise SystemExit(1)\n",
          "tests/test_output_failures.py::test_output_that_cannot_be_written_ends_with_one_line_and_a_code"),
    plant("a closed stdout passes for written", CLI + "output.py",
          '    if closed:\n        output_failed("standard output is closed")', "    if closed:\n        pass",
          "tests/test_output_failures.py::test_an_export_is_written_when_stdout_is_closed",
          "tests/test_output_failures.py::test_quiet_with_stdout_closed_still_answers_by_its_code"),

    # ---- reliability, round three: the checks at each door ------------------------------------------------
    plant("a .npy of negative size read", DATA + "datafile.py", "    if any(size < 0 for size in shape):",
          "    if False:", "tests/test_hostile_inputs.py::test_a_npy_header_with_a_negative_dimension_is_refused"),
    plant("validations counted from the first epoch", CORE + "spec.py",
          "validated = item.epochs // freq - item.initial_epoch // freq if validation else 0",
          "validated = (item.epochs - item.initial_epoch) // freq if validation else 0", W),
    plant("a --calls count of 4,300 digits printed", CORE + "workflow.py",
          "    if abs(value) >= 10**MAX_DIGITS:  # compared", "    if False:  # compared",
          WF + "::test_hostile_workflows_are_refused_as_text"),
    plant("Spec takes 19 digits", CORE + "spec.py", "            if abs(getattr(self, name)) >= 10**MAX_DIGITS:",
          "            if abs(getattr(self, name)) > 10**MAX_DIGITS:", "tests/test_hostile_inputs.py", R),
    plant("Spec takes a float for an int", CORE + "spec.py",
          "            if field.name in _INTS and (isinstance(value, bool) or not isinstance(value, numbers.Integral)"
          "):",
          "            if field.name in _INTS and isinstance(value, bool):", "tests/test_hostile_inputs.py", LIB),
    plant("Spec takes a string for a flag", CORE + "spec.py",
          "            if field.name in _FLAGS and not isinstance(value, bool):", "            if False:",
          "tests/test_hostile_inputs.py", LIB),
    plant("inspect() takes evidence_batch=-1", "lstm_inspect/api.py",
          "    if not _whole(evidence_batch, 0):", "    if not _whole(evidence_batch, -1):",
          "tests/test_hostile_inputs.py", LIB),
    plant("inspect() takes max_steps=0", "lstm_inspect/api.py",
          "    if max_steps is not None and not _whole(max_steps, 1):",
          "    if max_steps is not None and not _whole(max_steps, 0):", "tests/test_hostile_inputs.py", LIB),
    plant("set_states takes float64", MIRROR + "module.py",
          "            if state.dtype != current.dtype or state.device != current.device:",
          "            if state.device != current.device:", "tests/test_hostile_inputs.py", LIB),
    plant("stateful_layout takes short targets", DATA + "layout.py",
          "    if goal is not None and goal.shape[:2] != data.shape[:2]:", "    if False:", "tests/test_layout.py"),
    plant("a replay read whatever the room", KERAS + "records.py",
          "        if needed > room.bytes:", "        if False:", R),
    plant("the estimate forgets a call's samples", DATA + "memory.py",
          """    parts["a call's samples"] = BYTES_PER_SLOT * slots""", """    parts["a call's samples"] = 0""",
          "tests/test_memory.py", "tests/test_memory_limits.py"),
    plant("the window search takes a whole window's shift", DATA + "datafile.py",
          "    return sorted(stride for stride in found if 0 < stride < timesteps)",
          "    return sorted(stride for stride in found if 0 <= stride < timesteps)", D,
          "tests/test_hostile_inputs.py"),
    plant("series order counted past a run of other rows", DATA + "datafile.py",
          "lengths.update(np.unique(np.diff(starts, prepend=run_start)).tolist())",
          "lengths.update(np.unique(np.diff(starts)).tolist())", D),
    plant("a one-row state meets TensorFlow's shape check", CORE + "facts.py",
          "    if facts.one_row_state_loop_error and expected == 1:",
          "    if facts.one_row_state_loop_error and expected == 0:", BT),
    plant("schedule: a one-row state runs in a trace left open", CORE + "schedule.py",
          "    if stateful and model_batch == 1 and fixed is False and facts.one_row_state_loop_error:",
          "    if False:", BT),
    plant("mirror: a one-row state runs in a trace left open", MIRROR + "run.py",
          "        if layer.stateful and layer.batch_size == 1 and fixed is False and "
          "self.facts.one_row_state_loop_error:",
          "        if False:", BT),
    plant("fit's default batch is the model's", CORE + "workflow.py",
          """                        "validation_freq", "initial_epoch", "steps_per_epoch", "data", "repeat", """
          """"drop_remainder"),\n                       batch_size=KERAS_BATCH_SIZE),""",
          """                        "validation_freq", "initial_epoch", "steps_per_epoch", "data", "repeat", """
          """"drop_remainder")),""", WF),
    plant("a workflow of no layer call divides by zero", MIRROR + "run.py",
          "    per_call = max(1, spec.largest_batch) * spec.timesteps",
          "    per_call = spec.largest_batch * spec.timesteps", WF),
    plant("a stateful layer built on an open batch size", CORE + "spec.py",
          "        if self.stateful and not self.fixed_batch:", "        if False:", "tests/test_spec.py"),
    plant("no use_cudnn warning on torch", EXPLAIN + "verdict.py",
          "    found += _cudnn_warning(spec)\n", "", WF),

    # ---- what a command may hold (data/memory.py) ---------------------------------------------------------
    plant("the estimate forgets the weights", DATA + "memory.py",
          'parts["the weights"] = BYTES_PER_WEIGHT * _parameters(spec)', 'parts["the weights"] = 0',
          "tests/test_memory_limits.py"),
    plant("the evidence unbounded", DATA + "memory.py", "EVIDENCE_SLOTS = 64 ", "EVIDENCE_SLOTS = 10**6 ",
          "tests/test_memory_limits.py"),
    plant("a dry run's estimate holds a batch", DATA + "memory.py",
          "    if dry_run:\n        return parts\n", "", "tests/test_memory_limits.py"),

    # ---- evaluate and predict given a stream (core/workflow.py Op.run_batches, core/order.py) -------------
    plant("streams: an endless evaluate or predict stops after one pass", CORE + "order.py",
          "        passes = itertools.count() if op.endless else range(1)", "        passes = range(1)", WF),
    plant("streams: drop_remainder keeps the partial batch", CORE + "order.py",
          "        count = op.samples - op.samples % size if op.drop_remainder else op.samples",
          "        count = op.samples", WF),
    plant("streams: a stream that ends runs all steps asked", CORE + "workflow.py",
          "        return min(per_pass, self.steps) if self.steps else per_pass",
          "        return self.steps or per_pass", WF),
    plant("streams: an endless predict without steps accepted", CORE + "workflow.py",
          "    if op.endless and not (op.steps_per_epoch or op.steps):",
          "    if op.endless and op.kind == Kind.FIT and not op.steps_per_epoch:", WF),
    plant("streams: a hand-carried predict given a stream", CORE + "workflow.py",
          "    if op.gives_states and op.data != Source.ARRAYS:", "    if False:", WF),
    plant("streams: evaluate's only batch dropped unrefused", CORE + "spec.py",
          "        samples = self.samples if op.kind == Kind.FIT else op.samples", "        samples = self.samples",
          WF),
    plant("streams: the verdict silent where a stream goes round", EXPLAIN + "verdict.py",
          "        if op.steps <= held:", "        if op.steps <= held or op.endless:", WF),
    # ---- MirroredStrategy (core/replicas.py; the oracle's plants need real Keras, tests/test_replicas.py) ----
    plant("replicas: the last replicas take the extra sample", CORE + "replicas.py",
          "end = start + size + (replica < more)", "end = start + size + (replica >= replicas - more)",
          "tests/test_replicas.py"),
    plant("replicas: a lone sample per replica taken for Keras's ValueError", CORE + "replicas.py",
          "size // replicas > 1 and", "size // replicas > 0 and", "tests/test_replicas.py"),
    plant("replicas: a partial global batch followed", CORE + "replicas.py",
          "    if samples % size:", "    if False:", "tests/test_replicas.py"),
    plant("replicas: the advice builds for the global batch", EXPLAIN + "advice.py",
          "    if spec.replicas > 1:", "    if spec.replicas > 9:", "tests/test_replicas.py"),
    # ---- padding and masking (core/lengths.py, mirror/module.py; the oracle's Masking needs real Keras) ----
    plant("padding: pre and post swapped", MIRROR + "inputs.py",
          '    if spec.pad == "post":\n        return steps', '    if spec.pad != "post":\n        return steps',
          PADDING),
    plant("padding: the padding not zeroed", MIRROR + "inputs.py",
          "        values.mul_(valid[..., None])", "        pass", PADDING),
    plant("padding: the cycle starts one sample late", CORE + "lengths.py",
          "[index % len(self.cycle)]", "[(index + 1) % len(self.cycle)]", PADDING),
    plant("padding: a length of T + 1 accepted", CORE + "lengths.py",
          "    if spec.lengths.longest > spec.timesteps:", "    if spec.lengths.longest > spec.timesteps + 1:",
          PADDING),
    plant("padding: the mask ignored", MIRROR + "module.py",
          "    if mask is not None and not bool(mask.all()):", "    if False:", PADDING),
    plant("padding: Bidirectional's masked outputs held", MIRROR + "module.py",
          "    blank = ~mask if module.bidirectional else last_kept < 0", "    blank = last_kept < 0", PADDING),
    plant("padding: a masked step's output from the step after", MIRROR + "module.py",
          "    last_kept = mask.cumsum(dim=1) - 1", "    last_kept = mask.cumsum(dim=1)", PADDING),
    plant("padding: the verdict's mask branch inverted", EXPLAIN + "verdict.py",
          "    if not spec.mask:\n        moved", "    if spec.mask:\n        moved", PADDING),
    plant("padding: pre-padded outputs said to repeat", EXPLAIN + "claims.py",
          "        elif padding_runs_first(spec):", "        elif False:", PADDING),
    plant("padding: the evidence's masked and unmasked swapped", CHECK + "evidence.py",
          "(run, gap(other)) if spec.mask else (gap(other), run)",
          "(gap(other), run) if spec.mask else (run, gap(other))", PADDING),
    plant("padding: the port advice reads out[:, -1] pre-padded", EXPLAIN + "advice.py",
          '    if padding_only(spec, "post", wholly_masked=False):\n        last =',
          '    if True:\n        last =', PADDING),
    plant("padding: a GRU port told to carry c_n", EXPLAIN + "advice.py",
          '    states = " and c_n" if len(spec.cell.state_names) == 2 else ""', '    states = " and c_n"', PADDING),
    plant("padding: a validation_split batch's lengths drawn as validation data's", CHECK + "inspection.py",
          "valid_lengths(spec, call.stream, call.slot_samples)",
          "valid_lengths(spec, call.phase, call.slot_samples)", PADDING),
    plant("padding: four slots' lengths shown as a range", "lstm_inspect/views/cells.py",
          "if len(lengths) <= FEW_SLOTS else", "if len(lengths) < FEW_SLOTS else", PADDING),
    # ---- --mask-value (data/masks.py, mirror/module.py; against real Keras in test_backends) ----
    plant("data mask: a step masked where any feature equals V", DATA + "masks.py",
          "!= np.float32(value)).any(axis=-1)", "!= np.float32(value)).all(axis=-1)", MASKED),
    plant("data mask: middle masks counted as both ends", DATA + "masks.py",
          "middle = some & (last - first + 1 > valid)", "middle = some & (last - first + 1 > valid + 9)", MASKED),
    plant("data mask: rows read back sorted, not in the batch's order", DATA + "datafile.py",
          "    return np.concatenate(runs)[back]", "    return np.concatenate(runs)", MASKED),
    plant("data mask: the masked steps left at zero, not V", MIRROR + "inputs.py",
          "values.add_((~valid[..., None]) * spec.data_mask.value)", "values.add_(0.0)", MASKED),
    plant("data mask: a row masked throughout runs one step", MIRROR + "module.py",
          "        final = _held(final, hx, empty)", "        pass", MASKED),
    plant("data mask: a carried zero state counted as a reset", CHECK + "observe.py",
          "        verified = identical", "        verified = carried_slots == len(zero)", MASKED),
    plant("data mask: the claims judged as post-padding", CORE + "backwards.py",
          "    return layout.ends == layout.middle == other == 0 and", "    return place == \"post\" and", MASKED),
    plant("convlstm2d padding: a masked frame moves the state", MIRROR + "conv.py",
          "            h, c = torch.where(kept, h_next, h), torch.where(kept, c_next, c)",
          "            h, c = h_next, c_next", PADDING),
    plant("convlstm2d padding: a masked frame outputs zeros", MIRROR + "conv.py",
          "outputs[-1] if outputs else torch.zeros_like(h_next)", "torch.zeros_like(h_next)", PADDING),
    plant("convlstm2d padding: masked 'valid' frames accepted", CORE + "lengths.py",
          '    if spec.padding == "valid":\n        raise SpecError("lengths"',
          '    if spec.padding == "never":\n        raise SpecError("lengths"', PADDING),
    # ---- go_backwards (mirror/module.py, core/backwards.py; against real Keras in test_backends) ----
    plant("go_backwards: the steps run forward", MIRROR + "module.py",
          "    if go_backwards:\n        x, mask =", "    if False:\n        x, mask =", BACKWARDS),
    plant("go_backwards: torch's stack run on the flipped input", MIRROR + "module.py",
          "    if go_backwards and module.num_layers > 1:", "    if False:", BACKWARDS),
    plant("go_backwards: the mask flipped for the layers above the first", MIRROR + "module.py",
          "        x, final = forward(layer, x, start, mask, go_backwards=True)",
          "        x, final = forward(layer, x, start, None if mask is None or not depth else mask.flip(1), "
          "go_backwards=True)", BACKWARDS),
    plant("go_backwards: a twin built forward", MIRROR + "run.py",
          "backend=layer.backend,\n                         go_backwards=layer.go_backwards)",
          "backend=layer.backend)", BACKWARDS),
    plant("go_backwards: the chain held to one pass in time order", CHECK + "evidence.py",
          "    if spec.go_backwards and not time_order:", "    if False:", BACKWARDS),
    plant("go_backwards: post-padding said to run after the valid steps", CORE + "backwards.py",
          'padding_only(spec, "post" if spec.go_backwards else "pre", wholly_masked=True)',
          'padding_only(spec, "pre", wholly_masked=True)', BACKWARDS),
    plant("go_backwards: a stack of two not stacked", CORE + "backwards.py",
          "spec.go_backwards and spec.layers > 1", "spec.go_backwards and spec.layers > 2", BACKWARDS),
    # ---- initial_state given to a stateful layer (core/schedule.py, mirror/module.py, mirror/run.py) ----
    plant("given states: the carry wins in Keras 3 too", CORE + "schedule.py",
          "carry_wins = not spec.takes_states or facts.carry_beats_given_states", "carry_wins = True", GIVEN),
    plant("given states: tf-keras's own states never kept", MIRROR + "module.py",
          "        if initial_state is not None and not self._keeps_own_states():",
          "        if initial_state is not None:", GIVEN),
    plant("given states: no zeros given where a call names none", MIRROR + "run.py",
          "        elif spec.takes_states:  # the model", "        elif False:  # the model", GIVEN),
    plant("given states: the table says reset", EXPLAIN + "verdict.py",
          'zeros = "zeros given" if step.given else "reset"', 'zeros = "reset"', GIVEN),
    plant("given states: tf-keras said to use them always", CORE + "facts.py",
          "        carry_beats_given_states=True,", "", GIVEN),
    # ---- ConvLSTM2D (mirror/conv.py, core/frames.py; its numbers against real Keras need Keras) ----
    plant("convlstm2d: the gates in torch's LSTM order read as f, i", MIRROR + "conv.py",
          "            i, f, candidate, o = gates.chunk(_GATES, dim=1)",
          "            f, i, candidate, o = gates.chunk(_GATES, dim=1)", CONVLSTM),
    plant("convlstm2d: an even kernel's extra pixel before", MIRROR + "conv.py",
          "    before = (kernel_size - 1) // 2", "    before = kernel_size // 2", CONVLSTM),
    plant("convlstm2d: h convolved as the input is padded", MIRROR + "conv.py",
          "functional.conv2d(_padded_same(h, self.kernel_size), recurrent)",
          "functional.conv2d(_padded_same(h, self.kernel_size) if self.padding == 'same' else h, recurrent)",
          CONVLSTM),
    plant("convlstm2d: tf-keras's hard_sigmoid as Keras 3's", MIRROR + "conv.py",
          "    return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)", "    return torch.clamp(x / 6 + 0.5, 0.0, 1.0)",
          CONVLSTM),
    plant("convlstm2d: a new module's forget gate biased as the others", MIRROR + "conv.py",
          "                bias[self.hidden_size:2 * self.hidden_size] = 1.0",
          "                bias[:self.hidden_size] = 1.0", CONVLSTM),
    plant("convlstm2d: a new module's recurrent kernel drawn as its input kernel", MIRROR + "conv.py",
          "                nn.init.orthogonal_(getattr(self, f\"weight_hh_l{layer}\"))",
          "                nn.init.xavier_uniform_(getattr(self, f\"weight_hh_l{layer}\"))", CONVLSTM),
    plant("convlstm2d: tf-keras's gates taken for sigmoid", CORE + "facts.py",
          '        convlstm_gate="hard_sigmoid"),', '        convlstm_gate="sigmoid"),', CONVLSTM),
    plant("convlstm2d: valid shrinks the state by half the kernel", CORE + "frames.py",
          'shrink = spec.kernel - 1 if spec.padding == "valid" else 0',
          'shrink = spec.kernel // 2 if spec.padding == "valid" else 0', CONVLSTM),
    plant("convlstm2d: a kernel the frame's size refused with valid", CORE + "frames.py",
          'if spec.padding == "valid" and spec.kernel > min(height, width):',
          'if spec.padding == "valid" and spec.kernel >= min(height, width):', CONVLSTM),
    plant("convlstm2d: channels_first's states held channels_last", CORE + "frames.py",
          '    return (spec.units, *image) if spec.data_format == "channels_first" else (*image, spec.units)',
          '    return (*image, spec.units)', CONVLSTM),
    plant("convlstm2d: channels_first's shape read as N,T,H,W,C", CLI + "setup.py",
          '    if frame and params.get("data_format") == "channels_first":  # N,T,C,H,W',
          '    if False:', CONVLSTM),
    plant("convlstm2d: the mirror's channels_first images permuted as channels_last", MIRROR + "conv.py",
          '        self.channels_last = data_format == "channels_last"', '        self.channels_last = True',
          CONVLSTM),
    plant("convlstm2d: tf-keras's build error in Keras 3's words", CORE + "frames.py",
          "    if spec.keras == KerasVersion.TWO:  # TensorFlow's own shape check, on the image made channels_last",
          "    if False:", CONVLSTM),
    plant("convlstm2d: --data checked against N,T,F", CLI + "setup.py",
          "_checked_data((spec.samples, spec.timesteps, *spec.step_shape), path, key)",
          "_checked_data((spec.samples, spec.timesteps, spec.features), path, key)", CONVLSTM),
    plant("convlstm2d: the data reorder flattens each image", EXPLAIN + "advice.py",
          "{'*x.shape[2:]' if spec.frame else 'x.shape[-1]'}", "{'x.shape[-1]'}", CONVLSTM),
    plant("convlstm2d: stateful_layout refuses images", DATA + "layout.py",
          "    if data.ndim not in (3, 5):", "    if data.ndim != 3:", CONVLSTM),
    plant("convlstm2d: stateful_layout takes 4 axes as series of 2-D steps", DATA + "layout.py",
          "    if data.ndim == 4:  # one series of images, or series of 2-D steps: it cannot tell which",
          "    if False:", "tests/test_layout.py"),
    plant("convlstm2d: --kernel taken with an LSTM", CLI + "conflicts.py",
          '        if name in given and ctx.params["cell"] != "convlstm2d" and "replay" not in given:',
          '        if name in given and ctx.params["cell"] == "gru" and "replay" not in given:', CONVLSTM, C),
]


def _file_of(target: str) -> str:
    return target.split("::")[0]


def check_plants(plants: list[Plant]) -> list[str]:
    """What is wrong with the plants themselves, one line each, naming the plant."""
    problems = []
    names = [item.name for item in plants]
    for item in plants:
        source = ROOT / item.path
        where = f"{item.name!r} ({item.path})"
        if names.count(item.name) > 1:
            problems.append(f"{where}: two plants have this name")
        if item.path.startswith(NO_PLANTS_UNDER):
            problems.append(f"{where}: no plant goes under {', '.join(NO_PLANTS_UNDER)}")
            continue
        if not source.is_file():
            problems.append(f"{where}: the file is gone: update this plant")
            continue
        text = source.read_text()
        found = text.count(item.original)
        if found != 1:
            problems.append(f"{where}: the original text is found {found} times, not exactly once: update this plant"
                            f"\n    original: {item.original!r}")
            continue
        try:
            compile(text.replace(item.original, item.planted, 1), str(source), "exec")
        except SyntaxError as error:
            problems.append(f"{where}: the planted text is not Python ({error.msg}, line {error.lineno})")
        if not item.tests:
            problems.append(f"{where}: it names no test")
        for target in item.tests:
            if _file_of(target) not in TESTS:
                problems.append(f"{where}: {target} is not in TESTS")
    return problems


def copy_tree(destination: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, destination / name)


def environment(tree: Path) -> dict[str, str]:
    """The copy's package first on the path (before the editable install's finder), for the tests and
    every process they start; no bytecode, so that a planted file never leaves a stale .pyc."""
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}


def check_copy(tree: Path) -> None:
    found = subprocess.run([sys.executable, "-c", "import lstm_inspect; print(lstm_inspect.__file__)"], cwd=tree,
                           env=environment(tree), capture_output=True, text=True, check=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the copy in {tree} imports lstm_inspect from {found}: plants there would test nothing")


def pytest(tree: Path, targets: list[str], stop_first: bool, deselected: list[str]) -> tuple[int, str]:
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-m", "not keras",
               *(["-x"] if stop_first else []), *[f"--deselect={node}" for node in deselected], *targets]
    try:
        done = subprocess.run(command, cwd=tree, env=environment(tree), capture_output=True, text=True,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return -1, ""
    return done.returncode, done.stdout


def failures(output: str) -> list[str]:
    """The `FAILED node - why` and `ERROR node - why` lines of pytest's short summary."""
    return [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]


def _node(line: str) -> str:
    """The node id of a short-summary line (ids may hold blanks: a parameter's text)."""
    return line.split(" ", 1)[1].split(" - ")[0]


def baseline(trees: list[Path], targets: list[str]) -> list[str]:
    """The tests that fail with nothing planted (flaky, or broken by work under way): left out of every
    plant's run, so that they are never taken for a plant's killer."""
    halves = [targets[k::len(trees)] for k in range(len(trees))]
    results: list[list[str]] = [[] for _ in trees]

    def run(k: int) -> None:
        if halves[k]:
            code, output = pytest(trees[k], halves[k], stop_first=False, deselected=[])
            if code not in (0, 1):
                raise SystemExit(f"the tests do not run with nothing planted (pytest exit {code}):\n{output[-3000:]}")
            results[k] = [_node(line) for line in failures(output)]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(trees))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted({node for found in results for node in found})


@dataclass(frozen=True)
class Outcome:
    plant: Plant
    verdict: str  # "caught", "SURVIVED", "BROKEN", "TIMEOUT"
    detail: str
    seconds: float


def try_plant(tree: Path, item: Plant, targets: list[str], deselected: list[str]) -> Outcome:
    source = tree / item.path
    text = source.read_text()
    start = time.monotonic()
    source.write_text(text.replace(item.original, item.planted, 1))
    try:
        code, output = pytest(tree, targets, stop_first=True, deselected=deselected)
    finally:
        source.write_text(text)
    seconds = time.monotonic() - start
    found = failures(output)
    if code == -1:
        return Outcome(item, "TIMEOUT", f"its tests ran past {TIMEOUT} s", seconds)
    if code == 0:
        return Outcome(item, "SURVIVED", "every test passed", seconds)
    if code != 1 or not found:
        return Outcome(item, "BROKEN", f"pytest exit {code}: {output.strip().splitlines()[-1:] or ''}", seconds)
    line = found[0]
    if any(f" - {kind}" in line or f": {kind}" in line for kind in BROKEN):
        return Outcome(item, "BROKEN", f"the plant broke the code itself, not its behaviour: {line}", seconds)
    return Outcome(item, "caught", _node(line), seconds)


def run_plants(trees: list[Path], plants: list[Plant], targets_of: dict[str, list[str]],
               deselected: list[str]) -> list[Outcome]:
    """Each plant tried in one of the trees, as many at a time as there are trees."""
    work: queue.Queue[Plant] = queue.Queue()
    for item in plants:
        work.put(item)
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def worker(tree: Path) -> None:
        while True:
            try:
                item = work.get_nowait()
            except queue.Empty:
                return
            outcome = try_plant(tree, item, targets_of[item.name], deselected)
            with lock:
                outcomes.append(outcome)
                shown = f"caught by {outcome.detail}" if outcome.verdict == "caught" else \
                    f"{outcome.verdict}: {outcome.detail}"
                print(f"{item.name:52s} {shown} ({outcome.seconds:.0f} s)", flush=True)

    threads = [threading.Thread(target=worker, args=(tree,)) for tree in trees]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes, key=lambda outcome: plants.index(outcome.plant))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="plants whose name contains this text")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--all-tests", action="store_true", help="run each plant against every file of TESTS")
    parser.add_argument("--baseline", action="store_true",
                        help="first run every plant's tests with nothing planted, and leave out those that fail "
                             "(by default only the tests that caught a plant are run again, unplanted, at the end)")
    options = parser.parse_args()
    began = time.monotonic()
    problems = check_plants(PLANTS)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 2
    chosen = [item for item in PLANTS if options.only in item.name]
    print(f"{len(chosen)} of {len(PLANTS)} plants, {options.workers} workers", flush=True)
    with tempfile.TemporaryDirectory(prefix="plant-bugs-") as scratch:
        trees = [Path(scratch) / f"tree{k}" for k in range(max(1, options.workers))]
        for tree in trees:
            tree.mkdir()
            copy_tree(tree)
        check_copy(trees[0])
        targets_of = {item.name: (TESTS if options.all_tests else list(item.tests)) for item in chosen}
        deselected: list[str] = []
        if options.baseline:
            every = sorted({_file_of(target) for targets in targets_of.values() for target in targets},
                           key=TESTS.index)
            deselected = baseline(trees, every)
            print(f"baseline ({time.monotonic() - began:.0f} s): "
                  + (f"{len(deselected)} tests fail with nothing planted, left out: {', '.join(deselected)}"
                     if deselected else "every test passes with nothing planted"), flush=True)
        outcomes = run_plants(trees, chosen, targets_of, deselected)
        # A test that caught a plant must pass with nothing planted: one run of them all says so. A
        # plant caught only by a test that fails anyway (flaky, or broken by work under way) is tried
        # again without it.
        for _ in range(3):
            killers = sorted({o.detail for o in outcomes if o.verdict == "caught"})
            failing = set(baseline(trees, killers)) if killers else set()
            if not failing:
                print(f"the {len(killers)} tests that caught a plant pass with nothing planted", flush=True)
                break
            print(f"{len(failing)} of the {len(killers)} tests that caught a plant fail with nothing planted, "
                  f"left out: {', '.join(sorted(failing))}", flush=True)
            deselected = sorted(set(deselected) | failing)
            again = [o.plant for o in outcomes if o.verdict == "caught" and o.detail in failing]
            outcomes = [o for o in outcomes if o.plant not in again] + run_plants(trees, again, targets_of, deselected)
    failed = [outcome for outcome in outcomes if outcome.verdict != "caught"]
    total = time.monotonic() - began
    print(f"\n{len(outcomes) - len(failed)} of {len(outcomes)} plants caught; "
          f"{sum(o.verdict == 'SURVIVED' for o in outcomes)} survived, "
          f"{sum(o.verdict in ('BROKEN', 'TIMEOUT') for o in outcomes)} broken or timed out; "
          f"{total:.0f} s in all ({total / 60:.1f} min)")
    for outcome in failed:
        print(f"  {outcome.verdict}: {outcome.plant.name} ({outcome.plant.path}): {outcome.detail}")
    if any(outcome.verdict in ("BROKEN", "TIMEOUT") for outcome in failed):
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
