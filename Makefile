# The project's commands (see README.md):
#   make demo   set up, start Kafka and run `syncline demo`
#   make test   run the whole test suite, integration tests against a real Kafka broker
# Kafka is left running between runs (it starts in seconds when warm); `make kafka-down`
# stops it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KAFKA := deploy/kafka/kafka.sh
KAFKA_PORT := $(or $(SYNCLINE_KAFKA_PORT),19092)
PYTEST_ARGS ?=

.PHONY: setup kafka-up kafka-down kafka-status test test-real lint docs demo compile \
	clean-compiled test-compiled test-model-long test-helm test-container images chaos fuzz \
	bench

## setup: create .venv if missing and install syncline with its dev tools into it
setup: $(VENV)/.installed

# Reinstalled only when pyproject.toml changes; the package itself is installed editable.
$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

## kafka-up: start the local single-node Kafka broker (fetched with mvn the first time)
kafka-up:
	@$(KAFKA) up

## kafka-down: stop it
kafka-down:
	@$(KAFKA) down

kafka-status:
	@$(KAFKA) status

## test: the whole suite; with SYNCLINE_TEST_KAFKA=host:port it uses that broker instead
test: setup $(if $(SYNCLINE_TEST_KAFKA),,kafka-up)
	SYNCLINE_TEST_KAFKA=$(or $(SYNCLINE_TEST_KAFKA),127.0.0.1:$(KAFKA_PORT)) $(BIN)/pytest $(PYTEST_ARGS)

## test-real: install and start real open-source systems (NocoDB, Keycloak) with
## deploy/real-systems/ and sync them with examples/real-nocodb-keycloak.yaml (a few minutes
## the first time; see docs/REAL-SYSTEMS.md). Not part of `make test`.
test-real: setup $(if $(SYNCLINE_TEST_KAFKA),,kafka-up)
	deploy/real-systems/nocodb.sh install
	deploy/real-systems/keycloak.sh install
	SYNCLINE_TEST_KAFKA=$(or $(SYNCLINE_TEST_KAFKA),127.0.0.1:$(KAFKA_PORT)) $(BIN)/pytest -m real -p no:randomly tests/real $(PYTEST_ARGS)

## images: the worker's and Kafka's images, built here from Debian packages (installs Docker,
## mmdebstrap and Compose, starts dockerd; deploy/docker/build.sh; see docs/DEPLOY.md)
images:
	@deploy/docker/build.sh

## test-container: build the images and run them: sync through the broker, docker stop, kill -9
## and restart, two workers, the compose demo up and down (skipped where Docker cannot start)
test-container: setup
	$(BIN)/pytest -m container -p no:randomly tests/container $(PYTEST_ARGS)

## compile: the fast build of the fold: conflict/ compiled by mypyc, in place (needs a C
## compiler); clean-compiled goes back to the interpreted fold
compile: setup
	@tools/compile_fold.sh

clean-compiled:
	@tools/compile_fold.sh clean

## test-compiled: compile, run the fold's tests against the compiled modules, clean up
test-compiled: setup
	@tools/compile_fold.sh
	SYNCLINE_EXPECT_COMPILED=1 $(BIN)/pytest -p no:cacheprovider tests/conflict; \
		status=$$?; tools/compile_fold.sh clean; exit $$status

## test-model-long: the fold against its model over 100,000 random schedules of each kind
## (unique values, and values from small sets); MODEL_SCHEDULES=N for another count
MODEL_SCHEDULES ?= 100000
test-model-long: setup
	SYNCLINE_MODEL_REPEATED=1 SYNCLINE_HYPOTHESIS_EXAMPLES=$(MODEL_SCHEDULES) \
		$(BIN)/pytest -p no:cacheprovider -m slow \
		tests/conflict/test_model.py

## docs: regenerate what is generated from the code: docs/CONFIG.md (the configuration
## reference) and docs/schemas/ (the events' JSON Schemas); tests fail while either is stale
docs: setup
	$(BIN)/syncline config reference > docs/CONFIG.md
	$(BIN)/syncline schemas --out docs/schemas

## test-helm: the Helm chart (deploy/helm/syncline): build helm and kubernetes-validate into
## .tools/ the first time (deploy/helm/tools.sh: helm from the Go module proxy, about 18
## minutes cold on a busy 2-core machine), then helm lint, helm template with the default
## values and each file in deploy/helm/syncline/ci/, kubernetes-validate of every manifest
## (deploy/helm/check.sh), and the chart's tests (tests/deploy/test_helm_chart.py)
test-helm: setup
	deploy/helm/check.sh
	SYNCLINE_REQUIRE_HELM=1 $(BIN)/pytest -p no:cacheprovider -m helm tests/deploy/test_helm_chart.py

## chaos: the chaos run (python -m chaos; docs/RELIABILITY.md): 10,000 edits across three
## simulated systems while workers and the broker are SIGKILLed and the systems fail; exits 1
## on any violation. CHAOS_ARGS for the seed and sizes, e.g. CHAOS_ARGS="--seed 7 --edits 2000"
CHAOS_ARGS ?=
chaos: setup kafka-up
	SYNCLINE_KAFKA_PORT=$(KAFKA_PORT) $(BIN)/python -m chaos --kafka-port $(KAFKA_PORT) $(CHAOS_ARGS)

## lint: ruff and mypy (strict), as configured in pyproject.toml
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

## demo: Kafka, a simulated CRM and helpdesk, a worker, and a short story (syncline demo)
demo: setup
	$(BIN)/syncline demo

## fuzz: the hostile-input tests (bytes on every input topic, API answers, webhooks, config
## files, the review page) with many more examples; FUZZ_EXAMPLES=N for another count.
## `make test` runs a small number of each. Counts are printed under "hostile inputs".
FUZZ_EXAMPLES ?= 1000
FUZZ_TESTS := tests/streams/test_hostile_events.py tests/daemon/lane/test_hostile_intents.py tests/daemon/test_lane_hostile_intents.py \
	tests/daemon/connector/test_rest_hostile.py tests/daemon/test_hostile_webhooks.py \
	tests/daemon/test_hostile_config.py tests/daemon/review/test_hostile.py
fuzz: setup $(if $(SYNCLINE_TEST_KAFKA),,kafka-up)
	SYNCLINE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) \
		SYNCLINE_TEST_KAFKA=$(or $(SYNCLINE_TEST_KAFKA),127.0.0.1:$(KAFKA_PORT)) \
		$(BIN)/pytest -p no:cacheprovider -p no:randomly --timeout 3600 $(FUZZ_TESTS) $(PYTEST_ARGS)

## bench: every figure of docs/BENCHMARKS.md in one run (benchmarks/report.py), written into
## its generated section with the machine and the load; BENCH_SIZE=small (minutes, a check
## of the harness) or full (100 edits/s, 1,000,000 records: an hour or more, quiet machine)
BENCH_SIZE ?= small
bench: setup $(if $(SYNCLINE_TEST_KAFKA),,kafka-up)
	$(BIN)/python -m pip install --quiet -e ".[bench]" || echo "bench: no matplotlib, no plot"
	$(BIN)/python -m benchmarks.report --size $(BENCH_SIZE) \
		--bootstrap $(or $(SYNCLINE_TEST_KAFKA),127.0.0.1:$(KAFKA_PORT))
