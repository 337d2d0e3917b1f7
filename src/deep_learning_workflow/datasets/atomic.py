"""Atomic saves for file datasets: a failed or killed save leaves the previous file (or version) as it was.

kedro-datasets' file datasets open the final path for writing and stream into it, so an error in the middle of
serialisation, or a killed process, leaves a truncated or half-written file under the name the next node (or the
REST service) reads. Every one of them asks ``self._get_save_path()`` where to write, and writes with ``self._fs``;
:class:`AtomicSaveMixin` answers that question with a hidden staging path beside the target during a save, then
renames the finished file into place (``os.replace``, atomic on a POSIX file system):

- unversioned ``data/03_primary/clean_table.parquet`` is written as
  ``data/03_primary/.clean_table.partial-<hex>.parquet`` and renamed over the old file;
- versioned ``data/06_models/model.keras/<version>/model.keras`` is written inside
  ``data/06_models/model.keras/.partial-<hex>/<version>/`` and the finished ``<version>`` folder is renamed into
  place, so a version folder never appears half written (Kedro only lists ``<filepath>/*/<name>``, which the staging
  folder does not match).

A save that raises removes its staging file. A process killed with SIGKILL cannot clean up: it leaves a hidden
``…partial-<hex>…`` file (or folder) behind, never anything under the final name; such leftovers are safe to
delete.
Remote file systems (``s3://``, ``gs://``, ...) publish an object only when its upload completes, so there the
dataset writes directly, as kedro-datasets does. The rename does not ``fsync``: it survives a killed process, not a
power cut.

Use the thin subclasses below in the catalog in place of the stock types, e.g.
``type: deep_learning_workflow.datasets.atomic.ParquetDataset``; they take the same arguments, load, preview and
describe themselves like the stock datasets.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import DatasetError, get_filepath_str
from kedro_datasets.json import JSONDataset as _JSONDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset
from kedro_datasets.pandas import ParquetDataset as _ParquetDataset
from kedro_datasets.pickle import PickleDataset as _PickleDataset
from kedro_datasets.plotly import JSONDataset as _PlotlyJSONDataset
from kedro_datasets.text import TextDataset as _TextDataset
from kedro_datasets.yaml import YAMLDataset as _YAMLDataset

STAGING_MARKER = ".partial-"


def _unwrapped(method: Any) -> Any:
    """The plain function under Kedro's save wrapper (which adds logging and, for versioned datasets, resolves a new
    save version: it must run once per save, in the outer call)."""
    return getattr(method, "__wrapped__", method)


class AtomicSaveMixin:
    """Makes a file dataset's save atomic; put it before the dataset class in the bases.

    The dataset must ask ``self._get_save_path()`` where to write and expose ``_protocol``, as every kedro-datasets
    file dataset and :class:`~deep_learning_workflow.datasets.KerasModelDataset` do (an unversioned dataset without
    ``_get_save_path`` of its own writes to ``_filepath``). A dataset with its own ``save`` wraps the writing in
    ``with self._staged_save():``.
    """

    _staging_path: PurePosixPath | None = None

    def _get_save_path(self) -> PurePosixPath:
        if self._staging_path is not None:
            return self._staging_path
        return self._final_save_path()

    def _final_save_path(self) -> PurePosixPath:
        parent = getattr(super(), "_get_save_path", None)
        return parent() if parent is not None else PurePosixPath(self._filepath)  # type: ignore[attr-defined]

    def save(self, data: Any) -> None:
        with self._staged_save():
            _unwrapped(super().save)(self, data)  # type: ignore[misc]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        stock = getattr(super(), "preview", None)
        if stock is None or "preview" in cls.__dict__:
            return

        # The stock preview of a file that exists; None for one not written yet, so kedro-viz shows no preview
        # instead of warning about every output of the pipelines not run. functools.wraps keeps the stock return
        # annotation, from which kedro-viz picks the kind of preview (table, JSON, plotly).
        @functools.wraps(stock)
        def preview(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not self.exists():
                return None
            return stock(self, *args, **kwargs)

        cls.preview = preview

    @contextlib.contextmanager
    def _staged_save(self) -> Iterator[None]:
        """Inside the block ``_get_save_path()`` is a hidden staging path; on success the result is renamed into
        place, on any error (or interrupt) the staging path is removed and the previous file is left untouched."""
        if getattr(self, "_protocol", "file") != "file":
            yield
            return
        # For a versioned dataset this checks, as Kedro does, that the new version does not exist yet.
        final = Path(get_filepath_str(self._final_save_path(), "file"))
        token = uuid.uuid4().hex[:12]
        if getattr(self, "_version", None):
            # <filepath>/.partial-<hex>/<version>/<name> -> <filepath>/<version>/<name>
            staging_root = final.parent.parent / f"{STAGING_MARKER}{token}"
            staging_file = staging_root / final.parent.name / final.name
            publish_from, publish_to = staging_file.parent, final.parent
        else:
            staging_root = final.parent / f".{final.stem}{STAGING_MARKER}{token}{final.suffix}"
            staging_file = staging_root
            publish_from, publish_to = staging_file, final
        self._staging_path = PurePosixPath(staging_file.as_posix())
        try:
            yield
            if not staging_file.exists():
                raise DatasetError(f"The save of {self} wrote nothing to '{staging_file}'.")
            publish_to.parent.mkdir(parents=True, exist_ok=True)
            os.replace(publish_from, publish_to)
        except BaseException as exc:
            _discard(staging_root)
            if isinstance(exc, Exception) and not isinstance(exc, DatasetError):
                raise DatasetError(
                    f"Failed while saving data to dataset {self!s}; nothing was written to '{final}' "
                    f"(a previous file there is left as it was).\n{type(exc).__name__}: {exc}"
                ) from exc
            raise
        finally:
            self._staging_path = None
        if staging_root != staging_file:
            _discard(staging_root)
        invalidate = getattr(self, "_invalidate_cache", None)
        if invalidate is not None:
            invalidate()


def _discard(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class ParquetDataset(AtomicSaveMixin, _ParquetDataset):
    """``pandas.ParquetDataset`` with an atomic save."""


class CSVDataset(AtomicSaveMixin, _CSVDataset):
    """``pandas.CSVDataset`` with an atomic save."""


class JSONDataset(AtomicSaveMixin, _JSONDataset):
    """``json.JSONDataset`` with an atomic save."""


class PlotlyJSONDataset(AtomicSaveMixin, _PlotlyJSONDataset):
    """``plotly.JSONDataset`` with an atomic save; kedro-viz still draws it in the preview panel."""


class TextDataset(AtomicSaveMixin, _TextDataset):
    """``text.TextDataset`` with an atomic save."""


class YAMLDataset(AtomicSaveMixin, _YAMLDataset):
    """``yaml.YAMLDataset`` with an atomic save."""


class PickleDataset(AtomicSaveMixin, _PickleDataset):
    """``pickle.PickleDataset`` with an atomic save."""


__all__ = [
    "AtomicSaveMixin",
    "CSVDataset",
    "JSONDataset",
    "ParquetDataset",
    "PickleDataset",
    "PlotlyJSONDataset",
    "TextDataset",
    "YAMLDataset",
]
