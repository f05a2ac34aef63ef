"""Black-box fidelity: how far the synthetic text is from real text of the target domain.

Why: a synthetic set can pass every label check and still teach the wrong distribution — shorter sentences,
clinical-note wording where the benchmark is PubMed abstracts, one mention per sentence where the real data
has three. None of this needs the generator's internals, only the two text collections:

- word-frequency Jensen–Shannon divergence (base 2, so 0 = same distribution, 1 = disjoint vocabularies) and
  the words that contribute most to it;
- sentence-length histograms (words), and — when the reference is labelled — mentions-per-sentence and
  label mix;
- a real-vs-synthetic classifier (TF-IDF word 1–2-grams + logistic regression, 5-fold cross-validated ROC AUC
  on a balanced subsample): 0.5 means the classifier cannot tell them apart, 1.0 means every sentence gives
  itself away.

`write_report` renders all of it as one self-contained HTML file (plots as base64 PNG) plus a JSON of the numbers.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from medsynth.errors import MedsynthError
from medsynth.data.jsonl import json_lines, read_utf8
from medsynth.quality.diversity import words
from medsynth.quality.runs import load_run_examples, merge_quality_json, read_examples_jsonl
from medsynth.records import Example

IOB_SUFFIXES = (".tsv", ".iob", ".conll", ".bio")
TOP_WORDS = 20


@dataclass
class Reference:
    """Real text to compare against; `examples` is set when the source carries entity labels."""

    name: str
    texts: list[str]
    examples: list[Example] | None = None


# -- loading --------------------------------------------------------------------------------------------------
def _iob_examples(sentences: list, prefix: str) -> list[Example]:
    from medsynth.data.tokens import bio_to_spans, detokenize

    out = []
    for i, sent in enumerate(sentences):
        text, toks = detokenize(sent.tokens)
        out.append(Example(id=f"{prefix}-{i}", text=text, entities=bio_to_spans(toks, sent.tags, text)))
    return out


def _jsonl_reference(path: Path) -> Reference:
    rows = []
    for where, obj in json_lines(path, "reference file"):
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise MedsynthError('expected an object with a "text" string', where=where, value=str(obj)[:60])
        rows.append(obj)
    if all("entities" in r for r in rows) and rows:
        examples = read_examples_jsonl(path) if all("id" in r for r in rows) else [
            Example.model_validate({**r, "id": f"ref-{i}"}) for i, r in enumerate(rows)]
        return Reference(str(path), [e.text for e in examples], examples)
    return Reference(str(path), [r["text"] for r in rows])


def load_reference(spec: str, data_dir: str | Path | None = None, default_split: str = "test") -> Reference:
    """A reference from a known corpus (`ncbi-disease:test`, split defaults to `default_split`), an IOB/CoNLL
    file, a .jsonl of Examples or {"text": ...} objects, a .txt with one text per line, or any other corpus spec
    `read_corpus` reads (a BRAT folder, a folder with train/devel/test, .spacy, a saved dataset; `PATH:SPLIT`
    picks a split, else `default_split` when the corpus has it, else its only split)."""
    from medsynth.data.corpora import NER_PRESETS
    from medsynth.data.corpora.ner import list_corpora, load_corpus, read_iob

    path = Path(spec)
    name, _, split = spec.partition(":")
    if not path.exists() and name in list_corpora():
        sentences = load_corpus(name, split or default_split, data_dir)
        examples = _iob_examples(sentences, name)
        return Reference(f"{name}:{split or default_split}", [e.text for e in examples], examples)
    base, colon, wanted = spec.rpartition(":")
    if not path.exists() and colon and (Path(base).exists() or base in NER_PRESETS):
        return _corpus_reference(base, wanted, data_dir)
    if not path.exists() and name in NER_PRESETS:
        return _corpus_reference(spec, default_split, data_dir)
    if not path.exists():
        raise MedsynthError(f"reference not found: neither a file or folder nor a known corpus "
                            f"({', '.join(NER_PRESETS)}, optionally NAME:SPLIT)", where=spec)
    suffix = path.suffix.lower()
    if path.is_file() and suffix in IOB_SUFFIXES:
        examples = _iob_examples(read_iob(path), path.stem)
        return Reference(str(path), [e.text for e in examples], examples)
    if path.is_file() and suffix == ".jsonl":
        return _jsonl_reference(path)
    if path.is_file() and suffix == ".txt":
        texts = [ln.strip() for ln in read_utf8(path, "reference file").splitlines() if ln.strip()]
        return Reference(str(path), texts)
    from medsynth.data.corpora.readers import detect_format

    if path.is_file() and detect_format(path) is None:
        raise MedsynthError("unknown reference format; use a corpus name, .tsv/.conll (IOB), .jsonl, .txt or another "
                            "corpus format (.spacy, a BRAT or datasets folder; docs/corpora.md)", where=str(path))
    return _corpus_reference(spec, default_split, data_dir)


def _corpus_reference(spec: str, split: str, data_dir: str | Path | None) -> Reference:
    """Any `read_corpus` spec as a labelled reference: `split` when the corpus has it, else its last split."""
    from medsynth.data.corpora import read_corpus
    from medsynth.data.corpora.base import canonical_split

    corpus = read_corpus(spec, "ner", data_dir=data_dir)
    chosen = canonical_split(split) if canonical_split(split) in corpus.splits else corpus.splits[-1]
    examples = _iob_examples(corpus.split(chosen), Path(spec).stem or spec)
    return Reference(f"{spec}:{chosen}", [e.text for e in examples], examples)


# -- metrics --------------------------------------------------------------------------------------------------
def js_divergence(p_counts: Counter, q_counts: Counter, top: int = TOP_WORDS) -> tuple[float, list[dict]]:
    """Base-2 Jensen–Shannon divergence of two word distributions and the `top` words contributing most."""
    p_total, q_total = sum(p_counts.values()), sum(q_counts.values())
    if not p_total or not q_total:
        return (0.0 if p_total == q_total else 1.0), []
    contrib = []
    for word in set(p_counts) | set(q_counts):
        p, q = p_counts.get(word, 0) / p_total, q_counts.get(word, 0) / q_total
        m = (p + q) / 2
        c = 0.5 * ((p * math.log2(p / m) if p else 0.0) + (q * math.log2(q / m) if q else 0.0))
        contrib.append((c, word, p, q))
    js = sum(c for c, *_ in contrib)
    contrib.sort(key=lambda x: (-x[0], x[1]))
    rows = [{"word": w, "contribution": round(c, 6), "synthetic": round(p, 6), "reference": round(q, 6),
             "more_in": "synthetic" if p > q else "reference"} for c, w, p, q in contrib[:top]]
    return max(0.0, min(1.0, js)), rows


def _hist(values: list[int], edges: list[int]) -> list[int]:
    out = [0] * (len(edges) - 1)
    for v in values:
        for i in range(len(edges) - 1):
            if edges[i] <= v < edges[i + 1] or (i == len(edges) - 2 and v >= edges[-1]):
                out[i] += 1
                break
    return out


def length_histograms(syn: Sequence[str], ref: Sequence[str], width: int = 5) -> dict:
    """Words per text on shared bins; the last bin also holds everything longer."""
    s_len, r_len = [len(words(t)) for t in syn], [len(words(t)) for t in ref]
    top = max(s_len + r_len + [1])
    cap = min(top, 100)
    edges = list(range(0, cap + width, width))
    return {"edges": edges, "synthetic": _hist(s_len, edges), "reference": _hist(r_len, edges),
            "synthetic_mean": round(sum(s_len) / max(len(s_len), 1), 2),
            "reference_mean": round(sum(r_len) / max(len(r_len), 1), 2)}


def _share(counts: Counter) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {str(k): round(v / total, 4) for k, v in sorted(counts.items())}


def mention_histograms(syn: Sequence[Example], ref: Sequence[Example]) -> dict:
    """Share of sentences with k mentions (k capped at 6+) and the label mix, for labelled references."""
    cap = lambda n: min(n, 6)  # noqa: E731
    return {
        "mentions_per_sentence": {"synthetic": _share(Counter(cap(len(e.entities)) for e in syn)),
                                  "reference": _share(Counter(cap(len(e.entities)) for e in ref))},
        "label_mix": {"synthetic": _share(Counter(x.label for e in syn for x in e.entities)),
                      "reference": _share(Counter(x.label for e in ref for x in e.entities))},
    }


def classifier_auc(syn: Sequence[str], ref: Sequence[str], folds: int = 5, max_per_class: int = 1000,
                   seed: int = 13) -> dict:
    """5-fold CV ROC AUC of TF-IDF (word 1–2-grams) + logistic regression telling real from synthetic.

    Balanced: both classes are subsampled (seeded) to the smaller one's size, so the AUC reflects wording,
    not class sizes. Too few texts for `folds` folds gives auc None with a reason.
    """
    n = min(len(syn), len(ref), max_per_class)
    if n < folds:
        return {"auc": None, "note": f"needs at least {folds} texts per side, got {min(len(syn), len(ref))}"}
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    rng = random.Random(seed)
    s = rng.sample(list(syn), n)
    r = rng.sample(list(ref), n)
    x, y = s + r, [1] * n + [0] * n
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), lowercase=True, sublinear_tf=True),
                          LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(model, x, y, cv=cv, scoring="roc_auc", n_jobs=1)
    return {"auc": round(float(scores.mean()), 4), "auc_std": round(float(scores.std()), 4),
            "folds": [round(float(v), 4) for v in scores], "per_class": n}


def fidelity(synthetic: Sequence[Example], reference: Reference, seed: int = 13) -> dict:
    """Every fidelity number (JSON-ready)."""
    syn_texts = [e.text for e in synthetic]
    p = Counter(w for t in syn_texts for w in words(t))
    q = Counter(w for t in reference.texts for w in words(t))
    js, top = js_divergence(p, q)
    out = {
        "reference": reference.name, "synthetic_texts": len(syn_texts), "reference_texts": len(reference.texts),
        "reference_labelled": reference.examples is not None,
        "js_divergence": round(js, 4), "top_diverging_words": top,
        "lengths": length_histograms(syn_texts, reference.texts),
        "classifier": classifier_auc(syn_texts, reference.texts, seed=seed),
    }
    if reference.examples is not None:
        out.update(mention_histograms(synthetic, reference.examples))
    return out


# -- rendering ------------------------------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _bars(title: str, keys: list[str], series: dict[str, list[float]], xlabel: str, horizontal: bool = False) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2 if not horizontal else max(3.2, 0.28 * len(keys))))
    width = 0.8 / max(len(series), 1)
    for j, (label, vals) in enumerate(series.items()):
        pos = [i + (j - (len(series) - 1) / 2) * width for i in range(len(keys))]
        (ax.barh if horizontal else ax.bar)(pos, vals, width, label=label)
    if horizontal:
        ax.set_yticks(range(len(keys)), keys)
        ax.invert_yaxis()
    else:
        ax.set_xticks(range(len(keys)), keys, rotation=45 if len(keys) > 8 else 0)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.legend()
    return _png(fig)


def _norm(vals: list[int]) -> list[float]:
    total = sum(vals) or 1
    return [v / total for v in vals]


def _plots(m: dict) -> list[tuple[str, str]]:
    lengths = m["lengths"]
    edges = lengths["edges"]
    keys = [f"{edges[i]}–{edges[i + 1] - 1}" for i in range(len(edges) - 2)] + [f"{edges[-2]}+"]
    plots = [("Sentence length (words), share of texts",
              _bars("Sentence length", keys, {"synthetic": _norm(lengths["synthetic"]),
                                              "reference": _norm(lengths["reference"])}, "words"))]
    top = m["top_diverging_words"]
    if top:
        plots.append(("Top diverging words (relative frequency)",
                      _bars("Top diverging words", [t["word"] for t in top],
                            {"synthetic": [t["synthetic"] for t in top], "reference": [t["reference"] for t in top]},
                            "relative frequency", horizontal=True)))
    for key, title in (("mentions_per_sentence", "Mentions per sentence"), ("label_mix", "Label mix")):
        if key in m:
            both = m[key]
            ks = sorted(set(both["synthetic"]) | set(both["reference"]), key=lambda k: (len(k), k))
            plots.append((f"{title}, share", _bars(title, ks, {side: [both[side].get(k, 0.0) for k in ks]
                                                               for side in ("synthetic", "reference")}, "")))
    return plots


def render_html(m: dict, title: str) -> str:
    esc = html.escape
    auc = m["classifier"].get("auc")
    auc_txt = f"{auc:.3f} ± {m['classifier']['auc_std']:.3f} ({m['classifier']['per_class']} texts per side)" \
        if auc is not None else esc(m["classifier"].get("note", "n/a"))
    rows = "".join(f"<tr><td>{esc(t['word'])}</td><td>{t['contribution']:.5f}</td><td>{t['synthetic']:.5f}</td>"
                   f"<td>{t['reference']:.5f}</td><td>{t['more_in']}</td></tr>" for t in m["top_diverging_words"])
    imgs = "".join(f"<h3>{esc(cap)}</h3><img alt='{esc(cap)}' src='{src}'>" for cap, src in _plots(m))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}</style></head>
<body><h1>{esc(title)}</h1>
<p>Synthetic texts: {m['synthetic_texts']} &middot; reference <code>{esc(m['reference'])}</code>: {m['reference_texts']} texts</p>
<table><tr><th>metric</th><th>value</th><th>reads as</th></tr>
<tr><td>word-frequency Jensen–Shannon divergence (base 2)</td><td>{m['js_divergence']:.4f}</td><td>0 = same distribution, 1 = disjoint</td></tr>
<tr><td>real-vs-synthetic classifier ROC AUC (5-fold CV)</td><td>{auc_txt}</td><td>0.5 = indistinguishable, 1.0 = trivially separable</td></tr>
<tr><td>mean words per text (synthetic / reference)</td><td>{m['lengths']['synthetic_mean']} / {m['lengths']['reference_mean']}</td><td></td></tr>
</table>
<h2>Top {len(m['top_diverging_words'])} diverging words</h2>
<table><tr><th>word</th><th>JS contribution</th><th>synthetic freq</th><th>reference freq</th><th>more in</th></tr>{rows}</table>
<h2>Distributions</h2>{imgs}
</body></html>
"""


def write_report(run_dir: str | Path, reference: str, out: str | Path | None = None,
                 data_dir: str | Path | None = None) -> dict:
    """Compare a run's examples with `reference`; write OUT (HTML, default RUN_DIR/report.html) and OUT.json,
    and record the headline numbers under "fidelity" in RUN_DIR/quality.json."""
    run = Path(run_dir)
    ref = load_reference(reference, data_dir)
    examples = load_run_examples(run)
    metrics = fidelity(examples, ref)
    out_path = Path(out) if out else run / "report.html"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(render_html(metrics, f"medsynth fidelity report: {run.name} vs {ref.name}"), encoding="utf-8")
    out_path.with_suffix(".json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    merge_quality_json(run, "fidelity", {"reference": ref.name, "js_divergence": metrics["js_divergence"],
                                         "classifier_auc": metrics["classifier"].get("auc"),
                                         "report": str(out_path)})
    return metrics
