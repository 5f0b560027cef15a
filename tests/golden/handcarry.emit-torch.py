# Reproduces the state handling of: lstm-inspect --shape 8,5,1 --batch 4 --backend torch --calls 'predict(4, initial_state='"'"'previous'"'"') * 3'
import io

import torch
from torch import nn

N, T, F, B, UNITS, LAYERS = 8, 5, 1, 4, 8, 1
STATEFUL, DIRECTIONS = False, 1
torch.manual_seed(0)
x = torch.rand(N, T, F) * 2 - 1


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
for _ in range(3):  # predict(4, initial_state='previous') * 3
    # predict(4, initial_state='previous')
    model.start("predict")
    given = model.run("predict", 4, 32, given)
