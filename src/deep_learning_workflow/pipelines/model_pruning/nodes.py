"""Nodes of the model pruning pipeline: the pruned model at the target sparsity, the trade-off table, its plot.

TensorFlow is imported only inside the helpers that need it, never when this module is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from deep_learning_workflow.models.scoring import validation_score

from .measure import describe_variant
from .pruning import kernel_sparsity, metadata_roles
from .setup import PruningSetup

logger = logging.getLogger(__name__)


def prune_model(model: Any, pruning_setup: PruningSetup) -> tuple[Any, dict[str, Any]]:
    """Prune the trained model's dense kernels to ``target_sparsity`` and fine-tune it with the pruned weights at zero.

    The hidden layers and the output layer are pruned, each to the same sparsity by weight magnitude; embeddings
    and the preprocessing layers are left whole. The fine-tuning fits the head on the rows the model was trained
    on (``train_balanced``, derived from the training split only) and early-stops on ``val``.

    Args:
        model: the trained Keras model.
        pruning_setup: the metadata, splits and settings (:func:`~.setup.prepare_pruning`).

    Returns:
        The pruned model (raw records in, like the trained one) and the pruning report: per-layer zeros, the
        primary validation metric of the trained, pruned and fine-tuned model, and the fine-tuning history.
    """
    setup = pruning_setup
    pruned, tuning, pruned_score = setup.prune(model)
    roles, classes = metadata_roles(setup.model_metadata), list(setup.model_metadata["classes"])
    scores = {
        "trained": validation_score(model, setup.val, roles, classes, setup.primary),
        "pruned": pruned_score,
        "fine_tuned": validation_score(pruned, setup.val, roles, classes, setup.primary),
    }
    logger.info(
        "Pruned to sparsity %.2f: validation %s %.4f (trained %.4f, before fine-tuning %.4f).",
        setup.settings.target_sparsity,
        setup.primary,
        scores["fine_tuned"],
        scores["trained"],
        pruned_score,
    )
    return pruned, _pruning_report(setup, pruned, tuning, scores)


def _pruning_report(
    setup: PruningSetup, pruned: Any, tuning: list[dict[str, Any]], scores: dict[str, float]
) -> dict[str, Any]:
    settings = setup.settings
    return {
        "target_sparsity": settings.target_sparsity,
        "primary_metric": setup.primary,
        "layers": kernel_sparsity(pruned),
        "ensemble_members": len(tuning),
        "validation": scores,
        # The sparsity is a parameter, not picked on validation; the pruned model inherits the trained one's
        # selection (a kept best seed is the best of several validation scores).
        "sparsity_chosen_on_validation": False,
        "validation_selection_bias": bool(
            setup.model_metadata.get("validation_selection_bias", False)
        ),
        "fine_tuning": {
            "learning_rate": settings.learning_rate,
            "max_epochs": settings.epochs,
            # One entry per seed model of an ensemble; their epochs summed for the trade-off table.
            **(tuning[0] if len(tuning) == 1 else {}),
            "epochs_run": sum(t["epochs_run"] for t in tuning),
            "members": tuning,
        },
    }


def tabulate_pruning_tradeoff(
    model: Any,
    pruned_model: Any,
    pruning_report: Mapping[str, Any],
    pruning_setup: PruningSetup,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Measure the trained model pruned to each of ``sparsities``: size on disk, latency, validation metric.

    Sparsity 0 is the trained model as it is; the target sparsity is the saved pruned model; every other sparsity
    is pruned and fine-tuned here as :func:`prune_model` does.

    Args:
        model: the trained Keras model.
        pruned_model: the pruned model at ``target_sparsity``.
        pruning_report: its report (the score before fine-tuning, the epochs it took).
        pruning_setup: the metadata, splits and settings (:func:`~.setup.prepare_pruning`); the training split
            gives the serving schema for the latency figures, validation rows are scored and timed.

    Returns:
        The table as JSON (``primary_metric``, ``target_sparsity``, ``rows``) and as a frame, one row per
        sparsity: ``sparsity``, ``achieved_sparsity`` (zeros over all pruned kernels), ``nonzero_weights``,
        ``size_bytes`` (the ``.keras`` file), ``gzip_bytes``, ``engine``, ``records``, ``latency_ms`` and
        ``latency_p95_ms`` (one record on the service's path), ``keras_latency_ms`` (``model(x)``),
        ``val_<primary metric>``, ``fine_tuning_epochs`` and ``val_<primary metric>_before_fine_tuning``.
    """
    setup = pruning_setup
    settings, primary = setup.settings, setup.primary
    roles = metadata_roles(setup.model_metadata)
    classes = list(setup.model_metadata["classes"])
    score_key = f"val_{primary}"
    rows = []
    for sparsity in settings.sparsities:
        if sparsity == 0.0:
            variant, before, epochs = model, None, 0
        elif sparsity == settings.target_sparsity:
            variant = pruned_model
            before = pruning_report["validation"]["pruned"]
            epochs = pruning_report["fine_tuning"]["epochs_run"]
        else:
            variant, tuning, before = setup.prune(model, sparsity)
            epochs = sum(t["epochs_run"] for t in tuning)
        row = {
            "sparsity": sparsity,
            **describe_variant(
                variant, setup.train, setup.val, roles, classes, primary, settings.latency_records
            ),
            "fine_tuning_epochs": epochs,
        }
        row[f"{score_key}_before_fine_tuning"] = row[score_key] if before is None else before
        logger.info(
            "Sparsity %.2f: %d bytes, %.3f ms per record, validation %s %.4f.",
            sparsity,
            row["size_bytes"],
            row["latency_ms"],
            primary,
            row[score_key],
        )
        rows.append(row)
    table = {"primary_metric": primary, "target_sparsity": settings.target_sparsity, "rows": rows}
    return table, pd.DataFrame(rows)
