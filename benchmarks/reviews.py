"""Text example: the Keras model of `conf/reviews` against TF-IDF + logistic regression on the same split. Prints
one table.

    .venv/bin/python benchmarks/reviews.py                  # about 4 minutes on 2 cores
    .venv/bin/python benchmarks/reviews.py --seeds 1 --set text.embedding_dim=32 --set epochs=10
    .venv/bin/python benchmarks/reviews.py --quick          # 1 seed, 2 epochs, no tuned baseline: shows it runs

The split is the workflow's own: `kedro run --env reviews --pipelines data_acquisition,data_processing,splitting`
in a temporary copy of the project (5,000 food reviews, stratified 70/15/15, cleaned text). Then:

- the Keras text model with the reviews environment's `params:modelling` (tokenising, padding and the embedding are
  layers of the model; `--set key=value` overrides a key, dotted for nested ones), trained on `train_balanced`
  with early stopping on validation, once per seed `params:seed + 0 .. --seeds - 1`;
- `logistic_regression`, the workflow's own baseline (TF-IDF of the review, `modelling.baselines`), the one the
  release gate compares against;
- TF-IDF of word 1-2-grams (sublinear tf, words seen at least twice) + logistic regression with C chosen on
  validation from 0.25..16: a baseline tuned as one would tune it by hand.

PR-AUC, ROC-AUC and F1 are about the positive class (`other`); F1 is taken at the threshold of best F1 on
validation, that same threshold applied to test. Every answer is checked (probabilities of every row that sum to 1,
finite scores between 0 and 1, one Keras row per seed); the script exits 1 when one is wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
import yaml
from common import DATA_PIPELINES, Checks, splits_of_env
from common import parameters as project_parameters

ENV = "reviews"
C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def _override(modelling: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """``params:modelling`` with ``key=value`` assignments (values read as YAML: 32, 0.5, true, [1, 2])."""
    result = yaml.safe_load(yaml.safe_dump(modelling))
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        *parents, leaf = key.split(".")
        node = result
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = yaml.safe_load(value)
    return result


def _best_f1_threshold(truth: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(truth, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def _figures(
    splits: dict[str, pd.DataFrame],
    probabilities: dict[str, np.ndarray],
    target: str,
    classes: list[str],
    positive: str,
    checks: Checks,
    model: str,
) -> dict[str, float]:
    from sklearn.metrics import f1_score

    from deep_learning_workflow.columns import target_labels
    from deep_learning_workflow.metrics import score

    for name in ("val", "test"):
        checks.probabilities(f"{model}, {name}", probabilities[name], len(splits[name]))
    column = classes.index(positive)
    truth = {name: target_labels(splits[name][target]).to_numpy() for name in ("val", "test")}
    threshold = _best_f1_threshold(truth["val"] == positive, probabilities["val"][:, column])
    figures = {}
    for name in ("val", "test"):
        for metric in ("pr_auc", "roc_auc"):
            figures[f"{name}_{metric}"] = score(
                metric, truth[name], probabilities[name], classes, positive
            )
        flagged = probabilities[name][:, column] >= threshold
        figures[f"{name}_f1"] = float(f1_score(truth[name] == positive, flagged))
    for name, value in figures.items():
        checks.within(f"{model}, {name}", value, 0.0, 1.0)
    return figures


def _tuned_tfidf(splits: dict[str, pd.DataFrame], column: str, target: str, seed: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.pipeline import make_pipeline

    def fitted(c: float) -> Any:
        model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
            LogisticRegression(C=c, max_iter=2000, random_state=seed),
        )
        train = splits["train_balanced"]
        return model.fit(train[column].fillna(""), train[target].astype(str))

    def val_pr_auc(model: Any) -> float:
        val = splits["val"]
        column_of = list(model.classes_).index("other")
        scores = model.predict_proba(val[column].fillna(""))[:, column_of]
        return float(average_precision_score(val[target].astype(str) == "other", scores))

    models = {c: fitted(c) for c in C_GRID}
    best = max(C_GRID, key=lambda c: val_pr_auc(models[c]))
    return models[best], best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of the Keras model")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key of params:modelling (dotted for nested keys), e.g. text.embedding_dim=32",
    )
    parser.add_argument(
        "--skip-tuned", action="store_true", help="leave out the hand-tuned TF-IDF baseline (slow)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 seed, 2 epochs, no hand-tuned baseline: shows it runs",
    )
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.seeds, arguments.skip_tuned = 1, True
        arguments.set = [*arguments.set, "epochs=2"]
    checks = Checks()

    from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.fitting import train_model
    from deep_learning_workflow.models.preprocessing import as_params
    from deep_learning_workflow.pipelines.modelling.nodes import build_baseline

    parameters = project_parameters(ENV)
    params = as_params(_override(parameters["modelling"], arguments.set))
    primary = parameters["problem"]["primary_metric"]
    seed = int(parameters["seed"])
    splits = splits_of_env(ENV, DATA_PIPELINES)
    roles = resolve_roles(splits["train"], ColumnRoles(**parameters["columns"]), "train")
    target, positive, (text,) = roles.target, roles.positive_class, roles.text
    classes = target_classes(splits["train"][target])

    rows = []
    for offset in range(arguments.seeds):
        start = time.perf_counter()
        result = train_model(
            splits["train"],
            splits["val"],
            roles,
            params,
            seed + offset,
            fit_on=splits["train_balanced"],
            primary_metric=primary,
        )
        seconds = time.perf_counter() - start
        probabilities = {
            name: predict_probabilities(result.model, splits[name], roles)
            for name in ("val", "test")
        }
        rows.append(
            {
                "model": "keras text model (conf/reviews)",
                "seconds": seconds,
                "epochs": len(result.history["loss"]),
                **_figures(
                    splits, probabilities, target, classes, positive, checks, f"keras seed {offset}"
                ),
            }
        )

    start = time.perf_counter()
    baseline = build_baseline("logistic_regression", roles, params, seed)
    baseline.fit(splits["train_balanced"][roles.features], splits["train_balanced"][target])
    seconds = time.perf_counter() - start
    probabilities = {
        name: baseline.predict_proba(splits[name][roles.features]) for name in ("val", "test")
    }
    rows.append(
        {
            "model": "tf-idf + logistic regression (gate baseline)",
            "seconds": seconds,
            **_figures(splits, probabilities, target, classes, positive, checks, "gate baseline"),
        }
    )

    if not arguments.skip_tuned:
        start = time.perf_counter()
        tuned, c = _tuned_tfidf(splits, text, target, seed)
        seconds = time.perf_counter() - start
        probabilities = {
            name: tuned.predict_proba(splits[name][text].fillna("")) for name in ("val", "test")
        }
        rows.append(
            {
                "model": f"tf-idf 1-2-grams + logistic regression (C={c:g})",
                "seconds": seconds,
                **_figures(
                    splits, probabilities, target, classes, positive, checks, "tuned tf-idf"
                ),
            }
        )

    table = pd.DataFrame(rows)
    keras_rows = int(table["epochs"].notna().sum()) if "epochs" in table else 0
    checks.count("keras rows (one per seed)", keras_rows, arguments.seeds)
    for name in ("train", "val", "test"):
        if splits[name].empty:
            checks.fail(f"the {name} split is empty")
    columns = [
        f"{split}_{metric}" for split in ("val", "test") for metric in ("pr_auc", "roc_auc", "f1")
    ]
    sizes = {name: len(frame) for name, frame in splits.items()}
    print(
        f"\nFood reviews, positive class '{positive}'; train {sizes['train']}, val {sizes['val']}, "
        f"test {sizes['test']} rows. Keras: {arguments.seeds} seed(s), mean ± sd."
    )
    if arguments.set:
        print(f"Overrides of params:modelling: {', '.join(arguments.set)}")
    header = f"{'model':<50}" + "".join(f"{name:>17}" for name in columns) + f"{'fit s':>8}"
    print(header)
    for model, group in table.groupby("model", sort=False):
        cells = []
        for name in columns:
            values = group[name].to_numpy()
            cell = f"{values.mean():.3f}"
            if len(values) > 1:
                cell += f" ± {values.std(ddof=1):.3f}"
            cells.append(f"{cell:>17}")
        print(f"{model:<50}{''.join(cells)}{group['seconds'].mean():>8.1f}")
    if "epochs" in table:
        print(f"Keras epochs run (early stopping): {table['epochs'].dropna().astype(int).tolist()}")
    return checks.exit_code()


if __name__ == "__main__":
    sys.exit(main())
