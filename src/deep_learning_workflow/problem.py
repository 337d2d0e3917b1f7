"""The problem definition (``params:problem``): what the model is for and how success is measured.

Besides the question and the primary metric, it holds what the stakeholders agreed: the value of a validation metric
the model must reach (``success``, checked by the release gate) and what a wrong decision costs (``costs``, for a
binary target: the decision threshold can be chosen to make the expected cost smallest).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, model_validator

from deep_learning_workflow.metrics import GREATER_IS_BETTER, MetricName
from deep_learning_workflow.parameters import Parameters, register

# Finite: a cost of .inf would make every comparison of costs meaningless.
Cost = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class SuccessCriterion(Parameters):
    """The value of a validation metric the model must reach to count as a success.

    ``metric`` defaults to the primary metric. A metric that is better when higher takes a ``minimum`` (in [0, 1]);
    one that is better when lower (log_loss, brier) a ``maximum``.
    """

    metric: MetricName
    minimum: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    maximum: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bound_matches_direction(self) -> SuccessCriterion:
        greater = GREATER_IS_BETTER[self.metric]
        wanted, other = ("minimum", "maximum") if greater else ("maximum", "minimum")
        if getattr(self, other) is not None:
            direction = "higher" if greater else "lower"
            raise ValueError(
                f"{self.metric} is better when {direction}: give its '{wanted}', not a '{other}'"
            )
        if getattr(self, wanted) is None:
            raise ValueError(f"give the '{wanted}' value of {self.metric} that counts as success")
        return self

    @property
    def bound(self) -> float:
        """The agreed value: the minimum, or for a metric that is better when lower the maximum."""
        return self.minimum if self.minimum is not None else self.maximum

    def met_by(self, value: float) -> bool:
        """Whether a value of the metric reaches the agreed one."""
        return value >= self.bound if GREATER_IS_BETTER[self.metric] else value <= self.bound

    def describe(self) -> str:
        """E.g. ``pr_auc >= 0.6``."""
        return f"{self.metric} {'>=' if GREATER_IS_BETTER[self.metric] else '<='} {self.bound:g}"


class Costs(Parameters):
    """What one wrong decision on a binary target costs the business, per record.

    Correct decisions cost nothing: a benefit of a right decision is counted as the cost of missing it. Costs apply
    to binary targets only (the positive class is ``params:columns.positive_class``); a multi-class target is
    decided by its most probable class and gets no expected cost.
    """

    false_positive: Cost = Field(description="a record flagged positive that is negative")
    false_negative: Cost = Field(description="a positive record that is not flagged")
    unit: str | None = Field(
        default=None, description="currency or unit of both costs, for the reports"
    )

    @model_validator(mode="after")
    def _something_costs(self) -> Costs:
        if self.false_positive == 0 and self.false_negative == 0:
            raise ValueError(
                "false_positive and false_negative are both 0: every decision would cost nothing; give the cost "
                "of each kind of error, or remove 'costs'"
            )
        return self


@register("problem")
class ProblemDefinition(Parameters):
    """What the stakeholders agreed: the question, the metric that answers it, the value that counts as success and
    the cost of each kind of error."""

    statement: str
    primary_metric: MetricName = "pr_auc"
    success: SuccessCriterion | None = None
    costs: Costs | None = None

    @model_validator(mode="before")
    @classmethod
    def _success_metric_defaults_to_primary(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        success = data.get("success")
        primary = data.get("primary_metric", "pr_auc")
        if (
            isinstance(success, Mapping)
            and "metric" not in success
            and primary in GREATER_IS_BETTER
        ):
            return {**data, "success": {**success, "metric": primary}}
        return data
