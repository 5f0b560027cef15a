"""Write the data file the README's --data example reads (`make readme`): 24 sliding windows of
4 steps over one series, each 2 steps on from the one before (tests/test_advice.py makes the same
kind of file)."""

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "examples" / "sliding.npy"

if __name__ == "__main__":
    series = np.arange(52, dtype="float32")[:, None]
    np.save(OUT, np.stack([series[start:start + 4] for start in range(0, 48, 2)]))
