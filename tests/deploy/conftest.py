"""Fixtures for deployment tests: two kefu replicas sharing Redis and PostgreSQL behind nginx (deploy/nginx).

nginx comes from Debian's packages (``apt-get install nginx``; ``scripts/test.sh`` installs it when it runs as
root). Without it the tests are skipped with the reason shown; under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import KefuServer, MockLLM, free_port

REPO = Path(__file__).resolve().parents[2]
NGINX_DIR = REPO / "deploy" / "nginx"


def _find_nginx() -> str | None:
    for candidate in (os.environ.get("KEFU_TEST_NGINX"), "/usr/sbin/nginx", shutil.which("nginx")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    """The nginx binary, or skip (fail under CI=true)."""
    found = _find_nginx()
    if found is None:
        message = "nginx not found (/usr/sbin/nginx; apt-get install nginx, or set KEFU_TEST_NGINX)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: deployment tests must run)")
        pytest.skip(message)
    return found


def render_kefu_conf(listen: int, replicas: list[int]) -> str:
    """deploy/nginx/kefu.conf with our ports: the replica lines between the markers and the listen port."""
    text = (NGINX_DIR / "kefu.conf").read_text(encoding="utf-8")
    servers = "".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=10s;\n" for port in replicas)
    text, count = re.subn(r"(# BEGIN replicas\n).*?(\s*# END replicas)", rf"\g<1>{servers}\g<2>", text, flags=re.S)
    assert count == 1, "deploy/nginx/kefu.conf lost its BEGIN/END replicas markers"
    text, count = re.subn(r"listen \d+;", f"listen 127.0.0.1:{listen};", text)
    assert count == 1, "deploy/nginx/kefu.conf should have exactly one listen line"
    return text


@dataclass
class Proxy:
    """A running nginx (not a daemon: a child of the test) with its own prefix, pid and logs."""

    port: int
    proc: subprocess.Popen[bytes]
    prefix: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        parts = []
        for name in ("error.log", "access.log"):
            path = self.prefix / "logs" / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_proxy(nginx: str, prefix: Path, replicas: list[int]) -> Proxy:
    """Render deploy/nginx into ``prefix`` and run nginx in the foreground on a free port."""
    (prefix / "conf").mkdir(parents=True)
    (prefix / "logs").mkdir()
    port = free_port()
    (prefix / "conf" / "kefu.conf").write_text(render_kefu_conf(port, replicas), encoding="utf-8")
    main = NGINX_DIR.joinpath("nginx.conf").read_text(encoding="utf-8")
    main = main.replace("worker_processes auto;", "worker_processes 1;")
    temp = "".join(
        f"    {kind}_temp_path {prefix / 'tmp' / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = main.replace("http {\n", "http {\n" + temp, 1)
    # The workers must be able to write the temp dirs under the test's private tmp dir.
    head = "user root;\n" if os.geteuid() == 0 else ""
    (prefix / "conf" / "nginx.conf").write_text(head + main, encoding="utf-8")
    (prefix / "tmp").mkdir()
    proc = subprocess.Popen(
        [
            nginx,
            "-p",
            str(prefix),
            "-c",
            str(prefix / "conf" / "nginx.conf"),
            "-e",
            str(prefix / "logs" / "error.log"),
            "-g",
            f"daemon off; master_process on; pid {prefix / 'nginx.pid'};",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    proxy = Proxy(port=port, proc=proc, prefix=prefix)
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"nginx exited with {proc.returncode}:\n{out}\n{proxy.logs()}")
        try:
            if httpx.get(f"{proxy.url}/healthz", timeout=1).status_code == 200:
                return proxy
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proxy.stop()
            raise RuntimeError(f"nginx not answering on {proxy.url}:\n{proxy.logs()}")
        time.sleep(0.05)


@dataclass
class Cluster:
    """Two replicas and the proxy in front of them."""

    replicas: list[KefuServer]
    proxy: Proxy


@pytest.fixture
def make_cluster(
    make_server: Callable[..., KefuServer],
    nginx_bin: str,
    redis_url: str,
    postgres_db: str,
    tmp_path: Path,
) -> Iterator[Callable[..., Cluster]]:
    """Start two kefu replicas (shared Redis + PostgreSQL) behind nginx; extra env goes to both replicas."""
    proxies: list[Proxy] = []

    def make(mock: MockLLM, **extra: str) -> Cluster:
        shared = {
            "KEFU_REDIS_URL": redis_url,
            "KEFU_REDIS_PREFIX": f"kefu-test-{uuid.uuid4().hex[:8]}",
            "KEFU_DATABASE_URL": postgres_db,
            "KEFU_TURN_LEASE_SECONDS": "1.5",
            **extra,
        }
        replicas = [make_server(mock, **shared), make_server(mock, **shared)]
        proxy = start_proxy(nginx_bin, tmp_path / "nginx", [r.port for r in replicas])
        proxies.append(proxy)
        return Cluster(replicas=replicas, proxy=proxy)

    yield make
    for proxy in proxies:
        proxy.stop()
