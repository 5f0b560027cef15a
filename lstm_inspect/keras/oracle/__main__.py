"""`python -m lstm_inspect.keras.oracle FILE`: run the specs on stdin, write their runs to FILE."""

import sys

from .process import serve

serve(sys.argv[1])
