"""Early-stopping rules replayed on recorded runs: which epoch each rule restores, and the seeds' test PR-AUC then.

    .venv/bin/python benchmarks/stopping_rules.py --benchmark-data DIR --tables hmda --splits 5 --cache DIR

For each table, split seed (as ``seed_selection.py`` splits it: stratified 70/15/15) and training seed (the default
model's 3), the default model is trained for ``--epochs`` epochs without stopping, on the default holdout, and each
epoch's holdout PR-AUC and log loss and its validation and test probabilities are kept (in ``--cache``, one file
per run, read back on the next call). Training is deterministic on one machine, so a rule replayed on a recorded
run restores the epoch the same training would have restored under it, up to ``--epochs``. Each rule gives, per
split, keep-best's test PR-AUC (the seed with the best validation PR-AUC) and the average's (the mean of the
seeds' probabilities, ``seed_selection: average``):

- ``metric``: the best epoch on the holdout PR-AUC (``loss_tolerance: null``);
- ``loss_tolerance t``: the best PR-AUC among the epochs whose holdout loss is within ``t`` of the lowest;
- ``start_from_epoch=patience``: Keras' warm-up, no epoch judged before the resolved patience;
- ``moving average 3``: epochs judged on the PR-AUC averaged over 3 epochs (full windows), the window's last one
  restored.

The first three are replayed through the project's callback (:class:`~.models.stopping.TieBreakingEarlyStopping`)
fed the recorded logs. Checks (exit 1 when wrong): every run recorded ``--epochs`` finite epochs; every score is
in [0, 1]; the ``loss_tolerance`` replay restores the epoch a brute-force search over the epochs run finds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from common import Checks
from common import parameters as project_parameters
from seed_selection import TABLES, load_table, split

TOLERANCES = (0.02, 0.05, 0.1)


class _Weights:
    """Stands for the Keras model while the callback replays a run: its weights are the current epoch."""

    def __init__(self) -> None:
        self.epoch, self.stop_training = -1, False

    def get_weights(self) -> list[int]:
        return [self.epoch]

    def set_weights(self, weights: list[int]) -> None:
        self.epoch = weights[0]


def record(
    table: str, split_seed: int, offset: int, folders: tuple[Path, Path], epochs: int
) -> dict:
    """One run's per-epoch holdout curves and validation/test probabilities (trained once, then read back).

    ``folders``: the benchmark tables' folder and the cache folder.
    """
    path = folders[1] / f"{table}_{split_seed}_{offset}.npz"
    if not path.exists():
        _train_and_record(table, split_seed, offset, folders[0], epochs, path)
    return dict(np.load(path, allow_pickle=False))


def _train_and_record(table, split_seed, offset, data, epochs, path) -> None:  # noqa: PLR0913
    import keras

    from deep_learning_workflow.columns import target_classes, target_labels
    from deep_learning_workflow.models.fitting import early_stopping_patience, train_model
    from deep_learning_workflow.models.holdout import split_holdout
    from deep_learning_workflow.models.labels import encode_labels
    from deep_learning_workflow.models.schema import ModellingParams
    from deep_learning_workflow.models.scoring import model_probabilities, prepare

    parameters = project_parameters()
    frame, roles = load_table(table, data, parameters)
    train, val, test = split(frame, roles.target, split_seed)
    classes = target_classes(train[roles.target])
    modelling = parameters["modelling"]
    seed = parameters["seed"] + offset
    settings = modelling["early_stopping"]
    # Never stopped: the holdout is watched and logged, every epoch is kept.
    params = {**modelling, "epochs": epochs, "early_stopping": {**settings, "patience": 10**6}}
    _, holdout = split_holdout(train, roles.target, settings["holdout"], seed, "train")
    patience = early_stopping_patience(
        ModellingParams(**modelling), encode_labels(holdout[roles.target], classes, "holdout")
    )

    class Snapshots(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            self.weights.append(self.model.get_weights())

    snapshots = Snapshots()
    result = train_model(train, val, roles, params, seed, callbacks=[snapshots])
    inputs = {
        name: prepare(result.preprocessor, data, roles)
        for name, data in (("val", val), ("test", test))
    }
    probabilities = {"val": [], "test": []}
    for weights in snapshots.weights:
        result.head.set_weights(weights)
        for name in probabilities:
            probabilities[name].append(model_probabilities(result.head, inputs[name]))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        holdout_pr_auc=np.asarray(result.history["val_pr_auc"]),
        holdout_loss=np.asarray(result.history["val_loss"]),
        val_probabilities=np.asarray(probabilities["val"], dtype="float32"),
        test_probabilities=np.asarray(probabilities["test"], dtype="float32"),
        val_labels=target_labels(val[roles.target]).to_numpy().astype(str),
        test_labels=target_labels(test[roles.target]).to_numpy().astype(str),
        classes=np.asarray(classes, dtype=str),
        positive=np.asarray(str(roles.positive_class)),
        patience=np.asarray(patience),
    )
    keras.backend.clear_session(free_memory=False)


def replay(run: dict, **settings: Any) -> tuple[int, int]:
    """(epochs run, epoch restored) of the project's callback fed the run's recorded logs."""
    from deep_learning_workflow.models.stopping import TieBreakingEarlyStopping

    callback = TieBreakingEarlyStopping(
        monitor="val_pr_auc",
        mode="max",
        patience=int(run["patience"]),
        restore_best_weights=True,
        **settings,
    )
    model = _Weights()
    callback.set_model(model)
    callback.on_train_begin()
    ran = 0
    for epoch, (value, loss) in enumerate(
        zip(run["holdout_pr_auc"], run["holdout_loss"], strict=True)
    ):
        model.epoch, ran = epoch, epoch + 1
        callback.on_epoch_end(epoch, {"val_pr_auc": float(value), "val_loss": float(loss)})
        if model.stop_training:
            break
    callback.on_train_end()
    return ran, model.epoch


def moving_average(run: dict, window: int = 3) -> int:
    """The epoch ending the best window of ``window`` epochs, Keras' patience counted on the windows."""
    metric, patience = run["holdout_pr_auc"], int(run["patience"])
    best, best_epoch, wait = -np.inf, window - 1, 0
    for epoch in range(window - 1, len(metric)):
        mean = float(np.mean(metric[epoch - window + 1 : epoch + 1]))
        wait += 1
        if mean > best:
            best, best_epoch, wait = mean, epoch, 0
        elif wait >= patience:
            break
    return best_epoch


def rules(checks: Checks, what: str, run: dict) -> dict[str, int]:
    """The epoch each rule restores on ``run``."""
    chosen = {"metric": replay(run)[1]}
    for tolerance in TOLERANCES:
        ran, epoch = replay(run, loss_tolerance=tolerance)
        metric, loss = run["holdout_pr_auc"][:ran], run["holdout_loss"][:ran]
        eligible = [e for e in range(ran) if loss[e] <= loss.min() * (1 + tolerance)]
        expected = max(eligible, key=lambda e: (metric[e], -loss[e], -e))
        if epoch != expected:
            checks.fail(
                f"{what}: loss_tolerance {tolerance} restored {epoch}, brute force {expected}"
            )
        chosen[f"loss_tolerance {tolerance}"] = epoch
    chosen["start_from_epoch=patience"] = replay(run, start_from_epoch=int(run["patience"]))[1]
    chosen["moving average 3"] = moving_average(run)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark-data", type=Path, required=True)
    parser.add_argument("--tables", default="hmda")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument(
        "--epochs", type=int, default=100, help="epochs recorded per run (past every stop)"
    )
    parser.add_argument("--cache", type=Path, required=True, help="folder of the recorded runs")
    arguments = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parameters = project_parameters()
    checks = Checks()
    print(
        f"{'table':<15}{'rule':<28}{'keep-best':>10}{'average':>10}{'avg - best':>11}{'avg vs metric':>14}"
    )
    for table in arguments.tables.split(","):
        if table not in TABLES:
            parser.error(f"unknown table {table!r}; one of {sorted(TABLES)}")
        scores: dict[str, list[tuple[float, float]]] = {}
        for split_seed in range(parameters["seed"], parameters["seed"] + arguments.splits):
            runs = [
                record(
                    table,
                    split_seed,
                    offset,
                    (arguments.benchmark_data, arguments.cache / table),
                    arguments.epochs,
                )
                for offset in range(parameters["modelling"]["seeds"])
            ]
            chosen = {}
            for offset, run in enumerate(runs):
                what = f"{table} split {split_seed} seed offset {offset}"
                checks.count(f"{what}: epochs recorded", len(run["holdout_loss"]), arguments.epochs)
                checks.finite(f"{what}: holdout loss", float(np.sum(run["holdout_loss"])))
                chosen[offset] = rules(checks, what, run)
            for rule in chosen[0]:
                scores.setdefault(rule, []).append(
                    _selections(runs, [chosen[o][rule] for o in chosen])
                )
        metric_average = np.mean([average for _, average in scores["metric"]])
        for rule, pairs in scores.items():
            best, average = (float(np.mean(values)) for values in zip(*pairs, strict=True))
            checks.within(f"{table} {rule}: keep-best", best, 0.0, 1.0)
            checks.within(f"{table} {rule}: average", average, 0.0, 1.0)
            print(
                f"{table:<15}{rule:<28}{best:>10.4f}{average:>10.4f}{average - best:>+11.4f}"
                f"{average - metric_average:>+14.4f}"
            )
    return checks.exit_code()


def _selections(runs: list[dict], epochs: list[int]) -> tuple[float, float]:
    """(keep-best's test PR-AUC, the average's) of one split, each seed at its restored epoch."""
    from deep_learning_workflow.metrics import score as metric

    classes, positive = list(runs[0]["classes"]), str(runs[0]["positive"])
    positive = None if positive == "None" else positive

    def score(labels: np.ndarray, probabilities: np.ndarray) -> float:
        return float(
            metric("pr_auc", labels, np.asarray(probabilities, "float64"), classes, positive)
        )

    val = [
        score(run["val_labels"], run["val_probabilities"][e])
        for run, e in zip(runs, epochs, strict=True)
    ]
    test = [
        score(run["test_labels"], run["test_probabilities"][e])
        for run, e in zip(runs, epochs, strict=True)
    ]
    mean = np.mean(
        [run["test_probabilities"][e] for run, e in zip(runs, epochs, strict=True)], axis=0
    )
    return test[int(np.argmax(val))], score(runs[0]["test_labels"], mean)


if __name__ == "__main__":
    sys.exit(main())
