"""Annotate mode (`build ner --annotate FILE`): the LLM labels the user's own text instead of writing sentences.

Why: UniversalNER-style distillation. A team with private, unlabelled in-house text (notes, reports) can have
the local LLM label it and train a small tagger on the result, without the text leaving the machine. The
labels are the LLM's (black-box labelling of given text), so this is weaker supervision than white-box
generation, but the text is exactly the domain the tagger will see.

It is the build loop with a different source: slot i is the i-th text of the file instead of the i-th plan.
Each slot sends the zero-shot NER prompt of `zeroshot.py` (per-label string lists, with the task's definitions
and guidelines), reads the answer with the same parser, places the strings on the *given* text with
`align.align`, and applies the entity repairs of `filter.py` (label-name echoes, a label's negative examples,
lexicon and abbreviation completion). Length, markup and planned-target rules are for generated text and do
not apply; a text with no entity is kept as a negative example. Storage, resume and the response cache work
as for generation: a re-run makes 0 LLM calls, and the input's sha256 is part of the run identity, so another
corpus in the same output directory is refused.

Input: a UTF-8 .jsonl with a "text" string per line, or any other file as plain text with one text per line
(surrounding whitespace stripped). Blank lines (and blank "text" values) are skipped; `--n` takes the first N
texts (default: all). Requests are greedy (temperature 0, seed 0), as for the zero-shot baseline: labelling
is not sampling.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from medsynth.hashing import prompt_hash as _prompt_hash
from medsynth.generate.align import AlignConfig, align
from medsynth.errors import MedsynthError
from medsynth.generate.filter import check_annotation
from medsynth.data.jsonl import decode_utf8
from medsynth.llm.client import LLMClient, LLMResponse
from medsynth.spec import TaskSpec
from medsynth.records import Entity
from medsynth.evaluate.zeroshot import mentions_from_answer, zero_shot_messages, zero_shot_schema

PROMPT_VERSION = "annotate.v1"
SOURCE = "annotate"
# A text longer than this is labelled in sentence windows of at most WINDOW_CHARS (a 1 MB line in one prompt
# exceeds any context: HTTP 400 on every retry). ~2,000 characters ≈ 500 tokens leaves room in a 4,096-token
# context for the prompt and the answer. Beyond MAX_WINDOWS windows a text is rejected (counted, naming its line):
# it is a document, not a text, and would cost hundreds of requests for one slot.
WINDOW_CHARS = 2000
MAX_WINDOWS = 32
# Self-consistency (`--votes K`): vote 0 is greedy, the other K-1 sample at this temperature with seeds 1..K-1.
VOTE_TEMPERATURE = 0.7
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass(frozen=True)
class SourceText:
    """One text to label and where it came from (1-based line of the input file)."""

    line: int
    text: str


@dataclass(frozen=True)
class Corpus:
    """The user's texts in file order; `sha256` (of the file's bytes) identifies the run's input."""

    path: Path
    sha256: str
    texts: tuple[SourceText, ...]

    @property
    def name(self) -> str:
        return self.path.name


# -- reading the input ----------------------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise MedsynthError("annotate input not found", where=str(path)) from None
    except OSError as err:
        raise MedsynthError(f"cannot read annotate input ({err.strerror or err.__class__.__name__})",
                            where=str(path)) from None


def _plain_texts(content: str) -> list[SourceText]:
    return [SourceText(i, ln.strip()) for i, ln in enumerate(content.split("\n"), start=1) if ln.strip()]


def _jsonl_texts(path: Path, content: str) -> list[SourceText]:
    """One {"text": ...} object per line; the text is kept exactly (offsets refer to it as given)."""
    out = []
    for i, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: 100,000 nested brackets
            raise MedsynthError("line is not JSON", where=f"{path}:{i}", value=line[:60]) from None
        if not isinstance(obj, dict) or "text" not in obj:
            raise MedsynthError('expected an object with a "text" field', where=f"{path}:{i}", field="text")
        if not isinstance(obj["text"], str):
            raise MedsynthError("must be a string", where=f"{path}:{i}", field="text", value=obj["text"])
        if obj["text"].strip():
            out.append(SourceText(i, obj["text"]))
    return out


def read_corpus(path: str | Path) -> Corpus:
    """The texts to annotate. Any problem (missing, not UTF-8, a bad .jsonl line, no text at all) is a
    one-line MedsynthError naming the file and line; it is raised before the run store is opened, so it never
    touches what an earlier run stored."""
    p = Path(path)
    data = _read_bytes(p)
    content = decode_utf8(p, data, bom=True)
    texts = _jsonl_texts(p, content) if p.suffix.lower() == ".jsonl" else _plain_texts(content)
    if not texts:
        raise MedsynthError("annotate input holds no text (expected one text per line, or .jsonl with \"text\")",
                            where=str(p))
    return Corpus(p, hashlib.sha256(data).hexdigest(), tuple(texts))


# -- one slot -------------------------------------------------------------------------------------------------
def messages(task: TaskSpec, text: str) -> list[dict]:
    return zero_shot_messages(task, text, guidelines=True)


def prompt_hash(task: TaskSpec) -> str:
    """Identifies the annotation prompt template (its system message); stored in meta and the run identity."""
    system = messages(task, "")[0]["content"]
    return _prompt_hash([PROMPT_VERSION, system])


@dataclass
class Labelled:
    """One answer after parse → align → filter: the entities on the given text, or a rejection reason."""

    entities: list[Entity]
    repairs: Counter
    reason: str | None
    weight: float | None = None  # with --votes: how much the k annotations agree (the example's weight)


def label_text(raw: str | None, text: str, task: TaskSpec, fuzzy: float = 0.85) -> Labelled:
    """Place the LLM's per-label strings on `text` and apply the entity repairs. Only an unreadable answer is
    rejected; no mention at all is a valid (negative) annotation."""
    mentions, error = mentions_from_answer(raw, task)
    if error:
        return Labelled([], Counter(), f"parse:{error}")
    aligned = align(text, mentions, AlignConfig(labels=task.label_names, fuzzy_threshold=fuzzy))
    repairs: Counter = Counter(aligned.repairs)
    repairs.update({f"dropped:{k}": v for k, v in aligned.rejections.items()})
    checked = check_annotation(text, aligned.entities, task)
    repairs.update(checked.repairs)
    return Labelled(checked.entities, repairs, None)


def majority(labelled: list[Labelled], votes: int) -> tuple[list[Entity], list[float], Counter]:
    """Self-consistency: the entities that more than half of `votes` annotations return (same span, same label),
    each candidate's vote share, and counts of what the vote kept and dropped. An unreadable sampled answer
    counts as a vote for nothing."""
    tally: Counter = Counter()
    first: dict[tuple[int, int, str], Entity] = {}
    for lab in labelled:
        for e in {(e.start, e.end, e.label): e for e in lab.entities}.values():
            key = (e.start, e.end, e.label)
            tally[key] += 1
            first.setdefault(key, e)
    kept = sorted((first[k] for k, n in tally.items() if 2 * n > votes), key=lambda e: (e.start, e.end))
    # Majority spans cannot overlap one another when each answer's spans do not: two overlapping spans would
    # need a shared voter. Kept in text order.
    shares = [n / votes for n in tally.values()]
    counts = Counter({"vote_kept": len(kept), "vote_dropped": len(tally) - len(kept)}) if votes > 1 else Counter()
    return kept, shares, +counts


def agreement(shares: list[float]) -> float:
    """How much the votes agree on a text: for each candidate span the share on the winning side (kept spans:
    their share; dropped ones: 1 - share), averaged; 1.0 when no annotation proposed anything."""
    if not shares:
        return 1.0
    return round(sum(max(s, 1 - s) for s in shares) / len(shares), 4)


def windows(text: str, size: int = WINDOW_CHARS) -> list[tuple[int, int]]:
    """(start, end) character windows covering `text`, cut after sentence ends so no mention is split, each at
    most `size` long (a sentence longer than that is cut at the last space, else hard)."""
    out: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        if len(text) - start <= size:
            out.append((start, len(text)))
            break
        limit = start + size
        cuts = [m.end() for m in _SENTENCE_END.finditer(text, start, limit) if m.end() > start]
        end = cuts[-1] if cuts else (text.rfind(" ", start + 1, limit) + 1 or limit)
        if end <= start:
            end = limit
        out.append((start, end))
        start = end
    return [(a, b) for a, b in out if text[a:b].strip()]


class Annotator:
    """The per-slot step of an annotate build: what `Builder` calls instead of plan → generate."""

    def __init__(self, task: TaskSpec, corpus: Corpus, n: int, max_tokens: int, fuzzy: float, votes: int = 1):
        if task.kind != "ner":
            raise MedsynthError("annotate mode labels entities only; use an ner task", field="task",
                                value=task.name)
        self.task, self.corpus, self.max_tokens, self.fuzzy = task, corpus, max_tokens, fuzzy
        self.slots = min(n, len(corpus.texts))
        self.prompt_hash = prompt_hash(task)
        self.votes = votes
        self.params = {"temperature": 0.0, "max_tokens": max_tokens, "format": "zero-shot-json",
                       **({"votes": votes, "vote_temperature": VOTE_TEMPERATURE} if votes > 1 else {})}
        self._schema = zero_shot_schema(task)

    def identity(self) -> dict:
        """Identity keys added to the run's: another input file (by content) is another run."""
        return {"source": SOURCE, "annotate_sha256": self.corpus.sha256}

    async def label(self, client: LLMClient, slot: int) -> tuple[LLMResponse, SourceText, Labelled | None]:
        """Ask for slot's labels; `Labelled` is None when the request itself failed (the slot is retried).
        A long text is labelled window by window (offsets shifted back onto the whole text)."""
        src = self.corpus.texts[slot]
        spans = [(0, len(src.text))] if len(src.text) <= WINDOW_CHARS else windows(src.text)
        if len(spans) > MAX_WINDOWS:
            nothing = LLMResponse(text="", prompt_tokens=0, completion_tokens=0, cached=False)
            return nothing, src, Labelled([], Counter(), f"text_too_long:line_{src.line}")
        entities: list[Entity] = []
        repairs: Counter = Counter({"text_windows": len(spans)} if len(spans) > 1 else {})
        shares: list[float] = []
        total = LLMResponse(text="", prompt_tokens=0, completion_tokens=0, cached=True)
        for start, end in spans:
            part = src.text[start:end]
            answers = await asyncio.gather(*(self._ask(client, part, vote) for vote in range(self.votes)))
            for resp in answers:
                if resp.text is None:
                    return resp, src, None
                total.prompt_tokens += resp.prompt_tokens
                total.completion_tokens += resp.completion_tokens
                total.cached = total.cached and resp.cached
            got = [label_text(resp.text, part, self.task, self.fuzzy) for resp in answers]
            if got[0].reason:  # the greedy answer is unreadable: the text is rejected, as without votes
                return total, src, Labelled([], got[0].repairs + repairs, got[0].reason)
            kept, window_shares, vote_repairs = majority([g for g in got if g.reason is None], self.votes)
            repairs.update(got[0].repairs + vote_repairs)
            shares += window_shares
            entities += [e.model_copy(update={"start": e.start + start, "end": e.end + start}) for e in kept]
        return total, src, Labelled(entities, repairs, None, agreement(shares) if self.votes > 1 else None)

    async def _ask(self, client: LLMClient, text: str, vote: int) -> LLMResponse:
        """Vote 0 is the greedy request (identical to a run without votes, so its cache entries are shared);
        the others sample at VOTE_TEMPERATURE with their own seed."""
        greedy = vote == 0
        return await client.complete(messages(self.task, text), schema=self._schema, seed=vote,
                                     temperature=0.0 if greedy else VOTE_TEMPERATURE, max_tokens=self.max_tokens)

    def meta(self, slot: int, src: SourceText) -> dict:
        """Provenance of an annotated example; "plan" keeps the slot so exports cut runs the same way."""
        return {"source": SOURCE, "input": self.corpus.name, "line": src.line,
                "plan": {"slot": slot, "style": SOURCE, "targets": []}}


def done(store_slots: set[int], slots: int) -> bool:
    """Whether every text slot of an annotate run has an outcome (kept or rejected)."""
    return all(s in store_slots for s in range(slots))
