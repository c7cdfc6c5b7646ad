# The two set-up commands of the README: `make demo` and `make test`. Each bootstraps the
# installer (uv, pinned) into .tools/, syncs .venv from uv.lock, then runs.
PYTHON ?= python3
UV := .tools/bin/uv
export UV_CACHE_DIR := $(CURDIR)/.cache/uv
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test lint typecheck unit venv browser postgres

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==0.13.8

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

venv: .venv/.synced

demo: .venv/.synced
	.venv/bin/lifecycle demo $(ARGS)

lint: .venv/.synced
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports

typecheck: .venv/.synced
	.venv/bin/mypy lifecycle_assets bentos

# The replay report is tested in headless Chromium (Debian's package; needs apt and root).
browser:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

# The scale-out tests start their own PostgreSQL server (Debian's package: initdb, pg_ctl).
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; }

# The tests exercise the torch-xla path on the CPU, so the TPU path is exercised everywhere (docs/architecture.md).
test: lint typecheck browser postgres
	PJRT_DEVICE=CPU .venv/bin/pytest $(ARGS)
