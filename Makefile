# creditmeter — every target is documented by `make help`.
SHELL := /bin/bash
# Keep stdout clean when called from another make (TOKEN=$$(make token ...) inside a recipe).
MAKEFLAGS += --no-print-directory
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)
export PYTHONPATH := $(CURDIR):$(CURDIR)/gen/python
export PYTHONDONTWRITEBYTECODE := 1

ROLE ?= user
# USER is also the login name in most shells: only a USER given on the make command line is used.
TOKEN_USER := $(if $(filter command line,$(origin USER)),--user "$(USER)")

.PHONY: help setup protos protos-check protos-lint protos-baseline run test test-fast lint fmt token tokens authz-matrix verify bench bench-hot bench-auth bench-reports deploy-config clean web web-test browser-deps

help: ## Show the targets and what they do.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# Downloads retry a dropped connection (apt: each file 3 more times; pip: 10 times per request, and the
# whole install up to 3 times, since pip 23 gives up on a reset in mid-download; npm ci: tools/web.py),
# and apt waits for another apt's lock instead of failing.
APT_OPTS := -o Acquire::Retries=3 -o DPkg::Lock::Timeout=900

# Installation talks on stderr only, so that `TOKEN=$$(make token ...)` works on a fresh clone.
$(STAMP): requirements.lock pyproject.toml
	@echo "installing pinned dependencies into $(VENV)" >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) >&2
	@for attempt in 1 2 3; do \
		$(BIN)/pip install --quiet --disable-pip-version-check --retries 10 -r requirements.lock >&2 && break; \
		test $$attempt = 3 && { echo "pip install failed 3 times; run the command again to resume" >&2; exit 1; }; \
		echo "pip install failed; trying again in $$((attempt * 10))s (attempt $$((attempt + 1)) of 3)" >&2; \
		sleep $$((attempt * 10)); \
	done
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(STAMP) ## Create .venv with the pinned dependencies (the other targets do this themselves).

protos: $(STAMP) ## Generate gen/ from protos/; refresh the buf baseline if the change is compatible.
	$(BIN)/python -m tools.gen_protos
	$(BIN)/python -m tools.buf_check baseline

protos-check: $(STAMP) ## Fail if gen/ is stale against protos/.
	$(BIN)/python -m tools.gen_protos --check

protos-lint: $(STAMP) ## buf lint (STANDARD) and buf breaking against protos/buf.image.binpb.
	$(BIN)/python -m tools.buf_check check

protos-baseline: $(STAMP) ## Accept a breaking contract change on purpose: regenerate and reset the baseline.
	$(BIN)/python -m tools.gen_protos
	$(BIN)/python -m tools.buf_check baseline --accept-breaking

run: $(STAMP) web ## Run the whole stack: embedded PostgreSQL (unless DATABASE_URL), services, Envoy on :8080 with the dashboard at /.
	$(BIN)/python -m tools.stack

web: $(STAMP) ## Build the dashboard (web/) when its sources changed: npm ci, API client from protos/, vite build.
	$(BIN)/python -m tools.web build

web-test: $(STAMP) ## Dashboard unit tests (Vitest: money formatting, API client).
	$(BIN)/python -m tools.web test

# The browser tests drive Debian's chromium (Playwright's own browser download is not used).
browser-deps:
	@test -x /usr/bin/chromium || { apt-get $(APT_OPTS) update -q >&2 && \
		DEBIAN_FRONTEND=noninteractive apt-get $(APT_OPTS) install -y -q chromium fonts-dejavu-core >&2; }

# Worker processes for `make test` (pytest-xdist): each has its own embedded PostgreSQL (or its own databases on
# TEST_DATABASE_URL) and takes whole test files, so a file's stack is started once. TEST_WORKERS=0 runs in-process.
TEST_WORKERS ?= 2

test: $(STAMP) protos-check protos-lint lint web web-test browser-deps ## Run every test: unit, integration (real PostgreSQL), e2e (real Envoy), dashboard (Vitest, real browser).
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

test-fast: $(STAMP) web ## Unit tests only (the gateway-config tests serve the built dashboard).
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict on our packages; ESLint on the dashboard.
	$(BIN)/ruff check services tools tests bench
	$(BIN)/ruff format --check services tools tests bench
	$(BIN)/mypy
	$(BIN)/python -m tools.web lint

fmt: $(STAMP) ## Format the code: ruff for Python, Prettier for the dashboard.
	$(BIN)/ruff format services tools tests bench
	$(BIN)/ruff check --fix services tools tests bench
	$(BIN)/python -m tools.web fmt

token: $(STAMP) ## Print a dev JWT: make token USER=alice ROLE=admin (ROLE: user, admin, svc-metering, svc-coupons, svc-openrouter, svc-platform).
	@$(BIN)/python -m tools.token $(TOKEN_USER) --role "$(ROLE)"

tokens: $(STAMP) ## Print `export …_TOKEN=` lines for every identity: eval "$$(make -s tokens)".
	@$(BIN)/python -m tools.token $(TOKEN_USER) --all

authz-matrix: $(STAMP) ## Regenerate docs/authorization.md (who may call what) from the method policies.
	$(BIN)/python -m tools.authz_matrix > docs/authorization.md

verify: $(STAMP) ## Check every ledger invariant against the configured (or embedded) database.
	$(BIN)/python -m tools.verify

bench: $(STAMP) ## The stack through Envoy (wrk) vs the tiers route and raw PostgreSQL, in one run (bench/gateway.py).
	@command -v wrk >/dev/null || { apt-get $(APT_OPTS) update -qq && apt-get $(APT_OPTS) install -y -qq wrk; }
	$(BIN)/python -m bench.gateway $(BENCH_ARGS)

bench-hot: $(STAMP) ## One hot account over gRPC: Deduct and coalesced ChargeUsage vs raw PostgreSQL functions.
	$(BIN)/python -m bench.credits_hot_account

bench-auth: $(STAMP) ## What the verified-token cache saves: credits GetBalance with the cache off vs on, same run.
	$(BIN)/python -m bench.token_cache

bench-reports: $(STAMP) ## Usage-report speed over 1M events: rollups vs raw events, with the query plan.
	$(BIN)/python -m bench.metering_reports

DEPLOY_AUTH := AUTH_ISSUER=https://keycloak.example.com/realms/creditmeter \
	AUTH_JWKS_URL=https://keycloak.example.com/realms/creditmeter/protocol/openid-connect/certs AUTH_AUDIENCE=creditmeter

deploy-config: $(STAMP) web ## Print the in-cluster gateway config as the gateway's init container renders it (example Keycloak).
	@$(DEPLOY_AUTH) DASHBOARD_OIDC_AUTHORITY=https://keycloak.example.com/realms/creditmeter \
		$(BIN)/python -m tools.gateway --kubernetes --web-dist web/dist --serve-root /etc/creditmeter/web

clean: ## Remove the virtualenv and caches (keeps .local data).
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
