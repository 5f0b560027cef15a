"""The oracle's own failure, told apart from what Keras raises inside a run (that is observed)."""


class OracleError(RuntimeError):
    """The process running real Keras failed (not Keras raising inside the run: that is observed)."""
