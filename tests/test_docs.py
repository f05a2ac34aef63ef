"""The README stays a front page, every relative link in it and in docs/ resolves, and the docs site builds strictly.

These guard the documentation against the two ways it rots: a README that grows back into a lab notebook, and
links that break when a file or heading moves (the site build catches intra-site links; the link check also covers
README links and links from docs/ to repository files, which MkDocs does not see).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_LIMIT_BYTES = 15 * 1024

# [text](target) and [text](target "title"); images too. Reference-style links are not used in these files.
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def relative_links(markdown: str) -> list[str]:
    """Link targets that point into the repository: no scheme, no mail, no pure #anchor; code is not prose."""
    prose = INLINE_CODE.sub("", FENCE.sub("", markdown))
    targets = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue
        targets.append(target)
    return targets


def broken_links(path: Path) -> list[str]:
    """Targets in `path` whose file (anchor and query dropped) does not exist, relative to the file's folder."""
    broken = []
    for target in relative_links(path.read_text(encoding="utf-8")):
        file_part = target.split("#", 1)[0].split("?", 1)[0]
        if file_part and not (path.parent / file_part).exists():
            broken.append(target)
    return broken


def documentation_files() -> list[Path]:
    """README.md and docs/*.md (the task's scope), plus the files results moved to, which link to each other."""
    return [
        ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "README.md",
        *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks" / "notes").glob("*.md")),
    ]


def test_relative_links_parser_skips_urls_anchors_and_code() -> None:
    text = (
        "[a](docs/a.md) [b](https://x.org/b.md) [c](#top) [d](mailto:x@y) ![e](img/e.png)\n"
        "`[f](not/a/link.md)`\n```\n[g](fenced.md)\n```\n[h](docs/h.md#part \"title\")"
    )
    assert relative_links(text) == ["docs/a.md", "img/e.png", "docs/h.md#part"]


def test_a_missing_target_is_reported(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# there\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md#x) [bad](missing.md) [web](https://example.org)\n", encoding="utf-8")
    assert broken_links(page) == ["missing.md"]


def test_readme_is_a_front_page_under_15_kb() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size < README_LIMIT_BYTES, f"README.md is {size} bytes; move detail into docs/ or benchmarks/"


def test_readme_keeps_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make test" in readme  # CI runs exactly the README's test command
    assert "make demo" in readme
    assert ". .venv/bin/activate" in readme


@pytest.mark.parametrize("path", documentation_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(path: Path) -> None:
    assert broken_links(path) == [], f"{path.relative_to(ROOT)}: links to missing files"


def test_every_nav_page_exists() -> None:
    nav_pages = re.findall(r"^\s*-\s*[^:\n]+:\s*(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M)
    assert nav_pages, "mkdocs.yml has no nav"
    missing = [p for p in nav_pages if not (ROOT / "docs" / p).is_file()]
    assert missing == []


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
    reason="mkdocs / mkdocstrings not installed (pip install -e '.[docs]'; the test extra has them)",
)
def test_mkdocs_build_strict_passes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
