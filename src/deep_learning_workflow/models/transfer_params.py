"""Transfer learning's parameters (``params:modelling.transfer``): warm start, word vectors, freezing, fine-tuning."""

from __future__ import annotations

from pydantic import Field, PositiveInt, model_validator

from deep_learning_workflow.parameters import Parameters


class WarmStartParams(Parameters):
    """Start layers from a saved model of this project (the catalog entry ``warm_start_model``)."""

    enabled: bool = False
    layers: list[str] | None = Field(
        None,
        min_length=1,
        description="Layers to copy (each must match); null: every layer with weights whose name and shape match",
    )


class PretrainedEmbeddingParams(Parameters):
    """Start the embeddings of text columns from word vectors (the catalog entry ``pretrained_word_vectors``)."""

    enabled: bool = False
    columns: list[str] | None = Field(
        None,
        min_length=1,
        description="Text columns whose embed_<column> starts from the file; null: all",
    )


class FineTuneParams(Parameters):
    """After the head has trained with the frozen layers fixed: unfreeze them and train everything a while longer."""

    enabled: bool = False
    epochs: PositiveInt = 10
    learning_rate_factor: float = Field(
        0.1, gt=0.0, le=1.0, description="Fine-tuning learning rate = learning_rate * this factor"
    )


class TransferParams(Parameters):
    """Transfer learning: warm start, pretrained embeddings, frozen layers, fine-tuning (all off by default)."""

    warm_start: WarmStartParams = WarmStartParams()
    embeddings: PretrainedEmbeddingParams = PretrainedEmbeddingParams()
    freeze: list[str] = Field(
        default_factory=list,
        description="Layers kept fixed while the rest trains for `epochs`, e.g. [embed_review]",
    )
    fine_tune: FineTuneParams = FineTuneParams()

    @property
    def enabled(self) -> bool:
        """Whether any layer starts from a source."""
        return self.warm_start.enabled or self.embeddings.enabled

    @model_validator(mode="after")
    def _consistent(self) -> TransferParams:
        if self.freeze and not self.enabled:
            raise ValueError(
                "freeze keeps layers at their random start unless warm_start or embeddings is enabled; "
                "enable one of them or empty freeze"
            )
        if self.fine_tune.enabled and not self.freeze:
            raise ValueError(
                "fine_tune unfreezes the frozen layers, but freeze is empty; list the layers to freeze first"
            )
        return self
