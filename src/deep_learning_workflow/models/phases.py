"""Training in two phases for transfer learning: the head with the frozen layers fixed, then everything together."""

from __future__ import annotations

from typing import Any

import numpy as np

from .schema import ModellingParams


def fit_in_phases(head: Any, params: ModellingParams, early: Any, *args: Any, **kwargs: Any) -> Any:
    """``head.fit(*args, **kwargs)``, then, with fine-tuning on, a second fit with the frozen layers unfrozen.

    The second phase recompiles the head with the same optimiser at ``learning_rate * fine_tune.learning_rate_factor``
    and runs ``fine_tune.epochs`` more epochs, numbered after the first phase's (``initial_epoch``), with the same
    callbacks. With early stopping (``early``), the weights of the better phase on the monitored metric (ties broken
    by the validation loss) are kept.
    The frozen layers are trainable again in the returned model either way.

    Returns:
        A ``keras.callbacks.History`` of both phases.
    """
    import keras

    settings = params.transfer
    first = head.fit(*args, **kwargs)
    losses = np.asarray(first.history.get("loss", []), dtype="float64")
    if not (settings.fine_tune.enabled and losses.size and np.isfinite(losses).all()):
        _unfreeze(head, settings.freeze)
        return first
    done = len(losses)
    kept = head.get_weights()
    best = (early.best, early.best_tie_breaker, early.best_epoch) if early is not None else None
    _unfreeze(head, settings.freeze)
    _recompile(head, params.learning_rate * settings.fine_tune.learning_rate_factor)
    second = head.fit(
        *args, **{**kwargs, "epochs": done + settings.fine_tune.epochs, "initial_epoch": done}
    )
    if best is not None and best[0] is not None:
        # EarlyStopping judges each fit on its own: the first epoch of the second phase is always its best so
        # far, even when it is worse than the first phase's best.
        if not early.better(early.best, early.best_tie_breaker, best[0], best[1]):
            head.set_weights(kept)
            early.best, early.best_tie_breaker, early.best_epoch = best
    merged = keras.callbacks.History()
    merged.history = {
        key: [*first.history.get(key, []), *second.history.get(key, [])]
        for key in {**first.history, **second.history}
    }
    merged.epoch = [*first.epoch, *second.epoch]
    return merged


def _unfreeze(head: Any, names: list[str]) -> None:
    for name in names:
        head.get_layer(name).trainable = True


def _recompile(head: Any, learning_rate: float) -> None:
    """Compile the head again as it was, with a new optimiser at ``learning_rate`` (and the new trainable set)."""
    config = head.get_compile_config()
    optimizer = {**config["optimizer"]}
    optimizer["config"] = {**optimizer["config"], "learning_rate": learning_rate}
    with head.distribute_strategy.scope():
        head.compile_from_config({**config, "optimizer": optimizer})
