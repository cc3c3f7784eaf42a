# Every target sets up what it needs: a fresh clone runs `make demo` or `make test` directly.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# jsii warns at length about Node 20 (end of life for jsii since 2026-10-30); the CDK works on it.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: setup system-deps demo test test-fast synth lint bench clean

setup: $(VENV)/.installed node_modules/.installed

# The provisioner is installed editable, so `python -m provisioner` and `device-trust` work from
# any directory (credential_process runs wherever the AWS CLI is started).
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

# Debian packages the tests need (chromium, certutil/pk12util, openssl, curl); no-op when present.
system-deps:
	@scripts/install-system-deps.sh

## The whole story on the local stand-in: deploy, enroll, credentials, revoke.
demo: setup
	$(PY) -m scripts.demo

## The test suite (unit + end-to-end against the stand-in + real headless Chromium).
test: setup system-deps
	$(PY) -m pytest

## Everything but the browser test.
test-fast: setup
	$(PY) -m pytest -m "not browser"

synth: setup
	npx cdk synth --quiet

bench: setup
	$(PY) -m bench

clean:
	rm -rf cdk.out .pytest_cache
