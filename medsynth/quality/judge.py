"""LLM-as-judge: the LLM scores each example's annotation against the task's guidelines (1–5 with a reason).

Why: the builder checks that every label sits on its span, but not that the label is *right* — the generator
may tag "fever" as a Disease where the guidelines say symptoms are not, or miss a mention it wrote itself. A
second pass in which the model reviews its own output against the definitions (Baize's "coach", the quality-
control stage of Cao's review) catches some of that; training can then drop or down-weight low scores
(`weights_from_scores`).

A judgement is one schema'd call through the same `LLMClient` (cache, retries, structured-output negotiation)
with temperature 0. Parsing never raises: no answer, prose, invalid JSON, a score outside 1–5 or a non-integer
score is counted as `judge:unparsable` with score None.

Judgements live in RUN_DIR/judge.sqlite (a file of its own rather than a table in store.sqlite: judging is an
optional pass that may run while `build` still writes the store, and on exported subsets that have no store),
keyed by (example id, judge model, prompt hash) — re-running judges nothing twice, and a new prompt or judge
model gets fresh scores next to the old ones. Answers that parse or fail to parse are both stored (temperature
0 would repeat them); requests that got no answer at all (endpoint errors) are not, so a re-run retries them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from medsynth.hashing import prompt_hash as _prompt_hash
from medsynth.llm.aio import run_sync
from medsynth.errors import MedsynthError
from medsynth.llm.client import LLMClient
from medsynth.generate.parse import load_json_object
from medsynth.quality.runs import load_run_examples, merge_quality_json
from medsynth.spec import TaskSpec, task_brief
from medsynth.data.store import SQLiteFile, open_sqlite
from medsynth.records import Example

JUDGE_VERSION = 2  # bump when the instructions below change meaning (it is part of the prompt hash anyway)
JUDGE_FILE = "judge.sqlite"
JUDGE_MAX_TOKENS = 150
SCORES = (1, 2, 3, 4, 5)
MAX_REASON = 300
UNPARSABLE = "judge:unparsable"

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "enum": list(SCORES)},
        "reason": {"type": "string", "maxLength": 200},
    },
    "required": ["score", "reason"],
}

RUBRIC = """Score the annotation from 1 to 5:
5 = every mention of the entity types is annotated, with the right label and exact boundaries, and nothing else is annotated.
4 = one minor problem (a slightly wrong boundary, or one borderline case).
3 = one clear error (a missed mention, a wrong label, or a non-entity annotated).
2 = several errors.
1 = the annotation is mostly wrong, or the text is not a usable sentence (garbled, not medical, contains markup).
A sentence that names no entity of these types is a valid example: its empty annotation scores 5."""

USER_TEMPLATE = "Sentence: {text}\nAnnotation: {annotation}"

SQL = """
CREATE TABLE IF NOT EXISTS judgements (
    example_id TEXT NOT NULL, model TEXT NOT NULL, prompt_hash TEXT NOT NULL,
    score INTEGER, reason TEXT, error TEXT,
    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (example_id, model, prompt_hash));
"""


# -- prompt ---------------------------------------------------------------------------------------------------
def system_message(task: TaskSpec) -> str:
    """Instructions: labels with definitions and examples, the task's guidelines, the rubric, the answer form."""
    lines = ["You review annotations of biomedical text for a named entity dataset.", *task_brief(task, examples=5)]
    lines += [RUBRIC, 'Answer with JSON only: {"score": <1-5>, "reason": "<one short sentence>"}.']
    return "\n".join(lines)


def annotation_json(example: Example) -> str:
    ann: dict = {"entities": [{"text": e.text, "label": e.label} for e in example.entities]}
    if example.relations:
        ann["relations"] = [{"head": example.entities[r.head].text, "tail": example.entities[r.tail].text,
                             "label": r.label} for r in example.relations
                            if r.head < len(example.entities) and r.tail < len(example.entities)]
    return json.dumps(ann, ensure_ascii=False)


def judge_messages(task: TaskSpec, example: Example) -> list[dict]:
    return [{"role": "system", "content": system_message(task)},
            {"role": "user", "content": USER_TEMPLATE.format(text=example.text, annotation=annotation_json(example))}]


def prompt_hash(task: TaskSpec) -> str:
    """Identifies what the judge was asked: a changed guideline, rubric or schema means new judgements."""
    return _prompt_hash({"v": JUDGE_VERSION, "system": system_message(task), "user": USER_TEMPLATE,
                         "schema": JUDGE_SCHEMA}, sort_keys=True)


# -- parsing --------------------------------------------------------------------------------------------------
def parse_judgement(raw: str | None) -> tuple[int | None, str | None, str | None]:
    """(score, reason, error): score is an integer 1–5 or None with a one-word error; never raises."""
    obj, error, _ = load_json_object(raw)
    if obj is None:
        return None, None, error
    score = obj.get("score")
    reason = obj.get("reason")
    reason = str(reason)[:MAX_REASON] if reason is not None else None
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        return None, reason, "missing_score" if score is None else "non_integer_score"
    if isinstance(score, float):
        if not score.is_integer():
            return None, reason, "non_integer_score"
        score = int(score)
    if score not in SCORES:
        return None, reason, "score_out_of_range"
    return score, reason, None


# -- storage --------------------------------------------------------------------------------------------------
class JudgeStore(SQLiteFile):
    """RUN_DIR/judge.sqlite in WAL mode (like the run store): readers never block the judge, and each
    judgement is committed on its own, so an interrupted judge keeps everything already scored."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / JUDGE_FILE
        self.db = open_sqlite(self.path, SQL, "judge store")

    def rows(self, model: str | None = None, phash: str | None = None) -> list[tuple]:
        """(example_id, model, prompt_hash, score, reason, error, prompt_tokens, completion_tokens, created)."""
        sql, args = "SELECT * FROM judgements WHERE 1=1", []
        if model is not None:
            sql, args = sql + " AND model = ?", args + [model]
        if phash is not None:
            sql, args = sql + " AND prompt_hash = ?", args + [phash]
        return self.db.execute(sql + " ORDER BY created, example_id", args).fetchall()

    def put(self, example_id: str, model: str, phash: str, score: int | None, reason: str | None,
            error: str | None, prompt_tokens: int, completion_tokens: int) -> None:
        # Autocommit mode: this single statement is its own transaction, committed before the next call.
        self.db.execute("INSERT OR REPLACE INTO judgements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (example_id, model, phash, score, reason, error, prompt_tokens, completion_tokens,
                         time.time()))


# -- the run --------------------------------------------------------------------------------------------------
async def _judge_async(client: LLMClient, task: TaskSpec, todo: Sequence[Example], store: JudgeStore, model: str,
                       phash: str, max_tokens: int, progress: bool) -> tuple[dict[str, tuple], Counter, dict]:
    """Judge `todo`; returns {id: (score, error)}, counters and this run's token use."""
    results: dict[str, tuple] = {}
    counters: Counter = Counter()
    tokens = {"prompt": 0, "completion": 0}
    bar = tqdm(total=len(todo), desc="judge", unit="ex", disable=not progress, dynamic_ncols=True)

    async def one(ex: Example) -> None:
        resp = await client.complete(judge_messages(task, ex), schema=JUDGE_SCHEMA, seed=0, temperature=0.0,
                                     max_tokens=max_tokens)
        score, reason, error = parse_judgement(resp.text)
        if resp.text is None:
            error = "no_response"
        else:  # an answer, parsable or not, is kept: asking again at temperature 0 would repeat it
            store.put(ex.id, model, phash, score, reason, error, resp.prompt_tokens, resp.completion_tokens)
            if not resp.cached:
                tokens["prompt"] += resp.prompt_tokens
                tokens["completion"] += resp.completion_tokens
        if error:
            counters[UNPARSABLE] += 1
            counters[f"{UNPARSABLE}:{error}"] += 1
        results[ex.id] = (score, error)
        bar.update(1)

    try:
        await asyncio.gather(*(one(ex) for ex in todo))
    finally:
        bar.close()
    return results, counters, tokens


def _summarise(results: dict[str, tuple], counters: Counter) -> dict:
    scores = [s for s, _ in results.values() if s is not None]
    hist = Counter(scores)
    return {
        "examples": len(results),
        "scored": len(scores),
        "unparsable": sum(1 for s, _ in results.values() if s is None),
        "score_histogram": {str(k): hist.get(k, 0) for k in SCORES},
        "mean": round(sum(scores) / len(scores), 3) if scores else None,
        "counters": dict(sorted(counters.items())),
    }


def judge_examples(examples: Sequence[Example], client: LLMClient, task: TaskSpec, run_dir: str | Path,
                   progress: bool = True, max_tokens: int = JUDGE_MAX_TOKENS) -> dict:
    """Judge the examples not yet judged by this model and prompt; summary over all of `examples`."""
    model, phash = client.config.model, prompt_hash(task)
    t0 = time.monotonic()
    calls0, hits0 = client.stats.llm_calls, client.stats.cache_hits
    with JudgeStore(run_dir) as store:
        stored = {r[0]: r for r in store.rows(model, phash)}
        todo = [ex for ex in examples if ex.id not in stored]
        new, counters, tokens = run_sync(_judge_async(client, task, todo, store, model, phash, max_tokens, progress))
    results: dict[str, tuple] = {}
    for ex in examples:
        if ex.id in new:
            results[ex.id] = new[ex.id]
        else:
            row = stored[ex.id]
            results[ex.id] = (row[3], row[5])
            if row[3] is None:
                counters[UNPARSABLE] += 1
                counters[f"{UNPARSABLE}:{row[5]}"] += 1
    stored_tokens = {"prompt": sum(r[6] for r in stored.values()), "completion": sum(r[7] for r in stored.values())}
    return {
        "model": model, "prompt_hash": phash, **_summarise(results, counters),
        "judged_now": len(todo), "from_store": len(examples) - len(todo),
        "llm_calls": client.stats.llm_calls - calls0, "cache_hits": client.stats.cache_hits - hits0,
        "tokens": {"this_run": tokens,
                   "total": {k: stored_tokens[k] + tokens[k] for k in ("prompt", "completion")}},
        "seconds": round(time.monotonic() - t0, 2),
    }


def judge_run(run_dir: str | Path, client: LLMClient, task: TaskSpec, progress: bool = True,
              max_tokens: int = JUDGE_MAX_TOKENS, limit: int | None = None) -> dict:
    """Judge every exported example of a run (or its first `limit` kept examples, e.g. before `export --n`);
    store scores in judge.sqlite and the summary in quality.json."""
    summary = judge_examples(load_run_examples(run_dir, limit), client, task, run_dir, progress, max_tokens)
    merge_quality_json(run_dir, "judge", summary)
    return summary


def load_scores(run_dir: str | Path, model: str | None = None, prompt_hash: str | None = None) -> dict[str, int]:
    """{example id: score} of the run's judgements (unparsable ones left out). When several judges or prompts
    scored an example, the latest judgement wins unless `model` / `prompt_hash` pick one."""
    if not (Path(run_dir) / JUDGE_FILE).is_file():
        return {}
    with JudgeStore(run_dir) as store:
        rows = store.rows(model, prompt_hash)
    scores: dict[str, int] = {}
    for row in rows:  # ordered by time: later rows overwrite earlier ones
        if row[3] is not None:
            scores[row[0]] = int(row[3])
        else:
            scores.pop(row[0], None)
    return scores


def weights_from_scores(scores: dict[str, int | None], mode: str = "threshold", threshold: int = 3,
                        ids: Sequence[str] | None = None, missing: float = 1.0) -> dict[str, float]:
    """Per-example training weights: `threshold` gives 1.0 to scores >= threshold and 0.0 below; `weight`
    gives score/5. Examples without a usable score (listed in `ids` or scored None) get `missing` (default
    1.0: a judge failure is no evidence against the example)."""
    if mode not in ("threshold", "weight"):
        raise MedsynthError("weight mode must be 'threshold' or 'weight'", field="mode", value=mode)
    keys = list(ids) if ids is not None else list(scores)
    out = {}
    for key in keys:
        s = scores.get(key)
        if s is None:
            out[key] = float(missing)
        elif mode == "threshold":
            out[key] = 1.0 if s >= threshold else 0.0
        else:
            out[key] = round(s / 5.0, 4)
    return out
