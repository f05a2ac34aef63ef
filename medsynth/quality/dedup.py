"""Exact and near-duplicate detection: MinHash over word shingles with LSH banding, verified exactly.

Why: small LLMs asked for many sentences repeat themselves with a word or two changed. The store already refuses
exact duplicates (same `normalize_text` key), but a near-copy teaches the tagger nothing new while inflating the
apparent dataset size — and, when validation is split by id hash, leaks between splits. MinHash + LSH finds
candidate pairs in about linear time; every candidate is then checked with the exact Jaccard similarity of the
two shingle sets, so the reported pairs have no false positives (only a small, tunable false-negative rate).

Everything is seeded and uses hashlib (not Python's salted `hash`), so the same examples give the same clusters
in every process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from medsynth.generate.filter import normalize_text
from medsynth.records import Example

_MERSENNE = np.uint64((1 << 61) - 1)
_MAX32 = (1 << 32) - 1


@dataclass
class DedupResult:
    """Duplicate clusters (ids in input order; the first is the one kept) and what to drop."""

    clusters: list[list[str]] = field(default_factory=list)
    drop_ids: list[str] = field(default_factory=list)
    exact_duplicates: int = 0  # dropped because their normalised text equals a kept example's
    near_duplicates: int = 0  # dropped because of shingle Jaccard >= threshold only
    pairs: list[tuple[str, str, float]] = field(default_factory=list)  # verified (id_a, id_b, jaccard)
    drop_positions: list[int] = field(default_factory=list)  # indices into the input, same order as drop_ids
    examples: int = 0
    threshold: float = 0.8

    @property
    def kept(self) -> int:
        return self.examples - len(self.drop_ids)

    def counts(self) -> dict:
        """The numbers the dataset card shows."""
        return {"examples": self.examples, "kept": self.kept, "dropped": len(self.drop_ids),
                "exact_duplicates": self.exact_duplicates, "near_duplicates": self.near_duplicates,
                "clusters": len(self.clusters), "threshold": self.threshold}

    def as_dict(self, max_clusters: int = 20) -> dict:
        return {**self.counts(), "example_clusters": self.clusters[:max_clusters]}


def shingles(text: str, k: int = 3) -> set[str]:
    """Word k-shingles of the normalised text; a text shorter than k words is one shingle (never empty set
    unless the text has no word at all)."""
    words = normalize_text(text).split()
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _hash32(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=4).digest(), "little")


class MinHasher:
    """`num_perm` universal hash functions h(x) = (a*x + b) mod (2^61 - 1) over 32-bit shingle hashes.

    With a, b, x < 2^32 the product and sum stay below 2^64, so plain uint64 numpy arithmetic is exact.
    """

    def __init__(self, num_perm: int = 128, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = rng.integers(1, _MAX32, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, _MAX32, size=num_perm, dtype=np.uint64)

    def signature(self, items: set[str]) -> np.ndarray:
        if not items:
            return np.full(self.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        x = np.array(sorted(_hash32(s) for s in items), dtype=np.uint64)[:, None]
        return ((x * self.a + self.b) % _MERSENNE).min(axis=0)


def choose_bands(num_perm: int, threshold: float) -> tuple[int, int]:
    """(bands, rows) whose LSH S-curve midpoint (1/b)^(1/r) sits well below `threshold`: candidates are
    verified exactly anyway, so recall is bought with a few extra comparisons, not with wrong answers."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        if num_perm % rows:
            continue
        bands = num_perm // rows
        if (1.0 / bands) ** (1.0 / rows) <= max(threshold - 0.2, 0.05):
            best = (bands, rows)
    return best


def _candidate_pairs(signatures: list[np.ndarray], bands: int, rows: int) -> set[tuple[int, int]]:
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        for i, sig in enumerate(signatures):
            buckets.setdefault(sig[band * rows : (band + 1) * rows].tobytes(), []).append(i)
        for members in buckets.values():
            if len(members) < 2:
                continue
            if len(members) <= 200:
                pairs.update((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
            else:  # a huge bucket (hundreds of near-copies): link a star and a chain, not O(m^2) pairs
                pairs.update((members[0], m) for m in members[1:])
                pairs.update(zip(members, members[1:]))
    return pairs


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller index (earlier example) stays the root: it is the one kept
            self.parent[max(ra, rb)] = min(ra, rb)


def find_duplicates(examples: Sequence[Example], threshold: float = 0.8, *, k: int = 3, num_perm: int = 128,
                    seed: int = 1) -> DedupResult:
    """Cluster exact and near duplicates (shingle Jaccard >= threshold); keep the first of each cluster."""
    n = len(examples)
    result = DedupResult(examples=n, threshold=threshold)
    uf = _UnionFind(n)
    first_by_norm: dict[str, int] = {}
    exact: set[int] = set()
    for i, ex in enumerate(examples):
        key = normalize_text(ex.text)
        if key in first_by_norm:
            uf.union(first_by_norm[key], i)
            exact.add(i)
            result.pairs.append((examples[first_by_norm[key]].id, ex.id, 1.0))
        else:
            first_by_norm[key] = i
    uniques = sorted(first_by_norm.values())
    sets = {i: shingles(examples[i].text, k) for i in uniques}
    hasher = MinHasher(num_perm, seed)
    sigs = [hasher.signature(sets[i]) for i in uniques]
    bands, rows = choose_bands(num_perm, threshold)
    for a, b in sorted(_candidate_pairs(sigs, bands, rows)):
        ia, ib = uniques[a], uniques[b]
        sim = jaccard(sets[ia], sets[ib])
        if sim >= threshold:
            uf.union(ia, ib)
            result.pairs.append((examples[ia].id, examples[ib].id, round(sim, 4)))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(uf.find(i), []).append(i)
    for members in sorted(groups.values(), key=lambda m: m[0]):
        if len(members) < 2:
            continue
        result.clusters.append([examples[i].id for i in members])
        for i in members[1:]:
            result.drop_ids.append(examples[i].id)
            result.drop_positions.append(i)
            if i in exact:
                result.exact_duplicates += 1
            else:
                result.near_duplicates += 1
    return result


def dedup(examples: Sequence[Example], threshold: float = 0.8) -> tuple[list[Example], DedupResult]:
    """The examples without duplicates (first of each cluster kept, input order preserved)."""
    result = find_duplicates(examples, threshold)
    drop = set(result.drop_positions)
    return [ex for i, ex in enumerate(examples) if i not in drop], result
