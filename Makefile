# The two set-up commands: `make build` (everything on an embedded PostgreSQL) and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
WITH_DAGSTER := $(VENV)/.installed-dagster

.PHONY: build test browser server-user lint bench docs clean

# The installer: uv (pinned, from PyPI, into the venv) resolves and downloads in parallel, about
# 5 s for what pip takes 40 s; the versions come from requirements.lock either way. Where uv
# cannot install (e.g. an index only pip is configured for), pip does the same install.
UV_VERSION := 0.13.8
comma := ,
INSTALL = $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -c requirements.lock -e $(1) \
	|| { echo "uv could not install $(1); installing with pip instead"; \
	     $(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e $(1); }

$(INSTALLED): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(call INSTALL,'.[dev]')
	touch $(INSTALLED)

# the optional scheduler integration, which the test suite also checks
$(WITH_DAGSTER): $(INSTALLED)
	$(call INSTALL,'.[dev$(comma)dagster]')
	touch $(WITH_DAGSTER)

## build: venv, embedded PostgreSQL, demo data, pre-hook, dbt build, dbt docs generate
build: $(INSTALLED)
	$(BIN)/pmcost build

## test: ruff, then pytest (unit, integration on a throwaway embedded server, dbt build, sqlfluff)
## The browser for the docs-site check installs in the background, beside the venv and the
## first tests; the tests that drive it wait for its exit status in $(BROWSER_STATUS)
## (tests/python/test_docs_site.py), and a failed install fails `make test`.
BROWSER_STATUS := .browser-status
test: server-user
	@rm -f $(BROWSER_STATUS) $(BROWSER_STATUS).tmp
	@{ $(MAKE) --no-print-directory browser; echo $$? > $(BROWSER_STATUS).tmp; \
	   mv $(BROWSER_STATUS).tmp $(BROWSER_STATUS); } & \
	$(MAKE) --no-print-directory $(WITH_DAGSTER) \
	&& $(BIN)/ruff check pmcost benchmarks tests/python \
	&& $(BIN)/ruff format --check pmcost benchmarks tests/python \
	&& PMCOST_BROWSER_STATUS="$(CURDIR)/$(BROWSER_STATUS)" $(BIN)/python -m pytest; \
	status=$$?; wait; \
	if [ "$$(cat $(BROWSER_STATUS) 2>/dev/null)" != 0 ]; then \
		echo "make test: \`make browser\` failed (its output is above)" >&2; exit 1; fi; \
	exit $$status

## server-user: as root, the system user the embedded PostgreSQL runs as (SERVER_OS_USER in
## pmcost/server.py, which creates it too), made before `make browser` starts apt: the package
## scripts apt runs add users of their own and rewrite /etc/passwd, and a user added at the same
## moment can vanish under a server that is starting (initdb: "could not look up effective user").
SERVER_USER := pmcost
server-user:
	@if [ "$$(id -u)" = 0 ] && ! id $(SERVER_USER) >/dev/null 2>&1; then \
		useradd --system --no-create-home --shell /usr/sbin/nologin $(SERVER_USER); fi

## browser: Chromium for the docs-site check (Debian's package, installed once; needs root)
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's chromium for the docs-site check"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "make browser: chromium is missing; install it (Debian: sudo apt-get install chromium)" >&2; \
			exit 1; \
		fi; }
	@command -v chromium >/dev/null 2>&1 || { echo "make browser: chromium did not install" >&2; exit 1; }

## lint: ruff, then sqlfluff with the dbt templater (it compiles, so the embedded server starts)
lint: $(INSTALLED)
	$(BIN)/ruff check pmcost benchmarks tests/python
	$(BIN)/ruff format --check pmcost benchmarks tests/python
	$(BIN)/pmcost up >/dev/null && eval "$$($(BIN)/pmcost env)" && \
		$(BIN)/sqlfluff lint models analyses snapshots tests/dbt

## bench: speed and latency at 10,000 tenants on a throwaway server (figures in target/bench/)
bench: $(INSTALLED)
	$(BIN)/pmcost bench

## docs: generate the dbt docs site and serve it on a free loopback port
docs: $(INSTALLED)
	$(BIN)/pmcost docs

clean:
	-$(BIN)/pmcost down
	rm -rf $(VENV) .pmcost target logs
