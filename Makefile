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
	@# opencv-contrib-python-headless (cv2.optflow, the flow stage) replaces the plain build; both write cv2/,
	@# so a venv made before the switch drops the plain one first
	$(BIN)/pip uninstall --quiet --yes opencv-python-headless 2>/dev/null || true
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: install
	$(SNAKEMAKE) --configfile workflow/configs/demo.yaml -- results/table2.csv results/report.html
	@echo
	@$(BIN)/merflow table results/table2.csv
	@echo
	@echo "Table 2: results/table2.csv   report: results/report.html (figures: results/figures/)   artifacts: data/   logs: logs/"
	@echo "Predict on a new video: .venv/bin/merflow predict VIDEO_OR_FRAME_DIR --model results/casme2/kfold5/rcnn/seed0/fold0/model.pt"

# The numerics-sensitive tests run again on other CPU kernel paths than this machine's best: oneDNN
# capped at AVX2, then at SSE4.1 with PyTorch's and OpenCV's own vector kernels lowered too, so a
# regression on any of them shows up whatever CPU runs the tests (docs: reproducibility).
NUMERICS_TESTS := tests/test_train.py tests/test_evm.py tests/test_evm_torch.py tests/test_jitter.py \
	tests/test_predict.py tests/test_model.py
KERNEL_PATHS := "ONEDNN_MAX_CPU_ISA=AVX2" \
	"ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default OPENCV_CPU_DISABLE=AVX2,FMA3"

# Test files run on all cores, a file's tests on one (they share its module fixtures, e.g. one tiny run).
PYTEST := $(BIN)/pytest -q -n auto --dist loadfile

test: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	$(PYTEST)
	@for path in $(KERNEL_PATHS); do echo "numerics tests with $$path"; \
		env $$path $(PYTEST) -p no:cacheprovider $(NUMERICS_TESTS) || exit 1; done

lint: install
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint

# The EVM peers live in their own venv, never in merflow's. pyeulervid needs Python >= 3.12: the
# first one found is used (set BENCH_PYTHON to choose); vidmag is built without its CUDA extension.
# BENCH_ARGS goes to bench/evm.py, e.g. make bench BENCH_ARGS='--repeats 5 --json /tmp/evm.json'.
BENCH_VENV := .venv-bench
BENCH_PYTHON ?= $(shell for p in python3.13 python3.12 $(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3); \
	do $$p -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null && echo $$p && break; done)

bench: install $(BENCH_VENV)/.installed
	$(BIN)/python bench/evm.py $(BENCH_ARGS)

# The Table 2 baselines' feature extractors per clip, and LBP-TOP against scikit-image (bench/README.md).
# Needs only merflow's venv; pass e.g. BENCH_BASELINES_ARGS='--aligned data/casme2/aligned.h5'.
.PHONY: bench-baselines
bench-baselines: install
	$(BIN)/python bench/baselines.py $(BENCH_BASELINES_ARGS)

$(BENCH_VENV)/.installed: bench/requirements-peers.txt
	@test -n "$(BENCH_PYTHON)" || { echo "make bench: no Python >= 3.12 found for pyeulervid; set BENCH_PYTHON"; exit 1; }
	$(BENCH_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -r bench/requirements-peers.txt
	CUDACXX=/nonexistent $(BENCH_VENV)/bin/pip install --quiet --no-deps vidmag==0.2.0
	touch $@

dvc-yaml: install
	$(BIN)/merflow dvc-yaml

clean:
	rm -rf data results logs .snakemake
