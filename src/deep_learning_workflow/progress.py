"""Progress display of long work (Keras training, the tuning study): shown in a terminal, silent in logs.

A progress bar redraws one line many times a second: useful to a person at a terminal, a flood of carriage returns
in a CI log or a file. So progress is shown only when standard error is a terminal and no ``CI`` variable says the
run is automated (CI services set ``CI=true``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

# Values of CI that do not mean "this is an automated run".
_NOT_CI = {"", "0", "false", "no", "off"}


def interactive(stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether progress should be shown: ``stream`` (standard error) is a terminal and ``CI`` is not set.

    Args:
        stream: where progress would be written; standard error when None.
        environ: the environment variables; ``os.environ`` when None.
    """
    environ = os.environ if environ is None else environ
    if environ.get("CI", "").strip().lower() not in _NOT_CI:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def keras_verbose(stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Keras ``fit`` verbosity: 1 (a progress bar per epoch) when :func:`interactive`, else 0 (silent)."""
    return 1 if interactive(stream, environ) else 0


def progress_bar(total: int, description: str, initial: int = 0) -> Any:
    """A tqdm bar on standard error, disabled (drawing nothing) unless :func:`interactive`.

    Args:
        total: the number of steps.
        description: the text before the bar.
        initial: steps already done (e.g. the trials of a resumed study).
    """
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        file=sys.stderr,
        disable=not interactive(),
        dynamic_ncols=True,
    )
