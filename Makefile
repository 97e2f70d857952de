# merflow: `make demo` runs the whole pipeline on synthetic data; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
# Snakemake: use every core; the demo overlays a smaller model on params.yaml.
SNAKEMAKE := snakemake --cores all --show-failed-logs

.PHONY: install demo test lint bench dvc-yaml clean

install: $(VENV)/.installed

# torch==2.13.0 first: its CPU build lies on disk here; an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(SNAKEMAKE) --configfile workflow/configs/demo.yaml -- results/table2.csv results/report.html
	@echo
	@column -s, -t < results/table2.csv
	@echo
	@echo "Table 2: results/table2.csv   report: results/report.html   artifacts: data/   logs: logs/"

test: install
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

bench: install
	$(BIN)/python bench/evm.py

dvc-yaml: install
	$(BIN)/merflow dvc-yaml

clean:
	rm -rf data results logs .snakemake
