"""A versioned ``.keras`` model dataset that registers the project's custom layers before loading.

kedro-datasets' ``tensorflow.TensorFlowModelDataset`` does the Keras saving and loading (``safe_mode`` on); this
dataset wraps it to add what the workflow needs: the custom preprocessing layers are imported before
deserialisation in whatever process loads the model, TensorFlow is imported only when a model is actually loaded
or saved (so building the catalog stays cheap), a save is atomic (:mod:`.atomic`: the version folder is
written under a hidden name, then renamed into place), and in a multi-worker run only the chief keeps the file
(:func:`is_chief`).
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import PurePosixPath
from typing import Any

import fsspec
from kedro.io.core import (
    AbstractVersionedDataset,
    DatasetError,
    Version,
    get_filepath_str,
    get_protocol_and_path,
)

from .atomic import AtomicSaveMixin


def _register_custom_layers() -> None:
    # Importing the module registers its layers with Keras' serialisation registry.
    import deep_learning_workflow.models.layers  # noqa: F401


def is_chief() -> bool:
    """Whether this process writes shared outputs: true unless ``TF_CONFIG`` names it a worker that is not the chief.

    TensorFlow's convention: the ``chief`` task is the chief; without one, ``worker`` 0 is.
    """
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    if not task:
        return True
    if "chief" in (config.get("cluster") or {}):
        return task.get("type") == "chief"
    return task.get("type") in ("chief", None) or (
        task.get("type") == "worker" and int(task.get("index", 0)) == 0
    )


def load_keras_model(filepath: str, **load_args: Any) -> Any:
    """Load a ``.keras`` file saved by the modelling pipeline, outside a Kedro catalog (e.g. in a server).

    Args:
        filepath: local path of the ``.keras`` file.
        **load_args: passed to ``keras.saving.load_model``; ``safe_mode`` stays True unless given.

    Returns:
        The Keras model.
    """
    _register_custom_layers()
    import keras

    from deep_learning_workflow.models.names import raw_input_keys

    with raw_input_keys():
        return keras.saving.load_model(filepath, **{"safe_mode": True, **load_args})


class KerasModelDataset(AtomicSaveMixin, AbstractVersionedDataset[Any, Any]):
    """Loads and saves the workflow's Keras model as one versioned ``.keras`` file.

    Example catalog entry::

        model:
          type: deep_learning_workflow.datasets.KerasModelDataset
          filepath: data/06_models/model.keras
          versioned: true

    Args:
        filepath: path ending in ``.keras``, optionally with an fsspec protocol (``s3://...``).
        optional: when true, loading gives None while there is no file (or no version) yet, e.g. for a
            warm-start model that a default run does not use.
        load_args: passed to ``TensorFlowModelDataset`` (``safe_mode`` defaults to True, ``compile`` to False:
            scoring needs no optimiser state).
        save_args: passed to ``TensorFlowModelDataset``.
        version: Kedro version, set by the catalog when ``versioned: true``.
        credentials: fsspec credentials.
        fs_args: fsspec filesystem arguments.
        metadata: free-form, e.g. kedro-viz's layer.
    """

    DEFAULT_LOAD_ARGS: dict[str, Any] = {"safe_mode": True, "compile": False}
    DEFAULT_SAVE_ARGS: dict[str, Any] = {}

    def __init__(  # noqa: PLR0913 - keyword arguments mirror the catalog entry's keys
        self,
        *,
        filepath: str,
        optional: bool = False,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        version: Version | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not str(filepath).endswith(".keras"):
            raise DatasetError(f"KerasModelDataset needs a '.keras' filepath, got '{filepath}'.")
        _fs_args = copy.deepcopy(fs_args) or {}
        self._credentials = copy.deepcopy(credentials) or {}
        protocol, path = get_protocol_and_path(filepath, version)
        if protocol == "file":
            _fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._fs_args = _fs_args
        self._fs = fsspec.filesystem(protocol, **self._credentials, **_fs_args)
        self.metadata = metadata
        self._optional = optional
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=self._fs.exists,
            glob_function=self._fs.glob,
        )
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        self._save_args = {**self.DEFAULT_SAVE_ARGS, **(save_args or {})}

    def _inner(self, path: str) -> Any:
        from kedro_datasets.tensorflow import TensorFlowModelDataset

        return TensorFlowModelDataset(
            filepath=path,
            load_args=self._load_args,
            save_args=self._save_args,
            credentials=self._credentials,
            fs_args=self._fs_args,
        )

    def load(self) -> Any:
        if self._optional and not self._exists():
            return None
        _register_custom_layers()
        from deep_learning_workflow.models.names import raw_input_keys

        load_path = get_filepath_str(self._get_load_path(), self._protocol)
        with raw_input_keys():
            return self._inner(load_path).load()

    def save(self, data: Any) -> None:
        if not is_chief():
            # Every worker of a multi-worker run saves (saving may take part in the workers' collective
            # operations), but only the chief's file is kept: the others write to a folder that is removed.
            with tempfile.TemporaryDirectory() as folder:
                data.save(os.path.join(folder, "model.keras"))
            return
        with self._staged_save():
            self._inner(get_filepath_str(self._get_save_path(), self._protocol)).save(data)

    def resolve_load_version(self) -> str | None:
        if not is_chief():
            # A worker that is not the chief keeps no file: the version it saved is the one it "loads" (Kedro
            # checks after a save that the saved version is the latest), and loading it finds no file.
            return self.resolve_save_version()
        return super().resolve_load_version()

    def _exists(self) -> bool:
        try:
            load_path = get_filepath_str(self._get_load_path(), self._protocol)
        except DatasetError:
            return False
        return self._fs.exists(load_path)

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "protocol": self._protocol,
            "optional": self._optional,
            "load_args": self._load_args,
            "save_args": self._save_args,
            "version": self._version,
        }

    def _release(self) -> None:
        super()._release()
        self._invalidate_cache()

    def _invalidate_cache(self) -> None:
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))
