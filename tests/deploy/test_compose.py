"""deploy/compose: valid against the Compose Specification's JSON schema, and the topology the failover test runs
as processes (tests/deploy/test_failover.py): two kefu replicas sharing one Redis, one PostgreSQL and one JWT secret
behind nginx with deploy/nginx's settings, a migration before them, Prometheus and Grafana wired to deploy/.

The schema is the copy that ``check-jsonschema`` vendors (``builtin_schemas/vendor/compose-spec.json``, the
``dev`` extra); without it the schema tests are skipped with the reason shown, and under ``CI=true`` they fail.
Nothing here runs containers (no Docker engine on CI's machines).
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from kefu.cli.main import app as kefu_cli
from kefu.config import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / "env.example"
NGINX_CONF = REPO / "deploy" / "nginx" / "kefu.conf"
COMPOSE_NGINX_CONF = COMPOSE_DIR / "nginx" / "kefu.conf"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = REPO / "deploy" / "grafana"
REPLICAS = ("kefu-1", "kefu-2")
PORT = 8000
# What the failover test's replicas share besides its own speed-ups (tests/deploy/conftest.py `make_cluster`, and
# the JWT secret and API keys every test server gets from tests/conftest.py `server_env`).
SHARED = ("KEFU_REDIS_URL", "KEFU_REDIS_PREFIX", "KEFU_DATABASE_URL", "KEFU_JWT_SECRET", "KEFU_API_KEYS")
TEST_ONLY = {"KEFU_TURN_LEASE_SECONDS"}  # shortened so the failover tests wait 1.5 s, not 10


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # merge keys (<<) resolved
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: str) -> str:
    """A value as compose runs it with no .env: ``${VAR:-default}`` becomes the default."""
    return INTERPOLATION.sub(lambda m: m.group(2) or "", value)


def env_of(service: str) -> dict[str, str]:
    return {k: interpolate(str(v)) for k, v in services()[service]["environment"].items()}


def duration_seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a compose duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)


def cli_accepts(argv: list[str]) -> None:
    """``kefu <argv>`` names a command that exists and takes every ``--option`` in argv."""
    words = [a for a in argv if not a.startswith("-")]
    result = CliRunner().invoke(kefu_cli, [*words, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, f"kefu {' '.join(words)} --help failed:\n{result.output}"
    for option in (a for a in argv if a.startswith("--")):
        assert option in result.output, f"kefu {' '.join(words)} has no option {option}"


# --------------------------------------------------------------------------------------------------- schema


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    try:
        text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        message = f"the Compose Specification schema (check-jsonschema's vendored copy) is missing: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: deployment checks must run)")
        pytest.skip(f"{message}; pip install -e '.[dev]'")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_specification(compose_schema: dict[str, Any]) -> None:
    assert "compose" in compose_schema.get("$id", "") and "services" in compose_schema["properties"]
    assert schema_errors(compose_schema, compose()) == []


@pytest.mark.parametrize(
    ("where", "bad"),
    [
        ("kefu-1", {"depends_on": {"migrate": {"condition": "service_finished"}}}),
        ("kefu-1", {"stop_grace_period": 75}),
        ("nginx", {"restart": ["always"]}),
        ("redis", {"helthcheck": {"test": ["CMD", "true"]}}),
    ],
)
def test_schema_rejects_broken_files(compose_schema: dict[str, Any], where: str, bad: dict[str, Any]) -> None:
    document = compose()
    document["services"][where].update(bad)
    assert schema_errors(compose_schema, document)


# --------------------------------------------------------------------------------------------------- topology


def test_the_services() -> None:
    assert set(services()) == {
        *REPLICAS,
        "nginx",
        "redis",
        "postgres",
        "migrate",
        "prometheus",
        "blackbox",
        "grafana",
    }


def test_two_replicas_of_one_image_with_one_configuration() -> None:
    first, second = (services()[name] for name in REPLICAS)
    assert first["image"] == second["image"] and first["build"] == second["build"]
    assert first["environment"] == second["environment"]
    assert first["env_file"] == second["env_file"]
    assert services()["migrate"]["environment"] == first["environment"]
    assert services()["migrate"]["image"] == first["image"]
    assert [services()[name].get("hostname") for name in REPLICAS] == list(REPLICAS)


def failover_shared_env() -> set[str]:
    """The KEFU_* keys tests/deploy/conftest.py's make_cluster gives both replicas (the `shared` dict)."""
    tree = ast.parse((REPO / "tests" / "deploy" / "conftest.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "shared" for t in node.targets):
            assert isinstance(node.value, ast.Dict)
            return {k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    raise AssertionError("tests/deploy/conftest.py has no `shared = {...}` in make_cluster any more")


def test_replicas_share_what_the_failover_test_shares() -> None:
    from_failover = failover_shared_env()
    assert "KEFU_REDIS_URL" in from_failover and "KEFU_DATABASE_URL" in from_failover
    assert from_failover - TEST_ONLY <= set(SHARED), "the failover test shares something compose does not"
    env = env_of("kefu-1")
    for key in SHARED:
        assert env.get(key), f"{key} is not set for the replicas"


def test_replicas_share_redis_and_postgresql() -> None:
    env = env_of("kefu-1")
    redis = urlsplit(env["KEFU_REDIS_URL"])
    assert redis.scheme == "redis" and redis.hostname == "redis" and redis.port == 6379
    database = urlsplit(env["KEFU_DATABASE_URL"])
    assert database.scheme == "postgresql+asyncpg" and database.hostname == "postgres"
    postgres = env_of("postgres")
    assert database.username == postgres["POSTGRES_USER"] and database.path == f"/{postgres['POSTGRES_DB']}"
    # One placeholder (or one real value from .env) for both sides of the password.
    raw_url = services()["kefu-1"]["environment"]["KEFU_DATABASE_URL"]
    assert services()["postgres"]["environment"]["POSTGRES_PASSWORD"] in raw_url
    assert "--save" in services()["redis"]["command"]


def test_replica_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every KEFU_* name is a real setting (a typo would be silently ignored by kefu) and the values parse."""
    env = env_of("kefu-1")
    fields = set(Settings.model_fields)
    for key in env:
        assert key.startswith("KEFU_") and key.removeprefix("KEFU_").lower() in fields, f"{key} is not a setting"
    for key in [k for k in os.environ if k.startswith("KEFU_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.redis_url and not settings.is_sqlite
    assert settings.jwt_secret is not None and len(settings.jwt_secret.get_secret_value()) >= 32


def test_start_order_migration_first_nginx_last() -> None:
    svc = services()
    for name in REPLICAS:
        assert svc[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    assert svc["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert svc["migrate"]["restart"] == "no"
    assert svc["migrate"]["command"] == ["kefu", "db", "upgrade"]
    cli_accepts(svc["migrate"]["command"][1:])
    assert svc["nginx"]["depends_on"] == {name: {"condition": "service_healthy"} for name in REPLICAS}
    # Every service someone waits for as healthy has a health check.
    for service in svc.values():
        depends = service.get("depends_on") or {}
        for target, how in depends.items() if isinstance(depends, dict) else []:
            if how.get("condition") == "service_healthy":
                assert "healthcheck" in svc[target], f"{target} is waited for as healthy but has no healthcheck"


def test_replica_healthcheck_is_readiness_on_the_served_port() -> None:
    test = services()["kefu-1"]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1:3] == ["python", "-c"]
    assert f"http://127.0.0.1:{PORT}/readyz" in test[3]
    assert services()["kefu-1"]["expose"] == [str(PORT)]


def test_stop_grace_covers_the_drain() -> None:
    """SIGTERM: up to KEFU_SHUTDOWN_GRACE for open streams, again for running turns, then 5 s to store the rest."""
    grace = float(env_of("kefu-1")["KEFU_SHUTDOWN_GRACE"])
    for name in REPLICAS:
        service = services()[name]
        assert service["stop_signal"] == "SIGTERM"
        assert duration_seconds(service["stop_grace_period"]) > 2 * grace + 5
        assert service["init"] is True  # a real PID 1 forwards the signal and reaps children


def test_duration_parser() -> None:
    assert duration_seconds("1m15s") == 75 and duration_seconds("75s") == 75
    with pytest.raises(AssertionError):
        duration_seconds("75")


def test_replicas_are_locked_down() -> None:
    for name in REPLICAS:
        service = services()[name]
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"]
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"]


def test_images_are_pinned() -> None:
    for name, service in services().items():
        image = interpolate(service["image"])
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"


# --------------------------------------------------------------------------------------------------- secrets


def env_example() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def strings(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


SECRET_NAMES = re.compile(r"PASSWORD|SECRET|API_KEY")


def test_secrets_are_placeholders_read_from_the_environment() -> None:
    used = {m.group(1) for value in strings(compose()) for m in INTERPOLATION.finditer(value)}
    example = env_example()
    assert used <= set(example), f"env.example does not list {sorted(used - set(example))}"
    for name, value in example.items():
        if SECRET_NAMES.search(name):
            assert value == "" or value.startswith("change-me"), f"env.example has a real-looking {name}"
    # Each secret in compose.yaml is an interpolated variable with a placeholder default, never a literal.
    for service in services().values():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAMES.search(key):
                match = INTERPOLATION.fullmatch(str(value))
                assert match, f"{key} is a literal in compose.yaml"
                assert (match.group(2) or "") == "" or match.group(2).startswith("change-me"), key
    assert set((COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").split()) >= {".env", "kefu.env"}


# --------------------------------------------------------------------------------------------------- nginx


def nginx_tokens(text: str) -> Iterator[str]:
    for match in re.finditer(r'#[^\n]*|"(?:\\.|[^"\\])*"|\'[^\']*\'|[{};]|[^\s{};"\'#]+', text):
        token = match.group(0)
        if not token.startswith("#"):
            yield token


def nginx_directives(text: str) -> list[tuple[tuple[str, ...], str, tuple[str, ...]]]:
    """(enclosing blocks, directive, arguments) for every directive, blocks included, in order."""
    result: list[tuple[tuple[str, ...], str, tuple[str, ...]]] = []
    context: list[str] = []
    words: list[str] = []
    for token in nginx_tokens(text):
        if token == ";":
            result.append((tuple(context), words[0], tuple(words[1:])))
            words = []
        elif token == "{":
            result.append((tuple(context), words[0], tuple(words[1:])))
            context.append(" ".join(words))
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            context.pop()
        else:
            words.append(token)
    assert not context and not words, "unbalanced nginx configuration"
    return result


def without_upstream_servers(
    directives: list[tuple[tuple[str, ...], str, tuple[str, ...]]],
) -> list[tuple[tuple[str, ...], str, tuple[str, ...]]]:
    return [d for d in directives if not (d[0] and d[0][-1].startswith("upstream ") and d[1] == "server")]


def upstream_servers(text: str) -> list[str]:
    return [
        args[0] for ctx, name, args in nginx_directives(text) if ctx and ctx[-1] == "upstream kefu" and name == "server"
    ]


def test_nginx_parser() -> None:
    text = 'upstream u { server a:1 x=1; # c\n keepalive 2; }\nserver { location / { proxy_set_header C ""; } }'
    assert nginx_directives(text) == [
        ((), "upstream", ("u",)),
        (("upstream u",), "server", ("a:1", "x=1")),
        (("upstream u",), "keepalive", ("2",)),
        ((), "server", ()),
        (("server",), "location", ("/",)),
        (("server", "location /"), "proxy_set_header", ("C", '""')),
    ]


def test_compose_nginx_differs_from_deploy_nginx_only_in_upstream_servers() -> None:
    ours = COMPOSE_NGINX_CONF.read_text(encoding="utf-8")
    theirs = NGINX_CONF.read_text(encoding="utf-8")
    assert without_upstream_servers(nginx_directives(ours)) == without_upstream_servers(nginx_directives(theirs))
    assert upstream_servers(ours) == [f"{name}:{PORT}" for name in REPLICAS]
    assert len(upstream_servers(theirs)) == len(REPLICAS)
    # The server lines keep their parameters (max_fails, fail_timeout) too.
    params = {args[1:] for ctx, name, args in nginx_directives(ours + theirs) if name == "server" and ctx}
    assert len(params) == 1


def test_the_comparison_notices_a_changed_directive() -> None:
    ours = COMPOSE_NGINX_CONF.read_text(encoding="utf-8").replace("proxy_buffering off;", "proxy_buffering on;")
    theirs = NGINX_CONF.read_text(encoding="utf-8")
    assert without_upstream_servers(nginx_directives(ours)) != without_upstream_servers(nginx_directives(theirs))


def test_nginx_serves_the_compose_config() -> None:
    nginx = services()["nginx"]
    assert "./nginx/kefu.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    listen = [args for _, name, args in nginx_directives(COMPOSE_NGINX_CONF.read_text()) if name == "listen"]
    assert listen == [("8080",)] and nginx["ports"] == ["8080:8080"]


# --------------------------------------------------------------------------------------------------- monitoring


def mounts(service: str) -> dict[str, Path]:
    """container path -> host path of each bind mount (relative sources resolved from deploy/compose)."""
    result = {}
    for volume in services()[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            result[target] = (COMPOSE_DIR / source).resolve()
    return result


def test_every_bind_mount_exists() -> None:
    for name in services():
        for target, source in mounts(name).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_prometheus_scrapes_the_replicas_and_loads_the_rules() -> None:
    assert mounts("prometheus")["/etc/prometheus"] == PROMETHEUS.parent
    assert "--config.file=/etc/prometheus/prometheus.yml" in services()["prometheus"]["command"]
    config = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (targets,) = [s["targets"] for s in jobs["kefu"]["static_configs"]]
    assert sorted(targets) == [f"{name}:{PORT}" for name in REPLICAS]
    (blackbox,) = [r["replacement"] for r in jobs["kefu-ready"]["relabel_configs"] if "replacement" in r]
    assert blackbox.split(":")[0] in services()


def test_grafana_is_provisioned_from_deploy_grafana() -> None:
    grafana = mounts("grafana")
    provisioning = GRAFANA / "provisioning"
    assert grafana["/etc/grafana/provisioning/datasources"] == provisioning / "datasources"
    assert grafana["/etc/grafana/provisioning/dashboards"] == provisioning / "dashboards"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "kefu.yml").read_text())["providers"]
    assert grafana[f"{provider['options']['path']}/kefu.json"] == GRAFANA / "kefu.json"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert urlsplit(source["url"]).hostname in services()
