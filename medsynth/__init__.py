"""medsynth: synthetic medical NER / RE datasets written by a local LLM, checked, and used to train small models.

Data flows task spec → plan → prompt → LLM → parse → align → filter → store → export → train → evaluate;
each step is one module named for it (docs/architecture.md).

The notebook API is the five functions below plus the config classes they take (`SessionConfig`,
`BuildConfig`, `TrainConfig`, `REConfig`, `BenchConfig`, reachable as `medsynth.X`). Everything
is imported on first use, so `import medsynth` stays cheap (no torch, no transformers, no openai).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # for type checkers and editors only; nothing heavy is imported at run time
    from medsynth.llm.session import SessionConfig
    from medsynth.spec import TaskSpec
    from medsynth.train.fit import TrainConfig

__version__ = "0.1.0"
__all__ = ["load_task", "build", "train", "predict", "bench", "SessionConfig", "BuildConfig", "TrainConfig",
           "REConfig", "BenchConfig", "__version__"]

_LAZY = {
    "SessionConfig": "medsynth.llm.session",
    "BuildConfig": "medsynth.generate.build",
    "TrainConfig": "medsynth.train.fit",
    "REConfig": "medsynth.train.rel",
    "BenchConfig": "medsynth.evaluate.bench",
}


def __getattr__(name: str) -> Any:
    """Config classes on first access (PEP 562), so the package import itself stays light."""
    if name == "train":  # the subpackage is the function: importing medsynth.train.* rebinds this name to it
        return import_module("medsynth.train")
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'medsynth' has no attribute {name!r}")


def load_task(name: str | None = None, file: str | Path | None = None) -> "TaskSpec":
    """A task by registry name ("ner", "ncbi-disease", "cdr", ...) or from your own YAML/JSON `file`.

    A `name` that ends in .yaml/.yml/.json is taken as a file, since that is what a notebook user means."""
    from medsynth.spec import get_task

    if file is None and name is not None and name.lower().endswith((".yaml", ".yml", ".json")):
        name, file = None, name

    return get_task(name if name is not None or file is not None else "ner", str(file) if file else None)


def build(task: "TaskSpec | str", out: str | Path, n: int = 200, *, llm: "SessionConfig | None" = None,
          **options: Any) -> dict:
    """Generate (or resume) a labelled synthetic dataset in `out` and export it; returns the build stats.

    `llm` says which model writes (default: the embedded local one, as the CLI); `options` are further
    `BuildConfig` fields (seed, format, max_tokens, curate, ...). A finished run is re-exported without
    starting any LLM, as `python -m medsynth build` does."""
    from medsynth.generate.build import BuildConfig, already_built, export_existing, run_build
    from medsynth.llm.session import SessionConfig, llm_session

    spec = load_task(task) if isinstance(task, str) else task
    llm = llm or SessionConfig()
    cfg = BuildConfig(task=spec, n=n, out=Path(out), **{"max_tokens": llm.max_tokens,
                                                        "temperature": llm.temperature, **options})
    cfg.out.mkdir(parents=True, exist_ok=True)
    if already_built(cfg) and llm.base_url is None:
        return export_existing(cfg)
    with llm_session(llm, log_dir=cfg.out) as session:
        return run_build(cfg, session.client, session.model_name, session.restart)


def predict(model: str | Path, inputs: Sequence[Any], device: str = "auto") -> list:
    """Apply a saved model: texts → entity lists for an NER model, `RelPair`s → labels for a relation model."""
    from medsynth.train.predict import load_predictor

    return load_predictor(model, device=device).predict(list(inputs))


def bench(task: "TaskSpec | str", dataset: str, out: str | Path, *, llm: "SessionConfig | None" = None,
          **options: Any) -> dict:
    """Score zero-shot prompting and small models on a real test split; writes table.md, plot.png and the
    predictions under `out` and returns the per-system results. `options` are further `BenchConfig` fields
    (`kind` follows the task): systems, limit, train_data, train, seed, ..."""
    from medsynth.evaluate.bench import BenchConfig, run_bench
    from medsynth.llm.session import SessionConfig, llm_session

    spec = load_task(task) if isinstance(task, str) else task
    session_cfg = llm or SessionConfig()
    out = Path(out)
    return run_bench(BenchConfig(kind=spec.kind, task=spec, dataset=dataset, out=out, **options),
                     lambda: llm_session(session_cfg, log_dir=out))
