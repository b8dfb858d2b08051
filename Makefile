# Kagibag Contacts. `make run`: the local stack (Tansu, PostgreSQL, four services). `make test`: the test suite.
# Both create .venv and install the locked dependencies (requirements/dev.txt: runtime + local stack + dev tools,
# every file checked against its hash) on first use; a stamp makes later runs skip the install. When the lock or
# pyproject.toml changes, .venv is built anew, so it holds exactly what the lock says.
# `make lock` re-resolves the lock files after pyproject.toml changed; `make upgrade` moves every unpinned
# dependency to its newest release (`make upgrade PACKAGES="ruff mypy"`: only those). See README, "Dependencies".

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.install-stamp
PIP := $(VENV)/bin/python -m pip --disable-pip-version-check
UV := $(VENV)/bin/uv
LOCK := requirements/dev.txt
CHROMIUM := /usr/bin/chromium

.PHONY: install run test lint browser lock upgrade

install: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PIP) install --quiet --no-deps --no-build-isolation --editable .
	@$(PIP) check || { echo 'requirements/dev.txt does not hold what pyproject.toml asks for: run make lock' >&2; exit 1; }
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

# Extra pytest arguments: make test ARGS="-k compose -x". The suite runs in WORKERS processes (pytest-xdist), a test
# module per worker at a time (its started services are shared by its tests); WORKERS=0 runs it in this process.
WORKERS ?= 2
test: $(STAMP) browser
	$(VENV)/bin/python -m pytest $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadfile) --durations=25 $(ARGS)

# ruff, then mypy over everything (shared/ and the services' domain modules under stricter flags: pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy services shared ops bench tests

# The three lock files, all resolved for Python 3.11 on every platform (--universal) with hashes:
#   requirements/dev.txt      everything .venv holds: the project's dependencies and its extras local and dev,
#                             plus the build backend (requirements/build.in)
#   requirements/runtime.txt  what the image installs: the project's dependencies only, at dev.txt's versions
#   requirements/build.txt    the build backend the image builds the project's wheel with, at dev.txt's version
# A version already in a lock file is kept unless the constraints in pyproject.toml exclude it, or it is upgraded.
LOCK_OPTIONS = --quiet --generate-hashes --universal --python-version 3.11 --custom-compile-command "make lock"
UPGRADE :=

lock: | $(UV)
	$(UV) pip compile $(LOCK_OPTIONS) $(UPGRADE) pyproject.toml requirements/build.in \
	  --extra local --extra dev -o requirements/dev.txt
	$(UV) pip compile $(LOCK_OPTIONS) pyproject.toml -c requirements/dev.txt -o requirements/runtime.txt
	$(UV) pip compile $(LOCK_OPTIONS) requirements/build.in -c requirements/dev.txt -o requirements/build.txt

upgrade: UPGRADE = $(if $(PACKAGES),$(foreach package,$(PACKAGES),--upgrade-package $(package)),--upgrade)
upgrade: lock

# uv comes with the dev lock; only a checkout that never installed needs this.
$(UV):
	$(MAKE) install
