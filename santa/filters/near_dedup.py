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

The per-file MinHash signatures (datasketch's values, computed for a whole batch of files at once:
see :func:`batch_token_hashes` and :func:`minhash_many`) come from :meth:`NearDedup.prepare`, run
in parallel by the engine; the corpus-wide part keeps only the band hashes (8 bytes x bands per
file: ~200 bytes with dedup_alt, 104 with stack) and re-reads the spilled records for the few
files that share a bucket, so memory grows with the number of files, not with their size.
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
# Shingles per block of the (permutations x shingles) matrix (8 MB): measured fastest here.
_CHUNK = 8192
_MIX = np.uint64(0x9E3779B97F4A7C15)
# datasketch 2.0's default; named so an upgrade that changes the default cannot change our hashes.
SCHEME = "affine32"


def tokens(content: str) -> list[str]:
    return _TOKEN.findall(content)


# Tokens are found and hashed for a whole batch of files at once, with no Python-level work per
# token or per byte: token characters are ASCII, so in the UTF-8 bytes a token is a run of bytes
# of _TOKEN_BYTES, the same runs the regex finds in the text. A token's hash is built from its
# bytes read 8 at a time (little-endian words, zero-padded: tokens hold no zero byte, so the words
# and the length say the same), then mixed.
_TOKEN_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"
_IS_TOKEN = bytes(1 if c in _TOKEN_BYTES else 0 for c in range(256))
# _WORD_MASK[k]: the low k bytes of a word.
_WORD_MASK = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)


def _mix64(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's 64-bit finaliser: spreads the words over all bits.
    h = h ^ (h >> np.uint64(33))
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def batch_token_hashes(contents: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of every ``[A-Za-z_0-9]+`` token of every text, in order; offsets such that
    the tokens of ``contents[i]`` are ``hashes[offsets[i]:offsets[i + 1]]``)."""
    encoded = [c.encode("utf-8", "surrogatepass") for c in contents]
    # A separator before each text (no token crosses it) and 8 zero bytes after the last, so that
    # a word read at any token start stays inside the buffer.
    buf = b"\n" + b"\n".join(encoded) + bytes(8)
    ends = np.cumsum(np.fromiter((len(e) + 1 for e in encoded), dtype=np.int64, count=len(encoded)))
    inside = np.frombuffer(buf.translate(_IS_TOKEN), dtype=np.uint8)
    edges = np.flatnonzero(inside[1:] != inside[:-1]) + 1  # start, end, start, end, ...
    starts, lengths = edges[0::2], edges[1::2] - edges[0::2]
    offsets = np.zeros(len(contents) + 1, dtype=np.int64)
    offsets[1:] = np.searchsorted(starts, ends)
    # Every position of the buffer as the start of a little-endian 64-bit word.
    words = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, strides=(1,))
    h = words[starts] & _WORD_MASK[np.minimum(lengths, 8)]
    longer = np.flatnonzero(lengths > 8)
    k = 8
    while longer.size:
        rest = lengths[longer] - k
        h[longer] = h[longer] * _MIX + (words[starts[longer] + k] & _WORD_MASK[np.minimum(rest, 8)])
        longer = longer[rest > 8]
        k += 8
    return _mix64(h), offsets


def token_hashes(content: str) -> np.ndarray:
    """A 64-bit hash of every ``[A-Za-z_0-9]+`` token of ``content``, in order."""
    return batch_token_hashes([content])[0]


def _ngram_hashes(hashes: np.ndarray, ngram: int) -> np.ndarray:
    """64-bit hashes of the ``ngram``-token windows of ``hashes`` (all of them, in order)."""
    if len(hashes) < ngram:
        return np.zeros(0, dtype=np.uint64)
    n = len(hashes) - ngram + 1
    h = hashes[:n].copy()
    for k in range(1, ngram):
        h *= _MIX  # wraps mod 2**64, on purpose
        h += hashes[k : k + n]
    return h


def _fold32(h: np.ndarray) -> np.ndarray:
    return (h ^ (h >> np.uint64(32))).astype(np.uint32)


def shingle_hashes(hashes: np.ndarray, ngram: int) -> np.ndarray:
    """32-bit hashes of the ``ngram``-token shingles, from the tokens' hashes.

    Repeated shingles are left in for n-grams: a minimum does not change when a value repeats,
    and sorting them out costs more than the few extra rows (single tokens repeat so much that
    they are made unique). The signature's own mixing (datasketch's fmix32) follows.
    """
    folded = _fold32(_ngram_hashes(hashes, ngram) if ngram > 1 else hashes)
    return np.unique(folded) if ngram == 1 else folded


# datasketch's MinHash, scheme "affine32": each input hash is pre-mixed with MurmurHash3's 32-bit
# finaliser, then permutation k maps it to a_k * h + b_k mod 2**32 (a_k odd) and keeps the
# minimum. The permutations are drawn as datasketch draws them (MinHash._init_permutations) so
# that the values are datasketch's own; written out here because importing datasketch costs every
# worker process ~0.8 s (its LSH module imports scipy). tests/test_filters.py checks both the
# permutations and the hash values against datasketch itself.
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


# datasketch's MinHashLSH optimiser (false-positive and false-negative weights 0.5 each) for the
# settings santa's presets use, so that a run does not import datasketch, and scipy with it, for
# them (~0.5 s of CPU); a test checks every entry against datasketch itself.
_OPTIMAL_BANDS = {(0.85, 256): (13, 19), (0.7, 256): (25, 10), (0.8, 256): (17, 15), (0.9, 256): (9, 28)}


def optimal_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """The (bands, rows) datasketch's ``MinHashLSH(threshold, num_perm)`` uses."""
    known = _OPTIMAL_BANDS.get((round(float(threshold), 6), int(num_perm)))
    if known is not None:
        return known
    from datasketch.lsh import _optimal_param

    bands, rows = _optimal_param(threshold, num_perm, 0.5, 0.5)
    return int(bands), int(rows)


def fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def minhash_many(shingles: np.ndarray, offsets: np.ndarray, perms: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """MinHash values (datasketch's, see :func:`permutations`) of several sets at once: row i is
    the signature of ``shingles[offsets[i]:offsets[i + 1]]`` (each set non-empty).

    The (permutations x shingles) matrix is computed in blocks of _CHUNK shingles that run across
    set boundaries, then reduced per set with ``minimum.reduceat``: a few large numpy calls per
    block, whatever the size of the sets (update_batch makes a Python call per item)."""
    a, b = perms
    n_sets = len(offsets) - 1
    out = np.full((len(a), n_sets), np.iinfo(np.uint32).max, dtype=np.uint32)
    if n_sets == 0:
        return out.T
    hv = fmix32(shingles.astype(np.uint32))
    col_a, col_b = a[:, None], b[:, None]
    buf = np.empty((len(a), min(_CHUNK, len(hv))), dtype=np.uint32)
    for i in range(0, len(hv), _CHUNK):
        j = min(i + _CHUNK, len(hv))
        m = buf[:, : j - i]
        np.multiply(col_a, hv[None, i:j], out=m)  # wraps mod 2**32, as datasketch's affine32 does
        np.add(m, col_b, out=m)
        # The sets that have shingles in [i, j), and where each starts in the block.
        first = int(np.searchsorted(offsets, i, side="right")) - 1
        last = int(np.searchsorted(offsets, j, side="left"))
        cuts = np.maximum(offsets[first:last], i) - i
        part = out[:, first:last]
        np.minimum(part, np.minimum.reduceat(m, cuts, axis=1), out=part)
    return np.ascontiguousarray(out.T)


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
        self._bands_rows = (d["bands"] if bands is None else bands, d["rows"] if rows is None else rows)
        if self.small not in ("keep", "drop"):
            raise SantaError(f"near_dedup: small must be keep or drop, got {self.small!r}")
        if not 0 < self.threshold <= 1 or self.ngram < 1:
            raise SantaError(f"near_dedup: need 0 < threshold <= 1 and ngram >= 1, got {self.threshold}, {self.ngram}")
        if None not in self._bands_rows:
            self._check_bands()
        self._perms: tuple[np.ndarray, np.ndarray] | None = None

    # Bands and rows are needed only by the corpus-wide part (in the driver): when they come from
    # datasketch's optimiser, the workers that only compute signatures never import it.
    def _check_bands(self) -> tuple[int, int]:
        bands, rows = self._bands_rows
        if bands is None or rows is None:
            # The bands x rows datasketch's MinHashLSH picks for this threshold (0.85 -> 13 x 19).
            bands, rows = optimal_bands(self.threshold, self.num_perm)
        bands, rows = int(bands), int(rows)
        if bands * rows > self.num_perm or bands < 1 or rows < 1:
            raise SantaError(f"near_dedup: {bands} bands x {rows} rows exceed num_perm={self.num_perm}")
        self._bands_rows = (bands, rows)
        return bands, rows

    @property
    def bands(self) -> int:
        return self._check_bands()[0]

    @property
    def rows(self) -> int:
        return self._check_bands()[1]

    def params(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "num_perm": self.num_perm, "seed": self.seed, "threshold": self.threshold,
            "bands": self.bands, "rows": self.rows, "ngram": self.ngram, "min_tokens": self.min_tokens,
            "small": self.small, "jaccard_check": self.jaccard_check,
        }

    # -- per record (parallel) -------------------------------------------------------------

    def signature(self, content: str) -> tuple[int, np.ndarray | None]:
        """(number of tokens, MinHash hash values or None for a file under ``min_tokens``)."""
        n, sig = self.signatures([content])[0]
        return n, sig

    def signatures(self, contents: list[str]) -> list[tuple[int, np.ndarray | None]]:
        """:meth:`signature` of many texts, computed together (see :func:`minhash_many`)."""
        hashes, offsets = batch_token_hashes(contents)
        counts = np.diff(offsets)
        keep = np.flatnonzero(counts >= self.min_tokens)
        if self.ngram == 1:
            sets = [shingle_hashes(hashes[offsets[i] : offsets[i + 1]], 1) for i in keep]
        else:
            # The n-grams of the whole batch at once, then only those inside one text.
            grams = _fold32(_ngram_hashes(hashes, self.ngram))
            sets = [grams[offsets[i] : max(offsets[i], offsets[i + 1] - self.ngram + 1)] for i in keep]
        full = [x for x in sets if len(x)]
        bounds = np.zeros(len(full) + 1, dtype=np.int64)
        bounds[1:] = np.cumsum([len(x) for x in full])
        sigs = iter(minhash_many(np.concatenate(full) if full else np.zeros(0, np.uint32), bounds, self.perms))
        # An empty set (fewer tokens than an n-gram) has datasketch's empty signature.
        empty = np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
        out: list[tuple[int, np.ndarray | None]] = [(int(c), None) for c in counts]
        for i, x in zip(keep.tolist(), sets):
            out[i] = (int(counts[i]), next(sigs) if len(x) else empty)
        return out

    @property
    def perms(self) -> tuple[np.ndarray, np.ndarray]:
        if self._perms is None:
            self._perms = permutations(self.num_perm, self.seed)
        return self._perms

    def minhash(self, shingles: np.ndarray) -> np.ndarray:
        """The hash values datasketch's ``MinHash(num_perm, seed, scheme="affine32")`` gives after
        ``update_batch(shingles)`` (a test checks they agree)."""
        return minhash_many(shingles, np.array([0, len(shingles)], dtype=np.int64), self.perms)[0]

    def prepare(self, batch: list[Record]) -> list[Any]:
        return [(n, None if sig is None else sig.tobytes()) for n, sig in self.signatures([r["content"] for r in batch])]

    def band_hashes(self, sigs: np.ndarray) -> np.ndarray:
        """One 64-bit hash per LSH band of each signature: (bands,) for one, (n, bands) for n."""
        bands, rows = self._check_bands()
        part = sigs[..., : bands * rows].astype(np.uint64).reshape(*sigs.shape[:-1], bands, rows)
        acc = np.zeros(part.shape[:-1], dtype=np.uint64)
        for r in range(rows):
            acc = acc * _MIX + part[..., r]
        return acc

    # -- corpus-wide ----------------------------------------------------------------------

    def process_corpus(self, records: Iterable[Record]) -> dict[int, Decision]:
        if iter(records) is records:  # a one-shot iterator: two passes need it in memory
            records = list(records)
        ids: list[int] = []
        band_rows: list[np.ndarray] = []
        block: list[bytes] = []
        dropped: dict[int, Decision] = {}

        def flush() -> None:  # band hashes of many signatures at once, ~1 KB each kept meanwhile
            band_rows.append(self.band_hashes(np.frombuffer(b"".join(block), dtype=np.uint32).reshape(len(block), -1)))
            block.clear()

        for rec in records:
            n, sig = rec.get("_prepared") or self.prepare([rec])[0]
            rid = int(rec["id"])
            if sig is None:
                if self.small == "drop":
                    dropped[rid] = Decision(False, float(n), f"{n} tokens < min_tokens {self.min_tokens}")
                continue
            ids.append(rid)
            block.append(sig)
            if len(block) >= 4096:
                flush()
        if block:
            flush()
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
