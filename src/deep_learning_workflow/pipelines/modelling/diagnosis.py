"""The learning curves of the kept model: their plot, and the flags and advice read from them."""

from __future__ import annotations

from typing import Any

import numpy as np

from deep_learning_workflow.models.preprocessing import as_params


def plot_training_history(training_history: dict[str, Any]) -> Any:
    """Learning curves of the kept model: loss and each metric per epoch, fitted rows vs the rows early stopping
    watched (the holdout of ``params:modelling.early_stopping.holdout``, or validation), best epoch marked.

    Returns:
        A plotly figure (kedro-viz previews it).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    history = training_history["history"]
    names = [key for key in history if not key.startswith("val_") and f"val_{key}" in history]
    figure = make_subplots(
        rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names, vertical_spacing=0.06
    )
    for row, name in enumerate(names, start=1):
        epochs = list(range(1, len(history[name]) + 1))
        watched = "held out" if training_history.get("watched") == "holdout" else "validation"
        for key, label, dash in ((name, "train", "solid"), (f"val_{name}", watched, "dash")):
            figure.add_trace(
                go.Scatter(
                    x=epochs,
                    y=history[key],
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=row == 1,
                    line={"dash": dash, "color": "#1f77b4" if key == name else "#ff7f0e"},
                ),
                row=row,
                col=1,
            )
        figure.add_vline(
            x=training_history["best_epoch"], line={"dash": "dot", "color": "grey"}, row=row, col=1
        )
    figure.update_xaxes(title_text="epoch", row=len(names), col=1)
    figure.update_layout(
        title=f"Training history (seed {training_history['seed']}; dotted: best epoch {training_history['best_epoch']})",
        height=260 * len(names),
        template="plotly_white",
    )
    return figure


ADVICE = {
    "unstable": (
        "Learning is unstable: lower params:modelling.learning_rate (e.g. by 3x), raise batch_size, or turn on "
        "batch_norm; check the inputs for extreme values (numeric.clip_quantiles)."
    ),
    "overfitting": (
        "The model overfits after its best epoch (early stopping kept the best weights): raise dropout or l2, "
        "use fewer hidden_layers or units, or add training rows."
    ),
    "underfitting": (
        "The model underfits: train longer (epochs, early_stopping.patience) or with a higher learning_rate, "
        "use more units or hidden_layers, lower dropout or l2, and compare with the baselines to check that the "
        "features carry signal."
    ),
}


def diagnose_training(
    training_history: dict[str, Any], modelling: dict[str, Any]
) -> dict[str, Any]:
    """Read the learning curves for unstable learning, overfitting and underfitting.

    - unstable: the training loss rises in at least ``diagnosis.unstable_rises`` of the epochs, or spikes above
      ``diagnosis.unstable_spike`` times its lowest value so far;
    - overfitting: the gap between validation and training loss grows by more than ``diagnosis.overfitting_gap``
      from the best epoch to the last while the validation loss rises;
    - underfitting: at the best epoch the training loss is still above ``diagnosis.underfitting_loss_ratio``
      times the class-prior loss (both curves poor), or the best epoch is the last of all ``epochs`` (still
      improving when training stopped).

    Returns:
        ``flags`` (name to bool), ``evidence`` (the numbers behind them), ``advice`` (one line per raised flag),
        ``healthy`` (no flag).
    """
    params = as_params(modelling)
    settings = params.diagnosis
    history = training_history["history"]
    loss = np.asarray(history["loss"], dtype="float64")
    val_loss = np.asarray(history.get("val_loss", loss), dtype="float64")
    best = int(training_history["best_epoch"]) - 1
    last = len(loss) - 1
    rises = float(np.mean(np.diff(loss) > 1e-4 * np.abs(loss[:-1]))) if loss.size > 1 else 0.0
    running_min = np.minimum.accumulate(loss)
    spike = float(np.max(loss[1:] / running_min[:-1])) if loss.size > 1 else 1.0
    gap = val_loss - loss
    gap_growth = float(gap[last] - gap[best])
    prior = float(training_history["class_prior_loss"])
    loss_ratio = float(loss[best] / prior) if prior > 0 else 0.0
    still_improving = best == last and len(loss) >= params.epochs
    flags = {
        "unstable": bool(
            (loss.size >= 4 and rises >= settings.unstable_rises) or spike > settings.unstable_spike
        ),
        "overfitting": bool(
            gap_growth > settings.overfitting_gap and val_loss[last] > val_loss[best]
        ),
        "underfitting": bool(loss_ratio > settings.underfitting_loss_ratio or still_improving),
    }
    return {
        "flags": flags,
        "evidence": {
            "epochs_run": int(loss.size),
            "best_epoch": best + 1,
            "share_of_epochs_with_rising_train_loss": rises,
            "largest_train_loss_jump": spike,
            "loss_gap_at_best_epoch": float(gap[best]),
            "loss_gap_at_last_epoch": float(gap[last]),
            "loss_gap_growth": gap_growth,
            "train_loss_over_class_prior_loss": loss_ratio,
            "still_improving_at_last_epoch": bool(still_improving),
        },
        "advice": [ADVICE[name] for name, raised in flags.items() if raised],
        "healthy": not any(flags.values()),
    }
