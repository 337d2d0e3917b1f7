"""The plot of the pruning trade-off: quality, size on disk and latency against sparsity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
