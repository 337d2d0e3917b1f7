"""The project's own Kedro datasets."""

from .keras_model_dataset import KerasModelDataset, load_keras_model

__all__ = ["KerasModelDataset", "load_keras_model"]
