"""Read a template's text from a path or URL, and resolve an include relative to its includer.

Used by :mod:`infrakit.template.loading` (the file a user names) and by the ``include``
function of :mod:`infrakit.template.engine`. Accepts plain paths, ``file://`` and ``http(s)://``
URLs; reading stdin (``-``) is the caller's business.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.parse
import urllib.request

from infrakit import errors

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_TIMEOUT = 10.0


def is_url(text: str) -> bool:
    return _URL.match(text) is not None


def fetch(url_or_path: str) -> str:
    """The text at ``url_or_path``; ``UsageError`` naming it when it cannot be read."""
    try:
        if not is_url(url_or_path):
            with open(os.path.expanduser(url_or_path), encoding="utf-8") as handle:
                return handle.read()
        parts = urllib.parse.urlsplit(url_or_path)
        if parts.scheme == "file":
            with open(urllib.parse.unquote(parts.path), encoding="utf-8") as handle:
                return handle.read()
        if parts.scheme in ("http", "https"):
            with urllib.request.urlopen(url_or_path, timeout=_TIMEOUT) as response:
                body: bytes = response.read()
                return body.decode(response.headers.get_content_charset() or "utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise errors.UsageError(f"{url_or_path}: cannot read: {_reason(exc)}",
                                source=url_or_path) from None
    raise errors.UsageError(f"{url_or_path}: cannot read: unsupported URL scheme "
                            f"{parts.scheme!r} (use a path, file://, http:// or https://)",
                            source=url_or_path)


def resolve(path: str, *, relative_to: str | None) -> str:
    """Where ``path`` points when written inside the template at ``relative_to``."""
    if is_url(path) or os.path.isabs(path) or relative_to is None:
        return path
    if is_url(relative_to):
        return urllib.parse.urljoin(relative_to, path)
    return os.path.join(os.path.dirname(relative_to), path)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
