"""Token-per-line corpus files: CoNLL, IOB1, IOB2, BIOES / BILOU, tab or space separated.

One token per line, a blank line between sentences, the token in the first column and the tag in the last (any
middle columns, e.g. CoNLL-2003 POS/chunk columns, are ignored but every line must have as many). `-DOCSTART-` lines
break sentences; `#` lines that are not themselves a token line (`# text = ...`, `# sent_id = 3`) are comments.

Every scheme is turned into IOB2, the form seqeval's strict mode and medsynth's scorers expect: S-/U- become B-,
E-/L- become I-, and an I- that opens an entity (IOB1, or a slip in an IOB2 file) becomes B- and is counted in
`IOBSentence.repaired`, because seqeval would otherwise silently drop that entity from the gold standard.

The built-in MTL files are read with `sep="\\t", scheme="iob2", comments=False`: exactly the rules `read_iob`
always had, so every preset's sentences stay identical.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from medsynth.data.corpora.base import ANY_SCHEME_TAG_RE, DOCSTART, TAG_RE, IOBSentence, read_text
from medsynth.errors import MedsynthError

log = logging.getLogger(__name__)

SCHEMES = ("auto", "iob2", "iob1", "bioes")
_TO_IOB = {"B": "B", "I": "I", "S": "B", "U": "B", "E": "I", "L": "I"}


@dataclass
class _Row:
    token: str
    tag: str
    line: int


class _Columns:
    """Splits lines into columns and holds the file to one separator and one column count."""

    def __init__(self, path: Path, sep: str):
        self.path, self.sep = path, sep
        self.ncols: tuple[int, int] | None = None  # (columns, line it was first seen on)

    def split(self, line: str, lineno: int) -> list[str]:
        where = f"{self.path}:{lineno}"
        if self.sep == "\t":
            cols = [c.strip(" ") for c in line.split("\t")]
            if len(cols) < 2:
                hint = "" if self.ncols is None else " (earlier lines are tab-separated: mixed tab/space columns?)"
                raise MedsynthError(f"expected 'token<TAB>tag' but the line has no tab{hint}", where=where, value=line)
        else:
            if "\t" in line:
                raise MedsynthError("mixed tab and space column separators (earlier lines use spaces)", where=where,
                                    value=line)
            cols = line.split()
            if len(cols) < 2:
                raise MedsynthError("expected 'token tag' but the line has one column", where=where, value=line)
        word = "tab-separated" if self.sep == "\t" else "space-separated"
        if self.ncols is None:
            self.ncols = (len(cols), lineno)
        elif len(cols) != self.ncols[0]:
            raise MedsynthError(f"line has {len(cols)} {word} columns but line {self.ncols[1]} had {self.ncols[0]}",
                                where=where, value=line)
        return cols


def _detect_sep(lines: list[str], comments: bool) -> str:
    """Tab when the first content line holds a tab, else runs of spaces."""
    for line in lines:
        if line.strip() and not (comments and line.lstrip().startswith("#")):
            return "\t" if "\t" in line else " "
    return "\t"


def _is_comment(line: str, sep: str, ncols: int | None) -> bool:
    """A '#' line is a comment unless it reads as a token line (token '#', a valid tag, the file's column count)."""
    if not line.lstrip().startswith("#"):
        return False
    cols = line.split("\t") if sep == "\t" else line.split()
    if len(cols) < 2 or (ncols is not None and len(cols) != ncols):
        return True
    return not ANY_SCHEME_TAG_RE.match(cols[-1].strip(" ")) or cols[0].strip(" ") != "#"


def to_iob2(rows: list[tuple[str, str]], repair: bool = True) -> tuple[list[str], int]:
    """IOB2 tags for (where, tag) rows of one sentence in any scheme, and how many opening I- were repaired.

    With `repair=False` an I- that opens an entity is an error naming its `where`.
    """
    out: list[str] = []
    repaired = 0
    for where, tag in rows:
        if tag != "O":
            tag = f"{_TO_IOB[tag[0]]}-{tag[2:]}"
        if tag.startswith("I-"):
            prev = out[-1] if out else "O"
            if prev == "O" or prev[2:] != tag[2:]:
                if not repair:
                    raise MedsynthError(f"I- tag opens an entity (previous tag {prev!r}); IOB2 needs B- here",
                                        where=where, value=tag)
                tag = "B-" + tag[2:]
                repaired += 1
        out.append(tag)
    return out, repaired


def read_conll(path: str | Path, *, sep: str = "auto", scheme: str = "auto", comments: bool = True,
               repair: bool = True) -> list[IOBSentence]:
    """Sentences of a token-per-line file, tags converted to IOB2 (see the module docstring).

    `sep`: "\\t", " " (runs of spaces) or "auto" (the first content line decides; a later line using the other
    separator is an error). `scheme`: "iob2" / "iob1" (tags O, B-, I-), "bioes" (also E-, S-, L-, U-) or "auto" (any
    of them). Errors are one line naming FILE:LINE and the value: a bad tag, a changing column count, mixed
    separators, an empty token or one holding whitespace, bytes that are not UTF-8, a file with no sentences.
    """
    if scheme not in SCHEMES:
        raise MedsynthError(f"unknown tag scheme; known: {', '.join(SCHEMES)}", field="scheme", value=scheme)
    path = Path(path)
    text = read_text(path, "IOB file")
    # split("\n") rather than splitlines(): splitlines also breaks on \x0b, \x1c, \u2028 ... which may sit
    # inside a token and would shift every following line number.
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if sep == "auto":
        sep = _detect_sep(lines, comments)
    columns = _Columns(path, sep)
    tag_re, tag_help = (TAG_RE, "tag is not O, B-TYPE or I-TYPE (IOB2)") if scheme in ("iob2", "iob1") else (
        ANY_SCHEME_TAG_RE, "tag is not O or B-/I-/E-/S-/L-/U-TYPE (IOB2, IOB1, BIOES or BILOU)")

    sentences: list[IOBSentence] = []
    rows: list[_Row] = []

    def flush() -> None:
        if rows:
            tags, repaired = to_iob2([(f"{path}:{r.line}", r.tag) for r in rows], repair)
            sentences.append(IOBSentence([r.token for r in rows], tags, f"{path}:{rows[0].line}", repaired))
            rows.clear()

    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            flush()
            continue
        if comments and _is_comment(line, sep, columns.ncols[0] if columns.ncols else None):
            continue
        where = f"{path}:{lineno}"
        cols = columns.split(line, lineno)
        token, tag = cols[0], cols[-1]
        if token == DOCSTART:
            flush()
            continue
        if not token or any(ch.isspace() for ch in token):
            raise MedsynthError("token is empty or contains whitespace", where=where, value=token)
        if not tag_re.match(tag):
            raise MedsynthError(tag_help, where=where, value=tag)
        rows.append(_Row(token, tag, lineno))
    flush()

    if not sentences:
        raise MedsynthError("IOB file holds no sentences", where=str(path))
    total = sum(s.repaired for s in sentences)
    if total:
        log.warning("%s: %d I- tags opened an entity and were repaired to B- (IOB1 -> IOB2)", path, total)
    return sentences
