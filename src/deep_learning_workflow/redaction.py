"""Connection URLs without their passwords, for error messages, logs and reports.

The databases of the workflow (the source database, the Optuna study storage, the prediction log) are named by
SQLAlchemy URLs that may carry a password, in the user-info part (``user:password@host``) or in the query
(``?password=...``). Whatever the project prints or writes shows such a URL only through :func:`redact_url`, and
a driver's error text only through :func:`scrub`.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

_QUERY_SECRET = re.compile(r"(?i)\b(password|passwd|pwd)=[^&\s]*")
# ``scheme://user:password@`` and, for a URL whose scheme is missing, ``user:password@`` at the very start. As in
# SQLAlchemy's parser, the user name stops at ``:`` or ``/`` and the password at ``@`` (it may hold ``/`` or ``:``).
_USERINFO_SECRET = re.compile(r"(//[^:/@\s]*):[^@\s]*@")
_BARE_USERINFO_SECRET = re.compile(r"^([^:/@\s]*):(?!//)[^@\s]*@")


def redact_url(url: str) -> str:
    """The URL with its password (in the user-info part or the query) replaced by ``***``."""
    hidden = _BARE_USERINFO_SECRET.sub(r"\1:***@", _USERINFO_SECRET.sub(r"\1:***@", url))
    return _QUERY_SECRET.sub(r"\1=***", hidden)


def url_password(url: str) -> str | None:
    """The password a database URL carries, if any (``None`` for a URL SQLAlchemy cannot parse)."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - an unparsable URL has no password SQLAlchemy could send
        return None
    secret = parsed.password or parsed.query.get("password")
    if isinstance(secret, tuple):
        secret = secret[-1] if secret else None
    return str(secret) if secret else None


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error message) without the URL's password, however it is quoted."""
    cleaned = redact_url(text.replace(url, redact_url(url)))
    secret = url_password(url)
    if not secret:
        return cleaned
    for form in sorted(
        {secret, quote(secret), quote(secret, safe=""), quote_plus(secret)}, key=len
    )[::-1]:
        cleaned = cleaned.replace(form, "***")
    return cleaned
