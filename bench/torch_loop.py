"""One real PyTorch training loop carrying a detached state across batches, watched by
lstm_inspect.torch.watch or not: bench.py part (i) times it and runs it in fresh processes to
compare their peak memory.

    python bench/torch_loop.py SAMPLES probe|none
"""

import sys

import torch
from torch import nn

from lstm_inspect.torch import watch

TIMESTEPS, FEATURES, UNITS, BATCH = 20, 8, 64, 100


def model_and_data(samples: int) -> tuple[nn.LSTM, torch.Tensor]:
    torch.manual_seed(0)
    return nn.LSTM(FEATURES, UNITS, batch_first=True), torch.rand(samples, TIMESTEPS, FEATURES)


def train(model: nn.LSTM, x: torch.Tensor, epochs: int = 1) -> None:
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(epochs):
        state = None
        for start in range(0, len(x) - BATCH + 1, BATCH):
            out, (h, c) = model(x[start:start + BATCH], state)
            out.pow(2).mean().backward()
            optimiser.step()
            optimiser.zero_grad()
            state = (h.detach(), c.detach())


def watched(model: nn.LSTM, x: torch.Tensor, epochs: int = 1) -> None:
    with watch(model):
        train(model, x, epochs)


if __name__ == "__main__":
    samples, mode = int(sys.argv[1]), sys.argv[2]
    model, x = model_and_data(samples)
    (watched if mode == "probe" else train)(model, x, 2)
