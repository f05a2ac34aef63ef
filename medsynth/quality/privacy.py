"""Flag text that looks like protected health information (PHI) — names with titles, dates of birth and full
dates, record numbers, phone numbers, e-mail and street addresses, SSN-like and other ID numbers.

Why: medsynth's promise is that no patient text is involved, yet an LLM asked for "clinical notes" happily
invents "Mr. John Smith, DOB 03/04/1961, MRN 4482913" — realistic-looking identifiers that a downstream user
cannot tell from a leak (and that may be memorised from real records). These patterns are deliberately narrow:
a flag must mean something, so ordinary biomedical strings — doses ("5 mg/kg"), years ("in 2019"), p-values,
variant ids ("rs1801133"), gene names ("CYP2D6", "BRCA1"), "COVID-19", blood pressure ("120/80") — never match.
It is a screen, not a de-identification tool: unflagged text is not certified PHI-free.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Sequence

from medsynth.records import Example

_MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
           r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_MON = r"(?:0?[1-9]|1[0-2])"
_YEAR4 = r"(?:18|19|20)\d{2}"
# Full dates only (day, month and year): a bare year or "March 2019" identifies nobody.
_DATE = (rf"(?:{_DAY}[/.\-]{_MON}[/.\-]{_YEAR4}|{_MON}[/.\-]{_DAY}[/.\-]{_YEAR4}|{_YEAR4}-{_MON}-{_DAY}"
         rf"|{_DAY}(?:st|nd|rd|th)?\s+{_MONTHS}\.?,?\s+{_YEAR4}|{_MONTHS}\.?\s+{_DAY}(?:st|nd|rd|th)?,?\s+{_YEAR4})")
_CAP_NAME = r"[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
_EPONYM_TAIL = re.compile(r"^(?:'s|’s)?\s+(?:disease|syndrome|sign|test|phenomenon|palsy|law|criteria)\b", re.I)

PATTERNS: dict[str, re.Pattern] = {
    "email": re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"),
    "date_of_birth": re.compile(
        rf"\b(?:DOB|D\.O\.B\.?|[Dd]ate of [Bb]irth|[Bb]orn(?: on)?)\s*[:\-]?\s*{_DATE}(?!\d)"),
    "date": re.compile(rf"(?<![\w/.\-]){_DATE}(?![\w/\-]|\.\d)"),
    "mrn": re.compile(r"\b(?:MRN|[Mm]edical [Rr]ecord(?: [Nn]umber| [Nn]o\.?| #)?|[Rr]ecord (?:[Nn]o\.?|[Nn]umber)|"
                      r"[Cc]hart (?:[Nn]o\.?|[Nn]umber)|[Pp]atient ID)\s*[:#]?\s*(?=[A-Z0-9\-]*\d)[A-Z0-9][A-Z0-9\-]{3,}\b"),
    "ssn": re.compile(r"(?<![\w\-])\d{3}-\d{2}-\d{4}(?![\w\-])"),
    "phone": re.compile(r"(?<![\w/.\-])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.\-])\d{3}[\s.\-]\d{4}(?![\w/\-]|\.\d)"
                        r"|(?<![\w/.\-])\+\d{1,3}(?:[\s.\-]\d{2,5}){2,4}(?![\w/\-]|\.\d)"),
    "street_address": re.compile(
        rf"\b\d{{1,5}}\s+(?:{_CAP_NAME}\s+){{1,3}}(?:Street|St\.|Avenue|Ave\.?|Road|Rd\.?|Boulevard|Blvd\.?|"
        r"Lane|Ln\.?|Drive|Court|Ct\.?|Way|Place|Pl\.?|Terrace|Square)(?!\w)"),
    "id_number": re.compile(
        r"\b(?:ID|[Ii]dentifier|[Aa]ccount|[Ii]nsurance|[Pp]olicy|[Pp]assport|[Ll]icen[cs]e|NHS|[Ss]ocial [Ss]ecurity)"
        r"(?:\s+(?:[Nn]o\.?|[Nn]umber|#)\s*[:#]?\s*|\s*[:#]\s*)"  # a bare "policy 2019" is not an ID
        r"(?=(?:[A-Z\-\s]*\d){4})[A-Z0-9][A-Z0-9\-]*(?:\s\d{3,4}){0,2}\b"),
    "person_name": re.compile(rf"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+(?:{_CAP_NAME}\s+)?{_CAP_NAME}\b"),
    "named_person": re.compile(rf"\b(?:[Pp]atient [Nn]ame|[Nn]ame)\s*:\s*{_CAP_NAME}(?:\s+{_CAP_NAME})+\b"),
}
# On overlapping matches the earlier kind in this order wins (a DOB is not reported again as a plain date).
ORDER = ["email", "date_of_birth", "mrn", "id_number", "ssn", "phone", "date", "street_address", "person_name",
         "named_person"]


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    text: str


def _is_eponym(text: str, match: re.Match) -> bool:
    """"Dr. Parkinson's disease"-like phrases name a disease, not a person."""
    return bool(_EPONYM_TAIL.match(text[match.end():]))


def scan_text(text: str) -> list[Finding]:
    """PHI-like spans in `text`, non-overlapping, in text order."""
    found: list[Finding] = []
    for kind in ORDER:
        for m in PATTERNS[kind].finditer(text):
            if kind == "person_name" and _is_eponym(text, m):
                continue
            if kind in ("mrn", "id_number") and not re.search(r"\d", m.group()):
                continue
            if any(m.start() < f.end and f.start < m.end() for f in found):
                continue
            found.append(Finding(kind, m.start(), m.end(), m.group()))
    return sorted(found, key=lambda f: f.start)


def scan(examples: Sequence[Example]) -> dict[str, list[Finding]]:
    """{example id: findings} for the examples with at least one finding."""
    out = {}
    for ex in examples:
        hits = scan_text(ex.text)
        if hits:
            out[ex.id] = hits
    return out


def privacy_summary(examples: Sequence[Example], max_listed: int = 20) -> dict:
    """Counts by kind plus a few flagged examples, for the dataset card (JSON-ready)."""
    findings = scan(examples)
    kinds = Counter(f.kind for hits in findings.values() for f in hits)
    n = len(examples)
    return {
        "examples": n,
        "flagged": len(findings),
        "share": round(len(findings) / n, 4) if n else 0.0,
        "findings_by_kind": dict(sorted(kinds.items())),
        "flagged_examples": [{"id": i, "findings": [asdict(f) for f in hits]}
                             for i, hits in list(findings.items())[:max_listed]],
    }
