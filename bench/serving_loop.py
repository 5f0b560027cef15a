"""The bare PyTorch loop that bench.py part (j) holds a workflow of many small calls to: CALLS
stateful forward calls of BATCH samples (T=20, F=1, the command's default 8 units), inputs drawn
per call, the final states carried detached into the next call, and one torch.equal per call
checking that the state passed in is the one the call before left. THREADS: torch's intra-op
threads (0: torch's default).

    python bench/serving_loop.py CALLS BATCH THREADS
"""

import sys

import torch
from torch import nn

TIMESTEPS, FEATURES, UNITS = 20, 1, 8


def main(calls: int, batch: int, threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)
    lstm = nn.LSTM(FEATURES, UNITS, batch_first=True).eval()
    left = (torch.zeros(1, batch, UNITS), torch.zeros(1, batch, UNITS))
    state = left
    with torch.no_grad():
        for _ in range(calls):
            x = torch.rand(batch, TIMESTEPS, FEATURES)
            if not torch.equal(state[0], left[0]):
                raise AssertionError("the state passed in is not the one the call before left")
            _, (h, c) = lstm(x, state)
            left = state = (h.detach(), c.detach())


if __name__ == "__main__":
    main(*map(int, sys.argv[1:4]))
