# The project's commands. `make install` then `make test` is all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
FRAMEWORKS ?= requirements/frameworks-cpu.txt
# MNIST: a local copy to install from (the shared folder beside the project here);
# without it, `make install` downloads MNIST from the public mirrors instead.
MNIST_SOURCE ?= ../shared/data/mnist
DATA_DIR ?= $(CURDIR)/.data
BIN := $(VENV)/bin
export ARCHSPEC_DATA_DIR := $(DATA_DIR)
# `make test` runs the suite in this many pytest-xdist workers (one per core here; each computes
# on one thread, see tests/conftest.py).
TEST_WORKERS ?= 2

.PHONY: install test lint demo bench bench-distributed bench-validate parity-report export-report gpu-check accuracy clean

install:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r $(FRAMEWORKS) -r requirements/export.txt -e ".[test,lint]"
	if [ -d "$(MNIST_SOURCE)" ]; then \
		$(BIN)/archspec data install mnist "$(MNIST_SOURCE)" --dir "$(DATA_DIR)/mnist"; \
	else \
		$(BIN)/archspec data fetch mnist --dir "$(DATA_DIR)/mnist"; \
	fi

test:
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

# Lint (ruff), format check, types (mypy) and the import contracts (import-linter).
lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

demo:
	$(BIN)/archspec compare configs/mnist_mlp.yaml --out runs/demo

bench:
	$(BIN)/python benchmarks/bench_training.py --out benchmarks/results.md

bench-distributed:
	$(BIN)/python benchmarks/bench_distributed.py --out benchmarks/distributed.md

bench-validate:
	$(BIN)/python benchmarks/bench_validate.py

parity-report:
	$(BIN)/python benchmarks/parity_report.py

# Every config exported to every format (weights read through each backend), each file verified
# in its own runtime; writes benchmarks/export_report.md (the README's *Exporting* table).
export-report:
	$(BIN)/python benchmarks/export_report.py --out benchmarks/export_report.md

# On a CUDA machine (install with FRAMEWORKS=requirements/frameworks-gpu.txt): float64 and float32
# parity and speed of every config on every backend, under 10 minutes; see the README's *Devices*.
gpu-check:
	$(BIN)/python benchmarks/gpu_check.py --out benchmarks/gpu_check.md

# Full training runs of the example configs on every installed backend (the README's accuracy table).
accuracy:
	for config in keras_example torch_example mnist_mlp mnist_cnn mnist_lstm mnist_tcn mnist_transformer sequences_masked_lstm sequences_masked_transformer; do \
		$(BIN)/archspec compare configs/$$config.yaml --quiet --out runs/accuracy/$$config || exit 1; \
	done

clean:
	rm -rf $(VENV) .data runs
