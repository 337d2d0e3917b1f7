"""Typed settings of the evaluation pipeline (``params:evaluation``) and of the release scenarios file."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    NonNegativeFloat,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from deep_learning_workflow.metrics import GREATER_IS_BETTER, MetricName
from deep_learning_workflow.parameters import Parameters, register, register_check
from deep_learning_workflow.problem import ProblemDefinition


class ThresholdParameters(Parameters):
    """How the decision threshold of a binary target is chosen on the validation split.

    ``max_f1`` takes the threshold with the best F1 of the positive class; ``target_recall`` the highest threshold
    whose recall reaches ``target`` (the most precise way to catch that share of positives); ``target_precision``
    the lowest threshold whose precision reaches ``target`` (the most positives caught at that precision);
    ``min_expected_cost`` the threshold with the lowest expected cost per record under ``params:problem.costs``.

    With ``bootstrap`` > 0 the threshold is the median of the rule's picks on that many stratified bootstrap
    resamples of the validation rows (seeded with ``params:seed``): steadier than one pick where the rule's
    criterion is flat near its best (F1 often is). 0 takes the single pick on the validation rows.
    """

    rule: Literal["max_f1", "target_recall", "target_precision", "min_expected_cost"] = "max_f1"
    target: float | None = Field(default=None, gt=0.0, le=1.0)
    bootstrap: StrictInt = Field(default=200, ge=0, le=10_000)

    @property
    def has_target(self) -> bool:
        return self.rule in ("target_recall", "target_precision")

    @model_validator(mode="after")
    def _target_matches_rule(self) -> ThresholdParameters:
        if not self.has_target and self.target is not None:
            raise ValueError(
                "'target' is only used by the rules target_recall and target_precision; remove it"
            )
        if self.has_target and self.target is None:
            raise ValueError(f"rule '{self.rule}' needs a 'target' in (0, 1]")
        return self


class ReleaseGateParameters(Parameters):
    """What a candidate model must achieve on the validation split to be released.

    Against every baseline, the model's primary metric and each metric of ``also_compare`` are compared by a paired
    bootstrap of the validation rows (``resamples``, ``confidence``, seeded with ``params:seed``), under ``rule``:
    ``superior`` (the interval of the model's lead lies above ``margin``), ``non_inferior`` (it lies above minus
    ``margin``) or ``point`` (the point estimates: the lead is at least ``margin``). Margins are in each metric's
    units; ``also_compare`` maps a metric to its own margin. Accuracy is that of the decisions at the chosen
    threshold.

    ``floors`` hold metrics where greater is better (minimums), ``ceilings`` metrics where lower is better
    (maximums, e.g. log_loss, brier). A metric set to null has no floor, ceiling or comparison: environments merge
    parameters softly, so null is how one drops an entry of ``conf/base``.
    """

    rule: Literal["superior", "non_inferior", "point"] = "non_inferior"
    margin: float | None = Field(default=None, ge=0.0, le=0.5)
    also_compare: dict[MetricName, Annotated[float, Field(ge=0.0, le=0.5)] | None] = {
        "log_loss": 0.02,
        "accuracy": 0.02,
    }
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    resamples: int = Field(default=2000, ge=1000, le=100_000)
    floors: dict[MetricName, Annotated[float, Field(ge=0.0, le=1.0)] | None] = {}
    ceilings: dict[MetricName, NonNegativeFloat | None] = {}
    previous_release_tolerance: float = Field(default=0.01, ge=0.0, le=0.5)

    @model_validator(mode="after")
    def _rule_has_a_margin(self) -> ReleaseGateParameters:
        if self.margin is None:
            raise ValueError(
                f"the rule '{self.rule}' needs a 'margin' (in the primary metric's units, e.g. 0.02; 0 for none): "
                "set evaluation.release_gate.margin in parameters_evaluation.yml"
            )
        return self

    @field_validator("also_compare")
    @classmethod
    def _drop_nulls(cls, margins: dict[str, float | None]) -> dict[str, float]:
        return {name: value for name, value in margins.items() if value is not None}

    @field_validator("floors")
    @classmethod
    def _floors_are_greater_is_better(cls, floors: dict[str, float]) -> dict[str, float]:
        wrong = [name for name in floors if not GREATER_IS_BETTER[name]]
        if wrong:
            raise ValueError(
                f"{wrong} are better when lower: give them a maximum under 'ceilings' instead"
            )
        return {name: value for name, value in floors.items() if value is not None}

    @field_validator("ceilings")
    @classmethod
    def _ceilings_are_lower_is_better(cls, ceilings: dict[str, float]) -> dict[str, float]:
        wrong = [name for name in ceilings if GREATER_IS_BETTER[name]]
        if wrong:
            raise ValueError(
                f"{wrong} are better when higher: give them a minimum under 'floors' instead"
            )
        return {name: value for name, value in ceilings.items() if value is not None}


class BootstrapParameters(Parameters):
    """Bootstrap confidence intervals of the test metrics (seeded with ``params:seed``).

    Beyond ``max_rows`` test rows, each resample draws from a stratified sample of ``max_rows`` rows and its spread
    is rescaled to the whole split (the m-out-of-n bootstrap), so the cost does not grow with the table.
    """

    resamples: int = Field(default=1000, ge=20, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    max_rows: int = Field(default=10_000, ge=1_000)


class ReportParameters(Parameters):
    """The model report for decision makers."""

    title: str = "Model report"
    limitations: list[str] = []


@register("evaluation")
class EvaluationParameters(Parameters):
    """Settings of the evaluation pipeline (``params:evaluation``)."""

    threshold: ThresholdParameters = ThresholdParameters()
    release_gate: ReleaseGateParameters = Field(
        default_factory=lambda: ReleaseGateParameters(margin=0.02)
    )
    bootstrap: BootstrapParameters = BootstrapParameters()
    calibration_bins: int = Field(default=10, ge=2, le=50)
    report: ReportParameters = ReportParameters()


@register_check("evaluation", "problem")
def check_costs_for_threshold(
    evaluation: EvaluationParameters, problem: ProblemDefinition
) -> str | None:
    """The rule ``min_expected_cost`` needs the costs of the problem definition."""
    if evaluation.threshold.rule == "min_expected_cost" and problem.costs is None:
        return (
            "evaluation.threshold.rule: 'min_expected_cost' needs problem.costs (false_positive, false_negative) in "
            "parameters.yml; give them, or choose another rule"
        )
    return None


def _not_boolean(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(
            'YAML reads an unquoted yes/no/true/false/on/off as a boolean; quote the value (e.g. "Yes")'
        )
    return value


# A record's value: a number, a category (quoted in YAML) or null for a missing value.
RecordValue = Annotated[StrictInt | StrictFloat | StrictStr | None, BeforeValidator(_not_boolean)]


class Scenario(Parameters):
    """One check every candidate model is run on before release.

    Either ``expect_label``: the model's decision on ``record`` (at the chosen threshold) must be that class; or
    ``steps`` with ``expect``: the record is changed by each step in turn and the probability of
    ``probability_of`` (the positive class when left out) must not rise (``not_increasing``) or not fall
    (``not_decreasing``) from one step to the next by more than ``tolerance``.
    """

    name: str = Field(min_length=1)
    record: dict[str, RecordValue] = {}
    expect_label: str | None = None
    steps: list[dict[str, RecordValue]] = []
    expect: Literal["not_increasing", "not_decreasing"] | None = None
    probability_of: str | None = None
    tolerance: float = Field(default=0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_kind_of_check(self) -> Scenario:
        if self.expect_label is not None:
            if self.steps or self.expect is not None:
                raise ValueError("give either 'expect_label' or 'steps' with 'expect', not both")
        elif len(self.steps) < 2 or self.expect is None:
            raise ValueError(
                "give 'expect_label', or at least two 'steps' and 'expect' (not_increasing/not_decreasing)"
            )
        return self


class ReleaseScenarios(Parameters):
    """The curated release scenarios (``data/01_raw/release_scenarios.yml``)."""

    defaults: dict[str, RecordValue] = {}
    scenarios: list[Scenario] = Field(min_length=1)

    @field_validator("scenarios")
    @classmethod
    def _names_are_unique(cls, scenarios: list[Scenario]) -> list[Scenario]:
        names = [scenario.name for scenario in scenarios]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"scenario names must be unique; repeated: {repeated}")
        return scenarios
