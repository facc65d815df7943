"""Redis and PostgreSQL instances the test starts, kills and restarts itself, on spare ports (never the machine's).

Binaries: ``redis-server`` and PostgreSQL's ``initdb``/``postgres`` (Debian: /usr/lib/postgresql/*/bin). Without
them the tests are skipped with the reason; under ``CI=true`` they fail. PostgreSQL refuses to run as root, so as
root it runs as the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import free_port, service_unavailable


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


@dataclass
class OwnRedis:
    """A redis-server of the test's own."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


@dataclass
class OwnPostgres:
    """A PostgreSQL cluster of the test's own, in a temporary directory."""

    bindir: Path
    datadir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)

    def init(self) -> OwnPostgres:
        self.datadir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.datadir, "postgres", "postgres")
        subprocess.run(
            self._as_postgres(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust"),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def start(self) -> OwnPostgres:
        argv = [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)]
        argv += ["-k", str(self.datadir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        self.proc = subprocess.Popen(self._as_postgres(*argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)
        time.sleep(0.3)  # accepting TCP slightly before accepting logins
        return self

    def kill(self) -> None:
        """Immediate shutdown (SIGQUIT: every backend dies at once, no checkpoint, as in a crash) — a SIGKILL of
        the postmaster alone would leave its backends holding the shared memory, and no restart."""
        assert self.proc is not None
        subprocess.run(["pkill", "-QUIT", "-f", f"postgres -D {self.datadir}"], check=False)
        self.proc.wait(20)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        service_unavailable("redis-server", "redis-server binary not found (apt-get install redis-server)")
    redis = OwnRedis(free_port(), tmp_path).start()
    yield redis
    if redis.proc is not None and redis.proc.poll() is None:
        redis.kill()


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        service_unavailable("postgres", "PostgreSQL binaries not found (apt-get install postgresql)")
    # Not under pytest's tmp dir: the postgres user must be able to reach it (pytest's is private to root).
    base = Path(tempfile.mkdtemp(prefix="kefu-pg-"))
    base.chmod(0o755)
    pg = OwnPostgres(Path(found[-1]).parent, base / "data").init().start()
    yield pg
    if pg.proc is not None and pg.proc.poll() is None:
        pg.kill()
    shutil.rmtree(base, ignore_errors=True)
