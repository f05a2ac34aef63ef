"""Data-quality controls: dedup, diversity, privacy, contamination, fidelity report (no LLM involved)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from medsynth.errors import MedsynthError
from medsynth.quality import card_section, quality_summary
from medsynth.quality.contamination import benchmark_test_texts, contamination
from medsynth.quality.dedup import MinHasher, dedup, find_duplicates, shingles
from medsynth.quality.diversity import distinct_n, diversity
from medsynth.quality.fidelity import fidelity, load_reference, write_report, Reference
from medsynth.quality.privacy import scan_text
from medsynth.spec import get_task
from medsynth.records import Entity, Example


def ex(i: int | str, text: str, ents: list[tuple[str, str]] = (), style: str | None = None) -> Example:
    entities = []
    for mention, label in ents:
        start = text.index(mention)
        entities.append(Entity(start=start, end=start + len(mention), label=label, text=mention))
    meta = {"plan": {"style": style}} if style else {}
    return Example(id=str(i), text=text, entities=entities, meta=meta)


BASE = ("The patient developed severe hepatotoxicity after six weeks of isoniazid therapy for latent "
        "tuberculosis and was admitted to the hospital")


# -- dedup ----------------------------------------------------------------------------------------------------
def test_exact_and_near_duplicates_are_found_and_the_first_is_kept():
    exs = [
        ex("a", BASE + "."),
        ex("b", "Cisplatin nephrotoxicity was reported in two children with neuroblastoma."),
        ex("c", BASE.upper() + " !"),  # exact after normalisation
        ex("d", BASE + " yesterday."),  # one word added: Jaccard 18/19 shingles
        ex("e", "Metformin was stopped because of lactic acidosis in an elderly woman with renal failure."),
    ]
    result = find_duplicates(exs, 0.8)
    assert result.clusters == [["a", "c", "d"]]
    assert result.drop_ids == ["c", "d"]
    assert (result.exact_duplicates, result.near_duplicates) == (1, 1)
    kept, res2 = dedup(exs)
    assert [k.id for k in kept] == ["a", "b", "e"]
    assert res2.counts()["kept"] == 3 and res2.counts()["dropped"] == 2


def test_distinct_texts_are_not_duplicates_and_results_are_deterministic():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(400)]
    exs = [ex(i, " ".join(rng.choice(vocab) for _ in range(20))) for i in range(150)]
    r1 = find_duplicates(exs)
    assert r1.clusters == [] and r1.drop_ids == []
    # Same input, fresh hasher: same signatures (hashlib, seeded numpy), so same answer in any process.
    assert (MinHasher(64, 5).signature(shingles(exs[0].text)) == MinHasher(64, 5).signature(shingles(exs[0].text))).all()


def test_near_duplicate_below_threshold_is_kept():
    a = ex("a", "Aspirin induced asthma was seen in three adults with nasal polyps and chronic sinusitis.")
    b = ex("b", "Aspirin induced asthma was seen in three adults with severe eczema and recurrent urticaria.")
    assert find_duplicates([a, b], 0.8).drop_ids == []
    assert find_duplicates([a, b], 0.3).drop_ids == ["b"]


# -- diversity ------------------------------------------------------------------------------------------------
def test_diversity_numbers_on_hand_made_examples():
    task = get_task("ner")
    exs = [
        ex(1, "a b c", [("a", "Chemical")], style=task.styles[0].name),
        ex(2, "a b d", [("a", "Chemical"), ("d", "Disease")], style=task.styles[0].name),
        ex(3, "A B C", [("A", "Chemical")]),
    ]
    assert distinct_n(["a b c", "a b d"], 1) == round(4 / 6, 4)
    assert distinct_n(["a b c", "a b d"], 2) == round(3 / 4, 4)
    d = diversity(exs, task)
    assert d["distinct_1"] == round(4 / 9, 4)
    assert d["distinct_3"] == round(2 / 3, 4)
    assert d["unique_sentences"] == 2 and d["unique_sentence_ratio"] == round(2 / 3, 4)
    assert d["mentions"]["per_label"]["Chemical"] == {"mentions": 3, "unique": 1, "unique_ratio": round(1 / 3, 4)}
    assert d["mentions"]["overall"]["unique"] == 2
    assert d["mentions_per_sentence"] == {"1": 2, "2": 1}
    assert d["label_coverage"]["examples_with_label"] == {"Chemical": 3, "Disease": 1}
    assert d["label_coverage"]["missing"] == []
    assert d["style_coverage"]["counts"] == {"?": 1, task.styles[0].name: 2}
    assert d["style_coverage"]["covered"] == 1 and len(d["style_coverage"]["missing"]) == len(task.styles) - 1
    assert d["top_openings"] == [{"opening": "a b c", "count": 2, "share": round(2 / 3, 4)}]
    json.dumps(d)  # JSON-ready


# -- privacy --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, kind", [
    ("Mr. John Smith was admitted with chest pain.", "person_name"),
    ("She was seen by Dr. Alvarez in clinic.", "person_name"),
    ("DOB: 03/04/1961, presenting with fever.", "date_of_birth"),
    ("He was born on 12 March 1961 in Leeds.", "date_of_birth"),
    ("Admitted on March 3, 2019 with sepsis.", "date"),
    ("Follow-up on 2019-03-14 showed remission.", "date"),
    ("MRN 4482913, type 2 diabetes.", "mrn"),
    ("Medical record number: A-448291.", "mrn"),
    ("Call the ward at (555) 123-4567.", "phone"),
    ("Contact 555-123-4567 for results.", "phone"),
    ("Her e-mail is jane.doe@example.com.", "email"),
    ("He lives at 221 Baker Street with his wife.", "street_address"),
    ("SSN 123-45-6789 on file.", "ssn"),
    ("Insurance ID: XK9984412 was verified.", "id_number"),
    ("Patient name: Jane Doe", "named_person"),
])
def test_privacy_flags_phi_like_text(text, kind):
    assert kind in {f.kind for f in scan_text(text)}
    for f in scan_text(text):
        assert text[f.start:f.end] == f.text


@pytest.mark.parametrize("text", [
    "The patient received 5 mg/kg of cisplatin in 2019.",
    "Mortality was lower in the treated group (p < 0.001; p = 0.05 for trend).",
    "The rs1801133 polymorphism in MTHFR was associated with neural tube defects.",
    "CYP2D6 poor metabolizers had higher plasma levels of codeine.",
    "COVID-19 pneumonia was complicated by ARDS.",
    "BRCA1 and TP53 mutations were found in 12 of 40 tumours.",
    "Parkinson's disease and Down syndrome were excluded.",
    "Blood pressure was 120/80 mmHg and HbA1c 7.5% at baseline.",
    "A 12-lead ECG showed a QTc of 450 ms.",
    "IL-6 levels of 10.5 pg/mL were measured in March 2019.",
    "Odds ratio 1.23 (95% CI 1.01-1.50) in patients aged 45-65 years followed from 2010-2015.",
    "HLA-B*5701 carriers developed abacavir hypersensitivity.",
    "The trial NCT01234567 enrolled 1,234 patients (PMID 12345678).",
    "Platelets 2.5 x 10^9/L; ICD-10 code E11.9.",
    "Ms patients with MS received interferon beta-1a 30 ug weekly.",
])
def test_privacy_does_not_flag_ordinary_biomedical_text(text):
    assert scan_text(text) == []


# -- contamination --------------------------------------------------------------------------------------------
REF = ["A common human skin tumour is caused by activating mutations in beta - catenin .",
       "Ataxia - telangiectasia ( A - T ) is a recessive multi - system disorder caused by mutations in the ATM gene ."]


def test_contamination_flags_a_planted_13_gram_and_nothing_else():
    planted = ex("p", "We note that ataxia-telangiectasia (A-T) is a recessive multi-system disorder caused by "
                      "mutations in the ATM gene in most families.")
    clean = ex("c", "Ataxia was seen in two children with a recessive disorder of the cerebellum.")
    res = contamination([planted, clean], REF)
    assert res["flagged_ids"] == ["p"] and res["flagged"] == 1 and res["share"] == 0.5
    assert "a recessive multi system disorder caused by mutations in the atm gene" in " | ".join(res["overlapping_ngrams"])
    assert contamination([clean], REF)["flagged"] == 0
    # Plain strings get positional ids (or the given ones).
    assert contamination([planted.text, clean.text], REF, ids=["x", "y"])["flagged_ids"] == ["x"]
    assert contamination([planted.text], REF)["flagged_ids"] == ["0"]


def test_contamination_flags_a_short_copied_sentence_and_loads_benchmarks_when_present(tmp_path):
    res = contamination(["Treatment of acute leukemia in children."], ["Treatment of acute leukemia in children ."])
    assert res["flagged"] == 1
    assert benchmark_test_texts(tmp_path / "no-such-dir") == {}  # no benchmark data: nothing, no error
    refs = benchmark_test_texts()
    if refs:  # ../shared/data present: NCBI test sentences round-trip into their own contamination
        name, texts = next(iter(refs.items()))
        assert texts and contamination(texts[:5], texts)["flagged"] >= 1


# -- fidelity -------------------------------------------------------------------------------------------------
def _clinical(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    drugs, dis = ["cisplatin", "metformin", "warfarin", "isoniazid"], ["nephrotoxicity", "lactic acidosis",
                                                                        "bleeding", "hepatitis"]
    return [f"The patient on {rng.choice(drugs)} developed {rng.choice(dis)} after {rng.randint(2, 9)} weeks."
            for _ in range(n)]


def _genetics(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    genes = ["BRCA1", "ATM", "APC", "CFTR"]
    return [f"Germline mutations of {rng.choice(genes)} segregate with familial tumour predisposition in "
            f"{rng.randint(3, 40)} kindreds studied." for _ in range(n)]


def test_fidelity_identical_corpora_look_the_same_and_different_ones_do_not():
    texts = _clinical(60, 1)
    syn = [ex(i, t) for i, t in enumerate(texts)]
    same = fidelity(syn, Reference("same", texts))
    assert same["js_divergence"] < 1e-9
    assert same["classifier"]["auc"] < 0.7
    other = fidelity(syn, Reference("other", _genetics(60, 2)))
    assert other["js_divergence"] > 0.5
    assert other["classifier"]["auc"] > 0.95
    assert len(other["top_diverging_words"]) == 20


def test_report_writes_html_and_json_for_every_reference_format(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    syn = [ex(i, t, [(t.split()[3], "Chemical")]) for i, t in enumerate(_clinical(30, 3))]
    (run / "data.jsonl").write_text("".join(e.model_dump_json() + "\n" for e in syn))
    txt = tmp_path / "ref.txt"
    txt.write_text("\n".join(_genetics(30, 4)) + "\n")
    iob = tmp_path / "ref.tsv"
    iob.write_text("Germline\tO\nmutations\tO\nof\tO\nBRCA1\tO\ncause\tO\nbreast\tB-Disease\ncancer\tI-Disease\n.\tO\n\n"
                   "APC\tO\nmutations\tO\ncause\tO\npolyposis\tB-Disease\n.\tO\n")
    jl = tmp_path / "ref.jsonl"
    jl.write_text("".join(json.dumps({"text": t}) + "\n" for t in _genetics(10, 5)))
    m = write_report(run, str(txt), tmp_path / "out" / "r.html")
    page = (tmp_path / "out" / "r.html").read_text()
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page
    assert "src='http" not in page and "<script" not in page and "<link" not in page  # self-contained
    assert json.loads((tmp_path / "out" / "r.json").read_text())["js_divergence"] == m["js_divergence"]
    assert json.loads((run / "quality.json").read_text())["fidelity"]["reference"] == str(txt)
    labelled = write_report(run, str(iob), tmp_path / "i.html")
    assert labelled["reference_labelled"] and labelled["label_mix"]["reference"] == {"Disease": 1.0}
    assert labelled["classifier"]["auc"] is None  # 2 reference sentences: too few for 5 folds, said so
    assert not write_report(run, str(jl), tmp_path / "j.html")["reference_labelled"]
    assert load_reference(str(run / "data.jsonl")).examples is not None  # medsynth's own JSONL is labelled


def test_unknown_reference_format_is_one_line_naming_the_file(tmp_path, capsys):
    from medsynth.cli.main import main

    bad = tmp_path / "ref.xlsx"
    bad.write_text("x")
    with pytest.raises(MedsynthError, match="ref.xlsx.*unknown reference format"):
        load_reference(str(bad))
    run = tmp_path / "run"
    run.mkdir()
    (run / "data.jsonl").write_text(ex(1, "Cisplatin causes nephrotoxicity.").model_dump_json() + "\n")
    assert main(["report", str(run), "--reference", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ref.xlsx" in err and "unknown reference format" in err
    with pytest.raises(MedsynthError, match="not found"):
        load_reference(str(tmp_path / "missing.txt"))


def test_report_cli_on_a_txt_reference(tmp_path, capsys):
    from medsynth.cli.main import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "data.jsonl").write_text("".join(ex(i, t).model_dump_json() + "\n" for i, t in enumerate(_clinical(20, 6))))
    ref = tmp_path / "ref.txt"
    ref.write_text("\n".join(_genetics(20, 7)))
    assert main(["report", str(run), "--reference", str(ref)]) == 0
    assert "JS divergence" in capsys.readouterr().out and (run / "report.html").exists() and (run / "report.json").exists()


# -- summary --------------------------------------------------------------------------------------------------
def test_quality_summary_and_card_section():
    task = get_task("ner")
    exs = [ex(1, BASE + ".", [("isoniazid", "Chemical"), ("hepatotoxicity", "Disease")]),
           ex(2, BASE + " today."), ex(3, "Mr. John Smith received cisplatin.", [("cisplatin", "Chemical")])]
    s = quality_summary(exs, task, reference_texts=[BASE])
    assert s["dedup"]["dropped"] == 1 and s["privacy"]["flagged"] == 1
    assert s["contamination"]["flagged"] == 2
    json.dumps(s)
    md = card_section(s, extra={"judge": {"model": "m", "prompt_hash": "h", "mean": 4.5, "unparsable": 0,
                                          "score_histogram": {"4": 1, "5": 1}}})
    assert md.startswith("## Data quality") and "near duplicates" in md and "LLM judge" in md
    assert "contamination" in md.lower() and "the patient developed" in md
    assert "contamination" not in quality_summary(exs, task)


# --- any corpus spec: contamination, lexicon overlap, references (issue 21) ----------------------------------------


def _tiny_corpus(folder: Path) -> Path:
    """train: glorbitis, krell syndrome; test: vantoma (a token file per split, BIOES tags)."""
    folder.mkdir()
    (folder / "train.conll").write_text("Glorbitis S-Disease\nspreads O\n. O\n\n"
                                        "Krell B-Disease\nsyndrome E-Disease\n. O\n", encoding="utf-8")
    (folder / "test.conll").write_text("A O\ncase O\nof O\nvantoma S-Disease\nwas O\nseen O\ntoday O\n. O\n",
                                       encoding="utf-8")
    return folder


def test_lexicon_overlap_with_a_tiny_corpus_reaches_quality_json_and_the_card(tmp_path):
    from medsynth.quality import card_section
    from medsynth.quality.contamination import contamination_against_benchmarks, lexicon_overlap_against_benchmarks

    corpus = str(_tiny_corpus(tmp_path / "corp"))
    task = get_task("ncbi-disease").model_copy(update={"lexicon": {"Disease": ["glorbitis", "Krell syndrome",
                                                                               "vantoma", "dostal palsy"]}})
    exs = [Example(id="a", text="Vantoma and mirovian anemia .", entities=[
        Entity(start=0, end=7, label="Disease", text="Vantoma"),
        Entity(start=12, end=27, label="Disease", text="mirovian anemia")])]
    got = lexicon_overlap_against_benchmarks(exs, task, corpora=(corpus,))
    assert got["lexicon_size"] == 4 and got["distinct_generated_mentions"] == 2
    train, test = got["per_corpus"][corpus]["train"], got["per_corpus"][corpus]["test"]
    assert train["lexicon_terms"] == 2 and train["lexicon_share"] == 0.5 and train["generated_mentions"] == 0
    assert test["lexicon_terms_listed"] == ["vantoma"] and test["generated_share"] == 0.5
    assert lexicon_overlap_against_benchmarks(exs, task, corpora=(str(tmp_path / "none"),)) is None
    section = card_section({"lexicon_overlap": got})
    assert "Lexicon overlap with benchmark mentions" in section and f"| {corpus} | test | 1 (25.0 %) | 1 (50.0 %) |" \
        in section
    # the 13-gram check takes the same specs: a whole test sentence of >= 6 words copied is flagged
    copied = contamination_against_benchmarks(["A case of vantoma was seen today ."], corpora=(corpus,))
    assert copied["flagged"] == 1 and copied["per_corpus"][corpus]["flagged"] == 1


def test_references_accept_any_corpus_spec(tmp_path):
    from medsynth.generate.reference import reference_stats

    corpus = _tiny_corpus(tmp_path / "corp")
    assert load_reference(str(corpus)).name.endswith(":test")  # report --reference: test unless PATH:SPLIT
    assert len(load_reference(f"{corpus}:train").texts) == 2
    brat = tmp_path / "brat"
    brat.mkdir()
    (brat / "d.txt").write_text("Glorbitis spreads fast.\n", encoding="utf-8")
    (brat / "d.ann").write_text("T1\tDisease 0 9\tGlorbitis\n", encoding="utf-8")
    ref = load_reference(str(brat))
    assert ref.texts[0].startswith("Glorbitis spreads fast") and ref.examples[0].entities[0].text == "Glorbitis"
    stats = reference_stats(str(corpus), get_task("ncbi-disease"))  # build --reference: the train split
    assert stats.texts == 2 and stats.labelled
    with pytest.raises(MedsynthError, match="reference not found"):
        load_reference(str(tmp_path / "missing"))
