"""The study's sampler, seeded per trial and hyperparameter, and its pruner."""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import numpy as np

from .schema import PrunerParams, SamplerParams


def _draw_seed(seed: int, number: int, what: str) -> int:
    entropy = [int(seed), int(number), zlib.crc32(what.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _reseed(sampler: Any, seed: int) -> None:
    for part in (sampler, getattr(sampler, "_random_sampler", None)):
        state = getattr(part, "_rng", None)
        if state is not None:
            state.rng.seed(seed)


def make_sampler(params: SamplerParams, seed: int) -> Any:
    """The seeded sampler; each draw is seeded from (seed, trial number, hyperparameter).

    One worker gets the same trials run after run; several workers sharing a study get different trial numbers and
    so do not propose the same hyperparameters (which one fixed seed per worker would do).
    """
    import optuna

    if params.name == "random":
        base: type = optuna.samplers.RandomSampler
        kwargs: dict[str, Any] = {}
    else:
        base = optuna.samplers.TPESampler
        kwargs = {
            "n_startup_trials": params.n_startup_trials,
            "multivariate": params.multivariate,
            "constant_liar": params.constant_liar,
        }

    class TrialSeededSampler(base):
        def sample_relative(
            self, study: Any, trial: Any, search_space: dict[str, Any]
        ) -> dict[str, Any]:
            _reseed(self, _draw_seed(seed, trial.number, "\0relative"))
            return super().sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
            _reseed(self, _draw_seed(seed, trial.number, name))
            return super().sample_independent(study, trial, name, distribution)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return TrialSeededSampler(seed=int(seed), **kwargs)


def make_pruner(params: PrunerParams, epochs: int) -> Any:
    """The pruner of ``params:tuning.pruner``; its steps are epochs."""
    import optuna

    if params.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=params.n_startup_trials, n_warmup_steps=params.n_warmup_steps
        )
    if params.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=params.min_resource,
            max_resource=max(epochs, params.min_resource),
            reduction_factor=params.reduction_factor,
        )
    if params.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=params.min_resource, reduction_factor=params.reduction_factor
        )
    return optuna.pruners.NopPruner()
