"""The run store: one SQLite file per output directory, the single source of truth for a build.

Every finished request is committed in one transaction (its outcome, and the example when kept), in WAL mode,
so a Ctrl-C or SIGKILL loses at most the requests in flight; all exports are derived from here and can be
rebuilt at any time. A run records the options that define it (task version, format, seed, model) and refuses
to mix in examples made differently. An exclusive lock file keeps two processes from writing one run.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections import Counter
from pathlib import Path

from medsynth.errors import LockedError, MedsynthError
from medsynth.records import Example

SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    slot INTEGER PRIMARY KEY, status TEXT NOT NULL, reason TEXT, repairs TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS examples (
    slot INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, norm TEXT NOT NULL UNIQUE, data TEXT NOT NULL);
"""
COLUMNS = {"run": {"key", "value"},
           "attempts": {"slot", "status", "reason", "repairs", "prompt_tokens", "completion_tokens", "created"},
           "examples": {"slot", "id", "norm", "data"}}
# Written into every folder medsynth makes a run or an export in, so `--out` can tell ours (safe to
# rewrite) from a user's folder that merely exists (refused without --force: exports replace hf/, README.md…).
MARKER = ".medsynth"
MARKER_TEXT = "This folder was written by medsynth (a run or an export); medsynth may rewrite it.\n"


def write_marker(folder: Path) -> None:
    path = Path(folder) / MARKER
    if not path.exists():
        path.write_text(MARKER_TEXT, encoding="utf-8")


def is_ours(folder: Path) -> bool:
    """A folder medsynth made: it holds our marker, a run store, or (exports made before the marker existed)
    a dataset card written by medsynth."""
    folder = Path(folder)
    if (folder / MARKER).is_file() or (folder / "store.sqlite").is_file():
        return True
    try:
        with (folder / "README.md").open("rb") as fh:
            return fh.read(64).startswith(b"# medsynth dataset:")
    except OSError:
        return False


def check_out_dir(out: Path, force: bool = False, option: str = "--out") -> None:
    """Refuse, in one line, an output folder we must not write: a file, a path under a file, or an existing
    non-empty folder that is not a medsynth run or export (unless `force`): writing exports there would replace
    the user's hf/, README.md, data.jsonl…"""
    out = Path(out)
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == out else f"is under {parent}, which is a file"
            raise MedsynthError(f"the output folder {where}; choose a folder", where=str(out), field=option)
    if not out.is_dir() or is_ours(out) or force:
        return
    try:
        foreign = next(out.iterdir(), None)
    except OSError as err:
        raise MedsynthError(f"cannot read the output folder ({err.strerror})", where=str(out), field=option) from None
    if foreign is not None:
        raise MedsynthError("the output folder exists and is not a medsynth run (no store.sqlite, no .medsynth "
                            "marker); its hf/, data.jsonl, README.md… would be replaced; pass --force to write "
                            "there anyway, or choose another folder", where=str(out), field=option)


class DirLock:
    """The exclusive `out/.lock` (flock) that keeps two processes from writing one folder: build and export
    both take it. Released on close; the kernel releases it when the process dies."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._file = open(self.folder / ".lock", "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            self._file = None
            raise LockedError(
                "another medsynth process is writing this output directory; wait for it or use another --out",
                where=str(self.folder),
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> "DirLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_sqlite(path: Path, schema: str, what: str) -> sqlite3.Connection:
    """A connection in autocommit + WAL mode with `schema` applied; a damaged file is one error naming it.

    WAL: readers never block the writer, and each committed transaction survives a Ctrl-C or SIGKILL.
    check_same_thread=False: in notebooks the work runs in a worker thread (see aio.run_sync); access stays
    serial."""
    db = None
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
        return db
    except (sqlite3.DatabaseError, RecursionError) as err:
        if db is not None:
            db.close()
        raise MedsynthError(f"{what} is not a readable SQLite database ({err})", where=str(path)) from None


def check_tables(db: sqlite3.Connection, columns: dict[str, set[str]], path: Path, what: str) -> None:
    """Refuse a file whose tables have our names but another layout (another program's database), and one
    with a damaged page, before any query fails halfway with a traceback."""
    try:
        problem = db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise MedsynthError(f"{what} is damaged ({problem}); restore it or use another --out", where=str(path))
        for table, wanted in columns.items():
            have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if not wanted <= have:
                raise MedsynthError(f"{what} has a foreign table layout (table {table!r} lacks "
                                    f"{', '.join(sorted(wanted - have))}); it was not made by medsynth",
                                    where=str(path), field=table)
    except sqlite3.DatabaseError as err:
        raise MedsynthError(f"{what} is damaged ({err}); restore it or use another --out", where=str(path)) from None


class SQLiteFile:
    """Base of the stores kept in one SQLite file (`self.db`): a context manager that closes it."""

    db: sqlite3.Connection | None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "db", None) is not None:
            self.db.close()
            self.db = None


class RunStore(SQLiteFile):
    """SQLite store at `out_dir/store.sqlite`; use as a context manager to hold the directory lock."""

    def __init__(self, out_dir: Path, lock: bool = True):
        self.out_dir = Path(out_dir)
        check_out_dir(self.out_dir, force=True)  # a file where the folder should be: one line, not OSError
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / "store.sqlite"
        self._lock: DirLock | None = None
        self.db = None
        if lock:
            self._lock = DirLock(self.out_dir)
        try:
            self.db = open_sqlite(self.path, SCHEMA, "run store")
            check_tables(self.db, COLUMNS, self.path, "run store")
            if lock:
                write_marker(self.out_dir)
        except MedsynthError:
            self.close()  # release the lock
            raise

    def close(self) -> None:
        super().close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # -- run identity -------------------------------------------------------------------------------------
    def bind(self, identity: dict[str, object]) -> None:
        """Record what defines this run; a later run with different values is refused, not mixed in."""
        rows = dict(self.db.execute("SELECT key, value FROM run").fetchall())
        self.identity()  # a damaged stored value is one line naming it, not a traceback below
        for key, value in identity.items():
            enc = json.dumps(value, sort_keys=True)
            if key in rows and rows[key] != enc and self.count_examples():
                raise MedsynthError(
                    f"this output directory holds a run made with {key}={json.loads(rows[key])!r}; "
                    "use the same options to resume, or another --out",
                    where=str(self.out_dir), field=key, value=value,
                )
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO run(key, value) VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True)) for k, v in identity.items()],
            )

    def identity(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in self.db.execute("SELECT key, value FROM run"):
            try:
                out[key] = json.loads(value)
            except (ValueError, TypeError, RecursionError):
                raise MedsynthError("run identity value is not JSON; the store was edited or not made by medsynth",
                                    where=str(self.path), field=key, value=value) from None
        return out

    # -- writes -------------------------------------------------------------------------------------------
    def record(self, slot: int, *, status: str, reason: str | None, repairs: Counter | dict,
               prompt_tokens: int, completion_tokens: int, example: Example | None = None,
               norm: str | None = None) -> str:
        """Commit one request's outcome atomically. Returns the final status ('kept', 'rejected')."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if example is not None and norm is not None:
                dup = self.db.execute("SELECT 1 FROM examples WHERE norm = ?", (norm,)).fetchone()
                if dup:
                    status, reason, example = "rejected", "duplicate", None
                else:
                    self.db.execute(
                        "INSERT OR REPLACE INTO examples(slot, id, norm, data) VALUES (?, ?, ?, ?)",
                        (slot, example.id, norm, example.model_dump_json()),
                    )
            self.db.execute(
                "INSERT OR REPLACE INTO attempts(slot, status, reason, repairs, prompt_tokens, completion_tokens, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (slot, status, reason, json.dumps(dict(repairs), sort_keys=True), prompt_tokens,
                 completion_tokens, time.time()),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return status

    # -- reads --------------------------------------------------------------------------------------------
    def done_slots(self) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT slot FROM attempts")}

    def count_examples(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM examples").fetchone()[0]

    def examples(self, limit: int | None = None) -> list[Example]:
        """Kept examples in slot order; `limit` gives the first n — exactly what a build of `--n` exports."""
        sql = "SELECT data FROM examples ORDER BY slot" + (" LIMIT ?" if limit is not None else "")
        rows = self.db.execute(sql, (limit,) if limit is not None else ()).fetchall()
        return [Example.model_validate_json(r[0]) for r in rows]

    def totals(self, up_to_slot: int | None = None) -> dict:
        """Cumulative outcome counters over every request this run made (up to a slot, when given)."""
        where, args = ("WHERE slot <= ?", (up_to_slot,)) if up_to_slot is not None else ("", ())
        rows = self.db.execute(
            f"SELECT status, reason, repairs, prompt_tokens, completion_tokens FROM attempts {where}", args
        ).fetchall()
        repairs: Counter = Counter()
        rejections: Counter = Counter()
        out = {"requests": len(rows), "kept": 0, "rejected": 0, "prompt_tokens": 0, "completion_tokens": 0}
        for status, reason, rep, pt, ct in rows:
            out["kept" if status == "kept" else "rejected"] += 1
            if status != "kept":
                rejections[reason or "unknown"] += 1
            repairs.update(json.loads(rep))
            out["prompt_tokens"] += pt
            out["completion_tokens"] += ct
        out["repairs"] = dict(sorted(repairs.items()))
        out["rejections"] = dict(sorted(rejections.items()))
        return out

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
