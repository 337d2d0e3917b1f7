"""The run-record hook stamps the serving bundle as it is saved, so the export node reads no clock or environment."""

from __future__ import annotations

from datetime import UTC, datetime

import deep_learning_workflow
from deep_learning_workflow.bundle import FORMAT_VERSION, REQUIRED_KEYS, ServingBundle
from deep_learning_workflow.hooks import RunRecordHook


def _bundle() -> ServingBundle:
    metadata = {**dict.fromkeys(REQUIRED_KEYS), "format_version": FORMAT_VERSION}
    return ServingBundle(metadata, model=object())


def test_the_saved_bundle_gets_its_export_time_versions_and_commit(tmp_path):
    hook = RunRecordHook()
    bundle = _bundle()
    before = datetime.now(UTC).replace(microsecond=0)
    hook.before_dataset_saved("serving_bundle", bundle)
    after = datetime.now(UTC)
    stamped = datetime.fromisoformat(bundle.metadata["created_at"])
    assert stamped.tzinfo is not None and before <= stamped <= after
    versions = bundle.metadata["versions"]
    assert set(versions) == {"python", "deep_learning_workflow", "tensorflow", "keras"}
    assert versions["deep_learning_workflow"] == deep_learning_workflow.__version__
    assert versions["keras"].startswith("3.")
    assert bundle.metadata["git_commit"]


def test_other_datasets_are_left_as_they_are():
    data = {"created_at": None}
    RunRecordHook().before_dataset_saved("validation_metrics", data)
    assert data == {"created_at": None}
