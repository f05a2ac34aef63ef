"""Span alignment: every way an LLM misstates a mention, and the invariants that must survive all of them.

All sentences are invented for these tests.
"""

from __future__ import annotations

import random

import pytest

from medsynth.generate.align import AlignConfig, AlignResult, align, check_invariant
from medsynth.errors import MedsynthError
from medsynth.records import Entity, Mention

LABELS = ["Disease", "Chemical", "Gene"]
CFG = AlignConfig(labels=LABELS)


def M(text: str, label: str = "Disease", start: int | None = None, end: int | None = None) -> Mention:
    return Mention(text=text, label=label, start=start, end=end)


def run(text: str, *mentions: Mention, config: AlignConfig = CFG, targets=None) -> AlignResult:
    res = align(text, list(mentions), config, targets=targets)
    assert_sound(text, res, len(mentions))
    return res


def assert_sound(text: str, res: AlignResult, n_mentions: int) -> None:
    """The promises every result keeps, whatever the input."""
    check_invariant(text, res.entities)
    for e in res.entities:
        assert text[e.start : e.end] == e.text and e.text.strip() == e.text
    starts = [e.start for e in res.entities]
    assert starts == sorted(starts)
    for a, b in zip(res.entities, res.entities[1:]):
        assert a.end <= b.start, (a, b)
    # each listed mention is kept or rejected exactly once; extras are the only additions
    assert len(res.entities) == n_mentions - sum(res.rejections.values()) + res.repairs["extra_occurrence"]


def spans(res: AlignResult) -> list[tuple[str, str]]:
    return [(e.text, e.label) for e in res.entities]


# --- exact, trimming, case --------------------------------------------------------------------------------------


def test_exact_match_needs_no_repair():
    text = "Lisinopril was started for resistant hypertension."
    res = run(text, M("Lisinopril", "Chemical"), M("resistant hypertension"))
    assert spans(res) == [("Lisinopril", "Chemical"), ("resistant hypertension", "Disease")]
    assert res.entities[1].start == text.index("resistant")
    assert not res.repairs and not res.rejections


@pytest.mark.parametrize(
    "given",
    ["diabetes.", "'diabetes'", '"diabetes"', "“diabetes”", "‘diabetes’", "**diabetes**", "  diabetes ;", "(diabetes)",
     "diabetes)", "- diabetes"],
)
def test_wrapping_punctuation_is_trimmed(given):
    res = run("She has had diabetes since 2009.", M(given))
    assert spans(res) == [("diabetes", "Disease")]
    assert res.repairs == {"trimmed": 1}


def test_inner_brackets_are_kept():
    text = "Serum interleukin-6 (IL-6) rose after (+)-catechin exposure."
    res = run(text, M("interleukin-6 (IL-6)", "Gene"), M("(+)-catechin", "Chemical"))
    assert spans(res) == [("interleukin-6 (IL-6)", "Gene"), ("(+)-catechin", "Chemical")]
    assert "trimmed" not in res.repairs


def test_case_insensitive_match():
    res = run("Rituximab was given for CHRONIC LYMPHOCYTIC LEUKEMIA.", M("chronic lymphocytic leukemia"))
    assert spans(res) == [("CHRONIC LYMPHOCYTIC LEUKEMIA", "Disease")]
    assert res.repairs == {"case": 1}


def test_sentence_initial_capital_counts_as_case():
    res = run("Warfarin raised the INR.", M("warfarin", "Chemical"))
    assert spans(res) == [("Warfarin", "Chemical")]
    assert res.repairs["case"] == 1


def test_exact_match_preferred_over_case_variant():
    text = "The ALL relapse was treated; all patients recovered."
    res = run(text, M("ALL"))
    assert [(e.text, e.start) for e in res.entities] == [("ALL", 4)]
    assert not res.repairs


# --- normalisation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, mention, expected",
    [
        ("Adults with type-2  diabetes were enrolled.", "type 2 diabetes", "type-2  diabetes"),
        ("Stage IV non-small-cell lung cancer progressed.", "non small cell lung cancer", "non-small-cell lung cancer"),
        ("Stage IV non small cell lung cancer progressed.", "non-small-cell lung cancer", "non small cell lung cancer"),
        ("A Guillain–Barré syndrome flare followed.", "Guillain-Barre syndrome", "Guillain–Barré syndrome"),
        ("Known Crohn’s disease since youth.", "Crohn's disease", "Crohn’s disease"),
        ("Two carriers of α-thalassemia were seen.", "alpha-thalassemia", "α-thalassemia"),
        ("Two carriers of alpha thalassemia were seen.", "α-thalassemia", "alpha thalassemia"),
        ("Dry eyes from Sjögren's syndrome.", "Sjogren's syndrome", "Sjögren's syndrome"),
        ("Dry eyes from Sjo\u0308gren's syndrome.", "Sjögren's syndrome", "Sjo\u0308gren's syndrome"),
        ("Features of mixed\u00a0connective tissue disease.", "mixed connective tissue disease",
         "mixed\u00a0connective tissue disease"),
        ("A hypo\u00adthyroidism workup.", "hypothyroidism", "hypo\u00adthyroidism"),
    ],
)
def test_normalized_variants(text, mention, expected):
    res = run(text, M(mention))
    assert spans(res) == [(expected, "Disease")]
    assert res.repairs == {"normalized": 1}


def test_micro_sign_and_greek_mu_are_the_same():
    text = "Then 200 \u03bcg of levothyroxine daily."  # Greek small mu in the text
    res = run(text, M("200 \u00b5g of levothyroxine", "Chemical"))  # micro sign from the LLM
    assert spans(res) == [("200 \u03bcg of levothyroxine", "Chemical")]
    assert sum(res.repairs.values()) == 1 and set(res.repairs) <= {"case", "normalized"}  # casefold("µ") == "μ"


def test_micro_exact_offsets_are_python_indices():
    text = "Folate 400 µg and β-carotene were added."
    res = run(text, M("β-carotene", "Chemical"), M("µg", "Chemical"))
    by = {e.text: e for e in res.entities}
    assert by["β-carotene"].start == text.index("β") and by["µg"].start == text.index("µ")


# --- word boundaries and snapping -------------------------------------------------------------------------------


def test_all_prefers_the_boundary_match_over_inside_small():
    text = "A small series of children with ALL in remission."
    res = run(text, M("ALL"))
    assert [(e.text, e.start) for e in res.entities] == [("ALL", text.index("ALL"))]


def test_all_inside_small_without_boundary_option_is_rejected():
    res = run("A small series of children in remission.", M("ALL"))
    assert res.entities == [] and res.rejections == {"partial_word": 1}


def test_case_boundary_match_beats_exact_inside_word():
    text = "tumors regressed; the Tumor board met."  # exact "tumor" exists only inside "tumors"
    res = run(text, M("tumor"))
    assert [e.start for e in res.entities] == [text.index("Tumor board")]


def test_truncated_word_is_expanded():
    res = run("A history of diabetes and gout.", M("diabet"))
    assert spans(res) == [("diabetes", "Disease")]
    assert res.repairs == {"snapped": 1}


def test_plural_ending_is_expanded():
    res = run("Multiple renal cysts were found.", M("renal cyst"))
    assert spans(res) == [("renal cysts", "Disease")]
    assert res.repairs == {"snapped": 1}


def test_expansion_too_large_is_rejected():
    res = run("A history of cardiomyopathy.", M("cardio"))
    assert res.entities == [] and res.rejections == {"partial_word": 1}


def test_missing_word_start_is_rejected():
    res = run("Treated for hypertension.", M("tension"))
    assert res.entities == [] and res.rejections == {"partial_word": 1}


def test_stray_fragment_is_contracted():
    res = run("Most patients had fever.", M("s had fever"))
    assert spans(res) == [("had fever", "Disease")]
    res = run("Diagnosed with diabetes mellitus last year.", M("diabetes mellitus l"))
    assert spans(res) == [("diabetes mellitus", "Disease")]
    assert res.repairs == {"snapped": 1}


# --- fuzzy ------------------------------------------------------------------------------------------------------


def test_fuzzy_apostrophe_variant():
    text = "Early Parkinson's disease was suspected."
    res = run(text, M("Parkinsons disease"))
    assert spans(res) == [("Parkinson's disease", "Disease")]
    assert res.repairs == {"fuzzy": 1}


def test_fuzzy_small_typo():
    res = run("Signs of glomerulonephritis on biopsy.", M("glomerulonefritis"))
    assert spans(res) == [("glomerulonephritis", "Disease")]
    assert res.repairs["fuzzy"] == 1


def test_fuzzy_below_threshold_is_not_found():
    res = run("Signs of glomerulonephritis on biopsy.", M("pyelonephritis"))
    assert res.entities == [] and res.rejections == {"not_found": 1}


def test_fuzzy_can_be_disabled():
    cfg = AlignConfig(labels=LABELS, allow_fuzzy=False)
    res = run("Signs of glomerulonephritis on biopsy.", M("glomerulonefritis"), config=cfg)
    assert res.rejections == {"not_found": 1}


def test_fuzzy_threshold_is_respected():
    text = "Signs of glomerulonephritis on biopsy."
    assert run(text, M("glomerulonefritis"), config=AlignConfig(labels=LABELS, fuzzy_threshold=0.99)).rejections == {
        "not_found": 1}


def test_absent_mention_is_not_found():
    res = run("Blood pressure was normal.", M("sarcoidosis"))
    assert res.rejections == {"not_found": 1}


# --- labels and empty mentions ---------------------------------------------------------------------------------


def test_label_case_and_separators_are_normalised():
    cfg = AlignConfig(labels=["Disease", "GeneOrProtein"])
    text = "BRCA1 variants raise ovarian cancer risk."
    res = run(text, M("BRCA1", "gene_or_protein"), M("ovarian cancer", " disease "), config=cfg)
    assert spans(res) == [("BRCA1", "GeneOrProtein"), ("ovarian cancer", "Disease")]
    assert res.repairs == {"label_case": 2}


def test_case_map_aliases():
    cfg = AlignConfig(labels=["Chemical"], case_map={"DRUG": "Chemical"})
    res = run("Heparin was paused.", M("Heparin", "drug"), config=cfg)
    assert spans(res) == [("Heparin", "Chemical")] and res.repairs == {"label_case": 1}


def test_unknown_label_is_rejected():
    res = run("Heparin was paused.", M("Heparin", "Procedure"))
    assert res.entities == [] and res.rejections == {"unknown_label": 1}


@pytest.mark.parametrize("empty", ["", "   ", "...", "\"\"", "—"])
def test_empty_mention_is_rejected(empty):
    res = run("Heparin was paused.", M(empty, "Chemical"))
    assert res.entities == [] and res.rejections == {"empty_mention": 1}


def test_bad_config_is_a_user_error():
    with pytest.raises(MedsynthError):
        AlignConfig(labels=[])
    with pytest.raises(MedsynthError):
        AlignConfig(labels=["Disease"], fuzzy_threshold=1.5)
    with pytest.raises(MedsynthError):
        AlignConfig(labels=["Disease"], case_map={"drug": "Chemical"})


# --- offsets ---------------------------------------------------------------------------------------------------


def test_correct_offsets_are_used():
    text = "Gout flares, then more gout after diuretics."
    second = text.rindex("gout")
    res = run(text, M("gout", start=second, end=second + 4))
    assert res.entities[0].start == second
    assert not res.rejections
    # the sentence-initial "Gout" differs in case: not an extra occurrence of the exact listed string
    assert len(res.entities) == 1


def test_wrong_offsets_fall_back_to_search_nearest_occurrence():
    text = "Gout flares, then more gout, then gout again."
    third = text.rindex("gout")
    res = run(text, M("gout", start=third + 1, end=third + 5))  # off by one
    assert res.repairs["bad_offsets"] == 1
    assert "gout" in {e.text for e in res.entities}
    # all occurrences end up labelled, the listed one being the nearest to the stated offsets
    assert [e.start for e in res.entities] == [0, text.index("gout"), third]


@pytest.mark.parametrize("start, end", [(-3, 2), (10, 500), (9, 3), (4, 4), (None, 7)])
def test_out_of_range_offsets_are_ignored(start, end):
    text = "Acute pancreatitis after alcohol intake."
    res = run(text, M("pancreatitis", start=start, end=end))
    assert spans(res) == [("pancreatitis", "Disease")]
    assert res.repairs == {"bad_offsets": 1}


def test_offsets_around_quoted_mention_are_shrunk():
    text = "He took 'naproxen' twice."
    s = text.index("'naproxen'")
    res = run(text, M("'naproxen'", "Chemical", start=s, end=s + 10))
    assert spans(res) == [("naproxen", "Chemical")] and res.repairs == {"trimmed": 1}


# --- repeated mentions, duplicates, conflicts, overlaps -------------------------------------------------------------


def test_listed_once_labels_all_occurrences():
    text = "Asthma worsened; asthma control then improved with budesonide, asthma-free."
    res = run(text, M("asthma"))
    assert [e.start for e in res.entities] == [0, text.index("asthma control"), text.index("asthma-free")]
    assert res.repairs["extra_occurrence"] == 2


def test_listed_k_times_takes_k_distinct_occurrences():
    text = "Metformin at noon, metformin at night, metformin at dawn."
    res = run(text, M("metformin", "Chemical"), M("metformin", "Chemical"))
    assert len(res.entities) == 3 and len({e.start for e in res.entities}) == 3
    assert res.repairs["extra_occurrence"] == 1 and not res.rejections


def test_duplicate_listing_of_single_occurrence():
    res = run("Metformin was stopped.", M("Metformin", "Chemical"), M("metformin", "Chemical"))
    assert spans(res) == [("Metformin", "Chemical")] and res.rejections == {"duplicate": 1}


def test_same_span_conflicting_labels_keeps_first():
    res = run("Lithium toxicity was suspected.", M("Lithium", "Chemical"), M("Lithium", "Disease"))
    assert spans(res) == [("Lithium", "Chemical")] and res.rejections == {"label_conflict": 1}


def test_overlap_keeps_longer_span():
    text = "Small cell lung cancer with brain metastases."
    res = run(text, M("lung cancer"), M("small cell lung cancer"), M("brain metastases"))
    assert spans(res) == [("Small cell lung cancer", "Disease"), ("brain metastases", "Disease")]
    assert res.rejections == {"overlap": 1}


def test_nested_same_label_is_an_overlap_and_shorter_listing_finds_free_occurrence():
    text = "Breast cancer recurred, and a second cancer appeared."
    res = run(text, M("cancer"), M("Breast cancer"))
    assert spans(res) == [("Breast cancer", "Disease"), ("cancer", "Disease")]
    assert res.entities[1].start == text.rindex("cancer") and not res.rejections
    res = run("Breast cancer recurred.", M("cancer"), M("Breast cancer"))
    assert spans(res) == [("Breast cancer", "Disease")] and res.rejections == {"overlap": 1}


def test_overlap_tie_keeps_earlier_listed():
    text = "Heart failure drugs"
    res = run(text, M("Heart failure"), M("failure drugs", "Chemical"))  # both 13 characters
    assert spans(res) == [("Heart failure", "Disease")] and res.rejections == {"overlap": 1}


# --- targets ---------------------------------------------------------------------------------------------------


def test_targets_found_and_missing():
    text = "Non-small-cell lung cancer and COPD were treated with erlotinib."
    res = run(
        text, M("non small cell lung cancer"), M("COPD"), M("erlotinib", "Chemical"),
        targets=[
            M("lung cancer"),  # contained in a kept entity
            M("copd", "disease"),  # case and label case
            M("Erlotinib", "Disease"),  # wrong label: missing
            M("asthma"),  # absent
            M("non-small cell lung cancer, stage IV"),  # contains a kept entity
        ],
    )
    assert res.missing_targets == ["Erlotinib", "asthma"]


def test_target_not_matched_inside_a_word():
    res = run("A small cell carcinoma.", M("small cell carcinoma"), targets=[M("ALL")])
    assert res.missing_targets == ["ALL"]


# --- check_invariant ------------------------------------------------------------------------------------------


def test_check_invariant_names_bad_entity():
    text = "Anemia and fatigue."
    check_invariant(text, [Entity(start=0, end=6, label="Disease", text="Anemia")])
    with pytest.raises(ValueError, match="fatigue"):
        check_invariant(text, [Entity(start=11, end=17, label="Disease", text="fatigue")])
    with pytest.raises(ValueError, match="outside"):
        check_invariant(text, [Entity(start=11, end=90, label="Disease", text="fatigue.")])


# --- property loop ---------------------------------------------------------------------------------------------

_WORDS = ["acute", "renal", "failure", "small", "ALL", "all", "cell", "type-2", "diabetes", "α-thalassemia",
          "Sjögren’s", "syndrome", "200", "µg", "aspirin", "Aspirin", "non-small-cell", "(IL-6)", "Parkinson's",
          "disease", "—", "and", "with", ",", ".", "gout", "gouty", "hypertension", "tension", "\u00a0"]


def _mutate(rng: random.Random, s: str) -> str:
    choice = rng.randrange(8)
    if choice == 0:
        return s.upper()
    if choice == 1:
        return s.lower()
    if choice == 2:
        return f"'{s}'."
    if choice == 3 and len(s) > 3:
        return s[: rng.randrange(1, len(s))]
    if choice == 4 and len(s) > 3:
        i = rng.randrange(len(s))
        return s[:i] + rng.choice("aeiou") + s[i + 1 :]
    if choice == 5:
        return s.replace("-", " ")
    return s


def test_property_invariants_hold_on_generated_inputs():
    rng = random.Random(20240607)
    labels_seen = 0
    for _ in range(250):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(0, 14))]
        text = rng.choice([" ", "  ", " - "]).join(words)
        mentions = []
        for _ in range(rng.randint(0, 6)):
            if text and rng.random() < 0.8:
                a = rng.randrange(len(text))
                b = min(len(text), a + rng.randint(1, 25))
                piece = _mutate(rng, text[a:b])
            else:
                piece = rng.choice(_WORDS + ["sarcoidosis", ""])
            label = rng.choice(LABELS + ["disease", "Organ"])
            if rng.random() < 0.3:
                start, end = rng.randint(-2, len(text) + 2), rng.randint(-2, len(text) + 4)
                mentions.append(M(piece, label, start=start, end=end))
            elif rng.random() < 0.2 and text:
                a = rng.randrange(len(text))
                b = min(len(text), a + rng.randint(1, 12))
                mentions.append(M(text[a:b], label, start=a, end=b))  # right offsets, maybe mid-word
            else:
                mentions.append(M(piece, label))
        res = align(text, mentions, CFG, targets=mentions[:2])
        assert_sound(text, res, len(mentions))
        assert all(e.label in LABELS for e in res.entities)
        assert set(res.missing_targets) <= {m.text for m in mentions[:2]}
        labels_seen += len(res.entities)
    assert labels_seen > 100  # the loop exercised real placements, not only rejections
