# Reproduces the state handling of: lstm-inspect --shape 8,5,1 --batch 4 --stateful --backend torch --reset epoch,predict --calls 'fit(batch_size=4, epochs=2, shuffle=False, validation_samples=4); twin(batch_size=1); predict(3, batch_size=1); reset_state(); predict_on_batch(1) * 2'
import io

import numpy as np
import torch
from torch import nn
from lstm_inspect.layout import stateful_layout

N, T, F, B, UNITS, LAYERS = 8, 5, 1, 4, 8, 1
STATEFUL, DIRECTIONS = True, 1
torch.manual_seed(0)
# Row j+B continues row j: B long series cut into windows of T steps, laid out for the slots.
series = np.random.default_rng(0).uniform(-1, 1, (B, (N // B) * T, F)).astype("float32")
x = stateful_layout(series, timesteps=T, batch_size=B).x
x = torch.from_numpy(x)


def build():
    # batch_first=True: x is (batch, T, F), as Keras's; h_n is (layers x directions, batch, UNITS) all the same.
    # A Keras model's weights: lstm_inspect.port.from_keras(model) (kernels transposed).
    return nn.LSTM(F, UNITS, num_layers=LAYERS, bidirectional=DIRECTIONS == 2, batch_first=True)


def data(n):
    """Fresh inputs for a call: the counts printed depend on the state handling alone."""
    return torch.rand(n, T, F) * 2 - 1


def zeros(slots):
    """(h, c) for every layer and direction: one row per batch slot."""
    shape = (LAYERS * DIRECTIONS, slots, UNITS)
    return (torch.zeros(shape), torch.zeros(shape))


class Model:
    """The RNN and, when stateful, Keras's state variables (zeros at build), with lstm-inspect's call labels."""

    made = {}

    def __init__(self, rnn, batch_size, kind=""):
        self.rnn, self.batch_size, self.state, self.last, self.counts = rnn, batch_size, zeros(batch_size), None, {}
        self.made[kind] = self.made.get(kind, 0) + 1
        self.name = kind + (f"#{self.made[kind]}" if kind and self.made[kind] > 1 else "")
        self.optimizer = torch.optim.SGD(rnn.parameters(), lr=0.01)

    def start(self, kind):
        self.counts[kind] = self.number = self.counts.get(kind, 0) + 1

    def label(self, word):
        numbered = word + (f"#{self.number}" if self.number > 1 else "")
        return f"{self.name} {numbered}" if self.name else numbered

    def reset_state(self):
        self.state, self.last = zeros(self.batch_size), None

    def call(self, label, inputs, given=None):
        """One call of the layers with Keras's state rules; `given`: states passed by hand."""
        if STATEFUL and len(inputs) != self.batch_size:
            raise ValueError(f"If an RNN is stateful, the batch size of the input sequences must be the same "
                             f"as the batch size of the initial state. - Expected batch size: {self.batch_size} "
                             f"- Received batch size: {len(inputs)}")
        initial = self.state if STATEFUL else given if given is not None else zeros(len(inputs))
        before = self.last if STATEFUL else given
        is_zero = torch.stack([~s.any(2).any(0) for s in initial]).all(0)
        carried = (torch.stack([(s == p).all(2).all(0) for s, p in zip(initial, before)]).all(0) & ~is_zero
                   if before is not None else torch.zeros(len(inputs), dtype=torch.bool))
        print(f"{label}: zeros={int(is_zero.sum())} carried={int(carried.sum())}")
        output, final = self.rnn(inputs, initial)
        final = tuple(s.detach() for s in final)
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
            finals.append(self.call(f"{self.label(word)} b{batch}", inputs, carried)[1])
        return tuple(torch.cat(parts, 1) for parts in zip(*finals))


model = Model(build(), B)
given = None  # the states the last predict returned
# fit(batch_size=4, epochs=2, shuffle=False, validation_samples=4)
model.start("fit")
for epoch in range(0, 2):
    model.reset_state()  # --reset epoch: on_epoch_begin
    order = torch.arange(8)
    for batch, start in enumerate(range(0, 8, 4)):
        model.train(f"{model.label('train')} e{epoch} b{batch}", x[order[start:start + 4]])
    if (epoch + 1) % 1 == 0:
        with torch.no_grad():  # validation runs through the same state, as in Keras
            for batch, start in enumerate(range(0, 4, 4)):
                model.call(f"{model.label('validation')} e{epoch} b{batch}", data(min(4, 4 - start)))
# twin(batch_size=1)
twin = build()
twin.load_state_dict(model.rnn.state_dict())  # the weights, never the states
model = Model(twin, 1, "twin")
# predict(3, batch_size=1)
model.start("predict")
model.reset_state()  # --reset predict: on_predict_begin
model.run("predict", 3, 1)
# reset_state()
model.reset_state()
for _ in range(2):  # predict_on_batch(1) * 2
    # predict_on_batch(1)
    model.start("predict_on_batch")
    model.run("predict_on_batch", 1, 1)
