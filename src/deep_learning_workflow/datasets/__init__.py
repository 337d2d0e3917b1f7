"""The project's own Kedro datasets."""

from .keras_model_dataset import KerasModelDataset, load_keras_model
from .word_vectors import WordVectors, WordVectorsDataset

__all__ = ["KerasModelDataset", "WordVectors", "WordVectorsDataset", "load_keras_model"]
