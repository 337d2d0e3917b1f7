"""Load a serving bundle into a :class:`~deep_learning_workflow.service.scoring.ModelVersion`.

This is the only service module that imports TensorFlow/Keras, and only inside its functions, at load time: the
bundle's manifest is verified, the ``.keras`` model loaded, and its forward pass chosen by
:func:`deep_learning_workflow.inference.compile_engine` on probe records built from the bundle's schema.
"""

from __future__ import annotations

import logging
from pathlib import Path

from deep_learning_workflow.bundle import BundleError, read_bundle
from deep_learning_workflow.inference import EngineName, compile_engine, probe_columns

from .scoring import ModelVersion
from .validation import RangePolicy, RecordValidator

logger = logging.getLogger(__name__)


def load_version(
    path: str | Path,
    range_policy: RangePolicy = "margin",
    range_margin: float = 0.5,
    engine: EngineName = "auto",
) -> ModelVersion:
    """Verify a serving bundle's manifest, load its model and compile the fast path.

    Args:
        path: the bundle folder.
        range_policy: numeric range policy of the validator.
        range_margin: its margin.
        engine: ``auto`` (NumPy fast path, ``tf.function`` when the model cannot be compiled), ``numpy`` (fail
            instead of falling back) or ``tf.function``.

    Raises:
        BundleError: when the bundle is missing, tampered with, or its model does not match its metadata.
        UnsupportedLayer: with ``engine="numpy"`` when the model cannot be compiled.
    """
    bundle = read_bundle(path, verify=True)
    validator = RecordValidator(
        bundle.features, bundle.schema, bundle.metadata.get("key"), range_policy, range_margin
    )
    model = bundle.model
    names = list(model.input) if isinstance(model.input, dict) else [t.name for t in model.inputs]
    if sorted(names) != sorted(bundle.features):
        raise BundleError(
            f"The model of '{path}' takes the inputs {sorted(names)} but bundle.json lists {sorted(bundle.features)}."
        )
    probe = probe_columns({name: bundle.schema[name] for name in bundle.features})
    chosen = compile_engine(model, probe, engine, label=f"Model {path}")
    logger.info(
        "Loaded model version %s from %s (engine: %s).", bundle.model_version, path, chosen.name
    )
    return ModelVersion(
        version=bundle.model_version,
        classes=bundle.classes,
        positive_class=bundle.positive_class,
        threshold=bundle.decision_threshold,
        validator=validator,
        forward=chosen.forward,
        engine=chosen.name,
        metadata=bundle.metadata,
        path=str(path),
    )
