"""`python -m medsynth cache [--clear]`: where the user caches are, how big, and removing them.

Two caches grow outside any run folder: the joined Qwen GGUF (`llm.embedded.default_model_dir`, ~1 GB, rebuilt
from the installed part packages on the next start) and the response cache (`llm.session.default_cache_path`,
every LLM answer; clearing it means the next build asks the LLM again). Run folders keep their own answers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cache_files() -> dict[str, list[Path]]:
    """{what: existing files} for the joined model(s) and the response cache (with its SQLite side files)."""
    from medsynth.llm.embedded import default_model_dir
    from medsynth.llm.session import default_cache_path

    models = default_model_dir()
    responses = default_cache_path()
    joined = sorted(p for p in models.glob("*") if p.is_file()) if models.is_dir() else []
    answers = [p for p in (responses, *(responses.with_name(responses.name + s) for s in ("-wal", "-shm", "-journal")))
               if p.is_file()]
    return {f"joined model ({models})": joined, f"response cache ({responses})": answers}


def human(n: int) -> str:
    """Bytes as a short size: 0 B, 12.3 KB, 1.2 GB."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def cmd_cache(args: argparse.Namespace) -> int:
    caches = cache_files()
    if not args.clear:
        for what, files in caches.items():
            print(f"{what}: {human(sum(f.stat().st_size for f in files))} in {len(files)} files")
        return 0
    freed = 0
    for files in caches.values():
        for f in files:
            freed += f.stat().st_size
            f.unlink(missing_ok=True)
    print(f"freed {human(freed)} (joined model and response cache; the model is joined again on next use)")
    return 0


def add_command(sub: Any) -> None:
    """Add `cache` to the `python -m medsynth` subparsers."""
    c = sub.add_parser("cache", help="show where the model and response caches are and their sizes; --clear removes them")
    c.add_argument("--clear", action="store_true",
                   help="delete the joined model and the response cache, printing how much that freed")
    c.set_defaults(func=cmd_cache)
