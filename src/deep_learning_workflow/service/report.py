"""Reports over the prediction log: compare two model versions (canary or shadow), drift of the served records.

Command line (no Kedro needed)::

    python -m deep_learning_workflow.service.report compare --log-url sqlite:///data/07_model_output/prediction_log.sqlite
    python -m deep_learning_workflow.service.report drift --log-url ... --bundle data/07_model_output/serving_bundle
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import pandas as pd

DEFAULT_LOG_URL = "sqlite:///data/07_model_output/prediction_log.sqlite"


def _summary(rows: pd.DataFrame) -> dict[str, Any]:
    scored = rows[rows["probability"].notna()]
    latency = rows.drop_duplicates("request_id")["latency_ms"].dropna()
    return {
        "variants": sorted(rows["variant"].unique().tolist()),
        "records": int(len(rows)),
        "requests": int(rows["request_id"].nunique()),
        "errors": int(rows["error"].notna().sum()),
        "mean_probability": float(scored["probability"].mean()) if len(scored) else None,
        "label_shares": {
            str(k): float(v)
            for k, v in scored["label"].value_counts(normalize=True).sort_index().items()
        },
        "latency_ms_p50": float(np.percentile(latency, 50)) if len(latency) else None,
        "latency_ms_p99": float(np.percentile(latency, 99)) if len(latency) else None,
    }


def compare_versions(
    log: pd.DataFrame, baseline: str | None = None, candidate: str | None = None
) -> dict[str, Any]:
    """Compare two model versions from the prediction log.

    Args:
        log: rows from :func:`~deep_learning_workflow.service.prediction_log.read_logged_records`.
        baseline: model version to compare against; default: the version most rows of the ``primary`` variant have.
        candidate: the other version; default: the version most ``canary`` or ``shadow`` rows have.

    Returns:
        ``{"baseline", "candidate", "versions": {version: summary}, "paired": {...}}``. ``paired`` compares the
        records both versions scored (every record, for a shadow; none for a canary, which answers other
        requests): ``records``, ``agreement_rate`` (same label), ``mean_abs_probability_difference`` and
        ``max_abs_probability_difference`` (None without pairs).

    Raises:
        ValueError: when the log lacks one of the two versions.
    """
    if baseline is None:
        primary = log.loc[log["variant"] == "primary", "model_version"]
        baseline = primary.value_counts().idxmax() if len(primary) else None
    if candidate is None:
        other = log.loc[
            log["variant"].isin(["canary", "shadow"]) & (log["model_version"] != baseline),
            "model_version",
        ]
        candidate = other.value_counts().idxmax() if len(other) else None
    present = set(log["model_version"])
    if baseline not in present or candidate not in present:
        raise ValueError(
            f"The log needs rows of both versions to compare them (baseline {baseline!r}, candidate {candidate!r}); "
            f"it holds {sorted(present)}."
        )
    first = log[log["model_version"] == baseline]
    second = log[log["model_version"] == candidate]
    keys = ["request_id", "record_index"]
    pairs = first[keys + ["probability", "label"]].merge(
        second[keys + ["probability", "label"]], on=keys, suffixes=("_baseline", "_candidate")
    )
    pairs = pairs.dropna(subset=["probability_baseline", "probability_candidate"])
    difference = (pairs["probability_candidate"] - pairs["probability_baseline"]).abs()
    paired = {
        "records": int(len(pairs)),
        "agreement_rate": float((pairs["label_baseline"] == pairs["label_candidate"]).mean())
        if len(pairs)
        else None,
        "mean_abs_probability_difference": float(difference.mean()) if len(pairs) else None,
        "max_abs_probability_difference": float(difference.max()) if len(pairs) else None,
    }
    return {
        "baseline": baseline,
        "candidate": candidate,
        "versions": {baseline: _summary(first), candidate: _summary(second)},
        "paired": paired,
    }


def format_comparison(report: dict[str, Any]) -> str:
    """The comparison as a plain-text table."""
    lines = [f"{'':34}{'baseline':>16}{'candidate':>16}"]
    first, second = (report["versions"][report[k]] for k in ("baseline", "candidate"))
    lines.append(f"{'model version':34}{report['baseline']:>16}{report['candidate']:>16}")
    lines.append(
        f"{'variants':34}{','.join(first['variants']):>16}{','.join(second['variants']):>16}"
    )

    def show(value: Any, digits: int = 4) -> str:
        return (
            "-"
            if value is None
            else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))
        )

    for field in (
        "requests",
        "records",
        "errors",
        "mean_probability",
        "latency_ms_p50",
        "latency_ms_p99",
    ):
        lines.append(f"{field:34}{show(first[field]):>16}{show(second[field]):>16}")
    for label in sorted(set(first["label_shares"]) | set(second["label_shares"])):
        lines.append(
            f"{'share labelled ' + label:34}{show(first['label_shares'].get(label)):>16}"
            f"{show(second['label_shares'].get(label)):>16}"
        )
    paired = report["paired"]
    lines.append("")
    lines.append(f"records scored by both versions: {paired['records']}")
    lines.append(f"agreement rate (same label):     {show(paired['agreement_rate'])}")
    lines.append(
        f"mean |probability difference|:   {show(paired['mean_abs_probability_difference'], 6)}"
    )
    lines.append(
        f"max |probability difference|:    {show(paired['max_abs_probability_difference'], 6)}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deep_learning_workflow.service.report", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare", help="compare two model versions (canary or shadow) from the log"
    )
    drift = commands.add_parser(
        "drift", help="drift of the served records against the bundle's training reference"
    )
    for command in (compare, drift):
        command.add_argument(
            "--log-url", default=DEFAULT_LOG_URL, help="SQLAlchemy URL of the prediction log"
        )
        command.add_argument("--table", default="predictions")
        command.add_argument("--json", action="store_true", help="print JSON instead of a table")
    compare.add_argument("--baseline", help="model version (default: the primary's)")
    compare.add_argument("--candidate", help="model version (default: the canary's or shadow's)")
    drift.add_argument("--bundle", default="data/07_model_output/serving_bundle")
    args = parser.parse_args(argv)
    from .prediction_log import read_logged_records

    try:
        if args.command == "compare":
            report = compare_versions(
                read_logged_records(args.log_url, args.table, expand=False),
                args.baseline,
                args.candidate,
            )
            text = format_comparison(report)
        else:
            from .monitoring import logged_drift_report

            report = logged_drift_report(args.log_url, args.bundle, args.table)
            text = "\n".join(
                [f"records: {report['rows']}  retraining due: {report['retraining_due']}"]
                + [
                    f"{column:24}{entry['metric']:>16}{entry['value']:>10.4f}{'  DRIFTED' if entry['drifted'] else ''}"
                    for column, entry in report["features"].items()
                ]
            )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201
        return 2
    print(json.dumps(report, indent=2, default=str) if args.json else text)  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
