# syntax=docker/dockerfile:1
# kefu: the API server image. Build from the repository root:
#   docker build -t kefu:dev .
# Linted by hadolint in tests/deploy/test_dockerfile.py; the run-time topology is in deploy/compose and deploy/k8s
# (docs/deploy.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: every wheel (kefu's and its dependencies'), then a virtual environment from those wheels only ---
FROM ${PYTHON_IMAGE} AS builder

# Every compiled dependency ships wheels for linux x86_64 and aarch64 (jieba's sdist is pure Python), so this stage
# needs no compiler; it still keeps pip's work and the wheels out of the final image.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY kefu ./kefu
RUN pip wheel --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels kefu

# --- runtime: the virtual environment and nothing to build with ---
FROM ${PYTHON_IMAGE}

# A fixed uid/gid so Kubernetes' runAsUser/fsGroup and volume permissions can name them.
RUN groupadd --system --gid 10001 kefu \
    && useradd --system --uid 10001 --gid kefu --home-dir /var/lib/kefu --create-home --shell /usr/sbin/nologin kefu

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The working directory is the only place kefu writes by default (a SQLite file when KEFU_DATABASE_URL is unset,
# the demo's generated JWT secret); with PostgreSQL and KEFU_JWT_SECRET set the root filesystem can be read-only
# (jieba caches its dictionary in /tmp: give it a tmpfs).
WORKDIR /var/lib/kefu
USER 10001:10001

EXPOSE 8000

# Process up (not readiness: a database outage must not get the container restarted by an orchestrator that acts
# on this). urllib raises on a non-2xx answer or no answer; slim images have no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

# SIGTERM drains: the listening socket closes at once, open streams and running turns get KEFU_SHUTDOWN_GRACE
# seconds (default 30), then what is left is stopped and stored as interrupted. Give the container at least
# 2 x KEFU_SHUTDOWN_GRACE + 10 s before SIGKILL (compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM

# One worker per container: scale with replicas. `kefu serve` applies migrations first (an advisory lock keeps
# concurrent starts safe); the compose file and the Kubernetes Job run `kefu db upgrade` before the replicas.
CMD ["kefu", "serve", "--host", "0.0.0.0", "--port", "8000"]
