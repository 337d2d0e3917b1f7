"""A JSON file that may not exist yet, such as the record of the released model."""

from __future__ import annotations

from typing import Any

from deep_learning_workflow.datasets.atomic import JSONDataset


class OptionalJSONDataset(JSONDataset):
    """A JSON file that may not exist yet: loading a missing file gives None.

    Used for the record of the released model, which does not exist before the first release. Saving is atomic
    (:mod:`deep_learning_workflow.datasets.atomic`), so a failed save never leaves a half-written record.

    Example catalog entry::

        previous_release:
          type: deep_learning_workflow.datasets.optional_json.OptionalJSONDataset
          filepath: data/06_models/released/release.json
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(
            filepath=filepath, save_args={"indent": 2, "sort_keys": True}, metadata=metadata
        )

    def load(self) -> dict | None:
        if not self._exists():
            return None
        return super().load()
