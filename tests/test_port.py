"""The PyTorch side of a port: the port notes' claims evaluated on real torch modules, and the
conversion of Keras weights (its real-Keras half is in test_backends.py)."""

import re
import subprocess
import sys

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


@pytest.mark.parametrize("cell", [torch.nn.LSTM, torch.nn.RNN])
def test_any_split_of_kerass_one_bias_computes_the_same(cell):
    torch.manual_seed(0)
    module, x = cell(2, 3, batch_first=True), torch.randn(4, 5, 2)
    with torch.no_grad():
        before = module(x)[0]
        total = module.bias_ih_l0 + module.bias_hh_l0
        share = torch.rand_like(total)
        module.bias_ih_l0.copy_(total * share)
        module.bias_hh_l0.copy_(total * (1 - share))
        assert torch.allclose(module(x)[0], before, atol=1e-6)


def test_the_port_module_imports_no_torch_until_used():
    code = ("import sys, lstm_inspect.port as port; assert 'torch' not in sys.modules; port.from_keras; "
            "assert 'torch' in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_to_keras_refuses_what_is_no_recurrent_module():
    from lstm_inspect.port import PortError, to_keras

    with pytest.raises(PortError, match="without proj_size"):
        to_keras(torch.nn.LSTM(2, 4, proj_size=2, batch_first=True), None)
    with pytest.raises(PortError, match="takes an nn.LSTM"):
        to_keras(torch.nn.Linear(2, 3), None)


def test_the_emitted_torch_programs_bidirectional_output_is_its_two_final_states():
    from click.testing import CliRunner

    from lstm_inspect.cli import main

    program = CliRunner().invoke(main, ["--shape", "8,5,2", "--batch", "4", "--bidirectional", "--cell", "gru",
                                        "--emit", "torch"]).stdout
    assert "# h_n[-2] is the forward state after the last step, h_n[-1] the backward one after t = 0" in program
    assert "gates z, r, h to r, z, n" in program
    returned = re.search(r"    return (torch\.cat\(.*\))\n", program).group(1)
    module = torch.nn.GRU(2, 3, batch_first=True, bidirectional=True)
    output, h_n = module(torch.randn(4, 5, 2))
    # Keras's Bidirectional output: each direction's last output, the backward one's at t = 0.
    assert torch.equal(eval(returned, {"torch": torch, "output": output, "UNITS": 3}), torch.cat([h_n[-2], h_n[-1]], 1))
