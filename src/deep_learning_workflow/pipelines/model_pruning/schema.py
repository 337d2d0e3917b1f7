"""The model pruning pipeline's parameters (``params:pruning``), validated before any node runs."""

from __future__ import annotations

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from deep_learning_workflow.parameters import Parameters, register

SPARSITY_RULE = (
    "a sparsity is the share of each pruned kernel's weights set to zero (0 keeps every weight, 1 would remove "
    "them all); give a value in [0, 1), e.g. 0.5"
)


def _check_sparsity(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(SPARSITY_RULE)
    return value


@register("pruning")
class PruningParams(Parameters):
    """Magnitude pruning of the trained model's dense kernels (``params:pruning``)."""

    target_sparsity: float = Field(
        0.5,
        description="Sparsity of the pruned model that is saved and goes through the release gate",
    )
    sparsities: list[float] = Field(
        [0.0, 0.5, 0.8, 0.9],
        min_length=1,
        description="Sparsities of the trade-off table; 0.0 is the trained model as it is",
    )
    epochs: PositiveInt = Field(
        5, description="Most fine-tuning epochs after pruning (early-stopped on validation)"
    )
    learning_rate: PositiveFloat = Field(
        1e-4, description="Learning rate of the fine-tuning (the optimiser of params:modelling)"
    )
    latency_records: PositiveInt = Field(
        200, description="Validation records scored one at a time for the latency figures"
    )

    @field_validator("target_sparsity")
    @classmethod
    def _valid_target(cls, value: float) -> float:
        return _check_sparsity(value)

    @field_validator("sparsities")
    @classmethod
    def _valid_sparsities(cls, values: list[float]) -> list[float]:
        for value in values:
            _check_sparsity(value)
        if len(set(values)) != len(values):
            raise ValueError(f"the sparsities {values} repeat a value; list each once")
        return sorted(values)
