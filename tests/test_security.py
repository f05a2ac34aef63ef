"""Security properties, checked on real outputs rather than on code paths:

* an API key planted in OPENAI_API_KEY is sent to the endpoint but is found in NO byte of any file that
  build, train and bench write (store, exports, cards, stats, response cache, model, predictions), nor in
  anything they print or log — not even when the endpoint echoes it back in error messages;
* models are saved as safetensors only (nothing pickled anywhere under the outputs);
* no medsynth source enables `trust_remote_code` or unpickles;
* the embedded llama.cpp server binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from pathlib import Path

import pytest

from medsynth.cli.main import main
from medsynth.data.corpora.ner import CORPORA
from medsynth.llm.embedded import LocalServer
from tests.fake_generator import answer
from tests.llm_double import Fault, LLMDouble, Script

ROOT = Path(__file__).resolve().parent.parent
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")

# Invented sentences (not from any corpus), one token per line, IOB2.
TOY_IOB = """The\tO
patient\tO
developed\tO
gout\tB-Disease
after\tO
the\tO
trip\tO
.\tO

Chronic\tB-Disease
migraine\tI-Disease
improved\tO
slowly\tO
.\tO

No\tO
fever\tB-Disease
was\tO
recorded\tO
.\tO
"""


@pytest.fixture()
def planted_key(tmp_path, monkeypatch):
    key = f"sk-planted-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("OPENAI_BASE_URL", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return key


def _files_holding(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


def test_api_key_never_reaches_disk_logs_or_output(tmp_path, planted_key, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)  # everything any library logs, at every level
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # 2 training steps: one torch thread is 3x faster on 2 shared cores
    build_out, bench_out = tmp_path / "run", tmp_path / "bench"
    data = tmp_path / "data" / CORPORA["ncbi-disease"].folder
    data.mkdir(parents=True)
    (data / "test.tsv").write_text(TOY_IOB, encoding="utf-8")

    # 429 then 500 first, so the retry warnings (which quote the server's message) are exercised too.
    with LLMDouble(Script(Fault.http(429, "slow down", retry_after=0), Fault.http(500, "busy"),
                          default=answer)) as double:
        url = double.base_url
        assert main(["build", "ner", "--n", "12", "--out", str(build_out), "--base-url", url,
                     "--llm-model", "double-model", "--no-progress"]) == 0
        # train writes the model where `bench` looks for the synthetic system's model, so bench reuses it
        assert main(["train", "--data", str(build_out), "--out", str(bench_out / "models" / "synthetic"),
                     "--max-steps", "2", "--batch-size", "4", "--no-progress"]) == 0
        assert main(["bench", "ner", "--dataset", "ncbi-disease", "--data-dir", str(tmp_path / "data"),
                     "--systems", "zero-shot,synthetic", "--train-data", str(build_out), "--out", str(bench_out),
                     "--base-url", url, "--llm-model", "double-model", "--no-progress"]) == 0
        assert main(["bench", "ner", "--dataset", "ncbi-disease", "--report-only", "--out", str(bench_out)]) == 0
        sent = {h.get("authorization") for h in double.headers}
    assert sent == {f"Bearer {planted_key}"}  # the key was really in use ...

    # ... and every output exists, so "not found" below means something
    for path in (build_out / "store.sqlite", build_out / "data.jsonl", build_out / "README.md",
                 build_out / "stats.json", tmp_path / "cache" / "responses.sqlite",
                 bench_out / "models" / "synthetic" / "model.safetensors",
                 bench_out / "models" / "synthetic" / "model_card.md", bench_out / "scores.json",
                 bench_out / "predictions" / "zero-shot.meta.json", bench_out / "table.md"):
        assert path.is_file(), path
    stats = json.loads((build_out / "stats.json").read_text())
    assert stats["retries"] >= 1  # the 429 (the 500 during format negotiation counts as a fallback)

    needle = planted_key.encode()
    secret_part = planted_key.split("-")[-1].encode()
    assert _files_holding(tmp_path, needle) == [] and _files_holding(tmp_path, secret_part) == []
    out, err = capsys.readouterr()
    for text in (out, err, caplog.text):
        assert planted_key not in text and secret_part.decode() not in text

    # safetensors only: nothing pickled anywhere under the outputs (models, datasets, cache, bench work dir)
    pickled = [str(p) for p in tmp_path.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
    assert pickled == []


@pytest.mark.parametrize("status", [401, 400])
def test_key_echoed_by_the_endpoint_is_not_repeated(tmp_path, planted_key, caplog, capsys, status):
    """A misconfigured proxy that echoes the Authorization header into its error body must not make us print
    or log the key (OpenAI masks it; not every server does)."""
    caplog.set_level(logging.DEBUG)

    def echo(request: dict):
        return Fault.http(status, f"invalid credentials: Bearer {planted_key} was rejected")

    with LLMDouble(echo) as double:
        code = main(["build", "ner", "--n", "1", "--out", str(tmp_path / "run"), "--base-url", double.base_url,
                     "--llm-model", "double-model", "--timeout", "2", "--no-progress"])
    assert code != 0
    out, err = capsys.readouterr()
    for text in (out, err, caplog.text):
        assert planted_key not in text
    assert "invalid credentials" in err  # the server's message itself is still shown
    assert _files_holding(tmp_path, planted_key.encode()) == []


def test_sources_never_enable_remote_code_or_unpickle():
    sources = {p: p.read_text(encoding="utf-8") for p in (ROOT / "medsynth").rglob("*.py")}
    assert len(sources) > 10
    for path, text in sources.items():
        assert not re.search(r"trust_remote_code\s*[=:]\s*True", text), path
        assert "trust_remote_code=True" not in text, path
        assert not re.search(r"^\s*(import pickle|from pickle|import dill|import joblib)", text, re.M), path
        for call in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in call.group(1), (path, call.group(0))
    loaders = [p for p, t in sources.items() if "from_pretrained(" in t]
    assert loaders  # the check above looked at the files that load models


@pytest.mark.parametrize("engine", ["llama-server", "llama-cpp-python"])
def test_embedded_server_binds_loopback_only(tmp_path, monkeypatch, engine):
    monkeypatch.setenv("MEDSYNTH_LLAMA_SERVER", str(tmp_path / "llama-server"))  # the command only names it
    cmd = LocalServer(tmp_path / "m.gguf", "alias", port=8123, engine=engine).command()
    if engine == "llama-cpp-python":
        assert cmd[:3] == [sys.executable, "-m", "llama_cpp.server"]
    else:
        assert cmd[0] == str(tmp_path / "llama-server")
    host = cmd.index("--host")
    assert cmd[host + 1] == "127.0.0.1" and cmd.count("--host") == 1
    assert not any(part in ("0.0.0.0", "::", "[::]") for part in cmd)
