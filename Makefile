# httap: `make run` serves the browser app with the simulated board; `make test` runs the suite
# (its browser tests use Debian's chromium, installed here with apt-get when it is missing).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

TLS_DIR ?= .tls

.PHONY: run run-tls example test soak lint format bench clean

$(STAMP): pyproject.toml requirements-test.txt
	command -v chromium >/dev/null && command -v openssl >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq chromium openssl)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

run: $(STAMP)
	$(PY) -m httap serve --listen http://127.0.0.1:8080 --gpio sim

# make run-tls: the same over https://127.0.0.1:8443, with a self-signed pair for trying it
# (your browser will warn: the certificate is signed by nobody it knows).
run-tls: $(STAMP) $(TLS_DIR)/cert.pem
	$(PY) -m httap serve --listen https://127.0.0.1:8443 --gpio sim \
		--tls-certificate $(TLS_DIR)/cert.pem --tls-key $(TLS_DIR)/key.pem

$(TLS_DIR)/cert.pem:
	mkdir -p $(TLS_DIR)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 365 \
		-subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout $(TLS_DIR)/key.pem -out $@ 2>/dev/null
	chmod 600 $(TLS_DIR)/key.pem

# make example NAME=blink (or buzzer, car, simon): one example on the simulated board.
NAME ?= blink
example: $(STAMP)
	$(PY) -m httap serve --config examples/$(NAME)/web.json5

test: $(STAMP)
	$(PY) -m pytest

# make soak MINUTES=2: httap under mixed load (not part of `make test`); fails if it leaks.
soak: $(STAMP)
	$(PY) bench/soak.py $(if $(MINUTES),--minutes $(MINUTES))

lint: $(STAMP)
	$(VENV)/bin/ruff check httap gpio tests bench examples
	$(VENV)/bin/ruff format --check httap gpio tests bench examples

format: $(STAMP)
	$(VENV)/bin/ruff check --fix httap gpio tests bench examples
	$(VENV)/bin/ruff format httap gpio tests bench examples

# bench/run.py installs what is missing: nginx-light and wrk (apt-get), the peers (bench/.venv).
bench: $(STAMP)
	$(PY) bench/run.py $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) .tls bench/.venv build dist *.egg-info .pytest_cache .ruff_cache .hypothesis tests/artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
