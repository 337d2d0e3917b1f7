"""Typed settings of the data_processing pipeline (``params:data_processing``): cleaning rules and EDA settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from deep_learning_workflow.parameters import Parameters, register


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


class DomainRule(Parameters):
    """A condition every row must meet, with what to do with a row that breaks it.

    Bounds (``ge``, ``gt``, ``le``, ``lt``) apply to numeric columns, ``allowed`` to the key, the target and
    categorical or text columns (compared after cleaning, as text). A missing value never breaks a rule: missing
    values are imputed later, inside the model, from the training split.
    """

    column: str
    action: Literal["drop_row", "set_missing"]
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    allowed: list[str] | None = None
    name: str | None = Field(
        default=None, description="Label in the cleaning report; built from the rule if null"
    )

    @field_validator("allowed", mode="before")
    @classmethod
    def _allowedas_text(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        texts = []
        for item in value:
            if isinstance(item, bool):
                raise ValueError(
                    f"{item!r} is a YAML boolean: quote category values such as 'Yes' and 'No'"
                )
            if isinstance(item, float) and item.is_integer():
                item = int(item)
            texts.append(str(item) if isinstance(item, int | float) else item)
        return texts

    @model_validator(mode="after")
    def _one_kind_of_condition(self) -> DomainRule:
        has_bounds = any(bound is not None for bound in (self.ge, self.gt, self.le, self.lt))
        if self.allowed is None and not has_bounds:
            raise ValueError(
                f"the rule on '{self.column}' has no condition: give ge/gt/le/lt or allowed"
            )
        if self.allowed is not None and has_bounds:
            raise ValueError(
                f"the rule on '{self.column}' mixes bounds and allowed values: write two rules "
                "(bounds are for numeric columns, allowed values for text columns)"
            )
        if self.allowed == []:
            raise ValueError(
                f"the rule on '{self.column}' allows no value at all: list the allowed values"
            )
        return self

    @property
    def label(self) -> str:
        """The rule's name in the cleaning report, e.g. ``tenure >= 0``."""
        if self.name:
            return self.name
        if self.allowed is not None:
            return f"{self.column} in allowed values"
        bounds = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        return " and ".join(
            f"{self.column} {op} {_format_number(v)}" for op, v in bounds if v is not None
        )


class TextCleaning(Parameters):
    """Normalisation of the text columns (``params:columns.text``)."""

    lowercase: bool = True
    strip_html: bool = Field(
        default=True, description="Replace tags such as <br /> by a space, unescape &amp;"
    )
    collapse_whitespace: bool = True


class EdaSettings(Parameters):
    """Size of the EDA pictures."""

    histogram_bins: int = Field(default=30, ge=2, le=200)
    max_categories: int = Field(
        default=20, ge=1, description="Levels shown per column; the rest are '(other)'"
    )


@register("data_processing")
class DataProcessingParameters(Parameters):
    """Cleaning rules and EDA settings (``params:data_processing``)."""

    invalid_numbers: Literal["set_missing", "drop_row", "error"] = Field(
        default="set_missing",
        description="What to do with a numeric column's value that is not a number",
    )
    strip_categories: bool = Field(default=True, description="Strip spaces around category values")
    text: TextCleaning = TextCleaning()
    rules: list[DomainRule] = []
    eda: EdaSettings = EdaSettings()

    @model_validator(mode="after")
    def _unique_rule_labels(self) -> DataProcessingParameters:
        labels = [rule.label for rule in self.rules]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise ValueError(
                f"several rules are reported as {repeated}: give them distinct `name`s"
            )
        return self
