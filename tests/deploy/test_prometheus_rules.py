"""Prometheus alert rules, scrape config and the Grafana dashboard in deploy/: valid, unit-tested, and written over
metrics kefu really exports.

``promtool`` comes from Debian's ``prometheus`` package (``scripts/test.sh`` installs it when it runs as root).
Without it the promtool tests are skipped with the reason shown; under ``CI=true`` they fail. The checks of metric
and label names need no promtool: they compare every PromQL expression with kefu's own registry
(:class:`kefu.obs.metrics.Metrics`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from kefu.obs.metrics import Metrics
from tests.support import service_unavailable

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
GRAFANA_DIR = REPO / "deploy" / "grafana"
RULES = PROM_DIR / "alerts.yml"
RULES_TEST = PROM_DIR / "alerts_test.yml"
PROM_CONFIG = PROM_DIR / "prometheus.yml"
DASHBOARD = GRAFANA_DIR / "kefu.json"
OPERATIONS = REPO / "docs" / "operations.md"

# Series the rules and the dashboard may read that are not kefu's: the scrape's own `up`, and the blackbox
# exporter's probe of /readyz (job kefu-ready in prometheus.yml).
FOREIGN = {"up": {"job", "instance"}, "probe_success": {"job", "instance"}}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
SEVERITIES = {"critical", "warning", "info"}


# --------------------------------------------------------------------------------------------------- promtool


def _find_promtool() -> str | None:
    for candidate in (os.environ.get("KEFU_TEST_PROMTOOL"), "/usr/bin/promtool", shutil.which("promtool")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool binary, or skip (fail under CI=true)."""
    found = _find_promtool()
    if found is None:
        service_unavailable("promtool", "not found (apt-get install prometheus, or set KEFU_TEST_PROMTOOL)")
    assert found is not None
    return found


def run_promtool(promtool: str, *args: str, cwd: Path = PROM_DIR) -> str:
    result = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed ({result.returncode}):\n{output}"
    return output


# --------------------------------------------------------------------------------------------------- the files


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def query_panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows are layout only), nested ones of collapsed rows included."""
    for panel in dash["panels"]:
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_exprs(dash: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in query_panels(dash) for target in panel.get("targets", [])]


GRAFANA_VARS = {"$__rate_interval": "5m", "$__range": "6h", "$__interval": "1m", "$job": "kefu", "$instance": ".*"}


def substitute(expr: str) -> str:
    """A dashboard query with Grafana's variables filled in, as Prometheus would receive it."""
    for name in sorted(GRAFANA_VARS, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARS[name])
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


# --------------------------------------------------------------------------------------------------- kefu's registry


def exported_labels() -> dict[str, set[str]]:
    """Every series name kefu exports (counters as ``_total``, histograms as ``_bucket``/``_sum``/``_count``),
    with the labels it carries."""
    metrics = Metrics()
    labels_of = {
        metric._name: set(metric._labelnames)  # noqa: SLF001 (prometheus_client keeps them private)
        for metric in vars(metrics).values()
        if isinstance(metric, MetricWrapperBase)
    }
    names: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        labels = labels_of[family.name]
        if family.type == "counter":
            names[f"{family.name}_total"] = labels
            names[f"{family.name}_created"] = labels
        elif family.type == "histogram":
            names[f"{family.name}_bucket"] = labels | {"le"}
            names[f"{family.name}_sum"] = labels
            names[f"{family.name}_count"] = labels
            names[f"{family.name}_created"] = labels
        else:
            names[family.name] = labels
    return names


# --------------------------------------------------------------------------------------------------- PromQL names

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)")
_KEYWORDS = {
    # aggregation operators (followed by a grouping clause or their argument)
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile",
    # binary operators and modifiers
    "and", "or", "unless", "atan2", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "inf", "nan",
}  # fmt: skip
_SELECTOR = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)\s*\(")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords or labels."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub(r"\1", text)
    names = set()
    for match in _IDENT.finditer(text):
        name = match.group(1)
        if name in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue  # a keyword, or a function call
        names.add(name)
    return names


def _balanced(text: str, open_at: int) -> str:
    """The text inside the parenthesis that opens at ``open_at``."""
    depth = 0
    for index in range(open_at, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return text[open_at + 1 : index]
    raise AssertionError(f"unbalanced parentheses in {text!r}")


def label_problems(expr: str, exported: dict[str, set[str]]) -> list[str]:
    """Labels an expression matches on or groups by that the series it reads do not carry."""
    problems: list[str] = []
    text = _STRING.sub('""', expr)
    for selector in _SELECTOR.finditer(expr):
        name = selector.group(1)
        known = exported.get(name, FOREIGN.get(name, set())) | TARGET_LABELS
        for label in _MATCHER_LABEL.findall(_STRING.sub('""', selector.group(2))):
            if label not in known:
                problems.append(f"{name} has no label {label!r}")
    for grouping in _BY.finditer(text):
        inner = _balanced(text, grouping.end() - 1)
        names = metric_names(inner)
        known = set(TARGET_LABELS)
        for name in names:
            known |= exported.get(name, FOREIGN.get(name, set()))
        for label in (part.strip() for part in grouping.group(1).split(",")):
            if label and label not in known:
                problems.append(f"grouping by {label!r}, which none of {sorted(names)} carries")
    return problems


def all_exprs() -> list[tuple[str, str]]:
    """(where, expression) for every alert rule and dashboard query."""
    exprs = [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    for panel in query_panels(dashboard()):
        for target in panel.get("targets", []):
            exprs.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    return exprs


# =================================================================================================== the tests


def test_metric_name_extraction_reads_what_a_query_reads() -> None:
    """The name and label checks below are only as good as this reader of PromQL."""
    expr = (
        'histogram_quantile(0.95, sum by (job, le) (rate(kefu_time_to_first_token_seconds_bucket{job="a"}[5m])))'
        ' > 5 and on (job) sum without (instance) (increase(kefu_turns_total{outcome=~"failed|lost"}[$__range]))'
        " / clamp_min(up, 1e-9) or vector(0) offset 5m"
    )
    assert metric_names(expr) == {"kefu_time_to_first_token_seconds_bucket", "kefu_turns_total", "up"}
    exported = exported_labels()
    assert label_problems(expr, exported) == []
    assert label_problems('sum by (provider) (rate(kefu_upstream_failovers_total{code="x"}[5m]))', exported) == [
        "grouping by 'provider', which none of ['kefu_upstream_failovers_total'] carries"
    ]
    assert label_problems('kefu_turns_total{status="failed"}', exported) == ["kefu_turns_total has no label 'status'"]


def test_every_promql_expression_reads_metrics_kefu_exports() -> None:
    """Each metric name in the alert rules and the dashboard is in kefu's registry (or is `up`/`probe_success`),
    and each label they match on or group by is one that metric has."""
    exported = exported_labels()
    assert "kefu_turns_total" in exported and "kefu_time_to_first_token_seconds_bucket" in exported
    exprs = all_exprs()
    assert len(exprs) > 40
    unknown: list[str] = []
    for where, expr in exprs:
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        unknown += [f"{where}: unknown metric {name}" for name in sorted(names - exported.keys() - FOREIGN.keys())]
        unknown += [f"{where}: {problem}" for problem in label_problems(expr, exported)]
    assert unknown == []
    # The dashboard's variables are filled from a kefu series too.
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            found = re.match(r"label_values\((\w+)", variable["definition"])
            assert found and found.group(1) in exported, variable["definition"]


def test_alert_rules_have_for_severity_summary_description_and_runbook() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    docs = OPERATIONS.read_text(encoding="utf-8")
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))), f"{name}: no `for:`"
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        # The runbook hint points at the section of docs/operations.md about this alert.
        assert annotations["runbook"] == f"docs/operations.md#{name.lower()}", name
        assert re.search(rf"^#+ {name}\s*$", docs, re.M), f"docs/operations.md has no heading for {name}"


def test_the_seeds_rule_pages_at_5_percent_errors_over_5_minutes() -> None:
    """The seeds' rule: error rate above 5 % for 5 minutes pages someone."""
    (rule,) = [rule for rule in alert_rules() if rule["alert"] == "KefuTurnErrorRatioHigh"]
    assert rule["labels"]["severity"] == "critical"
    assert rule["for"] == "5m"
    assert re.search(r"\)\s*>\s*0\.05\s*$", rule["expr"].strip()), rule["expr"]
    assert "[5m]" in rule["expr"] and "kefu_turns_total" in rule["expr"]


def test_every_alert_is_unit_tested_both_ways() -> None:
    """alerts_test.yml has, for each alert, a case where it fires and a case where it must stay quiet."""
    spec = load_yaml(RULES_TEST)
    assert spec["rule_files"] == ["alerts.yml"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in spec["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"
    assert (fires | quiet) - names == set(), "tests of alerts that do not exist"


def test_promtool_checks_the_rules(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", RULES.name)
    assert f"SUCCESS: {len(alert_rules())} rules found" in output, output


def test_promtool_unit_tests_of_the_rules_pass(promtool: str) -> None:
    output = run_promtool(promtool, "test", "rules", RULES_TEST.name)
    assert "SUCCESS" in output and "FAILED" not in output, output


def test_promtool_unit_tests_can_fail(promtool: str, tmp_path: Path) -> None:
    """The unit tests notice a broken rule: with the seeds' threshold raised to 50 % they fail."""
    rules = RULES.read_text(encoding="utf-8")
    broken, count = re.subn(r"\)\s*>\s*0\.05\n", ") > 0.5\n", rules)
    assert count == 1
    (tmp_path / "alerts.yml").write_text(broken, encoding="utf-8")
    shutil.copy(RULES_TEST, tmp_path / "alerts_test.yml")
    result = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "KefuTurnErrorRatioHigh" in result.stdout + result.stderr


def test_promtool_checks_the_scrape_config(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", PROM_CONFIG.name)
    assert "SUCCESS: 1 rule files found" in output, output
    config = load_yaml(PROM_CONFIG)
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (kefu_targets,) = [static["targets"] for static in jobs["kefu"]["static_configs"]]
    assert sorted(kefu_targets) == ["kefu-1:8000", "kefu-2:8000"]
    assert jobs["kefu"].get("metrics_path", "/metrics") == "/metrics"
    (ready_targets,) = [static["targets"] for static in jobs["kefu-ready"]["static_configs"]]
    assert sorted(ready_targets) == ["http://kefu-1:8000/readyz", "http://kefu-2:8000/readyz"]


def test_readiness_probe_keeps_the_replicas_instance_label() -> None:
    """KefuReplicaNotReady names the replica as host:port, like the kefu job's `up`."""
    (job,) = [job for job in load_yaml(PROM_CONFIG)["scrape_configs"] if job["job_name"] == "kefu-ready"]
    (rule,) = [rule for rule in job["relabel_configs"] if rule.get("target_label") == "instance"]
    assert re.fullmatch(rule["regex"], "http://kefu-2:8000/readyz").group(1) == "kefu-2:8000"  # type: ignore[union-attr]


def test_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Every dashboard query (Grafana variables filled in) parses: promtool checks them as recording rules."""
    exprs = dashboard_exprs(dashboard())
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": substitute(e)}
                                                        for i, e in enumerate(exprs)]}]}  # fmt: skip
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    output = run_promtool(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert f"SUCCESS: {len(exprs)} rules found" in output, output


def test_dashboard_is_a_provisionable_json_model() -> None:
    dash = dashboard()
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = list(query_panels(dash))
    assert len(panels) >= 20
    ids = [p["id"] for p in dash["panels"]] + [p["id"] for p in panels if p not in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        title = panel["title"]
        assert panel["targets"], f"panel {title!r} has no query"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, title
        for target in panel["targets"]:
            assert target["expr"].strip(), f"panel {title!r} has an empty query"
            assert target["datasource"]["uid"] == "${datasource}", title


def test_dashboard_shows_what_operators_asked_for() -> None:
    """Traffic by source, latency percentiles, errors by code and provider, breakers and concurrency, cache,
    rate limits, handoffs and relays, CSAT, moderation: each has a panel over its kefu metric."""
    exprs = dashboard_exprs(dashboard())
    read = set().union(*(metric_names(e) for e in exprs))
    wanted = {
        "kefu_turns_total",
        "kefu_time_to_first_token_seconds_bucket",
        "kefu_turn_duration_seconds_bucket",
        "kefu_upstream_errors_total",
        "kefu_upstream_breaker_state",
        "kefu_upstream_concurrency_limit",
        "kefu_upstream_in_flight",
        "kefu_upstream_queue_length",
        "kefu_answer_cache_total",
        "kefu_rate_limited_total",
        "kefu_upstream_text_chunks_total",
        "kefu_handoffs_total",
        "kefu_relayed_messages_total",
        "kefu_csat_sum",
        "kefu_moderation_hits_total",
    }
    assert wanted - read == set()
    groupings = " ".join(exprs)
    assert "sum by (source) (rate(kefu_turns_total" in groupings
    assert "sum by (provider, code) (rate(kefu_upstream_errors_total" in groupings


def test_grafana_provisioning_points_at_the_dashboard_and_the_datasource() -> None:
    provisioning = GRAFANA_DIR / "provisioning"
    (source,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http")
    # the uid the dashboard's datasource variable starts with
    current = {v["name"]: v for v in dashboard()["templating"]["list"]}["datasource"]["current"]
    assert current["value"] == source["uid"]
    (provider,) = load_yaml(provisioning / "dashboards" / "kefu.yml")["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    docs = OPERATIONS.read_text(encoding="utf-8")
    assert provider["options"]["path"] in docs, "docs/operations.md should say where to mount the dashboard"
