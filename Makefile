# visionserve — every user-facing command. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3.11
VENV    ?= .venv
PY      := $(VENV)/bin/python
VS      := $(VENV)/bin/visionserve

MODEL   ?=
MODELS  ?=
WEIGHTS ?= auto
PROFILE ?= cpu
LABELS  ?=
VERSION ?=
CANARY  ?=
WEIGHT  ?= 10
SHADOW  ?=
TARGET  ?= gateway
USERS   ?= 8
SPAWN   ?= 4
DURATION ?= 30s
HOST    ?=
ARGS    ?=

.PHONY: help setup venv export rollback versions release-start release-status release-promote release-abort serve gateway up classify loadtest loadtest-ui \
        bench bench-serving bench-gateway drills helm-lint test test-services lint clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "setup: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools

venv: $(PY) ## create .venv and install visionserve with its test tools
	$(PY) -m pip install -q -e '.[all,dev]'

setup: venv ## create .venv, install everything, export all models (works offline)
	$(VS) export --weights $(WEIGHTS)

export: ## export models and publish a new version: [MODEL=name] [WEIGHTS=auto|imagenet|demo|path] [LABELS=path] [PROFILE=cpu|gpu] [CANARY=percent]
	$(VS) export $(if $(MODEL),--model $(MODEL)) --weights $(WEIGHTS) --profile $(PROFILE) $(if $(LABELS),--labels $(LABELS)) $(if $(CANARY),--canary $(CANARY))

rollback: ## serve an earlier version again: MODEL=name VERSION=n
	@test -n "$(MODEL)" -a -n "$(VERSION)" || { echo "usage: make rollback MODEL=name VERSION=n"; exit 2; }
	$(VS) rollback --model $(MODEL) --version $(VERSION)

release-start: ## serve a version as the canary: MODEL=name VERSION=n [WEIGHT=percent] [SHADOW=fraction]
	@test -n "$(MODEL)" -a -n "$(VERSION)" || { echo "usage: make release-start MODEL=name VERSION=n [WEIGHT=10] [SHADOW=1]"; exit 2; }
	$(VS) release start $(MODEL) --version $(VERSION) --weight $(WEIGHT) $(if $(SHADOW),--shadow $(SHADOW))

release-status: ## the canary's live figures and verdict: MODEL=name [ARGS="--auto --watch 600"]
	@test -n "$(MODEL)" || { echo "usage: make release-status MODEL=name"; exit 2; }
	$(VS) release status $(MODEL) $(ARGS)

release-promote: ## make the canary stable: MODEL=name
	@test -n "$(MODEL)" || { echo "usage: make release-promote MODEL=name"; exit 2; }
	$(VS) release promote $(MODEL)

release-abort: ## send every request to stable again and drop the canary: MODEL=name
	@test -n "$(MODEL)" || { echo "usage: make release-abort MODEL=name"; exit 2; }
	$(VS) release abort $(MODEL)

versions: ## list model versions in the repository
	$(VS) versions

serve: ## run tritonserver on :8000/:8001/:8002 [MODELS=a,b]
	$(VS) serve $(if $(MODELS),--models $(MODELS)) $(ARGS)

gateway: ## run the gateway alone on :3000 (TRITON_URL, REDIS_URL, DATABASE_URL)
	$(VS) gateway $(ARGS)

up: ## run tritonserver + gateway on embedded defaults
	$(VS) up $(ARGS)

classify: ## classify images: make classify ARGS="path/to/img.jpg --top-k 5"
	$(VS) classify $(ARGS)

loadtest: ## headless Locust run: [TARGET=gateway|grpc|http] [USERS=] [SPAWN=] [DURATION=] [HOST=]
	$(VS) loadtest --target $(TARGET) --users $(USERS) --spawn-rate $(SPAWN) --duration $(DURATION) $(if $(HOST),--host $(HOST)) $(ARGS)

loadtest-ui: ## Locust's web UI on the same locustfiles
	$(VS) loadtest --ui --target $(TARGET) --users $(USERS) --spawn-rate $(SPAWN) $(if $(HOST),--host $(HOST)) $(ARGS)

bench: ## the full side-by-side benchmark report (reports/)
	$(VS) bench all $(ARGS)

bench-serving: ## served ensembles vs the in-process ceiling
	$(VS) bench serving $(ARGS)

bench-gateway: ## gateway (miss/hit) vs direct Triton
	$(VS) bench gateway $(ARGS)

bench-gpu: ## on a GPU machine, after `make export PROFILE=gpu`: ceilings vs served vs naive, parity
	$(VS) bench gpu $(ARGS)

drills: test-services ## reliability drills on a local stack -> reports/drills.md [ARGS="--soak-s 60 --update-docs"]
	$(VS) drills $(ARGS)

helm-lint: ## render, lint and validate the Helm chart; lint Dockerfiles
	$(PY) -m helm.lint

test-services: ## install Redis, PostgreSQL and chromium (+ driver) when missing (Debian)
	@bash .ci/services.sh

test: venv test-services ## run the whole test suite (installs what it needs)
	$(PY) -m pytest -q -ra $(ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$rc

lint: ## ruff
	$(VENV)/bin/ruff check .

clean: ## remove reports and caches (keeps .venv and the model repository)
	rm -rf reports .pytest_cache .ruff_cache
