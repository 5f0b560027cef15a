"""The mirror on CUDA (cuDNN's LSTM): the same exact checks. Runs only where a GPU is."""

import pytest
import torch

from lstm_inspect.check.inspection import Inspection
from lstm_inspect.core.choices import ResetPolicy
from lstm_inspect.core.spec import Spec
from lstm_inspect.mirror.run import run_mirror

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("spec", [
    Spec(1000, 20, 1, batch_size=200),
    Spec(1000, 20, 1, batch_size=200, stateful=True, shuffle=False, epochs=2, val_samples=400,
         predict_samples=200),
    Spec(4096, 50, 8, batch_size=256, stateful=True, units=64, reset=ResetPolicy.parse("every:3")),
])
def test_every_step_verified_exactly_on_the_gpu(spec):
    inspection = Inspection(spec, device="cuda")
    results = list(inspection)
    assert inspection.report.summary.verified is True and all(r.verified for r in results)


def test_records_live_on_the_gpu_and_carries_are_the_same_tensors():
    spec = Spec(8, 5, 2, batch_size=4, stateful=True, shuffle=False)
    first, second = run_mirror(spec, torch.device("cuda"))
    assert second.initial[0].is_cuda
    assert all(torch.equal(now, before) for now, before in zip(second.initial, first.final))


def test_evidence_holds_on_the_gpu():
    inspection = Inspection(Spec(1000, 20, 1, batch_size=200, stateful=True, shuffle=False), device="cuda",
                            evidence=True)
    list(inspection)
    items = {item.key: item for item in inspection.report.evidence}
    assert items["continuation"].passed and items["gradient_truncation"].value == 0.0
    assert items["batch_independence"].value < 1e-5
