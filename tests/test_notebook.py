"""The quick-start notebook runs top to bottom (tiny local LLM, small sample of the real NCBI test split)."""

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.llm
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from medsynth.data.corpora.ner import data_dir_candidates

    if not any(p.exists() for p in data_dir_candidates()) and not os.environ.get("MEDSYNTH_DATA_DIR"):
        pytest.skip("benchmark data (../shared/data) not present")
    monkeypatch.setenv("MEDSYNTH_LLM", "tiny")
    monkeypatch.setenv("MEDSYNTH_NB_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDSYNTH_DATA_DIR", str(next(p for p in data_dir_candidates() if p.exists())))
    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "| zero-shot |" in outputs and "| synthetic |" in outputs
    assert (tmp_path / "work" / "bench" / "plot.png").exists()
