"""Mirrors that break one of Keras's rules on purpose: the checks must catch each."""

from lstm_inspect.mirror.module import KerasStateful


class LastIntoFirst(KerasStateful):
    """The classic misreading of Keras's carry, "the next batch continues the previous
    sample", built in: slot i's final state is handed to slot i+1."""

    def call(self, x, initial_state=None, mask=None):
        result = super().call(x, initial_state, mask)
        if self.stateful:
            for name, state in zip(self.state_names, self.states):
                setattr(self, name, state.roll(1, dims=1))
        return result
