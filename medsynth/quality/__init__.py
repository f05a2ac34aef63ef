"""Data-quality controls for generated datasets, one module per control:

- `dedup`: exact and MinHash/LSH near-duplicates (`find_duplicates`, `dedup`);
- `diversity`: distinct-n, unique sentences and mentions, coverage of labels and styles, repeated openings;
- `privacy`: PHI-looking strings (titled names, dates of birth, record/phone/ID numbers, e-mail, addresses);
- `contamination`: 13-gram overlap with benchmark test splits, and lexicon overlap with their mentions;
- `judge`: LLM-as-judge scores stored per run, and training weights from them;
- `fidelity`: synthetic-vs-real text comparison and its HTML report.

`quality_summary` bundles the cheap, LLM-free controls into one JSON-ready dict for the dataset card, and
`card_section` renders it as markdown. The judge and fidelity report run separately (they need an LLM or a
reference corpus) and leave their numbers in RUN_DIR/quality.json; pass that dict as `extra` to show them.
"""

from __future__ import annotations

from typing import Sequence

from medsynth.spec import TaskSpec
from medsynth.records import Example


def quality_summary(examples: Sequence[Example], task: TaskSpec | None, reference_texts: Sequence[str] | None = None,
                    dedup_threshold: float = 0.8) -> dict:
    """Dedup counts, diversity, privacy counts and (with `reference_texts`) contamination, JSON-ready."""
    from medsynth.quality.contamination import contamination
    from medsynth.quality.dedup import find_duplicates
    from medsynth.quality.diversity import diversity
    from medsynth.quality.privacy import privacy_summary

    out = {
        "dedup": find_duplicates(examples, dedup_threshold).as_dict(max_clusters=10),
        "diversity": diversity(examples, task),
        "privacy": privacy_summary(examples, max_listed=10),
    }
    if reference_texts is not None:
        out["contamination"] = contamination(examples, reference_texts)
    return out


def _table(rows: list[tuple[str, object]], head: tuple[str, str] = ("", "value")) -> str:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def card_section(summary: dict, extra: dict | None = None) -> str:
    """Markdown for the dataset card's "Data quality" section; `extra` is RUN_DIR/quality.json (judge,
    fidelity) when those passes have run."""
    parts = ["## Data quality\n"]
    d = summary.get("dedup")
    if d:
        parts.append(f"### Duplicates (word 3-shingle Jaccard ≥ {d['threshold']})\n" + _table([
            ("examples", d["examples"]), ("exact duplicates", d["exact_duplicates"]),
            ("near duplicates", d["near_duplicates"]), ("duplicate clusters", d["clusters"]),
            ("left after dedup", d["kept"])], ("", "count")))
    v = summary.get("diversity")
    if v:
        m = v["mentions"]["overall"]
        rows = [("distinct-1 / 2 / 3", f"{v['distinct_1']} / {v['distinct_2']} / {v['distinct_3']}"),
                ("unique sentences", f"{v['unique_sentences']} ({_pct(v['unique_sentence_ratio'])})"),
                ("unique mentions (case-insensitive)", f"{m['unique']} of {m['mentions']} ({_pct(m['unique_ratio'])})")]
        rows += [(f"unique {lab} mentions", f"{s['unique']} of {s['mentions']}")
                 for lab, s in v["mentions"]["per_label"].items()]
        cov = v["label_coverage"]
        rows.append(("labels never used", ", ".join(cov["missing"]) or "none"))
        sc = v["style_coverage"]
        if sc["planned"]:
            rows.append(("styles used", f"{sc['covered']} of {sc['planned']}"
                         + (f" (missing: {', '.join(sc['missing'])})" if sc["missing"] else "")))
        hist = ", ".join(f"{k}: {n}" for k, n in v["mentions_per_sentence"].items())
        rows.append(("sentences by number of mentions", hist or "none"))
        parts.append("### Diversity\n" + _table(rows))
        if v["top_openings"]:
            parts.append("### Most repeated sentence openings (first 3 words)\n" + _table(
                [(f"“{o['opening']}”", f"{o['count']} ({_pct(o['share'])})") for o in v["top_openings"]],
                ("opening", "examples")))
    p = summary.get("privacy")
    if p:
        kinds = ", ".join(f"{k} {n}" for k, n in p["findings_by_kind"].items()) or "none"
        parts.append("### Privacy screen (PHI-like strings)\n" + _table([
            ("examples flagged", f"{p['flagged']} ({_pct(p['share'])})"), ("findings by kind", kinds)]))
    c = summary.get("contamination")
    if c:
        parts.append(f"### Benchmark contamination ({c['n']}-gram overlap)\n" + _table([
            ("reference texts", c["reference_texts"]),
            ("examples sharing an n-gram with the reference", f"{c['flagged']} ({_pct(c['share'])})"),
            ("distinct overlapping n-grams", c["overlapping_ngram_count"])]))
    lex = summary.get("lexicon_overlap")
    if lex:
        rows = [f"| {name} | {split} | {v['lexicon_terms']} ({_pct(v['lexicon_share'])}) | "
                f"{v['generated_mentions']} ({_pct(v['generated_share'])}) |"
                for name, splits in lex["per_corpus"].items() for split, v in splits.items()]
        parts.append(f"### Lexicon overlap with benchmark mentions\nShare of the task's {lex['lexicon_size']} "
                     f"lexicon terms and of the {lex['distinct_generated_mentions']} distinct generated mentions "
                     "that are annotated mentions in each benchmark split.\n\n"
                     "| corpus | split | lexicon terms | generated mentions |\n|---|---|---|---|\n"
                     + "\n".join(rows) + "\n")
    j = (extra or {}).get("judge")
    if j:
        hist = ", ".join(f"{k}: {n}" for k, n in j["score_histogram"].items())
        parts.append(f"### LLM judge (`{j['model']}`, prompt `{j['prompt_hash']}`)\n" + _table([
            ("mean score (1–5)", j["mean"] if j["mean"] is not None else "n/a"), ("scores", hist),
            ("unparsable judgements", j["unparsable"])]))
    f = (extra or {}).get("fidelity")
    if f:
        parts.append(f"### Fidelity against `{f['reference']}`\n" + _table([
            ("word-frequency JS divergence", f["js_divergence"]),
            ("real-vs-synthetic classifier AUC", f["classifier_auc"] if f["classifier_auc"] is not None else "n/a")]))
    return "\n".join(parts)
