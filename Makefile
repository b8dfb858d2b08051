# Kagibag Contacts. `make run`: the local stack (Tansu, PostgreSQL, four services). `make test`: the test suite.
# Both create .venv and install the project on first use; a stamp makes later runs skip the install.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.install-stamp
CHROMIUM := /usr/bin/chromium

.PHONY: install run test browser

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check --quiet -e ".[dev]"
	@touch $@

run: $(STAMP)
	$(VENV)/bin/contacts dev

# The browser tests drive Debian's chromium (Playwright cannot download a browser here): installed with apt when
# missing, as root or through sudo; the package lists are refreshed only if the first attempt fails.
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
	  || { $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }; \
	}

# Extra pytest arguments: make test ARGS="-k compose -x"
test: $(STAMP) browser
	$(VENV)/bin/python -m pytest $(ARGS)
