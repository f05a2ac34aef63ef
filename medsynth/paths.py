"""Paths as metadata records them.

Why: a predictions file's `.meta.json` and a model's `train_log.json` are committed and read on other machines;
an absolute path (`/home/alice/project/runs/x`) says where one person's checkout was, not what the file names.
Paths under the working directory are therefore recorded relative to it; others stay as given.
"""

from __future__ import annotations

from pathlib import Path


def portable(path: str | Path) -> str:
    """`path` relative to the working directory when it lies under it (POSIX separators), else unchanged."""
    p = Path(path)
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix() if p.is_absolute() else p.as_posix()
    except ValueError:
        return str(path)
