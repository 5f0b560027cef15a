"""lstm_inspect.port against real Keras, on every Keras the tool describes: Keras's own layers (their
weights drawn at random, biases too) converted by from_keras compute Keras's outputs and final states;
torch modules' weights put into Keras by to_keras compute torch's; KerasStateful.from_keras carries as
the stateful Keras layer does; and what has no torch equivalent is refused, saying why."""


import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_backends import run_probe

pytestmark = pytest.mark.keras

TOLERANCE = 1e-5

PORT_PROBE = """
import json, sys
import numpy as np, torch
if sys.argv[1] == "2":
    import tf_keras as keras
else:
    import keras
from lstm_inspect import KerasStateful
from lstm_inspect.port import PortError, from_keras, to_keras

rng = np.random.default_rng(0)
x = rng.normal(size=(4, 5, 2)).astype("float32")
L = keras.layers


def randomised(model):
    for layer in model.layers:
        layer.set_weights([rng.normal(scale=0.5, size=np.shape(w)).astype("float32") for w in layer.get_weights()])
    return model


def numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value) if hasattr(keras, "ops") else value)


def stack(kind, layers=1, bidirectional=False, **options):
    inputs = keras.Input((5, 2))
    outputs, states = inputs, []
    for _ in range(layers):
        layer = getattr(L, kind)(3, return_sequences=True, return_state=True, **options)
        outputs, *final = (L.Bidirectional(layer) if bidirectional else layer)(outputs)
        states.append(final)
    return keras.Model(inputs, [outputs, *[state for final in states for state in final]])


def torch_side(module, kind, layers, bidirectional):
    with torch.no_grad():
        output, final = module(torch.from_numpy(x))
    final = final if isinstance(final, tuple) else (final,)
    per_state = len(final)
    found = [output.numpy()]
    for depth in range(layers):  # in Keras's order: per layer, forward states then backward ones
        for direction in range(2 if bidirectional else 1):
            found += [state[depth * (2 if bidirectional else 1) + direction].numpy() for state in final]
    return found


def largest(a, b):
    return max(float(np.abs(numpy(p) - q).max()) for p, q in zip(a, b, strict=True))


found = {}
CASES = {"LSTM": ("LSTM", 1, False, {}), "GRU": ("GRU", 1, False, {}), "SimpleRNN": ("SimpleRNN", 1, False, {}),
         "SimpleRNN relu": ("SimpleRNN", 1, False, {"activation": "relu"}),
         "LSTM without bias": ("LSTM", 1, False, {"use_bias": False}),
         "stacked LSTM": ("LSTM", 2, False, {}), "Bidirectional LSTM": ("LSTM", 1, True, {}),
         "stacked Bidirectional GRU": ("GRU", 2, True, {}), "Bidirectional SimpleRNN": ("SimpleRNN", 1, True, {})}
for name, (kind, layers, bidirectional, options) in CASES.items():
    model = randomised(stack(kind, layers, bidirectional, **options))
    module = from_keras(model)
    converted = largest(model(x), torch_side(module, kind, layers, bidirectional))
    torch.manual_seed(1)
    fresh = type(module)(2, 3, num_layers=layers, bidirectional=bidirectional, batch_first=True,
                         **({"nonlinearity": options["activation"]} if "activation" in options else {}),
                         bias=options.get("use_bias", True))
    with torch.no_grad():
        for parameter in fresh.parameters():
            parameter.normal_(0.0, 0.5)
    other = stack(kind, layers, bidirectional, **options)
    to_keras(fresh, other)
    back = largest(other(x), torch_side(fresh, kind, layers, bidirectional))
    round_trip = largest(other(x), torch_side(from_keras(other), kind, layers, bidirectional))  # torch, Keras, torch
    found[name] = {"from_keras": converted, "to_keras": back, "round trip": round_trip,
                   "module": [type(module).__name__, module.num_layers, module.bidirectional, module.batch_first]}

# torch without biases into a Keras layer with them: Keras's biases (drawn at random) become zeros.
unbiased = torch.nn.LSTM(2, 3, batch_first=True, bias=False)
biased = randomised(stack("LSTM"))
found["torch without bias into Keras with it"] = largest(to_keras(unbiased, biased)(x),
                                                         torch_side(unbiased, "LSTM", 1, False))

# A GRU's weights copied without reordering its gates: what "LSTM matches, GRU does not" meets.
model = randomised(stack("GRU"))
plain = torch.nn.GRU(2, 3, batch_first=True)
kernel, recurrent, bias = model.layers[1].get_weights()
with torch.no_grad():
    plain.weight_ih_l0.copy_(torch.from_numpy(kernel.T)); plain.weight_hh_l0.copy_(torch.from_numpy(recurrent.T))
    plain.bias_ih_l0.copy_(torch.from_numpy(bias[0])); plain.bias_hh_l0.copy_(torch.from_numpy(bias[1]))
found["GRU copied without reordering"] = largest(model(x), torch_side(plain, "GRU", 1, False))
found["GRU parameters, reset_after True and False"] = [
    keras.Sequential([keras.Input((5, 4)), L.GRU(5, reset_after=after)]).count_params() for after in (True, False)]

# A stateful layer: two eager calls carry; KerasStateful.from_keras carries the same.
inputs = keras.Input(batch_shape=(4, 5, 2))
stateful = randomised(keras.Model(inputs, L.LSTM(3, stateful=True, return_sequences=True)(inputs)))
mirror = KerasStateful.from_keras(stateful)
with torch.no_grad():
    ours = [mirror(torch.from_numpy(x))[0].numpy(), mirror(torch.from_numpy(x[::-1].copy()))[0].numpy()]
theirs = [numpy(stateful(x)), numpy(stateful(x[::-1].copy()))]
found["KerasStateful.from_keras"] = {"carried": largest(theirs, ours), "batch_size": mirror.batch_size,
                                     "stateful": mirror.stateful, "keras": str(mirror.keras),
                                     "backend": str(mirror.backend), "calls differ": largest([theirs[0]], [ours[1]])}

def refused(build, **kwargs):
    try:
        from_keras(build(), **kwargs)
        return "converted"
    except PortError as error:
        return str(error)

inputs = keras.Input((5, 2))
found["refused"] = {
    "GRU reset_after=False": refused(lambda: stack("GRU", reset_after=False)),
    "hard_sigmoid": refused(lambda: stack("LSTM", recurrent_activation="hard_sigmoid")),
    "LSTM relu": refused(lambda: stack("LSTM", activation="relu")),
    "dropout": refused(lambda: stack("LSTM", dropout=0.2)),
    "dropout, for inference": refused(lambda: stack("LSTM", dropout=0.2), for_inference=True),
    "masking": refused(lambda: keras.Sequential([keras.Input((5, 2)), L.Masking(0.0), L.LSTM(3)])),
    "merge_mode sum": refused(lambda: keras.Sequential([keras.Input((5, 2)),
                                                        L.Bidirectional(L.LSTM(3), merge_mode="sum")])),
    "Dense between": refused(lambda: keras.Sequential([keras.Input((5, 2)), L.LSTM(3, return_sequences=True),
                                                       L.Dense(3), L.LSTM(3)])),
    "two sizes": refused(lambda: keras.Sequential([keras.Input((5, 2)), L.LSTM(3, return_sequences=True),
                                                   L.LSTM(4)])),
    "unbuilt": refused(lambda: L.LSTM(3)),
    "go_backwards": refused(lambda: keras.Sequential([keras.Input((5, 2)), L.LSTM(3, go_backwards=True)])),
}
print(json.dumps(found))
"""

KERASES = [("3", "torch"), ("3", "tensorflow"), ("3", "jax"), ("2", "tensorflow")]


@pytest.fixture(scope="module", params=KERASES, ids=["keras 3, torch", "keras 3, tensorflow", "keras 3, jax",
                                                     "keras 2"])
def ported(request):
    keras, backend = request.param
    return keras, backend, run_probe(PORT_PROBE, backend, keras, backend)


# Each case, and the torch module it converts to: its class, num_layers, bidirectional, batch_first.
CONVERTED = {"LSTM": ["LSTM", 1, False, True], "GRU": ["GRU", 1, False, True], "SimpleRNN": ["RNN", 1, False, True],
             "SimpleRNN relu": ["RNN", 1, False, True], "LSTM without bias": ["LSTM", 1, False, True],
             "stacked LSTM": ["LSTM", 2, False, True], "Bidirectional LSTM": ["LSTM", 1, True, True],
             "stacked Bidirectional GRU": ["GRU", 2, True, True], "Bidirectional SimpleRNN": ["RNN", 1, True, True]}


@pytest.mark.parametrize("case", CONVERTED)
def test_converted_weights_compute_kerass_outputs_and_final_states(ported, case):
    seen = ported[2][case]
    assert seen["from_keras"] < TOLERANCE and seen["to_keras"] < TOLERANCE and seen["round trip"] < TOLERANCE, seen
    assert seen["module"] == CONVERTED[case]


def test_torch_without_biases_gives_keras_zero_biases(ported):
    assert ported[2]["torch without bias into Keras with it"] < TOLERANCE


def test_a_gru_copied_without_reordering_its_gates_differs(ported):
    assert ported[2]["GRU copied without reordering"] > 1e-3
    with_reset_after, without = ported[2]["GRU parameters, reset_after True and False"]
    assert with_reset_after - without == 3 * 5  # 3 x units more: the advice's "why more parameters"


def test_keras_stateful_from_keras_carries_as_the_stateful_layer_does(ported):
    keras, backend, found = ported
    seen = found["KerasStateful.from_keras"]
    assert seen["carried"] < TOLERANCE and seen["calls differ"] > 1e-3
    assert (seen["batch_size"], seen["stateful"], seen["keras"], seen["backend"]) == (4, True, keras, backend)


REFUSALS = {"GRU reset_after=False": "reset_after=True", "hard_sigmoid": "sigmoid only", "LSTM relu": "'tanh' only",
            "dropout": "for_inference=True", "masking": "take no mask", "merge_mode sum": "merge_mode='concat'",
            "Dense between": "Dense sits between", "two sizes": "two modules", "unbuilt": "not built",
            "go_backwards": "KerasStateful.from_keras"}


def test_what_torch_cannot_compute_is_refused_saying_why(ported):
    refused = ported[2]["refused"]
    for case, reason in REFUSALS.items():
        assert reason in refused[case], (case, refused[case])
    assert refused["dropout, for inference"] == "converted"


def test_the_readmes_porting_example_runs_on_real_keras():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## Porting to PyTorch"):readme.index("## Python API")]
    code = section[section.index("```python\n") + len("```python\n"):section.index("\n```", section.index("```python"))]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "torch"})
    assert done.returncode == 0, done.stderr[-2000:]
