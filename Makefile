# Two entry points on a fresh machine: `make demo` and `make test`.
# Each installs what it needs (system packages, venv, Maven artifacts) and starts the local stack.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STACK  := deploy/local/stack.sh
STAMP  := $(VENV)/.installed

.PHONY: demo test unit integration lint contracts bench format up down status prereqs tools venv clean postgres jaeger image wheel registry-gateway keycloak browser

prereqs:
	@bash deploy/local/prereqs.sh

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,faust,postgres,otel]'
	@# Every package under framework/ and services/ importable, including ones created later
	@# (`choreograph new service`), without reinstalling.
	$(PY) -c 'import pathlib, site; pathlib.Path(site.getsitepackages()[0], "choreograph-packages.pth").write_text("".join(str(pathlib.Path(d).resolve()) + "\n" for d in ("framework", "services")))'
	@touch $(STAMP)

venv: $(STAMP)

up: prereqs
	@bash $(STACK) up

down:
	@bash $(STACK) down

# PostgreSQL for the saga tracker's shared visibility store, and Jaeger (an OTLP receiver) for
# its OpenTelemetry export; the tests use both.
postgres: prereqs
	@bash $(STACK) start postgres

jaeger:
	@bash $(STACK) start jaeger

# Headless Chromium and its driver, for the console's browser tests.
browser:
	@bash deploy/local/browser.sh

# The OpenID Connect provider the saga tracker's console signs in with (Keycloak, demo users).
keycloak: prereqs
	@bash $(STACK) start keycloak

# The registry behind an authenticating gateway, for the tests of registry credentials.
registry-gateway: up
	@bash $(STACK) start registry-gateway

# The OCI image of the project (no container engine): see deploy/image/build.sh.
image: venv
	@bash deploy/image/build.sh

# The wheel users install (`pip install choreograph`), for the tests that adopt it from an empty
# directory as a team would.
wheel: venv
	@rm -rf dist/wheel
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir dist/wheel .

status:
	@bash $(STACK) status

# Chart validation tools (helm, promtool), installed when missing.
tools:
	@bash deploy/helm/tools.sh

# The reference choreography: four team services and the saga tracker on the local stack.
demo: venv up
	$(PY) -m choreograph_examples.demo

test: venv up postgres jaeger registry-gateway keycloak browser tools image wheel
	$(PY) -m pytest

unit: venv
	$(PY) -m pytest tests/unit

integration: venv up postgres jaeger registry-gateway keycloak browser tools image wheel
	$(PY) -m pytest tests/integration tests/reliability tests/interop

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Contract gate: policy lint, generated models in sync, process definitions and policies against
# the contracts, CODEOWNERS in step with the owners, compatibility and released process versions
# against git history
# (CONTRACTS_BASE, default the previous commit; CI for pull requests passes the target branch).
contracts: venv
	$(VENV)/bin/choreograph schemas lint
	$(VENV)/bin/choreograph schemas codegen --check
	$(VENV)/bin/choreograph processes lint
	$(VENV)/bin/choreograph policies lint
	$(VENV)/bin/choreograph check choreograph_examples.orders.service choreograph_examples.payments.service \
		choreograph_examples.inventory.service
	$(VENV)/bin/choreograph governance codeowners --check
	@base=$${CONTRACTS_BASE:-$$(git rev-parse -q --verify HEAD~1 || true)}; \
	if [ -n "$$base" ]; then $(VENV)/bin/choreograph schemas check --against "$$base" && \
	$(VENV)/bin/choreograph processes check --against "$$base"; \
	else echo "contracts: no earlier commit to check against"; fi

# Peers pin their own client versions: the benchmark gets a venv of its own.
bench: up
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install --quiet --upgrade pip
	.venv-bench/bin/python -m pip install --quiet -e '.[bench]'
	.venv-bench/bin/python -m bench
	.venv-bench/bin/python -m bench.hot_path
	.venv-bench/bin/python -m bench.restore
	.venv-bench/bin/python -m bench.tracker

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .


clean:
	rm -rf $(VENV) .venv-bench build *.egg-info .pytest_cache .mypy_cache .ruff_cache
