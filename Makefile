# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install demo test test-fast lint bench clean

$(BIN)/asyncq: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,uvloop]'
	touch $@

install: $(BIN)/asyncq

demo: install
	$(BIN)/asyncq demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -ra

# The unit tier: no Redis, no processes, a few seconds (tests/unit).
test-fast: install
	$(BIN)/pytest tests/unit -q

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
