# Set-up is part of each target: `make demo` runs the main job on the embedded defaults,
# `make test` runs the test suite; both create .venv and install the package first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the browser demo's runtime (onnxruntime-web), vendored from npm with the committed lock file
WEB_STAMP := web_demo/node_modules/.package-lock.json

.PHONY: demo test test-fast install clean

$(STAMP): pyproject.toml .ci/constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c .ci/constraints.txt -e '.[all]'
	touch $(STAMP)

$(WEB_STAMP): web_demo/package.json web_demo/package-lock.json
	cd web_demo && npm ci --no-audit --no-fund
	touch $(WEB_STAMP)

install: $(STAMP) $(WEB_STAMP)

demo: $(STAMP)
	$(VENV)/bin/actionnet-edge quickstart --out out/quickstart --force

# test files spread over up to 4 processes (pytest-xdist); each file's fixtures stay in one
PYTEST := $(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile

test: $(STAMP) $(WEB_STAMP)
	$(PYTEST)

# the everyday tier: no whole-model conversions or trainings
test-fast: $(STAMP) $(WEB_STAMP)
	$(PYTEST) -m "not slow"

clean:
	rm -rf $(VENV) out
