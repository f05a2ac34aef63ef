"""Audit a chat corpus for user-role drift: user turns that read like the assistant wrote them.

    python benchmarks/chat_audit.py NAME=PATH/data.jsonl [NAME=PATH/data.jsonl ...]

Applies the cleaner's own rule (`medsynth.chat.transcript.user_voice_problem`) to every user message of each
corpus (one dialogue per line with a `messages` list, as `build chat` writes it, or any chat-format jsonl), and
writes benchmarks/results/chat-audit.md / .json with the date, machine and command. It measures what a rule
sees, not what a reader would judge: a drifted turn the phrases miss is not counted (see the README for the
hand-read examples).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from gen_speed import _cpu  # benchmarks/ is on sys.path when this script runs
from medsynth.chat.transcript import user_voice_problem

RESULTS = Path(__file__).resolve().parent / "results"


def audit(path: Path) -> dict:
    """Counts of user turns, flagged user turns by reason, and dialogues with at least one flagged turn."""
    dialogues = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    reasons: Counter = Counter()
    user_turns = flagged_dialogues = opening_flagged = questions = 0
    for d in dialogues:
        users = [m["content"] for m in d["messages"] if m["role"] == "user"]
        problems = [user_voice_problem(u) for u in users]
        user_turns += len(users)
        questions += sum(u.rstrip().endswith("?") for u in users)
        reasons.update(p for p in problems if p)
        flagged_dialogues += any(problems)
        opening_flagged += bool(problems and problems[0])
    flagged = sum(reasons.values())
    return {"path": str(path), "dialogues": len(dialogues), "user_turns": user_turns, "flagged_user_turns": flagged,
            "flagged_share": round(flagged / user_turns, 3) if user_turns else 0.0, "by_reason": dict(reasons),
            "dialogues_with_flagged_turn": flagged_dialogues, "flagged_opening_turns": opening_flagged,
            "user_turns_ending_with_question_mark": questions}


def main(args: list[str]) -> None:
    if not args or any("=" not in a for a in args):
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    rows = {name: audit(Path(p)) for name, p in (a.split("=", 1) for a in args)}
    meta = {"date": datetime.now(timezone.utc).date().isoformat(), "machine": f"{_cpu()} ({os.cpu_count()} cores)",
            "command": "python benchmarks/chat_audit.py " + " ".join(args)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chat-audit.json").write_text(json.dumps({**meta, "corpora": rows}, indent=2) + "\n")
    lines = ["# Chat corpus audit: user turns in the assistant's voice", "",
             f"Date {meta['date']}; machine {meta['machine']}; command `{meta['command']}`. Rule: "
             "`medsynth.chat.transcript.user_voice_problem` (`assistant_voice`: a phrase only the assistant says; "
             "`statement`: over 120 characters with no question or request).", "",
             "| corpus | dialogues | user turns | flagged | share | assistant_voice | statement | dialogues "
             "affected | flagged first turns | user turns ending in ? |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['dialogues']} | {r['user_turns']} | {r['flagged_user_turns']} | "
                     f"{100 * r['flagged_share']:.0f} % | {r['by_reason'].get('assistant_voice', 0)} | "
                     f"{r['by_reason'].get('statement', 0)} | {r['dialogues_with_flagged_turn']} | "
                     f"{r['flagged_opening_turns']} | {r['user_turns_ending_with_question_mark']} |")
    (RESULTS / "chat-audit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
