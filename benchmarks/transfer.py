"""Transfer learning on the food reviews: a few hundred labelled rows, trained from scratch or starting from what
the other reviews taught. Prints one table.

    .venv/bin/python benchmarks/transfer.py                     # 3 seeds, about 8 minutes on 2 shared cores
    .venv/bin/python benchmarks/transfer.py --seeds 1 --labelled 200
    .venv/bin/python benchmarks/transfer.py --quick    # 1 seed, 800 pretraining rows, 2 epochs: shows it runs

For each seed the 5,000 reviews of `data/01_raw/food_reviews.csv` (column roles from `conf/reviews`) are shuffled
and cut into three disjoint parts:

- pretraining rows (`--pretraining`, 3,500): their texts alone build the home-made word vectors; their texts and
  labels train the model that is warm-started from (85 % fitted, 15 % for early stopping);
- labelled rows (`--labelled`, 300): the small-data task, two thirds fitted, one third for early stopping;
- held-out rows (the rest, 1,200): only scored, never used to fit or stop anything.

Every arm trains on the labelled rows with the environment's `params:modelling` (conf/base unless conf/reviews
overrides it) through `train_model`, the sources saved and loaded through the catalog's datasets:

- scratch: random start;
- word vectors, frozen: `embed_review` starts from the home-made vectors and stays fixed while the head trains;
- word vectors, fine-tuned: the same, then unfrozen and trained `fine_tune.epochs` more at a tenth of the rate;
- warm start, fine-tuned: every layer starts from the model of the pretraining rows, `embed_review` frozen while
  the head trains, then everything fine-tuned;
- logistic regression: the workflow's TF-IDF baseline fitted on the same labelled rows.

The home-made vectors are an SVD of the positive pointwise mutual information of word co-occurrences (window of 4,
words seen at least 3 times, context counts smoothed with exponent 0.75), one `text.embedding_dim`-value unit vector
per word. They are learned from 3,500 reviews, not from a large corpus such as GloVe's, so they show the mechanism,
not what large pretrained vectors would give.

Every answer is checked (each arm's held-out probabilities sum to 1, finite scores between 0 and 1, one row per
seed and arm); the script exits 1 when one is wrong.

Write such vectors for a workflow run (from the training split's texts only, so that nothing fitted sees validation
or test rows):

    kedro run --env reviews --pipelines data_acquisition,data_processing,splitting
    .venv/bin/python benchmarks/transfer.py --write-vectors data/reviews/06_models/pretrained/word_vectors.txt \\
        --texts data/reviews/05_model_input/train.parquet
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import PROJECT, Checks
from common import parameters as project_parameters

DATA = PROJECT / "data" / "01_raw" / "food_reviews.csv"
ENV = "reviews"
# Used only when conf/reviews does not exist: the roles it gives the food reviews.
FALLBACK_ROLES = {
    "key": "review_id",
    "target": "score",
    "positive_class": "other",
    "numeric": [],
    "categorical": [],
    "text": ["review"],
}


def _parameters() -> dict[str, Any]:
    env = ENV if (PROJECT / "conf" / ENV).is_dir() else "base"
    parameters = project_parameters(env)
    if env == "base":
        parameters["columns"] = FALLBACK_ROLES
    # Word vectors start word embeddings: the averaged-embedding text encoder, whatever the environment's default.
    parameters["modelling"]["text"] = {**parameters["modelling"]["text"], "encoder": "embedding"}
    return parameters


def cooccurrence_vectors(
    texts: Iterable[str], dimension: int, seed: int, window: int = 4, min_count: int = 3
) -> Any:
    """Word vectors from an SVD of the positive PMI of word co-occurrences in ``texts`` (unit length)."""
    from scipy import sparse
    from scipy.sparse.linalg import svds

    from deep_learning_workflow.datasets import WordVectors
    from deep_learning_workflow.models.transfer import standardize_token

    # The model's own tokenisation: lower case, punctuation stripped, split on whitespace.
    documents = [standardize_token(str(text)).split() for text in texts]
    counts = Counter(token for document in documents for token in document)
    vocabulary = [token for token, count in counts.most_common() if count >= min_count]
    index = {token: position for position, token in enumerate(vocabulary)}
    rows, columns, weights = [], [], []
    for document in documents:
        ids = [index[token] for token in document if token in index]
        for position, word in enumerate(ids):
            for distance in range(1, window + 1):
                if position + distance >= len(ids):
                    break
                context = ids[position + distance]
                rows += [word, context]
                columns += [context, word]
                weights += [1.0 / distance, 1.0 / distance]
    size = len(vocabulary)
    counts_matrix = (
        sparse.coo_matrix((weights, (rows, columns)), shape=(size, size)).tocsr().tocoo()
    )
    total = counts_matrix.data.sum()
    word_share = np.asarray(counts_matrix.sum(axis=1)).ravel() / total
    context_share = np.asarray(counts_matrix.sum(axis=0)).ravel() ** 0.75
    context_share /= context_share.sum()
    pmi = np.log(
        counts_matrix.data
        / total
        / (word_share[counts_matrix.row] * context_share[counts_matrix.col])
    )
    keep = pmi > 0
    ppmi = sparse.csr_matrix(
        (pmi[keep], (counts_matrix.row[keep], counts_matrix.col[keep])), shape=(size, size)
    )
    left, singular, _ = svds(ppmi, k=dimension, random_state=seed)
    vectors = left * np.sqrt(singular)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-8
    # The model averages a text's word vectors; averages of unit vectors differ little between texts, too little
    # for the head to learn from at the default learning rate. Centring and scaling the vectors so that the
    # averages of these texts have mean 0 and sd 1 in each dimension gives the head inputs on its usual scale.
    averages = np.stack(
        [
            vectors[[index[t] for t in d if t in index]].mean(axis=0)
            for d in documents
            if any(t in index for t in d)
        ]
    )
    vectors = (vectors - averages.mean(axis=0)) / (averages.std(axis=0) + 1e-8)
    return WordVectors(vocabulary, vectors.astype("float32"))


def _scores(
    truth: pd.Series,
    probabilities: np.ndarray,
    classes: list[str],
    positive: str,
    checks: Checks,
    what: str,
) -> dict:
    from deep_learning_workflow.columns import target_labels
    from deep_learning_workflow.metrics import score

    checks.probabilities(what, probabilities, len(truth))
    labels = target_labels(truth).to_numpy()
    scores = {
        name: score(name, labels, probabilities, classes, positive)
        for name in ("pr_auc", "roc_auc")
    }
    for name, value in scores.items():
        checks.within(f"{what} {name}", value, 0.0, 1.0)
    return scores


def _with_transfer(modelling: dict[str, Any], **transfer: Any) -> dict[str, Any]:
    result = copy.deepcopy(modelling)
    result["transfer"] = {**result.get("transfer", {}), **transfer}
    return result


def run(
    seeds: int, pretraining: int, labelled: int, checks: Checks, epochs: int | None = None
) -> pd.DataFrame:
    """Held-out PR-AUC and ROC-AUC per seed and arm; ``epochs`` caps ``params:modelling.epochs``."""
    from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes
    from deep_learning_workflow.datasets import KerasModelDataset, WordVectorsDataset
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.fitting import train_model
    from deep_learning_workflow.models.preprocessing import as_params
    from deep_learning_workflow.models.transfer import TransferSources
    from deep_learning_workflow.pipelines.modelling.nodes import build_baseline

    parameters = _parameters()
    modelling = parameters["modelling"]
    if epochs is not None:
        modelling["epochs"] = epochs
    params = as_params(modelling)
    frame = pd.read_csv(DATA)
    roles = resolve_roles(frame, ColumnRoles(**parameters["columns"]), "food_reviews")
    (text,) = roles.text
    frame = frame.dropna(subset=[text, roles.target])
    if pretraining + labelled >= len(frame):
        raise SystemExit(
            f"--pretraining + --labelled must leave held-out rows of the {len(frame)}."
        )
    frozen = {"freeze": [f"embed_{text}"]}
    fine_tune = {
        "fine_tune": {**modelling.get("transfer", {}).get("fine_tune", {}), "enabled": True}
    }
    arms = {
        "scratch": (modelling, "none"),
        "word vectors, frozen": (
            _with_transfer(modelling, embeddings={"enabled": True}, **frozen),
            "vectors",
        ),
        "word vectors, fine-tuned": (
            _with_transfer(modelling, embeddings={"enabled": True}, **frozen, **fine_tune),
            "vectors",
        ),
        "warm start, fine-tuned": (
            _with_transfer(modelling, warm_start={"enabled": True}, **frozen, **fine_tune),
            "model",
        ),
    }
    rows = []
    for seed in range(parameters["seed"], parameters["seed"] + seeds):
        shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        pretrain = shuffled.iloc[:pretraining]
        small = shuffled.iloc[pretraining : pretraining + labelled]
        held_out = shuffled.iloc[pretraining + labelled :]
        fit_rows, stop_rows = small.iloc[: labelled * 2 // 3], small.iloc[labelled * 2 // 3 :]
        cut = int(len(pretrain) * 0.85)
        classes = target_classes(fit_rows[roles.target])

        with tempfile.TemporaryDirectory() as folder:
            vectors_file = WordVectorsDataset(filepath=f"{folder}/word_vectors.txt", optional=True)
            vectors_file.save(cooccurrence_vectors(pretrain[text], params.text.embedding_dim, seed))
            source = train_model(pretrain.iloc[:cut], pretrain.iloc[cut:], roles, params, seed)
            model_file = KerasModelDataset(filepath=f"{folder}/model.keras", optional=True)
            model_file.save(source.model)
            sources = {
                "none": None,
                "vectors": TransferSources(word_vectors=vectors_file.load()),
                "model": TransferSources(model=model_file.load()),
            }
        rows.append(
            {
                "arm": "(model of the pretraining rows, as is)",
                "seed": seed,
                **_scores(
                    held_out[roles.target],
                    predict_probabilities(source.model, held_out, roles),
                    source.classes,
                    roles.positive_class,
                    checks,
                    f"seed {seed}, pretraining model",
                ),
            }
        )
        for arm, (settings, source_name) in arms.items():
            started = time.perf_counter()
            result = train_model(
                fit_rows, stop_rows, roles, settings, seed, transfer_sources=sources[source_name]
            )
            probabilities = predict_probabilities(result.model, held_out, roles)
            rows.append(
                {
                    "arm": arm,
                    "seed": seed,
                    "seconds": time.perf_counter() - started,
                    **_scores(
                        held_out[roles.target],
                        probabilities,
                        classes,
                        roles.positive_class,
                        checks,
                        f"seed {seed}, {arm}",
                    ),
                }
            )
        baseline = build_baseline("logistic_regression", roles, params, seed).fit(
            fit_rows[roles.features], fit_rows[roles.target].astype(str)
        )
        rows.append(
            {
                "arm": "logistic regression (TF-IDF)",
                "seed": seed,
                **_scores(
                    held_out[roles.target],
                    baseline.predict_proba(held_out[roles.features]),
                    classes,
                    roles.positive_class,
                    checks,
                    f"seed {seed}, logistic regression",
                ),
            }
        )
        print(pd.DataFrame([r for r in rows if r["seed"] == seed]).round(3).to_string(index=False))
    return pd.DataFrame(rows)


def write_vectors(texts_path: Path, output: Path, seed: int) -> None:
    """Home-made vectors from the texts of one table (e.g. the training split), written in GloVe text format."""
    from deep_learning_workflow.columns import ColumnRoles
    from deep_learning_workflow.datasets import WordVectorsDataset
    from deep_learning_workflow.models.preprocessing import as_params

    parameters = _parameters()
    (text,) = ColumnRoles(**parameters["columns"]).text
    table = (
        pd.read_parquet(texts_path) if texts_path.suffix == ".parquet" else pd.read_csv(texts_path)
    )
    dimension = as_params(parameters["modelling"]).text.embedding_dim
    vectors = cooccurrence_vectors(table[text].dropna(), dimension, seed)
    WordVectorsDataset(filepath=str(output)).save(vectors)
    print(f"{len(vectors.tokens)} words x {dimension} values from {len(table)} rows -> {output}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pretraining", type=int, default=3500)
    parser.add_argument("--labelled", type=int, default=300)
    parser.add_argument("--write-vectors", type=Path, help="write home-made vectors here and stop")
    parser.add_argument(
        "--texts", type=Path, default=PROJECT / "data/reviews/05_model_input/train.parquet"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 seed, 800 pretraining rows, 2 epochs: shows it runs",
    )
    arguments = parser.parse_args()
    if arguments.write_vectors:
        write_vectors(arguments.texts, arguments.write_vectors, _parameters()["seed"])
        return 0
    epochs = None
    if arguments.quick:
        arguments.seeds, arguments.pretraining, epochs = 1, 800, 2

    started = time.perf_counter()
    checks = Checks()
    figures = run(arguments.seeds, arguments.pretraining, arguments.labelled, checks, epochs)
    # Per seed: the pretraining model as is, the four arms and the logistic regression.
    checks.count("rows (seeds x arms)", len(figures), arguments.seeds * 6)
    if figures.empty:
        return checks.exit_code()
    summary = figures.groupby("arm", sort=False)[["pr_auc", "roc_auc"]].agg(["mean", "std"])
    held_out = len(pd.read_csv(DATA)) - arguments.pretraining - arguments.labelled
    print(
        f"\nFood reviews: {arguments.labelled} labelled rows (2/3 fitted, 1/3 early stopping), "
        f"{arguments.pretraining} pretraining rows, {held_out} held-out rows; {arguments.seeds} seeds "
        "(mean ± sd; positive class 'other')"
    )
    print(f"{'arm':<40}{'PR-AUC':>16}{'ROC-AUC':>16}")
    for arm, row in summary.iterrows():
        cells = [
            f"{row[(metric, 'mean')]:.3f} ± {np.nan_to_num(row[(metric, 'std')]):.3f}"
            for metric in ("pr_auc", "roc_auc")
        ]
        print(f"{arm:<40}{cells[0]:>16}{cells[1]:>16}")
    print(
        f"({time.perf_counter() - started:.0f} s; cores: {os.cpu_count()}, "
        f"load average: {os.getloadavg()[0]:.2f})"
    )
    return checks.exit_code()


if __name__ == "__main__":
    sys.exit(main())
