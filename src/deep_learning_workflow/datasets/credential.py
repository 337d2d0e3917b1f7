"""A secret from ``credentials.yml`` as a node input.

Parameters are logged to MLflow (every ``params:`` input of a run) and shown by ``kedro viz``; credentials are
neither. A node that needs a secret, such as the key of the de-identification HMAC, takes it from a catalog entry
of this type: the value is read from the credentials at load time and never appears in the dataset's description.
"""

from __future__ import annotations

from typing import Any

from kedro.io import AbstractDataset, DatasetError


class CredentialDataset(AbstractDataset[None, Any]):
    """One value of a credentials entry, read only.

    Example (catalog and ``conf/local/credentials.yml``)::

        deidentification_salt:
          type: deep_learning_workflow.datasets.credential.CredentialDataset
          credentials: deidentification
          key: salt

        deidentification:
          salt: <64 random hex characters>

    Args:
        credentials: the credentials entry (Kedro fills it in from ``credentials.yml``).
        key: which value of the entry to load; a missing or null value loads as None.
    """

    def __init__(
        self, credentials: dict[str, Any] | None, key: str, metadata: dict | None = None
    ) -> None:
        self._credentials = dict(credentials or {})
        self._key = key
        self.metadata = metadata

    def load(self) -> Any:
        return self._credentials.get(self._key)

    def save(self, data: Any) -> None:
        raise DatasetError("A credential is read from credentials.yml; a node cannot save it.")

    def _describe(self) -> dict[str, Any]:
        return {"key": self._key}  # never the value

    def _exists(self) -> bool:
        return self._credentials.get(self._key) is not None
