# MooVitamix lakehouse. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAKEHOUSE := $(BIN)/lakehouse
export LAKEHOUSE_LAKE ?= $(CURDIR)/lake

.PHONY: help install lock test test-fast lint format lab mlflow demo ingest build train recommend \
        status report daily mock-api bench clean serve

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Every install takes the versions of constraints.txt (what the tests ran on); `make lock`
# renews it. One stamp per set of extras: `.installed-dev+lab` is `pip install -e '.[dev,lab]'`.
CONSTRAINTS := constraints.txt
comma := ,
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) setuptools wheel

$(VENV)/.installed-%: setup.cfg pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[$(subst +,$(comma),$*)]'
	touch $@

# The package alone, no extra: what `make demo` needs on a fresh clone (no test, lint or
# notebook tools to download first).
CORE_STAMP := $(VENV)/.installed-core
$(CORE_STAMP): setup.cfg pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

STAMP := $(VENV)/.installed-dev
LAB_STAMP := $(VENV)/.installed-dev+lab
MLFLOW_STAMP := $(VENV)/.installed-mlflow+mlflow-ui
# The tests need every extra but the MLflow UI: Spark, the notebooks' widgets, MLflow.
TEST_STAMP := $(VENV)/.installed-dev+lab+mlflow+spark

install: $(STAMP) ## Create .venv and install the package with dev tools (versions of constraints.txt)

lock: ## Re-resolve every requirement and extra of setup.cfg into constraints.txt (~3 min)
	$(PYTHON) scripts/lock.py

# Test processes (pytest-xdist): auto = one per CPU; TEST_WORKERS=0 runs in this process.
# loadgroup: tests are spread one by one, except that one worker runs all the Spark ones.
TEST_WORKERS ?= auto
PYTEST_XDIST = -n $(TEST_WORKERS) --dist loadgroup
# Where PYTHONDONTWRITEBYTECODE is set (this machine, some CI images), every test process
# (each xdist worker, each CLI subprocess a test starts) compiled the package and the tests
# from source, and pytest rewrote the asserts of ~460 modules (its plugins' too) afresh:
# ~4 s of CPU per worker, every run. The test targets let Python keep its bytecode
# (__pycache__/, ignored by git, removed by `make clean`).
PYTEST = PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

test: $(TEST_STAMP) ## Run every test, slow, notebook and Spark ones included (installs every extra; needs Java 17)
	$(PYTEST) $(PYTEST_XDIST)

test-fast: $(TEST_STAMP) ## The inner loop (under a minute): every test but the slow, notebook and Spark ones
	$(PYTEST) $(PYTEST_XDIST) -m "not slow and not notebook and not spark"

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check .

format: $(STAMP) ## Fix what ruff can fix
	$(BIN)/ruff check --fix .

# Root (containers, some VMs) must say so to Jupyter; add e.g. LAB_ARGS="--no-browser --port 8890".
LAB_ARGS ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(LAB_STAMP) ## Open JupyterLab on notebooks/ (installs lakehouse[lab]; the lake is $$LAKEHOUSE_LAKE)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

# MLflow's own UI on the lake's store (LAKEHOUSE_MLFLOW_TRACKING_URI, default the lake's
# mlflow.db); telemetry off, nothing leaves the machine.
MLFLOW_URI ?= $(or $(LAKEHOUSE_MLFLOW_TRACKING_URI),sqlite:///$(LAKEHOUSE_LAKE)/mlflow.db)
MLFLOW_ARGS ?= --host 127.0.0.1 --port 5000

mlflow: $(MLFLOW_STAMP) ## Open the MLflow UI on the lake's tracking store (installs mlflow for its UI)
	MLFLOW_DISABLE_TELEMETRY=true $(BIN)/mlflow ui --backend-store-uri '$(MLFLOW_URI)' $(MLFLOW_ARGS)

demo: $(CORE_STAMP) ## Run the whole job end to end on the bundled mock API (several days; installs the package alone)
	$(LAKEHOUSE) demo

mock-api: $(STAMP) ## Serve the bundled MooVitamix API on 127.0.0.1:8000
	$(LAKEHOUSE) mock-api --port 8000 --seed 42

ingest: $(STAMP) ## Ingest the three endpoints of $$LAKEHOUSE_API_URL into raw
	$(LAKEHOUSE) ingest

build: $(STAMP) ## Build the standardized and consumption zones from raw
	$(LAKEHOUSE) build

train: $(STAMP) ## Select a recommender (popularity, ALS, LightFM), refit it, promote it if it beats the champion
	$(LAKEHOUSE) train

recommend: $(STAMP) ## Score every user's top tracks with the champion model
	$(LAKEHOUSE) recommend

status: $(STAMP) ## Show pipeline health (exit 1 when unhealthy)
	$(LAKEHOUSE) status

report: $(STAMP) ## Write the HTML monitoring report
	$(LAKEHOUSE) report

serve: $(STAMP) ## Serve the recommendations on 127.0.0.1:8080 (GET /recommendations/{user_id}, /health)
	$(LAKEHOUSE) serve --port 8080

daily: $(STAMP) ## The scheduled job (lakehouse daily, logged, one at a time): ingest .. status
	scripts/daily.sh

bench: $(STAMP) ## Run every benchmark script (minutes; results go to BENCHMARKS.md by hand)
	@for s in scripts/bench_*.py; do echo "== $$s"; $(BIN)/python $$s || exit 1; done

clean: ## Remove caches (never the lake's data)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
