"""The mirror: a real PyTorch RNN whose state is handled by hand the way Keras handles it.

`module.KerasStateful` applies Keras's state rules by itself; `run.run_mirror` drives it like
Keras's fit, evaluate and predict loops; `inputs` makes its data and weights from the seed.
Imports torch: only what needs a run loads it."""
