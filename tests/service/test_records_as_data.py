"""Records as the data has them: the cleaning step turns 0/1 flag columns into text, so the model learned the
categories "0" and "1"; clients and files send the numbers 0 and 1. Both reach the same category, through the
service and through batch scoring's model inputs alike, and the docs' curl example is answered."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.bundle import read_bundle
from deep_learning_workflow.categories import category_texts
from deep_learning_workflow.model_inputs import predict_probabilities

from .bundles import TELCO_ROLES, build_bundle, raw_records

PROJECT = Path(__file__).resolve().parents[2]
SCORING_BATCH = PROJECT / "data" / "01_raw" / "scoring_batch.csv"
FLAGS = ["female", "senior_citizen", "partner", "dependents", "phone_service", "paperless_billing"]


@pytest.fixture(scope="module")
def text_flags_bundle(bundle_dir, telco_train) -> Path:
    """A model trained as the pipeline trains it: flag columns cleaned into text ("0", "1")."""
    train = telco_train.astype({flag: "str" for flag in FLAGS})
    return build_bundle(bundle_dir / "telco_text_flags", train, TELCO_ROLES, seed=4)


@pytest.fixture(scope="module")
def flags_server(text_flags_bundle):
    from deep_learning_workflow.service.settings import ServiceSettings

    from .conftest import ThreadServer

    with ThreadServer(ServiceSettings(bundle=str(text_flags_bundle), log_url=None)) as server:
        server.wait_ready()
        yield server


def test_the_bundle_learned_text_flags(text_flags_bundle):
    schema = read_bundle(text_flags_bundle).metadata["schema"]
    assert schema["female"]["dtype"] == "str" and schema["female"]["categories"] == ["0", "1"]


def test_every_row_of_the_scoring_batch_as_the_file_holds_it(flags_server, text_flags_bundle):
    import httpx

    frame = pd.read_csv(SCORING_BATCH)
    assert frame["female"].dtype.kind == "i"  # numbers in the file, text in training
    records = [
        {**record, "customer_id": key}
        for record, key in zip(
            raw_records(frame.assign(churn="No"), TELCO_ROLES), frame["customer_id"], strict=True
        )
    ]
    # What batch scoring computes: the Keras model on the same rows, through the shared category rule.
    bundle = read_bundle(text_flags_bundle)
    as_learned = frame.assign(
        **{
            flag: category_texts(frame[flag], set(bundle.metadata["schema"][flag]["categories"]))
            for flag in FLAGS
        }
    )
    expected = predict_probabilities(bundle.model, as_learned, bundle.roles)
    with httpx.Client(base_url=flags_server.url, timeout=30) as http:
        batch = http.post("/predict", json=records)
        assert batch.status_code == 200, batch.text
        served = np.array(
            [[p["probabilities"][c] for c in bundle.classes] for p in batch.json()["predictions"]]
        )
        singles = [http.post("/predict", json=record) for record in records]
        assert [s.status_code for s in singles] == [200] * len(records)
        metrics = http.get("/metrics").text
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)
    single = np.array([[s.json()["probabilities"][c] for c in bundle.classes] for s in singles])
    np.testing.assert_allclose(single, expected, rtol=1e-5, atol=1e-6)
    # No flag was taken for a category the model never saw.
    assert not any(
        line.startswith("dlw_unseen_categories_total") and any(flag in line for flag in FLAGS)
        for line in metrics.splitlines()
    )
    # The same numbers as strings are the same records.
    as_strings = [{**r, **{flag: str(r[flag]) for flag in FLAGS}} for r in records[:50]]
    with httpx.Client(base_url=flags_server.url, timeout=30) as http:
        again = http.post("/predict", json=as_strings).json()["predictions"]
    np.testing.assert_allclose(
        [p["probability"] for p in again],
        [p["probability"] for p in batch.json()["predictions"][:50]],
    )


def test_the_docs_curl_example_is_answered(flags_server, text_flags_bundle):
    docs = (PROJECT / "docs" / "service.md").read_text()
    command = next(
        block
        for block in re.findall(r"```bash\n(.*?)```", docs, flags=re.DOTALL)
        if "curl" in block and "/predict" in block
    )
    command = command.replace("localhost:8000", f"127.0.0.1:{flags_server.port}")
    result = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=True
    )
    answer = json.loads(result.stdout)
    bundle = read_bundle(text_flags_bundle)
    assert answer["model_version"] == bundle.model_version
    assert 0.0 <= answer["probability"] <= 1.0 and answer["label"] in bundle.classes
