"""`python -m medsynth build chat`: options → ChatConfig → build (or re-export), one printed summary line."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_command(args: argparse.Namespace) -> int:
    """Run `build chat`; bad seeds files fail before any LLM is started."""
    from medsynth.chat.build import ChatConfig, already_built, export_existing, run_chat_build
    from medsynth.chat.topics import read_seeds
    from medsynth.cli.main import generate_or_export

    seeds = read_seeds(args.seeds) if getattr(args, "seeds", None) else None
    out = Path(args.out or "runs/chat")
    cfg = ChatConfig(n=args.n, out=out, seed=args.seed, seeds=seeds, max_turns=args.max_turns,
                     temperature=args.temperature, max_tokens=args.max_tokens, progress=not args.no_progress)
    stats = generate_or_export(args, out, cfg, already_built, export_existing, run_chat_build)
    print(f"kept {stats['kept']}/{stats['requested']} dialogues in {out} ({stats['rejected']} rejected; "
          f"{stats['llm_calls']} LLM calls, {stats['cache_hits']} cache hits)")
    return 0
