# wxsurvey — the two commands of SPEC.md (`make run`, `make test`) and their helpers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= auto

.PHONY: install run test lint bench chaos cluster-test clean axe

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/wxsurvey init
	$(BIN)/wxsurvey demo
	exec $(BIN)/wxsurvey run

test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check app handlers qr survey_templates tests worker.py bench deploy chaos
	$(BIN)/ruff format --check app handlers qr survey_templates tests worker.py bench deploy chaos
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# axe-core for the accessibility checks of the browser tests (tests/a11y): from npm, at test time only.
axe: tests/a11y/node_modules/axe-core/axe.min.js

tests/a11y/node_modules/axe-core/axe.min.js: tests/a11y/package.json tests/a11y/package-lock.json
	cd tests/a11y && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

chaos: $(STAMP)
	$(BIN)/python -m chaos $(CHAOS_ARGS)

# The multi-node test (tests/cluster/): root, ip netns, nginx, redis-server, PostgreSQL binaries.
# CLUSTER_SECONDS sets the length of the load (45 s; .ci/run uses a short form).
CLUSTER_SECONDS ?= 45
cluster-test: $(STAMP)
	WXSURVEY_TEST_DATACENTRE=1 WXSURVEY_TEST_DATACENTRE_SECONDS=$(CLUSTER_SECONDS) \
		$(BIN)/python -m pytest -p no:xdist -s -q -rs tests/cluster

clean:
	rm -rf $(VENV) var .pytest_cache chaos-results
