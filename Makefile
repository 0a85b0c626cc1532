# tracer1 — developer entry points. `make run` runs the main job, `make test` runs the whole suite;
# both install what they need first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
# CPU development pins: a torch/torchvision pair that loads together (see shared PLATFORM notes in README).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed
# Debian packages the tests and MiniWoB++ need (installed by `make system-deps` when missing).
SYSTEM_DEPS ?= chromium chromium-driver fonts-liberation

.PHONY: install install-rllib system-deps run test test-local bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet $(TORCH_SPEC)
	$(PIP) install --quiet -e '.[test,web]'
	touch $(STAMP)

# RLlib pins gymnasium==1.2.2 and miniwob declares >=1.2.3, so one pip resolve of both fails. RLlib goes in as a
# second command; miniwob 1.1.0 runs correctly on 1.2.2, and pip's note about its declared bound is expected.
install-rllib: $(STAMP)
	$(PIP) install --quiet 'ray[rllib]' 'gymnasium==1.2.2'

run: $(STAMP)
	$(PY) -m tracer1.run stage=1

# apt-get as root (CI, containers); otherwise print the command to run.
system-deps:
	@missing=""; for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "tracer1 needs Debian packages:$$missing — run: sudo apt-get install$$missing"; exit 1; fi

test: $(STAMP) system-deps
	$(PY) -m pytest -q

# Reserved for the single-node Ray end-to-end run; until the training loop lands it runs the suite.
test-local: test

bench: $(STAMP)
	$(PY) bench/rewards_throughput.py
	$(PY) bench/data_throughput.py

clean:
	rm -rf $(VENV) runs bench/results .pytest_cache .hypothesis
