# Set up a virtual environment and run, test or benchmark lstm-inspect.
# TORCH_SPEC pins the torch build to install: torch==2.13.0 takes this machine's local CPU
# wheel in seconds. Elsewhere, override it, e.g. make test TORCH_SPEC='torch>=2.1'.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
ARGS ?= --shape 1000,20,1 --batch 200

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test bench readme golden mutants clean

setup: $(STAMP)

# torch goes in first, pinned, so that the project's open range (torch>=2.1) is already
# satisfied and pip fetches no other build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e '.[keras,test]'
	touch $@

run: $(STAMP)
	$(BIN)/lstm-inspect $(ARGS)

# Lint and type-check first (seconds), then the tests, real Keras included.
test: $(STAMP)
	$(BIN)/ruff check lstm_inspect tests bench scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/bench.py

# Rewrite the golden output files (tests/golden) after a reviewed change of what users see.
golden: $(STAMP)
	$(BIN)/python -m pytest -q tests/test_golden.py --update-golden

# Plant known single-line bugs one at a time and check that a test catches each.
mutants: $(STAMP)
	$(BIN)/python scripts/plant_bugs.py

# Rewrite the example outputs in README.md from the real command.
readme: $(STAMP)
	$(BIN)/python scripts/update_readme.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
