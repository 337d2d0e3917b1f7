"""The serving bundle: everything the REST service and batch scoring need to serve one trained model.

The ``serving`` pipeline writes it (``data/07_model_output/serving_bundle/``); the REST service and batch scoring
read it with :func:`read_bundle`, which checks the manifest first. Layout::

    serving_bundle/
      model.keras     the trained Keras model: raw records in (one input per feature column), class
                      probabilities out, columns in the order of ``classes``
      bundle.json     what the service needs besides the model (see below)
      manifest.json   {"format_version": 1, "algorithm": "sha256", "files": {"bundle.json": <hex>, "model.keras": <hex>}}

``manifest.json`` lists the sha256 of every other file of the folder; a missing, changed or unlisted file makes
:func:`verify_manifest` raise :class:`BundleError`. ``bundle.json`` holds::

    format_version      1
    model_version       first 12 hex digits of a hash of the model's config, weights and vocabularies: the same
                        trained model always gets the same version, another model another one
    model_sha256        the full hash
    model_file          "model.keras"
    created_at          UTC time of the export, ISO 8601
    classes             class labels as strings, the order of the model's probability columns
    positive_class      the class whose probability is thresholded (binary targets; null otherwise)
    decision_threshold  binary targets: label = positive_class when P(positive_class) >= threshold, else the
                        other class; null for more than two classes (label = most probable class)
    key                 the record key column (may be null); target: the target column (never an input)
    features            the model's input columns, in order
    schema              column name -> {"role": "key" | "numeric" | "categorical" | "text",
                        "dtype": dtype of the training column, "input_dtype": "float32" | "string",
                        "nullable": whether the training split had missing values,
                        numeric: "min", "max"; categorical: "categories" (sorted, as strings)}
                        Missing numeric values reach the model as NaN, missing strings as "".
    reference           training statistics for drift: {"rows": n,
                        "numeric": {col: {"bin_edges": train quantiles (first = min, last = max),
                                          "proportions": share of rows per bin, bins right-closed with the first
                                          and last bin open-ended, "missing": share of missing values}},
                        "categorical": {col: {"categories": [...], "proportions": [...], "missing": share}},
                        "text_length": {col: like numeric, on the length of the text in characters}}
    release_gate        {"passed": bool, "judged_this_model": bool, "forced": bool}: the evaluation gate's
                        verdict, whether it judged this very model, and whether the export was forced past a
                        failed (or another model's) gate with serving.force_export
    registry            {"registered_model", "version", "alias", "model_uri", "run_id"}: the model's entry in the
                        MLflow model registry when the release gate passed it and it was registered; else null
    versions            {"python", "deep_learning_workflow", "tensorflow", "keras"}

Writing is atomic: :func:`write_bundle` fills a hidden sibling folder, verifies it, then renames it to the final
name, so a reader sees the previous complete bundle or the new complete bundle, never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset

from deep_learning_workflow.columns import ColumnRoles

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
METADATA_FILE = "bundle.json"
MANIFEST_FILE = "manifest.json"
REQUIRED_KEYS = (
    "format_version",
    "model_version",
    "model_file",
    "classes",
    "positive_class",
    "decision_threshold",
    "key",
    "features",
    "schema",
    "reference",
)
_CHUNK = 1 << 20


class BundleError(ValueError):
    """A serving bundle is missing, incomplete, tampered with or of an unknown format."""


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _bundle_files(path: Path) -> list[str]:
    return sorted(
        PurePosixPath(file.relative_to(path)).as_posix()
        for file in path.rglob("*")
        if file.is_file() and file.name != MANIFEST_FILE
    )


def verify_manifest(path: str | Path) -> dict[str, str]:
    """Check every file of a bundle folder against its ``manifest.json``.

    Args:
        path: the bundle folder.

    Returns:
        The manifest's file name -> sha256 mapping.

    Raises:
        BundleError: when the folder or its manifest is missing or unreadable, a listed file is missing or has
            another sha256, or the folder holds a file the manifest does not list.
    """
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(
            f"No serving bundle at '{path}': {MANIFEST_FILE} is missing. Run `kedro run --pipelines serving`."
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        files = dict(manifest["files"])
        algorithm = manifest["algorithm"]
    except (ValueError, KeyError, TypeError) as error:
        raise BundleError(
            f"The manifest of the serving bundle '{path}' is unreadable: {error!r}."
        ) from None
    if algorithm != "sha256":
        raise BundleError(f"The manifest of '{path}' uses '{algorithm}'; only sha256 is supported.")
    problems = []
    for name, expected in sorted(files.items()):
        file = path / name
        if not file.is_file():
            problems.append(f"{name} is missing")
        elif file_sha256(file) != expected:
            problems.append(f"{name} does not match its sha256 (changed after export)")
    problems += [
        f"{name} is not listed in the manifest" for name in _bundle_files(path) if name not in files
    ]
    if problems:
        raise BundleError(
            f"The serving bundle '{path}' failed verification: {'; '.join(problems)}. Export it again."
        )
    return files


class ServingBundle:
    """A serving bundle in memory: its ``bundle.json`` metadata and the Keras model (loaded on first use).

    Args:
        metadata: the content of ``bundle.json``.
        model: the Keras model; when None it is loaded from ``path`` on first access of :attr:`model`.
        path: the folder the bundle was read from, if any.
    """

    def __init__(
        self, metadata: Mapping[str, Any], model: Any = None, path: str | Path | None = None
    ) -> None:
        missing = [key for key in REQUIRED_KEYS if key not in metadata]
        if missing:
            raise BundleError(f"The bundle metadata lacks {missing}.")
        if metadata["format_version"] != FORMAT_VERSION:
            raise BundleError(
                f"Bundle format {metadata['format_version']} is not supported (expected {FORMAT_VERSION}); "
                "export the bundle again with this version of the package."
            )
        self.metadata = dict(metadata)
        self.path = Path(path) if path is not None else None
        self._model = model

    @property
    def model(self) -> Any:
        """The Keras model (imports Keras and loads ``model.keras`` the first time)."""
        if self._model is None:
            if self.path is None:
                raise BundleError("This bundle has neither a model nor a folder to load it from.")
            from deep_learning_workflow.datasets import load_keras_model

            self._model = load_keras_model(
                str(self.path / self.metadata["model_file"]), compile=False
            )
        return self._model

    @property
    def model_version(self) -> str:
        return self.metadata["model_version"]

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["classes"])

    @property
    def positive_class(self) -> str | None:
        return self.metadata["positive_class"]

    @property
    def decision_threshold(self) -> float | None:
        return self.metadata["decision_threshold"]

    @property
    def features(self) -> list[str]:
        return list(self.metadata["features"])

    @property
    def schema(self) -> dict[str, dict[str, Any]]:
        return self.metadata["schema"]

    @property
    def reference(self) -> dict[str, Any]:
        return self.metadata["reference"]

    @property
    def roles(self) -> ColumnRoles:
        """Column roles of the model's inputs, for :func:`deep_learning_workflow.model_inputs.to_model_inputs`."""
        by_role: dict[str, list[str]] = {"numeric": [], "categorical": [], "text": []}
        for column in self.features:
            by_role[self.schema[column]["role"]].append(column)
        return ColumnRoles(
            key=self.metadata["key"],
            target=self.metadata.get("target") or "",
            positive_class=self.positive_class,
            **by_role,
        )

    def __repr__(self) -> str:
        return f"ServingBundle(model_version={self.model_version!r}, path={str(self.path) if self.path else None!r})"


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, allow_nan=False) + "\n").encode()


def _write_file(path: Path, content: bytes) -> None:
    with open(path, "wb") as stream:
        stream.write(content)
        stream.flush()
        os.fsync(stream.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_bundle(path: str | Path, model: Any, metadata: Mapping[str, Any]) -> ServingBundle:
    """Write a serving bundle atomically.

    The files go to a hidden sibling folder first; only once the folder is complete and its manifest verifies is it
    renamed to ``path``. An existing bundle at ``path`` is replaced only then, and restored if the rename fails.

    Args:
        path: the bundle folder to create or replace.
        model: a Keras model, or the path of a ``.keras`` file to copy.
        metadata: the content of ``bundle.json`` (see the module docstring); must be JSON without NaN.

    Returns:
        The bundle as read back from ``path``.

    Raises:
        BundleError: when the metadata is incomplete; any error of saving the model or the metadata is raised
            unchanged after the partial folder has been removed.
    """
    path = Path(path)
    ServingBundle(metadata)  # checks the required keys before anything is written
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.parent / f".{path.name}.partial-{uuid.uuid4().hex}"
    partial.mkdir()
    try:
        model_path = partial / metadata["model_file"]
        if isinstance(model, str | Path):
            shutil.copyfile(model, model_path)
        else:
            model.save(model_path)
        _write_file(partial / METADATA_FILE, _json_bytes(dict(metadata)))
        files = {name: file_sha256(partial / name) for name in _bundle_files(partial)}
        _write_file(
            partial / MANIFEST_FILE,
            _json_bytes({"format_version": FORMAT_VERSION, "algorithm": "sha256", "files": files}),
        )
        verify_manifest(partial)
        _fsync_dir(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _replace_folder(partial, path)
    return ServingBundle(
        metadata, model=None if isinstance(model, str | Path) else model, path=path
    )


def _replace_folder(source: Path, target: Path) -> None:
    if not target.exists():
        os.rename(source, target)
        _fsync_dir(target.parent)
        return
    previous = target.parent / f".{target.name}.previous-{uuid.uuid4().hex}"
    os.rename(target, previous)
    try:
        os.rename(source, target)
    except BaseException:
        os.rename(previous, target)
        shutil.rmtree(source, ignore_errors=True)
        raise
    _fsync_dir(target.parent)
    shutil.rmtree(previous, ignore_errors=True)


def read_bundle(path: str | Path, verify: bool = True) -> ServingBundle:
    """Read a serving bundle's metadata; the model loads on first use of ``.model``.

    Args:
        path: the bundle folder.
        verify: check every file against the manifest first (leave on unless the caller just did).

    Raises:
        BundleError: when the bundle is missing, fails verification or has an unknown format.
    """
    path = Path(path)
    if verify:
        verify_manifest(path)
    metadata_path = path / METADATA_FILE
    if not metadata_path.is_file():
        raise BundleError(f"No serving bundle at '{path}': {METADATA_FILE} is missing.")
    try:
        metadata = json.loads(metadata_path.read_text())
    except ValueError as error:
        raise BundleError(f"{metadata_path} is not valid JSON: {error}.") from None
    return ServingBundle(metadata, path=path)


class ServingBundleDataset(AbstractDataset[ServingBundle, ServingBundle]):
    """Kedro dataset of a serving bundle folder: saves with :func:`write_bundle`, loads with :func:`read_bundle`.

    Example catalog entry::

        serving_bundle:
          type: deep_learning_workflow.bundle.ServingBundleDataset
          path: data/07_model_output/serving_bundle
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> ServingBundle:
        return read_bundle(self._path, verify=True)

    def save(self, data: ServingBundle) -> None:
        if not isinstance(data, ServingBundle):
            raise BundleError(
                f"ServingBundleDataset saves a ServingBundle, got {type(data).__name__}."
            )
        write_bundle(self._path, data.model, data.metadata)

    def _exists(self) -> bool:
        return (self._path / MANIFEST_FILE).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
