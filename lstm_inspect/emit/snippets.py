"""Minimal runnable snippets that reproduce a setup's state handling (`--emit keras|torch`).

Both print one line per layer call, "<call label>: zeros=<slots> carried=<slots>", read
from their own state tensors (every layer and direction), so a reader (and the tests)
can hold them against the tool's schedule. Only the blocks this setup needs are emitted.
"""

from __future__ import annotations

import textwrap

from ..core.choices import Cell, KerasVersion, ResetKind, Shuffle
from ..core.spec import Spec
from ..core.workflow import Kind, Op, Repeat, Workflow

_HEADER = "# Reproduces the state handling of: lstm-inspect {args}\n"


def _constants(spec: Spec) -> str:
    return (f"N, T, F, B, UNITS, EPOCHS = {spec.samples}, {spec.timesteps}, {spec.features}, "
            f"{spec.batch_size}, {spec.units}, {spec.epochs}\n"
            f"VAL, PRED, LAYERS = {spec.val_samples}, {spec.predict_samples}, {spec.layers}\n")


def _shuffle(spec: Spec) -> str:
    # A stateful layer wants its batches in order: slot i of batch k+1 continues slot i of batch k.
    if spec.stateful:
        return "False"
    return repr(spec.shuffle.keras_value)


def _laid_out(spec: Spec, draw: str, indent: str = "") -> str:
    """Code making a stateful setup's x: B long series cut into windows, row j+B continuing row
    j (stateful_layout); `draw(shape)` makes random float32 numbers. The rows left over when B
    does not divide N come last (Keras raises for them)."""
    if spec.samples < spec.batch_size:
        return f"{indent}x = {draw.format(shape='(N, T, F)')}  # fewer rows than one batch: no layout to make\n"
    lines = ["# Row j+B continues row j: B long series cut into windows of T steps, laid out for the slots.",
             f"series = {draw.format(shape='(B, (N // B) * T, F)')}",
             "x = stateful_layout(series, timesteps=T, batch_size=B).x"]
    if spec.samples % spec.batch_size:
        lines.append(f"x = np.concatenate([x, {draw.format(shape='(N % B, T, F)')}])  # rows left over")
    return "".join(f"{indent}{line}\n" for line in lines)


_KERAS_IMPORTS = {
    KerasVersion.THREE: '''\
import os

os.environ["KERAS_BACKEND"] = "{backend}"  # the backend these states are described for
import keras
import numpy as np


def to_numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable))
''',
    KerasVersion.TWO: '''\
import numpy as np
import tf_keras as keras  # Keras 2


def to_numpy(variable):
    return variable.numpy()
''',
}

_RNN_LAYERS = '''

def rnn_layers(model):
    """Every RNN layer: each holds its own state per batch slot (Bidirectional holds two)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            yield from (layer.forward_layer, layer.backward_layer)
        elif isinstance(layer, keras.layers.RNN):
            yield layer
'''

_RESET_CALLBACK = '''

class ResetStates(keras.callbacks.Callback):
    """Keras never resets a stateful layer itself."""

    def {hook}:
{body}'''

_SHOW_STATEFUL = '''

class ShowStates(keras.callbacks.Callback):
    """Prints where each slot's initial state comes from, read from every layer's states."""

    epoch, final = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def states(self):
        return [to_numpy(state) for rnn in rnn_layers(self.model) for state in rnn.states]

    def show(self, label):
        now = self.states()
        zeros = np.all([~state.any(axis=1) for state in now], axis=0)
        carried = (np.zeros(len(zeros), bool) if self.final is None else
                   np.all([(a == b).all(axis=1) for a, b in zip(now, self.final)], axis=0) & ~zeros)
        print(f"{label}: zeros={zeros.sum()} carried={carried.sum()}")

    def keep_final(self, batch, logs=None):
        self.final = self.states()

    def on_train_batch_begin(self, batch, logs=None):
        self.show(f"train e{self.epoch} b{batch}")

    def on_test_batch_begin(self, batch, logs=None):
        self.show(f"validation e{self.epoch} b{batch}")

    def on_predict_batch_begin(self, batch, logs=None):
        self.show(f"predict b{batch}")

    on_train_batch_end = on_test_batch_end = on_predict_batch_end = keep_final
'''

_SHOW_STATELESS = '''

class ShowStates(keras.callbacks.Callback):
    """A stateless layer has no state variables: every call starts every slot from zeros."""

    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def show(self, label, batch, total):
        # Batch sizes as Keras cuts them: the remainder last (Keras 2's shuffle="batch" may move it).
        print(f"{label}: zeros={min(B, total - batch * B)} carried=0")

    def on_train_batch_begin(self, batch, logs=None):
        self.show(f"train e{self.epoch} b{batch}", batch, N)

    def on_test_batch_begin(self, batch, logs=None):
        self.show(f"validation e{self.epoch} b{batch}", batch, VAL)

    def on_predict_batch_begin(self, batch, logs=None):
        self.show(f"predict b{batch}", batch, PRED)
'''


def _reset_callback(spec: Spec) -> str:
    if spec.keras == KerasVersion.TWO:
        reset_all = "self.model.reset_states()  # Keras 2: the Model resets every stateful layer\n"
    else:
        reset_all = ("# Keras 3's Model has no reset_state(): reset each RNN layer.\n"
                     "for rnn in rnn_layers(self.model):\n    rnn.reset_state()\n")
    if spec.reset.kind == ResetKind.EPOCH:
        return _RESET_CALLBACK.format(hook="on_epoch_begin(self, epoch, logs=None)",
                                      body=textwrap.indent(reset_all, " " * 8))
    guarded = f"if batch % {spec.reset.every} == 0:\n" + textwrap.indent(reset_all, " " * 4)
    return _RESET_CALLBACK.format(hook="on_train_batch_begin(self, batch, logs=None)",
                                  body=textwrap.indent(guarded, " " * 8))


def _with_imports(imports: str, extra: list[str]) -> str:
    """The Keras imports with more import lines after numpy's."""
    return imports.replace("import numpy as np\n", "import numpy as np\n" + "".join(extra), 1)


def _keras_layer(spec: Spec, lines: list[str], indent: str) -> str:
    """The expression of one recurrent layer of the stack (at `depth`); a comment on why it
    turns cuDNN off goes into `lines`."""
    options = f"stateful={spec.stateful}, return_sequences=depth < LAYERS - 1"
    if spec.keras == KerasVersion.THREE and spec.cell != Cell.RNN:
        lines.append(f"{indent}# use_cudnn=False: Keras 3 fails stateful training with cuDNN on torch "
                     "(keras-team/keras#20875).\n")
        options += ", use_cudnn=False"
    layer = f"keras.layers.{spec.cell.keras_name}(UNITS, {options})"
    return f"keras.layers.Bidirectional({layer})" if spec.bidirectional else layer


def _layout_import(spec: Spec) -> list[str]:
    return ["from lstm_inspect.layout import stateful_layout\n"] if spec.stateful else []


def _keras_x(spec: Spec) -> list[str]:
    draw = 'rng.uniform(-1, 1, {shape}).astype("float32")'
    return [_laid_out(spec, draw)] if spec.stateful else [f"x = {draw.format(shape='(N, T, F)')}\n"]


def keras_snippet(spec: Spec, args: str) -> str:
    if spec.workflow is not None:
        return _keras_workflow(spec, args)
    width = "UNITS * 2" if spec.bidirectional else "UNITS"
    imports = _KERAS_IMPORTS[spec.keras].replace("{backend}", str(spec.backend))
    lines = [_HEADER.format(args=args), _with_imports(imports, _layout_import(spec)), "\n", _constants(spec),
             f"rng = np.random.default_rng({spec.seed})\n", *_keras_x(spec),
             f'y = np.zeros((N, {width}), "float32")\n']
    if spec.val_samples:
        lines.append(f'x_val, y_val = rng.uniform(-1, 1, (VAL, T, F)).astype("float32"), '
                     f'np.zeros((VAL, {width}), "float32")\n')
    if spec.stateful:
        lines.append("# A stateful layer needs a fixed batch size: the state holds one row per batch slot.\n"
                     "inputs = keras.Input(batch_shape=(B, T, F))\n")
    else:
        lines.append("inputs = keras.Input(shape=(T, F))\n")
    layer = _keras_layer(spec, lines, "")
    lines.append(f'''\
outputs = inputs
for depth in range(LAYERS):
    outputs = {layer}(outputs)
model = keras.Model(inputs, outputs)
model.compile(optimizer="sgd", loss="mse")
''')
    if spec.stateful or spec.keras == KerasVersion.THREE and spec.reset.kind != ResetKind.NEVER:
        lines.append(_RNN_LAYERS)
    if spec.reset.kind != ResetKind.NEVER:
        lines.append(_reset_callback(spec))
    lines.append(_SHOW_STATEFUL if spec.stateful else _SHOW_STATELESS)
    callbacks = "[ResetStates(), show]" if spec.reset.kind != ResetKind.NEVER else "[show]"
    validation = "validation_data=(x_val, y_val), " if spec.val_samples else ""
    advice = ("# shuffle=False for a stateful layer: slot i of batch k+1 continues slot i of batch k.\n"
              if spec.stateful else "")
    lines.append(f"\n\nshow = ShowStates()\n{advice}model.fit(x, y, batch_size=B, epochs=EPOCHS, "
                 f"shuffle={_shuffle(spec)}, {validation}callbacks={callbacks}, verbose=0)\n")
    if spec.predict_samples:
        lines.append('model.predict(rng.uniform(-1, 1, (PRED, T, F)).astype("float32"), batch_size=B, '
                     'callbacks=[show], verbose=0)\n')
    return "".join(lines)


def _torch_x(spec: Spec) -> str:
    if not spec.stateful:
        return "x = torch.rand(N, T, F) * 2 - 1\n"
    draw = "np.random.default_rng(0).uniform(-1, 1, {shape}).astype(\"float32\")"
    return _laid_out(spec, draw) + "x = torch.from_numpy(x)\n"


def _torch_state_handling(spec: Spec) -> str:
    """The model, its data, and one call of it with Keras's state rules, up to the epoch loop."""
    is_lstm = spec.cell == Cell.LSTM
    return f'''\
STATEFUL, SHUFFLE = {spec.stateful}, {bool(spec.shuffle) and not spec.stateful}
DIRECTIONS = {spec.directions}
torch.manual_seed({spec.seed})
rnn = nn.{spec.cell.torch_name}(F, UNITS, num_layers=LAYERS, bidirectional=DIRECTIONS == 2, batch_first=True)
optimizer = torch.optim.SGD(rnn.parameters(), lr=0.01)
{_torch_x(spec)}x_val, x_pred = (torch.rand(n, T, F) * 2 - 1 for n in (VAL, PRED))


def zeros(slots):
    """{'(h, c)' if is_lstm else 'h'} for every layer and direction: one row per batch slot."""
    shape = (LAYERS * DIRECTIONS, slots, UNITS)
    return {'(torch.zeros(shape), torch.zeros(shape))' if is_lstm else '(torch.zeros(shape),)'}


state = zeros(B)  # Keras's state variables, created as zeros
last = None


def call(label, inputs):
    """One call of the layers with Keras's state rules."""
    global state, last
    if STATEFUL and len(inputs) != B:
        raise ValueError(f"If an RNN is stateful, the batch size of the input sequences must be the "
                         f"same as the batch size of the initial state. - Expected batch size: {{B}} "
                         f"- Received batch size: {{len(inputs)}}")
    initial = state if STATEFUL else zeros(len(inputs))  # stateless: every call from zeros
    is_zero = torch.stack([~s.any(2).any(0) for s in initial]).all(0)
    carried = (torch.stack([(s == p).all(2).all(0) for s, p in zip(initial, last)]).all(0) & ~is_zero
               if STATEFUL and last is not None else torch.zeros(len(inputs), dtype=torch.bool))
    print(f"{{label}}: zeros={{int(is_zero.sum())}} carried={{int(carried.sum())}}")
    output, final = rnn(inputs, {'initial' if is_lstm else 'initial[0]'})
    if STATEFUL:
        # detach(): Keras carries the state as a constant, so no gradient crosses the batch boundary.
        state = last = {'tuple(s.detach() for s in final)' if is_lstm else '(final.detach(),)'}
    return output[:, -1]


for epoch in range(EPOCHS):
'''


def torch_snippet(spec: Spec, args: str) -> str:
    if spec.workflow is not None:
        return _torch_workflow(spec, args)
    numpy = "import numpy as np\n" if spec.stateful else ""
    lines = [_HEADER.format(args=args), f"{numpy}import torch\nfrom torch import nn\n\n", *_layout_import(spec),
             "\n" if spec.stateful else "", _constants(spec), _torch_state_handling(spec)]
    if spec.reset.kind == ResetKind.EPOCH:
        lines.append("    state = zeros(B)  # --reset epoch: on_epoch_begin\n")
    if spec.shuffle == Shuffle.BATCH and not spec.stateful:
        lines.append('''\
    # shuffle="batch": within each batch-sized chunk of the data
    order = torch.cat([torch.randperm(len(chunk)) + start
                       for start, chunk in zip(range(0, N, B), torch.arange(N).split(B))])
''')
    else:
        lines.append("    order = torch.randperm(N) if SHUFFLE else torch.arange(N)\n")
    lines.append("    for batch, start in enumerate(range(0, N, B)):\n")
    if spec.reset.kind == ResetKind.EVERY:
        lines.append(f"        if batch % {spec.reset.every} == 0:  # --reset every:{spec.reset.every}\n"
                     "            state = zeros(B)\n")
    lines.append('''\
        loss = call(f"train e{epoch} b{batch}", x[order[start:start + B]]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
''')
    if spec.val_samples:
        lines.append('''\
    with torch.no_grad():  # validation runs through the same state, as in Keras
        for batch, start in enumerate(range(0, VAL, B)):
            call(f"validation e{epoch} b{batch}", x_val[start:start + B])
''')
    if spec.predict_samples:
        lines.append('''
with torch.no_grad():  # predict starts from the state fit left
    for batch, start in enumerate(range(0, PRED, B)):
        call(f"predict b{batch}", x_pred[start:start + B])
''')
    return "".join(lines)


# Workflows (--calls): the calls written out as the user writes them, repeats as loops. Each
# call's inputs are drawn fresh: the counts printed depend on the state handling alone.

_KERAS_WORKFLOW_SHOW = '''

class ShowStates(keras.callbacks.Callback):
    """Prints how each slot's state starts, batch by batch, with lstm-inspect's call labels."""

    model_name, made, counts, number, epoch, fitting, final = "", {{}}, {{}}, 1, 0, False, None
    sizes = {{}}  # per kind of batch: (samples, batch size) of the call under way
    by_hand = False  # the states passed in by hand come from the previous predict

    def start(self, kind, **sizes):
        """A new call on the model: numbered per model and kind, as lstm-inspect numbers it."""
        self.counts[kind] = self.number = self.counts.get(kind, 0) + 1
        self.sizes = sizes

    def switch(self, kind):
        """Calls go to a new model (a twin, or the loaded one), which starts from zeros."""
        self.made[kind] = self.made.get(kind, 0) + 1
        self.model_name = kind + (f"#{{self.made[kind]}}" if self.made[kind] > 1 else "")
        self.counts, self.final = {{}}, None

    def name(self, word):
        numbered = word + (f"#{{self.number}}" if self.number > 1 else "")
        return f"{{self.model_name}} {{numbered}}" if self.model_name else numbered

    def on_train_begin(self, logs=None):
        self.fitting = True

    def on_train_end(self, logs=None):
        self.fitting = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
{body}
    def on_train_batch_begin(self, batch, logs=None):
        self.show(f"{{self.name('train')}} e{{self.epoch}} b{{batch}}", "train", batch)

    def on_test_batch_begin(self, batch, logs=None):
        label = f"{{self.name('validation')}} e{{self.epoch}}" if self.fitting else self.name("evaluate")
        self.show(f"{{label}} b{{batch}}", "test", batch)

    def on_predict_batch_begin(self, batch, logs=None):
        self.show(f"{{self.name('predict')}} b{{batch}}", "predict", batch)
'''

_KERAS_SHOW_STATEFUL_BODY = '''
    def states(self):
        return [to_numpy(state) for rnn in rnn_layers(self.model) for state in rnn.states]

    def show(self, label, kind=None, batch=0):
        now = self.states()
        zeros = np.all([~state.any(axis=1) for state in now], axis=0)
        carried = (np.zeros(len(zeros), bool) if self.final is None else
                   np.all([(a == b).all(axis=1) for a, b in zip(now, self.final)], axis=0) & ~zeros)
        print(f"{label}: zeros={zeros.sum()} carried={carried.sum()}")

    def keep_final(self, batch=0, logs=None):
        self.final = self.states()

    on_train_batch_end = on_test_batch_end = on_predict_batch_end = keep_final
'''

_KERAS_SHOW_STATELESS_BODY = '''
    def show(self, label, kind, batch):
        """A stateless layer holds no state variables: each slot starts from zeros, or from
        the states passed in by hand (initial_state=)."""
        samples, size = self.sizes[kind]
        slots = min(size, samples - batch * size)
        print(f"{label}: zeros={0 if self.by_hand else slots} carried={slots if self.by_hand else 0}")
'''


def _keras_workflow(spec: Spec, args: str) -> str:
    width = "UNITS * 2" if spec.bidirectional else "UNITS"
    by_hand = spec.hand_carried
    imports = _KERAS_IMPORTS[spec.keras].replace("{backend}", str(spec.backend))
    extra = ["import os\n"] * (spec.keras == KerasVersion.TWO) + ["import tempfile\n", *_layout_import(spec)]
    lines = [_HEADER.format(args=args), _with_imports(imports, extra), "\n",
             f"N, T, F, B, UNITS, LAYERS = {spec.samples}, {spec.timesteps}, {spec.features}, {spec.batch_size}, "
             f"{spec.units}, {spec.layers}\n",
             f'''\
rng = np.random.default_rng({spec.seed})
{"".join(_keras_x(spec))}y = np.zeros((N, {width}), "float32")
x_val, y_val = x[:0], y[:0]  # fit's validation_samples, drawn when a fit asks for them
folder = tempfile.mkdtemp()  # where save_and_load() saves the model


def data(n):
    """Fresh inputs (and zero targets) for a call: the counts printed depend on the state alone."""
    return rng.uniform(-1, 1, (n, T, F)).astype("float32"), np.zeros((n, {width}), "float32")


def build(batch_size):
''']
    layer = _keras_layer(spec, lines, "    ")
    if spec.stateful:
        lines.append("    # A stateful layer needs a fixed batch size: the state holds one row per batch slot.\n"
                     "    inputs = keras.Input(batch_shape=(batch_size, T, F))\n")
    else:
        lines.append("    inputs = keras.Input(shape=(T, F))\n")
    if by_hand:
        states = len(spec.cell.state_names)
        start = "starts" if states > 1 else "starts[0]"
        lines.append(f'''\
    # States carried by hand: each layer takes its initial states as inputs and returns its final ones.
    outputs, given, final = inputs, [], []
    for depth in range(LAYERS):
        starts = [keras.Input(shape=(UNITS,)) for _ in range({states})]
        layer = keras.layers.{spec.cell.keras_name}(UNITS, return_state=True, return_sequences=depth < LAYERS - 1)
        outputs, *ends = layer(outputs, initial_state={start})
        given, final = given + starts, final + ends
    model = keras.Model([inputs, *given], [outputs, *final])
''')
    else:
        lines.append(f'''\
    outputs = inputs
    for depth in range(LAYERS):
        outputs = {layer}(outputs)
    model = keras.Model(inputs, outputs)
''')
    lines.append('    model.compile(optimizer="sgd", loss="mse")\n    return model\n')
    if by_hand:
        lines.append(f'''

def zeros(n):
    """The states to start from when none were returned yet."""
    return [np.zeros((n, UNITS), "float32") for _ in range(LAYERS * {len(spec.cell.state_names)})]
''')
    lines.append(_RNN_LAYERS)
    if spec.reset:
        lines.append(_workflow_reset_callback(spec))
    body = _KERAS_SHOW_STATEFUL_BODY if spec.stateful else _KERAS_SHOW_STATELESS_BODY
    lines.append(_KERAS_WORKFLOW_SHOW.format(body=body))
    callbacks = "[ResetStates(), show]" if spec.reset else "[show]"
    lines.append(f"\n\nshow = ShowStates()\nmodel, BATCH = build(B), B\ngiven = None  # the states the last "
                 f"predict returned\ncallbacks = {callbacks}\n")
    lines += _keras_calls(spec, spec.plan, 0)
    return "".join(lines)


def _workflow_reset_callback(spec: Spec) -> str:
    if spec.keras == KerasVersion.TWO:
        reset_all = "self.model.reset_states()  # Keras 2: the Model resets every stateful layer"
    else:
        reset_all = ("for rnn in rnn_layers(self.model):  # Keras 3's Model has no reset_state()\n"
                     "            rnn.reset_state()")
    hooks = []
    if spec.reset.kind == ResetKind.EPOCH:
        hooks.append(f"    def on_epoch_begin(self, epoch, logs=None):\n        {reset_all}\n")
    if spec.reset.kind == ResetKind.EVERY:
        hooks.append("    def on_train_batch_begin(self, batch, logs=None):\n"
                     f"        if batch % {spec.reset.every} == 0:\n"
                     f"            {reset_all.replace(chr(10), chr(10) + '    ')}\n")
    if spec.reset.validation:
        hooks.append(f"    def on_test_begin(self, logs=None):  # fit's validation and evaluate\n        {reset_all}\n")
    if spec.reset.predict:
        hooks.append(f"    def on_predict_begin(self, logs=None):\n        {reset_all}\n")
    return ('\n\nclass ResetStates(keras.callbacks.Callback):\n    """Keras never resets a stateful layer itself: '
            'pass this to every fit, evaluate and predict."""\n\n' + "\n".join(hooks))


def _keras_calls(spec: Spec, workflow: Workflow, depth: int) -> list[str]:
    pad = "    " * depth
    lines: list[str] = []
    for item in workflow:
        if isinstance(item, Repeat):
            lines.append(f"{pad}for _ in range({item.times}):  # {item}\n")
            lines += _keras_calls(spec, item.body, depth + 1)
            continue
        lines.append(f"{pad}# {item}\n")
        lines += [pad + line + "\n" for line in _keras_call(spec, item)]
    return lines


def _keras_call(spec: Spec, op: Op) -> list[str]:
    size = str(op.batch_size) if op.batch_size else "BATCH"
    if op.kind == Kind.RESET_STATE:
        if spec.keras == KerasVersion.TWO:
            return ["model.reset_states()"]
        return ["for rnn in rnn_layers(model):", "    rnn.reset_state()"]
    if op.kind == Kind.TWIN:
        return [f"twin = build({op.batch_size})  # a new model: its states start from zeros",
                "twin.set_weights(model.get_weights())  # the weights, never the states",
                f"model, BATCH = twin, {op.batch_size}", 'show.switch("twin")']
    if op.kind == Kind.SAVE_AND_LOAD:
        extension = "h5" if spec.keras == KerasVersion.TWO else "keras"
        lines = [f'model.save(os.path.join(folder, "model.{extension}"))',
                 f'model = keras.models.load_model(os.path.join(folder, "model.{extension}"))  # states: zeros',
                 'show.switch("loaded")']
        if spec.keras == KerasVersion.THREE and spec.cell != Cell.RNN:
            lines += ["for rnn in rnn_layers(model):  # use_cudnn is not saved: set it again",
                      "    rnn.use_cudnn = False"]
        return lines
    if op.kind == Kind.FIT:
        train = spec.fit_split(op)
        validation = spec.fit_validation(op)
        lines = [f'show.start("fit", train=({train}, {size}), test=({validation}, {size}))']
        extra = ""
        if op.validation_split:
            extra = f"validation_split={op.validation_split}, "
        elif op.validation_samples:
            lines.append(f"x_val, y_val = data({op.validation_samples})")
            extra = "validation_data=(x_val, y_val), "
        if op.validation_freq != 1:
            extra += f"validation_freq={op.validation_freq}, "
        if op.initial_epoch:
            extra += f"initial_epoch={op.initial_epoch}, "
        shuffle = (spec.shuffle if op.shuffle is None else op.shuffle).keras_value
        lines.append(f"model.fit(x, y, batch_size={size}, epochs={op.epochs}, shuffle={shuffle!r}, {extra}"
                     "callbacks=callbacks, verbose=0)")
        return lines
    one = op.kind.one_batch
    sizes = f"{'test' if op.kind in (Kind.EVALUATE, Kind.TEST_ON_BATCH) else 'predict'}=({op.samples}, " \
        f"{op.samples if one else size})"
    if op.kind == Kind.TRAIN_ON_BATCH:
        sizes = f"train=({op.samples}, {op.samples})"
    lines = [f'show.start("{op.kind}", {sizes})']
    inputs = f"data({op.samples})[0]"
    if op.hand_carried:
        lines.append("show.by_hand = given is not None")
        inputs = f"[{inputs}, *(given if given is not None else zeros({op.samples}))]"
    elif spec.hand_carried:
        lines.append("show.by_hand = False")
        inputs = f"[{inputs}, *zeros({op.samples})]"
    if op.kind == Kind.EVALUATE:
        return [*lines, f"model.evaluate(*data({op.samples}), batch_size={size}, callbacks=callbacks, verbose=0)"]
    if op.kind == Kind.PREDICT:
        call = f"model.predict({inputs}, batch_size={size}, callbacks=callbacks, verbose=0)"
    else:
        word = {Kind.TRAIN_ON_BATCH: "train", Kind.TEST_ON_BATCH: "test", Kind.PREDICT_ON_BATCH: "predict"}[op.kind]
        arguments = f"*data({op.samples})" if op.kind != Kind.PREDICT_ON_BATCH else inputs
        lines += ["show.set_model(model)  # the *_on_batch calls run no callbacks: shown by hand",
                  f'show.show(show.name("{op.kind}") + " b0", "{word}", 0)']
        call = f"model.{op.kind}({arguments})"
        if spec.stateful:
            return [*lines, call, "show.keep_final()"]
    if spec.hand_carried and op.kind in (Kind.PREDICT, Kind.PREDICT_ON_BATCH):
        return [*lines, f"given = {call}[1:]  # the states it returned, passed back by hand next time"]
    return [*lines, call]


def _torch_workflow(spec: Spec, args: str) -> str:
    is_lstm = spec.cell == Cell.LSTM
    by_hand = spec.hand_carried
    layout = "\nfrom lstm_inspect.layout import stateful_layout" if spec.stateful else ""
    numpy = "import numpy as np\n" if spec.stateful else ""
    lines = [_HEADER.format(args=args), f'''\
import io

{numpy}import torch
from torch import nn{layout}

N, T, F, B, UNITS, LAYERS = {spec.samples}, {spec.timesteps}, {spec.features}, {spec.batch_size}, {spec.units}, \
{spec.layers}
STATEFUL, DIRECTIONS = {spec.stateful}, {spec.directions}
torch.manual_seed({spec.seed})
{_torch_x(spec)}

def build():
    return nn.{spec.cell.torch_name}(F, UNITS, num_layers=LAYERS, bidirectional=DIRECTIONS == 2, batch_first=True)


def data(n):
    """Fresh inputs for a call: the counts printed depend on the state handling alone."""
    return torch.rand(n, T, F) * 2 - 1


def zeros(slots):
    """{'(h, c)' if is_lstm else 'h'} for every layer and direction: one row per batch slot."""
    shape = (LAYERS * DIRECTIONS, slots, UNITS)
    return {'(torch.zeros(shape), torch.zeros(shape))' if is_lstm else '(torch.zeros(shape),)'}


class Model:
    """The RNN and, when stateful, Keras's state variables (zeros at build), with lstm-inspect's call labels."""

    made = {{}}

    def __init__(self, rnn, batch_size, kind=""):
        self.rnn, self.batch_size, self.state, self.last, self.counts = rnn, batch_size, zeros(batch_size), None, {{}}
        self.made[kind] = self.made.get(kind, 0) + 1
        self.name = kind + (f"#{{self.made[kind]}}" if kind and self.made[kind] > 1 else "")
        self.optimizer = torch.optim.SGD(rnn.parameters(), lr=0.01)

    def start(self, kind):
        self.counts[kind] = self.number = self.counts.get(kind, 0) + 1

    def label(self, word):
        numbered = word + (f"#{{self.number}}" if self.number > 1 else "")
        return f"{{self.name}} {{numbered}}" if self.name else numbered

    def reset_state(self):
        self.state, self.last = zeros(self.batch_size), None

    def call(self, label, inputs, given=None):
        """One call of the layers with Keras's state rules; `given`: states passed by hand."""
        if STATEFUL and len(inputs) != self.batch_size:
            raise ValueError(f"If an RNN is stateful, the batch size of the input sequences must be the same "
                             f"as the batch size of the initial state. - Expected batch size: {{self.batch_size}} "
                             f"- Received batch size: {{len(inputs)}}")
        initial = self.state if STATEFUL else given if given is not None else zeros(len(inputs))
        before = self.last if STATEFUL else given
        is_zero = torch.stack([~s.any(2).any(0) for s in initial]).all(0)
        carried = (torch.stack([(s == p).all(2).all(0) for s, p in zip(initial, before)]).all(0) & ~is_zero
                   if before is not None else torch.zeros(len(inputs), dtype=torch.bool))
        print(f"{{label}}: zeros={{int(is_zero.sum())}} carried={{int(carried.sum())}}")
        output, final = self.rnn(inputs, {'initial' if is_lstm else 'initial[0]'})
        final = {'tuple(s.detach() for s in final)' if is_lstm else '(final.detach(),)'}
        if STATEFUL:
            # detach(): Keras carries the state as a constant, so no gradient crosses the batch boundary.
            self.state = self.last = final
        return output[:, -1], final

    def train(self, label, inputs):
        loss = self.call(label, inputs)[0].pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    @torch.no_grad()
    def run(self, word, samples, batch_size, given=None):
        """evaluate or predict: batch after batch; returns the final states of every sample."""
        finals = []
        for batch, start in enumerate(range(0, samples, batch_size)):
            inputs = data(min(batch_size, samples - start))
            carried = None if given is None else tuple(s[:, start:start + len(inputs)] for s in given)
            finals.append(self.call(f"{{self.label(word)}} b{{batch}}", inputs, carried)[1])
        return tuple(torch.cat(parts, 1) for parts in zip(*finals))


model = Model(build(), B)
given = None  # the states the last predict returned
''']
    lines += _torch_calls(spec, spec.plan, 0, by_hand)
    return "".join(lines)


def _torch_calls(spec: Spec, workflow: Workflow, depth: int, by_hand: bool) -> list[str]:
    pad = "    " * depth
    lines: list[str] = []
    for item in workflow:
        if isinstance(item, Repeat):
            lines.append(f"{pad}for _ in range({item.times}):  # {item}\n")
            lines += _torch_calls(spec, item.body, depth + 1, by_hand)
            continue
        lines.append(f"{pad}# {item}\n")
        lines += [pad + line + "\n" for line in _torch_call(spec, item, by_hand)]
    return lines


def _hook(on: bool, comment: str) -> list[str]:
    return [f"model.reset_state()  # --reset {comment}"] if on else []


def _torch_call(spec: Spec, op: Op, by_hand: bool) -> list[str]:
    size = str(op.batch_size) if op.batch_size else "model.batch_size"
    if op.kind == Kind.RESET_STATE:
        return ["model.reset_state()"]
    if op.kind == Kind.TWIN:
        return ["twin = build()", "twin.load_state_dict(model.rnn.state_dict())  # the weights, never the states",
                f'model = Model(twin, {op.batch_size}, "twin")']
    if op.kind == Kind.SAVE_AND_LOAD:
        return ["saved = io.BytesIO()", "torch.save(model.rnn.state_dict(), saved)  # the weights: no state is saved",
                "saved.seek(0)", "loaded = build()", "loaded.load_state_dict(torch.load(saved))",
                'model = Model(loaded, model.batch_size, "loaded")']
    if op.kind == Kind.FIT:
        train = spec.fit_split(op)
        shuffle = spec.shuffle if op.shuffle is None else op.shuffle
        order = {Shuffle.TRUE: f"torch.randperm({train})", Shuffle.FALSE: f"torch.arange({train})",
                 Shuffle.BATCH: f"torch.cat([chunk[torch.randperm(len(chunk))] for chunk in "
                                f"torch.arange({train}).split({size})])"}[shuffle]
        lines = ['model.start("fit")', f"for epoch in range({op.initial_epoch}, {op.epochs}):",
                 *["    " + line for line in _hook(spec.reset.kind == ResetKind.EPOCH, "epoch: on_epoch_begin")],
                 f"    order = {order}",
                 f"    for batch, start in enumerate(range(0, {train}, {size})):"]
        if spec.reset.kind == ResetKind.EVERY:
            lines += [f"        if batch % {spec.reset.every} == 0:  # --reset every:{spec.reset.every}",
                      "            model.reset_state()"]
        lines.append(f'        model.train(f"{{model.label(\'train\')}} e{{epoch}} b{{batch}}", '
                     f"x[order[start:start + {size}]])")
        validation = spec.fit_validation(op)
        if validation:
            source = (f"x[{train} + start:{train} + start + {size}]" if op.validation_split
                      else f"data(min({size}, {validation} - start))")
            lines += [f"    if (epoch + 1) % {op.validation_freq} == 0:",
                      *["        " + line for line in _hook(spec.reset.validation, "validation: on_test_begin")],
                      "        with torch.no_grad():  # validation runs through the same state, as in Keras",
                      f"            for batch, start in enumerate(range(0, {validation}, {size})):",
                      f'                model.call(f"{{model.label(\'validation\')}} e{{epoch}} b{{batch}}", {source})']
        return lines
    lines = [f'model.start("{op.kind}")']
    if op.kind == Kind.TRAIN_ON_BATCH:
        return [*lines, f'model.train(model.label("train_on_batch") + " b0", data({op.samples}))']
    if op.kind == Kind.TEST_ON_BATCH:
        return [*lines, "with torch.no_grad():",
                f'    model.call(model.label("test_on_batch") + " b0", data({op.samples}))']
    if op.kind == Kind.EVALUATE:
        return [*lines, *_hook(spec.reset.validation, "validation: on_test_begin"),
                f'model.run("evaluate", {op.samples}, {size})']
    hand = ", given" if op.hand_carried else ""
    keep = "given = " if by_hand else ""
    if op.kind == Kind.PREDICT_ON_BATCH:
        return [*lines, f'{keep}model.run("predict_on_batch", {op.samples}, {op.samples}{hand})']
    return [*lines, *_hook(spec.reset.predict, "predict: on_predict_begin"),
            f'{keep}model.run("predict", {op.samples}, {size}{hand})']
