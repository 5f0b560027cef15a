# Set up a virtual environment and run, test or benchmark lstm-inspect.
# TORCH_SPEC pins the torch build to install: torch==2.13.0 takes this machine's local CPU
# wheel in seconds. Elsewhere, override it, e.g. make test TORCH_SPEC='torch>=2.1'.
# ORACLES_SPEC pins the real Kerases the tests hold the tool to, at the versions its facts
# were measured on (lstm_inspect/schedule.py, FACTS).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
ORACLES_SPEC ?= keras==3.15.1 tensorflow-cpu==2.21.0 jax==0.10.2 jaxlib==0.10.2
TF_KERAS_SPEC ?= tf-keras==2.21.0
ARGS ?= --shape 1000,20,1 --batch 200

BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: setup run test bench readme golden mutants mutation clean

setup: $(TEST_STAMP)

# What running needs, nothing more. torch goes in first, pinned, so that the project's open
# range (torch>=2.1) is already satisfied and pip fetches no other build.
$(RUN_STAMP): pyproject.toml
	@echo "setting up $(VENV): a virtual environment, then pip, torch and lstm-inspect"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing $(TORCH_SPEC) (the CPU build: seconds from local disk here, a download elsewhere)"
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	@echo "installing lstm-inspect (editable) with click, rich, numpy and jinja2"
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# The test tools and oracles: Keras 3 with its TensorFlow and JAX backends, and tf-keras.
# tf-keras asks for the `tensorflow` distribution, whose module tensorflow-cpu already
# provides, so it goes in without its dependencies.
$(TEST_STAMP): $(RUN_STAMP)
	@echo "installing the test tools and the oracles, $(ORACLES_SPEC) (about a minute; 2 GB)"
	$(BIN)/python -m pip install --quiet -e '.[keras,test]' $(ORACLES_SPEC)
	@echo "installing $(TF_KERAS_SPEC) without its dependencies (tensorflow-cpu is its TensorFlow)"
	$(BIN)/python -m pip install --quiet --no-deps "$(TF_KERAS_SPEC)"
	touch $@

run: $(RUN_STAMP)
	$(BIN)/lstm-inspect $(ARGS)

# Lint, type-check and hold the architecture to its contract first (seconds), then the tests,
# real Keras on every backend included.
test: $(TEST_STAMP)
	@echo "linting, type-checking and holding the import contract, then the tests (a few minutes)"
	$(BIN)/ruff check lstm_inspect tests bench scripts
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

bench: $(TEST_STAMP)
	$(BIN)/python bench/bench.py

# Rewrite the golden output files (tests/golden) after a reviewed change of what users see.
golden: $(TEST_STAMP)
	$(BIN)/python -m pytest -q tests/test_golden.py --update-golden

# Plant known single-line bugs one at a time and check that a test catches each.
mutants: $(TEST_STAMP)
	$(BIN)/python scripts/plant_bugs.py

# Mutation testing with mutmut, resumable (mutants/ keeps the results), over the package or one
# module: make mutation MODULE=lstm_inspect/data/layout.py. Writes the scores to docs/mutation.md.
# MUTATION_WORKERS=1 make mutation runs one mutant at a time (the default: one per core).
MODULE ?=
mutation: $(TEST_STAMP)
	$(BIN)/python scripts/mutation.py $(MODULE)

# Rewrite the example outputs in README.md from the real command.
readme: $(TEST_STAMP)
	$(BIN)/python scripts/probe_example.py
	$(BIN)/python scripts/data_example.py
	$(BIN)/python scripts/update_readme.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis mutants
