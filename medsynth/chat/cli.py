"""`python -m medsynth build chat`: options → ChatConfig → build (or re-export), one printed summary line."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_command(args: argparse.Namespace) -> int:
    """Run `build chat`; bad seeds files fail before any LLM is started."""
    from medsynth.chat.build import ChatConfig, already_built, export_existing, run_chat_build
    from medsynth.chat.topics import read_seeds
    from medsynth.cli import _session

    seeds = read_seeds(args.seeds) if getattr(args, "seeds", None) else None
    out = Path(args.out or "runs/chat")
    cfg = ChatConfig(n=args.n, out=out, seed=args.seed, seeds=seeds, max_turns=args.max_turns,
                     temperature=args.temperature, max_tokens=args.max_tokens, progress=not args.no_progress)
    out.mkdir(parents=True, exist_ok=True)
    if already_built(cfg) and args.base_url is None:
        stats = export_existing(cfg)  # nothing to generate: no need to start the local LLM at all
    else:
        with _session(args, log_dir=out) as session:
            stats = run_chat_build(cfg, session.client, session.model_name, session.restart)
    print(f"kept {stats['kept']}/{stats['requested']} dialogues in {out} ({stats['rejected']} rejected; "
          f"{stats['llm_calls']} LLM calls, {stats['cache_hits']} cache hits)")
    return 0
