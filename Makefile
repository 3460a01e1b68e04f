# Two commands do all the setup on a fresh machine:
#   make run    - the service on the embedded default (SQLite, local Ray, no external servers)
#   make test   - the whole test suite (needs PostgreSQL and Redis on 127.0.0.1 for its integration tests)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/conductor up

test: install
	$(BIN)/python -m pytest -q -ra

clean:
	rm -rf $(VENV) .pytest_cache
