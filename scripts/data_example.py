"""Write the data files the README's --data examples read (`make readme`): 24 sliding windows of
4 steps over one series, each 2 steps on from the one before (tests/test_advice.py makes the same
kind of file); and 8 padded rows of 5 steps whose padding (zeros in every feature) falls after,
before and between their valid steps, or over all of them (tests/test_data_mask.py's kinds)."""

from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

if __name__ == "__main__":
    series = np.arange(52, dtype="float32")[:, None]
    np.save(EXAMPLES / "sliding.npy", np.stack([series[start:start + 4] for start in range(0, 48, 2)]))
    padded = np.random.default_rng(0).uniform(0.1, 1.0, (8, 5, 2)).astype("float32")
    padded[0, 3:] = padded[1, :2] = padded[2, 1:3] = padded[3] = padded[4, 4:] = padded[6, :1] = 0.0
    np.save(EXAMPLES / "padded.npy", padded)
