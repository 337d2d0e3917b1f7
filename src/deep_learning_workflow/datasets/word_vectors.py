"""Pretrained word vectors in the common text format of GloVe and word2vec, as a Kedro dataset.

One line per word: the word, then its vector's values, separated by spaces (``the 0.418 0.24968 -0.41242 ...``).
A word2vec text file starts with a header line ``<words> <dimension>``; a GloVe file has none. Both are read.
The file may be absent: with ``optional: true`` loading gives None, so a run that does not use the vectors needs
no file.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any, NamedTuple

import fsspec
import numpy as np
from kedro.io.core import AbstractDataset, DatasetError, get_filepath_str, get_protocol_and_path

from .atomic import AtomicSaveMixin


class WordVectors(NamedTuple):
    """Words and their vectors, in the file's order (most frequent first in the usual files)."""

    tokens: list[str]
    """The words; each appears once (a repeated word keeps its first vector)."""
    vectors: np.ndarray
    """float32 array of shape (words, dimension)."""

    @property
    def dimension(self) -> int:
        """The length of every vector."""
        return int(self.vectors.shape[1])


def _is_header(fields: list[str]) -> bool:
    return len(fields) == 2 and all(field.isdigit() for field in fields)


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _first_dimension(fields: list[str]) -> int:
    """The vector length of the first line: the fields after the word, which may itself contain spaces."""
    start = 1
    while start < len(fields) and not _is_number(fields[start]):
        start += 1
    return len(fields) - start


def parse_word_vectors(
    lines: Iterable[str], source: str = "the word-vector file", max_words: int | None = None
) -> WordVectors:
    """Read word vectors from the lines of a GloVe or word2vec text file.

    Args:
        lines: the file's lines.
        source: how to name the file in error messages.
        max_words: keep only the first this many words (the usual files are sorted by frequency).

    Returns:
        The :class:`WordVectors`.

    Raises:
        ValueError: naming the file and line when a line is not a word followed by numbers, when the vectors
            differ in length, or when the header's dimension is not the vectors'.
    """
    tokens: list[str] = []
    rows: list[np.ndarray] = []
    seen: set[str] = set()
    dimension: int | None = None
    header_dimension: int | None = None
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if number == 1 and _is_header(fields):
            header_dimension = int(fields[1])
            continue
        if dimension is None:
            dimension = _first_dimension(fields)
            if dimension < 1:
                raise ValueError(
                    f"Line {number} of {source} has a word and no vector; expected 'word v1 v2 ...'."
                )
            if header_dimension is not None and header_dimension != dimension:
                raise ValueError(
                    f"The header of {source} says the vectors have {header_dimension} values, but line {number} "
                    f"has {dimension}."
                )
        if len(fields) <= dimension:
            raise ValueError(
                f"Line {number} of {source} has {len(fields) - 1} values; the vectors above have {dimension}."
            )
        # A word containing spaces (a few GloVe files have them) is whatever precedes the last `dimension` fields.
        token = " ".join(fields[:-dimension])
        try:
            vector = np.asarray(fields[-dimension:], dtype="float32")
        except ValueError:
            raise ValueError(
                f"Line {number} of {source} (word '{token}') holds a value that is not a number."
            ) from None
        if token in seen:
            continue
        seen.add(token)
        tokens.append(token)
        rows.append(vector)
        if max_words is not None and len(tokens) >= max_words:
            break
    if not tokens:
        raise ValueError(f"{source} holds no word vector.")
    return WordVectors(tokens, np.stack(rows))


def format_word_vectors(vectors: WordVectors, digits: int = 6) -> str:
    """The GloVe text form of word vectors (no header line)."""
    lines = (
        f"{token} {' '.join(f'{value:.{digits}g}' for value in row)}"
        for token, row in zip(vectors.tokens, vectors.vectors, strict=True)
    )
    return "\n".join(lines) + "\n"


class WordVectorsDataset(AtomicSaveMixin, AbstractDataset[WordVectors, WordVectors | None]):
    """Loads (and saves) word vectors in the GloVe / word2vec text format.

    Example catalog entry::

        pretrained_word_vectors:
          type: deep_learning_workflow.datasets.WordVectorsDataset
          filepath: data/06_models/pretrained/word_vectors.txt
          optional: true
          load_args:
            max_words: 100000

    Args:
        filepath: the text file, optionally with an fsspec protocol.
        optional: when true, loading a missing file gives None instead of an error.
        load_args: ``max_words`` (keep the first words only), ``encoding`` (utf-8).
        credentials: fsspec credentials.
        fs_args: fsspec filesystem arguments.
        metadata: free-form, e.g. kedro-viz's layer.
    """

    DEFAULT_LOAD_ARGS: dict[str, Any] = {"max_words": None, "encoding": "utf-8"}

    def __init__(  # noqa: PLR0913 - keyword arguments mirror the catalog entry's keys
        self,
        *,
        filepath: str,
        optional: bool = False,
        load_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        _fs_args = copy.deepcopy(fs_args) or {}
        protocol, path = get_protocol_and_path(filepath)
        if protocol == "file":
            _fs_args.setdefault("auto_mkdir", True)
        self._protocol = protocol
        self._filepath = PurePosixPath(path)
        self._fs = fsspec.filesystem(protocol, **(copy.deepcopy(credentials) or {}), **_fs_args)
        self._optional = optional
        self._load_args = {**self.DEFAULT_LOAD_ARGS, **(load_args or {})}
        unknown = sorted(set(self._load_args) - set(self.DEFAULT_LOAD_ARGS))
        if unknown:
            raise DatasetError(
                f"WordVectorsDataset takes the load_args {sorted(self.DEFAULT_LOAD_ARGS)}, not {unknown}."
            )
        self.metadata = metadata

    def load(self) -> WordVectors | None:
        path = get_filepath_str(self._filepath, self._protocol)
        if self._optional and not self._fs.exists(path):
            return None
        with self._fs.open(path, mode="r", encoding=self._load_args["encoding"]) as file:
            return parse_word_vectors(file, f"'{path}'", self._load_args["max_words"])

    def save(self, data: WordVectors) -> None:
        with self._staged_save():
            path = get_filepath_str(self._get_save_path(), self._protocol)
            with self._fs.open(path, mode="w", encoding=self._load_args["encoding"]) as file:
                file.write(format_word_vectors(data))
        self._fs.invalidate_cache(get_filepath_str(self._filepath, self._protocol))

    def _exists(self) -> bool:
        return self._fs.exists(get_filepath_str(self._filepath, self._protocol))

    def _describe(self) -> dict[str, Any]:
        return {
            "filepath": self._filepath,
            "protocol": self._protocol,
            "optional": self._optional,
            "load_args": self._load_args,
        }
