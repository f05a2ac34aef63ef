"""Place mentions (a string and a label, as an LLM states them) onto a sentence as exact character spans.

Everything downstream (BIO export, training, scoring) relies on `text[start:end] == entity.text` and on spans
being sorted and disjoint, so this module is the single place where loose LLM output becomes strict spans. It is
shared by the NER builder, the zero-shot baseline and importers, hence it depends only on `records`, `data.tokens`
and `errors`.

Each mention goes through increasingly lenient strategies and the first that works is recorded:

1. label: exact, else case/separator-insensitive (``label_case``), else rejected ``unknown_label``;
   an empty mention is rejected ``empty_mention``.
2. offsets: trusted when ``text[start:end]`` is the mention; otherwise ignored (``bad_offsets``) and the
   search below prefers the occurrence nearest to the stated start.
3. exact substring, after trimming quotes/punctuation/markdown around the mention (``trimmed``);
   a sentence-initial capital ("Aspirin" for "aspirin") counts as ``case``.
4. case-insensitive (``case``).
5. normalised (``normalized``): whitespace and dash runs, curly quotes, accents, NFKC ("µ" = "μ"), Greek letter
   names ("α" = "alpha") and invisible characters (soft hyphen, zero-width space) are ignored.
6. a match that starts or ends inside a word (only when no word-boundary match exists at levels 3-5) is
   snapped (``snapped``) to the nearest word boundary, or rejected ``partial_word`` when expanding would add
   too much (see `_snap`).
7. fuzzy (``fuzzy``): best token-aligned window with difflib ratio >= threshold; else ``not_found``.

Repeated strings: k listings take k distinct occurrences; afterwards every further occurrence of a kept
mention's string (at the level it matched) is labelled too (``extra_occurrence``), because an unlabelled
second mention would teach a NER model that the string is O. Accounting: each listed mention is either kept
(its repairs are counted) or counted once in `rejections`, so
``len(entities) == len(mentions) - sum(rejections.values()) + repairs["extra_occurrence"]``.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

from medsynth.errors import MedsynthError
from medsynth.data.tokens import tokenize
from medsynth.records import Entity, Mention, spans_overlap

__all__ = ["AlignConfig", "AlignResult", "align", "check_invariant"]


@dataclass
class AlignConfig:
    labels: list[str]
    fuzzy_threshold: float = 0.85
    allow_fuzzy: bool = True
    case_map: dict[str, str] | None = None

    def __post_init__(self) -> None:
        """Config mistakes are user mistakes (task files): fail early with one line, not deep inside a run."""
        if not self.labels or not all(isinstance(x, str) and x.strip() for x in self.labels):
            raise MedsynthError("needs at least one non-empty label", where="AlignConfig", field="labels",
                                value=self.labels)
        if not 0.0 < float(self.fuzzy_threshold) <= 1.0:
            raise MedsynthError("must be in (0, 1]", where="AlignConfig", field="fuzzy_threshold",
                                value=self.fuzzy_threshold)
        for key, target in (self.case_map or {}).items():
            if target not in self.labels:
                raise MedsynthError(f"maps {key!r} to a label not in labels {self.labels}", where="AlignConfig",
                                    field="case_map", value=target)


@dataclass
class AlignResult:
    entities: list[Entity]
    repairs: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    missing_targets: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# characters

_QUOTES = "\"'`‘’‚‛“”„‟«»‹›′″"
_TRIM_PUNCT = ".,;:!?…*"
_TRIM_CHARS = _QUOTES + _TRIM_PUNCT
_BRACKETS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {v: k for k, v in _BRACKETS.items()}
_DASHES = set("-‐‑‒–—―−﹘﹣－")
_INVISIBLE = set("\u00ad\u200b\u200c\u200d\u2060\ufeff")
_QUOTE_FOLD = {c: "'" for c in "`‘’‚‛′ʼ"} | {c: '"' for c in "“”„‟″«»"}
_GREEK = {"α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta", "η": "eta",
          "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "ν": "nu", "ξ": "xi", "π": "pi", "ρ": "rho",
          "σ": "sigma", "ς": "sigma", "τ": "tau", "υ": "upsilon", "φ": "phi", "χ": "chi", "ψ": "psi",
          "ω": "omega"}  # μ deliberately absent: "µg" must not become "mug"
_BULLET = re.compile(r"^(?:[-•*]|\d+[.)])\s+")


def _is_word(c: str) -> bool:
    """Letters/digits as the tokenizer sees them, plus combining marks so a decomposed "ö" is never split."""
    return c.isalnum() or unicodedata.combining(c) > 0


def _at_boundary(text: str, pos: int) -> bool:
    """True when `pos` does not fall between two word characters (so a span may start or end there)."""
    return pos <= 0 or pos >= len(text) or not (_is_word(text[pos - 1]) and _is_word(text[pos]))


def _trim(s: str) -> str:
    """Strip whitespace, quotes, sentence punctuation, list bullets and unbalanced/enclosing brackets.

    LLMs wrap mentions ("'aspirin'", "**aspirin**", "diabetes.", "(COPD)") but brackets inside a mention
    ("interleukin-6 (IL-6)", "(+)-catechin") are real, so only unbalanced or fully enclosing ones go.
    """
    prev = None
    while s != prev:
        prev = s
        s = _BULLET.sub("", s.strip()).strip().strip(_TRIM_CHARS)
        if not s:
            break
        first, last = s[0], s[-1]
        if first in _BRACKETS and last == _BRACKETS[first] and _balanced(s[1:-1]):
            s = s[1:-1]
        elif last in _CLOSERS and s.count(last) > s.count(_CLOSERS[last]):
            s = s[:-1]
        elif first in _BRACKETS and s.count(first) > s.count(_BRACKETS[first]):
            s = s[1:]
    return s


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        if c in _BRACKETS:
            depth += 1
        elif c in _CLOSERS:
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _fold_char(c: str) -> str:
    """The normalised form of one character (may be empty or several characters)."""
    if c in _INVISIBLE:
        return ""
    if c.isspace() or c in _DASHES:
        return " "
    if c in _QUOTE_FOLD:
        return _QUOTE_FOLD[c]
    low = c.casefold()
    if low in _GREEK:
        return _GREEK[low]
    decomposed = unicodedata.normalize("NFKD", c)
    s = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    s = unicodedata.normalize("NFKC", s).casefold()
    return "".join(" " if (ch.isspace() or ch in _DASHES) else ch for ch in s)


class _Folded:
    """A normalised copy of a string that remembers which original character each folded character came from."""

    def __init__(self, text: str, fold, collapse: bool) -> None:
        out: list[str] = []
        self.origin: list[int] = []
        self.first: list[bool] = []
        self.last: list[bool] = []
        self.pos: list[int] = []  # pos[i] = folded index where original char i starts
        for i, c in enumerate(text):
            self.pos.append(len(out))
            kept = []
            for ch in fold(c):
                if collapse and ch == " " and (not out or out[-1] == " "):
                    continue  # collapse runs of separators, drop leading ones
                out.append(ch)
                kept.append(len(out) - 1)
            for k in kept:
                self.origin.append(i)
                self.first.append(k == kept[0])
                self.last.append(k == kept[-1])
        self.pos.append(len(out))
        self.text = "".join(out)

    def spans(self, needle: str, original: str) -> list[tuple[int, int]]:
        """Original-text spans of every occurrence of `needle` that starts and ends on whole characters."""
        found: list[tuple[int, int]] = []
        if not needle:
            return found
        i = self.text.find(needle)
        while i >= 0:
            j = i + len(needle)
            if self.first[i] and self.last[j - 1]:
                start, end = self.origin[i], self.origin[j - 1] + 1
                while end < len(original) and unicodedata.combining(original[end]):
                    end += 1  # keep combining marks with their base letter
                if (start, end) not in found:
                    found.append((start, end))
            i = self.text.find(needle, i + 1)
        return found

    def window(self, start: int, end: int) -> str:
        return self.text[self.pos[start] : self.pos[end]].strip()


def _fold_norm(s: str) -> str:
    return _Folded(s, _fold_char, collapse=True).text.strip()


def _fold_case(s: str) -> str:
    return s.casefold()


# ---------------------------------------------------------------------------------------------------------------
# placing one mention


@dataclass
class _Occ:
    start: int
    end: int
    kind: str | None  # repair kind this occurrence needs (None = exact)


@dataclass
class _Placed:
    index: int
    label: str
    repairs: list[str]
    occs: list[_Occ]
    pinned: bool  # offsets were right: only occs[0] may be the listed span


class _Sentence:
    """Per-call caches: folded copies and tokens of the sentence are built once for all mentions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.case = _Folded(text, _fold_case, collapse=False)
        self.norm = _Folded(text, _fold_char, collapse=True)
        self.tokens = tokenize(text)

    def occurrences(self, m: str) -> tuple[list[_Occ], list[tuple[int, int]]]:
        """Boundary-aligned matches of the first level that has any, else ([], in-word matches to snap)."""
        t = self.text
        inword: list[tuple[int, int]] = []
        exact = _find_all(t, m)
        case = self.case.spans(_fold_case(m), t)
        # sentence-initial capitals etc.: same string but for the case of its first letter
        first_cap = [(s, e) for s, e in case if e - s == len(m) and t[s + 1 : e] == m[1:] and (s, e) not in exact]
        levels = [
            [(s, e, None) for s, e in exact] + [(s, e, "case") for s, e in first_cap],
            [(s, e, "case") for s, e in case],
            [(s, e, "normalized") for s, e in self.norm.spans(_fold_norm(m), t)],
        ]
        for level in levels:
            good = sorted((o for o in level if _at_boundary(t, o[0]) and _at_boundary(t, o[1])),
                          key=lambda o: o[0])
            if good:
                return [_Occ(*o) for o in good], []
            if not inword:
                inword = [(s, e) for s, e, _ in level]
        return [], inword

    def fuzzy(self, m: str, threshold: float) -> list[_Occ]:
        """Token-aligned windows whose normalised similarity to `m` reaches `threshold`, best first, disjoint.

        Window sizes are bounded by length rather than a fixed token count: ratio = 2M/(a+b) >= t is impossible
        unless len(window)/len(m) lies in [t/(2-t), (2-t)/t], so no viable window is skipped, and
        "Parkinsons" (1 token) still meets "Parkinson ' s" (3 tokens).
        """
        target = _fold_norm(m)
        if not target:
            return []
        lo, hi = len(target) * threshold / (2 - threshold), len(target) * (2 - threshold) / threshold
        toks = [tk for tk in self.tokens if tk.text not in _TRIM_CHARS]
        scored: list[tuple[float, int, int, int]] = []
        for i, first in enumerate(toks):
            for last in toks[i:]:
                cand = self.norm.window(first.start, last.end)
                if len(cand) > hi:
                    break
                if len(cand) < lo:
                    continue
                sm = difflib.SequenceMatcher(None, target, cand, autojunk=False)
                if sm.real_quick_ratio() < threshold or sm.quick_ratio() < threshold:
                    continue
                r = sm.ratio()
                if r >= threshold:
                    scored.append((-r, abs(len(cand) - len(target)), first.start, last.end))
        chosen: list[_Occ] = []
        for _, _, s, e in sorted(scored):
            if all(e <= o.start or s >= o.end for o in chosen):
                chosen.append(_Occ(s, e, "fuzzy"))
        return chosen


def _find_all(text: str, needle: str) -> list[tuple[int, int]]:
    out, i = [], text.find(needle) if needle else -1
    while i >= 0:
        out.append((i, i + len(needle)))
        i = text.find(needle, i + 1)
    return out


def _snap(text: str, start: int, end: int, mlen: int) -> tuple[int, int] | None:
    """Move an in-word match to word boundaries, or None when that would change the mention too much.

    At each end the cheaper fix wins: drop a stray fragment ("s diabetes" in "patients diabetes" → "diabetes")
    or complete a truncated word ("diabet" → "diabetes"). Completing the END of a word is allowed up to 3 added
    characters or 30% of the mention (LLMs truncate and drop plural endings). Completing the START of a word
    needs the 30% rule: a missing word start usually means a different word ("ALL" inside "small", "tension"
    inside "hypertension"), so the 3-character allowance would do harm there.
    """
    n = len(text)
    left_add = right_add = 0
    if not _at_boundary(text, start):
        ws, we = start, start
        while ws > 0 and _is_word(text[ws - 1]):
            ws -= 1
        while we < n and _is_word(text[we]):
            we += 1
        if we - start < start - ws and we < end:
            start = we
        else:
            left_add, start = start - ws, ws
    if not _at_boundary(text, end):
        ws, we = end, end
        while ws > 0 and _is_word(text[ws - 1]):
            ws -= 1
        while we < n and _is_word(text[we]):
            we += 1
        if end - ws < we - end and ws > start:
            end = ws
        else:
            right_add, end = we - end, we
    while start < end and (text[start].isspace() or text[start] in _TRIM_CHARS):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _TRIM_CHARS):
        end -= 1
    if start >= end:
        return None
    added = left_add + right_add
    if (left_add == 0 and right_add <= 3) or added <= 0.3 * mlen:
        return start, end
    return None


def _resolve_label(label: str, config: AlignConfig) -> tuple[str | None, str | None]:
    """(canonical label, repair kind or None); (None, None) when the label is unknown."""
    lab = label.strip()
    if lab in config.labels:
        return lab, None
    key = _label_key(lab)
    for alias, target in (config.case_map or {}).items():
        if _label_key(alias) == key:
            return target, "label_case"
    for known in config.labels:
        if _label_key(known) == key:
            return known, "label_case"
    return None, None


def _label_key(label: str) -> str:
    return re.sub(r"[\s_\-]+", "", label.casefold())


def _place(sent: _Sentence, mention: Mention, config: AlignConfig) -> tuple[list[_Occ], list[str], bool, str | None]:
    """(occurrences in preference order, repairs so far, pinned, rejection reason)."""
    text = sent.text
    raw = mention.text.strip()
    m = _trim(raw)
    repairs: list[str] = []
    near: int | None = None
    if mention.start is not None or mention.end is not None:
        s, e = mention.start, mention.end
        if s is not None and e is not None and 0 <= s < e <= len(text) and text[s:e] in (raw, m):
            if text[s:e] == raw and raw != m:  # offsets include the wrapping: shrink to the trimmed mention
                off = raw.find(m)
                s, e = s + off, s + off + len(m)
            if m != raw:
                repairs.append("trimmed")
            others = [_Occ(a, b, None) for a, b in _find_all(text, m)
                      if a != s and _at_boundary(text, a) and _at_boundary(text, b)]
            return [_Occ(s, e, None), *others], repairs, True, None
        repairs.append("bad_offsets")
        near = s if s is not None else e
    if m != raw:
        repairs.append("trimmed")
    occs, inword = sent.occurrences(m)
    rejection = None
    if not occs and inword:
        snapped: list[_Occ] = []
        for s, e in inword:
            span = _snap(text, s, e, len(m))
            if span and all(span != (o.start, o.end) for o in snapped):
                snapped.append(_Occ(*span, "snapped"))
        occs = snapped
        rejection = None if occs else "partial_word"
    if not occs and config.allow_fuzzy:
        occs = sent.fuzzy(m, config.fuzzy_threshold)
    if not occs:
        return [], repairs, False, rejection or "not_found"
    if near is not None:
        occs = sorted(occs, key=lambda o: abs(o.start - near))
    return occs, repairs, False, None


# ---------------------------------------------------------------------------------------------------------------
# the whole sentence


def align(text: str, mentions: list[Mention], config: AlignConfig, targets: list[Mention] | None = None) -> AlignResult:
    """Exact, sorted, disjoint spans for `mentions` in `text`, with every repair and rejection counted."""
    sent = _Sentence(text)
    repairs: Counter[str] = Counter()
    rejections: Counter[str] = Counter()
    placed: list[_Placed] = []
    for idx, mention in enumerate(mentions):
        label, label_fix = _resolve_label(mention.label, config)
        if label is None:
            rejections["unknown_label"] += 1
            continue
        if not any(_is_word(c) for c in _trim(mention.text)):  # "", "  ", "...", "—": nothing to label
            rejections["empty_mention"] += 1
            continue
        occs, fixes, pinned, rejection = _place(sent, mention, config)
        if rejection:
            rejections[rejection] += 1
            continue
        placed.append(_Placed(idx, label, ([label_fix] if label_fix else []) + fixes, occs, pinned))

    # Longer mentions claim first so "cancer" does not take the "cancer" inside "breast cancer" when another
    # free "cancer" exists; sorting is stable, so equal lengths keep the listed order ("keep the first").
    placed.sort(key=lambda p: (-(p.occs[0].end - p.occs[0].start), p.index))
    claims: dict[tuple[int, int], str] = {}
    primaries: list[tuple[_Placed, _Occ]] = []
    for p in placed:
        occ, reason = _choose(p, claims)
        if reason:
            rejections[reason] += 1
            continue
        claims.setdefault((occ.start, occ.end), p.label)
        primaries.append((p, occ))

    kept: list[tuple[_Placed, _Occ]] = []
    for p, occ in sorted(primaries, key=lambda po: (-(po[1].end - po[1].start), po[0].index)):
        if any(spans_overlap((occ.start, occ.end), (o.start, o.end)) for _, o in kept):
            rejections["overlap"] += 1
            continue
        kept.append((p, occ))
    for p, occ in kept:
        repairs.update(p.repairs)
        if occ.kind:
            repairs[occ.kind] += 1

    spans: list[tuple[int, int, str]] = [(o.start, o.end, p.label) for p, o in kept]
    for p, occ in sorted(kept, key=lambda po: (-(po[1].end - po[1].start), po[0].index)):
        for extra in p.occs:
            if extra is occ or any(spans_overlap((extra.start, extra.end), (s, e)) for s, e, _ in spans):
                continue
            spans.append((extra.start, extra.end, p.label))
            repairs["extra_occurrence"] += 1

    entities = [Entity(start=s, end=e, label=lab, text=text[s:e]) for s, e, lab in sorted(spans)]
    check_invariant(text, entities)
    _check_disjoint(entities)
    missing = _missing_targets(entities, targets or [], config)
    return AlignResult(entities=entities, repairs=repairs, rejections=rejections, missing_targets=missing)


def _choose(p: _Placed, claims: dict[tuple[int, int], str]) -> tuple[_Occ | None, str | None]:
    """The listed span for one mention: the first occurrence not yet claimed (so k listings get k spans)."""
    cands = p.occs[:1] if p.pinned else p.occs
    for occ in cands:
        if not any(spans_overlap((occ.start, occ.end), span) for span in claims):
            return occ, None
    same_span = [claims[(o.start, o.end)] for o in cands if (o.start, o.end) in claims]
    if p.label in same_span:
        return None, "duplicate"
    if same_span:
        return None, "label_conflict"
    return cands[0], None  # only partly overlapped: the overlap pass keeps the longer span


def _target_key(s: str) -> str:
    return " " + " ".join(re.sub(r"[^\w]+|_", " ", _fold_norm(_trim(s))).split()) + " "


def _missing_targets(entities: list[Entity], targets: list[Mention], config: AlignConfig) -> list[str]:
    """Planned targets with no kept entity of the same label equal to, containing or inside them (word-wise)."""
    missing = []
    keyed = [(e.label, _target_key(e.text)) for e in entities]
    for t in targets:
        label, _ = _resolve_label(t.label, config)
        key = _target_key(t.text)
        found = label is not None and key.strip() != "" and any(
            lab == label and (key in ek or ek in key) for lab, ek in keyed if ek.strip())
        if not found:
            missing.append(t.text)
    return missing


def check_invariant(text: str, entities: list[Entity]) -> None:
    """Raise ValueError naming the first entity whose offsets do not reproduce its text.

    A ValueError (not assert) so the check survives `python -O` and callers can catch it.
    """
    for i, e in enumerate(entities):
        if not (0 <= e.start < e.end <= len(text)):
            raise ValueError(f"entity {i} {e.text!r} ({e.label}) offsets {e.start}:{e.end} outside text of "
                             f"length {len(text)}")
        if text[e.start : e.end] != e.text:
            raise ValueError(f"entity {i} {e.text!r} ({e.label}) != text[{e.start}:{e.end}] "
                             f"{text[e.start:e.end]!r}")


def _check_disjoint(entities: list[Entity]) -> None:
    for i in range(1, len(entities)):
        a, b = entities[i - 1], entities[i]
        if b.start < a.end:
            raise ValueError(f"entity {i} {b.text!r} overlaps or precedes entity {i - 1} {a.text!r}")
