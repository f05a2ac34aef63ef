"""Span rules: make generated span boundaries follow the boundary words the task file declares.

A task's guidelines say which words belong inside a span ("hereditary", "autosomal dominant" before a disease)
and which never start one ("severe"). The LLM reads those guidelines but does not always follow them: in the
reference-matched NCBI-disease run 39 of 95 inheritance modifiers sit just outside the Disease span
(`benchmarks/results/label-conventions.md`), and the trained model then stops short of the corpus's spans. A
label's `span_include`, `span_include_after` and `span_exclude` lists (`medsynth.spec.LabelSpec`, written in
the task file or derived from a labelled `--reference` by `medsynth.generate.conventions`) turn those rules into
a deterministic repair: a span is extended left over an included word that directly precedes it, right over an
included word that directly follows it ("leptin" -> "leptin receptor"), and trimmed past an excluded word it
starts with. Only boundaries move: no text changes, no entity is added or dropped, and
relation indices stay valid.

The same rules also travel with the data (`TaskSpec.span_rules` -> the export's stats.json -> the model's
train_log.json) so that prediction applies them to the model's own spans (`medsynth.train.predict.DecodeConfig`):
a model trained on spans that end at "leptin" still stops there on real text, and the rules then carry it to
"leptin receptor" (ChemProt genes, devel: +1.4 strict F1, three seeds).
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from medsynth.spec import TaskSpec
from medsynth.records import Entity, Example

SPAN_RULES = "span_rules"  # meta key: how many boundaries of this example the rules moved


def _alternation(words: Sequence[str]) -> str | None:
    """One regex group of `words`, longest first so that "autosomal dominant" wins over a shorter prefix."""
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")" if words else None


def _before(words: Sequence[str]) -> re.Pattern | None:
    """Matches one of `words` as whole words ending the text before a span, then whitespace."""
    alts = _alternation(words)
    return re.compile(rf"(?<![\w-]){alts}\s+$", re.IGNORECASE) if alts else None


def _following(words: Sequence[str]) -> re.Pattern | None:
    """Matches whitespace, then one of `words` as a whole word, directly after a span."""
    alts = _alternation(words)
    return re.compile(rf"\s+{alts}(?![\w-])", re.IGNORECASE) if alts else None


def _leading(words: Sequence[str]) -> re.Pattern | None:
    """Matches one of `words` as whole words at the start of a span, then whitespace."""
    alts = _alternation(words)
    return re.compile(rf"{alts}\s+(?=\S)", re.IGNORECASE) if alts else None


def _free(start: int, end: int, others: Sequence[Entity]) -> bool:
    """Whether [start, end) touches no other entity: an extension must never create an overlap."""
    return all(o.end <= start or o.start >= end for o in others)


def _extend(text: str, e: Entity, pattern: re.Pattern, others: Sequence[Entity]) -> int:
    """New start of `e` after extending it left over included words, repeatedly ("familial autosomal dominant")."""
    start = e.start
    while (m := pattern.search(text[:start])) and _free(m.start(), start, others):
        start = m.start()
    return start


def _extend_right(text: str, end: int, pattern: re.Pattern, others: Sequence[Entity]) -> int:
    """New end after extending right over included words, repeatedly ("SH2 domain" -> never past a neighbour)."""
    while (m := pattern.match(text, end)) and _free(end, m.end(), others):
        end = m.end()
    return end


def _trim(text: str, start: int, end: int, pattern: re.Pattern) -> int:
    """New start after dropping excluded leading words; never empties the span."""
    while (m := pattern.match(text, start, end)) and m.end() < end:
        start = m.end()
    return start


Rules = Mapping[str, Mapping[str, Sequence[str]]]  # label -> {spec.SPAN_RULE_KEYS: words}


def apply_span_rules(examples: Sequence[Example], task: TaskSpec) -> tuple[list[Example], dict[str, int]]:
    """Copies of `examples` with boundaries moved by the task's span rules, and counts of what moved."""
    return apply_rules(examples, task.span_rules())


def apply_rules(examples: Sequence[Example], rules: Rules) -> tuple[list[Example], dict[str, int]]:
    """Copies of `examples` with boundaries moved by `rules` (see `TaskSpec.span_rules`), and counts of what moved."""
    include = {lab: _before(r.get("span_include", ())) for lab, r in rules.items()}
    exclude = {lab: _leading(r.get("span_exclude", ())) for lab, r in rules.items()}
    after = {lab: _following(r.get("span_include_after", ())) for lab, r in rules.items()}
    counts = {"span_extended": 0, "span_trimmed": 0, "examples_changed": 0}
    if any(after.values()):  # only then: the counts of runs without such rules keep their old keys
        counts["span_extended_right"] = 0
    out: list[Example] = []
    for ex in examples:
        entities, moved = list(ex.entities), 0
        for i, e in enumerate(entities):
            start = e.start
            if include.get(e.label) is not None:
                start = _extend(ex.text, e, include[e.label], entities[:i] + entities[i + 1:])
                counts["span_extended"] += start < e.start
            if exclude.get(e.label) is not None:
                trimmed = _trim(ex.text, start, e.end, exclude[e.label])
                counts["span_trimmed"] += trimmed > start
                start = trimmed
            end = e.end
            if after.get(e.label) is not None:
                end = _extend_right(ex.text, e.end, after[e.label], entities[:i] + entities[i + 1:])
                counts["span_extended_right"] += end > e.end
            if start != e.start or end != e.end:
                moved += 1
                entities[i] = e.model_copy(update={"start": start, "end": end, "text": ex.text[start:end]})
        if moved:
            counts["examples_changed"] += 1
            ex = ex.model_copy(update={"entities": entities, "meta": {**ex.meta, SPAN_RULES: moved}})
        out.append(ex)
    return out, counts
