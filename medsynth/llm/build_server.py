"""Build llama.cpp's own `llama-server` from the llama-cpp-python sdist medsynth already pins.

Why: llama-cpp-python's Python server answers one request at a time and spends seconds per request turning the
JSON schema into a grammar in Python. llama.cpp's C++ server has parallel slots with continuous batching,
per-slot prompt-prefix reuse and a C++ schema converter. Its source ships inside the pinned sdist (MIT), so
building it needs no new dependency and no network beyond the `pip download` that `make setup` already does.

Run: `python -m medsynth.llm.build_server [--dest PATH]` (what `make setup` runs). Idempotent: a stamp next to
the binary records the sdist hash and the cmake flags, and a matching stamp means there is nothing to do.
Problems (no cmake, no C++ compiler, a failed build) are one line naming the log file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from medsynth.errors import MedsynthError

LLAMA_CPP_VERSION = "0.3.36"
SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
BINARY = "llama-server"
# Release build of the server target only, statically linked (one file to copy), offline: no curl/openssl, no
# web UI (its assets would otherwise be fetched from a Hugging Face bucket at build time), no tests or examples.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
)


def default_dest() -> Path:
    """`<venv>/bin/llama-server`: next to the interpreter, where `embedded.find_llama_server` looks first."""
    return Path(sys.prefix) / "bin" / BINARY


def stamp_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".build.json")


def build_stamp() -> dict:
    """What a binary was built from; a binary whose stamp differs is rebuilt."""
    return {"llama_cpp_python": LLAMA_CPP_VERSION, "sdist_sha256": SDIST_SHA256, "cmake_flags": list(CMAKE_FLAGS)}


def up_to_date(dest: Path) -> bool:
    try:
        return os.access(dest, os.X_OK) and json.loads(stamp_path(dest).read_text()) == build_stamp()
    except (OSError, ValueError):
        return False


def check_tools() -> None:
    """cmake and a C++ compiler must be on PATH; say which one is missing and how to get it."""
    if shutil.which("cmake") is None:
        raise MedsynthError("cmake is not installed (needed to build llama-server); install it, e.g. "
                            "`apt-get install cmake` or `pip install cmake`", where=BINARY)
    compilers = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    if not any(name and shutil.which(name) for name in compilers):
        raise MedsynthError("no C++ compiler found (c++, g++, clang++ or $CXX; needed to build llama-server); "
                            "install one, e.g. `apt-get install build-essential`", where=BINARY)


def fetch_sdist(work: Path) -> Path:
    """The pinned sdist in `work` (downloaded with pip once), checked against its sha256."""
    target = work / SDIST_NAME
    if not target.is_file():
        work.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
              f"llama-cpp-python=={LLAMA_CPP_VERSION}", "-d", str(work)], work / "pip-download.log",
             "downloading the llama-cpp-python sdist failed")
    digest = _sha256(target)
    if digest != SDIST_SHA256:
        target.unlink(missing_ok=True)
        raise MedsynthError(f"the downloaded sdist has sha256 {digest}, expected {SDIST_SHA256}; removed it, "
                            "run again", where=str(target))
    return target


def extract(sdist: Path, work: Path) -> Path:
    """Unpack once; return the vendored llama.cpp source folder."""
    root = work / f"llama_cpp_python-{LLAMA_CPP_VERSION}"
    source = root / "vendor" / "llama.cpp"
    if not (source / "CMakeLists.txt").is_file():
        with tarfile.open(sdist) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(work, filter="data")
            else:  # Python < 3.11.4: the archive is the pinned, hash-checked sdist
                tar.extractall(work)  # noqa: S202
    if not (source / "tools" / "server").is_dir():
        raise MedsynthError("the sdist has no vendor/llama.cpp/tools/server", where=str(sdist))
    return source


def build(dest: Path, work: Path, jobs: int, force: bool = False) -> Path:
    """Build llama-server into `dest` unless an up-to-date one is there; return `dest`."""
    if not force and up_to_date(dest):
        print(f"{BINARY} is up to date: {dest}")
        return dest
    check_tools()
    source = extract(fetch_sdist(work), work)
    out = work / "build"
    log = work / "build.log"
    log.unlink(missing_ok=True)
    print(f"building {BINARY} from llama-cpp-python {LLAMA_CPP_VERSION} with {jobs} jobs (a few minutes); "
          f"log: {log}", flush=True)
    _run(["cmake", "-S", str(source), "-B", str(out), *CMAKE_FLAGS], log, "cmake configure failed")
    _run(["cmake", "--build", str(out), "--config", "Release", "--target", BINARY, "-j", str(jobs)], log,
         "cmake build failed")
    built = _built_binary(out)
    _install(built, dest)
    _run([str(dest), "--version"], log, f"the built {BINARY} does not run")
    stamp_path(dest).write_text(json.dumps(build_stamp(), indent=1) + "\n")
    print(f"{BINARY} installed: {dest}")
    return dest


def _built_binary(out: Path) -> Path:
    for candidate in (out / "bin" / BINARY, out / "bin" / "Release" / BINARY):
        if candidate.is_file():
            return candidate
    raise MedsynthError(f"the build finished but produced no {BINARY}", where=str(out / "bin"))


def _install(built: Path, dest: Path) -> None:
    """Copy atomically, so an interrupted install never leaves a half-written binary that looks usable."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    shutil.copy2(built, tmp)
    tmp.chmod(0o755)
    os.replace(tmp, dest)


def _run(cmd: list[str], log: Path, failure: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        fh.write(("\n$ " + " ".join(cmd) + "\n").encode())
        fh.flush()
        code = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if code != 0:
        raise MedsynthError(f"{failure} (exit code {code}): {_last_line(log)} — full log: {log}", where=BINARY)


def _last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines()[-200:] if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["(empty log)"])[-1][:300]


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medsynth.llm.build_server", description=__doc__.split("\n")[0])
    parser.add_argument("--dest", type=Path, default=None, help=f"where to install the binary (default: "
                        f"<venv>/bin/{BINARY})")
    parser.add_argument("--work", type=Path, default=None, help="download/build folder (default: "
                        "<venv>/llama-server-build)")
    parser.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1, help="parallel compile jobs")
    parser.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    args = parser.parse_args(argv)
    dest = (args.dest or default_dest()).absolute()
    work = (args.work or Path(sys.prefix) / "llama-server-build").absolute()
    try:
        build(dest, work, max(1, args.jobs), force=args.force)
    except MedsynthError as err:
        print(f"medsynth: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
