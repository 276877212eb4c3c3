"""Near-deduplication with MinHash LSH (datasketch), in the two settings of the paper:

``stack`` (The Stack's default; bigcode-analysis ``minhash_deduplication.py``): the set of single
    tokens (the non-empty pieces of a split on ``[^A-Za-z_0-9]``), 256 permutations, LSH threshold
    0.85 (13 bands x 19 rows), then an exact Jaccard check: within a cluster of LSH candidates, a
    file is a duplicate only of a kept file it shares >= 85 % of its tokens with (codeparrot's and
    BigCode's "extremes"). Files under 10 tokens are kept unexamined. The sets compared are of the
    tokens' 64-bit hashes, as sorted arrays (distinct tokens of up to 8 bytes never share a hash;
    longer ones, with probability ~1e-14 within a cluster).
``dedup_alt`` (SantaCoder's stronger variant; bigcode-analysis ``minhash_deduplication_alt.py``
    at 14573fd): 5-gram shingles of *every* piece of that split, empty ones included (``re.split``
    leaves an empty string between two consecutive separators, so ``a  = b`` is
    ``['a', '', '', '', 'b']``: whitespace and punctuation runs shape the shingles), each the pieces
    joined by one space and hashed with SHA-1 (datasketch's default ``sha1_hash32``), 256
    permutations of datasketch's pre-2.0 scheme (``legacy``: the reference predates 2.0) with seed
    42, LSH threshold 0.7 as 25 bands x 10 rows, and one file kept per connected component of the
    LSH graph (the smallest id), with no Jaccard check. Files with fewer than 10 non-empty pieces
    are dropped before anything else, as the reference's ``min_token_length`` filter does. The
    signatures are the reference's own values, so the removals are the reference's.

Two choices are parameters, so that santa's faster or earlier variants live beside the reference
under their own names: ``tokens`` (``split``: the pieces as above, empty ones included;
``alnum``: only the non-empty pieces, which santa's dedup_alt used before it followed the reference)
and ``hashing`` (``sha1``: the reference's values, one SHA-1 per distinct shingle of a batch,
computed for all of them at once in numpy (:mod:`santa.filters._sha1`), and the legacy
permutations in 32-bit arithmetic (:func:`minhash_many_legacy`): ~2.5x the CPU of ``fast`` for
the signatures; the presets' choice;
``fast``: santa's vectorised 64-bit shingle hash and datasketch 2.0's ``affine32`` permutations,
an equally random hash family, so the removals differ from the reference only where MinHash's
sampling is borderline, as they would with another seed).

In every setting the file kept is the one with the smallest record id (the first in input order,
as the reference's sequential ``__id__``), so every engine and rerun keeps the same files, and
each removed file names it (``duplicate_of``).

The per-file MinHash signatures (computed for a whole batch of files at once: see
:class:`PieceLayout`, :func:`minhash_many` and :func:`minhash_many_legacy`) come from
:meth:`NearDedup.prepare`, run in parallel by the engine. The corpus-wide part runs where the data
is, as tasks on the engine's workers (:class:`~santa.filters.base.CorpusParts`; in this process
for a list of records): band keys computed per part and partitioned by key, grouped per partition
into the pairs of files that share a bucket, components found by the driver over those integer
pairs, then each cluster's members' material (their distinct tokens' hashes for the Jaccard
check, their signatures for dedup_alt's estimate) written per part and judged by tasks that each
take a batch of clusters (see :meth:`NearDedup.process_corpus`). The driver holds ~16 bytes per
candidate pair and ~60 per cluster member (and the small files' ids), nothing per other file
(issue 14).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from santa.errors import SantaError
from santa.filters import _sha1
from santa.filters.base import CorpusPart, CorpusParts, CorpusStep, DecisionTable, Record, corpus_parts, prepared_values

_TOKEN = re.compile(r"[A-Za-z_0-9]+")

MODES: dict[str, dict[str, Any]] = {
    "stack": {
        "ngram": 1,
        "threshold": 0.85,
        "bands": None,
        "rows": None,
        "jaccard_check": True,
        "small": "keep",
        "tokens": "alnum",
        "hash": "fast",
    },
    "dedup_alt": {
        "ngram": 5,
        "threshold": 0.7,
        "bands": 25,
        "rows": 10,
        "jaccard_check": False,
        "small": "drop",
        "tokens": "split",
        "hash": "sha1",
    },
}
TOKENIZATIONS = ("split", "alnum")
HASHES = ("sha1", "fast")
# Shingles per block of the (permutations x shingles) matrix (8 MB): measured fastest here.
_CHUNK = 8192
# Values per block of the legacy scheme's 32-bit (permutations x values) matrix (8 MB): measured
# fastest here, as for _CHUNK.
_LEGACY_CHUNK = 8192
_MIX = np.uint64(0x9E3779B97F4A7C15)
# datasketch 2.0's default; named so an upgrade that changes the default cannot change our hashes.
SCHEME = "affine32"
# The scheme of datasketch before 2.0, which the reference ran: (a * h + b) mod 2**64 (numpy's
# uint64 arithmetic wraps), mod the Mersenne prime 2**61 - 1, then the low 32 bits.
LEGACY_SCHEME = "legacy"
_MERSENNE = np.uint64((1 << 61) - 1)


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
    return _run_hashes(buf, starts, lengths), offsets


def _run_hashes(buf: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The 64-bit hash of each run of token bytes ``buf[s:s + n]`` (``buf`` ends with 8 zero bytes)."""
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
    return _mix64(h)


def token_hashes(content: str) -> np.ndarray:
    """A 64-bit hash of every ``[A-Za-z_0-9]+`` token of ``content``, in order."""
    return batch_token_hashes([content])[0]


# -- the reference's tokenization: every piece of a split, empty ones included ---------------

# The reference splits with re.split("[^A-Za-z_0-9]", content): one separator is one character,
# so two in a row leave an empty piece between them, and a separator at either end an empty
# piece there.
# Every byte that is not a token byte becomes one space, and a character's UTF-8 continuation
# bytes are deleted, so that each separator *character* (ASCII or not) is one space: the pieces
# are then the space-separated fields of the bytes, and a shingle's text, its pieces joined by one
# space, is a slice of them. The reference joins with spaces too and encodes in UTF-8 (pieces are
# ASCII), so the slice is byte for byte the string it hashed.
_TO_SPACE = bytes(c if c in _TOKEN_BYTES else 0x20 for c in range(256))
_UTF8_CONTINUATION = bytes(range(0x80, 0xC0))
# The hash of an empty piece in a shingle key; any fixed value other than 0 does, 0 would let
# a shingle with leading empty pieces share the key of a shorter one made of its other pieces.
_EMPTY_PIECE = np.uint64(0x5851F42D4C957F2D)
_2_64 = 1 << 64


class PieceLayout:
    """The pieces of a batch of texts, laid out in one normalised byte string.

    ``text``: the texts' normalised bytes joined by one space (the join ends one piece like any
    other separator), followed by 8 zero bytes; piece ``j`` is ``text[start[j]:end[j]]``; the
    pieces of text ``i`` are ``offsets[i]:offsets[i + 1]``; ``hashes``: a 64-bit hash of each
    piece (``_EMPTY_PIECE`` for an empty one); ``tokens``: the non-empty pieces of each text
    (what ``min_tokens`` counts, as the reference counts ``[t for t in split if t]``)."""

    __slots__ = ("text", "start", "end", "offsets", "hashes", "tokens")

    def __init__(self, contents: list[str], tokenization: str = "split", ranges: bool = True) -> None:
        norm = [c.encode("utf-8", "surrogatepass").translate(_TO_SPACE, _UTF8_CONTINUATION) for c in contents]
        if tokenization == "alnum":
            # Only the non-empty pieces: a text's tokens joined by one space; a text without any
            # token has no piece at all (and adds no join).
            norm = [b" ".join(n.split()) for n in norm]
        joined = b" ".join(n for n in norm if n) if tokenization == "alnum" else b" ".join(norm)
        self.text = joined + bytes(8)
        size = len(joined)
        arr = np.frombuffer(self.text, dtype=np.uint8, count=size)
        inside = np.zeros(size + 2, dtype=bool)
        np.not_equal(arr, 0x20, out=inside[1:-1])
        edges = np.flatnonzero(inside[1:] != inside[:-1])  # token start, end, start, end, ...
        t_start, t_end = edges[0::2], edges[1::2]
        t_len = t_end - t_start
        t_hash = _run_hashes(self.text, t_start, t_len)
        lengths = np.fromiter((len(n) for n in norm), dtype=np.int64, count=len(norm))
        if tokenization == "alnum":
            counts = np.fromiter((n.count(b" ") + 1 if n else 0 for n in norm), dtype=np.int64, count=len(norm))
            self.start, self.end, self.hashes = t_start, t_end, t_hash
            self.offsets = np.zeros(len(norm) + 1, dtype=np.int64)
            np.cumsum(counts, out=self.offsets[1:])
            self.tokens = counts
            return
        # Text i starts at byte file_start[i]; the pieces before it are the spaces before it.
        file_start = np.zeros(len(norm) + 1, dtype=np.int64)
        np.cumsum(lengths + 1, out=file_start[1:])
        tok_before = np.searchsorted(t_start, file_start[:-1])
        tok_bytes = np.zeros(len(t_len) + 1, dtype=np.int64)
        np.cumsum(t_len, out=tok_bytes[1:])
        n_pieces = size - int(tok_bytes[-1]) + 1 if norm else 0
        self.offsets = np.empty(len(norm) + 1, dtype=np.int64)
        self.offsets[:-1] = file_start[:-1] - tok_bytes[tok_before]
        self.offsets[-1] = n_pieces
        self.tokens = np.diff(np.append(tok_before, len(t_start)))
        self.start = np.zeros(n_pieces if ranges else 0, dtype=np.int64)
        self.end = np.zeros(n_pieces if ranges else 0, dtype=np.int64)
        if n_pieces and ranges:  # only SHA-1 reads the bytes back
            spaces = np.flatnonzero(arr == 0x20)
            self.start[1:] = spaces + 1
            self.end[:-1], self.end[-1] = spaces, size
        self.hashes = np.full(n_pieces, _EMPTY_PIECE, dtype=np.uint64)
        # A token's piece index: the spaces before it, i.e. its start minus the token bytes before it.
        self.hashes[t_start - tok_bytes[:-1]] = t_hash

    def shingles(self, ngram: int, texts: np.ndarray, ranges: bool = True) -> tuple[np.ndarray, ...]:
        """(key, text, start, end) of every ``ngram``-piece window of the given texts (indices,
        increasing), in order: a 64-bit key of the pieces, and the bytes ``text[start:end]``
        the reference hashes (only with ``ranges``). A text with fewer pieces than ``ngram`` has
        one shingle, all its pieces, as the reference's ``ngrams`` gives (``[tuple(tokens)]``)."""
        off, h = self.offsets, self.hashes
        n_pieces = len(h)
        counts = np.diff(off)[texts]
        firsts = off[texts]
        # Windows over the whole batch (contiguous slices, no gathers), then only those that lie
        # inside one of the texts asked for.
        m = max(n_pieces - ngram + 1, 0)
        key = h[:m].copy()
        for k in range(1, ngram):
            key *= _MIX  # wraps mod 2**64, on purpose
            key += h[k : k + m]
        wanted = np.zeros(len(off) - 1, dtype=bool)
        wanted[texts] = True
        valid = np.repeat(wanted, np.diff(off))[:m]
        for k in range(1, ngram):  # a window that runs over a text's end
            cut = off[1:-1] - k
            valid[cut[(cut >= 0) & (cut < m)]] = False
        key = key[valid]
        text_of = np.repeat(texts, np.maximum(counts - ngram + 1, 0))
        if ranges:
            start, end = self.start[:m][valid], self.end[ngram - 1 :][valid]
        else:
            start = end = np.zeros(0, dtype=np.int64)
        short = np.flatnonzero(counts < ngram)
        if short.size:
            extra_key, extra_start, extra_end = [], [], []
            for i in short.tolist():
                a, b = int(firsts[i]), int(firsts[i] + counts[i])
                kk = (int(counts[i]) + 1) * int(_EMPTY_PIECE) % _2_64  # the length tells these keys apart
                for x in h[a:b].tolist():
                    kk = (kk * int(_MIX) + x) % _2_64
                extra_key.append(kk)
                if ranges:
                    extra_start.append(int(self.start[a]) if b > a else 0)
                    extra_end.append(int(self.end[b - 1]) if b > a else 0)
            key = np.concatenate([key, np.array(extra_key, dtype=np.uint64)])
            text_of = np.concatenate([text_of, texts[short]])
            order = np.argsort(text_of, kind="stable")
            key, text_of = key[order], text_of[order]
            if ranges:
                start = np.concatenate([start, np.array(extra_start, dtype=np.int64)])[order]
                end = np.concatenate([end, np.array(extra_end, dtype=np.int64)])[order]
        return key, text_of, start, end


def sha1_hash32_many(text: bytes, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """datasketch's ``sha1_hash32`` (the first 4 bytes of the SHA-1 digest, little-endian) of
    each slice ``text[start[k]:end[k]]``: SHA-1 over all the slices at once, in numpy (see
    :mod:`santa.filters._sha1`; ~4x faster than a hashlib call per slice)."""
    return _sha1.sha1_hash32(text, start, end)


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


def legacy_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The permutations datasketch's ``MinHash(num_perm, seed, scheme="legacy")`` draws (its only
    scheme before 2.0): one (a, b) pair after another from one ``RandomState(seed)``."""
    gen = np.random.RandomState(seed)
    pairs = [
        (gen.randint(1, _MERSENNE, dtype=np.uint64), gen.randint(0, _MERSENNE, dtype=np.uint64))
        for _ in range(num_perm)
    ]
    return np.array([p[0] for p in pairs], dtype=np.uint64), np.array([p[1] for p in pairs], dtype=np.uint64)


def minhash_many_legacy(
    values: np.ndarray, offsets: np.ndarray, perms: tuple[np.ndarray, np.ndarray], distinct: np.ndarray | None = None
) -> np.ndarray:
    """:func:`minhash_many` with datasketch's legacy scheme: the hash values of
    ``MinHash(scheme="legacy").update_batch`` (with the identity as hash function) of each set of
    32-bit ``values``, as uint32 (each set non-empty). ``distinct``: every value of ``values``
    (fewer, where the caller knows the distinct ones; only a filter is built of it).

    datasketch computes ``((a h + b) mod 2**64 mod p) & (2**32 - 1)`` (p = 2**61 - 1) per value
    and permutation in 64-bit numbers; here almost all of it is done in 32-bit ones, a third of
    the memory traffic and half the passes. With m = (a h + b) mod 2**64, u = m mod 2**32 and
    t = m >> 61 (0..7; 2**61 = 1 mod p), the value is u + t, except where u >= 2**32 - 8 (the
    reduction's rare cases and a wrap past 2**32). So per set and permutation:

    1. the minimum U of u' = (u + 8) mod 2**32 = (a_lo h + b_lo + 8) mod 2**32, in uint32 (a_lo,
       b_lo: the low 32 bits of a and b). U >= 8 means no value of the set is in a rare case, and
       every value is u' - 8 + t.
    2. The shingle h* that reaches U: a_lo = 2**k o (o odd), so u' is h mod 2**(32 - k) times o
       times 2**k plus a constant, which o's inverse mod 2**32 undoes; the k top bits of h, which
       a_lo's zeros drop, are kept in u''s k low bits (constant for a given permutation) for the
       minimum to carry them. h*'s exact value v* = U - 8 + t* follows.
    3. Another value of the set can only be smaller if its u' is in [U, U + t* - 1]: at most 7
       values of u', each with 2**k preimages h, which are looked up in a filter of the batch's
       values (:class:`_ValueFilter`, no false negatives). Where one may be there (~0.2 % of the
       (set, permutation) pairs), or U < 8, the set's minimum is computed again the plain way.

    Permutations whose a_lo has more than _MAX_TRAILING_ZEROS trailing zeros (2**k preimages to
    look up: the plain way costs less; 6 of seed 42's 256) are computed the plain way throughout.
    """
    a, b = perms
    n_sets = len(offsets) - 1
    out = np.full((len(a), n_sets), np.iinfo(np.uint32).max, dtype=np.uint32)
    if n_sets == 0 or len(values) == 0:
        return np.ascontiguousarray(out.T)
    h = np.ascontiguousarray(values, dtype=np.uint32)
    plan = _legacy_plan(a, b)
    rows = plan.rows
    if len(rows):
        low = _legacy_low_minima(h, offsets, plan)
        k, c = plan.k[:, None], plan.c[:, None]
        # Step 2: U, and h* from it.
        top = low & plan.top_mask[:, None]
        u_min = (low - top) + plan.beta[:, None]
        lo = ((u_min - c) >> k) * plan.inv[:, None]  # h* mod 2**(32 - k), in the low bits
        h_star = (lo & plan.lo_mask[:, None]) | (top << plan.top_shift[:, None])
        v_star = _legacy_values(h_star, a[rows, None], b[rows, None])
        t_star = v_star.astype(np.int64) + 8 - u_min.astype(np.int64)  # 0..7 where u_min >= 8
        redo = u_min < np.uint32(8)
        # Step 3: the near ties, per number of trailing zeros.
        filt = _ValueFilter(h if distinct is None else distinct)
        for kk, r0, r1 in plan.groups:
            step = 1 << kk
            offs = np.arange(0 if kk else 1, 7, step, dtype=np.int64)
            # The values of u' in [U, U + t*): (row, set, offset) triples, then their preimages.
            r, s, o = np.nonzero(offs < t_star[r0:r1, :, None])
            r += r0
            w = u_min[r, s] + offs[o].astype(np.uint32)  # no wrap: below v* + 8 <= 2**32 - 1
            lo_w = (((w - plan.c[r]) >> np.uint32(kk)) * plan.inv[r]) & plan.lo_mask[r]
            cand = lo_w[:, None] | (np.arange(step, dtype=np.uint32) << np.uint32((32 - kk) & 31))
            # Only a preimage whose own value is below v* can change the minimum (~1/3 of them);
            # only those are looked up.
            below = _legacy_values(cand, a[rows[r], None], b[rows[r], None]) < v_star[r, s][:, None]
            i, _ = np.nonzero(below)
            hit = filt.may_hold(cand[below])
            redo[r[i[hit]], s[i[hit]]] = True
        filt.clear()
        out[rows] = v_star
        rr, ss = np.nonzero(redo)
        if len(rr):
            out[rows[rr], ss] = _legacy_set_minima(h, offsets, ss, a[rows[rr]], b[rows[rr]])
    for r in plan.plain.tolist():
        out[r] = np.minimum.reduceat(_legacy_values(h, a[r], b[r]), offsets[:-1])
    return np.ascontiguousarray(out.T)


_PLANS: dict[tuple[bytes, bytes], _LegacyPlan] = {}
# Permutations with more trailing zeros in a's low 32 bits have too many preimages per value to
# look up (2**k): they are computed the plain way. 4 measured fastest with seed 42's (3 to 10 tried).
_MAX_TRAILING_ZEROS = 4


def _legacy_plan(a: np.ndarray, b: np.ndarray) -> _LegacyPlan:
    # One per set of permutations (a worker computes thousands of batches with the same ones).
    key = (a.tobytes(), b.tobytes())
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = _LegacyPlan(a, b)
    return _PLANS[key]


class _LegacyPlan:
    """The legacy permutations' constants for the 32-bit pass (see :func:`minhash_many_legacy`):
    ``rows``, the permutations it computes, grouped by ``k`` (trailing zeros of a's low 32 bits;
    ``groups``: (k, first row, end row)); per row, the multiplier ``a32``, the constant ``c`` =
    b_lo + 8, its k low bits ``beta``, ``add`` = c - beta, o's inverse ``inv``, and the masks of
    h*'s bits; ``plain``: the other permutations."""

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        a32 = [int(x) & 0xFFFFFFFF for x in a.tolist()]
        b32 = [int(x) & 0xFFFFFFFF for x in b.tolist()]
        tz = [(x & -x).bit_length() - 1 if x else 32 for x in a32]
        order = sorted((i for i in range(len(a32)) if tz[i] <= _MAX_TRAILING_ZEROS), key=lambda i: tz[i])
        self.rows = np.array(order, dtype=np.int64)
        self.plain = np.array([i for i in range(len(a32)) if tz[i] > _MAX_TRAILING_ZEROS], dtype=np.int64)
        ks = [tz[i] for i in order]
        c = [(b32[i] + 8) & 0xFFFFFFFF for i in order]
        beta = [ci & ((1 << kk) - 1) for ci, kk in zip(c, ks)]

        def u32(xs: Any) -> np.ndarray:
            return np.array(xs, dtype=np.uint32)

        self.a32 = u32([a32[i] for i in order])
        self.k = u32(ks)
        self.c = u32(c)
        self.beta = u32(beta)
        self.add = u32([ci - bi for ci, bi in zip(c, beta)])
        self.inv = u32([pow(a32[i] >> kk, -1, 1 << 32) for i, kk in zip(order, ks)])
        self.top_mask = u32([(1 << kk) - 1 for kk in ks])
        self.lo_mask = u32([(1 << (32 - kk)) - 1 for kk in ks])
        self.top_shift = u32([(32 - kk) & 31 for kk in ks])  # k = 0: no top bits, any shift
        self.groups = [(kk, ks.index(kk), len(ks) - ks[::-1].index(kk)) for kk in sorted(set(ks))]


def _legacy_low_minima(h: np.ndarray, offsets: np.ndarray, plan: _LegacyPlan) -> np.ndarray:
    """Step 1 of :func:`minhash_many_legacy`: per permutation of ``plan.rows`` and set, the
    minimum of u' with h's k top bits in its k low bits, (a_lo h + add + (h >> (32 - k))) mod
    2**32, in blocks of _LEGACY_CHUNK values that run across set boundaries."""
    n_sets = len(offsets) - 1
    low = np.full((len(plan.rows), n_sets), np.iinfo(np.uint32).max, dtype=np.uint32)
    col_a, col_add = plan.a32[:, None], plan.add[:, None]
    tops = [(r0, r1, h >> np.uint32(32 - kk)) for kk, r0, r1 in plan.groups if kk]
    buf = np.empty((len(plan.rows), min(_LEGACY_CHUNK, len(h))), dtype=np.uint32)
    for i in range(0, len(h), _LEGACY_CHUNK):
        j = min(i + _LEGACY_CHUNK, len(h))
        m = buf[:, : j - i]
        np.multiply(col_a, h[None, i:j], out=m)  # wraps mod 2**32: the low 32 bits of a h
        np.add(m, col_add, out=m)
        for r0, r1, top in tops:
            np.add(m[r0:r1], top[None, i:j], out=m[r0:r1])
        first = int(np.searchsorted(offsets, i, side="right")) - 1
        last = int(np.searchsorted(offsets, j, side="left"))
        cuts = np.maximum(offsets[first:last], i) - i
        part = low[:, first:last]
        np.minimum(part, np.minimum.reduceat(m, cuts, axis=1), out=part)
    return low


class _ValueFilter:
    """Whether a uint32 may be one of a batch's values: two byte maps indexed by the top and the
    bottom _FILTER_BITS bits of its fmix32 (which spreads values that differ in a few bits
    apart), no false negatives, ~0.2 % false positives for the ~400 thousand values of a batch.
    The maps (2 x 8 MB) are allocated once per process and cleared where they were set: zeroing
    or allocating them anew each batch costs more than the rest of the filter."""

    _maps: tuple[np.ndarray, np.ndarray] | None = None

    def __init__(self, values: np.ndarray) -> None:
        if _ValueFilter._maps is None:
            _ValueFilter._maps = (np.zeros(1 << _FILTER_BITS, dtype=bool), np.zeros(1 << _FILTER_BITS, dtype=bool))
        self.high, self.low = _ValueFilter._maps
        high, low = self._keys(values)
        self.high[high] = True
        self.low[low] = True

    @staticmethod
    def _keys(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mixed = fmix32(x)
        return mixed >> np.uint32(32 - _FILTER_BITS), mixed & np.uint32((1 << _FILTER_BITS) - 1)

    def may_hold(self, x: np.ndarray) -> np.ndarray:
        high, low = self._keys(x)
        found = self.high[high]
        found &= self.low[low]
        return found

    def clear(self) -> None:
        self.high.fill(False)  # a memset: cheaper than writing back where the values were
        self.low.fill(False)


_FILTER_BITS = 23


def _legacy_values(h: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """datasketch's legacy permutation of uint32 ``h`` with (a, b) (broadcast): (a h + b) mod 2**64
    (numpy's uint64 arithmetic wraps, as datasketch's does) mod p, low 32 bits."""
    m = a * h.astype(np.uint64) + b
    r = (m & _MERSENNE) + (m >> np.uint64(61))  # 2**61 = 1 mod p: m mod p, or that plus p
    r[r >= _MERSENNE] -= _MERSENNE
    return r.astype(np.uint32)


def _legacy_set_minima(
    h: np.ndarray, offsets: np.ndarray, sets: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """The minimum of the legacy permutation (a[i], b[i]) over set sets[i], for each i, at once."""
    lengths = offsets[sets + 1] - offsets[sets]
    seg = np.zeros(len(sets) + 1, dtype=np.int64)
    np.cumsum(lengths, out=seg[1:])
    index = np.arange(seg[-1]) + np.repeat(offsets[sets] - seg[:-1], lengths)
    return np.minimum.reduceat(_legacy_values(h[index], np.repeat(a, lengths), np.repeat(b, lengths)), seg[:-1])


def _distinct_sha1(
    text: bytes, key: np.ndarray, text_of: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sha1_hash32 values, their texts) of each text's distinct shingles, in text order, and the
    values of the batch's distinct shingles, with one SHA-1 per distinct shingle of the batch. ``key``: the shingles' 64-bit keys (equal
    shingles, equal keys), ``text_of``: non-decreasing.

    One sort does both: by the keys' top 32 bits, stable, so that equal keys come together, by
    index within them, hence by text. (Two keys that share those bits, a few per batch, may
    interleave and are then taken for different shingles: one more SHA-1 and a value repeated in
    a set, neither changes a signature.) The reference's set is of shingles: two shingles of
    one text with the same 32-bit value are both kept, a minimum does not mind."""
    n = len(key)
    if n == 0:
        return np.zeros(0, dtype=np.uint32), text_of, np.zeros(0, dtype=np.uint32)
    # Two 16-bit digits, least significant first: numpy sorts 16-bit keys stably by radix, ~2x
    # faster together than its sort of the 64-bit keys.
    index = np.argsort((key >> np.uint64(32)).astype(np.uint16), kind="stable")
    index = index[np.argsort((key[index] >> np.uint64(48)).astype(np.uint16), kind="stable")]
    sorted_key = key[index]
    sorted_text = text_of[index]
    first = np.ones(n, dtype=bool)  # a new key: its SHA-1 is computed
    np.not_equal(sorted_key[1:], sorted_key[:-1], out=first[1:])
    keep = first.copy()  # a new key, or a new text for the same key: a member of a set
    keep[1:] |= sorted_text[1:] != sorted_text[:-1]
    # The shingles to hash in text order (a scatter, not a sort): SHA-1 then reads the text in
    # order, and a distinct key's value is found by its rank among them.
    first_at = np.zeros(n, dtype=bool)
    first_at[index[first]] = True
    hashed = np.flatnonzero(first_at)
    rank = np.cumsum(first_at) - 1
    digest = sha1_hash32_many(text, start[hashed], end[hashed])
    by_key = digest[rank[index[first]]]  # the value of the k-th distinct key
    kept = index[keep]
    # Back to text order: the kept shingles' values at their own positions, read in order.
    at = np.empty(n, dtype=np.uint32)
    at[kept] = by_key[(np.cumsum(first) - 1)[keep]]
    member = np.zeros(n, dtype=bool)
    member[kept] = True
    return at[member], text_of[member], digest


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
        tokens: str | None = None,
        hashing: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise SantaError(
                f"near_dedup: mode must be one of {sorted(MODES)}, got {mode!r} (pipeline.params.near_dedup.mode)"
            )
        d = MODES[mode]
        self.mode = mode
        self.num_perm, self.seed = int(num_perm), int(seed)
        self.threshold = float(d["threshold"] if threshold is None else threshold)
        self.ngram = int(d["ngram"] if ngram is None else ngram)
        self.min_tokens = int(min_tokens)
        self.small = d["small"] if small is None else small
        self.jaccard_check = bool(d["jaccard_check"] if jaccard_check is None else jaccard_check)
        self._bands_rows = (d["bands"] if bands is None else bands, d["rows"] if rows is None else rows)
        self.tokenization = d["tokens"] if tokens is None else tokens
        self.hashing = d["hash"] if hashing is None else hashing
        if self.tokenization not in TOKENIZATIONS:
            raise SantaError(f"near_dedup: tokens must be one of {list(TOKENIZATIONS)}, got {self.tokenization!r}")
        if self.hashing not in HASHES:
            raise SantaError(f"near_dedup: hashing must be one of {list(HASHES)}, got {self.hashing!r}")
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
            "mode": self.mode,
            "num_perm": self.num_perm,
            "seed": self.seed,
            "threshold": self.threshold,
            "bands": self.bands,
            "rows": self.rows,
            "ngram": self.ngram,
            "min_tokens": self.min_tokens,
            "small": self.small,
            "jaccard_check": self.jaccard_check,
            "tokens": self.tokenization,
            "hashing": self.hashing,
        }

    # -- per record (parallel) -------------------------------------------------------------

    def signature(self, content: str) -> tuple[int, np.ndarray | None]:
        """(number of tokens, MinHash hash values or None for a file under ``min_tokens``)."""
        n, sig = self.signatures([content])[0]
        return n, sig

    def signatures(self, contents: list[str]) -> list[tuple[int, np.ndarray | None]]:
        """:meth:`signature` of many texts, computed together (see :func:`minhash_many`)."""
        if self.tokenization == "alnum" and self.hashing == "fast":
            return self._alnum_fast_signatures(contents)
        layout = PieceLayout(contents, self.tokenization, ranges=self.hashing == "sha1")
        counts = layout.tokens
        keep = np.flatnonzero(counts >= self.min_tokens)
        key, text_of, start, end = layout.shingles(self.ngram, keep, ranges=self.hashing == "sha1")
        # A shingle repeated in a row (runs of empty pieces: indentation, blank lines) cannot
        # change a minimum: one of each run is enough, and the cheap check removes ~40 %.
        if len(key) > 1:
            new = np.ones(len(key), dtype=bool)
            new[1:] = (key[1:] != key[:-1]) | (text_of[1:] != text_of[:-1])
            key, text_of = key[new], text_of[new]
            if self.hashing == "sha1":
                start, end = start[new], end[new]
        values: np.ndarray | None = None
        distinct: np.ndarray | None = None
        if self.hashing == "sha1":
            values, text_of, distinct = _distinct_sha1(layout.text, key, text_of, start, end)
        # Every kept text has at least one shingle (a short one has all its pieces as one).
        bounds = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(np.bincount(text_of, minlength=len(contents))[keep], out=bounds[1:])
        if values is not None:
            sigs = minhash_many_legacy(values, bounds, self.perms, distinct=distinct)
        else:
            sigs = minhash_many(_fold32(key), bounds, self.perms)
        out: list[tuple[int, np.ndarray | None]] = [(int(c), None) for c in counts]
        for i, sig in zip(keep.tolist(), sigs):
            out[i] = (int(counts[i]), sig)
        return out

    def _alnum_fast_signatures(self, contents: list[str]) -> list[tuple[int, np.ndarray | None]]:
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
            draw = legacy_permutations if self.hashing == "sha1" else permutations
            self._perms = draw(self.num_perm, self.seed)
        return self._perms

    @property
    def scheme(self) -> str:
        """datasketch's name for the permutation scheme of the signatures."""
        return LEGACY_SCHEME if self.hashing == "sha1" else SCHEME

    def minhash(self, shingles: np.ndarray) -> np.ndarray:
        """The hash values datasketch's ``MinHash(num_perm, seed, scheme=self.scheme)`` gives after
        ``update_batch(shingles)`` with the identity as hash function (a test checks they agree)."""
        many = minhash_many_legacy if self.hashing == "sha1" else minhash_many
        return many(shingles, np.array([0, len(shingles)], dtype=np.int64), self.perms)[0]

    def prepare(self, batch: list[Record]) -> list[Any]:
        return [
            (n, None if sig is None else sig.tobytes()) for n, sig in self.signatures([r["content"] for r in batch])
        ]

    def band_hashes(self, sigs: np.ndarray) -> np.ndarray:
        """One 64-bit hash per LSH band of each signature: (bands,) for one, (n, bands) for n."""
        bands, rows = self._check_bands()
        part = sigs[..., : bands * rows].astype(np.uint64).reshape(*sigs.shape[:-1], bands, rows)
        acc = np.zeros(part.shape[:-1], dtype=np.uint64)
        for r in range(rows):
            acc = acc * _MIX + part[..., r]
        return acc

    # -- corpus-wide ----------------------------------------------------------------------
    #
    # Run as tasks where the data is (the engine's workers, through ``CorpusParts``; in this
    # process for a list of records), the driver holding compact integer arrays only:
    #
    # 1. a task per part computes the band hashes of its signatures and writes them as rows
    #    (band, hash, id), partitioned by a hash of (band, hash), to one scratch file per part;
    # 2. a task per partition reads its slice of every part's file, sorts it by (band, hash) and
    #    returns the pairs of ids that share a bucket (the shuffle and group-by on band keys);
    # 3. the driver finds the connected components over those pairs (vectorised union-find over
    #    the ids that have any: ~16 bytes per candidate, nothing per other file);
    # 4. a task per part writes the material of the cluster members it holds (the distinct
    #    tokens' hashes for the Jaccard check, the signature for dedup_alt's estimate) to a scratch
    #    file, and tasks that each take a batch of clusters read their members' material back
    #    and return the decisions as columns.
    reads_content = False

    def process_corpus(self, records: Iterable[Record]) -> DecisionTable:
        import tempfile

        corpus = corpus_parts(records)
        bands, _ = self._check_bands()
        with tempfile.TemporaryDirectory(prefix="near-dedup-", dir=corpus.scratch) as tmp:
            partitions = max(1, min(_MAX_PARTITIONS, -(-len(corpus) * bands // _PARTITION_ROWS)))
            small_ids, small_n = [], []
            slices: list[list[tuple[int, int, int]]] = [[] for _ in range(partitions)]
            for index, offsets, s_ids, s_n in corpus.map_parts(functools.partial(_band_task, self, tmp, partitions)):
                small_ids.append(s_ids)
                small_n.append(s_n)
                if offsets is not None:
                    for p in np.flatnonzero(np.diff(offsets)).tolist():
                        slices[p].append((index, int(offsets[p]), int(offsets[p + 1])))
            n_small = np.concatenate(small_n) if small_n else np.zeros(0, dtype=np.int64)
            decisions = [
                DecisionTable.from_columns(
                    np.concatenate(small_ids) if small_ids else np.zeros(0, dtype=np.int64),
                    n_small.astype(np.float64),
                    [f"{n} tokens < min_tokens {self.min_tokens}" for n in n_small.tolist()],
                )
            ]
            del small_ids, small_n, n_small
            edges = [e for e in corpus.map(functools.partial(_group_task, tmp), slices) if e.shape[1]]
            del slices
            if edges:
                pairs = np.concatenate(edges, axis=1)
                del edges
                decisions.extend(self._decide(corpus, pairs, tmp))
        return DecisionTable.concat(decisions)

    def _decide(self, corpus: CorpusParts, pairs: np.ndarray, tmp: str) -> list[DecisionTable]:
        """Decisions of the components of the graph of ``pairs`` (2 x k ids): their members'
        material is written by tasks over the parts, then judged by tasks over batches of
        clusters."""
        nodes = np.unique(pairs)
        labels = _components(len(nodes), np.searchsorted(nodes, pairs[0]), np.searchsorted(nodes, pairs[1]))
        del pairs
        # Cluster by cluster (by smallest id), the ids sorted within each: nodes are sorted, the
        # sort is stable.
        order = np.argsort(labels, kind="stable")
        lab = labels[order]
        del labels
        bounds = np.append(np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]]), len(lab))
        del lab
        np.save(os.path.join(tmp, "members.npy"), nodes)
        part = np.full(len(nodes), -1, dtype=np.int64)
        start = np.zeros(len(nodes), dtype=np.int64)
        length = np.zeros(len(nodes), dtype=np.int64)
        for index, ids, lengths in corpus.map_parts(functools.partial(_material_task, self, tmp)):
            if not len(ids):
                continue
            k = np.searchsorted(nodes, ids)
            part[k] = index
            length[k] = lengths
            start[k] = np.cumsum(lengths) - lengths
        if (part < 0).any():
            missing = nodes[part < 0][:5].tolist()
            raise SantaError(f"near_dedup: candidate ids {missing} are not among the records it was given")
        members = nodes[order]
        part, start, length = part[order], start[order], length[order]
        del nodes, order
        # Batches of whole clusters of about _BATCH_VALUES values of material (fewer, when that
        # makes fewer than 8 batches), in cluster order.
        values = np.add.reduceat(length, bounds[:-1])
        budget = max(1, min(_BATCH_VALUES, int(values.sum()) // 8))
        batch_of = (np.cumsum(values) - values) // budget
        cuts = np.append(np.flatnonzero(np.r_[True, batch_of[1:] != batch_of[:-1]]), len(values))
        batches = []
        for c0, c1 in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
            m0, m1 = int(bounds[c0]), int(bounds[c1])
            batches.append((members[m0:m1], bounds[c0 : c1 + 1] - m0, part[m0:m1], start[m0:m1], length[m0:m1]))
        return list(corpus.map(functools.partial(_cluster_task, self, tmp), batches))

    def _extremes(self, cluster: list[int], load: Callable[[int], np.ndarray]) -> list[tuple[int, int, float]]:
        """(dropped id, the kept id it duplicates, Jaccard) of a cluster, sorted by id: each file
        is a duplicate of the first kept file it shares >= threshold of its distinct tokens with."""
        kept: list[tuple[int, np.ndarray]] = []
        out: list[tuple[int, int, float]] = []
        for rid in cluster:
            mine = load(rid)
            for k, theirs in kept:
                j = _jaccard(mine, theirs)
                if j >= self.threshold:
                    out.append((rid, k, j))
                    break
            else:
                kept.append((rid, mine))
        return out


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sets given as sorted arrays of distinct values."""
    if not len(a) and not len(b):
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


# The corpus-wide tasks (see NearDedup.process_corpus): module-level functions, picklable with
# functools.partial, run on the engine's workers.

# A band-key row: (band, band hash, id), 18 bytes.
_ROW = np.dtype([("band", "<u2"), ("hash", "<u8"), ("id", "<i8")])
# Band-key rows per grouping task (a partition): ~19 MB of rows, ~3x that while sorting.
_PARTITION_ROWS = 1 << 20
_MAX_PARTITIONS = 4096
# Material values per cluster-checking task (8 bytes each for token hashes).
_BATCH_VALUES = 1 << 22


def _band_path(tmp: str, index: int) -> str:
    return os.path.join(tmp, f"bands-{index:07d}.bin")


def _material_path(tmp: str, index: int) -> str:
    return os.path.join(tmp, f"material-{index:07d}.bin")


def _band_task(
    step: NearDedup, tmp: str, partitions: int, part: CorpusPart
) -> tuple[int, np.ndarray | None, np.ndarray, np.ndarray]:
    """Step 1, one part: its band-key rows, sorted by partition, to its file; returns (part
    index, where each partition's rows start in the file (None: no rows), ids and token counts
    of the files under min_tokens that are dropped)."""
    ids = part.ids()
    prepared = prepared_values(step, part)
    has = np.array([p[1] is not None for p in prepared], dtype=bool)
    counts = np.array([p[0] for p in prepared], dtype=np.int64)
    small = ~has if step.small == "drop" else np.zeros(len(ids), dtype=bool)
    sig_rows = np.flatnonzero(has)
    offsets = None
    if len(sig_rows):
        sigs = np.frombuffer(b"".join(prepared[i][1] for i in sig_rows.tolist()), dtype=np.uint32)
        keys = step.band_hashes(sigs.reshape(len(sig_rows), -1))
        n, bands = keys.shape
        rows = np.empty(n * bands, dtype=_ROW)
        rows["band"] = np.tile(np.arange(bands, dtype=np.uint16), n)
        rows["hash"] = keys.ravel()
        rows["id"] = np.repeat(ids[sig_rows], bands)
        where = (_mix64(rows["hash"] + rows["band"].astype(np.uint64)) % np.uint64(partitions)).astype(np.int64)
        order = np.argsort(where, kind="stable")
        rows[order].tofile(_band_path(tmp, part.index))
        offsets = np.searchsorted(where[order], np.arange(partitions + 1))
    return part.index, offsets, ids[small], counts[small]


def _group_task(tmp: str, slices: list[tuple[int, int, int]]) -> np.ndarray:
    """Step 2, one partition: its rows of every part (``(part index, first row, end row)``),
    grouped by (band, hash); the pairs of ids that share a bucket, as 2 x k int64 (each bucket
    as a chain, each pair once)."""
    chunks = [np.fromfile(_band_path(tmp, i), dtype=_ROW, count=e - s, offset=s * _ROW.itemsize) for i, s, e in slices]
    rows = np.concatenate(chunks) if chunks else np.zeros(0, dtype=_ROW)
    del chunks
    if len(rows) < 2:
        return np.zeros((2, 0), dtype=np.int64)
    order = np.lexsort((rows["hash"], rows["band"]))
    band, key, ids = rows["band"][order], rows["hash"][order], rows["id"][order]
    del rows, order
    same = np.flatnonzero((band[1:] == band[:-1]) & (key[1:] == key[:-1]))
    a, b = ids[same], ids[same + 1]
    if len(a) > 1:  # the same pair found in several bands: once
        o = np.lexsort((b, a))
        a, b = a[o], b[o]
        new = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
        a, b = a[new], b[new]
    return np.stack([a, b]).astype(np.int64, copy=False)


def _material_task(step: NearDedup, tmp: str, part: CorpusPart) -> tuple[int, np.ndarray, np.ndarray]:
    """Step 4a, one part: the material of the cluster members it holds (the sorted ids in
    ``members.npy``), to its file; returns (part index, those ids, their material's lengths)."""
    members = np.load(os.path.join(tmp, "members.npy"), mmap_mode="r")
    ids = part.ids()
    empty = np.zeros(0, dtype=np.int64)
    if not len(ids) or not len(members):
        return part.index, empty, empty
    pos = np.searchsorted(members, ids).clip(0, len(members) - 1)
    rows = np.flatnonzero(np.asarray(members[pos]) == ids)
    if not len(rows):
        return part.index, empty, empty
    values: list[np.ndarray]
    if step.jaccard_check:  # each member's distinct tokens, as sorted 64-bit hashes
        hashes, offs = batch_token_hashes([r["content"] for r in part.records(rows, content=True)])
        values = [np.unique(hashes[offs[i] : offs[i + 1]]) for i in range(len(rows))]
        dtype: type = np.uint64
    else:
        prepared = prepared_values(step, part)
        values = [np.frombuffer(prepared[i][1], dtype=np.uint32) for i in rows.tolist()]
        dtype = np.uint32
    with open(_material_path(tmp, part.index), "wb") as fh:
        for v in values:
            v.astype(dtype, copy=False).tofile(fh)
    return part.index, ids[rows], np.array([len(v) for v in values], dtype=np.int64)


def _cluster_task(
    step: NearDedup, tmp: str, batch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
) -> DecisionTable:
    """Step 4b, a batch of clusters: (members' ids cluster by cluster, cluster bounds, and each
    member's part, first value and length in its part's material file); their decisions."""
    ids, bounds, part, start, length = batch
    dtype = np.uint64 if step.jaccard_check else np.uint32
    size = np.dtype(dtype).itemsize
    material: dict[int, np.ndarray] = {}
    current, fh = -1, None
    try:
        for k in np.lexsort((start, part)).tolist():  # file by file, in order
            if part[k] != current:
                if fh is not None:
                    fh.close()
                current = int(part[k])
                fh = open(_material_path(tmp, current), "rb")  # noqa: SIM115 (closed below)
            assert fh is not None
            fh.seek(int(start[k]) * size)
            material[int(ids[k])] = np.fromfile(fh, dtype=dtype, count=int(length[k]))
    finally:
        if fh is not None:
            fh.close()
    out_ids: list[int] = []
    stat: list[float] = []
    reason: list[str] = []
    dup_of: list[int] = []
    comp: list[int] = []
    for c in range(len(bounds) - 1):
        cl = ids[bounds[c] : bounds[c + 1]].tolist()
        if step.jaccard_check:
            for rid, k, j in step._extremes(cl, material.__getitem__):
                out_ids.append(rid)
                stat.append(round(j, 4))
                dup_of.append(k)
                reason.append(f"near duplicate of id {k} (Jaccard {j:.3f} >= {step.threshold:g})")
            continue
        kept = cl[0]
        kept_sig = material[kept]
        for rid in cl[1:]:
            est = float(np.mean(material[rid] == kept_sig))
            out_ids.append(rid)
            stat.append(round(est, 4))
            dup_of.append(kept)
            comp.append(len(cl))
            reason.append(f"near duplicate of id {kept} (dedup_alt component of {len(cl)}; est. Jaccard {est:.2f})")
    return DecisionTable.from_columns(
        out_ids,
        stat,
        reason,
        duplicate_of=dup_of,
        component_size=None if step.jaccard_check else comp,
        similarity=stat,
    )


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each node's component label (its smallest node) in the graph of edges ``a[i] - b[i]``:
    roots hooked under the smaller root of every edge, then pointer jumping, until every edge
    lies inside one component (vectorised union-find: a few passes over the edges)."""
    parent = np.arange(n, dtype=np.int64)
    while True:
        ra, rb = parent[a], parent[b]
        if (ra == rb).all():
            return parent
        low = np.minimum(ra, rb)
        np.minimum.at(parent, ra, low)
        np.minimum.at(parent, rb, low)
        while True:  # point every node at its root
            up = parent[parent]
            if (up == parent).all():
                break
            parent = up
