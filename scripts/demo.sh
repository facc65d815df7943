#!/usr/bin/env bash
# Install kefu into .venv and run the demo shop bot (SQLite, in-process state, demo mode, no API key needed).
# Extra arguments go to `kefu serve`, e.g. ./scripts/demo.sh --port 8080
# pip runs only when pyproject.toml changed since the last install (a stamp with its hash in .venv), so a restart
# is quick; KEFU_REINSTALL=1 forces it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.kefu-installed
want="$(.venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(open("pyproject.toml","rb").read()).hexdigest())')"
if [ "${KEFU_REINSTALL:-0}" = 1 ] || [ ! -x .venv/bin/kefu ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
  echo "$want" > "$stamp"
fi
export KEFU_DEMO="${KEFU_DEMO:-1}"
exec .venv/bin/kefu serve "$@"
