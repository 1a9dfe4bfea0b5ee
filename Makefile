# Everything the project needs is installed here, into .venv; nothing by hand, no apt, no root.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Optional extras to install, e.g. `make test EXTRAS=test,train` (torch CPU, transformers: the training test).
EXTRAS ?= test
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),+,$(EXTRAS))

.PHONY: setup demo test test-fast lint fuzz bench bench-measures bench-plan train clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m etl.demo demo/

# ruff (format and lint) and mypy first: a formatting slip fails in a second, before the suite's minutes.
test: lint
	$(BIN)/python -m pytest -q tests --durations=15

# The tests that start no Dask cluster and take seconds each (markers in pyproject.toml): a minute.
test-fast: lint
	$(BIN)/python -m pytest -q tests -m "not cluster and not slow" --durations=10

lint: $(STAMP)
	$(BIN)/ruff format --check etl tests benchmarks examples
	$(BIN)/ruff check etl tests benchmarks examples
	$(BIN)/mypy etl

# The fuzzer's long random profile (`make test` runs its short seeded one): random tables through reading,
# checking and planning. FUZZ_PROFILE=long by default.
fuzz: $(STAMP)
	ETL_FUZZ_PROFILE=$${FUZZ_PROFILE:-long} $(BIN)/python -m pytest -q -p no:cacheprovider tests/ingest/test_fuzz.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench

# From the demo to a running training loop: a tiny wav2vec2, 20 CTC steps on CPU (docs/output.md, "Training").
train:
	$(MAKE) setup EXTRAS=test,train
	$(BIN)/python -m etl.demo demo/ --set output.arrow=true
	$(BIN)/python examples/train_wav2vec2.py demo/out --output-dir demo/wav2vec2-ctc --max-steps 20

clean:
	rm -rf $(VENV) demo/ .pytest_cache

# The per-clip quality measures' share of a worker's CPU (decode + cut + FLAC encode + measures).
bench-measures: $(STAMP)
	$(BIN)/python -m benchmarks.measures

bench-plan: $(STAMP)  # client memory of etl plan / etl build on 250k-4M-row tables (minutes; ~10 GB on the workers)
	$(BIN)/python -m benchmarks.plan
