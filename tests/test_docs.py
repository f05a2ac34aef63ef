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


# -- runnable shell blocks ---------------------------------------------------------------------------------------

RUNNABLE = re.compile(r"^<!-- runnable( slow)? -->\n```(?:bash|sh|console)\n(.*?)^```", re.M | re.S)


def runnable_blocks(markdown: str) -> list[tuple[bool, list[str]]]:
    """(slow, commands) per block tagged `<!-- runnable -->` / `<!-- runnable slow -->`: continuation lines are
    joined, comments and `. .venv/bin/activate` dropped."""
    blocks = []
    for slow, body in RUNNABLE.findall(markdown):
        joined = re.sub(r"\s*\\\n\s*", " ", body)
        commands = [line.split("  #", 1)[0].strip() for line in joined.splitlines()]
        blocks.append((bool(slow), [c for c in commands if c and not c.startswith(("#", ". ", "source "))]))
    return blocks


def doc_command(command: str, base_url: str) -> list[str]:
    """A documented `medsynth ...` line as the test runs it: the loopback double as LLM, small sizes."""
    import shlex

    argv = shlex.split(command)
    assert argv[0] == "medsynth", f"runnable blocks hold medsynth commands only: {command}"
    argv = [sys.executable, "-m", "medsynth", *argv[1:]]
    if argv[3] == "build":
        argv = [("4" if prev == "--n" else a) for prev, a in zip([None, *argv], argv)]
        argv += ["--base-url", base_url, "--llm-model", "double-model", "--no-progress"]
    elif argv[3] == "train":
        argv += ["--max-steps", "2", "--no-progress"]
    elif argv[3] == "bench":
        argv += ["--base-url", base_url, "--llm-model", "double-model", "--limit", "5", "--max-steps", "2",
                 "--no-progress", "--data-dir", str(ROOT.parent / "shared" / "data")]
    return argv


def test_runnable_blocks_are_found_and_tagged_slow() -> None:
    text = "<!-- runnable -->\n```bash\nmedsynth tasks   # list\nmedsynth build ner \\\n  --n 9\n```\n" \
           "```bash\nmedsynth never\n```\n<!-- runnable slow -->\n```bash\n. .venv/bin/activate\nmedsynth bench\n```\n"
    assert runnable_blocks(text) == [(False, ["medsynth tasks", "medsynth build ner --n 9"]),
                                     (True, ["medsynth bench"])]
    assert doc_command("medsynth build ner --n 200", "U")[3:7] == ["build", "ner", "--n", "4"]


DOCS_WITH_COMMANDS = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
                      if "<!-- runnable" in p.read_text(encoding="utf-8")]


@pytest.mark.parametrize("slow", [False, pytest.param(True, marks=pytest.mark.slow)])
@pytest.mark.parametrize("doc", DOCS_WITH_COMMANDS, ids=lambda p: p.name)
def test_documented_commands_run(doc: Path, slow: bool, tmp_path: Path) -> None:
    """Every command of the doc's runnable blocks (the quick ones, or with `slow` also the long ones) exits 0,
    run in order in one temp folder, as a user pasting them would."""
    sys.path.insert(0, str(ROOT))
    from tests.fake_generator import answer
    from tests.llm_double import LLMDouble

    blocks = [cmds for is_slow, cmds in runnable_blocks(doc.read_text(encoding="utf-8")) if slow or not is_slow]
    if slow and not any(s for s, _ in runnable_blocks(doc.read_text(encoding="utf-8"))):
        pytest.skip("no slow blocks")
    env = {**os.environ, "MEDSYNTH_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    env.pop("OPENAI_BASE_URL", None)
    with LLMDouble(answer) as double:
        for command in [c for cmds in blocks for c in cmds]:
            done = subprocess.run(doc_command(command, double.base_url), cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 0, f"{doc.name}: {command}\n{done.stderr[-2000:]}"


# -- every documented command parses ---------------------------------------------------------------------------
# Blocks that need the user's own files, remote GPU servers or a cluster cannot run here; each of their `medsynth`
# lines is still parsed by the real CLI parser, so a renamed or removed flag, a wrong subcommand or a deprecated
# spelling in the docs fails a test (the runnable blocks above also execute).

SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\n(.*?)^```", re.M | re.S)
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def documented_commands(markdown: str) -> list[list[str]]:
    """argv of every command line in the shell blocks (continuations joined, comments and `VAR=value` prefixes
    dropped)."""
    import shlex

    commands = []
    for body in SHELL_BLOCK.findall(markdown):
        for line in re.sub(r"\s*\\\n\s*", " ", body).splitlines():
            argv = shlex.split(line, comments=True)
            while argv and ENV_ASSIGNMENT.match(argv[0]):
                argv = argv[1:]
            if argv:
                commands.append(argv)
    return commands


def test_documented_commands_are_found_with_env_prefixes_and_comments() -> None:
    text = "```bash\nRAY_ADDRESS=auto medsynth build ner \\\n  --n 9   # note\n# only a comment\nmake demo\n```\n"
    assert documented_commands(text) == [["medsynth", "build", "ner", "--n", "9"], ["make", "demo"]]


def parse_problem(argv: list[str]) -> str | None:
    """Why the CLI parser refuses `medsynth argv...` (or warns about a deprecated spelling); None when it parses."""
    import contextlib
    import io

    from medsynth.cli.main import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exit_:
        if exit_.code not in (0, None):  # --help / --version exit 0
            return err.getvalue().strip().splitlines()[-1]
    return err.getvalue().strip() or None


@pytest.mark.parametrize("doc", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_every_documented_medsynth_command_parses(doc: Path) -> None:
    """Each `medsynth ...` line of README.md and docs/ parses without error or deprecation warning, and the docs
    use the console script (`python -m medsynth` fails outside the venv; modules such as
    `python -m medsynth.llm.build_server` are fine)."""
    problems = []
    for argv in documented_commands(doc.read_text(encoding="utf-8")):
        if argv[:3] == ["python", "-m", "medsynth"]:
            problems.append(f"{' '.join(argv)}: use the `medsynth` console script")
        elif argv[0] == "medsynth" and (why := parse_problem(argv[1:])):
            problems.append(f"{' '.join(argv)}: {why}")
    assert not problems, f"{doc.name}:\n" + "\n".join(problems)


def test_a_wrong_flag_in_a_documented_command_is_caught() -> None:
    assert "unrecognized arguments" in parse_problem(["predict", "--model", "m", "--nope", "x"])
    assert "deprecated" in parse_problem(["train", "--task", "re", "--data", "runs/re"])
    assert parse_problem(["build", "ner", "--n", "5", "--out", "runs/x"]) is None
