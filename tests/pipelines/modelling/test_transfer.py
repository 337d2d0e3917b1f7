"""Transfer learning: warm start and word vectors matched by name, shape and token; freezing; fine-tuning; errors."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kedro.io.core import Version

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.datasets import KerasModelDataset, WordVectors, WordVectorsDataset
from deep_learning_workflow.datasets.word_vectors import parse_word_vectors
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models import fitting, transfer, weight_matching
from deep_learning_workflow.models.builder import build_model_parts
from deep_learning_workflow.models.fitting import train_model
from deep_learning_workflow.models.preprocessing import fit_preprocessing
from deep_learning_workflow.models.schema import ModellingParams
from deep_learning_workflow.models.stopping import TieBreakingEarlyStopping
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.modelling.nodes import check_transfer_sources

from .conftest import modelling_params

GOOD = ["great", "tasty", "love", "fresh"]
BAD = ["bad", "stale", "awful", "bland"]
FILLER = ["the", "coffee", "box", "tea", "bag"]
ROLES = {
    "key": "review_id",
    "target": "score",
    "positive_class": "great",
    "numeric": ["price"],
    "categorical": ["brand"],
    "text": ["review"],
}
TEXT = {"max_tokens": 100, "output_sequence_length": 8, "embedding_dim": 4}


def reviews(
    rows: int, seed: int, words: list[str], brands: tuple[str, ...] = ("a", "b")
) -> pd.DataFrame:
    """Short reviews drawn from ``words``; the score follows the share of good words."""
    rng = np.random.default_rng(seed)
    texts, scores = [], []
    for _ in range(rows):
        picked = rng.choice(words, size=5)
        texts.append(" ".join(w.capitalize() if rng.random() < 0.3 else w for w in picked) + "!")
        good = sum(w in GOOD for w in picked) - sum(w in BAD for w in picked)
        scores.append("great" if good > 0 or (good == 0 and rng.random() < 0.5) else "other")
    return pd.DataFrame(
        {
            "review_id": [f"R{seed}{i:04d}" for i in range(rows)],
            "score": pd.Series(scores, dtype="str"),
            "price": rng.uniform(1, 20, size=rows),
            "brand": pd.Series(rng.choice(brands, size=rows), dtype="str"),
            "review": pd.Series(texts, dtype="str"),
        }
    )


def params(**transfer_settings: Any) -> dict[str, Any]:
    return modelling_params(text=TEXT, transfer=transfer_settings)


def build(frame: pd.DataFrame, settings: dict[str, Any], seed: int, roles: dict | None = None):
    """A freshly built (untrained) model on ``frame``'s vocabularies."""
    from deep_learning_workflow.models.fitting import set_seed

    typed = ColumnRoles(**(roles or ROLES))
    modelling = parse(ModellingParams, settings, "modelling")
    set_seed(seed)
    return build_model_parts(fit_preprocessing(frame, typed, modelling), typed, modelling, 2)


def weights(model, name: str) -> list[np.ndarray]:
    return [np.asarray(w).copy() for w in model.get_layer(name).get_weights()]


def vocabulary(model, layer: str) -> list[str]:
    return [str(t) for t in model.get_layer(layer).get_vocabulary()]


@pytest.fixture(scope="module")
def source_model(tmp_path_factory):
    """A model of this project saved and loaded back through the catalog's dataset (safe_mode)."""
    parts = build(reviews(200, 1, GOOD + BAD + FILLER[:3]), params(), seed=1)
    path = tmp_path_factory.mktemp("source") / "model.keras"
    KerasModelDataset(filepath=str(path)).save(parts.model)
    return KerasModelDataset(filepath=str(path), optional=True).load()


def test_warm_start_copies_matching_layers_by_token_and_column_and_leaves_the_others_fresh(
    source_model,
):
    # Another vocabulary (new words, a new brand) and a third hidden layer the source does not have.
    frame = reviews(200, 2, GOOD[:2] + BAD + FILLER, brands=("a", "b", "c"))
    settings = {**params(warm_start={"enabled": True}), "hidden_layers": 3}
    parts = build(frame, settings, seed=2)
    fresh = {
        layer.name: weights(parts.model, layer.name) for layer in parts.head.layers if layer.weights
    }

    report = transfer.warm_start(
        parts,
        ColumnRoles(**ROLES),
        parse(ModellingParams, settings, "modelling"),
        transfer.TransferSources(model=source_model),
    )

    source_vocabulary = vocabulary(source_model, "vectorize_review")
    target_vocabulary = vocabulary(parts.model, "vectorize_review")
    source_embedding = weights(source_model, "embed_review")[0]
    embedding = weights(parts.model, "embed_review")[0]
    for row, token in enumerate(target_vocabulary):
        expected = (
            source_embedding[source_vocabulary.index(token)]
            if token in source_vocabulary
            else fresh["embed_review"][0][row]
        )
        np.testing.assert_array_equal(embedding[row], expected, err_msg=token)
    assert {"coffee", "tea"} & set(target_vocabulary) - set(source_vocabulary)

    # The first hidden layer's input rows follow the columns: the new brand's row stays fresh.
    source_names = weight_matching.input_names(source_model, "hidden_1")
    target_names = weight_matching.input_names(parts.model, "hidden_1")
    assert ("category", "brand", "c") in target_names and (
        "category",
        "brand",
        "c",
    ) not in source_names
    kernel, source_kernel = (
        weights(parts.model, "hidden_1")[0],
        weights(source_model, "hidden_1")[0],
    )
    for row, name in enumerate(target_names):
        expected = (
            source_kernel[source_names.index(name)]
            if name in source_names
            else fresh["hidden_1"][0][row]
        )
        np.testing.assert_array_equal(kernel[row], expected, err_msg=str(name))

    for name in ("hidden_2", "probabilities"):
        for got, want in zip(weights(parts.model, name), weights(source_model, name), strict=True):
            np.testing.assert_array_equal(got, want)
    for got, want in zip(weights(parts.model, "hidden_3"), fresh["hidden_3"], strict=True):
        np.testing.assert_array_equal(got, want)
    assert set(report["copied"]) == {"embed_review", "hidden_1", "hidden_2", "probabilities"}
    assert report["kept_fresh"] == {"hidden_3": "not in the warm-start model"}


def test_word_vectors_fill_the_embedding_rows_of_the_tokens_they_share():
    frame = reviews(150, 3, GOOD + BAD + FILLER)
    settings = params(embeddings={"enabled": True})
    parts = build(frame, settings, seed=3)
    before = weights(parts.model, "embed_review")[0]
    # Capitalised and punctuated spellings match the model's standardised tokens; the first spelling wins.
    lines = ["3 4", "Great, 1 1 1 1", "great 9 9 9 9", "STALE 2 2 2 2", "unseen 3 3 3 3"]
    words = parse_word_vectors(lines)
    report = transfer.warm_start(
        parts,
        ColumnRoles(**ROLES),
        parse(ModellingParams, settings, "modelling"),
        transfer.TransferSources(word_vectors=words),
    )
    after = weights(parts.model, "embed_review")[0]
    tokens = vocabulary(parts.model, "vectorize_review")
    np.testing.assert_array_equal(after[tokens.index("great")], np.ones(4))
    np.testing.assert_array_equal(after[tokens.index("stale")], np.full(4, 2.0))
    others = [row for row, token in enumerate(tokens) if token not in ("great", "stale")]
    np.testing.assert_array_equal(after[others], before[others])
    assert report["copied"] == {
        "embed_review": f"2 of {len(tokens) - 2} tokens from pretrained_word_vectors"
    }


@pytest.mark.parametrize(
    ("lines", "tokens", "first"),
    [
        (["the 0.1 0.2 0.3", "", "coffee -1 2e-1 3"], ["the", "coffee"], [0.1, 0.2, 0.3]),
        (
            ["2 3", "the 0.1 0.2 0.3", "coffee -1 2e-1 3", "the 5 5 5"],
            ["the", "coffee"],
            [0.1, 0.2, 0.3],
        ),
        (["new york 1 2 3"], ["new york"], [1.0, 2.0, 3.0]),
    ],
    ids=["glove", "word2vec-header", "spaced-word"],
)
def test_glove_and_word2vec_text_files_are_parsed(lines, tokens, first):
    words = parse_word_vectors(lines)
    assert words.tokens == tokens and words.dimension == 3
    assert words.vectors.dtype == np.float32
    np.testing.assert_allclose(words.vectors[0], first)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["2 4", "the 1 2 3"], "header .* says the vectors have 4 values, but line 2 has 3"),
        (["the 1 2 3", "coffee 1 2"], "Line 2 .* has 2 values; the vectors above have 3"),
        (["the 1 x 3"], "Line 1 .*word 'the'.* not a number"),
        (["1 3"], "holds no word vector"),
    ],
)
def test_malformed_word_vector_files_are_refused_naming_the_line(lines, message):
    with pytest.raises(ValueError, match=message):
        parse_word_vectors(lines)


def test_word_vector_dataset_round_trip_max_words_and_optional_files(tmp_path):
    path = tmp_path / "vectors.txt"
    words = WordVectors(["the", "coffee", "tea"], np.arange(6, dtype="float32").reshape(3, 2))
    WordVectorsDataset(filepath=str(path)).save(words)
    loaded = WordVectorsDataset(filepath=str(path)).load()
    assert loaded.tokens == words.tokens
    np.testing.assert_array_equal(loaded.vectors, words.vectors)
    assert WordVectorsDataset(filepath=str(path), load_args={"max_words": 2}).load().tokens == [
        "the",
        "coffee",
    ]

    assert WordVectorsDataset(filepath=str(tmp_path / "absent.txt"), optional=True).load() is None
    assert KerasModelDataset(filepath=str(tmp_path / "absent.keras"), optional=True).load() is None
    versioned = KerasModelDataset(
        filepath=str(tmp_path / "none.keras"), optional=True, version=Version(None, None)
    )
    assert versioned.load() is None


def test_with_transfer_off_the_check_node_needs_no_source(tmp_path):
    frame = reviews(50, 4, GOOD + BAD)
    sources, report = check_transfer_sources(frame, ROLES, None, None, params())
    # A Kedro node output cannot be None: "no source" is an empty TransferSources.
    assert sources == transfer.TransferSources() and report == {"enabled": False}


class Recorder:
    """Keras callback factory: the learning rate at the start and the watched layers' weights at each fit's end."""

    def __init__(self, layers: list[str]) -> None:
        import keras

        record = self

        class Callback(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                record.rates.append(float(np.asarray(self.model.optimizer.learning_rate)))
                record.starts.append({n: weights(self.model, n) for n in layers})

            def on_train_end(self, logs=None):
                record.ends.append({n: weights(self.model, n) for n in layers})

        self.rates: list[float] = []
        self.starts: list[dict] = []
        self.ends: list[dict] = []
        self.callback = Callback()


def test_frozen_layers_stay_fixed_while_the_head_trains_then_fine_tuning_moves_them_at_the_lower_rate():
    train, val = reviews(160, 5, GOOD + BAD + FILLER), reviews(80, 6, GOOD + BAD + FILLER)
    tokens = GOOD + BAD + FILLER
    words = WordVectors(
        tokens, np.random.default_rng(0).normal(size=(len(tokens), 4)).astype("float32")
    )
    settings = {
        **params(
            embeddings={"enabled": True},
            freeze=["embed_review"],
            fine_tune={"enabled": True, "epochs": 2, "learning_rate_factor": 0.1},
        ),
        "epochs": 2,
        "early_stopping": {"enabled": False},
    }
    recorder = Recorder(["embed_review", "hidden_1"])
    result = train_model(
        train,
        val,
        ROLES,
        settings,
        seed=1,
        callbacks=[recorder.callback],
        transfer_sources=transfer.TransferSources(word_vectors=words),
    )

    assert recorder.rates == pytest.approx([0.01, 0.001])
    head_phase, fine_tuning = recorder.ends
    vocabulary_rows = vocabulary(result.model, "vectorize_review")
    start = recorder.starts[0]["embed_review"][0]
    np.testing.assert_array_equal(
        start[vocabulary_rows.index("tasty")], words.vectors[tokens.index("tasty")]
    )
    np.testing.assert_array_equal(head_phase["embed_review"][0], start)
    assert not np.array_equal(head_phase["hidden_1"][0], recorder.starts[0]["hidden_1"][0])
    assert not np.array_equal(fine_tuning["embed_review"][0], head_phase["embed_review"][0])
    assert len(result.history["loss"]) == len(result.history["val_loss"]) == 4
    assert result.model.get_layer("embed_review").trainable


def test_a_model_trained_with_frozen_warm_started_layers_saves_and_loads_in_safe_mode(
    source_model, tmp_path
):
    train, val = reviews(160, 7, GOOD + BAD + FILLER), reviews(80, 8, GOOD + BAD + FILLER)
    settings = {
        **params(warm_start={"enabled": True}, freeze=["embed_review", "hidden_1"]),
        "epochs": 1,
    }
    result = train_model(
        train,
        val,
        ROLES,
        settings,
        seed=2,
        transfer_sources=transfer.TransferSources(model=source_model),
    )
    source_vocabulary = vocabulary(source_model, "vectorize_review")
    embedding = weights(result.model, "embed_review")[0]
    for row, token in enumerate(vocabulary(result.model, "vectorize_review")):
        if token in source_vocabulary:
            np.testing.assert_array_equal(
                embedding[row],
                weights(source_model, "embed_review")[0][source_vocabulary.index(token)],
            )

    dataset = KerasModelDataset(filepath=str(tmp_path / "model.keras"))
    dataset.save(result.model)
    loaded = dataset.load()
    roles = ColumnRoles(**ROLES)
    np.testing.assert_allclose(
        predict_probabilities(loaded, val, roles),
        predict_probabilities(result.model, val, roles),
        atol=1e-6,
    )


class FakeHead:
    """Just enough of a Keras model for fit_in_phases: fits return scripted histories and weights."""

    def __init__(self, phases: list[tuple[list[float], float]], early: Any) -> None:
        self.phases, self.early, self.weight, self.compiled = list(phases), early, 0.0, []
        self.distribute_strategy = SimpleNamespace(scope=lambda: _Null())

    def fit(self, *args, epochs, initial_epoch=0, **kwargs):
        values, self.weight = self.phases.pop(0)
        # As EarlyStopping with restore_best_weights: each fit judged on its own.
        self.early.best = max(values)
        self.early.best_epoch = initial_epoch + int(np.argmax(values))
        return SimpleNamespace(
            history={"loss": [1.0] * len(values), "val_pr_auc": values},
            epoch=list(range(initial_epoch, initial_epoch + len(values))),
        )

    def get_weights(self):
        return [self.weight]

    def set_weights(self, values):
        self.weight = values[0]

    def get_layer(self, name):
        return SimpleNamespace(trainable=False)

    def get_compile_config(self):
        return {"optimizer": {"config": {"learning_rate": 0.01}}}

    def compile_from_config(self, config):
        self.compiled.append(config["optimizer"]["config"]["learning_rate"])


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize(
    ("second_phase", "kept_weight", "kept_epoch"),
    [([0.70, 0.72], 2.0, 3), ([0.60, 0.65], 1.0, 1)],
    ids=["fine-tuning-better", "head-phase-better"],
)
def test_the_better_phase_is_kept(second_phase, kept_weight, kept_epoch):
    early = TieBreakingEarlyStopping(monitor="val_pr_auc", mode="max")
    head = FakeHead([([0.60, 0.68], 1.0), (second_phase, 2.0)], early)
    settings = parse(
        ModellingParams,
        params(
            embeddings={"enabled": True},
            freeze=["embed_review"],
            fine_tune={"enabled": True, "epochs": 2},
        ),
        "modelling",
    )
    history = fitting.fit_in_phases(head, settings, early, epochs=2)
    assert head.compiled == pytest.approx([settings.learning_rate * 0.1])
    assert history.history["val_pr_auc"] == [0.60, 0.68, *second_phase]
    assert head.weight == kept_weight and early.best_epoch == kept_epoch


def _source(columns: dict[str, Any]):
    roles = {**ROLES, **columns}
    frame = reviews(60, 9, GOOD + BAD)
    frame["tenure"] = np.arange(60, dtype="float64")
    return build(frame, params(), seed=9, roles=roles).model


@pytest.mark.parametrize(
    ("source_columns", "message"),
    [
        (
            {"numeric": ["price", "tenure"]},
            r"params:modelling\.transfer\.warm_start: the warm-start model \('warm_start_model'\) takes the "
            r"column 'tenure' \(numeric, float32\), which params:columns does not list",
        ),
        (
            {"categorical": [], "text": ["review", "brand"]},
            r"takes 'brand' as a text column \(string input\), but params:columns makes it categorical",
        ),
    ],
    ids=["missing-column", "other-role"],
)
def test_a_warm_start_model_that_does_not_fit_the_columns_is_refused(source_columns, message):
    settings = parse(ModellingParams, params(warm_start={"enabled": True}), "modelling")
    with pytest.raises(ValueError, match=message):
        transfer.check_sources(
            transfer.TransferSources(model=_source(source_columns)), ColumnRoles(**ROLES), settings
        )


@pytest.mark.parametrize(
    ("settings", "sources", "message"),
    [
        (
            {"embeddings": {"enabled": True}},
            transfer.TransferSources(
                word_vectors=WordVectors(["great"], np.ones((1, 3), "float32"))
            ),
            r"params:modelling\.text\.embedding_dim is 4, but the word vectors of 'pretrained_word_vectors' "
            r"have 3 values",
        ),
        (
            {"embeddings": {"enabled": True}, "freeze": ["embed_title", "hidden_1"]},
            transfer.TransferSources(
                word_vectors=WordVectors(["great"], np.ones((1, 4), "float32"))
            ),
            r"params:modelling\.transfer\.freeze names \['embed_title'\], which are not layers with weights",
        ),
        (
            {"warm_start": {"enabled": True}},
            transfer.TransferSources(),
            r"params:modelling\.transfer\.warm_start\.enabled is true, but the catalog entry 'warm_start_model' "
            r"gave no model",
        ),
        (
            {"embeddings": {"enabled": True, "columns": ["brand"]}},
            transfer.TransferSources(
                word_vectors=WordVectors(["great"], np.ones((1, 4), "float32"))
            ),
            r"params:modelling\.transfer\.embeddings\.columns names \['brand'\], which are not text columns",
        ),
    ],
    ids=["dimension", "unknown-freeze-layer", "no-source", "not-a-text-column"],
)
def test_bad_transfer_inputs_fail_before_training_naming_the_key(settings, sources, message):
    frame = reviews(60, 10, GOOD + BAD)
    with pytest.raises(ValueError, match=message):
        check_transfer_sources(
            frame, ROLES, sources.model, sources.word_vectors, params(**settings)
        )


def test_warm_start_layers_that_do_not_match_are_named(source_model):
    frame = reviews(60, 11, GOOD + BAD)
    settings = {
        **params(warm_start={"enabled": True, "layers": ["hidden_1", "hidden_2"]}),
        "units": 64,
    }
    with pytest.raises(
        ValueError,
        match=r"warm_start\.layers: 'hidden_1' does not match: shapes \[\[8, 64\], \[64\]\] here, "
        r"\[\[8, 32\], \[32\]\] in the warm-start model",
    ):
        check_transfer_sources(frame, ROLES, source_model, None, settings)


@pytest.mark.parametrize(
    ("transfer_settings", "message"),
    [
        ({"freeze": ["embed_review"]}, "freeze keeps layers at their random start"),
        ({"embeddings": {"enabled": True}, "fine_tune": {"enabled": True}}, "freeze is empty"),
        ({"fine_tune": {"learning_rate_factor": 2}}, r"transfer\.fine_tune\.learning_rate_factor"),
    ],
)
def test_inconsistent_transfer_parameters_are_refused_naming_the_key(transfer_settings, message):
    with pytest.raises(ValueError, match=message) as error:
        parse(ModellingParams, copy.deepcopy(params(**transfer_settings)), "modelling")
    assert "modelling.transfer" in str(error.value)


def test_a_seed_ensemble_warm_starts_each_seed_model_from_one_of_its_members(tmp_path):
    from deep_learning_workflow.models.ensemble import build_ensemble

    frame = reviews(200, 1, GOOD + BAD + FILLER[:3])
    sources = [build(frame, params(), seed=seed) for seed in (1, 2)]
    path = tmp_path / "ensemble.keras"
    KerasModelDataset(filepath=str(path)).save(
        build_ensemble(sources[0].preprocessor, [parts.head for parts in sources])
    )
    ensemble = KerasModelDataset(filepath=str(path), optional=True).load()
    settings = params(warm_start={"enabled": True})

    checked, report = check_transfer_sources(frame, ROLES, ensemble, None, settings)
    assert report["warm_start_members"] == 2
    assert set(report["copied"]) == {"embed_review", "hidden_1", "hidden_2", "probabilities"}

    typed = parse(ModellingParams, settings, "modelling")
    # Seed model i starts from member i; a third seed model cycles back to the first member.
    for index, member in ((0, 0), (1, 1), (2, 0)):
        parts = build(frame, settings, seed=10 + index)
        transfer.warm_start(
            parts, ColumnRoles(**ROLES), typed, transfer.member_sources(checked, index)
        )
        for name in ("embed_review", "hidden_1", "hidden_2", "probabilities"):
            for got, want in zip(
                weights(parts.model, name), weights(sources[member].model, name), strict=True
            ):
                np.testing.assert_array_equal(got, want, err_msg=f"{index}: {name}")
