# event-driven: every target says what it does; `make help` lists them.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
NODE_INSTALLED := node_modules/.installed
# Where the stacks of run, acceptance, bench and soak keep the services' state: sqlite (a file per
# service) or postgres (a PostgreSQL server the stack starts; Debian's package is installed if none).
STORE ?= sqlite
export STORE
CODEGEN_FLAGS := --input-file-type jsonschema --output-model-type dataclasses.dataclass \
	--disable-timestamp --frozen-dataclasses --enum-field-as-literal all --use-schema-description --use-field-description \
	--formatters builtin --target-python-version 3.11

.PHONY: help install generate contracts-check contracts-release docs lint unit acceptance multihost cluster netfaults spec test run tail dlq redrive rebuild kafka \
	clean lock up down logs compose-test browser-test bench bench-smoke soak prometheus iptables alerts

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml requirements.txt constraints.txt
	@PYTHON=$(PYTHON) INSTALLER=$(INSTALLER) devstack/environment.sh
	@touch $@

$(NODE_INSTALLED): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --prefer-offline
	touch $@

install: $(INSTALLED) ## Create .venv with the pinned dependencies (by uv, or pip: INSTALLER=uv|pip)

generate: $(INSTALLED) ## Generate the dataclasses and the AsyncAPI document in generated/ from contracts/
	rm -rf generated && mkdir generated
	echo '"""Generated from contracts/ by `make generate`; never edit by hand."""' > generated/__init__.py
	for schema in contracts/*.json; do \
	  $(BIN)/datamodel-codegen --input $$schema --output generated/$$(basename $$schema .json).py $(CODEGEN_FLAGS); \
	done
	$(BIN)/python -m tools.asyncapi generate generated/asyncapi.yaml

DOCS_SRC := build/docs-src
# The site from README.md, docs/ and the files they link to (tools/site.py lays them out), offline.
# Not --quiet: it hides the warnings that --strict turns into errors.

docs: $(INSTALLED) $(NODE_INSTALLED) ## Build the documentation site into build/site, offline; --strict: every link and anchor must resolve
	$(BIN)/python -m tools.site $(DOCS_SRC)
	$(BIN)/python -m tools.asyncapi html $(DOCS_SRC)/asyncapi.html
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "docs: the site is in build/site: file://$(CURDIR)/build/site/index.html"

contracts-check: $(INSTALLED) ## Check every contract is compatible with each of its released versions
	$(BIN)/python -m tools.compatibility check

contracts-release: $(INSTALLED) ## Freeze each changed contract as its next version in contracts/<name>/
	$(BIN)/python -m tools.compatibility release

lint: $(INSTALLED) ## Check style with ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

unit: $(INSTALLED) $(NODE_INSTALLED) iptables ## Run the unit tests (no broker needed)
	$(BIN)/pytest -q tests

SPEC := .run/spec
REPORTS := -f html-pretty -o $(SPEC)/index.html -f pretty --junit --junit-directory $(SPEC)/junit

acceptance: $(INSTALLED) prometheus ## Run the behave features against a fresh local stack (or ORDERS_URL's; STORE=postgres); writes the spec report
	$(BIN)/python -m devstack fetch
	rm -rf $(SPEC) && mkdir -p $(SPEC)
	status=0; $(BIN)/python -m behave $(REPORTS) features | tee .run/acceptance.log || status=$$?; \
	sed -n 's/^\([0-9]*\) scenarios passed, /acceptance: \1 passed, /p' .run/acceptance.log; \
	echo "Living spec: $(CURDIR)/$(SPEC)/index.html (JUnit XML in $(SPEC)/junit/)"; exit $$status

multihost: $(INSTALLED) prometheus ## The @multihost features: replicas that share only PostgreSQL, an empty host, two orders hosts, the database killed and frozen
	$(BIN)/python -m devstack fetch
	mkdir -p .run
	STORE=postgres $(BIN)/python -m behave --tags=@multihost features

cluster: $(INSTALLED) prometheus ## The @brokers3 feature: three Kafka brokers, the leading one killed during a burst of orders
	$(BIN)/python -m devstack fetch
	mkdir -p .run
	BROKERS=3 $(BIN)/python -m behave --tags=@brokers3 features

NETWORK ?= 0
# As root: the hosts are network namespaces on bridge edbr<n>, with 10.231.<n>.0/24 and an iptables chain
# of their own; the trap removes all three whatever ends the run (the stack does too when it stops).
netfaults: $(INSTALLED) iptables ## Real hosts' faults (root, ~15 min): each process on a host of its own on 10.231.NETWORK.0/24, paused, cut off, cut from the database or Kafka, during bursts of orders
	@[ "$$(id -u)" = 0 ] || { echo "netfaults: network namespaces and iptables need root"; exit 1; }
	$(BIN)/python -m devstack fetch
	mkdir -p .run
	trap '$(BIN)/python -m devstack.hosts remove $(NETWORK)' EXIT; \
	NETWORK=$(NETWORK) STORE=postgres BROKERS=3 $(BIN)/python -m behave --no-capture --tags=@netfaults features

spec: acceptance ## Run the features and write the living spec: one HTML page with each scenario's events

browser-test: $(INSTALLED) $(NODE_INSTALLED) prometheus ## Follow an order placed on the order page in headless Chromium (installs it if missing)
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "browser-test: installing Debian's chromium and chromium-driver"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	fi
	$(BIN)/python -m devstack fetch
	mkdir -p .run
	$(BIN)/python -m behave --tags=@browser features
	$(BIN)/python -m pytest -q tests/test_asyncapi.py  # its page test needs the chromium installed above

test: contracts-check lint unit docs alerts acceptance multihost cluster bench-smoke ## Run everything: contract gate, lint, unit tests, docs site (strict), alert rules, features (on PostgreSQL, on three brokers), bench smoke

prometheus: ## Install Debian's prometheus package (Prometheus and promtool) if either is missing
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then \
	  echo "prometheus: installing Debian's prometheus"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 prometheus >/dev/null; \
	fi

# Only as root: the tests that put processes on hosts of their own (network namespaces) need it, and skip without root.
iptables: ## Install Debian's iptables if it is missing, as root
	@if [ "$$(id -u)" = 0 ] && ! command -v iptables >/dev/null; then \
	  echo "iptables: installing Debian's iptables"; \
	  apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=120 iptables >/dev/null; \
	fi

alerts: prometheus ## Check the alert rules in monitoring/alerts.yml and run their tests (monitoring/alerts.test.yml)
	promtool check rules monitoring/alerts.yml
	promtool test rules monitoring/alerts.test.yml

BENCH_ARGS ?=
BENCH_FLAGS = $(if $(ORDERS),--orders $(ORDERS)) $(if $(RATE),--rate $(RATE)) \
	$(if $(DURATION),--duration $(DURATION)) $(if $(CLIENTS),--clients $(CLIENTS)) $(if $(STEP),--step $(STEP)) \
	$(if $(SWEEP_TO),--sweep-to $(SWEEP_TO)) $(if $(IDLE),--idle $(IDLE)) $(if $(filter 1,$(BUSY)),--busy-core) $(BENCH_ARGS)

# REF=<git ref>: that ref's run first, in a worktree of its own, then this tree's, each by its own
# Makefile with the same settings; every figure as a ratio to the ref's (bench/ref.py).
BENCH_SETTINGS := ORDERS RATE DURATION CLIENTS STEP SWEEP_TO IDLE BUSY BENCH_ARGS STORE PYTHON INSTALLER
AGAINST_REF = $(BIN)/python -m bench.ref '$(REF)' --target $@ $(if $(ROUNDS),--rounds $(ROUNDS)) \
	$(strip $(foreach v,$(BENCH_SETTINGS),$(if $($(v)),'$(v)=$($(v))')))

bench: $(INSTALLED) ## Benchmark baselines, chain, latency sweep (picture) and idle (ORDERS= RATE= DURATION= STORE= BUSY=1 ...; REF=main: that ref's run too, every figure as a ratio to it; ROUNDS=2)
	$(if $(REF),$(AGAINST_REF),$(BIN)/python -m bench $(BENCH_FLAGS))

bench-smoke: $(INSTALLED) ## A short benchmark run that only checks the benchmark still works (REF=HEAD: and that REF= does)
	$(if $(REF),$(AGAINST_REF),$(BIN)/python -m bench --smoke $(BENCH_ARGS))

soak: $(INSTALLED) ## Hours, not minutes: growth per hour and lost/doubled effects (DURATION=900 RATE=100 RETENTION=60)
	$(BIN)/python -m bench.soak $(if $(DURATION),--duration $(DURATION)) $(if $(RATE),--rate $(RATE)) \
	$(if $(RETENTION),--retention $(RETENTION))

run: $(INSTALLED) $(if $(filter 1,$(METRICS)),prometheus) ## Start Kafka and the three services in the foreground (BROKERS=3 three brokers, STORE=postgres PostgreSQL, TRACES=1 Zipkin, METRICS=1 Prometheus; Ctrl-C stops)
	@$(BIN)/python -m devstack run

tail: $(INSTALLED) ## Show the events on the topics live (ORDER=42 TYPE=PaymentCaptured FROM=beginning; Ctrl-C stops)
	$(BIN)/python -m devstack.tail $(if $(ORDER),--order $(ORDER)) $(if $(TYPE),--type $(TYPE)) $(if $(FROM),--from $(FROM))

# BROKERS=3: three Kafka brokers, from docker-compose.brokers3.yml over docker-compose.yml.
COMPOSE = docker compose $(if $(filter 3,$(BROKERS)),-f docker-compose.yml -f docker-compose.brokers3.yml)

up: ## Build and start the stack under Docker Compose (orders on 127.0.0.1:5002; TRACES=1: and Zipkin, METRICS=1: and Prometheus; BROKERS=3: three brokers)
	$(COMPOSE) $(if $(filter 1,$(TRACES)),--profile traces) $(if $(filter 1,$(METRICS)),--profile metrics) up --build --detach --wait
	@echo "Up. Place an order:  curl -X POST localhost:5002/orders -H 'Content-Type: application/json' -d '{\"userId\":1,\"itemId\":2,\"qty\":1}'"
	@echo "Follow it:           make logs    Stop:  make down"

down: ## Stop the Compose stack (its data volumes stay; `docker compose down -v` wipes them)
	$(COMPOSE) --profile '*' down --remove-orphans

logs: ## Follow the Compose stack's logs
	$(COMPOSE) logs --follow

compose-test: $(INSTALLED) ## Run docker-compose.yml for real (engine and images set up if missing) and the features against it
	mkdir -p .run
	compose/test.sh

dlq: $(INSTALLED) ## List the dead letters: who set each aside, why, from where (SERVICE=billing REASON=contract JSON=1)
	$(BIN)/python -m devstack.dlq $(if $(SERVICE),--service $(SERVICE)) $(if $(REASON),--reason '$(REASON)') $(if $(filter 1,$(JSON)),--json)

redrive: $(INSTALLED) ## Send dead letters back to the service that set each aside, once (ALL=1, or SERVICE= REASON= OFFSETS=0@3,0@5)
	$(BIN)/python -m devstack.redrive $(if $(filter 1,$(ALL)),--all) $(if $(SERVICE),--service $(SERVICE)) \
	$(if $(REASON),--reason '$(REASON)') $(if $(OFFSETS),--offsets '$(OFFSETS)')

rebuild: $(INSTALLED) ## Rebuild the order page's read model from orders.events while the stack runs, then switch to it
	$(BIN)/python -m devstack rebuild

kafka: $(INSTALLED) ## Only download the Kafka broker jars from Maven Central
	$(BIN)/python -m devstack fetch

lock: $(INSTALLED) ## Rewrite constraints.txt from what is installed
	(echo "# Every package version, transitive ones included; regenerate with 'make lock'."; \
	 $(BIN)/pip freeze --exclude-editable) > constraints.txt

clean: ## Delete the stack's data and logs (Kafka topics, SQLite files, PostgreSQL's cluster wherever it lives)
	if [ -d .run ]; then find .run -type l -exec sh -c 'rm -rf -- "$$(readlink -f -- "$$1")"' _ {} \; ; fi
	rm -rf .run
