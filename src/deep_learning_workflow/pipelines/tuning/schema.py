"""The tuning pipeline's parameters (``params:tuning``), validated before any node runs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    PositiveInt,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

from deep_learning_workflow.models.schema import ModellingParams
from deep_learning_workflow.parameters import Parameters, register


class FloatRange(Parameters):
    """A float drawn from [low, high]; ``log: true`` draws it log-uniformly (e.g. a learning rate)."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0, description="Draw on a grid of this step (not with log)")

    @model_validator(mode="after")
    def _valid_range(self) -> FloatRange:
        _check_range(self.low, self.high)
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("give either log: true or a step, not both")
        return self


class IntRange(Parameters):
    """A whole number drawn from [low, high] (both included), on a grid of ``step`` or log-uniformly."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: PositiveInt = 1

    @model_validator(mode="after")
    def _valid_range(self) -> IntRange:
        _check_range(self.low, self.high)
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        if self.log and self.step != 1:
            raise ValueError("give either log: true or a step, not both")
        return self


class Choice(Parameters):
    """One of a list of values (e.g. optimisers or batch sizes)."""

    type: Literal["categorical"]
    choices: list[StrictBool | StrictInt | StrictFloat | str] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _distinct(cls, choices: list[Any]) -> list[Any]:
        if len({(type(value), value) for value in choices}) != len(choices):
            raise ValueError(f"the choices {choices} repeat a value")
        return choices


def _check_range(low: float, high: float) -> None:
    if low > high:
        raise ValueError(f"inverted range: low={low} is above high={high}; swap them")
    if low == high:
        raise ValueError(
            f"empty range: low = high = {low}; widen it, or drop the entry and set the value in "
            "params:modelling"
        )


Dimension = Annotated[FloatRange | IntRange | Choice, Field(discriminator="type")]


class SamplerParams(Parameters):
    """The sampler, seeded with ``params:seed`` (and each trial's number, so several workers differ)."""

    name: Literal["tpe", "random"] = "tpe"
    n_startup_trials: PositiveInt = Field(
        10, description="TPE: random trials before the model of good trials"
    )
    multivariate: bool = Field(True, description="TPE: model the hyperparameters jointly")
    constant_liar: bool = Field(
        True, description="TPE: avoid proposing what other workers are running (several workers)"
    )


class PrunerParams(Parameters):
    """Stops unpromising trials early from the validation metric reported after every epoch."""

    name: Literal["median", "hyperband", "successive_halving", "none"] = "median"
    n_startup_trials: int = Field(
        5, ge=0, description="median: trials completed before any pruning"
    )
    n_warmup_steps: int = Field(
        1, ge=0, description="median: epochs of a trial before it can be pruned"
    )
    min_resource: PositiveInt = Field(
        1, description="hyperband / successive_halving: epochs of the first rung"
    )
    reduction_factor: int = Field(
        3, ge=2, description="hyperband / successive_halving: keep 1 in this many"
    )


class SelectionParams(Parameters):
    """The best trials are retrained with several seeds and ranked by mean - sd of the validation metric."""

    top_k: PositiveInt = 3
    seeds: PositiveInt = Field(3, description="Seeds params:seed + 0 .. seeds - 1 (one seed: sd 0)")


class LatencyParams(Parameters):
    """How a trial's single-record latency is measured (the service's NumPy fast path, on validation records)."""

    calls: PositiveInt = Field(
        200, description="Single-record calls per block; a block's median is kept"
    )
    repeats: PositiveInt = Field(5, description="Blocks; the fastest block median is the latency")


class PickParams(Parameters):
    """The rule that picks one trial from the Pareto front of the metric and the second objective."""

    rule: Literal["cheapest_within", "best_within_budget"] = Field(
        "cheapest_within",
        description="cheapest_within: the cheapest trial within `tolerance` of the best metric; "
        "best_within_budget: the best metric among trials costing at most `budget`",
    )
    tolerance: float = Field(
        0.005, ge=0, description="cheapest_within: how much metric may be given up"
    )
    budget: float | None = Field(
        None, gt=0, description="best_within_budget: most milliseconds or parameters of a trial"
    )

    @model_validator(mode="after")
    def _budget_given(self) -> PickParams:
        if self.rule == "best_within_budget" and self.budget is None:
            raise ValueError(
                "params:tuning.trade_off.pick.rule best_within_budget needs params:tuning.trade_off.pick.budget "
                "(milliseconds for latency, a parameter count for parameters)"
            )
        return self


class TradeOffParams(Parameters):
    """An optional second objective: the study then keeps the Pareto front of the metric and this cost."""

    enabled: bool = False
    objective: Literal["parameters", "latency"] = Field(
        "parameters",
        description="parameters: the model's weight count (deterministic); latency: milliseconds per record",
    )
    latency: LatencyParams = LatencyParams()
    pick: PickParams = PickParams()


@register("tuning")
class TuningParams(Parameters):
    """The Optuna study (``params:tuning``)."""

    study_name: str = Field("deep_learning_workflow", min_length=1, pattern=r"^\S(.*\S)?$")
    n_trials: PositiveInt = Field(
        20,
        description="Trials of the study in all, whatever the number of workers (failed ones excepted)",
    )
    max_failed_trials: PositiveInt | None = Field(
        None, description="Stop when this many trials have failed; null: n_trials"
    )
    epochs: PositiveInt | None = Field(
        None, description="Most epochs of a trial; null: params:modelling.epochs"
    )
    sampler: SamplerParams = SamplerParams()
    pruner: PrunerParams = PrunerParams()
    search_space: dict[str, Dimension] = Field(min_length=1)
    selection: SelectionParams = SelectionParams()
    trade_off: TradeOffParams = TradeOffParams()

    @model_validator(mode="after")
    def _no_pruning_with_two_objectives(self) -> TuningParams:
        if self.trade_off.enabled and self.pruner.name != "none":
            raise ValueError(
                f"params:tuning.pruner.name is '{self.pruner.name}' but params:tuning.trade_off.enabled is true: "
                "Optuna cannot prune a study with two objectives. Set params:tuning.pruner.name: none, or turn "
                "the trade-off off"
            )
        return self

    @field_validator("search_space")
    @classmethod
    def _known_hyperparameters(cls, space: dict[str, Any]) -> dict[str, Any]:
        unknown = [name for name in space if not _is_modelling_field(name)]
        if unknown:
            raise ValueError(
                f"{unknown} are not keys of params:modelling; tune keys such as "
                f"{sorted(name for name, f in ModellingParams.model_fields.items() if not _is_model(f.annotation))}"
                " or nested ones written with dots (e.g. categorical.encoding)"
            )
        return space


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_modelling_field(path: str) -> bool:
    schema: Any = ModellingParams
    parts = path.split(".")
    for position, part in enumerate(parts):
        if not _is_model(schema) or part not in schema.model_fields:
            return False
        annotation = schema.model_fields[part].annotation
        if position < len(parts) - 1:
            schema = annotation
        elif _is_model(annotation):
            return False
    return True
