"""santa's batched numpy SHA-1 (santa/filters/_sha1.py) against hashlib, and the legacy MinHash
permutations' rare cases against datasketch."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from santa.filters import _sha1
from santa.filters.near_dedup import _MERSENNE, PieceLayout, minhash_many_legacy, sha1_hash32_many


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
        "public static void main(String[] args) { System.out.println(\"hi\"); }\n" * 3,
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
