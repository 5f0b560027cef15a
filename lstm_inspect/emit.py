"""Minimal runnable snippets that reproduce a setup's state handling (`--emit keras|torch`).

Both print one line per layer call, "<call label>: zeros=<slots> carried=<slots>", read
from their own state tensors, so a reader (and the tests) can hold them against the
tool's schedule. Only the blocks this setup needs are emitted.
"""

from __future__ import annotations

import textwrap

from .spec import ResetKind, Spec

_HEADER = '''\
# Reproduces the state handling of: lstm-inspect {args}
'''


_RESET_CALLBACK = '''

class ResetStates(keras.callbacks.Callback):
    """Keras never resets a stateful layer itself, and Keras 3's Model has no reset_state()."""

    def {hook}:
{body}'''
_RESET_ALL = """\
for rnn in (l for l in self.model.layers if isinstance(l, keras.layers.RNN)):
    rnn.reset_state()
"""


def _constants(spec: Spec) -> str:
    return (f"N, T, F, B, UNITS, EPOCHS = {spec.samples}, {spec.timesteps}, {spec.features}, "
            f"{spec.batch_size}, {spec.units}, {spec.epochs}\n"
            f"VAL, PRED = {spec.val_samples}, {spec.predict_samples}\n")


def keras_snippet(spec: Spec, args: str) -> str:
    lines = [_HEADER.format(args=args), '''\
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras
import numpy as np

''', _constants(spec), '''\
rng = np.random.default_rng(0)
x, y = rng.uniform(-1, 1, (N, T, F)).astype("float32"), np.zeros((N, UNITS), "float32")
''']
    if spec.val_samples:
        lines.append('x_val, y_val = rng.uniform(-1, 1, (VAL, T, F)).astype("float32"), '
                     'np.zeros((VAL, UNITS), "float32")\n')
    if spec.stateful:
        lines.append('''\
# A stateful layer needs a fixed batch size: the state holds one row per batch slot.
inputs = keras.Input(batch_shape=(B, T, F))
# use_cudnn=False: Keras 3 fails stateful training with cuDNN on torch (keras-team/keras#20875).
layer = keras.layers.LSTM(UNITS, stateful=True, use_cudnn=False)
''')
    else:
        lines.append('''\
inputs = keras.Input(shape=(T, F))
layer = keras.layers.LSTM(UNITS, use_cudnn=False)
''')
    lines.append('''\
model = keras.Model(inputs, layer(inputs))
model.compile(optimizer="sgd", loss="mse")
''')
    if spec.reset.kind == ResetKind.EPOCH:
        lines.append(_RESET_CALLBACK.format(hook="on_epoch_begin(self, epoch, logs=None)",
                                            body=textwrap.indent(_RESET_ALL, " " * 8)))
    elif spec.reset.kind == ResetKind.EVERY:
        guarded = f"if batch % {spec.reset.every} == 0:\n" + textwrap.indent(_RESET_ALL, " " * 4)
        lines.append(_RESET_CALLBACK.format(hook="on_train_batch_begin(self, batch, logs=None)",
                                            body=textwrap.indent(guarded, " " * 8)))
    if spec.stateful:
        lines.append('''

class ShowStates(keras.callbacks.Callback):
    """Prints where each slot's initial state comes from, read from layer.states."""

    epoch, final = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def show(self, label):
        h, c = (np.array(keras.ops.convert_to_numpy(s)) for s in layer.states)
        zeros = ~h.any(axis=1) & ~c.any(axis=1)
        carried = (np.zeros(len(h), bool) if self.final is None else
                   (h == self.final[0]).all(axis=1) & (c == self.final[1]).all(axis=1) & ~zeros)
        print(f"{label}: zeros={zeros.sum()} carried={carried.sum()}")

    def keep_final(self, batch, logs=None):
        self.final = [np.array(keras.ops.convert_to_numpy(s)) for s in layer.states]

    def on_train_batch_begin(self, batch, logs=None):
        self.show(f"train e{self.epoch} b{batch}")

    def on_test_batch_begin(self, batch, logs=None):
        self.show(f"validation e{self.epoch} b{batch}")

    def on_predict_batch_begin(self, batch, logs=None):
        self.show(f"predict b{batch}")

    on_train_batch_end = on_test_batch_end = on_predict_batch_end = keep_final
''')
    else:
        lines.append('''

class ShowStates(keras.callbacks.Callback):
    """A stateless layer has no state variables: every call starts every slot from zeros."""

    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def show(self, label, batch, total):
        slots = min(B, total - batch * B)
        print(f"{label}: zeros={slots} carried=0")

    def on_train_batch_begin(self, batch, logs=None):
        self.show(f"train e{self.epoch} b{batch}", batch, N)

    def on_test_batch_begin(self, batch, logs=None):
        self.show(f"validation e{self.epoch} b{batch}", batch, VAL)

    def on_predict_batch_begin(self, batch, logs=None):
        self.show(f"predict b{batch}", batch, PRED)
''')
    callbacks = "[ResetStates(), show]" if spec.reset.kind != ResetKind.NEVER else "[show]"
    shuffle = "False" if spec.stateful else str(spec.shuffle)
    validation = "validation_data=(x_val, y_val), " if spec.val_samples else ""
    advice = ("# shuffle=False for a stateful layer: slot i of batch k+1 continues slot i of batch k.\n"
              if spec.stateful else "")
    lines.append(f"\n\nshow = ShowStates()\n{advice}model.fit(x, y, batch_size=B, epochs=EPOCHS, "
                 f"shuffle={shuffle}, {validation}callbacks={callbacks}, verbose=0)\n")
    if spec.predict_samples:
        lines.append('''\
model.predict(rng.uniform(-1, 1, (PRED, T, F)).astype("float32"), batch_size=B, callbacks=[show], verbose=0)
''')
    return "".join(lines)


def torch_snippet(spec: Spec, args: str) -> str:
    lines = [_HEADER.format(args=args), '''\
import torch
from torch import nn

''', _constants(spec), f'''\
STATEFUL, SHUFFLE = {spec.stateful}, {spec.shuffle and not spec.stateful}
torch.manual_seed(0)
lstm = nn.LSTM(F, UNITS, batch_first=True)
optimizer = torch.optim.SGD(lstm.parameters(), lr=0.01)
x, x_val, x_pred = (torch.rand(n, T, F) * 2 - 1 for n in (N, VAL, PRED))


def zeros(slots):
    return torch.zeros(1, slots, UNITS), torch.zeros(1, slots, UNITS)


state = zeros(B)  # Keras's state variables: one (h, c) row per batch slot, created as zeros
last = None


def call(label, inputs):
    """One call of the layer with Keras's state rules."""
    global state, last
    if STATEFUL and len(inputs) != B:
        raise ValueError(f"If an RNN is stateful, the batch size of the input sequences must be the "
                         f"same as the batch size of the initial state. - Expected batch size: {{B}} "
                         f"- Received batch size: {{len(inputs)}}")
    h0, c0 = state if STATEFUL else zeros(len(inputs))  # stateless: every call from zeros
    is_zero = ~h0[0].any(1) & ~c0[0].any(1)
    carried = ((h0[0] == last[0][0]).all(1) & (c0[0] == last[1][0]).all(1) & ~is_zero
               if STATEFUL and last is not None else torch.zeros(len(inputs), dtype=torch.bool))
    print(f"{{label}}: zeros={{int(is_zero.sum())}} carried={{int(carried.sum())}}")
    output, (h, c) = lstm(inputs, (h0, c0))
    if STATEFUL:
        # detach(): Keras carries the state as a constant, so no gradient crosses the batch boundary.
        state = last = (h.detach(), c.detach())
    return output[:, -1]


for epoch in range(EPOCHS):
''']
    if spec.reset.kind == ResetKind.EPOCH:
        lines.append("    state = zeros(B)  # --reset epoch: on_epoch_begin\n")
    lines.append('''\
    order = torch.randperm(N) if SHUFFLE else torch.arange(N)
    for batch, start in enumerate(range(0, N, B)):
''')
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
