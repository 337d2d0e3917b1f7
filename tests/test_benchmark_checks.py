"""benchmarks/common.py's Checks: what the benchmark scripts count as a wrong answer, and their exit code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

COMMON = Path(__file__).resolve().parents[1] / "benchmarks" / "common.py"


@pytest.fixture(scope="module")
def checks_type():
    spec = importlib.util.spec_from_file_location("benchmarks_common", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Checks


def test_right_answers_exit_0(checks_type, capsys):
    checks = checks_type()
    assert checks.finite("scores", {"pr_auc": 0.61, "roc_auc": np.float64(0.84)})
    assert checks.within("pr_auc", 0.61, 0.0, 1.0)
    assert checks.count("trials", 3, 3)
    assert checks.probabilities("model", np.array([[0.2, 0.8], [0.5, 0.5]]), 2)
    assert checks.exit_code() == 0
    assert "All answers checked." in capsys.readouterr().out


@pytest.mark.parametrize(
    ("record", "named"),
    [
        (lambda c: c.finite("scores", {"pr_auc": float("nan"), "roc_auc": 0.8}), "pr_auc nan"),
        (lambda c: c.finite("trial 2", None), "trial 2"),
        (lambda c: c.within("roc_auc", 1.2, 0.0, 1.0), "outside [0.0, 1.0]"),
        (lambda c: c.within("latency", float("inf"), 0.0, float("inf")), "latency"),
        (lambda c: c.within("best value", None, 0.0, 1.0), "best value"),
        (lambda c: c.count("complete trials", 2, 3), "complete trials: 2, expected 3"),
        (lambda c: c.probabilities("model", np.array([[0.2, 0.8]]), 2), "expected 2 rows"),
        (lambda c: c.probabilities("model", np.array([[0.2, 0.7]]), 1), "do not sum to 1"),
        (lambda c: c.probabilities("model", np.array([[np.nan, 1.0]]), 1), "not finite"),
    ],
)
def test_a_wrong_answer_is_printed_and_exits_1(checks_type, capsys, record, named):
    checks = checks_type()
    assert record(checks) is False
    assert checks.exit_code() == 1
    printed = capsys.readouterr()
    assert named in printed.err and "WRONG" in printed.err
    assert "All answers checked." not in printed.out
