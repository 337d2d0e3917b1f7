"""The NumPy fast path on a seed ensemble: one preprocessing, several heads joined by Average; parity with Keras."""

from __future__ import annotations

import numpy as np
import pytest

from deep_learning_workflow.bundle import write_bundle
from deep_learning_workflow.columns import resolve_roles, target_classes
from deep_learning_workflow.inference.folded import FirstLayer
from deep_learning_workflow.inference.ops import Average, Dense, MemberMean, Split
from deep_learning_workflow.service.loader import load_version

from .bundles import TELCO_ROLES, bundle_metadata
from .test_fastpath import check_parity, with_unseen


def ensemble_of_heads(frame, seeds: tuple[int, ...], **modelling):
    """An ensemble of briefly trained heads sharing one preprocessing, built as the modelling pipeline builds it."""
    import keras

    from deep_learning_workflow.models.builder import build_model_parts
    from deep_learning_workflow.models.ensemble import build_ensemble
    from deep_learning_workflow.models.fitting import encode_labels
    from deep_learning_workflow.models.preprocessing import fit_preprocessing
    from deep_learning_workflow.models.schema import ModellingParams
    from deep_learning_workflow.models.scoring import prepare

    params = ModellingParams(**modelling)
    roles = resolve_roles(frame, TELCO_ROLES, "train")
    classes = target_classes(frame[roles.target])
    state = fit_preprocessing(frame, roles, params)
    labels = encode_labels(frame[roles.target], classes, "train")
    heads, preprocessor = [], None
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        parts = build_model_parts(state, roles, params, len(classes))
        parts.head.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy")
        parts.head.fit(prepare(parts.preprocessor, frame, roles), labels, epochs=1, verbose=0)
        preprocessor = preprocessor or parts.preprocessor
        heads.append(parts.head)
    return build_ensemble(preprocessor, heads)


@pytest.mark.parametrize(
    ("modelling", "shared_first_layer"),
    [
        ({}, True),
        # Each head embeds the categories itself, so each has its own first layer (not folded together).
        (
            {"categorical": {"encoding": "embedding"}, "batch_norm": True, "activation": "gelu"},
            False,
        ),
    ],
    ids=["one_hot", "embedding_batch_norm"],
)
def test_an_ensemble_compiles_to_the_numpy_path_and_matches_keras(
    tmp_path, telco_train, telco_rows, modelling, shared_first_layer
):
    model = ensemble_of_heads(telco_train, (1, 2, 3), **modelling)
    path = tmp_path / "ensemble"
    write_bundle(path, model, bundle_metadata(model, telco_train, TELCO_ROLES))
    frame = with_unseen(telco_rows, {"payment_method": "Cryptocurrency", "contract": "Ten years"})
    expected = check_parity(path, frame, TELCO_ROLES)
    assert expected.shape == (len(frame), 2)
    version = load_version(path, engine="numpy")
    ops = [step.op for step in version.forward.steps]
    assert version.engine == "numpy"
    if shared_first_layer:
        # The heads run as one network: the members' layers stacked, their average one mean over the members' axis.
        assert isinstance(ops[-1], MemberMean)
        assert not any(isinstance(op, Average | Split) for op in ops)
        # The three first hidden layers run as one folded layer, each head taking its columns; each later layer
        # of the heads is one Dense with a block per head.
        assert isinstance(ops[0], FirstLayer) and sum(isinstance(op, FirstLayer) for op in ops) == 1
        dense = [op for op in ops if isinstance(op, Dense)]
        assert dense and all(len(op.product.blocks) == 3 for op in dense)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-5)
