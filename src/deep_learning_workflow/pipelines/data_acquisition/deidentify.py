"""De-identification: sensitive columns dropped or pseudonymised before the acquired table is written."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.parameters import parse

from .common import KEY, settings_of
from .schema import MIN_SALT_LENGTH, SALT_CREDENTIALS


def pseudonymise(values: pd.Series, salt: str) -> pd.Series:
    """HMAC-SHA256 of each value's text under ``salt``, as hex; missing values stay missing.

    Pseudonymisation, not anonymisation: equal values get equal digests, so rows stay linkable and anyone with
    the salt can test guesses.
    """
    key = salt.encode()
    digests = [
        None if pd.isna(value) else hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()
        for value in values
    ]
    return pd.Series(digests, index=values.index, name=values.name, dtype="str")


def check_salt(salt: str | None) -> str:
    """The HMAC key of ``sensitive.hash``, or a clear error when the credentials lack a long enough one."""
    if not isinstance(salt, str) or len(salt) < MIN_SALT_LENGTH:
        raise ValueError(
            f"{KEY}.sensitive.hash needs a secret salt of at least {MIN_SALT_LENGTH} characters in the "
            f"credentials ({SALT_CREDENTIALS}); nothing was written. Put one in conf/local/credentials.yml "
            '(git-ignored), e.g. the output of `python -c "import secrets; print(secrets.token_hex(32))"`:\n'
            "  deidentification:\n    salt: <that value>"
        )
    return salt


def deidentify_table(
    table: pd.DataFrame, salt: str | None, parameters: dict[str, Any], columns: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop or hash the columns of ``data_acquisition.sensitive``.

    Args:
        table: the validated table.
        salt: ``deidentification_salt``, the HMAC key from the credentials (only needed with ``sensitive.hash``).
        parameters: ``params:data_acquisition`` (``sensitive.drop``, ``sensitive.hash``).
        columns: ``params:columns``: the target can be neither dropped nor hashed, the key not dropped.

    Returns:
        The acquired table and what was done (for the acquisition report).

    Raises:
        ValueError: when a sensitive column is not in the table or is the target (or a dropped key), or when
            ``sensitive.hash`` is set and the credentials hold no salt.
    """
    sensitive = settings_of(parameters).sensitive
    roles = parse(ColumnRoles, columns, "columns")
    named = [*sensitive.drop, *sensitive.hash]
    missing = [column for column in named if column not in table]
    if missing:
        raise ValueError(
            f"{KEY}.sensitive names {missing}, which the acquired table does not have; its columns are "
            f"{list(table.columns)}."
        )
    if roles.target in named:
        raise ValueError(
            f"{KEY}.sensitive names the target '{roles.target}'; the workflow needs it as it is."
        )
    if roles.key in sensitive.drop:
        raise ValueError(
            f"{KEY}.sensitive.drop names the key '{roles.key}'; hash it instead, or set params:columns.key "
            "to null."
        )
    result = table.drop(columns=sensitive.drop)
    if sensitive.hash:
        key = check_salt(salt)
        result = result.assign(
            **{column: pseudonymise(result[column], key) for column in sensitive.hash}
        )
    summary = {
        "dropped": list(sensitive.drop),
        "hashed": list(sensitive.hash),
        "method": "HMAC-SHA256 with a secret salt (pseudonymisation, not anonymisation)"
        if sensitive.hash
        else None,
        "rows": len(result),
        "columns": [str(column) for column in result.columns],
    }
    return result, summary
