# The two commands: `make demo` and `make test`. Both set everything up from the lock file.
PYTHON ?= python3
VENV := .venv
TOOLS := .tools
UV := $(TOOLS)/bin/uv
export SCALEREG_HOME ?= $(CURDIR)/var
export UV_PYTHON_DOWNLOADS := never
export DAGSTER_DISABLE_TELEMETRY := 1

CHROMIUM := /usr/bin/chromium
PORT ?= 3000

.PHONY: setup browser postgres demo lint test ui bench team clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv>=0.9,<1"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python $(PYTHON) --quiet
	touch $@

setup: $(VENV)/.synced  ## create .venv and install the project and its test tools from uv.lock

browser:  ## Debian's chromium for the UI test (Playwright drives it; nothing is downloaded at test time)
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "the UI test needs Debian's chromium: sudo apt-get install -y chromium" >&2; exit 1; fi; }

postgres:  ## Debian's PostgreSQL server for the team backend's tests (each test session starts its own throw-away cluster)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	  else echo "the team backend's tests need Debian's postgresql: sudo apt-get install -y postgresql" >&2; exit 1; fi; }

demo: setup  ## ingest the shipped published datasets through the Dagster assets and print a summary
	$(VENV)/bin/scalereg demo

lint: setup  ## ruff: the default rules plus S608 (SQL built from strings); see [tool.ruff] in pyproject.toml
	$(VENV)/bin/python -m ruff check .

test: setup browser postgres lint  ## ruff, then the whole test suite
	$(VENV)/bin/python -m pytest -n 2

ui: setup  ## the Dagster UI on http://127.0.0.1:$(PORT) (default 3000: make ui PORT=3001) with the project's instance
	$(VENV)/bin/scalereg ui --port $(PORT)

SCALE_FAMILIES ?= 1000
bench: setup  ## the benchmarks (scale_bench: SCALE_FAMILIES=1000 takes 15-25 min); record their figures in bench/RESULTS.md
	$(VENV)/bin/python bench/ingest_bench.py
	$(VENV)/bin/python bench/fit_bench.py
	$(VENV)/bin/python bench/scale_bench.py --families $(SCALE_FAMILIES)

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache

team: setup postgres  ## a local team deployment to try: PostgreSQL, the registry on DuckLake, Dagster on PostgreSQL (README, "Running it for a team")
	$(VENV)/bin/python deploy/team.py
