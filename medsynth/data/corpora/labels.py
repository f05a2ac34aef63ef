"""`--label-map CORPUS=TASK,...`: renaming a corpus's labels to a task's, checked in one go.

A practitioner's corpus rarely spells labels as the task does (`DISEASE`, `SpecificDisease`, `GENE-Y`). The map
renames corpus labels (entity types and relation names alike) to task labels; several corpus labels may map to one
task label (`GENE-Y=Gene,GENE-N=Gene`), and `LABEL=O` drops a type (its mentions become O; for RE, pairs touching
such an entity are dropped and such a relation becomes "none"). A corpus label already spelled like a task label up
to case is renamed to the task's spelling without being listed.

Unknown labels stop the run with one line listing all of them: map entries naming a label the corpus lacks (a
typo would otherwise silently leave the label unmapped), and corpus labels with no task label (the model could
never predict them, so recall would be capped for a reason unrelated to the data).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from medsynth.data.corpora.base import IOBSentence
from medsynth.errors import MedsynthError
from medsynth.records import NO_RELATION, RelPair

DROP = "O"


def parse_label_map(text: str | None, option: str = "--label-map") -> dict[str, str]:
    """{corpus label: task label} from 'CORPUS=TASK,CORPUS2=TASK2'; a malformed item is one error naming it."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        src, sep, dst = (part.strip() for part in item.partition("="))
        if not sep or not src or not dst or any(c.isspace() for c in src + dst):
            raise MedsynthError("label map items are CORPUS_LABEL=TASK_LABEL, comma separated", field=option,
                                value=item)
        if src in out and out[src] != dst:
            raise MedsynthError(f"label {src!r} is mapped twice ({out[src]} and {dst})", field=option, value=item)
        out[src] = dst
    return out


def resolve_label_map(corpus_labels: Iterable[str], label_map: dict[str, str] | None,
                      task_labels: Sequence[str] | None = None, name: str = "corpus") -> dict[str, str]:
    """{corpus label: task label or "O"} for every corpus label; unknown labels on either side are one error."""
    corpus = sorted(set(corpus_labels))
    label_map = dict(label_map or {})
    by_lower = {t.lower(): t for t in task_labels or ()}
    unknown_in_map = sorted(k for k in label_map if k not in corpus)
    resolved: dict[str, str] = {}
    for label in corpus:
        target = label_map.get(label, label)
        if task_labels is not None and target != DROP and target not in task_labels:
            target = by_lower.get(target.lower(), target)
        resolved[label] = target
    problems = []
    if unknown_in_map:
        problems.append(f"label map names labels the corpus does not have: {', '.join(unknown_in_map)} "
                        f"(corpus labels: {', '.join(corpus) or 'none'})")
    if task_labels is not None:
        missing = sorted({f"{c}->{t}" if c != t else c for c, t in resolved.items()
                          if t != DROP and t not in task_labels})
        if missing:
            problems.append(f"corpus labels with no task label: {', '.join(missing)} (task labels: "
                            f"{', '.join(task_labels)}; map them with --label-map CORPUS=TASK or drop with =O)")
    if problems:
        raise MedsynthError("; ".join(problems), where=name, field="--label-map")
    return resolved


def map_sentence(sent: IOBSentence, mapping: dict[str, str]) -> IOBSentence:
    """The sentence with entity types renamed (B-/I- kept, so adjacent mentions stay apart); dropped types -> O."""
    tags = []
    for tag in sent.tags:
        target = mapping.get(tag[2:], tag[2:]) if tag != "O" else DROP
        tags.append("O" if target == DROP else f"{tag[:2]}{target}")
    # A dropped type between two I- of one type cannot occur: an I- always continues the entity right before it.
    return IOBSentence(sent.tokens, tags, sent.source, sent.repaired)


def map_pair(pair: RelPair, mapping: dict[str, str]) -> RelPair | None:
    """The pair with entity and relation labels renamed; None when an argument's type is dropped."""
    head, tail = (mapping.get(e.label, e.label) for e in (pair.head, pair.tail))
    if DROP in (head, tail):
        return None
    label = pair.label if pair.label == NO_RELATION else mapping.get(pair.label, pair.label)
    return pair.model_copy(update={
        "head": pair.head.model_copy(update={"label": head}),
        "tail": pair.tail.model_copy(update={"label": tail}),
        "label": NO_RELATION if label == DROP else label,
    })
