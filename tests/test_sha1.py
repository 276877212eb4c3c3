"""santa's batched numpy SHA-1 (santa/filters/_sha1.py) against hashlib, and the legacy MinHash
permutations' rare cases against datasketch."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from santa.filters import _sha1
from santa.filters.near_dedup import (
    _MERSENNE,
    PieceLayout,
    legacy_permutations,
    minhash_many_legacy,
    sha1_hash32_many,
)


def _hashlib32(data: bytes) -> int:
    # datasketch's sha1_hash32: struct.unpack("<I", sha1(data).digest()[:4])[0]
    return int.from_bytes(hashlib.sha1(data).digest()[:4], "little")


def _layout(messages: list[bytes]) -> tuple[bytes, np.ndarray, np.ndarray]:
    lengths = np.array([len(m) for m in messages], dtype=np.int64)
    end = np.cumsum(lengths)
    return b"".join(messages), end - lengths, end


@pytest.mark.parametrize("chunk", [_sha1.CHUNK, 7])
def test_every_length_from_0_to_300_matches_hashlib(chunk: int) -> None:
    # Every padding case: one block up to 55 bytes, two from 56 (the length no longer fits
    # after the 0x80 byte), 64 (the 0x80 byte opens the second block), 119/120, 128, ... 300
    # (5 blocks); several messages of each length, of random bytes (0x00 and 0x80 included).
    rng = np.random.default_rng(0)
    messages = [rng.bytes(n) for n in range(301) for _ in range(4)]
    messages += [bytes(n) for n in (0, 55, 56, 63, 64, 119, 120)] + [b"\xff" * n for n in (55, 56, 64)]
    rng.shuffle(messages)  # lengths mixed, so that chunks hold messages of several block counts
    buf, start, end = _layout(messages)
    got = _sha1.sha1_hash32(buf, start, end, chunk=chunk)
    assert got.dtype == np.uint32
    assert got.tolist() == [_hashlib32(m) for m in messages]


def test_overlapping_slices_at_the_ends_of_the_buffer() -> None:
    buf = np.random.default_rng(1).bytes(200)
    start = np.array([0, 0, 190, 200, 5, 100, 136], dtype=np.int64)
    end = np.array([200, 0, 200, 200, 61, 164, 200], dtype=np.int64)
    got = _sha1.sha1_hash32(buf, start, end)
    assert got.tolist() == [_hashlib32(buf[s:e]) for s, e in zip(start.tolist(), end.tolist())]
    assert len(_sha1.sha1_hash32(buf, start[:0], end[:0])) == 0
    with pytest.raises(ValueError, match="inside the buffer"):
        _sha1.sha1_hash32(buf, np.array([150]), np.array([201]))


def test_real_shingles_match_hashlib() -> None:
    # The reference's 5-gram shingles of source text (pieces joined by one space, empty ones
    # included), as near-dedup lays them out, against hashlib on the same bytes.
    texts = [
        "def f(a, b):\n    return a  +  b  # ünïcode\n\n\n",
        'public static void main(String[] args) { System.out.println("hi"); }\n' * 3,
        "x" * 70 + " = " + "y" * 130 + ";\n",  # shingles of several blocks
        "\t\t\t;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;",
    ]
    layout = PieceLayout(texts, "split")
    _, _, start, end = layout.shingles(5, np.arange(len(texts)))
    assert ((end - start) > 64).any()
    got = sha1_hash32_many(layout.text, start, end)
    assert got.tolist() == [_hashlib32(layout.text[s:e]) for s, e in zip(start.tolist(), end.tolist())]


def test_legacy_permutations_rare_cases_match_datasketch() -> None:
    # minhash_many_legacy takes a set's minimum of (a h + b + 1) mod 2**64 folded once (2**61 = 1
    # mod p) and falls back to the plain formula where that minimum is below 8: the fold's sum
    # reaching p, and a value of 2**32 - 1. Permutations chosen to land there (random ones almost
    # never do), against datasketch with those permutations.
    from datasketch import MinHash

    p = int(_MERSENNE)
    a = np.array([1, 1, 1, 1, 3, 2**60 + 7, 1], dtype=np.uint64)
    b = np.array([p - 3, p - 1, 0, 2**32 - 1, p - 5, 12345, 2**32 - 2], dtype=np.uint64)
    sets = [
        np.arange(0, 12, dtype=np.uint32),  # a h + b around p: the sum reaches p
        np.array([2**32 - 1, 2**32 - 2, 5], dtype=np.uint32),
        np.array([2**32 - 1], dtype=np.uint32),  # every value 2**32 - 1 with b = 0
        np.array([0, 1, 2**31], dtype=np.uint32),
        np.random.default_rng(2).integers(0, 2**32, 5000, dtype=np.uint64).astype(np.uint32),
    ]
    bounds = np.concatenate(([0], np.cumsum([len(s) for s in sets])))
    sigs = minhash_many_legacy(np.concatenate(sets), bounds, (a, b))
    for sig, values in zip(sigs, sets):
        m = MinHash(num_perm=len(a), seed=1, hashfunc=lambda v: v, scheme="legacy")
        m.permutations = (a.copy(), b.copy())
        m.update_batch(values.tolist())
        assert sig.tolist() == m.hashvalues.tolist()


def _datasketch_legacy(values: np.ndarray, a: int, b: int) -> int:
    # datasketch < 2.0 (scheme="legacy"): np.bitwise_and((a * hv + b) % _mersenne_prime, _max_hash)
    # with uint64 arithmetic, which wraps mod 2**64; the set's minimum.
    hv = values.astype(np.uint64)
    return int((((np.uint64(a) * hv + np.uint64(b)) % _MERSENNE) & np.uint64(0xFFFFFFFF)).min())


def _preimage(a: int, b: int, target: int, top: int) -> int:
    """An h < 2**32 whose (a h + b + 8) mod 2**32 is ``target`` (which must be b + 8 modulo 2**k,
    2**k the largest power of two dividing a's low 32 bits), with ``top`` in its k top bits."""
    a32, c = a & 0xFFFFFFFF, (b + 8) & 0xFFFFFFFF
    k = (a32 & -a32).bit_length() - 1
    assert (target - c) % (1 << k) == 0
    low = (((target - c) % 2**32) >> k) * pow(a32 >> k, -1, 2**32) % (1 << (32 - k))
    return low | ((top % (1 << k)) << (32 - k)) if k else low


def _legacy_case(a: np.ndarray, b: np.ndarray, sets: list[np.ndarray]) -> None:
    bounds = np.concatenate(([0], np.cumsum([len(s) for s in sets])))
    values = np.concatenate(sets)
    want = np.array([[_datasketch_legacy(s, int(ai), int(bi)) for ai, bi in zip(a.tolist(), b.tolist())] for s in sets])
    assert np.array_equal(minhash_many_legacy(values, bounds, (a, b)), want)
    # The filter may be given the distinct values instead, and is cleared between calls.
    assert np.array_equal(minhash_many_legacy(values, bounds, (a, b), distinct=np.unique(values)), want)


def test_legacy_minhash_near_ties_preimages_and_rare_cases_match_datasketchs_formula() -> None:
    # minhash_many_legacy finds each set's minimum of (a_lo h + b_lo + 8) mod 2**32 and recovers
    # its shingle from it; another value within 7 of that minimum, another preimage of it (a_lo
    # even), or a minimum below 8 (the rare cases) must send it to the exact formula. Sets built
    # to land there for one permutation each, among random values, against the formula itself.
    # (The filter of near ties is over the whole batch: each set's crafted values are kept apart
    # from the others' windows, so that each case is caught by its own check.)
    rng = np.random.default_rng(3)
    a, b = legacy_permutations(256, 42)
    # Multipliers with 0..12 trailing zeros in their low 32 bits (above 4: the plain path), and
    # one whose low 32 bits are all zero.
    extra_a = [int(rng.integers(1, 2**29)) * 2**32 + (int(rng.integers(0, 2**20)) * 2 + 1) * 2**k for k in range(13)]
    extra_a.append(12345 * 2**32)
    a = np.concatenate([a, np.array(extra_a, dtype=np.uint64)])
    b = np.concatenate([b, rng.integers(0, 2**61 - 1, len(extra_a), dtype=np.uint64)])
    rows = list(range(0, 256, 5)) + list(range(256, len(a)))

    def filler() -> np.ndarray:
        return rng.integers(0, 2**32, int(rng.integers(0, 40)), dtype=np.uint64).astype(np.uint32)

    near, rare = [], []
    for row in rows:
        ai, bi = int(a[row]), int(b[row])
        a32 = ai & 0xFFFFFFFF
        k = (a32 & -a32).bit_length() - 1 if a32 else 32
        if k > 12:
            near.append(rng.integers(0, 2**32, 50, dtype=np.uint64).astype(np.uint32))
            continue
        step = 1 << k
        base = ((bi + 8) & 0xFFFFFFFF) % step
        # Near ties: a value d above the minimum (d = 0: another preimage), each set at its own
        # small minimum, 16 steps from the next one's.
        j = 0
        for d in range(0, 8, step):
            for top in range(min(step, 4)):
                if d == 0 and step == 1:
                    continue  # an odd multiplier has one preimage
                target = (100 + 16 * j) * step + base
                j += 1
                h0 = _preimage(ai, bi, target, top)
                h1 = _preimage(ai, bi, target + d, top + 1)
                near.append(np.concatenate([filler(), np.array([h0, h1], dtype=np.uint32)]))
        # The rare cases: a minimum below 8 (a value of 2**32 - 8 or more before the + 8), alone
        # and with another value out of the near-tie window.
        h0 = _preimage(ai, bi, base, 0)
        rare.append(np.concatenate([filler(), np.array([h0], dtype=np.uint32)]))
        if step == 1:
            rare.append(np.concatenate([filler(), np.array([h0, _preimage(ai, bi, base + 7, 0)], dtype=np.uint32)]))
    near.append(np.array([0, 2**32 - 1], dtype=np.uint32))
    near.append(rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32))  # large: the filter's false positives
    _legacy_case(a, b, near)
    _legacy_case(a, b, rare)


def test_distinct_sha1_keeps_each_texts_set_when_keys_share_their_top_bits() -> None:
    # The distinct shingles of a batch are grouped by their keys' top 32 bits; two keys that share
    # those bits and interleave must still give each text its set of SHA-1 values.
    from santa.filters.near_dedup import _distinct_sha1

    words = [b"alpha", b"beta", b"gamma", b"delta", b"eps"]
    text = b" ".join(words) + bytes(8)
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
    span = {w: (int(s), int(s) + len(w)) for w, s in zip(words, starts)}
    # Keys: alpha, beta and delta share their top 32 bits; their shingles interleave.
    top = np.uint64(0xDEADBEEF) << np.uint64(32)
    key_of = {
        b"alpha": top | np.uint64(1),
        b"beta": top | np.uint64(2),
        b"gamma": np.uint64(7),
        b"delta": top | np.uint64(3),
        b"eps": np.uint64(9),
    }
    shingles = [
        (0, b"alpha"),
        (0, b"beta"),
        (0, b"alpha"),
        (0, b"delta"),
        (1, b"beta"),
        (1, b"alpha"),
        (1, b"eps"),
        (1, b"beta"),
        (2, b"gamma"),
        (2, b"alpha"),
        (2, b"gamma"),
    ]
    key = np.array([key_of[w] for _, w in shingles], dtype=np.uint64)
    text_of = np.array([t for t, _ in shingles], dtype=np.int64)
    start = np.array([span[w][0] for _, w in shingles], dtype=np.int64)
    end = np.array([span[w][1] for _, w in shingles], dtype=np.int64)
    values, owner, distinct = _distinct_sha1(text, key, text_of, start, end)
    assert np.all(np.diff(owner) >= 0)
    for t in range(3):
        want = {_hashlib32(w) for u, w in shingles if u == t}
        assert set(values[owner == t].tolist()) == want
    assert set(distinct.tolist()) == {_hashlib32(w) for w in words}
