# Two entry points (see README "Quick start"): `make demo` and `make test`.
# Both create the virtual environment on first use: nothing else to install by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgeinf-installed

.PHONY: demo test install models clean

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.cpp csrc/*.h csrc/arch/*/*.cpp csrc/arch/*/*.inc)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23"
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,demo,plot,train]"
	touch $(STAMP)

install: $(STAMP)

models: $(STAMP)
	$(PY) splits/build_models.py

demo: models
	$(VENV)/bin/edgeinf info
	$(VENV)/bin/edgeinf demo

test: models
	$(PY) -m pytest -q tests

clean:
	rm -rf build dist *.egg-info edgeinf/*.so
