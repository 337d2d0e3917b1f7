"""Augmentation of the fitted rows: its parameters, the statistics of each change, and that validation rows and the
saved model never see it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.metrics import score
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models import augmentation, builder, fitting, preprocessing, scoring
from deep_learning_workflow.models.augmentation import (
    OOV_ID,
    EpochAugmenter,
    add_gaussian_noise,
    drop_tokens,
    encoded_width,
    mixup_within_batches,
    numeric_positions,
    swap_tokens,
)
from deep_learning_workflow.models.schema import AugmentationParams, ModellingParams
from deep_learning_workflow.parameters import parse

from .conftest import ROLES, make_table, modelling_params

WORDS = ["tasty", "bland", "fresh", "stale", "sweet", "salty", "crisp", "soggy", "rich", "cheap"]


def _tokens(rows: int, length: int, seed: int) -> np.ndarray:
    """Token ids >= 2 with a random number of trailing padding zeros per row."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(2, 500, size=(rows, length))
    lengths = rng.integers(1, length + 1, size=rows)
    tokens[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return tokens


def _with_text(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = rng.choice(WORDS, size=(len(frame), 6))
    texts = [" ".join(row[: rng.integers(2, 7)]) for row in words]
    return frame.assign(note=pd.Series(texts, dtype="str", index=frame.index))


def test_augmentation_is_off_by_default_and_its_ranges_are_checked():
    assert not ModellingParams().augmentation.enabled
    assert AugmentationParams(token_swap=0.1).enabled
    for bad, key in (
        ({"token_dropout": 1.0}, "token_dropout"),
        ({"token_swap": -0.1}, "token_swap"),
        ({"gaussian_noise_std": -0.5}, "gaussian_noise_std"),
        ({"mixup_alpha": float("inf")}, "mixup_alpha"),
        ({"token_dropout_mode": "mask"}, "token_dropout_mode"),
    ):
        with pytest.raises(ValueError, match=f"modelling.augmentation.{key}"):
            parse(ModellingParams, {"augmentation": bad}, "modelling")


def test_noise_goes_to_the_scaled_numeric_columns_only(train):
    roles = ColumnRoles(**ROLES)
    params = ModellingParams(numeric={"scaling_by_column": {"tenure": "none"}})
    state = preprocessing.fit_preprocessing(train, roles, params)
    # tenure (unscaled, no missing value), monthly_charges (scaled) + its missing indicator, then one-hot.
    assert numeric_positions(state, roles).tolist() == [1]
    parts = builder.build_model_parts(state, roles, params, n_classes=2)
    encoded = scoring.prepare(parts.preprocessor, train, roles)["encoded"]
    assert encoded.shape[1] == encoded_width(state, roles, params) == 1 + 2 + 4 + 3

    big = np.tile(encoded, (40, 1))
    noisy = add_gaussian_noise(big, np.array([1]), 0.3, np.random.default_rng(0))
    assert np.array_equal(np.delete(noisy, 1, axis=1), np.delete(big, 1, axis=1))
    difference = noisy[:, 1] - big[:, 1]
    assert abs(difference.mean()) < 0.01
    assert difference.std() == pytest.approx(0.3, rel=0.02)


@pytest.mark.parametrize("rate", [0.1, 0.4])
def test_token_dropout_replaces_the_given_share_of_real_tokens_by_oov(rate):
    tokens = _tokens(4000, 20, seed=1)
    dropped = drop_tokens(tokens, rate, "oov", np.random.default_rng(2))
    real = tokens != 0
    assert np.array_equal(dropped[~real], tokens[~real])
    changed = dropped != tokens
    assert (dropped[changed] == OOV_ID).all()
    assert changed[real].mean() == pytest.approx(rate, abs=0.01)


def test_token_dropout_can_remove_tokens_keeping_the_order():
    tokens = _tokens(3000, 16, seed=3)
    removed = drop_tokens(tokens, 0.25, "remove", np.random.default_rng(4))
    before, after = (tokens != 0).sum(), (removed != 0).sum()
    assert 1 - after / before == pytest.approx(0.25, abs=0.01)
    for original, kept in zip(tokens[:200], removed[:200], strict=True):
        length = int((kept != 0).sum())
        assert (kept[length:] == 0).all()  # padding only at the end
        remaining = iter(original[original != 0].tolist())
        assert all(token in remaining for token in kept[:length].tolist())  # a subsequence


def test_token_swap_swaps_adjacent_real_tokens_at_the_expected_rate():
    tokens = np.tile(np.arange(2, 42), (3000, 1))  # 40 distinct real tokens per row, no padding
    swapped = swap_tokens(tokens, 0.2, np.random.default_rng(5))
    assert np.array_equal(np.sort(swapped, axis=1), tokens)
    starts = (swapped[:, :-1] == tokens[:, 1:]) & (swapped[:, 1:] == tokens[:, :-1])
    # Where swaps start, tokens move by one place, nothing else moves.
    moved = swapped != tokens
    assert np.array_equal(moved[:, :-1] & moved[:, 1:] & starts, starts)
    # Left to right with a token just moved skipped: a swap starts at a position with rate p / (1 + p).
    assert starts[:, 5:].mean() == pytest.approx(0.2 / 1.2, abs=0.01)
    padded = _tokens(500, 12, seed=6)
    result = swap_tokens(padded, 0.5, np.random.default_rng(7))
    assert np.array_equal(result == 0, padded == 0)


def test_mixup_labels_are_convex_combinations_of_rows_of_the_same_batch():
    rng = np.random.default_rng(8)
    rows, batch = 300, 64
    inputs = {
        "encoded": rng.normal(size=(rows, 5)).astype("float32"),
        "note": _tokens(rows, 8, seed=9),
    }
    labels = np.eye(3, dtype="float32")[rng.integers(0, 3, size=rows)]
    weights = rng.uniform(0.5, 2.0, size=rows).astype("float32")
    mixed, mixed_labels, mixed_weights, partner, lam = mixup_within_batches(
        inputs, labels, weights, 0.4, batch, rng
    )
    assert np.array_equal(partner // batch, np.arange(rows) // batch)
    assert np.array_equal(np.sort(partner), np.arange(rows))
    assert ((lam >= 0.5) & (lam <= 1.0)).all() and (lam < 0.99).mean() > 0.3
    np.testing.assert_allclose(
        mixed_labels, lam[:, None] * labels + (1 - lam[:, None]) * labels[partner], atol=1e-6
    )
    np.testing.assert_allclose(mixed_labels.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        mixed["encoded"],
        lam[:, None] * inputs["encoded"] + (1 - lam[:, None]) * inputs["encoded"][partner],
        atol=1e-5,
    )
    np.testing.assert_allclose(
        mixed_weights, lam * weights + (1 - lam) * weights[partner], rtol=1e-6
    )
    assert (
        mixed["note"] is inputs["note"]
    )  # ids are not mixed: each row keeps its own (the dominant one's)


def test_each_epoch_draws_anew_and_a_seed_reproduces_it():
    rng = np.random.default_rng(10)
    inputs = {"encoded": rng.normal(size=(100, 3)).astype("float32"), "note": _tokens(100, 6, 11)}
    labels = np.eye(2, dtype="float32")[rng.integers(0, 2, size=100)]
    settings = AugmentationParams(gaussian_noise_std=0.1, token_dropout=0.2)
    augmenter = EpochAugmenter(inputs, labels, None, settings, np.array([0]), ["note"], 32, seed=3)
    first, first_labels, _, order = augmenter.epoch(0)
    again, _, _, _ = augmenter.epoch(0)
    second, _, _, _ = augmenter.epoch(1)
    assert np.array_equal(np.sort(order), np.arange(100))
    assert np.array_equal(first_labels, labels[order])
    assert np.array_equal(first["encoded"], again["encoded"])
    assert not np.array_equal(first["encoded"], second["encoded"])
    assert np.array_equal(first["encoded"][:, 1:], inputs["encoded"][order, 1:])
    assert np.array_equal(
        inputs["encoded"], augmenter.inputs["encoded"]
    )  # the originals stay as they were


def test_validation_rows_and_the_saved_model_are_never_augmented(monkeypatch, tmp_path):
    import keras

    from deep_learning_workflow.datasets import load_keras_model

    roles = {**ROLES, "text": ["note"]}
    train, val = _with_text(make_table(300, seed=1), 1), _with_text(make_table(120, seed=2), 2)
    settings = {
        "gaussian_noise_std": 0.2,
        "mixup_alpha": 0.3,
        "token_dropout": 0.3,
        "token_swap": 0.2,
    }
    params = modelling_params(
        epochs=2,
        early_stopping={"enabled": False},
        text={"output_sequence_length": 6, "embedding_dim": 4},
        augmentation=settings,
    )
    seen: dict[str, object] = {}
    epoch_metrics, fit_data = scoring.epoch_metrics, augmentation.fit_data

    def spy_metrics(fit, validation, *args, **kwargs):
        seen["metrics"] = (fit, validation)
        return epoch_metrics(fit, validation, *args, **kwargs)

    def spy_fit_data(*args, **kwargs):
        seen["fit"] = fit_data(*args, **kwargs)
        return seen["fit"]

    monkeypatch.setattr(fitting, "epoch_metrics", spy_metrics)
    monkeypatch.setattr(augmentation, "fit_data", spy_fit_data)
    result = fitting.train_model(train, val, roles, params, seed=5)

    parts = builder.build_model_parts(
        result.preprocessing, result.roles, ModellingParams(**params), n_classes=2
    )
    plain_train = scoring.prepare(parts.preprocessor, train, result.roles)
    plain_val = scoring.prepare(parts.preprocessor, val, result.roles)
    (fit_x, _), (val_x, val_y) = seen["metrics"]
    for name in plain_val:
        assert np.array_equal(val_x[name], plain_val[name])
        assert np.array_equal(fit_x[name], plain_train[name])
    assert np.array_equal(val_y, fitting.encode_labels(val["churn"], result.classes, "val"))

    # What the fit saw: one shuffled, augmented epoch of the training rows, per iteration of the dataset.
    batches = list(seen["fit"]["x"].as_numpy_iterator())
    labels = np.concatenate([y for _, y in batches])
    epoch = {name: np.concatenate([x[name] for x, _ in batches]) for name in plain_train}
    assert len(labels) == len(train) and not np.isin(labels, (0.0, 1.0)).all()
    assert not np.array_equal(
        np.sort(epoch["encoded"][:, 0]), np.sort(plain_train["encoded"][:, 0])
    )
    real = plain_train["note"] != 0
    assert (epoch["note"] == 1).sum() > (plain_train["note"] == 1).sum() + 0.15 * real.sum()

    # The validation metrics of the last epoch are those of the kept model on the plain validation rows.
    probabilities = predict_probabilities(result.model, val, result.roles)
    expected = score("pr_auc", val["churn"].to_numpy(), probabilities, result.classes, "Yes")
    assert result.history["val_pr_auc"][-1] == pytest.approx(expected, abs=1e-6)

    # The saved model is the preprocessing + the head and nothing else.
    path = tmp_path / "model.keras"
    result.model.save(path)
    loaded = load_keras_model(str(path))
    fresh = builder.build_model(result.preprocessing, result.roles, ModellingParams(**params), 2)
    layers = [(layer.name, type(layer).__name__) for layer in loaded.layers]
    assert layers == [(layer.name, type(layer).__name__) for layer in fresh.layers]
    assert not any(
        isinstance(layer, keras.layers.GaussianNoise | keras.layers.Dropout)
        and not layer.name.startswith("dropout_")
        for layer in loaded.layers
    )
    np.testing.assert_allclose(
        predict_probabilities(loaded, val, result.roles), probabilities, atol=1e-6
    )
