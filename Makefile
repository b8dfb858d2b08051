# Kagibag Contacts. `make run`: the local stack (Tansu, PostgreSQL, four services). `make test`: the test suite.
# Both create .venv and install the project on first use; a stamp makes later runs skip the install.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.install-stamp

.PHONY: install run test

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check --quiet -e ".[dev]"
	@touch $@

run: $(STAMP)
	$(VENV)/bin/contacts dev

# Extra pytest arguments: make test ARGS="-k compose -x"
test: $(STAMP)
	$(VENV)/bin/python -m pytest $(ARGS)
