"""/metrics in-process: who may read it, and every metric the Grafana dashboard and the alert rules in
deploy/ name is one the app exports. (tests/test_production_stack.py checks the values under load.)"""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT


def exported_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def test_metrics_answer_internal_addresses_or_the_token_only(app, client):
    inside = client.get("/metrics")  # the test client comes from 127.0.0.1
    assert inside.status_code == 200 and inside.content_type.startswith("text/plain")
    assert "wxsurvey_intake_backlog" in inside.get_data(as_text=True)
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "8.8.8.8"})
    assert outside.status_code == 404
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "8.8.8.8"})  # nginx passing someone on
    assert proxied.status_code == 404
    app.config["SETTINGS"].app.metrics_token = "s3cret-metrics-token"
    assert client.get("/metrics").status_code == 404  # with a token set, the address is not enough
    wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 404
    right = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics-token"},
                       environ_base={"REMOTE_ADDR": "8.8.8.8"})  # fmt: skip
    assert right.status_code == 200


def test_dashboard_and_alerts_name_only_exported_metrics(client):
    names = exported_names(client.get("/metrics").get_data(as_text=True))
    dashboard = json.loads((ROOT / "deploy/grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    rules = yaml.safe_load((ROOT / "deploy/prometheus-alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert all(rule["alert"].startswith("Wxsurvey") and rule["annotations"]["summary"] for rule in alerts)
    exprs += [rule["expr"] for rule in alerts]
    used = {name for expr in exprs for name in re.findall(r"\bwxsurvey_[a-z_]+", expr)}
    assert len(used) >= 15
    assert used <= names, f"not exported: {sorted(used - names)}"
