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
