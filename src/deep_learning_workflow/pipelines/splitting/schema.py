"""Typed settings of the splitting pipeline (``params:splitting``): split sizes, balancing, small-table policy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from deep_learning_workflow.parameters import Parameters, register

BalancingMethod = Literal[
    "none", "random_undersampling", "random_oversampling", "smote", "smote_nc"
]


class Balancing(Parameters):
    """How the training split is resampled (``params:splitting.balancing``)."""

    method: BalancingMethod = "none"
    sampling_strategy: (
        Literal["auto", "minority", "not minority", "not majority", "all"] | float
    ) = Field(
        default="auto",
        description="imbalanced-learn's sampling_strategy; a float (binary targets only) is the wanted "
        "minority/majority ratio after resampling",
    )
    k_neighbors: PositiveInt = Field(
        default=5, description="Neighbours SMOTE and SMOTE-NC interpolate between"
    )
    synthetic_key_prefix: str = Field(default="synthetic-", min_length=1)

    @model_validator(mode="after")
    def _ratio_in_range(self) -> Balancing:
        if isinstance(self.sampling_strategy, float) and not 0 < self.sampling_strategy <= 1:
            raise ValueError(
                f"sampling_strategy {self.sampling_strategy} must be in (0, 1]: the minority/majority ratio wanted"
            )
        return self


@register("splitting")
class SplittingParameters(Parameters):
    """Split sizes and balancing (``params:splitting``); the seed is ``params:seed``."""

    train_size: float = Field(default=0.70, gt=0, lt=1)
    val_size: float = Field(default=0.15, gt=0, lt=1)
    test_size: float = Field(default=0.15, gt=0, lt=1)
    balancing: Balancing = Balancing()
    min_rows_per_class: PositiveInt = Field(
        default=10, description="Fewest rows of each class every split must hold (see class_sizes)"
    )
    on_small_table: Literal["stop", "warn"] = "stop"

    @model_validator(mode="after")
    def _sizes_sum_to_one(self) -> SplittingParameters:
        total = self.train_size + self.val_size + self.test_size
        if abs(total - 1) > 1e-6:
            raise ValueError(
                f"train_size + val_size + test_size = {self.train_size} + {self.val_size} + {self.test_size} "
                f"= {total:g}; they must sum to 1"
            )
        return self

    @property
    def sizes(self) -> dict[str, float]:
        """Split name to its share of the rows."""
        return {"train": self.train_size, "val": self.val_size, "test": self.test_size}
