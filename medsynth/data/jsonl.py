"""UTF-8 text and JSON Lines files with one-line FILE:LINE errors, shared by every reader and writer of them.

Readers split on "\\n" only (as `corpora.read_iob` does) so line numbers match what an editor shows; writers go
through a temporary file so a half-written file is never left behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from medsynth.errors import MedsynthError


def decode_utf8(path: str | Path, raw: bytes, bom: bool = False) -> str:
    """`raw` as UTF-8 (with `bom`, a leading byte-order mark is dropped); bad bytes are one error naming
    FILE:LINE and the bytes."""
    try:
        return raw.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise MedsynthError(f"not UTF-8 text (byte {err.start})", where=f"{path}:{line}",
                            value=raw[err.start : err.end]) from None


def read_utf8(path: str | Path, what: str = "file", bom: bool = False) -> str:
    """The whole text of a UTF-8 file (with `bom`, a leading byte-order mark dropped); missing, unreadable or not
    UTF-8 is one error naming `what` / FILE:LINE."""
    p = Path(path)
    if not p.is_file():
        raise MedsynthError(f"{what} not found", where=str(p))
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise MedsynthError(f"cannot read {what} ({err.strerror or type(err).__name__})", where=str(p)) from None
    return decode_utf8(p, raw, bom=bom)


def json_lines(path: str | Path, what: str = "file", keys: tuple[str, ...] = ()) -> Iterator[tuple[str, dict]]:
    """(FILE:LINE, row) for every non-blank line of a JSON Lines file. A line that is not JSON, or (with `keys`)
    not an object holding every key, is one error naming FILE:LINE."""
    path = Path(path)
    for lineno, line in enumerate(read_utf8(path, what).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise MedsynthError(f"not a JSON line: {err.msg}", where=where) from None
        if keys and (not isinstance(row, dict) or any(k not in row for k in keys)):
            raise MedsynthError(f"row needs keys {', '.join(keys)}", where=where, value=str(row)[:60])
        yield where, row


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Store rows as JSON Lines (one object per line, greppable and diffable), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)  # never leave a half-written file behind
    return path


def read_jsonl(path: str | Path, what: str = "file", keys: tuple[str, ...] = ()) -> list[dict]:
    """Every row of a JSON Lines file (see `json_lines` for the checks)."""
    return [row for _, row in json_lines(path, what, keys)]
