"""A persistent LLM response cache in SQLite.

Why: generation runs are long and get interrupted; re-running the same request (same model, messages,
sampling parameters, seed and output format) must not pay for the LLM again, and a resumed run must see the
same answers. SQLite in WAL mode gives atomic writes and lets several threads/processes share one file.

Only what determines the answer goes into the key, and that includes which endpoint answered: the base URL
without credentials (two servers may serve different weights under one model name). A loopback URL counts
without its port, since a local server gets a new port on each start; the API key never goes in, and secrets
must never reach disk. Keys made before the endpoint was part of them simply miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

from medsynth.errors import MedsynthError

_SCHEMA = "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL, created REAL NOT NULL)"
_FORBIDDEN_KEY_FIELDS = {"api_key", "authorization", "headers"}


class ResponseCache:
    """Key → JSON response store. One connection per thread (and per process after fork)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MedsynthError(f"cannot create the response cache folder ({exc.strerror})",
                                where=str(self.path.parent)) from exc
        self._connect()  # fail early, at construction, on a corrupt or unwritable file

    # -- keys ------------------------------------------------------------------------------------------
    @staticmethod
    def key(request: dict) -> str:
        """sha256 of the canonical JSON of everything that determines the answer.

        `request` should hold model, messages, params (temperature, top_p, max_tokens), seed and the
        response-format mode and schema. Secrets are refused so a caller mistake cannot leak them to disk.
        """
        leaked = _FORBIDDEN_KEY_FIELDS & {k.lower() for k in request}
        if leaked:
            raise ValueError(f"cache key request must not contain {sorted(leaked)}")
        canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    # -- access ----------------------------------------------------------------------------------------
    def get(self, key: str) -> dict | None:
        row = self._execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            value = json.loads(row[0])
        except ValueError:
            return None  # a damaged row is a miss; the next put overwrites it
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict) -> None:
        data = json.dumps(value, ensure_ascii=False, sort_keys=True)
        self._execute("INSERT OR REPLACE INTO responses (key, response, created) VALUES (?, ?, ?)",
                      (key, data, time.time()))

    def __len__(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def __contains__(self, key: str) -> bool:
        return self._execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    # -- internals -------------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        try:
            conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 30000")
            with self._lock:  # first-time setup: one thread at a time in this process
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(_SCHEMA)
                columns = {row[1] for row in conn.execute("PRAGMA table_info(responses)")}
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from exc
        if not {"key", "response", "created"} <= columns:
            raise MedsynthError("response cache has an unexpected table layout; delete the file or use another "
                                "cache path", where=str(self.path))
        self._local.conn = conn
        self._local.pid = os.getpid()
        return conn

    def _execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        conn = self._connect()
        try:
            return conn.execute(sql, params)  # autocommit: each statement is its own atomic transaction
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise MedsynthError(f"response cache stayed locked for 30 s ({exc}); is another process "
                                    "writing to it?", where=str(self.path)) from exc
            raise self._unreadable(exc) from exc
        except sqlite3.DatabaseError as exc:
            raise self._unreadable(exc) from exc

    def _unreadable(self, exc: Exception) -> MedsynthError:
        return MedsynthError(f"response cache is unreadable ({exc}); delete it (answers will be requested "
                             "again) or pass another cache path", where=str(self.path))
