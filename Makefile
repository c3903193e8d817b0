# Set-up is part of each target: `make demo` runs the main job on the embedded defaults,
# `make test` runs the test suite; both create .venv and install the package first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml .ci/constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c .ci/constraints.txt -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/actionnet-edge quickstart --out out/quickstart

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) out
