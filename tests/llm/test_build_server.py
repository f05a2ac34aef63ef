"""build_server.py: the one-line failures when tools are missing, and the stamp that makes `make setup` a no-op
once llama-server is built (the build itself takes minutes and runs in `make setup`, not here)."""

from __future__ import annotations

import json

import pytest

from medsynth.errors import MedsynthError
from medsynth.llm import build_server


def test_missing_cmake_is_one_line(monkeypatch):
    monkeypatch.setattr(build_server.shutil, "which", lambda name: None)
    with pytest.raises(MedsynthError) as info:
        build_server.check_tools()
    assert str(info.value).startswith("llama-server: cmake is not installed") and "\n" not in str(info.value)


def test_missing_compiler_is_one_line(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(build_server.shutil, "which", lambda name: "/usr/bin/cmake" if name == "cmake" else None)
    with pytest.raises(MedsynthError, match="no C\\+\\+ compiler found"):
        build_server.check_tools()


def test_stamped_binary_is_not_rebuilt(tmp_path, monkeypatch, capsys):
    dest = tmp_path / "bin" / "llama-server"
    dest.parent.mkdir()
    dest.write_text("#!/bin/sh\n")
    dest.chmod(0o755)
    assert not build_server.up_to_date(dest)  # no stamp yet
    build_server.stamp_path(dest).write_text(json.dumps({**build_server.build_stamp(), "sdist_sha256": "old"}))
    assert not build_server.up_to_date(dest)  # built from another sdist
    build_server.stamp_path(dest).write_text(json.dumps(build_server.build_stamp()))
    monkeypatch.setattr(build_server, "check_tools", lambda: pytest.fail("an up-to-date binary must not rebuild"))
    assert build_server.main(["--dest", str(dest), "--work", str(tmp_path / "work")]) == 0
    assert "up to date" in capsys.readouterr().out and not (tmp_path / "work").exists()


def test_main_reports_errors_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(build_server.shutil, "which", lambda name: None)
    assert build_server.main(["--dest", str(tmp_path / "llama-server"), "--work", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("medsynth: error: llama-server: cmake is not installed") and "\n" not in err
