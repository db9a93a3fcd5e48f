# Two commands matter: `make demo` and `make test`. Everything else is a step they use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test quick lint typecheck unit system-deps bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the tests need: etcd (installed when missing; tests start their own
# servers on loopback) and setpriv (util-linux, to test permission errors as root).
system-deps:
	@sh scripts/etcd.sh >/dev/null
	@command -v setpriv >/dev/null || (apt-get update -qq && apt-get install -y -qq util-linux)

demo: venv
	$(BIN)/python examples/demo.py

lint: venv
	$(BIN)/ruff check src tests bench examples

typecheck: venv
	$(BIN)/mypy

unit: venv system-deps
	$(BIN)/pytest -q

test: lint typecheck unit

# The developers' fast subset: every test but those marked slow (see tests/conftest.py).
quick: venv system-deps
	$(BIN)/pytest -q -m "not slow"

bench: venv
	$(BIN)/python bench/rpc.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
