"""Augmentation on the food reviews (`conf/reviews`): each setting of `params:modelling.augmentation` against none,
with the same split and the same training seeds. Prints a table.

    .venv/bin/python benchmarks/augmentation.py                       # 3 seeds, every setting (about 15 min on 2 cores)
    .venv/bin/python benchmarks/augmentation.py --seeds 1 --settings "token_swap 0.1"   # a quicker look
    .venv/bin/python benchmarks/augmentation.py --quick    # 1 seed, one setting, 2 epochs: shows it runs

The split is the workflow's own: `kedro run --env reviews --pipelines data_acquisition,data_processing,splitting`
in a temporary copy of the project (as benchmarks/reviews.py does). The model (the reviews environment's
`params:modelling`, only `augmentation` changed) is trained on `train_balanced` with early stopping on validation,
once per seed `params:seed + 0 .. --seeds - 1` and setting; each seed trains every setting. Validation figures are
slightly optimistic for every setting alike (validation picks the epoch); the test split is scored once per model
as a check. The reviews have no numeric column, so Gaussian noise does not apply.

Every answer is checked (one row per seed and setting, probabilities that sum to 1, finite scores between 0 and 1);
the script exits 1 when one is wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
from common import DATA_PIPELINES, Checks, splits_of_env
from common import parameters as project_parameters

ENV = "reviews"

SETTINGS: dict[str, dict[str, Any]] = {
    "none": {},
    "token_dropout 0.1 (oov)": {"token_dropout": 0.1},
    "token_dropout 0.1 (remove)": {"token_dropout": 0.1, "token_dropout_mode": "remove"},
    # The model averages its token embeddings, which ignores word order: a swap changes nothing it sees, so this
    # row differs from none by the batch order only (the augmented pipeline shuffles itself), a noise control.
    "token_swap 0.1 (batch order only)": {"token_swap": 0.1},
    "token_dropout 0.1 + swap 0.05": {"token_dropout": 0.1, "token_swap": 0.05},
    "mixup alpha 0.2": {"mixup_alpha": 0.2},
}


def figures(
    seeds: int, settings: dict[str, dict[str, Any]], checks: Checks, epochs: int | None = None
) -> pd.DataFrame:
    """One row per seed and setting: validation and test ROC-AUC and PR-AUC, best epoch, seconds.

    ``epochs`` caps ``params:modelling.epochs`` (for a quick run).
    """
    from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_labels
    from deep_learning_workflow.metrics import score
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.fitting import train_model
    from deep_learning_workflow.models.preprocessing import as_params

    parameters = project_parameters(ENV)
    # Token dropout and swaps act on word ids: the averaged-embedding text encoder, whatever the default.
    parameters["modelling"]["text"] = {**parameters["modelling"]["text"], "encoder": "embedding"}
    if epochs is not None:
        parameters["modelling"]["epochs"] = epochs
    primary = parameters["problem"]["primary_metric"]
    splits = splits_of_env(ENV, DATA_PIPELINES)
    roles = resolve_roles(splits["train"], ColumnRoles(**parameters["columns"]), "train")
    rows = []
    for seed in range(int(parameters["seed"]), int(parameters["seed"]) + seeds):
        for name, augmentation in settings.items():
            params = as_params({**parameters["modelling"], "augmentation": augmentation})
            start = time.perf_counter()
            result = train_model(
                splits["train"],
                splits["val"],
                roles,
                params,
                seed,
                fit_on=splits["train_balanced"],
                primary_metric=primary,
            )
            row = {
                "setting": name,
                "seed": seed,
                "best_epoch": result.best_epoch + 1,
                "seconds": time.perf_counter() - start,
            }
            for split in ("val", "test"):
                probabilities = predict_probabilities(result.model, splits[split], roles)
                what = f"seed {seed}, {name}, {split}"
                checks.probabilities(what, probabilities, len(splits[split]))
                truth = target_labels(splits[split][roles.target]).to_numpy()
                for metric in ("pr_auc", "roc_auc"):
                    row[f"{split}_{metric}"] = score(
                        metric, truth, probabilities, result.classes, roles.positive_class
                    )
                    checks.within(f"{what} {metric}", row[f"{split}_{metric}"], 0.0, 1.0)
            rows.append(row)
            print(
                f"  seed {seed} {name:<30} val PR-AUC {row['val_pr_auc']:.4f} "
                f"ROC-AUC {row['val_roc_auc']:.4f}  ({row['seconds']:.0f} s)",
                flush=True,
            )
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="split and training seeds")
    parser.add_argument(
        "--settings",
        nargs="*",
        choices=list(SETTINGS),
        default=list(SETTINGS),
        help="augmentation settings to compare ('none' is always included)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 seed, token dropout only, 2 epochs: shows it runs"
    )
    arguments = parser.parse_args()
    epochs = None
    if arguments.quick:
        arguments.seeds, arguments.settings, epochs = 1, ["token_dropout 0.1 (oov)"], 2
    chosen = {name: SETTINGS[name] for name in ["none", *arguments.settings] if name in SETTINGS}
    checks = Checks()
    table = figures(arguments.seeds, chosen, checks, epochs)
    checks.count("rows (seeds x settings)", len(table), arguments.seeds * len(chosen))
    if table.empty:
        return checks.exit_code()
    metrics = ["val_pr_auc", "val_roc_auc", "test_pr_auc", "test_roc_auc"]
    summary = table.groupby("setting", sort=False)[[*metrics, "best_epoch", "seconds"]].agg(
        ["mean", "std"]
    )
    none = table[table["setting"] == "none"].set_index("seed")
    print(
        f"\nFood reviews (conf/{ENV}), {arguments.seeds} training seeds, mean ± sd; "
        "Δ: difference to none with the same seed"
    )
    header = ["setting", "val PR-AUC", "val ROC-AUC", "Δ val PR-AUC", "Δ val ROC-AUC"]
    header += ["test PR-AUC", "test ROC-AUC", "best epoch", "s / model"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for setting, row in summary.iterrows():
        paired = table[table["setting"] == setting].set_index("seed")
        deltas = [paired[m] - none[m] for m in metrics[:2]]
        cells = [setting]
        cells += [
            f"{row[(m, 'mean')]:.4f} ± {np.nan_to_num(row[(m, 'std')]):.4f}" for m in metrics[:2]
        ]
        cells += [f"{d.mean():+.4f} ± {np.nan_to_num(d.std(ddof=1)):.4f}" for d in deltas]
        cells += [
            f"{row[(m, 'mean')]:.4f} ± {np.nan_to_num(row[(m, 'std')]):.4f}" for m in metrics[2:]
        ]
        cells.append(f"{row[('best_epoch', 'mean')]:.1f}")
        cells.append(f"{row[('seconds', 'mean')]:.0f}")
        print("| " + " | ".join(cells) + " |")
    print(f"(cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f})")
    return checks.exit_code()


if __name__ == "__main__":
    sys.exit(main())
