"""The modelling pipeline's parameters (``params:modelling``), validated before any node runs."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from deep_learning_workflow.metrics import MetricName
from deep_learning_workflow.parameters import Parameters, register

from .family_params import (
    ARCHITECTURES,
    FAMILY_SECTIONS,
    PeriodicEmbeddingParams,
    TabMParams,
    family_of,
    key_used,
    section_used,
    without_unused_sections,
)
from .transfer_params import (
    FineTuneParams,
    PretrainedEmbeddingParams,
    TransferParams,
    WarmStartParams,
)

__all__ = [
    "ARCHITECTURES",
    "FAMILY_SECTIONS",
    "FineTuneParams",
    "ModellingParams",
    "PeriodicEmbeddingParams",
    "PretrainedEmbeddingParams",
    "StreamingParams",
    "TabMParams",
    "TransferParams",
    "WarmStartParams",
    "family_of",
    "key_used",
    "section_used",
    "without_unused_sections",
]

Scaling = Literal["standard", "minmax", "quantile", "none"]


class NumericPreprocessing(Parameters):
    """Numeric columns: impute, flag missing, clip, scale; every value learned on the training split."""

    imputation: Literal["median", "mean"] = "median"
    missing_indicator: Literal["auto", "always", "never"] = Field(
        "auto",
        description="auto: a missing_<col> input feature for the columns with missing values in train",
    )
    scaling: Scaling = "standard"
    scaling_by_column: dict[str, Scaling] = Field(
        default_factory=dict, description="Per-column override of `scaling`, e.g. {tenure: minmax}"
    )
    quantiles: int = Field(
        128,
        ge=2,
        le=1024,
        description="scaling quantile: training quantiles the map to normal scores is drawn through",
    )
    clip_quantiles: tuple[float, float] | None = Field(
        (0.001, 0.999),
        description="Clip at these train quantiles before scaling; null: no clipping",
    )

    @model_validator(mode="after")
    def _quantiles_in_order(self) -> NumericPreprocessing:
        if self.clip_quantiles is not None:
            low, high = self.clip_quantiles
            if not 0.0 <= low < high <= 1.0:
                raise ValueError(
                    f"clip_quantiles must satisfy 0 <= low < high <= 1, got {list(self.clip_quantiles)}"
                )
        return self


class CategoricalPreprocessing(Parameters):
    """Categorical columns: a vocabulary learned on train, one out-of-vocabulary bucket for everything else."""

    encoding: Literal["one_hot", "embedding"] = "one_hot"
    embedding_dim: PositiveInt = 8
    min_frequency: PositiveInt = Field(
        1, description="Categories rarer than this in train go to the OOV bucket"
    )
    max_categories: PositiveInt | None = None


class TextPreprocessing(Parameters):
    """Text columns: lower-case, strip punctuation, split on whitespace, then one of two encoders.

    ``embedding``: pad/truncate to ``output_sequence_length`` word ids, embed, average. ``ngrams``: one value per
    word or n-gram of the training vocabulary (``output_mode`` tf_idf), fed to the dense layers.
    """

    encoder: Literal["embedding", "ngrams"] = "embedding"
    max_tokens: int = Field(
        20_000, ge=3, description="Vocabulary size including padding and the OOV token"
    )
    output_sequence_length: PositiveInt = Field(64, description="embedding only")
    embedding_dim: PositiveInt = Field(16, description="embedding only")
    ngrams: int = Field(2, ge=1, le=3, description="ngrams only: words and n-grams up to this n")
    # multi_hot is left out: TextVectorization gives it as int64, which the unit-length scaling cannot take.
    output_mode: Literal["tf_idf"] = Field("tf_idf", description="ngrams only")


class EarlyStoppingParams(Parameters):
    """Stop when the held-out metric stops improving and restore the best epoch's weights."""

    enabled: bool = True
    monitor: MetricName | Literal["loss"] | None = Field(
        None, description="Validation metric to watch; null: params:problem.primary_metric"
    )
    patience: NonNegativeInt | Literal["auto"] = Field(
        "auto",
        description="Epochs without improvement before stopping; auto: min_patience, longer when validation "
        "holds few rows of its rarest class (noisier scores), up to max_patience",
    )
    min_patience: NonNegativeInt = Field(
        3, description="auto: the patience of a large validation split"
    )
    max_patience: NonNegativeInt = Field(10, description="auto: the longest patience")
    reference_rows: PositiveInt = Field(
        250,
        description="auto: rows of the rarest validation class from which min_patience applies; with n rows "
        "the patience is min_patience * sqrt(reference_rows / n), rounded up (the noise of a score on n rows "
        "shrinks as 1 / sqrt(n))",
    )
    min_delta: NonNegativeFloat = 0.0
    loss_tolerance: float | None = Field(
        0.05,
        ge=0.0,
        allow_inf_nan=False,
        description="The epoch restored is the best on the watched metric among the epochs whose loss on the same "
        "rows is within this share of the run's lowest (a ranking score on few positive rows can favour an epoch "
        "the loss shows is still far from trained); null: the best epoch on the metric alone",
    )
    holdout: float = Field(
        0.15,
        ge=0.0,
        lt=1.0,
        description="Share of the fitted rows (stratified, seeded) set aside to choose the epoch, so validation "
        "is never seen while fitting; 0: watch the validation split (its scores are then optimistic)",
    )

    @model_validator(mode="after")
    def _patience_range(self) -> EarlyStoppingParams:
        if self.min_patience > self.max_patience:
            raise ValueError(
                f"min_patience ({self.min_patience}) is above max_patience ({self.max_patience}); swap them"
            )
        return self


class SanityCheckParams(Parameters):
    """Overfit one small batch: a model that cannot memorise 32 rows has a bug, not a tuning problem."""

    enabled: bool = True
    rows: int = Field(32, ge=4, le=1024)
    steps: PositiveInt = 300
    learning_rate: PositiveFloat = 0.01
    max_loss: PositiveFloat = Field(
        0.05, description="Training loss the batch must reach, else the run fails"
    )


class DiagnosisParams(Parameters):
    """Thresholds that turn the learning curves into flags."""

    overfitting_gap: NonNegativeFloat = Field(
        0.03,
        description="Growth of (val loss - train loss) from the best epoch to the last that flags overfitting",
    )
    unstable_rises: float = Field(
        0.34,
        gt=0,
        le=1,
        description="Share of epochs whose train loss rises that flags unstable learning",
    )
    unstable_spike: PositiveFloat = Field(
        1.5,
        description="A train loss above this multiple of the lowest one so far flags unstable learning",
    )
    underfitting_loss_ratio: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Train loss above this share of the class-prior loss flags underfitting",
    )


class LogisticRegressionParams(Parameters):
    C: PositiveFloat = 1.0
    max_iter: PositiveInt = 2000


class GradientBoostingParams(Parameters):
    learning_rate: PositiveFloat = 0.05
    max_iter: PositiveInt = 200
    max_leaf_nodes: int = Field(15, ge=2)
    l2_regularization: NonNegativeFloat = 1.0
    early_stopping: bool = True


class BaselineParams(Parameters):
    """scikit-learn baselines fitted on the same rows as the model, preprocessing fitted on train only."""

    logistic_regression: LogisticRegressionParams = LogisticRegressionParams()
    gradient_boosting: GradientBoostingParams = GradientBoostingParams()
    text_max_features: PositiveInt = 5000


class AugmentationParams(Parameters):
    """Random changes to the fitted rows, new every epoch; validation, test and the saved model never see them."""

    gaussian_noise_std: float = Field(
        0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="Std of the noise added to the scaled numeric values (in scaled units); 0: off",
    )
    mixup_alpha: float = Field(
        0.0,
        ge=0.0,
        allow_inf_nan=False,
        description="Mix pairs of rows of a batch with weight Beta(alpha, alpha); 0: off",
    )
    token_dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Share of the tokens of a text dropped; 0: off"
    )
    token_dropout_mode: Literal["oov", "remove"] = Field(
        "oov",
        description="oov: a dropped token becomes the out-of-vocabulary id; remove: it is deleted",
    )
    token_swap: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Probability that a token swaps places with the next one; 0: off. The averaged embeddings "
        "of the current model ignore word order, so it has no effect on it",
    )

    @property
    def enabled(self) -> bool:
        """Whether any augmentation is on."""
        return bool(
            self.gaussian_noise_std or self.mixup_alpha or self.token_dropout or self.token_swap
        )


class StreamingParams(Parameters):
    """Training from the split's Parquet file through ``tf.data`` when it is large (``params:modelling.streaming``)."""

    min_rows: PositiveInt = Field(
        2_000_000,
        description="A training split (train or train_balanced) of more rows than this is streamed from its "
        "Parquet file in chunks instead of loaded into pandas",
    )
    adapt_sample_rows: PositiveInt = Field(
        500_000,
        description="Streaming: the preprocessing is adapted on a seeded uniform sample of this many training "
        "rows, and early stopping watches at most this many holdout rows",
    )
    chunk_rows: PositiveInt = Field(
        100_000,
        description="Streaming: rows read, preprocessed and shuffled at a time (memory grows with it)",
    )


@register("modelling")
class ModellingParams(Parameters):
    """The model, its training and its checks (``params:modelling``)."""

    architecture: Literal["mlp", "plr_mlp", "tabm"] = Field(
        "mlp",
        description="mlp: dense layers | plr_mlp: periodic embeddings of the numeric columns, then the dense "
        "layers | tabm: k weight-sharing MLPs whose probabilities are averaged",
    )
    plr: PeriodicEmbeddingParams = PeriodicEmbeddingParams()
    tabm: TabMParams = TabMParams()
    hidden_layers: int = Field(2, ge=2, le=6)
    units: int = Field(64, ge=32, le=512, description="Units of the first hidden layer")
    decreasing_units: bool = Field(
        True, description="Halve the units at each further layer, never below 32"
    )
    activation: Literal["relu", "elu", "selu", "gelu", "swish", "tanh"] = "gelu"
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    l1: NonNegativeFloat = 0.0
    l2: NonNegativeFloat = 0.0
    batch_norm: bool = False
    optimizer: Literal["adam", "sgd", "adamw"] = "adam"
    learning_rate: PositiveFloat = 1e-3
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="sgd only")
    weight_decay: NonNegativeFloat = Field(0.004, description="adamw only")
    batch_size: PositiveInt = 64
    epochs: PositiveInt = 30
    steps_per_execution: PositiveInt = 8
    class_weight: Literal["none", "balanced"] = Field(
        "none",
        description="balanced: weight classes by inverse frequency (an alternative to resampling train)",
    )
    distribution: Literal["default", "mirrored", "multi_worker_mirrored"] = "default"
    seeds: int = Field(
        3, ge=1, description="Models trained, with seeds params:seed + 0 .. seeds - 1"
    )
    seed_selection: Literal["average", "best"] = Field(
        "average",
        description="average: the saved model averages the seeds' probabilities (one shared preprocessing); "
        "best: only the seed with the best validation primary metric is kept (smallest model; its validation "
        "metrics are then the maximum of `seeds` scores, so optimistic)",
    )
    early_stopping: EarlyStoppingParams = EarlyStoppingParams()
    streaming: StreamingParams = StreamingParams()
    numeric: NumericPreprocessing = NumericPreprocessing()
    categorical: CategoricalPreprocessing = CategoricalPreprocessing()
    text: TextPreprocessing = TextPreprocessing()
    sanity_check: SanityCheckParams = SanityCheckParams()
    diagnosis: DiagnosisParams = DiagnosisParams()
    baselines: BaselineParams = BaselineParams()
    augmentation: AugmentationParams = AugmentationParams()
    transfer: TransferParams = TransferParams()

    @model_validator(mode="after")
    def _family_keys(self) -> ModellingParams:
        for section, families in FAMILY_SECTIONS.items():
            # A saved model's metadata repeats every section at its defaults; only a changed one is a mistake.
            changed = getattr(self, section) != type(self).model_fields[section].default
            if section in self.model_fields_set and changed and not self.uses(section):
                needs = " or ".join(families)
                if section == "plr" and self.architecture == "tabm":
                    needs = "plr_mlp, or tabm with tabm.numeric_embedding: plr"
                raise ValueError(
                    f"'{section}' sets keys of the {needs} architecture, but architecture is "
                    f"'{self.architecture}' (choices: {list(ARCHITECTURES)}); remove the '{section}' block or "
                    "choose its architecture"
                )
        return self

    @model_validator(mode="after")
    def _multi_worker_limits(self) -> ModellingParams:
        if self.distribution == "multi_worker_mirrored" and (
            self.augmentation.enabled or self.transfer.freeze
        ):
            raise ValueError(
                "distribution multi_worker_mirrored trains without augmentation and frozen layers: set "
                "augmentation to 0 and transfer.freeze to [], or choose distribution: default"
            )
        return self

    def uses(self, section: str) -> bool:
        """Whether the chosen architecture uses a family section (``plr`` or ``tabm``)."""
        return section_used(section, self.architecture, self.tabm.numeric_embedding)

    @property
    def hidden_units(self) -> list[int]:
        """Units of each hidden layer."""
        if not self.decreasing_units:
            return [self.units] * self.hidden_layers
        return [max(32, self.units // 2**i) for i in range(self.hidden_layers)]
