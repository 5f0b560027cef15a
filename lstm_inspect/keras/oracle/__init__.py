"""Real Keras as the oracle: run a setup through Keras 3 and read each slot's start from
Keras's own tensors. Needs the `keras` extra (pip install 'lstm-inspect[keras]').

The Keras model gets the mirror's weights and inputs, is driven by real `fit` (learning
rate 0, so the weights stay equal), validation and `predict`, in the mirror's sample
order. Stateful layers are read through `layer.states` in callbacks before and after
every batch; stateless layers hold no state variables, so the initial state Keras builds
for each call is recorded where the layer hands it to its recurrent loop.

`compare_with_keras` puts that observation next to the schedule and the mirror, step by
step: the schedule's starts against Keras's, the mirror's tensors against Keras's.

The jobs, one module each: `model` (the Keras model and its weights), `session` (a workflow run
on it), `reading` (the states read during the run, and the user's reset callback), `runs` (what
Keras did, as data), `process` (a process per Keras and backend), `compare` (against the schedule
and the mirror). Keras is imported inside the functions that need it: this package imports fine
without it.
"""
