# The two commands: `make run` (everything, on the embedded default) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# `make run` is development: DEBUG on (debug pages, a SECRET_KEY generated in ./var), and the
# web server and every mail listener on 127.0.0.1 unless WEB_BIND / MAIL_BIND_ADDRESS say
# otherwise. Production is docker-compose.yml (DEBUG=0, SITE_URL, SECRET_KEY).
DEBUG ?= 1

.PHONY: run test lint

$(BIN)/.installed: requirements.txt requirements-runtime.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

run: $(BIN)/.installed
	DEBUG=$(DEBUG) $(BIN)/python manage.py migrate --noinput
	DEBUG=$(DEBUG) $(BIN)/python manage.py serve

test: $(BIN)/.installed
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
