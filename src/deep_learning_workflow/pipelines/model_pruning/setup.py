"""What pruning works with, checked once: the trained model's metadata, the splits, the settings and the seed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from deep_learning_workflow.models.scoring import validation_score
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.problem import ProblemDefinition

from .pruning import assemble, fine_tune, prune, rebuild_members
from .schema import PruningParams


@dataclass(frozen=True)
class PruningSetup:
    """The inputs every pruning node shares.

    Attributes:
        model_metadata: the trained model's metadata (the parameters and roles it was built from).
        train: the training split (the preprocessing's rows, to rebuild the model).
        train_balanced: the rows the fine-tuning fits on (derived from the training split only).
        val: validation rows: early stopping and the reported scores only.
        settings: ``params:pruning``, parsed.
        primary: ``params:problem.primary_metric``.
        seed: ``params:seed``.
    """

    model_metadata: Mapping[str, Any]
    train: pd.DataFrame
    train_balanced: pd.DataFrame
    val: pd.DataFrame
    settings: PruningParams
    primary: str
    seed: int

    def prune(
        self, model: Any, sparsity: float | None = None
    ) -> tuple[Any, list[dict[str, Any]], float]:
        """Prune every seed model of ``model`` to ``sparsity`` (default: the target) and fine-tune each.

        Returns:
            The pruned model (an ensemble again when ``model`` is one), the fine-tuning record of each seed model
            and the validation score before fine-tuning.
        """
        rebuilt = rebuild_members(model, self.model_metadata, self.train)
        level = self.settings.target_sparsity if sparsity is None else sparsity
        masks = [prune(member.parts, level) for member in rebuilt]
        roles, classes = rebuilt[0].roles, rebuilt[0].classes
        before = validation_score(assemble(rebuilt), self.val, roles, classes, self.primary)
        tuning = [
            fine_tune(
                member,
                mask,
                self.train_balanced,
                self.val,
                self.settings,
                self.primary,
                self.seed + index,
            )
            for index, (member, mask) in enumerate(zip(rebuilt, masks, strict=True))
        ]
        return assemble(rebuilt), tuning, before


def prepare_pruning(  # noqa: PLR0913 - builds the one typed input (PruningSetup) from catalog entries
    model_metadata: Mapping[str, Any],
    train: pd.DataFrame,
    train_balanced: pd.DataFrame,
    val: pd.DataFrame,
    pruning: Mapping[str, Any],
    problem: Mapping[str, Any],
    seed: int,
) -> PruningSetup:
    """Check ``params:pruning`` and gather what the pruning nodes share into one :class:`PruningSetup`.

    Raises:
        ValueError: naming the key of ``params:pruning`` or ``params:problem`` that is invalid.
    """
    return PruningSetup(
        model_metadata=model_metadata,
        train=train,
        train_balanced=train_balanced,
        val=val,
        settings=parse(PruningParams, pruning, "pruning"),
        primary=parse(ProblemDefinition, problem, "problem").primary_metric,
        seed=int(seed),
    )
