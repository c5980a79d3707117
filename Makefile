# The README's two commands: `make demo` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test quarantine lint typecheck unit bench bench-deps bench-all bench-failover bench-scaling chaos clean system-deps compose-demo fuzz

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Set up and run the demo: 3 nodes on 127.0.0.1:8001-8003 (+ HAProxy on :8000 if installed).
demo: $(STAMP)
	$(BIN)/python -m demo_app

## Set up and run everything CI runs: lint, type check, the whole test suite, and the
## docker-compose demo in a throwaway Docker engine (root only: it starts the engine).
test: $(STAMP) system-deps lint typecheck unit compose-demo

compose-demo:
	@if [ "$$(id -u)" = 0 ]; then bash scripts/compose-demo.sh; \
	else echo "compose-demo: not run: it needs root to start a Docker engine"; fi

system-deps: $(STAMP)
	bash scripts/system-deps.sh
	bash scripts/browser-deps.sh $(VENV)

lint: $(STAMP)
	$(BIN)/ruff check clustersession tests bench demo_app
	$(BIN)/ruff format --check clustersession tests bench demo_app

typecheck: $(STAMP)
	$(BIN)/mypy --strict clustersession

unit: $(STAMP) system-deps
	$(BIN)/python -m pytest -m "not quarantine"

## Tests known to fail sometimes (cause not found yet), kept runnable until fixed.
## None today: pytest's exit 5 (nothing collected) then counts as success.
quarantine: $(STAMP) system-deps
	$(BIN)/python -m pytest -m quarantine || [ $$? -eq 5 ]

## Fuzz every decoder a peer or a client reaches, long: FUZZ_EXAMPLES examples per
## property, random (CI runs a few derandomized ones). A failure is kept in .hypothesis/.
FUZZ_EXAMPLES ?= 20000
fuzz: $(STAMP)
	FUZZ_PROFILE=long FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/fuzz -q

## Session overhead benchmark, ASGI and WSGI rows (needs wrk: make bench-deps).
bench: $(STAMP)
	$(BIN)/python -m bench.overhead

## What the benchmarks need beyond the tests: wrk, redis-server (the starsessions row).
bench-deps: $(STAMP)
	bash scripts/system-deps.sh --bench

## Every benchmark in one go (~15 min): bench/RESULTS.md and its plots.
bench-all: $(STAMP) bench-deps
	$(BIN)/python -m bench.run_all

## Failover after SIGKILL of a node, 3 nodes behind HAProxy (~10 s): bench/README.md.
bench-failover: $(STAMP)
	bash scripts/system-deps.sh
	$(BIN)/python -m bench.failover

## The scaling curve, delta vs backup on 2, 3, 5, 8 loopback nodes (bench/README.md): ~10 minutes.
bench-scaling: $(STAMP)
	$(BIN)/python -m bench.scaling --json bench/scaling-figures.json

## The chaos runs and their figures (docs/reliability.md): about 10 minutes, needs root.
chaos: $(STAMP) system-deps
	$(BIN)/python -m bench.chaos --json chaos-figures.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
