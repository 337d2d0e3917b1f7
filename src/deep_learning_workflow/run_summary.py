"""What a run says on the console: one line per finished node, warnings, a failure's message once, and the release
gate's verdict at the end.

conf/logging.yml sends every record to ``info.log`` and shows on the console only warnings and this module's
lines. :class:`RunSummaryHook` prints the progress and the closing summary of every run that reaches the release
gate, and reports an uncaught error as one message, its traceback written to the log files only.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from kedro.framework.hooks import hook_impl

SUMMARY_LOGGER = "deep_learning_workflow.run_summary"
GATE = "release_gate"
TEST_METRICS = "test_metrics"
SUMMARY_LINES = 15

logger = logging.getLogger(SUMMARY_LOGGER)


def report_failure(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    """An uncaught error: its message once on the console, its traceback in the log files (info.log)."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    record = logger.makeRecord(
        SUMMARY_LOGGER,
        logging.ERROR,
        __file__,
        0,
        "The run failed.",
        None,
        (kind, error, traceback),
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    sys.stderr.write(f"{kind.__name__}: {error}\n(The traceback is in info.log.)\n")


def _dataset_path(catalog: Any, name: str) -> str | None:
    """Where a file dataset reads from (its latest version for a versioned one); None when not a file."""
    try:
        dataset = catalog.get(name)
    except Exception:  # noqa: BLE001 - a summary never fails the run it summarises
        return None
    path = getattr(dataset, "_filepath", None)
    try:
        path = dataset._get_load_path()
    except Exception:  # noqa: BLE001, S110 - not versioned, or no version saved yet: the plain path
        pass
    if path is None:
        return None
    # Shown relative to the project when it lies inside it (Kedro resolves catalog paths to absolute ones).
    relative = os.path.relpath(str(path))
    return str(path) if relative.startswith("..") else relative


def _namespaced(pipeline_outputs: set[str], name: str) -> str | None:
    if name in pipeline_outputs:
        return name
    return next(
        (output for output in sorted(pipeline_outputs) if output.endswith(f".{name}")), None
    )


def _best_baseline(gate: Mapping[str, Any]) -> tuple[str, float] | None:
    """The baseline with the best value of the primary metric among the gate's comparisons."""
    primary = gate["primary_metric"]
    on_primary = [item for item in gate.get("comparisons", []) if item["metric"] == primary]
    if not on_primary:
        return None
    values = {item["baseline"]: item["baseline_value"] for item in on_primary}
    greater = on_primary[0]["greater_is_better"]
    name = max(values, key=values.get) if greater else min(values, key=values.get)
    return name, values[name]


def summary_lines(
    gate: Mapping[str, Any],
    test_metrics: Mapping[str, Any] | None,
    report_path: str | None,
    model_path: str | None,
    env: str | None,
) -> list[str]:
    """The run's last words: verdict, deciding checks, primary metric of the model and the best baseline, where
    the report and model are, and the next command; at most :data:`SUMMARY_LINES` lines."""
    primary = gate["primary_metric"]
    failed = gate["failed_checks"]
    lines = [
        f"Release gate: {gate['verdict'].upper()} (rule {gate.get('rule', {}).get('name', 'point')})"
    ]
    deciding = [c for c in gate["checks"] if not c["passed"]] or [
        c for c in gate["checks"] if c["check"].startswith(f"{primary} vs ")
    ]
    shown = deciding[:4]
    lines += [
        f"  {'failed' if not c['passed'] else 'passed'} {c['check']}: {c['detail']}" for c in shown
    ]
    if len(deciding) > len(shown):
        lines.append(f"  ... and {len(deciding) - len(shown)} more (see the report)")
    validation = f"{primary} on validation: model {gate['model_value']:.4f}"
    best = _best_baseline(gate)
    if best is not None:
        validation += f", best baseline {best[0]} {best[1]:.4f}"
    lines.append(validation)
    if gate.get("validation_optimistic"):
        lines.append("  (validation figures are optimistic: the best of several seeds was kept)")
    if test_metrics is not None:
        model_test = test_metrics["model"]["metrics"][primary]["value"]
        test = f"{primary} on test: model {model_test:.4f}"
        if best is not None and best[0] in test_metrics.get("baselines", {}):
            test += (
                f", {best[0]} {test_metrics['baselines'][best[0]]['metrics'][primary]['value']:.4f}"
            )
        lines.append(test)
    if report_path:
        lines.append(f"Report: {report_path}")
    if model_path:
        lines.append(f"Model: {model_path}")
    option = "" if env in (None, "base", "local") else f" --env {env}"
    if not failed:
        lines.append(f"Next: kedro run{option} --pipelines serving")
    else:
        lines.append(
            f"Next: read the report, improve the model (kedro run{option} --pipelines tuning), or export it anyway "
            f"(kedro run{option} --pipelines serving --params serving.force_export=true)"
        )
    return lines[:SUMMARY_LINES]


class RunSummaryHook:
    """Prints one line per finished node and ends every run that reaches the release gate with its verdict (read
    from the gate's saved record); reports an uncaught error once."""

    def __init__(self) -> None:
        self._done = 0
        self._total = 0
        # Python warnings (mostly libraries' deprecation notices) become records of the py.warnings logger, which
        # conf/logging.yml sends to info.log; Kedro's rich console handler did this before it was replaced.
        logging.captureWarnings(True)

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        # Replaces the rich traceback printer Kedro's default logging installs: the traceback goes to info.log.
        sys.excepthook = report_failure

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        self._done, self._total = 0, len(pipeline.nodes)

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        self._done += 1
        logger.info("[%d/%d] %s", self._done, self._total, node.name)

    @hook_impl
    def after_pipeline_run(
        self, run_params: dict, run_result: Any, pipeline: Any, catalog: Any
    ) -> None:
        outputs = set(pipeline.all_outputs())
        gate_name = _namespaced(outputs, GATE)
        if gate_name is None:
            return
        gate = catalog.load(gate_name)
        prefix = gate_name.removesuffix(GATE)
        test_name = f"{prefix}{TEST_METRICS}"
        test_metrics = catalog.load(test_name) if test_name in outputs else None
        report = _dataset_path(catalog, f"{prefix}model_report")
        model = _dataset_path(catalog, f"{prefix}model")
        for line in summary_lines(gate, test_metrics, report, model, run_params.get("env")):
            logger.info(line)
