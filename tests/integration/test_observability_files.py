"""deploy/: the alert rules and the Grafana dashboard use metrics the gateway really exports,
and the rules pass promtool (when it is installed: Debian's `prometheus` package has it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.fixtures.gateway import RunningGateway

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "oauth2-gateway.json"

#: Metrics the rules and the dashboard may name before the gateway exports them, with the
#: work that brings them. Keep it short, and drop a name once that work has landed.
FROM_LATER_ISSUES: dict[str, str] = {}
#: Series Prometheus makes itself.
SYNTHETIC = {"up"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME = re.compile(r"(?<![A-Za-z0-9_:$])([A-Za-z_:][A-Za-z0-9_:]*)")
#: PromQL words that are not metric names: keywords, functions, aggregations.
_NOT_METRICS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and",
    "or", "unless", "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "count_values", "group", "rate", "irate", "increase", "delta",
    "idelta", "deriv", "histogram_quantile", "time", "absent", "absent_over_time",
    "label_values", "vector", "scalar", "clamp_min", "clamp_max", "abs", "round", "inf", "nan",
    "changes", "resets", "sort", "sort_desc", "max_over_time", "min_over_time",
    "avg_over_time", "sum_over_time", "count_over_time", "last_over_time", "timestamp",
    "label_replace", "label_join", "s", "m", "h", "d", "w", "y", "ms", "e",
}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (strings, label matchers, label lists and
    Grafana variables removed)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", text)
    text = re.sub(r"\{[^{}]*\}", "{}", text)                      # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", r"\1",
                  text)                                           # label lists
    text = re.sub(r"\[[^\]]*\]", "", text)                        # ranges, [$__rate_interval]
    text = re.sub(r"\$\{?\w+\}?", "", text)                       # Grafana variables
    text = re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", "", text)       # numbers
    return {n for n in _NAME.findall(text) if n not in _NOT_METRICS}


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (route, le) (rate(gateway_x_bucket{route=~"$route"}[$__rate_interval]))',
     {"gateway_x_bucket"}),
    ('a{job="b"} / on (route) group_left sum by (route) (c[5m] offset 5m) > 0.05', {"a", "c"}),
    ('time() - max by (issuer) (gateway_t{x="gateway_not_a_name"}) > 3600', {"gateway_t"}),
    ("label_values(gateway_requests_total, route)", {"gateway_requests_total"}),
    ("absent(up{job=\"g\"})", {"up"}),
], ids=["histogram with variables", "binary operators", "strings are no names",
        "grafana label_values", "absent of up"])
def test_metric_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def rule_expressions() -> Iterator[tuple[str, str]]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule.get("record"), rule["expr"]


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield annotation["name"], annotation["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            yield variable["name"], query["query"]


def exported_names(exposition: str) -> set[str]:
    """Every sample name the exposition can carry, from its ``# TYPE`` lines."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split(" ", 3)
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


@pytest.fixture
async def exposition(gateway: RunningGateway) -> AsyncIterator[str]:
    async with aiohttp.ClientSession() as http, \
            http.get(gateway.admin_url + "/metrics") as resp:
        yield await resp.text()


def test_every_rule_and_panel_has_an_expression() -> None:
    assert len(list(rule_expressions())) >= 16
    assert len(list(dashboard_expressions())) >= 30


async def test_every_metric_of_the_rules_and_the_dashboard_is_exported(
    exposition: str,
) -> None:
    exported = exported_names(exposition)
    assert "gateway_requests_total" in exported and "gateway_config_generation" in exported
    used: dict[str, set[str]] = {}
    for where, expr in [*rule_expressions(), *dashboard_expressions()]:
        for name in metric_names(expr):
            used.setdefault(name, set()).add(where)
    unknown = {n: sorted(w) for n, w in used.items()
               if n not in exported and n not in FROM_LATER_ISSUES and n not in SYNTHETIC}
    assert unknown == {}, "metrics neither exported nor listed in FROM_LATER_ISSUES"
    assert set(FROM_LATER_ISSUES) <= set(used), "FROM_LATER_ISSUES lists unused names"


def test_dashboard_panels_are_unique_and_do_not_overlap() -> None:
    panels: list[dict[str, Any]] = json.loads(DASHBOARD.read_text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    boxes = [(p["gridPos"]["x"], p["gridPos"]["y"], p["gridPos"]["w"], p["gridPos"]["h"],
              p["title"]) for p in panels]
    for i, (x, y, w, h, title) in enumerate(boxes):
        assert x + w <= 24, title
        for x2, y2, w2, h2, other in boxes[i + 1:]:
            apart = x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y
            assert apart, (title, other)
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_the_rules_cover_the_redis_store_and_upstream_ejections() -> None:
    text = (PROMETHEUS / "alerts.yml").read_text()
    assert "TODO" not in text
    for metric in ("gateway_revocation_sync_lag_seconds", "gateway_revocation_reseeds_total",
                   "gateway_upstream_ejections_total"):
        assert metric in text


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)"
)


@needs_promtool
@pytest.mark.parametrize("args", [
    pytest.param(["check", "rules", "alerts.yml"], id="the rules are valid"),
    pytest.param(["test", "rules", "alerts_test.yml"], id="the rules fire as their tests say"),
    pytest.param(["check", "config", "prometheus.yml"], id="the scrape config is valid"),
])
def test_promtool(args: list[str]) -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
