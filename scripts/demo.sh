#!/usr/bin/env bash
# Install kefu into .venv and run the demo shop bot (SQLite, in-process state, demo mode, no API key needed).
# Extra arguments go to `kefu serve`, e.g. ./scripts/demo.sh --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e .
export KEFU_DEMO="${KEFU_DEMO:-1}"
exec .venv/bin/kefu serve "$@"
