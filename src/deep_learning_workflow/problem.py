"""The problem definition (``params:problem``): what the model is for and how success is measured."""

from __future__ import annotations

from deep_learning_workflow.metrics import MetricName
from deep_learning_workflow.parameters import Parameters, register


@register("problem")
class ProblemDefinition(Parameters):
    """What the stakeholders agreed: the question, the metric that answers it."""

    statement: str
    primary_metric: MetricName = "pr_auc"
