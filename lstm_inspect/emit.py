"""Minimal runnable snippets that reproduce a setup's state handling (`--emit keras|torch`).

Both print one line per layer call, "<call label>: zeros=<slots> carried=<slots>", read
from their own state tensors (every layer and direction), so a reader (and the tests)
can hold them against the tool's schedule. Only the blocks this setup needs are emitted.
"""

from __future__ import annotations

import textwrap

from .spec import Cell, KerasVersion, ResetKind, Shuffle, Spec

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


def keras_snippet(spec: Spec, args: str) -> str:
    width = "UNITS * 2" if spec.bidirectional else "UNITS"
    imports = _KERAS_IMPORTS[spec.keras].replace("{backend}", str(spec.backend))
    lines = [_HEADER.format(args=args), imports, "\n", _constants(spec), f'''\
rng = np.random.default_rng({spec.seed})
x, y = rng.uniform(-1, 1, (N, T, F)).astype("float32"), np.zeros((N, {width}), "float32")
''']
    if spec.val_samples:
        lines.append(f'x_val, y_val = rng.uniform(-1, 1, (VAL, T, F)).astype("float32"), '
                     f'np.zeros((VAL, {width}), "float32")\n')
    if spec.stateful:
        lines.append("# A stateful layer needs a fixed batch size: the state holds one row per batch slot.\n"
                     "inputs = keras.Input(batch_shape=(B, T, F))\n")
    else:
        lines.append("inputs = keras.Input(shape=(T, F))\n")
    options = f"stateful={spec.stateful}, return_sequences=depth < LAYERS - 1"
    if spec.keras == KerasVersion.THREE and spec.cell != Cell.RNN:
        lines.append("# use_cudnn=False: Keras 3 fails stateful training with cuDNN on torch "
                     "(keras-team/keras#20875).\n")
        options += ", use_cudnn=False"
    layer = f"keras.layers.{spec.cell.keras_name}(UNITS, {options})"
    if spec.bidirectional:
        layer = f"keras.layers.Bidirectional({layer})"
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


def _torch_state_handling(spec: Spec) -> str:
    """The model, its data, and one call of it with Keras's state rules, up to the epoch loop."""
    is_lstm = spec.cell == Cell.LSTM
    return f'''\
STATEFUL, SHUFFLE = {spec.stateful}, {bool(spec.shuffle) and not spec.stateful}
DIRECTIONS = {spec.directions}
torch.manual_seed({spec.seed})
rnn = nn.{spec.cell.torch_name}(F, UNITS, num_layers=LAYERS, bidirectional=DIRECTIONS == 2, batch_first=True)
optimizer = torch.optim.SGD(rnn.parameters(), lr=0.01)
x, x_val, x_pred = (torch.rand(n, T, F) * 2 - 1 for n in (N, VAL, PRED))


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
    lines = [_HEADER.format(args=args), '''\
import torch
from torch import nn

''', _constants(spec), _torch_state_handling(spec)]
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
