# percepnet-live: `make run` starts the product, `make test` runs the test suite.
# Both install what they need first: Debian packages where missing, a virtualenv in .venv, the package.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test deps bench clean

deps: $(STAMP)

$(STAMP): pyproject.toml scripts/system-deps.sh
	scripts/system-deps.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: deps
	VENV=$(VENV) scripts/run-or-demo.sh

test: deps
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: deps
	$(VENV)/bin/percepnet-live bench

clean:
	rm -rf $(VENV) build *.egg-info
