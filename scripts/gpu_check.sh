#!/usr/bin/env bash
# The GPU check, for a lent accelerator: one short run from a checkout of this repository.
# The device machine has torch (CUDA), click, rich, numpy, pytest and hypothesis but no
# package registry and no Keras, so nothing is downloaded: the package runs from the tree.
# It runs the tests marked cuda, then bench parts (a) on the CPU and (e) on the GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python3}

"$PYTHON" - <<'PY'
import torch
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
PY
status=0
"$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py || status=1
"$PYTHON" -m lstm_inspect --shape 1000,20,1 --batch 200 --stateful --no-shuffle --device cuda --no-evidence \
  --max-rows 6 || status=1
"$PYTHON" bench/bench.py --only a,e || status=1
exit $status
