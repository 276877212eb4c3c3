"""Near-deduplication with MinHash LSH (datasketch), in the two settings of the paper:

``stack`` (The Stack's default): the set of single tokens (split on ``[^A-Za-z_0-9]``), 256
    permutations, LSH threshold 0.85 (13 bands x 19 rows), then an exact Jaccard check: within a
    cluster of LSH candidates, a file is a duplicate only of a kept file it shares >= 85 % of its
    tokens with (codeparrot/BigCode's "extremes"). Files under 10 tokens are kept unexamined.
``dedup_alt`` (SantaCoder's stronger variant): 5-gram shingles of those tokens, 256 permutations,
    seed 42, LSH threshold 0.7 as 25 bands x 10 rows, and one file kept per connected component
    of the LSH graph, with no Jaccard check. Files under 10 tokens are dropped.

In both, the file kept is the one with the smallest record id (the first in input order), so
every engine and rerun keeps the same files, and each removed file names it (``duplicate_of``).

The per-file MinHash signatures (datasketch's permutations, computed in blocks: see
:meth:`NearDedup.minhash`) come from :meth:`NearDedup.prepare`, run in parallel by the engine; the corpus-wide part keeps only the band hashes (8 bytes x bands per file: ~200 bytes
with dedup_alt, 104 with stack) and re-reads the spilled records for the few files that share a
bucket, so memory grows with the number of files, not with their size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from santa.errors import SantaError
from santa.filters.base import CorpusStep, Decision, Record

_TOKEN = re.compile(r"[A-Za-z_0-9]+")

MODES: dict[str, dict[str, Any]] = {
    "stack": {"ngram": 1, "threshold": 0.85, "bands": None, "rows": None, "jaccard_check": True, "small": "keep"},
    "dedup_alt": {"ngram": 5, "threshold": 0.7, "bands": 25, "rows": 10, "jaccard_check": False, "small": "drop"},
}
# Shingles per block of the (shingles x permutations) matrix: 4 MB, small enough to stay in cache.
_CHUNK = 4096
_MIX = np.uint64(0x9E3779B97F4A7C15)
# datasketch 2.0's default; named so an upgrade that changes the default cannot change our hashes.
SCHEME = "affine32"


def tokens(content: str) -> list[str]:
    return _TOKEN.findall(content)


# Tokens are hashed with a polynomial hash computed for all tokens of a file at once from prefix
# sums (mod 2**64, base P odd so it has an inverse Q): no Python-level work per token, which was
# the costliest part of MinHash here. Token characters are ASCII, so UTF-8 bytes split the same
# way as the regex splits the text.
_P = 0x100000001B3
_Q = pow(_P, -1, 2**64)
_IS_TOKEN = np.zeros(256, dtype=bool)
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_":
    _IS_TOKEN[_c] = True
_POWERS: dict[str, np.ndarray] = {"p": np.ones(1, np.uint64), "q": np.ones(1, np.uint64)}


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(_POWERS["p"]) < n:
        size = max(n, 2 * len(_POWERS["p"]), 1 << 16)
        for key, base in (("p", _P), ("q", _Q)):
            arr = np.full(size, base, dtype=np.uint64)
            arr[0] = 1
            _POWERS[key] = np.cumprod(arr, dtype=np.uint64)  # wraps mod 2**64, on purpose
    return _POWERS["p"][:n], _POWERS["q"][:n]


def _mix64(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's 64-bit finaliser: spreads the polynomial hash over all bits.
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def token_hashes(content: str) -> np.ndarray:
    """A 64-bit hash of every ``[A-Za-z_0-9]+`` token of ``content``, in order."""
    data = np.frombuffer(content.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    if data.size == 0:
        return np.zeros(0, dtype=np.uint64)
    inside = _IS_TOKEN[data].view(np.int8)
    edges = np.diff(inside, prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if starts.size == 0:
        return np.zeros(0, dtype=np.uint64)
    pw, qw = _powers(data.size)
    prefix = np.zeros(data.size + 1, dtype=np.uint64)
    np.cumsum(data.astype(np.uint64) * qw, out=prefix[1:])
    # sum(c_i * Q**i, i in [s, e)) * P**(e-1) = sum(c_i * P**(e-1-i)): independent of the position.
    return _mix64((prefix[ends] - prefix[starts]) * pw[ends - 1])


def shingle_hashes(hashes: np.ndarray, ngram: int) -> np.ndarray:
    """32-bit hashes of the ``ngram``-token shingles, from the tokens' hashes.

    Repeated shingles are left in for n-grams: a minimum does not change when a value repeats,
    and sorting them out costs more than the few extra rows (single tokens repeat so much that
    they are made unique). The signature's own mixing (datasketch's fmix32) follows.
    """
    h = hashes
    if ngram > 1:
        if len(h) < ngram:
            return np.zeros(0, dtype=np.uint32)
        h = h[: len(h) - ngram + 1].copy()
        for k in range(1, ngram):
            h *= _MIX  # wraps mod 2**64, on purpose
            h += hashes[k : len(hashes) - ngram + 1 + k]
    folded = (h ^ (h >> np.uint64(32))).astype(np.uint32)
    return np.unique(folded) if ngram == 1 else folded


class NearDedup(CorpusStep):
    def __init__(
        self,
        mode: str = "stack",
        num_perm: int = 256,
        seed: int = 42,
        threshold: float | None = None,
        bands: int | None = None,
        rows: int | None = None,
        ngram: int | None = None,
        min_tokens: int = 10,
        small: str | None = None,
        jaccard_check: bool | None = None,
    ) -> None:
        if mode not in MODES:
            raise SantaError(f"near_dedup: mode must be one of {sorted(MODES)}, got {mode!r} (pipeline.params.near_dedup.mode)")
        d = MODES[mode]
        self.mode = mode
        self.num_perm, self.seed = int(num_perm), int(seed)
        self.threshold = float(d["threshold"] if threshold is None else threshold)
        self.ngram = int(d["ngram"] if ngram is None else ngram)
        self.min_tokens = int(min_tokens)
        self.small = d["small"] if small is None else small
        self.jaccard_check = bool(d["jaccard_check"] if jaccard_check is None else jaccard_check)
        bands = d["bands"] if bands is None else bands
        rows = d["rows"] if rows is None else rows
        if bands is None or rows is None:
            from datasketch.lsh import _optimal_param

            # The bands x rows datasketch's MinHashLSH picks for this threshold (0.85 -> 13 x 19).
            bands, rows = _optimal_param(self.threshold, self.num_perm, 0.5, 0.5)
        self.bands, self.rows = int(bands), int(rows)
        if self.bands * self.rows > self.num_perm or self.bands < 1 or self.rows < 1:
            raise SantaError(f"near_dedup: {self.bands} bands x {self.rows} rows exceed num_perm={self.num_perm}")
        if self.small not in ("keep", "drop"):
            raise SantaError(f"near_dedup: small must be keep or drop, got {self.small!r}")
        if not 0 < self.threshold <= 1 or self.ngram < 1:
            raise SantaError(f"near_dedup: need 0 < threshold <= 1 and ngram >= 1, got {self.threshold}, {self.ngram}")
        self._perms: Any = None

    def params(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "num_perm": self.num_perm, "seed": self.seed, "threshold": self.threshold,
            "bands": self.bands, "rows": self.rows, "ngram": self.ngram, "min_tokens": self.min_tokens,
            "small": self.small, "jaccard_check": self.jaccard_check,
        }

    # -- per record (parallel) -------------------------------------------------------------

    def signature(self, content: str) -> tuple[int, np.ndarray | None]:
        """(number of tokens, MinHash hash values or None for a file under ``min_tokens``)."""
        hashes = token_hashes(content)
        if len(hashes) < self.min_tokens:
            return len(hashes), None
        return len(hashes), self.minhash(shingle_hashes(hashes, self.ngram))

    def minhash(self, shingles: np.ndarray) -> np.ndarray:
        """The hash values datasketch's ``MinHash(num_perm, seed, scheme="affine32")`` gives after
        ``update_batch(shingles)``, computed in chunks with preallocated buffers: 2-3x faster
        than update_batch, which calls a Python hash function per item (a test checks they agree)."""
        from datasketch import MinHash
        from datasketch.minhash import _fmix

        if self._perms is None:
            self._perms = MinHash(num_perm=self.num_perm, seed=self.seed, scheme=SCHEME).permutations
        a, b = self._perms
        hv = _fmix(shingles.astype(np.uint32), 32)
        out = np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
        buf = np.empty((min(_CHUNK, len(hv)), self.num_perm), dtype=np.uint32)
        for i in range(0, len(hv), _CHUNK):
            h = hv[i : i + _CHUNK, None]
            m = buf[: len(h)]
            np.multiply(h, a, out=m)  # wraps mod 2**32, as datasketch's affine32 does
            np.add(m, b, out=m)
            np.minimum(out, m.min(axis=0), out=out)
        return out

    def prepare(self, batch: list[Record]) -> list[Any]:
        out = []
        for rec in batch:
            n, sig = self.signature(rec["content"])
            out.append((n, None if sig is None else sig.astype(np.uint32).tobytes()))
        return out

    def band_hashes(self, sig: np.ndarray) -> np.ndarray:
        rows = sig[: self.bands * self.rows].astype(np.uint64).reshape(self.bands, self.rows)
        acc = np.zeros(self.bands, dtype=np.uint64)
        for r in range(self.rows):
            acc = acc * _MIX + rows[:, r]
        return acc

    # -- corpus-wide ----------------------------------------------------------------------

    def process_corpus(self, records: Iterable[Record]) -> dict[int, Decision]:
        if iter(records) is records:  # a one-shot iterator: two passes need it in memory
            records = list(records)
        ids: list[int] = []
        band_rows: list[np.ndarray] = []
        dropped: dict[int, Decision] = {}
        for rec in records:
            n, sig = rec.get("_prepared") or self.prepare([rec])[0]
            rid = int(rec["id"])
            if sig is None:
                if self.small == "drop":
                    dropped[rid] = Decision(False, float(n), f"{n} tokens < min_tokens {self.min_tokens}")
                continue
            ids.append(rid)
            band_rows.append(self.band_hashes(np.frombuffer(sig, dtype=np.uint32)))
        if not ids:
            return dropped
        order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
        id_arr = np.asarray(ids, dtype=np.int64)[order]
        bands = np.vstack(band_rows)[order]
        del band_rows
        clusters = _components(bands)
        members = {int(id_arr[i]) for c in clusters for i in c}
        # Second pass, only over files that share a bucket with another.
        material: dict[int, Any] = {}
        for rec in records:
            rid = int(rec["id"])
            if rid in members:
                if self.jaccard_check:
                    material[rid] = set(tokens(rec["content"]))
                else:
                    material[rid] = np.frombuffer((rec.get("_prepared") or self.prepare([rec])[0])[1], dtype=np.uint32)
        for c in clusters:
            cluster = sorted(int(id_arr[i]) for i in c)
            if self.jaccard_check:
                dropped.update(self._extremes(cluster, material))
            else:
                kept = cluster[0]
                for rid in cluster[1:]:
                    est = float(np.mean(material[rid] == material[kept]))
                    dropped[rid] = Decision(
                        False, round(est, 4),
                        f"near duplicate of id {kept} (dedup_alt component of {len(cluster)}; est. Jaccard {est:.2f})",
                        details={"duplicate_of": kept, "component_size": len(cluster), "similarity": round(est, 4)},
                    )
        return dropped

    def _extremes(self, cluster: list[int], sets: dict[int, Any]) -> dict[int, Decision]:
        kept: list[int] = []
        out: dict[int, Decision] = {}
        for rid in cluster:
            for k in kept:
                j = _jaccard(sets[rid], sets[k])
                if j >= self.threshold:
                    out[rid] = Decision(
                        False, round(j, 4), f"near duplicate of id {k} (Jaccard {j:.3f} >= {self.threshold:g})",
                        details={"duplicate_of": k, "similarity": round(j, 4)},
                    )
                    break
            else:
                kept.append(rid)
        return out


def _jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def _components(bands: np.ndarray) -> list[list[int]]:
    """Connected components (of size >= 2) of the graph linking rows that agree on any band."""
    n = len(bands)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for b in range(bands.shape[1]):
        col = bands[:, b]
        order = np.argsort(col, kind="stable")
        same = np.flatnonzero(col[order][1:] == col[order][:-1])
        for i in same.tolist():
            ra, rb = find(int(order[i])), find(int(order[i + 1]))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) >= 2]
