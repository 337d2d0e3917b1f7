"""Inference: the engine that scores raw records with a trained ``.keras`` model, shared by the service, tuning
and pruning.

- :func:`compile_engine` chooses the engine: the NumPy fast path, checked for parity with the Keras model on probe
  records, or a ``tf.function`` fallback with a logged reason;
- :mod:`.translate` and :mod:`.layers` turn the model's graph into NumPy ops (:mod:`.ops`, :mod:`.text`,
  :mod:`.families`), :mod:`.optimise` folds them for single records, :mod:`.forward` runs them;
- :func:`time_single_records` measures single-record latency on the rows of :func:`single_records`, through the
  engine of :func:`engine_for_rows`;
- :mod:`.drift` holds the training reference and the drift of new records against it.

Importing this package imports neither TensorFlow nor Keras; compiling a model does.
"""

from .activations import UnsupportedLayer
from .engine import (
    Engine,
    EngineName,
    TensorFlowForward,
    check_parity,
    column_schema,
    compile_engine,
    probe_columns,
)
from .latency import Latency, time_single_records
from .records import engine_for_rows, record_columns, single_records

__all__ = [
    "Engine",
    "EngineName",
    "Latency",
    "TensorFlowForward",
    "UnsupportedLayer",
    "check_parity",
    "column_schema",
    "compile_engine",
    "engine_for_rows",
    "probe_columns",
    "record_columns",
    "single_records",
    "time_single_records",
]
