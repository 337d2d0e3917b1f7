"""The sanity check before training: the configured model must memorise one small batch of training rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, target_classes

from .builder import build_model_parts
from .fitting import compile_model, set_seed
from .labels import encode_labels
from .preprocessing import fit_preprocessing
from .schema import ModellingParams
from .scoring import model_probabilities, prepare


def overfit_one_batch(
    train: pd.DataFrame, roles: ColumnRoles, params: ModellingParams, seed: int
) -> dict[str, Any]:
    """Train the configured architecture on one small batch of training rows until it memorises them.

    Dropout and L1/L2 are switched off and Adam at ``sanity_check.learning_rate`` is used, so that only a wiring
    bug (labels not matching rows, features blanked by the preprocessing, an output of the wrong size) or a model
    far too small can keep the loss up.

    Returns:
        ``rows``, ``steps``, ``learning_rate``, ``initial_loss``, ``final_loss`` (cross-entropy on the batch, in
        inference mode, after training), ``accuracy``, ``max_loss`` and ``passed``.
    """
    check = params.sanity_check
    classes = target_classes(train[roles.target])
    batch = train.sample(n=min(check.rows, len(train)), random_state=seed)
    labels = encode_labels(batch[roles.target], classes, "train")
    plain = params.model_copy(update={"dropout": 0.0, "l1": 0.0, "l2": 0.0, "optimizer": "adam"})
    preprocessing = fit_preprocessing(train, roles, params)
    set_seed(seed)
    parts = build_model_parts(preprocessing, roles, plain, len(classes))
    compile_model(parts.head, plain, learning_rate=check.learning_rate)
    prepared = prepare(parts.preprocessor, batch, roles)

    def loss_and_accuracy() -> tuple[float, float]:
        probabilities = model_probabilities(parts.head, prepared)
        picked = np.clip((probabilities * labels).sum(axis=1), 1e-12, 1.0)
        accuracy = float((probabilities.argmax(axis=1) == labels.argmax(axis=1)).mean())
        return float(-np.log(picked).mean()), accuracy

    initial_loss, _ = loss_and_accuracy()
    # The batch repeated `steps` times and not shuffled is one epoch of `steps` identical batches: one fit call
    # instead of `steps` epochs, each with its own per-epoch overhead.
    repeated = {name: np.concatenate([values] * check.steps) for name, values in prepared.items()}
    parts.head.fit(
        repeated,
        np.concatenate([labels] * check.steps),
        batch_size=len(batch),
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    final_loss, accuracy = loss_and_accuracy()
    return {
        "rows": len(batch),
        "steps": check.steps,
        "learning_rate": check.learning_rate,
        "initial_loss": initial_loss,
        "final_loss": final_loss,
        "accuracy": accuracy,
        "max_loss": check.max_loss,
        "passed": bool(np.isfinite(final_loss) and final_loss <= check.max_loss),
    }
