"""Invented relation-extraction fixtures (no benchmark text): gene/disease sentences as RelPairs and as files
in the layouts the real corpora use (GAD TSV, ChemProt BioCreative VI TSVs, PubTator)."""

from __future__ import annotations

from pathlib import Path

from medsynth.data.corpora.rel import write_pairs
from medsynth.records import Entity, RelPair

GENES = ["ZORB1", "KAPLIN", "TREXA2", "MOLVIN", "GRENT4", "PASKA"]
DISEASES = ["glorbitis", "vantoma", "krell syndrome", "mirovian anemia", "dostal palsy", "tarnick fever"]
POSITIVE = "Variants of {g} raise the risk of {d} in carriers."
NEGATIVE = "Variants of {g} showed no link with {d} in this cohort."


def gad_pair(i: int, positive: bool, split: str = "train") -> RelPair:
    g, d = GENES[i % len(GENES)], DISEASES[(i * 5 + 1) % len(DISEASES)]
    text = (POSITIVE if positive else NEGATIVE).format(g=g, d=d)
    gs, ds = text.index(g), text.index(d)
    return RelPair(id=f"p{i:04d}", text=text, head=Entity(start=gs, end=gs + len(g), label="Gene", text=g),
                   tail=Entity(start=ds, end=ds + len(d), label="Disease", text=d),
                   label="Association" if positive else "none", split=split)


def write_gad_run(folder: Path, n_train: int = 24, n_val: int = 8) -> Path:
    """A generated-style RE run: pairs.jsonl (+ stats.json with the task name)."""
    pairs = [gad_pair(i, i % 2 == 0, "train") for i in range(n_train)]
    pairs += [gad_pair(100 + i, i % 2 == 0, "validation") for i in range(n_val)]
    folder.mkdir(parents=True, exist_ok=True)
    write_pairs(folder / "pairs.jsonl", pairs)
    (folder / "stats.json").write_text('{"task": "gad.v1"}\n', encoding="utf-8")
    return folder


def gad_tsv_rows(n: int, offset: int = 0) -> list[tuple[str, int]]:
    """GAD-style masked sentences: (sentence with @GENE$ and @DISEASE$, label)."""
    rows = []
    for i in range(n):
        pos = (i + offset) % 2 == 0
        rows.append(((POSITIVE if pos else NEGATIVE).format(g="@GENE$", d="@DISEASE$"), int(pos)))
    return rows


def write_gad_dir(root: Path, folds: tuple[int, ...] = (1, 2), n_train: int = 20, n_test: int = 8) -> Path:
    for k in folds:
        d = root / "gad" / "biomedbert-biobert-datasets" / "RE" / "GAD" / str(k)
        d.mkdir(parents=True, exist_ok=True)
        (d / "train.tsv").write_text("".join(f"{s}\t{lab}\n" for s, lab in gad_tsv_rows(n_train, k)), encoding="utf-8")
        test = "index\tsentence\tlabel\n" + "".join(f"{i}\t{s}\t{lab}\n" for i, (s, lab) in
                                                     enumerate(gad_tsv_rows(n_test, k + 1)))
        (d / "test.tsv").write_text(test, encoding="utf-8")
        (d / "dev.tsv").write_text("", encoding="utf-8")
    return root
