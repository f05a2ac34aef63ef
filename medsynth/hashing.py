"""Stable hashes: prompt identities, short content digests and seeds derived from names.

Why one module: these values are stored in run identities, example meta and cache keys, so every copy of the
idiom had to produce the same bits forever. Keeping the idiom once makes that a property of one function; the
outputs are byte-for-byte those of the copies they replace (runs made before stay resumable).
"""

from __future__ import annotations

import hashlib
import json
import random

DEFAULT_SEED = 13  # the one default run seed: build, train, bench and distill all start from it
SEED_MODULUS = 2**31 - 1  # seeds stay positive 31-bit ints: every OpenAI-compatible server accepts them


def short_hash(text: str, length: int = 12) -> str:
    """The first `length` hex digits of the sha256 of `text` (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def prompt_hash(payload: object, length: int = 16, sort_keys: bool = False) -> str:
    """Identity of a prompt template: the short sha256 of `payload` as JSON (a version number, the system text,
    the schema...). A changed instruction gives a new identity, so stored answers are not reused for it."""
    return short_hash(json.dumps(payload, sort_keys=sort_keys), length)


def stable_int(*parts: object, nbytes: int = 4) -> int:
    """A big-endian int from the first `nbytes` of the sha256 of the parts joined by "|": the same in every
    process and Python version (unlike `hash()`), so seeded choices replay exactly."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:nbytes], "big")


def stable_seed(*parts: object) -> int:
    """A per-request seed in [0, 2**31 - 1) named by its parts (run seed, slot, step...)."""
    return stable_int(*parts) % SEED_MODULUS


def stable_fraction(*parts: object) -> float:
    """A number in [0, 1] named by its parts (e.g. an example id picking its split)."""
    return stable_int(*parts) / 0xFFFFFFFF


def seeded_rng(*parts: object) -> random.Random:
    """A `random.Random` seeded by its parts (64 bits of the digest)."""
    return random.Random(stable_int(*parts, nbytes=8))
