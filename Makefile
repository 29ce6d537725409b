# aggpay — the two commands of README.md (`make demo`, `make test`) and the rest of the developer loop.
# Every target works on a fresh clone: it creates .venv with $(PYTHON) and installs the project when
# pyproject.toml is newer than the install stamp.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.aggpay-installed
PORT ?= 8000
SIMULATOR_PORT ?= 8100
VAR := $(or $(AGGPAY_VAR_DIR),var)
KEYS_FILE := $(VAR)/encryption.keys
SECRET_KEY_PATH := $(VAR)/secret.key
PYTEST_ARGS ?=

# `make test` and `make bench` use these unless the environment sets them.
TEST_DATABASE_URL := $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/aggpay)
TEST_REDIS_URL := $(or $(REDIS_URL),redis://127.0.0.1:6379/0)
# `make up` (production-shaped): PostgreSQL with Django's psycopg pool, Redis as broker (db 0) and cache (db 1).
UP_DATABASE_URL := $(or $(DATABASE_URL),postgres://postgres@127.0.0.1:5432/aggpay?pool=true)
UP_BROKER_URL := $(or $(CELERY_BROKER_URL),redis://127.0.0.1:6379/0)
UP_CACHE_URL := $(or $(CACHE_URL),redis://127.0.0.1:6379/1)

# The demo runs on the embedded defaults whatever the shell has exported: SQLite in var/, eager Celery,
# local-memory cache, channel simulators mounted in-process at /_sim/ and called back over HTTP.
DEMO_ENV := env -u DATABASE_URL -u CELERY_BROKER_URL -u CACHE_URL -u REDIS_URL -u AGGPAY_SIMULATOR_BASE_URL \
	DEBUG=1 AGGPAY_SIMULATORS=1 AGGPAY_PUBLIC_BASE_URL=http://127.0.0.1:$(PORT)

.PHONY: help install demo seed credentials test up bench lint format keys secret-key clean

help:
	@echo "make demo    serve the back office with demo data at http://127.0.0.1:$(PORT)/ (SQLite, no services)"
	@echo "make test    run the whole test suite (needs PostgreSQL and Redis; says what to start if missing)"
	@echo "make up      production-shaped run: gunicorn, Celery worker, beat, simulators (PostgreSQL + Redis)"
	@echo "make bench   measure signed API calls against /healthz on gunicorn + PostgreSQL"
	@echo "make lint    ruff check ."
	@echo "make install create $(VENV) and install the project with its dev extras"

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-install only when pyproject.toml changed since the last install (make compares the stamp's mtime).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP)

# A Fernet key for encrypted fields, generated once into the git-ignored var/ (settings.py reads it when
# AGGPAY_ENCRYPTION_KEYS is unset). Losing it makes stored secrets unreadable: back it up with the database.
keys: $(STAMP)
	@if [ -z "$$AGGPAY_ENCRYPTION_KEYS$$AGGPAY_ENCRYPTION_KEYS_FILE" ] && [ ! -s "$(KEYS_FILE)" ]; then \
		mkdir -p "$(VAR)" && (umask 077 && $(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' > "$(KEYS_FILE)") && \
		echo "generated $(KEYS_FILE) (AGGPAY_ENCRYPTION_KEYS; keep it with the database)"; \
	fi

secret-key: $(STAMP)
	@if [ -z "$$SECRET_KEY$$SECRET_KEY_FILE" ] && [ ! -s "$(SECRET_KEY_PATH)" ]; then \
		mkdir -p "$(VAR)" && (umask 077 && $(PY) -c 'import secrets; print(secrets.token_urlsafe(50))' > "$(SECRET_KEY_PATH)") && \
		echo "generated $(SECRET_KEY_PATH) (SECRET_KEY)"; \
	fi

demo: $(STAMP) keys
	$(DEMO_ENV) $(PY) manage.py migrate --noinput
	$(DEMO_ENV) $(PY) manage.py seed_demo
	@$(DEMO_ENV) $(PY) manage.py demo_credentials
	@echo
	@echo "Serving aggpay at http://127.0.0.1:$(PORT)/  (Ctrl-C stops it)"
	$(DEMO_ENV) AGGPAY_INPROCESS_BEAT=1 $(PY) manage.py runserver --noreload 127.0.0.1:$(PORT)

# Seeds and prints the demo data of whatever database the environment points at (`make up` does not seed).
seed: export AGGPAY_NOTIFY_PRIVATE_ADDRESSES := $(or $(AGGPAY_NOTIFY_PRIVATE_ADDRESSES),1)
seed: $(STAMP) keys
	$(PY) manage.py seed_demo --allow-published-passwords
	$(PY) manage.py demo_credentials

credentials: $(STAMP)
	@$(DEMO_ENV) $(PY) manage.py demo_credentials

test: export DATABASE_URL := $(TEST_DATABASE_URL)
test: export REDIS_URL := $(TEST_REDIS_URL)
test: $(STAMP)
	@$(PY) .ci/check_services.py
	@set +e; $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5) - nothing failed, nothing was tested"; exit 0; fi; \
	exit $$rc

up: export DATABASE_URL := $(UP_DATABASE_URL)
up: export REDIS_URL := $(TEST_REDIS_URL)
up: export CELERY_BROKER_URL := $(UP_BROKER_URL)
up: export CACHE_URL := $(UP_CACHE_URL)
up: export DEBUG := 0
up: export SECURE_COOKIES := $(or $(SECURE_COOKIES),0)
up: export ALLOWED_HOSTS := $(or $(ALLOWED_HOSTS),127.0.0.1,localhost)
up: export AGGPAY_SIMULATORS := 0
up: export AGGPAY_PUBLIC_BASE_URL := $(or $(AGGPAY_PUBLIC_BASE_URL),http://127.0.0.1:$(PORT))
up: export AGGPAY_SIMULATOR_BASE_URL := $(or $(AGGPAY_SIMULATOR_BASE_URL),http://127.0.0.1:$(SIMULATOR_PORT))
up: export WEB_PORT := $(PORT)
up: export SIMULATOR_PORT := $(SIMULATOR_PORT)
# Every party of `make up` lives on this machine, the merchants' notification receivers too (README's script
# listens on 127.0.0.1): a real deployment leaves this off (aggpay/notify_urls.py).
up: export AGGPAY_NOTIFY_PRIVATE_ADDRESSES := $(or $(AGGPAY_NOTIFY_PRIVATE_ADDRESSES),1)
up: $(STAMP) keys secret-key
	@$(PY) .ci/check_services.py --create-database
	@if [ -z "$$SECRET_KEY$$SECRET_KEY_FILE" ]; then export SECRET_KEY_FILE="$(SECRET_KEY_PATH)"; fi; \
	$(PY) manage.py migrate --noinput && \
	$(PY) manage.py collectstatic --noinput -v0 && \
	echo "aggpay on http://127.0.0.1:$(PORT)/ — web, worker, beat, simulators (:$(SIMULATOR_PORT)); Ctrl-C stops all" && \
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" exec $(VENV)/bin/honcho start -f Procfile

bench: $(STAMP)
	$(PY) bench/run.py
	$(PY) bench/bench_adapters.py
	$(PY) bench/bench_batch.py
	$(PY) bench/bench_orders.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf staticfiles .pytest_cache .ruff_cache .hypothesis
	@echo "kept $(VENV) and $(VAR)/ (the demo database and its encryption key); remove them by hand if you mean it"
