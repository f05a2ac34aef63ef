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
_END_TOKEN_ANY = re.compile(r"[\[|]\s*END\s*[\]|]")  # [END], and the |END| small models write for it
# Role markers that must never appear inside a cleaned message.
_ROLE_LEAK = re.compile(
    r"\[\|\s*(?:Human|AI|User|Assistant)\b|<\|im_(?:start|end)\|>|<\|(?:user|assistant|system)\|>"
    r"|\|\s*(?:Human|AI)\s*\|"
    r"|(?:^|\n)\s*(?:Human|AI|User|Assistant|Patient|Doctor)\s*:", re.I)
_ANY_TAG = re.compile(r"\[\|\s*(Human|AI)\s*\|\]", re.I)
# The speaker's own tag with a bracket missing ("|Human| ..."), as small models often write it at the start.
_OWN_TAG_BROKEN = {sp: re.compile(r"^\[?\|\s*" + name + r"\s*\|\]?", re.I) for sp, name in (("human", "Human"),
                                                                                       ("ai", "AI"))}
_OPEN_END = re.compile(r"[\w,(\-]\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S")

_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
_NOT_A_SENTENCE_END = re.compile(r"(?:^|[\s(])(?:\d+|[A-Za-z]|e\.g|i\.e|etc|vs|Dr|Mr|Mrs|Ms|St|approx)$", re.I)

# The user's turn written in the assistant's voice. A 1.5B model asked for the human's next statement often goes on
# as the assistant ("Is there anything else I can help you with?", its own greeting, a refusal); 51 of 88 user
# turns of the chat.v2 corpus did. These phrases are what an assistant says to a user, not the other way round.
_ASSISTANT_VOICE = re.compile(
    r"medical information assistant|\bhow (?:else )?(?:can|may) i (?:help|assist)|\b(?:can|may) i (?:help|assist) you"
    r"|\bi (?:can )?(?:help|assist) (?:you )?with\b|\bthank you for (?:your|the) question\b"
    r"|\bconcerns? do you have\b|\bdo you have any (?:\w+ )?concerns\b|\bi(?:'m| am) here to help"
    r"|\bi(?:'m| am) sorry\b(?!,? to (?:bother|ask|hear))|\bi(?:'m| am) unable to"
    r"|\bi can(?:'|no)t (?:assist|help|provide)|\bas an? (?:ai|medical|language)\b"
    r"|\b(?:would )?you(?:'d| would) like to (?:know|talk|learn|discuss|ask|continue)"
    r"|\bwould you like (?:to (?:know|talk|learn|discuss|ask|continue)|me to)\b|\bfeel free to\b"
    r"|\bi hope (?:this|that) helps|\b(?:do|have) you (?:have )?any (?:\w+ )?questions"
    r"|\bi(?:'d| would) be (?:happy|glad) to\b|\bglad to (?:help|hear that you)|\bit sounds like you"
    r"|\byou(?:'re| are) interested in\b", re.I)
# A question or a request: what a user's turn is. A long statement with neither is an answer in the wrong role.
_REQUEST = re.compile(
    r"\?|\b(?:i(?:'d| would) like to|i want to|i need|tell me|explain|please|wonder(?:ing)?|"
    r"i(?:'m| am) (?:worried|concerned|curious|scared|afraid)|help me|can you|could you)\b", re.I)
MAX_STATEMENT_CHARS = 120  # a user statement longer than this without a question or request reads as an answer

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
    broken = _OWN_TAG_BROKEN[speaker].match(text)
    if broken is not None:  # "[|Human|]" or a broken "|Human|"
        text = text[broken.end():].strip()
        repairs["own_tag_stripped"] += 1
    other = next((m for m in _ANY_TAG.finditer(text) if m.start() > 0), None)
    if other is not None:
        text = text[: other.start()].rstrip()
        repairs["cut_other_speaker"] += 1
    return text, repairs


def is_end(content: str) -> bool:
    """True when a human statement ends the conversation ([END], a mistyped "|END|", or "no more questions")."""
    return bool(_END_TOKEN_ANY.search(content)) or bool(_END_PHRASES.search(content))


def user_voice_problem(content: str) -> str | None:
    """Why a user turn reads like the assistant wrote it (None when it reads like a user).

    `assistant_voice`: a phrase only the assistant says (a greeting as the assistant, an offer of help, a
    refusal, "feel free to ask"). `statement`: a long statement with no question or request in it — an answer
    in the user's seat. A short statement ("Diabetes diet") passes, so a terse seed question is not refused."""
    text = content.strip()
    if _ASSISTANT_VOICE.search(text):
        return "assistant_voice"
    if len(text) > MAX_STATEMENT_CHARS and not _REQUEST.search(text):
        return "statement"
    return None


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


def _cut_at_user_drift(turns: list[Turn], repairs: Counter, trust_opening: bool) -> list[Turn]:
    """Stop before the first user turn in the assistant's voice (`user_voice_problem`): the model has left the
    user's role, and what follows answers a question nobody asked. The exchanges before it are kept. With
    `trust_opening` the first user turn is the user's own seed question and is never taken for drift."""
    for i, t in enumerate(turns):
        if t.speaker != "human" or (trust_opening and i == 0):
            continue
        if user_voice_problem(t.content) is not None:
            repairs["dropped_from_user_drift"] += len(turns) - i
            return turns[:i]
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


def clean_turns(turns: list[Turn], *, last_cut: bool = False, preamble: str = "",
                trust_opening: bool = False) -> CleanResult:
    """Primer, [END], user-role drift and a cut-off tail removed, then checked; see `clean_transcript`."""
    repairs: Counter = Counter()
    if preamble:
        repairs["dropped_preamble"] += 1
    turns = [Turn(t.speaker, t.content.strip()) for t in turns]
    turns = _drop_primer(turns, repairs)
    turns = _cut_at_end(turns, repairs)
    kept = _cut_at_user_drift(turns, repairs, trust_opening)
    if any(_ROLE_LEAK.search(t.content) for t in kept):  # checked before trimming: a leak is never "cut off"
        return CleanResult(reason="role_leak", repairs=repairs)
    turns = _trim_tail(kept, last_cut and len(kept) == len(turns), repairs)  # the cut turn may be gone already
    reason = _problem(turns)
    if reason is not None:
        return CleanResult(reason=reason, repairs=repairs)
    return CleanResult([{"role": ROLE[t.speaker], "content": t.content} for t in turns], None, repairs)


def clean_transcript(text: str, *, last_cut: bool = False) -> CleanResult:
    """Messages ({role: user|assistant, content}) from a tagged transcript, or a rejection reason.

    Dropped (counted in `repairs`): the primed greeting, the human's closing [END] statement and anything after
    it, a last statement cut off by the token cap (`last_cut`, or an answer without closing punctuation), the first
    user turn in the assistant's voice and everything after it (`user_voice_problem`), and a question left
    unanswered at the end. Rejected: an empty statement (`empty_turn`), a speaker talking twice in
    a row or the assistant opening (`speaker_swap`), role tags inside a statement (`role_leak`), a statement
    repeated (`repeated_turn`), a statement or dialogue too long (`turn_too_long`, `too_long`) and no complete
    question-and-answer left (`too_short`)."""
    turns, preamble = split_transcript(text)
    return clean_turns(turns, last_cut=last_cut, preamble=preamble)
