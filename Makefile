# Balcão — the two commands a newcomer runs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
            command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint install system-deps translations bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python >= 3.11 is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) translations

# Compiled message catalogues (.mo) are build output, made from the committed .po files.
translations: $(STAMP)
	@for d in services/*/translations; do \
	  if ls $$d/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then $(BIN)/pybabel -q compile -d $$d; fi; done

# System packages the tests drive: Debian's Chromium (never a downloaded browser), nginx (the
# gateway of the distributed topology), docker-compose (validates docker-compose.yml) and
# pgbouncer (the connection pooler the distributed tests run through).
SYSTEM_PACKAGES := chromium nginx docker-compose pgbouncer
system-deps:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	 { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || missing="$$missing nginx"; \
	 command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	 { command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; } || missing="$$missing pgbouncer"; \
	 if [ -n "$$missing" ]; then \
	   if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	     apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	   else echo "Missing system packages:$$missing (Debian: sudo apt-get install$$missing)"; exit 1; fi; fi

run: install
	$(BIN)/balcao run

test: install system-deps
	$(BIN)/python -m pytest

# ruff (pyflakes, bugbear, isort, pyupgrade) on the whole tree, mypy on services/ (pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf var .pytest_cache

# Benchmarks against the distributed mode on the machine's RabbitMQ and PostgreSQL (see bench/README.md).
bench: install system-deps
	$(BIN)/python -m bench
