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

.PHONY: setup kafka-up kafka-down kafka-status test test-real lint demo compile clean-compiled \
	test-compiled test-model-long fuzz

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
