"""User-facing errors: one line naming the file, field and value, never a traceback.

Every step raises `MedsynthError` (or a subclass) for problems a user can fix; the CLI prints `str(err)` and
exits with `err.exit_code`. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


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
        super().__init__(f"{prefix}: {text}" if prefix else text)


class UsageError(MedsynthError):
    """Bad command-line arguments."""

    exit_code = 2


class EndpointError(MedsynthError):
    """The LLM endpoint cannot be reached or keeps failing."""

    exit_code = 3


class LockedError(MedsynthError):
    """Another process holds the output directory."""

    exit_code = 4
