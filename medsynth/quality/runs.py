"""Reading a built run directory and merging numbers into its `quality.json`, shared by the quality controls.

Quality controls read the examples a run *exported* (`data.jsonl`: exactly what trains), falling back to the
run store when only `store.sqlite` is there, and never take the run's directory lock: a control may look at a
run while `build` is still writing it (SQLite WAL gives readers a consistent snapshot).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from medsynth.errors import MedsynthError
from medsynth.records import Example

QUALITY_FILE = "quality.json"


def read_examples_jsonl(path: Path) -> list[Example]:
    """Examples from a JSONL file; a bad line is one MedsynthError naming the file and line."""
    examples = []
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as err:
        raise MedsynthError(f"not UTF-8 text (byte {err.start})", where=str(path)) from None
    except OSError as err:
        raise MedsynthError(f"cannot read file ({err.strerror or err})", where=str(path)) from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            examples.append(Example.model_validate_json(line))
        except ValueError as err:
            first = str(err).splitlines()[0]
            raise MedsynthError(f"not a medsynth example ({first})", where=f"{path}:{lineno}") from None
    return examples


def load_run_examples(run_dir: str | Path, limit: int | None = None) -> list[Example]:
    """The run's exported examples (data.jsonl), else every kept example in its store. With `limit`, the first
    `limit` kept examples of the store (what `export --n limit` starts from), else of data.jsonl."""
    run = Path(run_dir)
    has_store = (run / "store.sqlite").is_file()
    if (run / "data.jsonl").is_file() and not (limit is not None and has_store):
        return read_examples_jsonl(run / "data.jsonl")[:limit]
    if has_store:
        from medsynth.data.store import RunStore

        with RunStore(run, lock=False) as store:
            return store.examples(limit=limit)
    raise MedsynthError("not a medsynth run (no data.jsonl or store.sqlite)", where=str(run))


def run_stats(run_dir: str | Path) -> dict:
    """A run's stats.json as a dict; {} when it is missing or unreadable (a folder of exports only, say)."""
    try:
        stats = json.loads((Path(run_dir) / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stats if isinstance(stats, dict) else {}


def run_task_name(run_dir: str | Path, stats: dict | None = None) -> str | None:
    """The versioned task name a run was built with (stats.json, else the store's identity), e.g. `ner.v1`.
    `stats`: the run's stats.json when the caller has already read it."""
    run = Path(run_dir)
    name = (run_stats(run) if stats is None else stats).get("task")
    if not name and (run / "store.sqlite").is_file():
        from medsynth.data.store import RunStore

        with RunStore(run, lock=False) as store:
            name = store.identity().get("task")
    return str(name) if name else None


def run_task(run_dir: str | Path, name: str | None = None, task_file: str | Path | None = None):
    """The TaskSpec to judge a run against: `--task-file`, `--task`, else the run's own task — at the exact
    version that built it when that version is still shipped, else the latest version of the same task."""
    from medsynth.errors import UsageError
    from medsynth.spec import get_task

    if task_file or name:
        return get_task(name, task_file)
    found = run_task_name(run_dir)
    if not found:
        raise UsageError("cannot tell which task built this run (no stats.json task); pass --task", where=str(run_dir))
    try:
        return get_task(found)
    except MedsynthError:
        return get_task(re.sub(r"\.v\d+$", "", found))


def merge_quality_json(run_dir: str | Path, key: str, value: Any) -> Path:
    """Set `key` in RUN_DIR/quality.json, keeping every other key (several controls share the file)."""
    path = Path(run_dir) / QUALITY_FILE
    data: dict = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            data = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            data = {}
    data[key] = value
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
