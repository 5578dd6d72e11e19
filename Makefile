# Laifaxin mail platform. The two commands a newcomer needs: `make demo` (the main job) and `make test`.
# Every target installs what it needs on a fresh machine (uv and the Python dependencies, the Kafka jars from
# Maven Central, FerretDB from the Go module proxy, Dovecot from Debian packages when run as root).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_PYTHON ?= 3.11
PY := $(UV) run --locked python
INFRA := $(PY) deploy/local/infra.py
PYTEST_ARGS ?=

.PHONY: help install uv lint format infra-install infra-up infra-down infra-status test test-unit bench bench-quick demo up down status-platform train eval eval-matching k8s-check clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

uv:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || { \
		echo "installing uv (pip)"; python3 -m pip install --quiet --disable-pip-version-check uv; }

install: uv  ## install the Python workspace (uv, locked), the local servers' binaries and Debian's chromium
	$(UV) sync --locked --all-packages --quiet --compile-bytecode
	@# Bytecode for our own packages too (editable installs): with PYTHONDONTWRITEBYTECODE set, as on this
	@# machine and in the image, every process (a sync worker's parsing pool included) would compile them again.
	$(PY) -m compileall -q -j 0 shared/src services/binding/src services/sync/src services/classifier/src \
		services/notify/src cli >/dev/null
	$(INFRA) install
	bash deploy/local/install_chromium.sh >/dev/null

lint: uv  ## ruff (lint + format check) and mypy (strict on shared/)
	$(UV) sync --locked --all-packages --quiet
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked mypy --strict shared/src
	$(UV) run --locked mypy services/binding/src services/sync/src services/classifier/src services/notify/src cli

format: uv  ## apply ruff's fixes and formatting
	$(UV) run --locked ruff check --fix .
	$(UV) run --locked ruff format .

infra-install: install  ## resolve/build/install Kafka, FerretDB, Dovecot

infra-up: install  ## start Kafka, FerretDB, Dovecot and the SMTP server (state in deploy/local/state)
	$(INFRA) up

infra-down: uv  ## stop every local server; no process of ours is left
	$(INFRA) down

infra-status: uv  ## one line per local server
	$(INFRA) status

test: install  ## lint, start the servers, run every test, build the images and start each, stop the servers (also on failure)
	$(MAKE) --no-print-directory lint
	$(INFRA) up --fresh
	status=0; CI=$${CI:-} $(UV) run --locked pytest -ra $(PYTEST_ARGS) || status=$$?; \
		[ $$status -ne 0 ] || $(MAKE) --no-print-directory images-check || status=$$?; \
		$(INFRA) down; \
		exit $$status

test-unit: install  ## the tests that need no server
	$(UV) run --locked pytest -ra tests/unit $(PYTEST_ARGS)

bench: install  ## every benchmark at full size (starts the servers it needs)
	$(PY) bench/run.py

bench-quick: install  ## every benchmark at small size, in under ten minutes
	$(PY) bench/run.py --quick

demo: install  ## the main job: real servers, a corpus through the platform, a summary (JSON on the last line)
	$(PY) -m laifaxin_cli.demo

up: install  ## the platform running on the local servers until `make down` (URLs and a token in deploy/local/state/platform.json)
	$(PY) -m laifaxin_cli.platform up

down: uv  ## stop the platform and the local servers
	$(PY) -m laifaxin_cli.platform down

status-platform: uv  ## what `make up` started
	$(PY) -m laifaxin_cli.platform status

train: install  ## train the classifier model artifact (reproducible)
	$(PY) -m laifaxin_classifier.train

eval: install  ## evaluate the classifier on the held-out split (and on ../shared/data/real-mail when present)
	$(PY) -m laifaxin_classifier.evaluate

eval-matching: install  ## reply matching: precision and recall on the generated corpus of client reply styles
	$(PY) -m laifaxin_classifier.matching.evaluate

k8s-check: uv  ## render every kustomize combination (base, components, overlays) and validate it offline
	$(UV) sync --locked --all-packages --quiet
	$(UV) run --locked python deploy/k8s/check.py

clean: infra-down  ## stop servers and remove local state
	rm -rf deploy/local/state

# ---- images and pods (deploy/docker, deploy/podman): Podman and Buildah from Debian packages, no Docker engine
.PHONY: deps-check

deps-check: uv  ## install each service alone (as its image does) and import all of its code: undeclared dependencies fail
	$(UV) sync --locked --all-packages --quiet
	$(PY) deploy/docker/deps_check.py

PODMAN_LOCAL := nice -n 15 $(UV) run --locked python deploy/podman/local.py
.PHONY: podman-install images images-check pods-up pods-down pods-status demo-pods

podman-install:  ## Podman, Buildah, runc, mmdebstrap from Debian packages (when run as root; idempotent)
	bash deploy/podman/install.sh

images: uv podman-install  ## build every service image with Podman from deploy/docker/Dockerfile on a Debian base (sizes, times)
	$(PODMAN_LOCAL) images

images-check: images  ## start each image as its pod runs it and wait for /readyz (needs the local servers: make infra-up)
	$(PODMAN_LOCAL) images-check

pods-up: images  ## the `local` kustomize overlay with podman kube play, until every readiness probe passes (servers: make infra-up)
	$(PODMAN_LOCAL) up

pods-down: uv  ## remove the pods, secrets and state of pods-up
	$(PODMAN_LOCAL) down

pods-status: uv  ## the pods of pods-up and their URLs
	$(PODMAN_LOCAL) status

demo-pods: images  ## `make demo` with the four services as the pods of the local overlay (DEMO_SERVICES=pods)
	DEMO_SERVICES=pods $(PY) -m laifaxin_cli.demo
