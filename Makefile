# httap: `make run` serves the browser app with the simulated board; it installs only the
# server (the package, json5, pyserial: no root, no apt-get). `make test` adds the test
# tools (requirements-test.txt) and runs the suite; its browser tests use Debian's
# chromium and its MQTT tests Debian's mosquitto, installed here with apt-get (sudo when
# not root) only when missing.
PYTHON ?= python3
# One venv per Python: `make test PYTHON=python3.9` gets .venv-3.9, never a .venv that
# another Python made.
PYTHON_SUFFIX := $(patsubst python%,%,$(notdir $(PYTHON)))
VENV    ?= $(if $(filter-out 3,$(PYTHON_SUFFIX)),.venv-$(PYTHON_SUFFIX),.venv)
PY      := $(VENV)/bin/python
# Two layers, one stamp each: `make run` after `make test` installs nothing, and `make
# test` after `make run` adds only the test layer.
RUNTIME := $(VENV)/.runtime
TOOLS   := $(VENV)/.tools
LISTEN  ?= http://127.0.0.1:8080

TLS_DIR ?= .tls

.PHONY: run run-tls example test test-all campaign soak lint format bench clean

# The venv gets no pip of its own when $(PYTHON)'s pip can install into it (`pip --python`,
# pip 22.3 and later): ensurepip would cost more than the rest of `make run` together.
$(PY):
	if $(PYTHON) -m pip --help 2>/dev/null | grep -q -e '--python <python>'; \
	then $(PYTHON) -m venv --without-pip $(VENV); else $(PYTHON) -m venv $(VENV); fi
PIP = $(if $(wildcard $(VENV)/bin/pip),$(PY) -m pip,$(PYTHON) -m pip --python $(PY))

$(RUNTIME): pyproject.toml requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt -e .
	touch $@

$(VENV)/.extras-%: $(RUNTIME)
	$(PIP) install --quiet -e '.[$*]'
	touch $@

# The test layer: the browser, openssl, the MQTT broker (mosquitto, in /usr/sbin) and
# Debian's libgpiod v1 bindings (python3-libgpiod, for the system Python: a contract test
# runs the real v1 library) when missing, the tools, and pip (a test builds a wheel with it).
$(TOOLS): $(RUNTIME) requirements-test.txt
	@missing=$$(for tool in chromium openssl mosquitto curl; do \
		PATH="$$PATH:/usr/sbin" command -v $$tool >/dev/null || echo $$tool; done); \
	/usr/bin/python3 -c 'import gpiod' 2>/dev/null || missing="$$missing python3-libgpiod"; \
	if [ -n "$$missing" ]; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "the tests need:" $$missing; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq $$missing; \
	fi
	$(PIP) install --quiet -r requirements-test.txt pip
	touch $@

# make run LISTEN=http://:8080 serves every address (the default is this machine only).
# make run EXTRAS=mqtt,files adds pyproject.toml's extras (the venv has no pip of its own).
run: $(RUNTIME) $(if $(EXTRAS),$(VENV)/.extras-$(EXTRAS))
	$(PY) -m httap serve --listen $(LISTEN) --gpio sim

# make run-tls: the same over https://127.0.0.1:8443, with a self-signed pair for trying it
# (your browser will warn: the certificate is signed by nobody it knows).
run-tls: $(RUNTIME) $(TLS_DIR)/cert.pem
	$(PY) -m httap serve --listen https://127.0.0.1:8443 --gpio sim \
		--tls-certificate $(TLS_DIR)/cert.pem --tls-key $(TLS_DIR)/key.pem

$(TLS_DIR)/cert.pem:
	mkdir -p $(TLS_DIR)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
		-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout $(TLS_DIR)/key.pem -out $@ 2>/dev/null
	chmod 600 $(TLS_DIR)/key.pem

# make example NAME=blink (or buzzer, car, simon, scpi): one example on the simulated board.
NAME ?= blink
example: $(RUNTIME)
	$(PY) -m httap serve --config examples/$(NAME)/web.json5

test: $(TOOLS)
	$(PY) -m pytest

# make test-all: `make test` on every Python from 3.9 up found here (pyenv's versions, else
# python3.X on the PATH), each in its own .venv-3.X, then one line per Python.
PYENV_ROOT ?= $(HOME)/.pyenv
PYTHONS = $(shell for minor in 9 10 11 12 13 14 15 16 17 18 19; do \
	found=$$(ls -d $(PYENV_ROOT)/versions/3.$$minor.*/bin/python3.$$minor 2>/dev/null \
		| sort -V | tail -n 1); \
	[ -n "$$found" ] || found=$$(command -v python3.$$minor); \
	[ -n "$$found" ] && "$$found" -c "" 2>/dev/null && echo "$$found"; done)

test-all:
	@[ -n "$(strip $(PYTHONS))" ] || { echo "no Python 3.9 or newer found"; exit 1; }
	@status=0; summary=""; \
	for python in $(PYTHONS); do \
		version=$$(basename $$python | sed 's/^python//'); \
		log=.venv-$$version.log; \
		echo "make test PYTHON=$$python: output in $$log"; \
		if $(MAKE) --no-print-directory test PYTHON=$$python >$$log 2>&1; then \
			result=passed; \
		else \
			result=FAILED; status=1; \
		fi; \
		[ -f .venv-$$version/.tools ] || result="FAILED at set-up"; \
		tally=$$(grep -E '^[0-9]+ (passed|failed)|(passed|failed|error).* in [0-9.]+s' $$log | tail -n 1); \
		summary="$$summary$$(printf '\nPython %-6s %s: %s' $$version "$$result" "$${tally:-$$(tail -n 1 $$log)}")"; \
	done; \
	echo "$$summary"; \
	exit $$status

# make campaign: tests/system/test_campaign.py on its long budget (HTTAP_CAMPAIGN=long), several
# minutes; `make test` runs it on a short one.
campaign: $(TOOLS)
	HTTAP_CAMPAIGN=long $(PY) -m pytest tests/system/test_campaign.py --hypothesis-show-statistics

# make soak MINUTES=2: httap under mixed load (not part of `make test`); fails if it leaks.
soak: $(TOOLS)
	$(PY) bench/soak.py $(if $(MINUTES),--minutes $(MINUTES))

lint: $(TOOLS)
	$(VENV)/bin/ruff check httap gpio tests bench examples
	$(VENV)/bin/ruff format --check httap gpio tests bench examples

format: $(TOOLS)
	$(VENV)/bin/ruff check --fix httap gpio tests bench examples
	$(VENV)/bin/ruff format httap gpio tests bench examples

# bench/run.py installs what is missing: nginx-light and wrk (apt-get), the peers (bench/.venv).
# make bench QUICK=1: about 2.5 minutes; ONLY=nginx,uvicorn: httap and those; both print only.
bench: $(TOOLS)
	$(PY) bench/run.py $(if $(QUICK),--quick) $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf $(VENV) .venv .venv-* .tls bench/.venv build dist *.egg-info .pytest_cache .ruff_cache .hypothesis tests/artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
