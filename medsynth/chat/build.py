"""`build chat`: Baize self-chat dialogues — topic (or seed question) → human/assistant turns → clean → store.

The same contract as `build ner`: request slots 0, 1, 2, … are pure functions of the run seed (cell of the
specialty × setting grid, LLM seeds per step), every finished dialogue is committed to the run store at once
(`medsynth.data.store.RunStore`: one row per slot, the kept dialogue as an `Example` whose meta holds the messages),
so Ctrl-C loses nothing, a re-run makes 0 LLM calls for finished slots and replays in a fresh directory hit the
response cache. Slots run until `n` dialogues are kept; the dataset is the first `n` kept in slot order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from medsynth.hashing import DEFAULT_SEED, prompt_hash as _prompt_hash, short_hash
from medsynth.llm.aio import run_sync
from medsynth.chat import topics as T
from medsynth.chat.transcript import (AI_TAG, HUMAN_TAG, PRIMER, TAGS, CleanResult, Speaker, Turn, clean_turns,
                                      continuation, is_end, render, trim_cut_answer, user_voice_problem)
from medsynth.errors import MedsynthError
from medsynth.llm.client import LLMClient
from medsynth.generate.slots import Outcome, record, run_slots
from medsynth.data.store import RunStore
from medsynth.records import Example

# v2: an answer cut by the token cap is ended at its last full sentence and the dialogue goes on (v1 ended the
# dialogue there and dropped the answer). v3: the topic step also writes the user's first question, and a user
# turn in the assistant's voice is asked again once, then ends the dialogue (v2 kept them: 51 of its 88 user
# turns). Part of the run identity: an older store is not resumed with newer rules.
CHAT_PROMPT_VERSION = "chat.v3"
_FORMAT = (f"This is a transcript of a conversation between a human and an AI medical information assistant. "
           f"Human statements start with {HUMAN_TAG} and assistant statements start with {AI_TAG}.")
IDENTIFIER_RULE = ("Never invent patient identifiers: no names, dates of birth, medical record numbers, phone "
                   "numbers or addresses.")
HUMAN_SYSTEM = (
    f"{_FORMAT} You write the next {HUMAN_TAG} statement only, as the human: {{who}}. The human asks about the "
    "topic one question at a time, in plain everyday words, and follows up on the assistant's last answer. "
    "When the human has no more questions, the human writes only [END]. "
    f"Never write an {AI_TAG} statement. {IDENTIFIER_RULE}"
)
AI_SYSTEM = (
    f"{_FORMAT} You write the next {AI_TAG} statement only, as the assistant: a careful, friendly medical "
    "information assistant. Give accurate general information in a few sentences and say when to see a "
    "clinician or seek emergency care. Decline unsafe requests (dangerous doses, getting prescription drugs "
    "without a prescription, self-harm, harming others, falsifying records) and point to appropriate help "
    f"instead. Do not diagnose with certainty. {IDENTIFIER_RULE} Never write a {HUMAN_TAG} statement."
)
SEED_WHO = "a person looking for medical information"


class ChatConfig(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    n: int = Field(gt=0)
    out: Path
    seed: int = DEFAULT_SEED
    seeds: list[str] | None = None
    max_turns: int = Field(default=6, ge=1, description="user questions per dialogue, each answered")
    temperature: float = 0.8
    max_tokens: int = 256
    max_request_factor: float = Field(default=4.0, gt=1, description="give up after n * factor slots")
    max_endpoint_failures: int = 8
    progress: bool = True


@dataclass
class ChatOutcome(Outcome):
    topic_key: str | None = None  # the proposed topic this slot claimed, given back unless kept


def prompt_hash() -> str:
    """Identifies the prompts: changing any instruction gives a new run identity (and new cache keys)."""
    return _prompt_hash([CHAT_PROMPT_VERSION, T.TOPIC_SYSTEM, T.TOPIC_SCHEMA, HUMAN_SYSTEM, AI_SYSTEM, PRIMER], 12)


def seeds_hash(seeds: list[str] | None) -> str | None:
    return short_hash("\n".join(seeds)) if seeds else None


def turn_messages(topic: str, who: str, turns: list[Turn], speaker: Speaker) -> list[dict]:
    """The transcript so far, ending with the open tag of the speaker who is due (Baize's continuation)."""
    system = HUMAN_SYSTEM.format(who=who) if speaker == "human" else AI_SYSTEM
    user = f"Topic: {topic}\n\n{render(turns)}\n{TAGS[speaker]}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _who(s: T.Slot) -> str:
    return SEED_WHO if s.seed_question is not None else s.setting


def _norm_text(messages: list[dict]) -> str:
    return " ".join(" ".join(m["content"].lower().split()) for m in messages)


def _identifier_problem(messages: list[dict]) -> str | None:
    """An assistant answer that contains something shaped like a patient identifier is refused: the system
    prompt forbids inventing them, and a dataset cannot tell an invented MRN from a leaked one."""
    from medsynth.quality.privacy import scan_text

    for m in messages:
        if m["role"] == "assistant":
            hits = scan_text(m["content"])
            if hits:
                return f"identifier:{hits[0].kind}"
    return None


class ChatBuilder:
    """Runs one chat build against an LLM client; `on_endpoint_failure` may restart a dead local server."""

    def __init__(self, cfg: ChatConfig, client: LLMClient, model_name: str,
                 on_endpoint_failure: Callable[[], bool] | None = None):
        self.cfg = cfg
        self.client = client
        self.model_name = model_name
        self.on_endpoint_failure = on_endpoint_failure
        self.params = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens, "max_turns": cfg.max_turns}
        self.claimed: dict[str, int] = {}  # topic key -> slot, for kept and in-flight dialogues
        self.by_cell: dict[tuple[str, str], list[str]] = {}  # kept topics per grid cell (the avoid list)

    def identity(self) -> dict:
        return {"task": "chat", "kind": "chat", "seed": self.cfg.seed, "model": self.model_name,
                "prompt_hash": prompt_hash(), "params": self.params, "seeds": seeds_hash(self.cfg.seeds)}

    # -- one slot --------------------------------------------------------------------------------------------
    async def _topic(self, s: T.Slot, out: ChatOutcome) -> T.Opening | None:
        """The slot's topic and first question (its seed question, or what the LLM proposes); None when rejected
        or failed."""
        if s.seed_question is not None:
            return T.Opening(s.seed_question, s.seed_question)
        resp = await self.client.complete(
            T.topic_messages(s, self.by_cell.get((s.specialty, s.setting), [])), schema=T.TOPIC_SCHEMA,
            seed=T.llm_seed(self.cfg.seed, s.slot, "topic"), temperature=self.cfg.temperature, max_tokens=64)
        if resp.text is None:
            out.status, out.error = "failed", resp.error or "no response"
            return None
        out.prompt_tokens += resp.prompt_tokens
        out.completion_tokens += resp.completion_tokens
        opening, reason = T.parse_topic(resp.text)
        if opening is None:
            out.status, out.reason = "rejected", reason
            return None
        if opening.question is None:
            out.repairs["no_opening_question"] += 1
        key = T.topic_key(opening.topic)
        if key in self.claimed:
            out.status, out.reason = "rejected", "duplicate_topic"
            return None
        self.claimed[key] = s.slot
        out.topic_key = key
        return opening

    async def _statement(self, s: T.Slot, topic: str, turns: list[Turn], speaker: Speaker, step: str,
                         out: ChatOutcome) -> tuple[str, bool] | None:
        """The next statement for `speaker` and whether the token cap cut it; None when the endpoint failed."""
        resp = await self.client.complete(
            turn_messages(topic, _who(s), turns, speaker), seed=T.llm_seed(self.cfg.seed, s.slot, step),
            temperature=self.cfg.temperature, max_tokens=self.cfg.max_tokens)
        if resp.text is None:
            out.status, out.error = "failed", resp.error or "no response"
            return None
        out.prompt_tokens += resp.prompt_tokens
        out.completion_tokens += resp.completion_tokens
        content, repairs = continuation(resp.text, speaker)
        out.repairs.update(repairs)
        cut = resp.completion_tokens >= self.cfg.max_tokens
        if cut and speaker == "ai" and (trimmed := trim_cut_answer(content)) is not None:
            content, cut = trimmed, False
            out.repairs["trimmed_cut_answer"] += 1
        return content, cut

    async def _user_statement(self, s: T.Slot, topic: str, turns: list[Turn], step: int,
                              out: ChatOutcome) -> tuple[str, bool] | None:
        """The user's next statement, asked once more (another seed) when it reads like the assistant's; after
        that it is returned as is and the cleaner ends the dialogue before it."""
        got = await self._statement(s, topic, turns, "human", f"turn{step}", out)
        if got is None or is_end(got[0]) or user_voice_problem(got[0]) is None:
            return got
        out.repairs["retried_user_turn"] += 1
        return await self._statement(s, topic, turns, "human", f"turn{step}.retry", out)

    async def _dialogue(self, s: T.Slot, opening: T.Opening, out: ChatOutcome) -> tuple[list[Turn], bool] | None:
        """Self-chat from the opening question until the human ends it, the turn cap, a user turn in the
        assistant's voice, or a statement cut by the token cap that cannot be ended at a full sentence (a cut
        answer that can be goes on as the trimmed answer)."""
        turns = [Turn(sp, text) for sp, text in PRIMER]
        asked = 0
        if opening.question is not None:
            turns.append(Turn("human", opening.question))
            asked = 1
        for step in range(2 * self.cfg.max_turns + 1):
            speaker: Speaker = "ai" if turns[-1].speaker == "human" else "human"
            if speaker == "human" and asked >= self.cfg.max_turns:
                return turns, False
            got = (await self._user_statement(s, opening.topic, turns, step, out) if speaker == "human" else
                   await self._statement(s, opening.topic, turns, speaker, f"turn{step}", out))
            if got is None:
                return None
            content, cut = got
            turns.append(Turn(speaker, content))
            if speaker == "human" and user_voice_problem(content) is not None:
                return turns, False  # the cleaner cuts the dialogue here; no more calls for it
            asked += speaker == "human"
            if cut:
                return turns, True
            if not content or (speaker == "human" and is_end(content)):
                return turns, False
        return turns, False

    def _example(self, s: T.Slot, topic: str, cleaned: CleanResult) -> Example:
        messages = cleaned.messages
        return Example(
            id=f"chat-{s.slot:06d}", text=render([Turn("human" if m["role"] == "user" else "ai", m["content"])
                                                  for m in messages]),
            meta={"messages": messages, "topic": topic, "source": s.source, "specialty": s.specialty or None,
                  "setting": s.setting or None, "variant": s.variant, "slot": s.slot, "model": self.model_name,
                  "prompt_hash": prompt_hash(), "params": self.params, "seed": self.cfg.seed,
                  "turns": len(messages), "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})

    async def run_slot(self, slot: int) -> ChatOutcome:
        s = T.slot_for(slot, self.cfg.seed, self.cfg.seeds)
        out = ChatOutcome(slot, "kept")
        opening = await self._topic(s, out)
        if opening is None:
            return out
        result = await self._dialogue(s, opening, out)
        if result is None:
            return self._release(out)
        turns, last_cut = result
        cleaned = clean_turns(turns, last_cut=last_cut, trust_opening=s.seed_question is not None)
        out.repairs.update(cleaned.repairs)
        reason = cleaned.reason or _identifier_problem(cleaned.messages)
        if reason is not None:
            out.status, out.reason = "rejected", reason
            return self._release(out)
        out.example = self._example(s, opening.topic, cleaned)
        out.norm = _norm_text(cleaned.messages)
        return out

    def _release(self, out: ChatOutcome) -> ChatOutcome:
        """A dialogue that was not kept gives its topic back, so a later slot may still use it."""
        if out.topic_key is not None and self.claimed.get(out.topic_key) == out.slot:
            del self.claimed[out.topic_key]
        return out

    # -- the loop --------------------------------------------------------------------------------------------
    def _load_claims(self, store: RunStore) -> None:
        for ex in store.examples():
            if ex.meta.get("source") == "proposed":
                self.claimed[T.topic_key(ex.meta["topic"])] = int(ex.meta["slot"])
                cell = (ex.meta.get("specialty") or "", ex.meta.get("setting") or "")
                self.by_cell.setdefault(cell, []).append(ex.meta["topic"])

    def _commit(self, store: RunStore, out: ChatOutcome) -> str:
        status = record(store, out)
        if status == "kept" and out.example is not None:
            meta = out.example.meta
            if meta["source"] == "proposed":
                self.by_cell.setdefault((meta["specialty"], meta["setting"]), []).append(meta["topic"])
        else:
            self._release(out)
        return status

    async def run(self, store: RunStore) -> dict:
        t0 = time.monotonic()
        self._load_claims(store)
        return await run_slots(self.cfg, self.client, store, self.run_slot, desc="build chat", unit="dlg",
                               noun="dialogues", on_endpoint_failure=self.on_endpoint_failure,
                               commit=lambda out: self._commit(store, out), on_failed=self._release, t0=t0)


# ---------------------------------------------------------------------------------------------------------------
# entry points


def finish(store: RunStore, cfg: ChatConfig, identity: dict, run_info: dict, llm_stats: dict) -> dict:
    """Export the first n kept dialogues and write stats.json; returns the stats."""
    from medsynth.chat.export import export_chat

    examples = store.examples(limit=cfg.n)
    last_slot = int(examples[-1].meta["slot"]) if len(examples) == cfg.n else None
    totals = store.totals(up_to_slot=last_slot)
    stats = {
        "kind": "chat", "model": identity.get("model"), "requested": cfg.n, "kept": len(examples),
        "rejected": totals["rejected"], "requests": totals["requests"],
        "llm_calls": llm_stats.get("llm_calls", 0), "cache_hits": llm_stats.get("cache_hits", 0),
        "retries": llm_stats.get("retries", 0), "prompt_tokens": totals["prompt_tokens"],
        "completion_tokens": totals["completion_tokens"], "seconds": run_info.get("seconds", 0.0),
        "repairs": totals["repairs"], "rejections": totals["rejections"], "this_run": {**llm_stats, **run_info},
        "notes": "llm_calls, cache_hits, retries, seconds and this_run describe this invocation; the other "
                 "counters cover every slot that produced this dataset (cumulative over resumes). A slot "
                 "(`requests`) is one dialogue attempt of several LLM calls.",
    }
    export_chat(cfg.out, examples, identity, totals, stats)
    return stats


def already_built(cfg: ChatConfig) -> bool:
    """True when `cfg.out` already holds n kept dialogues made with these options: exports can be rewritten
    without starting any LLM."""
    if not (cfg.out / "store.sqlite").exists():
        return False
    with RunStore(cfg.out) as store:
        ident = store.identity()
        same = (ident.get("kind"), ident.get("seed"), ident.get("seeds"), ident.get("prompt_hash"),
                (ident.get("params") or {}).get("max_turns")) == (
            "chat", cfg.seed, seeds_hash(cfg.seeds), prompt_hash(), cfg.max_turns)
        return same and store.count_examples() >= cfg.n


def export_existing(cfg: ChatConfig) -> dict:
    """Rewrite the exports of a finished run (0 LLM calls)."""
    with RunStore(cfg.out) as store:
        return finish(store, cfg, store.identity(), {"seconds": 0.0}, {"llm_calls": 0, "cache_hits": 0})


def run_chat_build(cfg: ChatConfig, client: LLMClient, model_name: str,
                   on_endpoint_failure: Callable[[], bool] | None = None) -> dict:
    """Build (or resume) `cfg.out` and export it. Exports are written even when the run stops early."""
    builder = ChatBuilder(cfg, client, model_name, on_endpoint_failure)
    identity = builder.identity()
    with RunStore(cfg.out) as store:
        store.bind(identity)
        run_info: dict = {}
        try:
            run_info = run_sync(builder.run(store))
        finally:
            stats = finish(store, cfg, identity, run_info, client.stats.as_dict())
    if stats["kept"] < cfg.n:
        raise MedsynthError(
            f"kept {stats['kept']} of {cfg.n} dialogues after {stats['requests']} attempts (stopped: "
            f"{run_info.get('stopped')}); see {cfg.out / 'stats.json'} for rejection reasons", where=str(cfg.out))
    return stats
