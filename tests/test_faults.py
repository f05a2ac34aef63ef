"""Reliability under faults: a flaky endpoint, a dying embedded server, a second writer on the same run.

Every test ends by counting what was stored: exactly --n examples, 0 lost, 0 duplicated, every entity on its
span with a task label. The endpoint faults come from `tests/fault_proxy.py` (a real HTTP proxy on 127.0.0.1),
the server deaths from SIGKILL of a real child process started by `LocalServer` — a stand-in that serves the
LLM double on the same port (fast, in every CI run), and the real tiny SmolLM2 model (marked `llm`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from medsynth.generate import build as build_mod
from medsynth.cli import main as cli
from medsynth.generate.build import BuildConfig, run_build
from medsynth.cli.main import main
from medsynth.errors import EndpointError
from medsynth.llm import embedded
from medsynth.llm.embedded import LocalServer
from medsynth.llm.session import llm_session
from medsynth.spec import get_task
from tests import fault_proxy as fp
from tests.fake_generator import answer
from tests.llm_double import Fault, LLMDouble

ROOT = Path(__file__).resolve().parent.parent
STANDIN_MARK = "medsynth-test-standin"


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("OPENAI_BASE_URL", "OPENAI_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "data.jsonl").read_text(encoding="utf-8").splitlines()]


def _store_count(out: Path) -> int:
    try:
        with sqlite3.connect(out / "store.sqlite", timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM examples").fetchone()[0]
    except sqlite3.Error:
        return 0


def _assert_sound(out: Path, n: int, labels: set[str]) -> list[dict]:
    """Exactly n rows, 0 duplicated (ids, texts), every entity on its span with a task label; store intact."""
    rows = _rows(out)
    assert len(rows) == n, f"{len(rows)} examples, expected {n}"
    assert len({r["id"] for r in rows}) == n and len({r["text"] for r in rows}) == n
    for r in rows:
        for e in r["entities"]:
            assert r["text"][e["start"]:e["end"]] == e["text"], (r["id"], e)
            assert e["label"] in labels, (r["id"], e)
    with sqlite3.connect(out / "store.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM examples").fetchone()[0] >= n
    return rows


# -- endpoint faults through the proxy -------------------------------------------------------------------
def test_schedule_is_seeded_and_mixes_every_fault():
    a, b = fp.FaultSchedule(seed=5), fp.FaultSchedule(seed=5)
    actions = [a.action(i) for i in range(2000)]
    assert actions == [b.action(i) for i in range(2000)]
    assert actions != [fp.FaultSchedule(seed=6).action(i) for i in range(2000)]
    assert actions[0] == fp.PASS and set(actions) == {fp.PASS, fp.INJECT, *fp.TRANSPORT_FAULTS}
    with pytest.raises(ValueError):
        fp.FaultSchedule(rates={fp.DROP: 0.7, fp.DELAY: 0.7})


def test_build_through_a_faulty_proxy_keeps_exactly_n(cache_env):
    """Drops, timeouts, 429 + Retry-After, 500/503, truncated and broken bodies and prompt-injected answers
    on ~45 % of requests: the build still ends with exactly n sound examples, and every fault is accounted
    for (one client retry — or, rarely, one failed request — per transport fault)."""
    out, n = cache_env / "run", 40
    task = get_task("ner")
    started = time.monotonic()
    with LLMDouble(answer) as upstream, fp.FaultProxy(upstream.base_url, fp.FaultSchedule(seed=11),
                                                      delay=1.6, retry_after="1") as proxy:
        code = main(["build", "ner", "--n", str(n), "--out", str(out), "--base-url", proxy.base_url,
                     "--llm-model", "double-model", "--timeout", "1", "--concurrency", "4", "--no-progress"])
        assert code == 0
        assert not proxy.errors and not upstream.errors
    assert time.monotonic() - started < 40
    rows = _assert_sound(out, n, set(task.label_names))
    stats = json.loads((out / "stats.json").read_text())
    run = stats["this_run"]
    faults = sum(proxy.counts[f] for f in fp.TRANSPORT_FAULTS)
    assert faults >= 8 and proxy.counts[fp.INJECT] >= 2, proxy.counts  # the schedule really bit
    # Each client attempt is one proxied request: no request was sent twice, none was lost.
    assert proxy.posts == stats["llm_calls"] + stats["retries"]
    assert stats["retries"] + run["errors"] == faults
    reasons = run["retry_reasons"]
    assert sum(v for k, v in reasons.items() if k != "format_fallback") == stats["retries"]
    for fault in fp.TRANSPORT_FAULTS:  # each kind shows up under its own reason
        expected = sum(proxy.counts[f] for f in fp.TRANSPORT_FAULTS if fp.RETRY_REASON[f] == fp.RETRY_REASON[fault])
        assert expected - run["errors"] <= reasons.get(fp.RETRY_REASON[fault], 0) <= expected
    assert {"429", "500", "503", "timeout", "connection", "bad_response"} <= set(reasons)
    # Prompt injection never reaches the data as annotation: the made-up mentions and foreign labels are
    # dropped, and a replaced answer (which lacks the planned mentions) is only ever kept for a slot that
    # planned none.
    for r in rows:
        for e in r["entities"]:
            assert e["text"] not in (fp.ABSENT_MENTION, "sk-proj-000secret", "the system prompt")
        if r["text"].startswith(fp.INJECTED_PHRASE):
            assert not r["meta"]["plan"]["targets"], r
    if any(action == fp.INJECT and index % 2 == 0 for index, action, _ in proxy.log):
        assert stats["repairs"].get("dropped:unknown_label", 0) >= 1, stats["repairs"]
        assert stats["repairs"].get("dropped:not_found", 0) >= 1, stats["repairs"]


def test_inject_content_shapes():
    request = {"response_format": {"type": "json_object", "schema": {"properties": {"entities": {"items": {
        "properties": {"label": {"enum": ["Chemical", "Disease"]}}}}}}}}
    honest = json.dumps({"text": "Aspirin eased the headache.", "entities": [{"text": "Aspirin", "label": "Chemical"}]})
    even = json.loads(fp.inject_content(honest, request, 0))
    assert fp.INJECTED_PHRASE in even["text"] and {"text": "Aspirin", "label": "Chemical"} in even["entities"]
    assert {"text": fp.ABSENT_MENTION, "label": "Chemical"} in even["entities"]
    assert any(e["label"] == fp.FOREIGN_LABEL for e in even["entities"])
    odd = json.loads(fp.inject_content(honest, request, 1))
    assert fp.INJECTED_PHRASE in odd["text"] and "Aspirin" not in odd["text"]


# -- the embedded server dying mid-run ---------------------------------------------------------------------
_STANDIN = f"""
    import sys
    sys.path.insert(0, {str(ROOT)!r})
    from tests.fake_generator import answer
    from tests.llm_double import Fault, LLMDouble, _Server
    double = LLMDouble(lambda request: Fault.slow(0.02, answer(request)), owned_by="me")
    double._server = _Server(("127.0.0.1", int(sys.argv[1])), double._handler_class())
    double._server.serve_forever(poll_interval=0.02)
"""


@pytest.fixture()
def standin_server(tmp_path, monkeypatch):
    """`LocalServer` starts a real child process that serves the LLM double on the port it was given, instead
    of llama.cpp: the session, restart and port logic run for real, in a fraction of a second."""
    monkeypatch.setattr(embedded, "_require_llama_cpp", lambda: None)
    monkeypatch.setattr(LocalServer, "command", lambda self: [sys.executable, "-c", textwrap.dedent(_STANDIN),
                                                              str(self.port), STANDIN_MARK])
    model = tmp_path / "standin.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 32)
    return model


def _children(mark: str) -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any(mark in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


class Killer(threading.Thread):
    """SIGKILLs the (single) server child each time the store reaches the next count in `at`."""

    def __init__(self, out: Path, at: list[int], mark: str, deadline: float = 300):
        super().__init__(daemon=True)
        self.out, self.at, self.mark = out, list(at), mark
        self.killed: list[int] = []  # pids
        self.stop = threading.Event()
        self.deadline = time.monotonic() + deadline

    def run(self) -> None:
        while self.at and not self.stop.is_set() and time.monotonic() < self.deadline:
            if _store_count(self.out) >= self.at[0]:
                victims = [p for p in _children(self.mark) if p.pid not in self.killed]
                if victims:
                    for proc in victims:
                        proc.send_signal(signal.SIGKILL)
                        self.killed.append(proc.pid)
                    self.at.pop(0)
            self.stop.wait(0.01)


def _fast_failover(client) -> None:
    """A dead server is noticed after one retry instead of five with backoff (keeps the test short)."""
    client.config.max_retries = 1
    client.config.backoff_base = 0.01


def test_server_killed_mid_run_is_restarted_and_n_is_reached(cache_env, standin_server):
    out, n = cache_env / "run", 16
    task = get_task("ner")
    cfg = BuildConfig(task=task, n=n, out=out, max_endpoint_failures=2, progress=False)
    with llm_session(llm=str(standin_server), cache=False, log_dir=out, max_restarts=2) as session:
        _fast_failover(session.client)
        first = _children(STANDIN_MARK)
        killer = Killer(out, [4], STANDIN_MARK)
        killer.start()
        stats = run_build(cfg, session.client, session.model_name, session.restart)
        killer.stop.set()
        after = _children(STANDIN_MARK)
    assert len(first) == 1 and killer.killed == [first[0].pid]
    assert len(after) == 1 and after[0].pid != first[0].pid  # a new server process finished the run
    assert stats["kept"] == n and stats["this_run"]["errors"] >= 1
    assert stats["this_run"]["retry_reasons"].get("connection", 0) >= 1
    _assert_sound(out, n, set(task.label_names))


def test_restarted_server_on_another_port_is_followed(cache_env, standin_server):
    """If the dead server's port was taken before the restart, the server comes up elsewhere and the client
    must follow it (before the fix the client kept calling the old port until the restarts ran out)."""
    out, n = cache_env / "run", 12
    task = get_task("ner")
    cfg = BuildConfig(task=task, n=n, out=out, max_endpoint_failures=2, progress=False)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the dead server's sockets sit in TIME_WAIT
    with llm_session(llm=str(standin_server), cache=False, log_dir=out, max_restarts=1,
                     concurrency=1) as session:  # one request in flight: exactly one restart
        _fast_failover(session.client)
        old_url = session.client.config.base_url

        def restart() -> bool:
            squatter.bind(("127.0.0.1", int(old_url.rsplit(":", 1)[1].split("/")[0])))
            squatter.listen(1)
            return session.restart()

        killer = Killer(out, [3], STANDIN_MARK)
        killer.start()
        try:
            stats = run_build(cfg, session.client, session.model_name, restart)
        finally:
            killer.stop.set()
            squatter.close()
        new_url = session.client.config.base_url
    assert killer.killed and new_url != old_url and stats["kept"] == n
    _assert_sound(out, n, set(task.label_names))


def _patched_cli(monkeypatch, max_restarts: int, max_endpoint_failures: int = 2,
                 max_request_factor: float | None = None) -> None:
    """`python -m medsynth build` in-process, with fewer restarts and a quicker failover than the defaults (and,
    for the tiny real model, a larger request budget: see test_real_tiny_server_killed_mid_run)."""
    real_session, real_run_build = cli._session, build_mod.run_build

    @contextmanager
    def session(args, log_dir=None):
        with llm_session(llm=args.llm, concurrency=args.concurrency, max_tokens=args.max_tokens,
                         timeout=args.timeout, cache=not args.no_cache, log_dir=log_dir, threads=args.threads,
                         max_restarts=max_restarts) as s:
            _fast_failover(s.client)
            yield s

    def run_build_quick(cfg, *args, **kwargs):
        cfg.max_endpoint_failures = max_endpoint_failures
        if max_request_factor is not None:
            cfg.max_request_factor = max_request_factor
        return real_run_build(cfg, *args, **kwargs)

    monkeypatch.setattr(cli, "_session", session)
    monkeypatch.setattr(build_mod, "run_build", run_build_quick)
    assert real_session is not session


def test_restarts_exhausted_cli_says_one_line_and_the_store_keeps_everything(cache_env, standin_server,
                                                                             monkeypatch, capsys):
    out, n = cache_env / "run", 14
    labels = set(get_task("ner").label_names)
    argv = ["build", "ner", "--llm", str(standin_server), "--n", str(n), "--out", str(out), "--no-progress"]
    with monkeypatch.context() as mp:
        _patched_cli(mp, max_restarts=0)
        killer = Killer(out, [5], STANDIN_MARK)
        killer.start()
        code = main(argv)
        killer.stop.set()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EndpointError.exit_code == 3 and killer.killed
    assert err[-1].startswith("medsynth: error:") and "in a row failed" in err[-1] and "re-run" in err[-1]
    assert not any("Traceback" in line for line in err)
    kept = _store_count(out)
    assert 5 <= kept < n
    before = _rows(out)  # exports are written even when the run stops early
    assert len(before) == kept
    # Same command again (default restarts): resumes to exactly n, the first `kept` examples untouched.
    assert main(argv) == 0
    rows = _assert_sound(out, n, labels)
    assert rows[:kept] == before


@pytest.mark.llm
def test_real_tiny_server_killed_mid_run(cache_env, monkeypatch, capsys):
    """The real llama.cpp server (tiny SmolLM2, 1 thread) SIGKILLed after the first stored example: the
    session restarts it and the build still ends with exactly n; then, with no restart left, a kill ends the
    run with one line and exit code 3, keeping every stored example."""
    if not _have_llama_and_tiny():
        pytest.skip("llama-cpp-python or the tiny model is not installed")
    task_file = cache_env / "tiny-task.yaml"
    task_file.write_text(textwrap.dedent("""
        name: tinyfault
        description: Diseases in short clinical sentences.
        labels:
          - name: Disease
            definition: A disease or a symptom.
        styles:
          - name: note
            description: a short clinical note sentence
            min_words: 6
            max_words: 14
        lexicon:
          Disease: [asthma, migraine, gout, eczema, anemia, psoriasis, bronchitis, tonsillitis, influenza]
        mentions_per_sentence: [1, 1]
        empty_fraction: 0
    """), encoding="utf-8")
    # The child to kill is whichever engine serves the embedded model (llama-server once `make setup` built it).
    mark = "llama-server" if embedded.choose_engine() == embedded.LLAMA_SERVER else "llama_cpp.server"
    out = cache_env / "tiny"
    # SmolLM2-135M often rambles past --max-tokens (invalid JSON): one run kept 2 of the 23 requests the default
    # budget allows for n = 3 and failed here. This test is about restarts, not yield, so it gets 20 requests an
    # example.
    factor = 20.0
    base = ["build", "ner", "--task-file", str(task_file), "--llm", "tiny", "--threads", "1", "--max-tokens", "80",
            "--temperature", "0.3", "--out", str(out), "--no-progress"]
    with monkeypatch.context() as mp:
        _patched_cli(mp, max_restarts=1, max_endpoint_failures=1, max_request_factor=factor)
        killer = Killer(out, [1], mark)
        killer.start()
        code = main([*base, "--n", "3"])
        killer.stop.set()
        assert code == 0, capsys.readouterr().err[-2000:]
        assert len(killer.killed) == 1
        _assert_sound(out, 3, {"Disease"})
        log = (out / "llm-server.log").read_text(errors="replace")
        started = ("llama_server: initializing", "Uvicorn running", "Application startup complete")
        assert max(log.count(line) for line in started) >= 2  # the killed server was started again

        _patched_cli(mp, max_restarts=0, max_endpoint_failures=1, max_request_factor=factor)
        killer = Killer(out, [4], mark)
        killer.start()
        code = main([*base, "--n", "6"])
        killer.stop.set()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and killer.killed, err[-3:]
    assert err[-1].startswith("medsynth: error:") and "in a row failed" in err[-1]
    kept = _store_count(out)
    assert 4 <= kept < 6 and len(_rows(out)) == kept
    assert not _children(mark)  # the session stopped its server


def _have_llama_and_tiny() -> bool:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return False
    try:
        embedded.resolve_model("tiny")
    except Exception:  # noqa: BLE001
        return False
    return True


# -- two writers on one output directory ---------------------------------------------------------------------
def test_second_build_on_the_same_directory_is_refused(cache_env):
    out, n = cache_env / "run", 20
    env = {**os.environ, "MEDSYNTH_CACHE_DIR": str(cache_env / "cache"), "PYTHONPATH": str(ROOT)}

    def cmd(url: str) -> list[str]:
        return [sys.executable, "-m", "medsynth", "build", "ner", "--n", str(n), "--out", str(out),
                "--base-url", url, "--llm-model", "double-model", "--no-progress"]

    with LLMDouble(lambda r: Fault.slow(0.1, answer(r))) as slow, LLMDouble(answer) as other:
        first = subprocess.Popen(cmd(slow.base_url), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        try:
            deadline = time.monotonic() + 60
            while _store_count(out) < 2 and time.monotonic() < deadline and first.poll() is None:
                time.sleep(0.05)
            assert first.poll() is None, "the first build ended before the second could start"
            second = subprocess.run(cmd(other.base_url), env=env, capture_output=True, text=True, timeout=60)
            assert first.poll() is None  # still holding the lock while refusing the second one
            f_out, f_err = first.communicate(timeout=120)
        finally:
            if first.poll() is None:
                first.kill()
        assert other.chat_calls == 0  # the second process never generated anything
    assert second.returncode == 4
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "another medsynth process" in lines[0] and str(out) in lines[0]
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, f_err[-2000:]
    _assert_sound(out, n, set(get_task("ner").label_names))
