"""The example Prometheus alert rules only use metrics (and labels) the service exports."""

from __future__ import annotations

import re

import yaml
from prometheus_client.metrics import MetricWrapperBase

from deep_learning_workflow.service.metrics import ServiceMetrics

SUFFIXES = {
    "counter": ["_total", "_created"],
    "histogram": ["_bucket", "_count", "_sum", "_created"],
    "gauge": [""],
}
SELECTOR = re.compile(r"\b(dlw_[a-z0-9_]+|up)\b(\{([^}]*)\})?")


def exported() -> dict[str, set[str]]:
    """Sample name -> label names, for every metric of the service."""
    metrics = ServiceMetrics()
    names: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for suffix in SUFFIXES[value._type]:
                labels = set(value._labelnames) | ({"le"} if suffix == "_bucket" else set())
                names[value._name + suffix] = labels
    return names


def test_alert_rules_use_exported_metrics(project_path):
    document = yaml.safe_load((project_path / "deploy" / "prometheus" / "alerts.yml").read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    names = exported()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        used = SELECTOR.findall(rule["expr"])
        assert used, f"{rule['alert']} uses no metric"
        for metric, _, matchers in used:
            if metric == "up":  # Prometheus' own scrape health
                continue
            assert metric in names, f"{rule['alert']}: {metric} is not exported"
            for label in re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in names[metric], f"{rule['alert']}: {metric} has no label {label}"
    expressions = {rule["alert"]: rule["expr"] for rule in rules}
    assert any("up{" in e for e in expressions.values()), "service down"
    assert any('status=~"5..' in e for e in expressions.values()), "error rate"
    assert any(
        "histogram_quantile(0.99" in e.replace("\n", "").replace(" ", "")
        for e in expressions.values()
    ), "p99"
    assert any(
        "dlw_drift_retraining_due" in e or "dlw_feature_drift" in e for e in expressions.values()
    ), "drift"


def test_exported_names_match_a_scrape(main_server, client, telco_records):
    client.post("/predict", json=telco_records[:3])
    scraped = {
        line.split("{")[0].split()[0]
        for line in client.get("/metrics").text.splitlines()
        if line and line[0] != "#"
    }
    assert scraped <= set(exported())
