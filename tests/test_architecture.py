"""What the architecture contract (lint-imports, in `make test`) cannot see: functions that grow
past what reads at once, and what importing the package really loads."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lstm_inspect"
MAX_FUNCTION_LINES = 60


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_importing_the_package_and_its_command_line_loads_no_heavy_library():
    # The command line answers --help, --version and --dry-run without torch or Keras; the
    # package itself loads not even click, rich or numpy.
    code = ("import sys, lstm_inspect; light = set(sys.modules); import lstm_inspect.cli; "
            "print(sorted({'torch', 'keras', 'tf_keras', 'tensorflow', 'jax'} & set(sys.modules)), "
            "sorted({'click', 'rich', 'numpy'} & light))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "[]"]
