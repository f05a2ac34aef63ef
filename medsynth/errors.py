"""User-facing errors: one line naming the file, field and value, never a traceback.

Every step raises `MedsynthError` (or a subclass) for problems a user can fix; the CLI prints `str(err)` and
exits with `err.exit_code`. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlsplit

# Credentials seen in this process (API keys, URL passwords, their Basic-auth form): masked in every message.
_SECRETS: set[str] = set()
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s:@]*:[^/\s@]*@")
_AUTH_HEADER = re.compile(r"(?i)\b(basic|bearer)(\s+)[A-Za-z0-9._~+/=\-]{8,}")
MASK = "[masked]"


def register_secret(secret: str | None) -> None:
    """Remember a credential so `mask_secrets` blanks it wherever it shows up (a server may echo it back).
    Very short values are ignored: masking a 1-letter dummy key would blank out every such letter."""
    if secret and len(secret) >= 4:
        _SECRETS.add(secret)


def register_url_credentials(url: str) -> None:
    """Register the user:password of `url` (and their Basic-auth encoding) as secrets."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.password:
        register_secret(parts.password)
        register_secret(unquote(parts.password))
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password)}".encode()
        register_secret(base64.b64encode(pair).decode())


def strip_credentials(url: str) -> str:
    """`url` without its user:password part (for messages and cache keys)."""
    return _URL_CREDENTIALS.sub(r"\1", url)


def mask_secrets(text: str) -> str:
    """The one masking helper every error path uses: URL credentials, Authorization header values and every
    registered secret are replaced by [masked]."""
    text = _URL_CREDENTIALS.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class MedsynthError(Exception):
    """A problem the user can fix. `str()` is the single line shown to them."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None, value: object = None):
        parts = []
        if where:
            parts.append(str(where))
        if field:
            parts.append(f"field {field!r}")
        if value is not None:
            shown = repr(value)
            parts.append(f"value {shown[:80] + '…' if len(shown) > 80 else shown}")
        prefix = ": ".join([", ".join(parts)]) if parts else ""
        text = " ".join(message.split())  # one line, always
        super().__init__(mask_secrets(f"{prefix}: {text}" if prefix else text))


class UsageError(MedsynthError):
    """Bad command-line arguments."""

    exit_code = 2


class EndpointError(MedsynthError):
    """The LLM endpoint cannot be reached or keeps failing."""

    exit_code = 3


class LockedError(MedsynthError):
    """Another process holds the output directory."""

    exit_code = 4
