#!/usr/bin/env bash
# Install kefu with its dev tools into .venv, then lint, type-check and run every test.
# Redis and PostgreSQL tests use KEFU_TEST_REDIS_URL / KEFU_TEST_DATABASE_URL (defaults: local services);
# they are skipped with a reason when a service is down, and fail instead under CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/ruff check kefu tests benchmarks
.venv/bin/ruff format --check kefu tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -q -ra "$@"
