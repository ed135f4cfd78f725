# Make targets of the services' deployment guides. Every target runs from the repository root (the build
# context of every image); targets that need docker or helm print a message and succeed when the tool is
# not installed, so `make` works on any machine.
#
#   make            list the targets

SHELL := /bin/sh
.DEFAULT_GOAL := help

# Runs the rest of a recipe line only when the named tool is on PATH.
require = command -v $(1) >/dev/null 2>&1 || { echo "$(1) is not installed: skipping $@"; exit 0; };

.PHONY: help
help: ## list the targets
	@echo "Targets:"
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_.-]+:.*## / { printf "  %-26s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# --- OpenWorld Specialty Chemicals (owsc): deploy/owsc, deploy/k8s, charts/openworld-specialty-chemicals ----

OWSC_CHART := charts/openworld-specialty-chemicals

.PHONY: docker-build docker-run docker-run-hardened docker-build-distroless helm-lint helm-template

docker-build: ## owsc: build the image openworld-specialty-chemicals:latest
	@$(call require,docker) docker build -f deploy/owsc/Dockerfile -t openworld-specialty-chemicals:latest .

docker-run: ## owsc: run the image on port 8000
	@$(call require,docker) docker run --rm -p 8000:8000 openworld-specialty-chemicals:latest

docker-run-hardened: ## owsc: run read-only with ./artifacts, ./reports and ./logs mounted
	@$(call require,docker) mkdir -p artifacts reports logs && docker run --rm \
	  --read-only \
	  -p 8000:8000 \
	  -v $(CURDIR)/artifacts:/app/artifacts \
	  -v $(CURDIR)/reports:/app/reports \
	  -v $(CURDIR)/logs:/app/logs \
	  openworld-specialty-chemicals:latest

docker-build-distroless: ## owsc: build the distroless image openworld-specialty-chemicals:distroless
	@$(call require,docker) docker build -f deploy/owsc/Dockerfile.distroless -t openworld-specialty-chemicals:distroless .

helm-lint: ## owsc: lint the Helm chart
	@$(call require,helm) helm lint $(OWSC_CHART)

helm-template: ## owsc: render the Helm chart with its default values
	@$(call require,helm) helm template ows $(OWSC_CHART)

# --- RAG Assistant (rag): deploy/rag, deploy/nginx/rag*.conf, deploy/k8s/cleanup-tmp-cronjob.yaml -----------
# The seed's targets. Compose targets need `docker compose` (the v2 plugin) and skip with a message without it.

RAG_COMPOSE_DEV := deploy/rag/docker-compose.yml
RAG_COMPOSE_PROD := deploy/rag/docker-compose.prod.yml
RAG_COMPOSE_DEMO := deploy/rag/docker-compose.demo.yml
RAG_SECRETS_DIR := services/rag/secrets

# Runs the rest of a recipe line only when `docker compose` works.
require_compose = docker compose version >/dev/null 2>&1 || { echo "docker compose is not installed: skipping $@"; exit 0; };

.PHONY: up-prod up-dev down down-prod logs logs-all logs-prod migrate migrate-prod clean secrets demo demo-down rag-docker-build

up-prod: ## rag: build and start the production stack (proxy on host port 8888)
	@$(require_compose) docker compose -f $(RAG_COMPOSE_PROD) up -d --build

up-dev: ## rag: build and start the development stack (UI and API on port 8000)
	@$(require_compose) docker compose -f $(RAG_COMPOSE_DEV) up -d --build

down: ## rag: stop the development stack
	@$(require_compose) docker compose -f $(RAG_COMPOSE_DEV) down

down-prod: ## rag: stop the production stack (volumes are kept)
	@$(require_compose) docker compose -f $(RAG_COMPOSE_PROD) down

logs: ## rag: follow the backend and worker logs of the development stack
	@$(require_compose) docker compose -f $(RAG_COMPOSE_DEV) logs -f backend worker

logs-all: ## rag: follow the logs of every service of the development stack
	@$(require_compose) docker compose -f $(RAG_COMPOSE_DEV) logs -f

logs-prod: ## rag: follow the backend and worker logs of the production stack
	@$(require_compose) docker compose -f $(RAG_COMPOSE_PROD) logs -f backend worker

migrate: ## rag: apply migrations with the migrations service (development stack)
	@$(require_compose) docker compose -f $(RAG_COMPOSE_DEV) run --rm migrations

migrate-prod: ## rag: apply migrations with the migrations service (production stack)
	@$(require_compose) docker compose -f $(RAG_COMPOSE_PROD) run --rm migrations

clean: ## rag: stop the development stack and remove its volumes and orphans
	@$(require_compose) docker compose -f $(RAG_COMPOSE_DEV) down -v --remove-orphans

secrets: ## rag: create the secret files under services/rag/secrets (never overwrites)
	@npx --no-install rag-assistant secrets --dir $(RAG_SECRETS_DIR)

demo: ## rag: start the mock-mode demo (UI on port 8080)
	@$(require_compose) docker compose -f $(RAG_COMPOSE_DEMO) up -d --build

demo-down: ## rag: stop the demo
	@$(require_compose) docker compose -f $(RAG_COMPOSE_DEMO) down

rag-docker-build: ## rag: build the image rag-assistant:latest
	@$(call require,docker) docker build -f deploy/rag/Dockerfile -t rag-assistant:latest .

# --- File Allocator (allocator): deploy/allocator, monitoring/ --------------------------------------------
# The seed's names (up, down, logs, migrate, ...) already belong to owsc and rag above, so these carry the
# `allocator-` prefix. Compose targets use `docker compose` (v2 plugin) or else `docker-compose` (v1), and
# skip with a message when neither is installed.

ALLOCATOR_COMPOSE_DEV := deploy/allocator/docker-compose.yml
ALLOCATOR_COMPOSE_PROD := deploy/allocator/docker-compose.prod.yml
# Evaluated only by the recipes that use it.
ALLOCATOR_COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

# Runs the rest of a recipe line only when one of the two compose CLIs works.
require_any_compose = docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || { echo "docker-compose is not installed: skipping $@"; exit 0; };

.PHONY: allocator-docker-build allocator-up allocator-up-prod allocator-down allocator-down-prod allocator-logs allocator-migrate allocator-backup

allocator-docker-build: ## allocator: build the image file-allocator:latest
	@$(call require,docker) docker build -f deploy/allocator/Dockerfile -t file-allocator:latest .

allocator-up: ## allocator: build and start the development stack (API 8000, Prometheus 9090, Grafana 3000)
	@$(require_any_compose) $(ALLOCATOR_COMPOSE) -f $(ALLOCATOR_COMPOSE_DEV) up -d --build

allocator-up-prod: ## allocator: build and start the production stack (needs the external secrets)
	@$(require_any_compose) $(ALLOCATOR_COMPOSE) -f $(ALLOCATOR_COMPOSE_PROD) up -d --build

allocator-down: ## allocator: stop the development stack (volumes are kept)
	@$(require_any_compose) $(ALLOCATOR_COMPOSE) -f $(ALLOCATOR_COMPOSE_DEV) down

allocator-down-prod: ## allocator: stop the production stack (volumes are kept)
	@$(require_any_compose) $(ALLOCATOR_COMPOSE) -f $(ALLOCATOR_COMPOSE_PROD) down

allocator-logs: ## allocator: follow the app logs of the development stack
	@$(require_any_compose) $(ALLOCATOR_COMPOSE) -f $(ALLOCATOR_COMPOSE_DEV) logs -f app

allocator-migrate: ## allocator: apply the catalog migrations (development stack)
	@$(require_any_compose) $(ALLOCATOR_COMPOSE) -f $(ALLOCATOR_COMPOSE_DEV) run --rm app file-allocator migrate

allocator-backup: ## allocator: write backup.sql (pg_dump) and storage-backup.tar.gz of the development stack
	@$(require_any_compose) $(ALLOCATOR_COMPOSE) -f $(ALLOCATOR_COMPOSE_DEV) exec -T postgres pg_dump -U postgres file_allocator > backup.sql.partial \
	  && mv backup.sql.partial backup.sql \
	  && $(ALLOCATOR_COMPOSE) -f $(ALLOCATOR_COMPOSE_DEV) exec -T app tar -czf - -C /app storage > storage-backup.tar.gz.partial \
	  && mv storage-backup.tar.gz.partial storage-backup.tar.gz

# --- The whole platform: deploy/docker-compose.yml (dev), deploy/docker-compose.prod.yml (prod) ------------
# The five services with PostgreSQL, Redis, the nginx proxy (host ports 8888 and 8881-8884), Prometheus (9090)
# and Grafana (3000) in one stack; runbook in deploy/README.md. The two stacks are separate compose projects
# (quintet-dev, quintet) with volumes of their own. Compose targets use `docker compose` (v2 plugin) or else
# `docker-compose` (v1), and skip with a message when neither is installed (require_any_compose above).

PLATFORM_COMPOSE_DEV := deploy/docker-compose.yml
PLATFORM_COMPOSE_PROD := deploy/docker-compose.prod.yml
PLATFORM_PROJECT_DEV := quintet-dev
PLATFORM_PROJECT_PROD := quintet
# Where the production secret files live; override with `make ... PLATFORM_SECRETS_DIR=/etc/quintet/secrets`.
PLATFORM_SECRETS_DIR ?= deploy/secrets
# Evaluated only by the recipes that use it.
PLATFORM_COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
PLATFORM_DEV = $(PLATFORM_COMPOSE) -p $(PLATFORM_PROJECT_DEV) -f $(PLATFORM_COMPOSE_DEV)
# Compose resolves a relative secrets directory against deploy/, so it gets the absolute path.
PLATFORM_PROD = PLATFORM_SECRETS_DIR=$(abspath $(PLATFORM_SECRETS_DIR)) $(PLATFORM_COMPOSE) -p $(PLATFORM_PROJECT_PROD) -f $(PLATFORM_COMPOSE_PROD)
# 32 random bytes as 64 hex characters.
platform_random = od -An -N32 -tx1 /dev/urandom | tr -d ' \n'

.PHONY: platform-up platform-up-prod platform-down platform-down-prod platform-logs platform-logs-prod platform-config platform-secrets

platform-up: ## platform: build and start every service, dev mode (proxy 8888/8881-8884, Prometheus, Grafana)
	@$(require_any_compose) $(PLATFORM_DEV) up -d --build

platform-up-prod: ## platform: build and start the production stack (after `make platform-secrets`)
	@$(require_any_compose) $(PLATFORM_PROD) up -d --build

platform-down: ## platform: stop the development stack (volumes are kept)
	@$(require_any_compose) $(PLATFORM_DEV) down

platform-down-prod: ## platform: stop the production stack (volumes are kept)
	@$(require_any_compose) $(PLATFORM_PROD) down

platform-logs: ## platform: follow the logs of every container of the development stack
	@$(require_any_compose) $(PLATFORM_DEV) logs -f

platform-logs-prod: ## platform: follow the logs of every container of the production stack
	@$(require_any_compose) $(PLATFORM_PROD) logs -f

platform-config: ## platform: validate and print both compose files as compose resolves them
	@$(require_any_compose) $(PLATFORM_DEV) config && $(PLATFORM_PROD) config

platform-secrets: ## platform: create the production secret files in deploy/secrets (never overwrites one)
	@set -e; dir='$(PLATFORM_SECRETS_DIR)'; \
	  umask 077; mkdir -p "$$dir"; chmod 700 "$$dir"; umask 022; \
	  put() { if [ -e "$$dir/$$1" ]; then echo "kept    $$dir/$$1"; else printf '%s' "$$2" > "$$dir/$$1"; echo "created $$dir/$$1"; fi; }; \
	  for name in postgres_password owsc_db_password allocator_db_password rag_db_password rag_jwt_secret \
	    owsc_api_token allocator_api_key grafana_admin_password; do put "$$name" "$$($(platform_random))"; done; \
	  put docops_web_basic_auth "docops:$$($(platform_random))"; \
	  put owsc_database_url "postgresql://owsc:$$(cat "$$dir/owsc_db_password")@postgres:5432/owsc"; \
	  put rag_database_url "postgresql://rag:$$(cat "$$dir/rag_db_password")@postgres:5432/rag"; \
	  put gemini_api_key ""; \
	  echo "Put the Gemini API key in $$dir/gemini_api_key (empty: offline labels; see deploy/README.md)."
