"""SHA-1 (FIPS 180-4) of many short byte strings at once, in numpy.

hashlib hashes one message per call: for the ~20-byte shingles of near-dedup the Python call, the
slice and the digest object cost ~0.7 us per message, far more than the hash. Here the messages of
a batch are laid out as the columns of (words x messages) uint32 arrays and every step of the
compression function is one numpy operation over all of them (~1,300 operations per 64-byte block,
each over a few thousand messages), which costs a fraction of that per message.

Only what near-dedup needs is returned: datasketch's ``sha1_hash32``, the first 4 bytes of the
digest read as a little-endian uint32 (the first word of the final state, byte-swapped).
tests/test_sha1.py checks it against hashlib on every length from 0 to 300 bytes.
"""

from __future__ import annotations

import numpy as np

_U32 = np.uint32
_H0 = np.array([0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0], dtype=_U32)
_K = np.repeat(np.array([0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6], dtype=_U32), 20)[:, None]
# Messages per numpy operation: large enough that the ~1 us a call costs is small beside the work,
# small enough that the state, the scratch rows and the message schedule stay in the L2 cache.
CHUNK = 4096
def _tables() -> tuple[np.ndarray, np.ndarray]:
    # Row r + 1 (r = the message bytes from a block's start, clipped to -1..64): the mask that
    # keeps the message's bytes of each of the block's 16 words (big-endian: the high bytes
    # first), and the padding's 0x80 byte right after the last of them (r = 64: none, it falls in
    # the next block; r = -1: none, it fell in the previous one).
    keep = np.zeros((66, 64), dtype=np.uint8)
    pad = np.zeros((66, 64), dtype=np.uint8)
    for r in range(65):
        keep[r + 1, :r] = 0xFF
        if r < 64:
            pad[r + 1, r] = 0x80
    return keep.view(">u4").astype(_U32), pad.view(">u4").astype(_U32)


_KEEP, _PAD = _tables()


def sha1_hash32(buf: bytes, start: np.ndarray, end: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """``int.from_bytes(hashlib.sha1(buf[s:e]).digest()[:4], "little")`` for each ``(s, e)`` of
    ``start``/``end`` (datasketch's ``sha1_hash32``), as uint32; ``0 <= s <= e <= len(buf)``."""
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    n = len(start)
    out = np.empty(n, dtype=_U32)
    if n == 0:
        return out
    length = end - start
    if length.min() < 0 or start.min() < 0 or end.max() > len(buf):
        raise ValueError("sha1_hash32: every slice must lie inside the buffer")
    # A block's words are read at any byte offset, up to 72 bytes past a message's end (a last
    # block may hold only the 0x80 byte and the length): the buffer gets that many zero bytes, and a (big-endian) word view at every byte offset.
    # A block's words are read at any byte offset, up to 72 bytes past a message's end (a last
    # block may hold only the 0x80 byte and the length): the buffer gets that many zero bytes, and a view of the 16 (big-endian) words at every offset.
    padded = bytes(buf) + bytes(72)
    blocks = np.lib.stride_tricks.as_strided(
        np.ndarray((len(padded) - 3,), dtype=">u4", buffer=padded, strides=(1,)), shape=(len(padded) - 63, 16), strides=(1, 4)
    )
    n_blocks = (length + 8) // 64 + 1  # the message, the 0x80 byte, the 8-byte bit length
    # Shortest first, so that the few messages of several blocks come together at the end.
    # (Lengths clipped to 16 bits sort by radix; the clip changes no block count that matters.)
    order = np.argsort(np.minimum(length, 32767).astype(np.int16), kind="stable")
    for i in range(0, n, chunk):
        sel = order[i : i + chunk]
        s, ln, nb = start[sel], length[sel], n_blocks[sel]
        state = np.repeat(_H0[:, None], len(sel), axis=1)
        _compress(state, _block(blocks, s, ln, nb, 0))
        for b in range(1, int(nb[-1])):
            more = np.flatnonzero(nb > b)
            sub = state[:, more]
            _compress(sub, _block(blocks, s[more], ln[more], nb[more], b))
            state[:, more] = sub
        out[sel] = state[0]
    return out.byteswap()  # the digest's first 4 bytes are the word big-endian; datasketch reads them little-endian


def _block(blocks: np.ndarray, start: np.ndarray, length: np.ndarray, n_blocks: np.ndarray, b: int) -> np.ndarray:
    """Block ``b`` of each message's padded form, as the first 16 rows of an (80 x messages)
    array (the rest is for the message schedule)."""
    rows = blocks[start + 64 * b]  # (messages x 16), native uint32
    r = np.clip(length - 64 * b, -1, 64) + 1
    rows &= _KEEP[r]
    rows |= _PAD[r]
    w = np.empty((80, len(start)), dtype=_U32)
    w[:16] = rows.T
    last = np.flatnonzero(n_blocks == b + 1)  # the bit length ends the last block (no message byte there)
    bits = length[last] * 8
    w[14, last] |= (bits >> 32).astype(_U32)
    w[15, last] |= (bits & 0xFFFFFFFF).astype(_U32)
    return w


def _rotl(x: np.ndarray, r: int, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    np.left_shift(x, _U32(r), out=tmp)
    np.right_shift(x, _U32(32 - r), out=out)
    np.bitwise_or(out, tmp, out=out)
    return out


def _compress(state: np.ndarray, w: np.ndarray) -> None:
    """One SHA-1 compression of ``state`` (5 x messages, updated in place) with the block whose
    16 words are ``w[:16]`` (``w`` has 80 rows: the schedule is written into it)."""
    m = w.shape[1]
    x = np.empty((6, m), dtype=_U32)
    y = np.empty((6, m), dtype=_U32)
    # The message schedule, several rows per operation: W[t] = rotl1(W[t-3] ^ W[t-8] ^ W[t-14] ^
    # W[t-16]) needs the row 3 back, so 3 rows at a time; from t = 32 the equivalent
    # W[t] = rotl2(W[t-6] ^ W[t-16] ^ W[t-28] ^ W[t-32]) (the same recurrence applied twice)
    # allows 6.
    for t in range(16, 32, 3):
        k = min(3, 32 - t)
        xs, ys = x[:k], y[:k]
        np.bitwise_xor(w[t - 3 : t - 3 + k], w[t - 8 : t - 8 + k], out=xs)
        xs ^= w[t - 14 : t - 14 + k]
        xs ^= w[t - 16 : t - 16 + k]
        _rotl(xs, 1, w[t : t + k], ys)
    for t in range(32, 80, 6):
        np.bitwise_xor(w[t - 6 : t], w[t - 16 : t - 10], out=x)
        x ^= w[t - 28 : t - 22]
        x ^= w[t - 32 : t - 26]
        _rotl(x, 2, w[t : t + 6], y)
    w += _K  # the round constants, added to the schedule once rather than in every round
    a, b, c, d, e = (state[k].copy() for k in range(5))
    f, t1 = x[0], x[1]
    xor, band, bor, add, shl, shr = np.bitwise_xor, np.bitwise_and, np.bitwise_or, np.add, np.left_shift, np.right_shift
    five, twenty_seven, thirty, two = _U32(5), _U32(27), _U32(30), _U32(2)
    for t in range(80):
        if t < 20:  # Ch(b, c, d) = d ^ (b & (c ^ d))
            xor(c, d, out=f)
            band(f, b, out=f)
            xor(f, d, out=f)
        elif 40 <= t < 60:  # Maj(b, c, d) = (b & c) | (d & (b | c))
            bor(b, c, out=f)
            band(f, d, out=f)
            band(b, c, out=t1)
            bor(f, t1, out=f)
        else:  # Parity
            xor(b, c, out=f)
            xor(f, d, out=f)
        add(f, e, out=f)
        add(f, w[t], out=f)
        shl(a, five, out=t1)  # rotl5(a), added in two halves (their bits do not overlap)
        add(f, t1, out=f)
        shr(a, twenty_seven, out=t1)
        add(f, t1, out=f)
        shl(b, thirty, out=t1)  # c <- rotl30(b), in b's array
        shr(b, two, out=b)
        bor(b, t1, out=b)
        # e's array is free now: it becomes the next round's scratch for f.
        a, b, c, d, e, f = f, a, b, c, d, e
    state[0] += a
    state[1] += b
    state[2] += c
    state[3] += d
    state[4] += e
