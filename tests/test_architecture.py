"""The package's shape, checked from its source (ast, nothing imported): no import cycle between modules at
module level, nothing outside medsynth/cli/ importing medsynth.cli, and no kind twins (`*_re.py` / `*_rel.py`)
in the stage folders that have one module per step for both kinds."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "medsynth"

NO_TWIN_FOLDERS = ("train", "evaluate")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path, known: set[str], top_level_only: bool, current: str | None = None) -> set[str]:
    """medsynth modules `path` imports; with `top_level_only`, only imports run when the module loads (not the
    ones inside functions, which break cycles on purpose, nor `if TYPE_CHECKING:` blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    current = current or module_name(path)
    nodes: list[ast.AST] = []
    if top_level_only:
        stack = list(tree.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                stack.extend([*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                              *(h for hd in getattr(node, "handlers", []) for h in hd.body)])
            nodes.append(node)
    else:
        nodes = list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = _resolve(node, current, path.name == "__init__.py")
            names = [f"{mod}.{a.name}" for a in node.names] + [mod]
        for name in names:
            while name and name not in known:  # `from pkg import module` names the module, else the package
                name = name.rpartition(".")[0]
            if name and name != current:
                found.add(name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle_and_its_absence():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_modules():
    mods = modules()
    graph = {name: imports(path, set(mods), top_level_only=True) for name, path in mods.items()}
    # a package's __init__ importing its own submodules is how packages re-export; only module↔module counts
    for name in graph:
        graph[name] = {m for m in graph[name] if not (m.startswith(name + ".") and mods[name].name == "__init__.py")}
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"


def test_only_the_cli_imports_the_cli():
    mods = modules()
    offenders = sorted(
        name for name, path in mods.items()
        if not name.startswith("medsynth.cli") and name != "medsynth.__main__"
        and any(m == "medsynth.cli" or m.startswith("medsynth.cli.") for m in imports(path, set(mods), False))
    )
    assert offenders == [], f"library modules importing medsynth.cli: {offenders}"


@pytest.mark.parametrize("folder", NO_TWIN_FOLDERS)
def test_no_kind_twins(folder: str):
    twins = sorted(p.name for p in (ROOT / folder).glob("*.py") if p.stem.endswith(("_re", "_rel")))
    assert twins == [], f"medsynth/{folder}/ has per-kind twin modules: {twins}"


def test_checks_would_catch_a_cli_import_and_a_twin(tmp_path):
    """The scanners are not vacuous: a planted offender is found."""
    fake = tmp_path / "medsynth"
    (fake / "train").mkdir(parents=True)
    (fake / "train" / "predict_rel.py").write_text("")
    bad = fake / "train" / "x.py"
    bad.write_text("def f():\n    from medsynth.cli.main import main\n")
    known = {"medsynth.cli", "medsynth.cli.main", "medsynth.train.x"}
    assert "medsynth.cli.main" in imports(bad, known, top_level_only=False, current="medsynth.train.x")
    assert "medsynth.cli.main" not in imports(bad, known, top_level_only=True, current="medsynth.train.x")
    assert [p.name for p in (fake / "train").glob("*_rel.py")] == ["predict_rel.py"]

# The LLM layer talks to endpoints and knows nothing of what the answers are for: it must not import the
# stages above it (a limit both sides need lives in medsynth/limits.py).
ABOVE_LLM = ("generate", "data", "quality", "train", "evaluate", "chat")
FORMAT_HELPERS = {"medsynth.data.jsonl"}  # reading/writing JSON Lines: a file format, no stage logic


def test_the_llm_layer_imports_no_stage_above_it():
    mods = modules()
    offenders = sorted(
        f"{name} -> {m}" for name, path in mods.items() if name.startswith("medsynth.llm")
        for m in imports(path, set(mods), False)
        if m.split(".")[1:2] and m.split(".")[1] in ABOVE_LLM and m not in FORMAT_HELPERS
    )
    assert offenders == [], f"medsynth.llm imports stages above it: {offenders}"
