"""Where each dialogue starts: a user's seed question, or a topic the LLM proposes for a (specialty, setting) slot.

Label first (Cao's review): asking a model for "a medical conversation" 500 times yields 500 chats about flu and
headaches. So the coverage is decided before any text is written — a fixed grid of specialties × care settings
written for this project — and the LLM only fills one slot of that grid at a time with a concrete topic,
through a JSON schema. Slots walk a seeded permutation of the grid, so every cell is used once before any cell
is used twice, and a topic that repeats one already kept (after normalisation) is refused, so the grid's
second pass must come up with something new.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from medsynth.hashing import seeded_rng, stable_seed
from medsynth.chat.transcript import user_voice_problem
from medsynth.errors import MedsynthError
from medsynth.data.jsonl import read_utf8
from medsynth.generate.parse import load_json_object

SPECIALTIES: tuple[str, ...] = (
    "cardiology", "endocrinology", "gastroenterology", "pulmonology", "nephrology", "neurology", "psychiatry",
    "oncology", "hematology", "infectious disease", "rheumatology", "dermatology", "obstetrics and gynecology",
    "pediatrics", "geriatrics", "orthopedics", "ophthalmology", "otolaryngology", "urology", "emergency medicine",
    "allergy and immunology", "pharmacology and medication safety", "nutrition", "sleep medicine",
)
SETTINGS: tuple[str, ...] = (
    "a patient asking about a new diagnosis",
    "a patient asking about medication side effects",
    "a caregiver asking on behalf of a family member",
    "a patient preparing for a test or procedure",
    "a clinician asking about guidelines or dosing",
    "a patient asking about prevention and lifestyle",
)

MAX_TOPIC_CHARS = 160
MAX_SEED_CHARS = 1000
MAX_QUESTION_CHARS = 300
_MARKUP = re.compile(r"[{}\[\]<>|]")  # JSON, role tags or HTML inside a topic or question: not the user's words
TOPIC_SCHEMA = {
    "type": "object",
    "properties": {"topic": {"type": "string", "minLength": 8, "maxLength": MAX_TOPIC_CHARS},
                   "question": {"type": "string", "minLength": 10, "maxLength": MAX_QUESTION_CHARS}},
    "required": ["topic", "question"],
}
TOPIC_SYSTEM = (
    "You propose topics for realistic conversations between a person and a medical information assistant. "
    "A topic is one specific question or concern (a condition, a drug, a test, a symptom, a procedure) in a few "
    "words, not a whole sentence of advice. Never include names, dates of birth, record numbers, phone numbers "
    "or addresses. Also write the person's first question about the topic, in their own plain words, one "
    'sentence ending with "?". Answer with JSON only: {"topic": "...", "question": "..."}.'
)


@dataclass(frozen=True)
class Opening:
    """A proposed topic and the user's first question about it (None when the answer had no usable one).

    Baize opens every dialogue with a real user question; without one, a 1.5B model asked for the user's first
    statement mostly wrote the assistant's greeting instead (24 of the 36 chat.v2 dialogues opened that way)."""

    topic: str
    question: str | None = None


@dataclass(frozen=True)
class Slot:
    """What one dialogue is about. `variant` counts earlier passes over the same grid cell."""

    slot: int
    specialty: str
    setting: str
    variant: int
    seed_question: str | None = None

    @property
    def source(self) -> str:
        return "seed" if self.seed_question is not None else "proposed"


def _rng(*parts: object) -> random.Random:
    return seeded_rng(*parts)


def grid(run_seed: int) -> list[tuple[str, str]]:
    """All (specialty, setting) cells in a seeded order: a prefix of any length is spread over the grid."""
    cells = [(sp, st) for sp in SPECIALTIES for st in SETTINGS]
    _rng("chat-grid", run_seed).shuffle(cells)
    return cells


def slot_for(slot: int, run_seed: int, seeds: list[str] | None = None) -> Slot:
    """Slot `slot`'s cell (or seed question); a pure function of the slot, so replays hit the response cache."""
    if seeds:
        return Slot(slot, "", "", slot // len(seeds), seeds[slot % len(seeds)])
    cells = grid(run_seed)
    specialty, setting = cells[slot % len(cells)]
    return Slot(slot, specialty, setting, slot // len(cells))


def llm_seed(run_seed: int, slot: int, step: str) -> int:
    """Per-request LLM seed from the run seed, the slot and the step (topic, turn k)."""
    return stable_seed("chat", run_seed, slot, step)


def topic_messages(s: Slot, avoid: list[str]) -> list[dict]:
    """One topic for this cell; `avoid` lists topics already kept for it (a later pass must differ)."""
    user = f"Specialty: {s.specialty}\nSituation: {s.setting}\nPropose one conversation topic."
    if avoid:
        user += " It must differ from these topics: " + "; ".join(avoid[:8]) + "."
    return [{"role": "system", "content": TOPIC_SYSTEM}, {"role": "user", "content": user}]


def _clean(value: object) -> str:
    return " ".join(value.split()).strip() if isinstance(value, str) else ""


def parse_question(value: object) -> str | None:
    """The opening question, or None when it is missing, marked up, or reads like the assistant's words."""
    question = _clean(value).strip("\"'")
    if not (10 <= len(question) <= MAX_QUESTION_CHARS) or _MARKUP.search(question):
        return None
    return question if user_voice_problem(question) is None else None


def parse_topic(raw: str | None) -> tuple[Opening | None, str | None]:
    """(opening, None) or (None, reason). Survives None, prose around the JSON, a bare string and odd shapes; a
    bad or missing question only loses the question (the dialogue then starts from a generated user turn)."""
    obj, error, _ = load_json_object(raw)
    if obj is None:
        text = (raw or "").strip().strip('"').strip()
        if error == "no_json_object" and text and "\n" not in text and len(text) <= MAX_TOPIC_CHARS:
            obj = {"topic": text}  # plain-mode endpoints sometimes answer the bare topic
        else:
            return None, f"topic:{error}"
    value = obj.get("topic")
    if not isinstance(value, str):
        return None, "topic:missing"
    topic = _clean(value).strip(" .\"'")
    if len(topic) < 3:
        return None, "topic:empty"
    if len(topic) > MAX_TOPIC_CHARS:
        return None, "topic:too_long"
    if _MARKUP.search(topic):
        return None, "topic:markup"
    return Opening(topic, parse_question(obj.get("question"))), None


def topic_key(topic: str) -> str:
    """Dedup key: case, punctuation, articles and plural -s do not make a topic new."""
    words = re.sub(r"[^\w\s]", " ", topic.lower()).split()
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in {"a", "an", "the"})


def read_seeds(path: str | Path) -> list[str]:
    """One seed question per non-blank line; a missing, unreadable, non-UTF-8 or empty file is one-line error."""
    p = Path(path)
    text = read_utf8(p, "seeds file")
    seeds: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        question = _clean(line)
        if not question:
            continue
        if len(question) > MAX_SEED_CHARS:
            raise MedsynthError(f"seed question longer than {MAX_SEED_CHARS} characters", where=f"{p}:{number}",
                                value=question)
        if "\x00" in question or any(tag in question for tag in ("[|Human|]", "[|AI|]")):
            raise MedsynthError("seed question holds a control character or a role tag", where=f"{p}:{number}",
                                value=question)
        seeds.append(question)
    if not seeds:
        raise MedsynthError("seeds file holds no questions (one per line expected)", where=str(p))
    return list(dict.fromkeys(seeds))  # a question listed twice would only make a duplicate dialogue
