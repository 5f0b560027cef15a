"""The sentences judged from a run: the verdict and warnings, the claims people make, the advice,
and the fix for a setup Keras refuses."""
