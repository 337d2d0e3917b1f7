"""What the benchmark scripts share: the project's parameters, a temporary copy of the project and the splits.

The scripts run as ``python benchmarks/<name>.py``, so this folder is first on ``sys.path`` and they import it as
``common``. Each script checks every answer it gets with :class:`Checks` and exits non-zero when one is wrong.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PROJECT = Path(__file__).resolve().parents[1]
SPLITS = PROJECT / "data" / "05_model_input"
SPLIT_NAMES = ("train", "train_balanced", "val", "test")
DATA_PIPELINES = "data_acquisition,data_processing,splitting"


def parameters(env: str = "base", project: Path = PROJECT) -> dict[str, Any]:
    """The parameters of ``conf/<env>`` over ``conf/base``, merged softly as the project's settings do."""
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"),
        base_env="base",
        default_run_env=env,
        merge_strategy={"parameters": "soft"},
    )
    return loader["parameters"]


def data_root(env: str = "base", project: Path = PROJECT) -> Path:
    """The folder ``kedro run --env <env>`` writes its outputs under (``globals.data_root``)."""
    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(
        conf_source=str(project / "conf"), base_env="base", default_run_env=env
    )
    return project / loader["globals"]["data_root"]


def copy_project(destination: Path) -> None:
    """What ``kedro run`` needs in ``destination``: configuration without local, the raw data and an empty src."""
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy2(PROJECT / name, destination / name)
    shutil.copytree(PROJECT / "conf", destination / "conf", ignore=shutil.ignore_patterns("local"))
    (destination / "conf" / "local").mkdir()
    shutil.copytree(PROJECT / "data" / "01_raw", destination / "data" / "01_raw")
    (destination / "src").mkdir()  # the package is installed from the checkout


def splits_of_env(
    env: str, pipelines: str | Iterable[str] = DATA_PIPELINES
) -> dict[str, pd.DataFrame]:
    """train, train_balanced, val and test as ``kedro run --env <env> --pipelines <pipelines>`` writes them.

    The run happens in a temporary copy of the project, so the project's own data is not touched.

    Raises:
        RuntimeError: The run failed; the message ends with the tail of its standard error.
    """
    if not isinstance(pipelines, str):
        pipelines = ",".join(pipelines)
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder)
        copy_project(copy)
        run = subprocess.run(
            [sys.executable, "-m", "kedro", "run", "--env", env, "--pipelines", pipelines],
            cwd=copy,
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode:
            raise RuntimeError(f"kedro run --env {env} failed:\n{run.stderr[-3000:]}")
        return {
            name: pd.read_parquet(data_root(env, copy) / "05_model_input" / f"{name}.parquet")
            for name in SPLIT_NAMES
        }


def saved_splits(names: Iterable[str] = SPLIT_NAMES) -> dict[str, pd.DataFrame]:
    """The splits the project's last run wrote to ``data/05_model_input``; exits with a hint when one is missing."""
    names = tuple(names)
    missing = [name for name in names if not (SPLITS / f"{name}.parquet").exists()]
    if missing:
        sys.exit(f"Missing {missing} in {SPLITS}; run kedro run --pipelines {DATA_PIPELINES}")
    return {name: pd.read_parquet(SPLITS / f"{name}.parquet") for name in names}


def split_70_15_15(
    frame: pd.DataFrame, target: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified train/validation/test split of 70/15/15 with ``seed``."""
    from sklearn.model_selection import train_test_split

    train, rest = train_test_split(frame, test_size=0.30, stratify=frame[target], random_state=seed)
    val, test = train_test_split(rest, test_size=0.50, stratify=rest[target], random_state=seed)
    return train, val, test


def telco_table(roles: Any) -> pd.DataFrame:
    """The raw Telco table with ``total_charges`` numeric and the categorical columns as strings."""
    frame = pd.read_csv(PROJECT / "data" / "01_raw" / "telco_churn.csv")
    frame["total_charges"] = pd.to_numeric(frame["total_charges"], errors="coerce")
    for column in roles.categorical:
        frame[column] = frame[column].astype(str)
    return frame


def test_scores(
    labels: pd.Series, probabilities: np.ndarray, classes: list[str], positive: str
) -> dict[str, float]:
    """ROC-AUC and PR-AUC of the positive class, as the workflow scores them."""
    from deep_learning_workflow.columns import target_labels
    from deep_learning_workflow.metrics import score

    truth = target_labels(labels).to_numpy()
    return {
        name: score(name, truth, probabilities, classes, positive) for name in ("roc_auc", "pr_auc")
    }


class Checks:
    """The wrong answers a benchmark met: a figure that is not a number, a count that is off, a run that failed.

    A script records each problem with the methods below, prints its table, then ends with
    ``sys.exit(checks.exit_code())``: 0 only when nothing was recorded.
    """

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, problem: str) -> None:
        """Record ``problem`` (printed at the end, it makes the script exit 1)."""
        self.problems.append(problem)

    def finite(self, what: str, figures: float | Mapping[str, Any]) -> bool:
        """Whether ``figures`` (a number, or a mapping of names to numbers) are all finite; records any that is not."""
        items = figures.items() if isinstance(figures, Mapping) else [("", figures)]
        wrong = [
            f"{name} {value!r}".strip()
            for name, value in items
            if not isinstance(value, (int, float, np.number)) or not np.isfinite(value)
        ]
        if wrong:
            self.fail(f"{what}: not a finite number: {', '.join(wrong)}")
        return not wrong

    def within(self, what: str, value: float, low: float, high: float) -> bool:
        """Whether ``low <= value <= high`` (a score between 0 and 1, say); records it when not."""
        if not self.finite(what, value):
            return False
        if not low <= value <= high:
            self.fail(f"{what}: {value} is outside [{low}, {high}]")
            return False
        return True

    def count(self, what: str, actual: int, expected: int) -> bool:
        """Whether ``actual == expected`` (rows, trials, seeds); records it when not."""
        if actual != expected:
            self.fail(f"{what}: {actual}, expected {expected}")
        return actual == expected

    def probabilities(self, what: str, values: np.ndarray, rows: int) -> bool:
        """Whether ``values`` holds ``rows`` rows of finite class probabilities that sum to 1."""
        values = np.asarray(values, dtype="float64")
        if values.ndim != 2 or len(values) != rows:
            self.fail(f"{what}: probabilities of shape {values.shape}, expected {rows} rows")
            return False
        if not np.isfinite(values).all() or not np.allclose(values.sum(axis=1), 1.0, atol=1e-4):
            self.fail(f"{what}: probabilities are not finite or do not sum to 1")
            return False
        return True

    def exit_code(self) -> int:
        """Print every problem recorded; 1 when there is one, else 0."""
        for problem in self.problems:
            print(f"WRONG: {problem}", file=sys.stderr)
        if not self.problems:
            print("All answers checked.")
        return 1 if self.problems else 0
