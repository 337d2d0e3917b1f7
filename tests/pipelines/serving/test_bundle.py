"""The serving bundle: round trip, manifest verification, atomic replacement, the catalog dataset."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from deep_learning_workflow import bundle as bundle_module
from deep_learning_workflow.bundle import (
    MANIFEST_FILE,
    METADATA_FILE,
    MODEL_FILE,
    BundleError,
    ServingBundle,
    ServingBundleDataset,
    read_bundle,
    verify_manifest,
    write_bundle,
)
from deep_learning_workflow.fingerprints import model_fingerprint
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.pipelines.serving.nodes import export_serving_bundle


@pytest.fixture
def exported(
    keras_model, train, decision_threshold, gate_passed, columns, serving_params
) -> ServingBundle:
    return export_serving_bundle(
        keras_model, train, decision_threshold, gate_passed, columns, serving_params
    )


def _leftovers(folder):
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def test_round_trip_keeps_metadata_and_model_outputs(tmp_path, exported, keras_model, train, roles):
    target = tmp_path / "serving_bundle"
    write_bundle(target, exported.model, exported.metadata)

    assert sorted(path.name for path in target.iterdir()) == [
        METADATA_FILE,
        MANIFEST_FILE,
        MODEL_FILE,
    ]
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    assert manifest["algorithm"] == "sha256"
    assert sorted(manifest["files"]) == [METADATA_FILE, MODEL_FILE]

    loaded = read_bundle(target)
    assert loaded.metadata == exported.metadata
    assert loaded.roles == roles
    assert model_fingerprint(loaded.model) == exported.metadata["model_sha256"]
    np.testing.assert_allclose(
        predict_probabilities(loaded.model, train, loaded.roles),
        predict_probabilities(keras_model, train, roles),
        rtol=1e-6,
        atol=1e-7,
    )
    assert _leftovers(tmp_path) == []


def test_model_file_path_is_copied(tmp_path, exported, saved_model_path):
    written = write_bundle(tmp_path / "bundle", saved_model_path, exported.metadata)
    assert (tmp_path / "bundle" / MODEL_FILE).read_bytes() == saved_model_path.read_bytes()
    assert model_fingerprint(written.model) == exported.metadata["model_sha256"]


@pytest.mark.parametrize(
    "tamper, message",
    [
        (
            lambda folder: (folder / METADATA_FILE).write_text('{"format_version": 1}'),
            "bundle.json does not match",
        ),
        (lambda folder: (folder / MODEL_FILE).unlink(), "model.keras is missing"),
        (lambda folder: (folder / "extra.txt").write_text("x"), "extra.txt is not listed"),
        (lambda folder: (folder / MANIFEST_FILE).unlink(), "manifest.json is missing"),
        (lambda folder: (folder / MANIFEST_FILE).write_text("not json"), "unreadable"),
    ],
    ids=["changed-metadata", "missing-model", "unlisted-file", "no-manifest", "broken-manifest"],
)
def test_tampered_bundle_fails_verification(tmp_path, exported, saved_model_path, tamper, message):
    target = tmp_path / "bundle"
    write_bundle(target, saved_model_path, exported.metadata)
    tamper(target)
    with pytest.raises(BundleError, match=message):
        verify_manifest(target)
    with pytest.raises(BundleError):
        read_bundle(target)


def test_one_flipped_byte_of_the_model_is_detected(tmp_path, exported, saved_model_path):
    target = tmp_path / "bundle"
    write_bundle(target, saved_model_path, exported.metadata)
    content = bytearray((target / MODEL_FILE).read_bytes())
    content[len(content) // 2] ^= 0xFF
    (target / MODEL_FILE).write_bytes(bytes(content))
    with pytest.raises(BundleError, match="model.keras does not match its sha256"):
        read_bundle(target)
    # Verification can be skipped explicitly (for a caller that has just verified).
    assert read_bundle(target, verify=False).model_version == exported.model_version


def test_unknown_format_and_incomplete_metadata_are_refused(tmp_path, exported):
    with pytest.raises(BundleError, match="lacks"):
        ServingBundle({"format_version": 1})
    with pytest.raises(BundleError, match="format 99"):
        ServingBundle({**exported.metadata, "format_version": 99})
    with pytest.raises(BundleError, match="No serving bundle"):
        read_bundle(tmp_path / "nowhere")


class _FailingModel:
    """Writes part of a model file, then fails, as a full disk or a killed save would."""

    def save(self, path):
        with open(path, "wb") as stream:
            stream.write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")


def test_failure_mid_write_keeps_the_older_bundle(tmp_path, exported, saved_model_path):
    target = tmp_path / "serving_bundle"
    write_bundle(target, saved_model_path, exported.metadata)
    before = {
        name: (target / name).read_bytes() for name in (METADATA_FILE, MANIFEST_FILE, MODEL_FILE)
    }

    with pytest.raises(OSError, match="No space left"):
        write_bundle(target, _FailingModel(), {**exported.metadata, "model_version": "other"})
    # Metadata that is not valid JSON fails after the model file is written.
    with pytest.raises(ValueError, match="Out of range float"):
        write_bundle(
            target, saved_model_path, {**exported.metadata, "decision_threshold": float("nan")}
        )

    assert {name: (target / name).read_bytes() for name in before} == before
    verify_manifest(target)
    assert _leftovers(tmp_path) == []


def test_failure_mid_write_leaves_no_bundle_under_the_final_name(tmp_path, exported):
    target = tmp_path / "serving_bundle"
    with pytest.raises(OSError):
        write_bundle(target, _FailingModel(), exported.metadata)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_swap_restores_the_older_bundle(tmp_path, exported, saved_model_path, monkeypatch):
    target = tmp_path / "serving_bundle"
    write_bundle(target, saved_model_path, exported.metadata)
    old_manifest = (target / MANIFEST_FILE).read_bytes()
    real_rename = os.rename

    def rename(source, destination):
        if ".partial-" in str(source):
            raise OSError("rename interrupted")
        return real_rename(source, destination)

    monkeypatch.setattr(bundle_module.os, "rename", rename)
    with pytest.raises(OSError, match="rename interrupted"):
        write_bundle(target, saved_model_path, {**exported.metadata, "created_at": "later"})
    monkeypatch.undo()

    assert (target / MANIFEST_FILE).read_bytes() == old_manifest
    verify_manifest(target)
    assert _leftovers(tmp_path) == []


def test_replacing_a_bundle_swaps_in_the_new_one(tmp_path, exported, saved_model_path):
    target = tmp_path / "serving_bundle"
    write_bundle(target, saved_model_path, exported.metadata)
    write_bundle(
        target, saved_model_path, {**exported.metadata, "created_at": "2030-01-01T00:00:00+00:00"}
    )
    assert read_bundle(target).metadata["created_at"] == "2030-01-01T00:00:00+00:00"
    assert _leftovers(tmp_path) == []


def test_catalog_dataset_saves_and_loads_a_verified_bundle(tmp_path, exported):
    dataset = ServingBundleDataset(path=str(tmp_path / "serving_bundle"))
    assert not dataset.exists()
    dataset.save(exported)
    assert dataset.exists()
    loaded = dataset.load()
    assert loaded.model_version == exported.model_version
    assert loaded.path == tmp_path / "serving_bundle"
    with pytest.raises(Exception, match="saves a ServingBundle"):
        dataset.save({"not": "a bundle"})
