"""Baize self-chat transcripts: the template the LLM continues turn by turn, and the cleaner.

Baize (Xu et al. 2023) makes one chat model play both sides of a conversation: a transcript in which human
statements start with `[|Human|]` and assistant statements with `[|AI|]` is handed back to the model, which
writes the next statement for whichever speaker is due. The transcript is primed with a fixed greeting so the
model sees the format before the topic; that greeting is not data and the cleaner drops it.

Small models break the format in a handful of recurring ways — they keep talking for the other side, leak role
tags into the text, repeat themselves, stop mid-sentence at the token cap — so every transcript goes through
`clean_transcript`, which either returns user/assistant messages or one counted rejection reason. Nothing here
calls an LLM, so every rule is unit-tested on hand-written transcripts.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Speaker = Literal["human", "ai"]

HUMAN_TAG = "[|Human|]"
AI_TAG = "[|AI|]"
TAGS: dict[str, str] = {"human": HUMAN_TAG, "ai": AI_TAG}
ROLE: dict[str, str] = {"human": "user", "ai": "assistant"}
END_TOKEN = "[END]"

PRIMER: tuple[tuple[Speaker, str], ...] = (
    ("human", "Hello!"),
    ("ai", "Hello! I am a medical information assistant. What would you like to talk about?"),
)

# What the human says when it is done: the [END] token, or a plain "no more questions".
_END_PHRASES = re.compile(r"\bno (?:more|further|other) questions?\b|\bthat'?s all (?:i (?:had|have|wanted))\b", re.I)
# Role markers that must never appear inside a cleaned message.
_ROLE_LEAK = re.compile(
    r"\[\|\s*(?:Human|AI|User|Assistant)\b|<\|im_(?:start|end)\|>|<\|(?:user|assistant|system)\|>"
    r"|(?:^|\n)\s*(?:Human|AI|User|Assistant|Patient|Doctor)\s*:", re.I)
_ANY_TAG = re.compile(r"\[\|\s*(Human|AI)\s*\|\]", re.I)
_OPEN_END = re.compile(r"[\w,(\-]\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S")

_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_NOT_A_SENTENCE_END = re.compile(r"(?:^|[\s(])(?:\d+|[A-Za-z]|e\.g|i\.e|etc|vs|Dr|Mr|Mrs|Ms|St|approx)$", re.I)

MIN_EXCHANGES = 1  # at least one question and its answer
MIN_TRIMMED_CHARS = 80  # a trimmed answer shorter than this says too little to keep
MAX_TURN_CHARS = 2500
MAX_DIALOGUE_CHARS = 12000


@dataclass
class Turn:
    speaker: Speaker
    content: str


@dataclass
class CleanResult:
    """`messages` in the chat format when kept; otherwise `reason` says why (one counted rejection)."""

    messages: list[dict[str, str]] = field(default_factory=list)
    reason: str | None = None
    repairs: Counter = field(default_factory=Counter)

    @property
    def kept(self) -> bool:
        return self.reason is None


# ---------------------------------------------------------------------------------------------------------------
# rendering and splitting


def render(turns: list[Turn]) -> str:
    """The transcript as the model sees it: one tagged statement per line."""
    return "\n".join(f"{TAGS[t.speaker]} {t.content}".rstrip() for t in turns)


def split_transcript(text: str) -> tuple[list[Turn], str]:
    """Tagged statements in order, plus any text before the first tag (which is not a turn)."""
    matches = list(_ANY_TAG.finditer(text))
    if not matches:
        return [], text.strip()
    turns = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        speaker: Speaker = "human" if m.group(1).lower() == "human" else "ai"
        turns.append(Turn(speaker, text[m.end():end].strip()))
    return turns, text[: matches[0].start()].strip()


def continuation(raw: str, speaker: Speaker) -> tuple[str, Counter]:
    """The next statement for `speaker` from a raw model answer.

    A model asked for one turn often writes its own tag first and then carries on with the other side; the text
    from the first foreign tag on is dropped (counted), because it was never asked for. Text that *starts* with
    the other speaker's tag is kept as is, so the cleaner sees the speaker swap and rejects the transcript."""
    repairs: Counter = Counter()
    text = raw.strip()
    own = TAGS[speaker]
    if text.lower().startswith(own.lower()):
        text = text[len(own):].strip()
        repairs["own_tag_stripped"] += 1
    other = next((m for m in _ANY_TAG.finditer(text) if m.start() > 0), None)
    if other is not None:
        text = text[: other.start()].rstrip()
        repairs["cut_other_speaker"] += 1
    return text, repairs


def is_end(content: str) -> bool:
    """True when a human statement ends the conversation ([END] or "no more questions")."""
    return END_TOKEN.lower() in content.lower() or bool(_END_PHRASES.search(content))


def looks_cut_off(content: str) -> bool:
    """A statement that stops without closing punctuation was most likely cut by the token cap."""
    text = content.strip()
    if not text or _LIST_ITEM.match(text.splitlines()[-1]):  # a list's last item often has no full stop
        return False
    return bool(_OPEN_END.search(text))


def trim_cut_answer(content: str) -> str | None:
    """An answer cut by the token cap, ended at its last complete sentence; None when too little is left.

    A 1.5B model's first answer often runs past the cap. Dropping it threw the whole dialogue away (4 of the
    first 12 attempts of the committed corpus); its complete sentences are a usable answer, and the dialogue can
    go on from them. A full stop after a number or a one-letter or common abbreviation ("2.", "e.g.", "Dr.") is
    not taken for a sentence end, so a list is never cut just after its item marker."""
    text = content.rstrip()
    for m in reversed(list(_SENTENCE_END.finditer(text))):
        head = text[: m.start()]
        if _NOT_A_SENTENCE_END.search(head):
            continue
        kept = text[: m.end()].rstrip()
        return kept if len(kept) >= MIN_TRIMMED_CHARS else None
    return None


# ---------------------------------------------------------------------------------------------------------------
# cleaning


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _drop_primer(turns: list[Turn], repairs: Counter) -> list[Turn]:
    """Remove the primed greeting (and a bare greeting the model wrote in its place)."""
    if len(turns) >= 2 and [(t.speaker, _norm(t.content)) for t in turns[:2]] == [
            (s, _norm(c)) for s, c in PRIMER]:
        repairs["dropped_greeting"] += 1
        return turns[2:]
    return turns


def _cut_at_end(turns: list[Turn], repairs: Counter) -> list[Turn]:
    """Stop at the first human [END] / "no more questions": that statement and anything after are not data."""
    for i, t in enumerate(turns):
        if t.speaker == "human" and is_end(t.content):
            if i < len(turns) - 1:
                repairs["dropped_after_end"] += len(turns) - 1 - i
            repairs["dropped_end_turn"] += 1
            return turns[:i]
        if t.speaker == "ai" and END_TOKEN.lower() in t.content.lower():
            t.content = re.sub(re.escape(END_TOKEN), "", t.content, flags=re.I).strip()
            repairs["end_token_stripped"] += 1
    return turns


def _trim_tail(turns: list[Turn], last_cut: bool, repairs: Counter) -> list[Turn]:
    """Drop a cut-off last statement, then an unanswered last question: a dialogue ends with an answer."""
    if turns and (last_cut or (turns[-1].speaker == "ai" and looks_cut_off(turns[-1].content))):
        turns = turns[:-1]
        repairs["dropped_cut_last_turn"] += 1
    if turns and turns[-1].speaker == "human":
        turns = turns[:-1]
        repairs["dropped_unanswered_question"] += 1
    return turns


def _problem(turns: list[Turn]) -> str | None:
    """The first reason the dialogue is unusable, or None."""
    if not turns:
        return "too_short"
    seen: set[str] = set()
    expected: Speaker = "human"
    total = 0
    for t in turns:
        if not t.content.strip():
            return "empty_turn"
        if t.speaker != expected:
            return "speaker_swap"
        if _ROLE_LEAK.search(t.content):
            return "role_leak"
        key = _norm(t.content)
        if key in seen:
            return "repeated_turn"
        seen.add(key)
        if len(t.content) > MAX_TURN_CHARS:
            return "turn_too_long"
        total += len(t.content)
        expected = "ai" if expected == "human" else "human"
    if total > MAX_DIALOGUE_CHARS:
        return "too_long"
    if sum(1 for t in turns if t.speaker == "ai") < MIN_EXCHANGES:
        return "too_short"
    return None


def clean_turns(turns: list[Turn], *, last_cut: bool = False, preamble: str = "") -> CleanResult:
    """Primer, [END] and a cut-off tail removed, then checked; see `clean_transcript`."""
    repairs: Counter = Counter()
    if preamble:
        repairs["dropped_preamble"] += 1
    turns = [Turn(t.speaker, t.content.strip()) for t in turns]
    turns = _drop_primer(turns, repairs)
    turns = _cut_at_end(turns, repairs)
    if any(_ROLE_LEAK.search(t.content) for t in turns):  # checked before trimming: a leak is never "cut off"
        return CleanResult(reason="role_leak", repairs=repairs)
    turns = _trim_tail(turns, last_cut, repairs)
    reason = _problem(turns)
    if reason is not None:
        return CleanResult(reason=reason, repairs=repairs)
    return CleanResult([{"role": ROLE[t.speaker], "content": t.content} for t in turns], None, repairs)


def clean_transcript(text: str, *, last_cut: bool = False) -> CleanResult:
    """Messages ({role: user|assistant, content}) from a tagged transcript, or a rejection reason.

    Dropped (counted in `repairs`): the primed greeting, the human's closing [END] statement and anything after
    it, a last statement cut off by the token cap (`last_cut`, or an answer without closing punctuation) and a
    question left unanswered at the end. Rejected: an empty statement (`empty_turn`), a speaker talking twice in
    a row or the assistant opening (`speaker_swap`), role tags inside a statement (`role_leak`), a statement
    repeated (`repeated_turn`), a statement or dialogue too long (`turn_too_long`, `too_long`) and no complete
    question-and-answer left (`too_short`)."""
    turns, preamble = split_transcript(text)
    return clean_turns(turns, last_cut=last_cut, preamble=preamble)
