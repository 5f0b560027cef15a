# Reproduces the state handling of: lstm-inspect --shape 12,3,2 --batch 4 --epochs 2 --stateful --cell gru --layers 2 --backend torch --bidirectional --reset epoch
import numpy as np
import torch
from torch import nn

from lstm_inspect.layout import stateful_layout

N, T, F, B, UNITS, EPOCHS = 12, 3, 2, 4, 8, 2
VAL, PRED, LAYERS = 0, 0, 2
STATEFUL, SHUFFLE = True, False
DIRECTIONS = 2
torch.manual_seed(0)
# batch_first=True: x is (batch, T, F), as Keras's; h_n is (layers x directions, batch, UNITS) all the same.
# A Keras model's weights: lstm_inspect.port.from_keras(model) (kernels transposed; gates z, r, h to r, z, n).
# h_n[-2] is the forward state after the last step, h_n[-1] the backward one after t = 0 (output[:, 0, UNITS:]).
rnn = nn.GRU(F, UNITS, num_layers=LAYERS, bidirectional=DIRECTIONS == 2, batch_first=True)
optimizer = torch.optim.SGD(rnn.parameters(), lr=0.01)
# Row j+B continues row j: B long series cut into windows of T steps, laid out for the slots.
series = np.random.default_rng(0).uniform(-1, 1, (B, (N // B) * T, F)).astype("float32")
x = stateful_layout(series, timesteps=T, batch_size=B).x
x = torch.from_numpy(x)
x_val, x_pred = (torch.rand(n, T, F) * 2 - 1 for n in (VAL, PRED))


def zeros(slots):
    """h for every layer and direction: one row per batch slot."""
    shape = (LAYERS * DIRECTIONS, slots, UNITS)
    return (torch.zeros(shape),)


state = zeros(B)  # Keras's state variables, created as zeros
last = None


def call(label, inputs):
    """One call of the layers with Keras's state rules."""
    global state, last
    if STATEFUL and len(inputs) != B:
        raise ValueError(f"If an RNN is stateful, the batch size of the input sequences must be the "
                         f"same as the batch size of the initial state. - Expected batch size: {B} "
                         f"- Received batch size: {len(inputs)}")
    initial = state if STATEFUL else zeros(len(inputs))  # stateless: every call from zeros
    is_zero = torch.stack([~s.any(2).any(0) for s in initial]).all(0)
    carried = (torch.stack([(s == p).all(2).all(0) for s, p in zip(initial, last)]).all(0) & ~is_zero
               if STATEFUL and last is not None else torch.zeros(len(inputs), dtype=torch.bool))
    print(f"{label}: zeros={int(is_zero.sum())} carried={int(carried.sum())}")
    output, final = rnn(inputs, initial[0])
    if STATEFUL:
        # detach(): Keras carries the state as a constant, so no gradient crosses the batch boundary.
        state = last = (final.detach(),)
    return torch.cat([output[:, -1, :UNITS], output[:, 0, UNITS:]], 1)


for epoch in range(EPOCHS):
    state = zeros(B)  # --reset epoch: on_epoch_begin
    order = torch.randperm(N) if SHUFFLE else torch.arange(N)
    for batch, start in enumerate(range(0, N, B)):
        loss = call(f"train e{epoch} b{batch}", x[order[start:start + B]]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
