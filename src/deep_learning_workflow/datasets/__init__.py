"""The project's own Kedro datasets."""

from .keras_model_dataset import KerasModelDataset, load_keras_model
from .parquet_split import ParquetSplit, ParquetSplitDataset
from .word_vectors import WordVectors, WordVectorsDataset

__all__ = [
    "KerasModelDataset",
    "ParquetSplit",
    "ParquetSplitDataset",
    "WordVectors",
    "WordVectorsDataset",
    "load_keras_model",
]
