"""An append-only record of LLM answers, kept beside the predictions they produced.

Why: a zero-shot run over a full test split takes hours on a CPU and spans sessions and machines. The response
cache lives in the user's cache folder and does not travel with the repository, so a run resumed on a fresh
checkout would pay for every answer again. This JSON Lines file is small, diffable and committed with the
predictions: each line holds the request fingerprint (`LLMClient.request_key`), the raw answer, its token
counts and the wall time it took, so a run resumes from it anywhere and its speed and cost stay recorded.

A line cut short by an interrupted write is dropped on load (the file is cut back to its last whole line);
any other damaged line is a one-line error naming FILE:LINE, so nothing already answered is silently lost.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from medsynth.errors import MedsynthError

KEYS = ("key", "answer")


class AnswerJournal:
    """Request fingerprint → recorded answer; every `add` is one flushed line."""

    def __init__(self, path: Path | str, fresh: bool = False):
        self.path = Path(path)
        self._rows: dict[str, dict] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and self.path.exists():
            self.path.unlink()
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        whole = raw if raw.endswith(b"\n") or not raw else raw[: raw.rfind(b"\n") + 1]
        if len(whole) != len(raw):
            with open(self.path, "r+b") as fh:  # an interrupted append: keep every whole line, drop the stub
                fh.truncate(len(whole))
        for lineno, line in enumerate(whole.decode("utf-8", errors="replace").split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise MedsynthError(f"not a JSON line: {err.msg}", where=f"{self.path}:{lineno}") from None
            if not isinstance(row, dict) or any(k not in row for k in KEYS) or not isinstance(row["key"], str):
                raise MedsynthError(f"answer row needs keys {', '.join(KEYS)}", where=f"{self.path}:{lineno}",
                                    value=line[:60])
            self._rows[row["key"]] = row

    def get(self, key: str) -> dict | None:
        return self._rows.get(key)

    def add(self, key: str, record: dict) -> None:
        row = {"key": key, **record}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._rows[key] = row

    def __len__(self) -> int:
        return len(self._rows)
