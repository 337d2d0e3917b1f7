"""Nodes of the model pruning pipeline: the pruned model at the target sparsity, the trade-off table, its plot.

TensorFlow is imported only inside the helpers that need it, never when this module is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from deep_learning_workflow.models.scoring import validation_score
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.problem import ProblemDefinition

from .measure import describe_variant
from .pruning import (
    assemble,
    fine_tune,
    kernel_sparsity,
    metadata_roles,
    prune,
    rebuild_members,
)
from .schema import PruningParams

logger = logging.getLogger(__name__)


def prune_model(  # noqa: PLR0913
    model: Any,
    model_metadata: Mapping[str, Any],
    train: pd.DataFrame,
    train_balanced: pd.DataFrame,
    val: pd.DataFrame,
    pruning: Mapping[str, Any],
    problem: Mapping[str, Any],
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    """Prune the trained model's dense kernels to ``target_sparsity`` and fine-tune it with the pruned weights at zero.

    The hidden layers and the output layer are pruned, each to the same sparsity by weight magnitude; embeddings
    and the preprocessing layers are left whole. The fine-tuning fits the head on the rows the model was trained
    on (``train_balanced``, derived from the training split only) and early-stops on ``val``.

    Args:
        model: the trained Keras model.
        model_metadata: its metadata (the parameters and roles it was built from).
        train: the training split (the preprocessing's rows, to rebuild the model).
        train_balanced: the rows the model's weights are fitted on.
        val: validation rows: early stopping and the reported scores only.
        pruning: ``params:pruning``.
        problem: ``params:problem`` (the primary metric).
        seed: ``params:seed``.

    Returns:
        The pruned model (raw records in, like the trained one) and the pruning report: per-layer zeros, the
        primary validation metric of the trained, pruned and fine-tuned model, and the fine-tuning history.
    """
    settings = parse(PruningParams, pruning, "pruning")
    primary = parse(ProblemDefinition, problem, "problem").primary_metric
    pruned, tuning, pruned_score = prune_members(
        model, model_metadata, train, train_balanced, val, settings, primary, seed
    )
    roles, classes = metadata_roles(model_metadata), list(model_metadata["classes"])
    trained_score = validation_score(model, val, roles, classes, primary)
    tuned_score = validation_score(pruned, val, roles, classes, primary)
    logger.info(
        "Pruned to sparsity %.2f: validation %s %.4f (trained %.4f, before fine-tuning %.4f).",
        settings.target_sparsity,
        primary,
        tuned_score,
        trained_score,
        pruned_score,
    )
    report = {
        "target_sparsity": settings.target_sparsity,
        "primary_metric": primary,
        "layers": kernel_sparsity(pruned),
        "ensemble_members": len(tuning),
        "validation": {
            "trained": trained_score,
            "pruned": pruned_score,
            "fine_tuned": tuned_score,
        },
        # The sparsity is a parameter, not picked on validation; the pruned model inherits the trained one's
        # selection (a kept best seed is the best of several validation scores).
        "sparsity_chosen_on_validation": False,
        "validation_selection_bias": bool(model_metadata.get("validation_selection_bias", False)),
        "fine_tuning": {
            "learning_rate": settings.learning_rate,
            "max_epochs": settings.epochs,
            # One entry per seed model of an ensemble; their epochs summed for the trade-off table.
            **(tuning[0] if len(tuning) == 1 else {}),
            "epochs_run": sum(t["epochs_run"] for t in tuning),
            "members": tuning,
        },
    }
    return pruned, report


def prune_members(  # noqa: PLR0913
    model: Any,
    model_metadata: Mapping[str, Any],
    train: pd.DataFrame,
    train_balanced: pd.DataFrame,
    val: pd.DataFrame,
    settings: PruningParams,
    primary: str,
    seed: int,
    sparsity: float | None = None,
) -> tuple[Any, list[dict[str, Any]], float]:
    """Prune every seed model of ``model`` to ``sparsity`` (default: the target) and fine-tune each.

    Returns:
        The pruned model (an ensemble again when ``model`` is one), the fine-tuning record of each seed model
        and the validation score before fine-tuning.
    """
    rebuilt = rebuild_members(model, model_metadata, train)
    level = settings.target_sparsity if sparsity is None else sparsity
    masks = [prune(member.parts, level) for member in rebuilt]
    roles, classes = rebuilt[0].roles, rebuilt[0].classes
    before = validation_score(assemble(rebuilt), val, roles, classes, primary)
    tuning = [
        fine_tune(member, mask, train_balanced, val, settings, primary, seed + index)
        for index, (member, mask) in enumerate(zip(rebuilt, masks, strict=True))
    ]
    return assemble(rebuilt), tuning, before


def tabulate_pruning_tradeoff(  # noqa: PLR0913
    model: Any,
    pruned_model: Any,
    pruning_report: Mapping[str, Any],
    model_metadata: Mapping[str, Any],
    train: pd.DataFrame,
    train_balanced: pd.DataFrame,
    val: pd.DataFrame,
    pruning: Mapping[str, Any],
    problem: Mapping[str, Any],
    seed: int,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Measure the trained model pruned to each of ``sparsities``: size on disk, latency, validation metric.

    Sparsity 0 is the trained model as it is; the target sparsity is the saved pruned model; every other sparsity
    is pruned and fine-tuned here as :func:`prune_model` does.

    Args:
        model: the trained Keras model.
        pruned_model: the pruned model at ``target_sparsity``.
        pruning_report: its report (the score before fine-tuning, the epochs it took).
        model_metadata: the trained model's metadata.
        train: the training split (to rebuild the model; the serving schema for the latency figures).
        train_balanced: the rows the fine-tuning fits on.
        val: validation rows: early stopping, the scores and the records timed.
        pruning: ``params:pruning``.
        problem: ``params:problem``.
        seed: ``params:seed``.

    Returns:
        The table as JSON (``primary_metric``, ``target_sparsity``, ``rows``) and as a frame, one row per
        sparsity: ``sparsity``, ``achieved_sparsity`` (zeros over all pruned kernels), ``nonzero_weights``,
        ``size_bytes`` (the ``.keras`` file), ``gzip_bytes``, ``engine``, ``records``, ``latency_ms`` and
        ``latency_p95_ms`` (one record on the service's path), ``keras_latency_ms`` (``model(x)``),
        ``val_<primary metric>``, ``fine_tuning_epochs`` and ``val_<primary metric>_before_fine_tuning``.
    """
    settings = parse(PruningParams, pruning, "pruning")
    primary = parse(ProblemDefinition, problem, "problem").primary_metric
    roles = metadata_roles(model_metadata)
    classes = list(model_metadata["classes"])
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
            variant, tuning, before = prune_members(
                model, model_metadata, train, train_balanced, val, settings, primary, seed, sparsity
            )
            epochs = sum(t["epochs_run"] for t in tuning)
        row = {
            "sparsity": sparsity,
            **describe_variant(
                variant, train, val, roles, classes, primary, settings.latency_records
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
    table = {
        "primary_metric": primary,
        "target_sparsity": settings.target_sparsity,
        "rows": rows,
    }
    return table, pd.DataFrame(rows)


def plot_pruning_tradeoff(pruning_tradeoff: Mapping[str, Any]) -> Any:
    """The trade-off against sparsity: the primary validation metric, the size on disk and the latency.

    Returns:
        A plotly figure (kedro-viz previews it).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    primary = pruning_tradeoff["primary_metric"]
    rows = pruning_tradeoff["rows"]
    sparsity = [row["sparsity"] for row in rows]
    figure = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=[
            f"validation {primary}",
            "size on disk (kB)",
            "one record (ms, median)",
        ],
    )
    figure.add_trace(
        go.Scatter(x=sparsity, y=[row[f"val_{primary}"] for row in rows], name=primary),
        row=1,
        col=1,
    )
    for key, label in (("size_bytes", ".keras file"), ("gzip_bytes", "gzip-compressed")):
        figure.add_trace(
            go.Scatter(x=sparsity, y=[row[key] / 1000 for row in rows], name=label), row=1, col=2
        )
    for key, label in (("latency_ms", "service path"), ("keras_latency_ms", "model(x)")):
        figure.add_trace(
            go.Scatter(x=sparsity, y=[row[key] for row in rows], name=label), row=1, col=3
        )
    figure.add_vline(x=pruning_tradeoff["target_sparsity"], line={"dash": "dot", "color": "grey"})
    figure.update_xaxes(title_text="sparsity of the dense kernels")
    figure.update_layout(
        title="Magnitude pruning: quality, size and latency (dotted: target sparsity)",
        template="plotly_white",
        height=420,
    )
    return figure
