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

from deep_learning_workflow.parameters import Parameters, register
from deep_learning_workflow.pipelines.modelling.schema import ModellingParams


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
