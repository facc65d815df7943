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
# Browser tests (tests/web) drive Debian's Chromium through Playwright (Playwright's own browser download is not
# used). Install it, and CJK fonts for the demo screenshot, when missing and we are root with apt-get; otherwise
# those tests skip with the reason shown (and fail under CI=true).
browser_pkgs=""
[ -x /usr/bin/chromium ] || browser_pkgs="chromium"
# Deployment tests (tests/deploy) run two replicas behind Debian's nginx (/usr/sbin/nginx).
[ -x /usr/sbin/nginx ] || browser_pkgs="$browser_pkgs nginx"
# Prometheus rule and config tests (tests/deploy/test_prometheus_rules.py) run Debian's promtool (/usr/bin/promtool).
[ -x /usr/bin/promtool ] || browser_pkgs="$browser_pkgs prometheus"
{ command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh 2>/dev/null)" ]; } || browser_pkgs="$browser_pkgs fonts-noto-cjk"
if [ -n "${browser_pkgs// /}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # shellcheck disable=SC2086 # word splitting of the package list is intended
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $browser_pkgs >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $browser_pkgs >/dev/null 2>&1; } \
    || echo "note: could not install$browser_pkgs with apt-get; browser/deployment tests may be skipped" >&2
fi
.venv/bin/ruff check kefu tests benchmarks
.venv/bin/ruff format --check kefu tests benchmarks
.venv/bin/mypy
.venv/bin/lint-imports --no-logo
.venv/bin/python -m pytest -q -ra "$@"
