"""The PyTorch side of a port: the port notes' claims evaluated on real torch modules, and the
conversion of Keras weights (its real-Keras half is in test_backends.py)."""

import re

import pytest
import torch
from test_advice import items

from lstm_inspect.core.spec import Spec


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
def test_the_final_states_the_notes_name_are_torchs(cell, bidirectional, layers):
    notes = items(Spec(8, 5, 2, batch_size=4, cell=cell, bidirectional=bidirectional, layers=layers))["port"]
    module = eval("torch." + re.search(r"(nn\.\w+\(.*?batch_first=True\))", notes).group(1), {"torch": torch,
                                                                                             "units": 3})
    output, final = module(torch.randn(4, 5, 2))
    h_n = final[0] if isinstance(final, tuple) else final
    assert h_n.shape == (layers * (2 if bidirectional else 1), 4, 3)  # (layers x directions, batch, units)
    claims = re.findall(r"(h_n\[-\d\]) = (out\[[^\]]*\])", notes)
    assert len(claims) == (2 if bidirectional else 1)
    for state, taken in claims:
        assert torch.equal(eval(state, {"h_n": h_n}), eval(taken, {"out": output, "units": 3})), (state, taken)
