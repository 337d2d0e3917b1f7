"""A batch answer built from the score arrays is byte for byte the JSON of one dict per record."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from deep_learning_workflow.service.answers import predictions_json
from deep_learning_workflow.service.scoring import Scores


def per_record(scores: Scores, classes: list[str]) -> bytes:
    return orjson.dumps(
        [
            {
                "probability": probability,
                "label": label,
                "probabilities": dict(zip(classes, row.tolist(), strict=True)),
            }
            for probability, label, row in zip(
                scores.probability, scores.labels, scores.probabilities, strict=True
            )
        ]
    )


@pytest.mark.parametrize("rows", [1, 2, 1000])
@pytest.mark.parametrize("classes", [["No", "Yes"], ["a", 'b "quoted"', "ç\u00e9", "d"]])
def test_batch_answer_is_the_json_of_a_dict_per_record(rows, classes):
    rng = np.random.default_rng(rows)
    logits = rng.normal(size=(rows, len(classes)))
    logits[0, 0] = -40.0  # tiny probabilities spelt with exponents
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probabilities = probabilities.astype(np.float32).astype(np.float64)
    best = probabilities.argmax(axis=1)
    scores = Scores(
        probabilities,
        probabilities[np.arange(rows), best].tolist(),
        [classes[i] for i in best.tolist()],
    )
    answer = predictions_json(scores, classes)
    assert answer == per_record(scores, classes)
    assert len(orjson.loads(answer)) == rows
