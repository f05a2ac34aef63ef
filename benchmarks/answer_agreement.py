"""Do recorded zero-shot answers reproduce an earlier run's predictions on the sentences both cover?

    python benchmarks/answer_agreement.py ANSWERS.jsonl EARLIER_PREDICTIONS.jsonl [--task ner] [--dataset bc5cdr-chem]

Why: zero-shot answers are reused across sessions and machines (the answer journal, the response cache) on the
premise that a greedy, seeded request gets the same answer again. This checks the premise on real data: it
rebuilds each recorded answer's request for every test sentence (same prompt and sampling as `bench`), turns the
matching answers into tags with the bench's own aligner and label mapping, and compares them, sentence by
sentence, with the predictions an earlier run (another machine, another day) stored for the same sentences.
Prints a markdown line with the date, machine and command; reads stored files only, calls no LLM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from gen_speed import _cpu  # benchmarks/ is on sys.path when this script runs
from medsynth.data.corpora import ner as corpora
from medsynth.evaluate.scores import entity_scores, read_records
from medsynth.data.jsonl import json_lines
from medsynth.llm.client import LLMClient, LLMConfig
from medsynth.llm.journal import KEYS
from medsynth.spec import get_task
from medsynth.data.tokens import detokenize
from medsynth.evaluate.zeroshot import REQUEST, mentions_from_answer, tags_for, zero_shot_messages, zero_shot_schema


def _line_of(source: str) -> str:
    """"test.tsv:N" from a record's `source`, whose leading data-folder path differs between machines."""
    return source.rsplit("/", 1)[-1]


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("answers", type=Path)
    ap.add_argument("earlier", type=Path)
    ap.add_argument("--task", default="ner")
    ap.add_argument("--dataset", default="bc5cdr-chem")
    args = ap.parse_args(argv)
    task = get_task(args.task)
    meta = json.loads(args.earlier.with_suffix(".meta.json").read_text(encoding="utf-8"))
    # The bench session's client settings (llm_session defaults); only what enters the request key matters.
    client = LLMClient(LLMConfig(base_url="http://127.0.0.1:9", model=meta["model"]))
    # The journal's own line reader, not AnswerJournal: opening that would trim a line a running bench is writing.
    answers = {row["key"]: row["answer"] for _, row in json_lines(args.answers, "answer record", keys=KEYS)}
    test = corpora.load_corpus(args.dataset, "test")
    mapping = corpora.label_mapping(task.label_names, corpora.corpus_labels(test), None)
    earlier = {_line_of(r["source"]): r["pred"] for r in read_records(args.earlier)}
    schema, outcome, gold, now, then = zero_shot_schema(task), Counter(), [], [], []
    for s in test:
        text, toks = detokenize(s.tokens)
        key = client.request_key(zero_shot_messages(task, text), schema=schema, **REQUEST)
        where = _line_of(s.source)
        if key not in answers or where not in earlier:
            continue
        mentions, _ = mentions_from_answer(answers[key], task)
        tags = corpora.map_tags(tags_for(text, toks, mentions, task, Counter()), mapping)
        outcome["same" if tags == earlier[where] else "different"] += 1
        gold.append(s.tags)
        now.append(tags)
        then.append(earlier[where])
    both = outcome["same"] + outcome["different"]
    f1_now, f1_then = (100 * entity_scores(gold, p)["overall"]["f1"] for p in (now, then))
    print(f"{datetime.now(timezone.utc).date().isoformat()} · {_cpu()} ({os.cpu_count()} cores) · "
          f"`python benchmarks/answer_agreement.py {' '.join(argv)}`: {len(answers)} recorded answers; "
          f"{both} sentences also in the earlier predictions; identical tags on {outcome['same']}, "
          f"different on {outcome['different']}; strict F1 on them {f1_now:.1f} (these answers) vs {f1_then:.1f} "
          f"(earlier).")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main(sys.argv[1:])
