"""The Grafana dashboards in deploy/grafana load as dashboards and query only documented metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
DOCUMENTED = set(re.findall(r"`((?:kino|ray)_[a-z0-9_]+)`", (ROOT / "docs" / "metrics.md").read_text()))


def test_the_four_dashboards_exist():
    assert {path.stem for path in DASHBOARDS} == {"kino-jobs", "kino-denoiser", "kino-ranker", "kino-cluster"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_well_formed_and_uses_documented_metrics(path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] == path.stem and dashboard["title"].startswith("Kino / ")
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 6
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), (panel["title"], expr)
            used = set(re.findall(r"\b((?:kino|ray)_[a-z0-9_]+?)(?:_bucket|_sum|_count)?\b", expr))
            assert used and used <= DOCUMENTED, (panel["title"], used - DOCUMENTED)
