"""The nodes: the pruned model at the target sparsity with its report, the trade-off table and its plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from deep_learning_workflow.pipelines.model_pruning.nodes import (
    prune_model,
    tabulate_pruning_tradeoff,
)
from deep_learning_workflow.pipelines.model_pruning.plots import plot_pruning_tradeoff
from deep_learning_workflow.pipelines.model_pruning.pruning import magnitude_mask

from .conftest import PRUNING, pruning_setup


@pytest.fixture(scope="module")
def pruned(trained, splits):
    model, metadata = trained
    return prune_model(model, pruning_setup(metadata, splits))


def test_prune_model_reports_exact_sparsity_per_layer(trained, pruned):
    import keras

    model, report = pruned
    assert report["target_sparsity"] == 0.5 and report["primary_metric"] == "pr_auc"
    assert [row["layer"] for row in report["layers"]] == ["hidden_1", "hidden_2", "probabilities"]
    for row in report["layers"]:
        assert row["zeros"] == round(row["weights"] * 0.5) and row["sparsity"] == 0.5
    assert set(report["validation"]) == {"trained", "pruned", "fine_tuned"}
    assert all(0.0 <= value <= 1.0 for value in report["validation"].values())
    assert 1 <= report["fine_tuning"]["epochs_run"] <= PRUNING["epochs"]
    # The zeros sit where the trained kernels had their smallest magnitudes, and stayed zero through fine-tuning.
    for row in report["layers"]:
        before = keras.ops.convert_to_numpy(trained[0].get_layer(row["layer"]).kernel)
        after = keras.ops.convert_to_numpy(model.get_layer(row["layer"]).kernel)
        assert after.shape == before.shape and after.size == row["weights"]
        np.testing.assert_array_equal(after == 0, ~magnitude_mask(before, 0.5))
        kept = magnitude_mask(before, 0.5)
        assert not np.allclose(after[kept], before[kept])  # the kept weights were fine-tuned


def test_tradeoff_table_has_a_row_per_sparsity_with_the_four_figures(trained, splits, pruned):
    model, metadata = trained
    pruned_model, report = pruned
    table, frame = tabulate_pruning_tradeoff(
        model, pruned_model, report, pruning_setup(metadata, splits)
    )
    assert table["primary_metric"] == "pr_auc" and table["target_sparsity"] == 0.5
    rows = table["rows"]
    assert [row["sparsity"] for row in rows] == [0.0, 0.5, 0.8]
    for row in rows:
        assert row["size_bytes"] > row["gzip_bytes"] > 0
        assert row["latency_ms"] > 0 and row["keras_latency_ms"] > 0
        assert row["engine"] == "numpy" and row["records"] > 0
        assert 0.0 <= row["val_pr_auc"] <= 1.0
        assert row["achieved_sparsity"] == pytest.approx(row["sparsity"], abs=1e-3)
    trained_row, target_row, sparse_row = rows
    assert trained_row["fine_tuning_epochs"] == 0
    assert trained_row["val_pr_auc"] == trained_row["val_pr_auc_before_fine_tuning"]
    # The target row is the saved pruned model, not another one.
    assert target_row["val_pr_auc"] == pytest.approx(report["validation"]["fine_tuned"])
    assert target_row["val_pr_auc_before_fine_tuning"] == report["validation"]["pruned"]
    assert sparse_row["fine_tuning_epochs"] >= 1
    assert sparse_row["nonzero_weights"] < target_row["nonzero_weights"]
    # Zeros compress: the gzip-compressed file shrinks as the sparsity grows.
    assert sparse_row["gzip_bytes"] < trained_row["gzip_bytes"]

    assert isinstance(frame, pd.DataFrame) and len(frame) == 3
    assert {"sparsity", "size_bytes", "latency_ms", "val_pr_auc"} <= set(frame.columns)
    np.testing.assert_allclose(frame["val_pr_auc"], [row["val_pr_auc"] for row in rows])

    figure = plot_pruning_tradeoff(table)
    assert isinstance(figure, go.Figure) and len(figure.data) == 5
    assert list(figure.data[0].x) == [0.0, 0.5, 0.8]
