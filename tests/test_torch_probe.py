"""lstm_inspect.torch.watch on plain PyTorch loops: each slot's start read from the tensors, each
finding asserted against what PyTorch itself does (its errors raised for real), compare() held to
the schedule, the hooks and the mode given back, and a saved run replayed by the command line."""

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lstm_inspect import Spec
from lstm_inspect.cli import main
from lstm_inspect.torch import watch

X = torch.randn(12, 5, 2, generator=torch.Generator().manual_seed(0))
Y = torch.zeros(12, 1)


def model_of(cell=nn.LSTM, **options):
    torch.manual_seed(0)
    return cell(2, 3, batch_first=True, **options)


def starts(probe):
    """Per step: its label and each slot's start as the table writes it."""
    return [(result.step.call.label, result.step.start_labels()) for result in probe.steps()]


def detached(state):
    return tuple(part.detach() for part in state) if isinstance(state, tuple) else state.detach()


def train(model, loader, epochs=2, carry=True, reset_each_epoch=True, keep=detached):
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    state = None
    for _ in range(epochs):
        if reset_each_epoch:
            state = None
        for x, _ in loader:
            out, state = model(x, state if carry else None)
            out.sum().backward()
            optimiser.step()
            optimiser.zero_grad()
            state = keep(state)


def loader(shuffle=False, batch_size=4, samples=12):
    return DataLoader(TensorDataset(X[:samples], Y[:samples]), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(1))


def test_a_carried_detached_state_reset_each_epoch_is_kerass_stateful_layer_reset_each_epoch():
    model = model_of()
    with watch(model) as probe:
        train(model, loader())
    assert starts(probe)[:4] == [("train e0 b0", ["zeros"] * 4),
                                 ("train e0 b1", [f"train e0 b0/slot {i}" for i in range(4)]),
                                 ("train e0 b2", [f"train e0 b1/slot {i}" for i in range(4)]),
                                 ("train e1 b0", ["zeros"] * 4)]
    assert probe.findings == []
    keras = Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2, reset="epoch")
    same = probe.compare(keras)
    assert same.matches and same.calls == 6 and "6 calls agree slot for slot" in str(same)
    never = probe.compare(Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2))
    assert not never and never.first_difference == 3
    assert "slot 0 starts from slot 0 of the call before in Keras, in your loop from zeros" in never.text


def test_a_state_reset_every_batch_is_a_stateless_layer():
    model = model_of(nn.GRU)
    with watch(model) as probe:
        train(model, loader(), carry=False)
    assert all(labels == ["zeros"] * 4 for _, labels in starts(probe))
    assert probe.compare(Spec(12, 5, 2, batch_size=4, epochs=2, shuffle=False)).matches
    stateful = probe.compare(Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=2))
    assert stateful.first_difference == 1 and "from zeros" in stateful.text


@pytest.mark.parametrize("keep, names", [(lambda state: state, "h and c"),
                                         (lambda state: (state[0].detach(), state[1]), "c"),
                                         (lambda state: (state[0], state[1].detach()), "h")])
def test_a_carried_state_not_detached_is_found_before_pytorch_raises(keep, names):
    model = model_of()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"), \
            watch(model) as probe:
        train(model, loader(), keep=keep)
    assert [finding.key for finding in probe.findings] == ["not detached"]
    finding = probe.findings[0]
    assert finding.call == "train e0 b1" and f"the carried {names} " in finding.text
    assert "h.detach() and c.detach()" in finding.text


def test_a_smaller_last_batch_is_found_with_pytorchs_own_message():
    model = model_of()
    with pytest.raises(RuntimeError) as raised, watch(model) as probe:
        train(model, loader(samples=10))
    finding = probe.findings[-1]
    assert finding.key == "batch size" and finding.call == "train e0 b2"
    assert f'"{raised.value}"' in finding.text  # "Expected hidden[0] size (1, 2, 3), got [1, 4, 3]"
    assert "drop_last=True" in finding.text
    assert sum(1 for _ in probe.steps()) == 2  # the raising call never ran


def test_a_shuffling_dataloader_is_found_where_the_state_is_carried():
    model = model_of()
    with watch(model) as probe:
        train(model, loader(shuffle=True), epochs=3, reset_each_epoch=False)
    keys = [finding.key for finding in probe.findings]
    assert keys == ["shuffled"] and probe.findings[0].call.startswith("train e1")
    kept = probe.compare(Spec(12, 5, 2, batch_size=4, stateful=True, shuffle=False, epochs=3))
    assert not kept and "another order than in the first pass" in kept.text
    with watch(model) as ordered:
        train(model, loader(), epochs=3, reset_each_epoch=False)
    assert ordered.findings == []


def test_per_slot_resets_with_a_done_mask_zero_only_those_slots():
    model = model_of()
    done = torch.tensor([0.0, 1.0, 0.0, 1.0])[None, :, None]  # slots 1 and 3 end their episodes
    with watch(model) as probe, torch.no_grad():
        out, (h, c) = model(X[:4])
        model(X[4:8], (h * (1 - done), c * (1 - done)))
    second = list(probe.steps())[1].step
    assert second.start_labels() == ["predict e0 b0/slot 0", "zeros", "predict e0 b0/slot 2", "zeros"]
    assert (second.zero_slots, second.carried_slots) == (2, 2)


def test_an_averaged_state_is_found():
    model = model_of(nn.RNN)
    with watch(model) as probe, torch.no_grad():
        _, h = model(X[:4])
        model(X[4:8], h.mean(dim=1, keepdim=True).expand_as(h).contiguous())
    assert [finding.key for finding in probe.findings] == ["averaged"]
    assert list(probe.steps())[1].step.other_slots == 4


def test_compare_names_a_module_without_batch_first():
    model = nn.LSTM(2, 3)  # batch_first=False: x of (B, T, F) reads as B steps of a batch of T
    with watch(model) as probe, torch.no_grad():
        model(X[:4])
    found = probe.compare(Spec(4, 5, 2, batch_size=4))
    assert not found and "batch_first=False and reads x of (4, 5, 2) as 4 steps of a batch of 5" in found.text
    assert list(probe.steps())[0].step.call.samples.size == 5  # it ran 5 slots, not 4


def test_compare_says_where_the_loop_and_keras_part_in_length():
    model = model_of()  # training, as Keras's fit: no torch.no_grad()
    with watch(model) as probe:
        model(X[:4])
    assert "your loop stops after 1 call" in probe.compare(Spec(8, 5, 2, batch_size=4)).text
    assert probe.compare(Spec(4, 5, 2, batch_size=4)).matches
    with watch(model) as more:
        model(X[:4])
        model(X[4:8])
    assert "your loop makes more calls" in more.compare(Spec(4, 5, 2, batch_size=4)).text
    with watch(model) as predicting, torch.no_grad():
        model(X[:4])
    assert "Keras trains there" in predicting.compare(Spec(4, 5, 2, batch_size=4)).text


def test_the_hooks_go_and_the_mode_comes_back_on_exit():
    model = nn.Sequential()  # no recurrent module
    with pytest.raises(TypeError, match="holds no nn.LSTM"):
        watch(model).__enter__()

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = nn.LSTM(2, 3, batch_first=True), nn.LSTM(3, 3, batch_first=True)

        def forward(self, x):
            out, state = self.encoder(x)
            return self.decoder(out, state)

    model = Encoder().train()
    with watch(model) as probe:
        model.eval()
        with torch.no_grad():
            model(X[:4])
    assert model.training
    assert not model.encoder._forward_hooks and not model.encoder._forward_pre_hooks
    labels = [result.step.call.label for result in probe.steps()]
    assert labels == ["encoder predict e0 b0", "decoder predict e0 b0"]
    # The decoder starts from the encoder's final state: another module's, so "other" here.
    assert list(probe.steps())[1].step.other_slots == 4


def test_a_saved_run_is_replayed_by_the_command_line(tmp_path):
    model = model_of()
    with watch(model) as probe:
        train(model, loader())
    path = tmp_path / "run.json"
    probe.save(path)
    saved = json.loads(path.read_text())
    assert saved["observed_by"] == "TorchProbe" and saved["schema"] == 1 and len(saved["steps"]) == 6
    result = CliRunner().invoke(main, ["--replay", str(path), "--expect-resets", "2", "--expect-carries", "16"])
    assert result.exit_code == 0, result.output
    assert "Steps of your PyTorch loop, seen by TorchProbe" in result.output
    assert CliRunner().invoke(main, ["--replay", str(path), "--expect-resets", "3"]).exit_code == 1
