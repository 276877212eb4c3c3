"""SHA-1 (FIPS 180-4) of many short byte strings at once, in numpy.

hashlib hashes one message per call: for the ~20-byte shingles of near-dedup the Python call, the
slice and the digest object cost ~0.7 us per message, far more than the hash. Here the messages of
a batch are laid out as the columns of (words x messages) uint32 arrays and every step of the
compression function is one numpy operation over all of them (~1,500 operations per 64-byte
block, each over 16,384 messages), which costs a fraction of that per message (~0.3 us).

Only what near-dedup needs is returned: datasketch's ``sha1_hash32``, the first 4 bytes of the
digest read as a little-endian uint32 (the first word of the final state, byte-swapped).
tests/test_sha1.py checks it against hashlib on every length from 0 to 300 bytes.
"""

from __future__ import annotations

import numpy as np

_U32 = np.uint32
_H0 = np.array([0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0], dtype=_U32)
# Round constants and shift counts as 0-d arrays: numpy takes them ~20 % faster than scalars.
_K = [np.array(k, dtype=_U32) for k in (0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6)]
_SHIFT = {r: np.array(r, dtype=_U32) for r in (1, 2, 5, 27, 30, 31)}
# Messages per numpy operation: large enough that the ~0.5 us a call costs is small beside the
# work, small enough that the state, the 16-word schedule and the scratch rows (23 rows of 64 KB)
# stay near a core's L2 cache. Measured fastest here (8,192: ~4 % slower).
CHUNK = 16384


def _tables() -> tuple[np.ndarray, np.ndarray]:
    # Row r + 1 (r = the message bytes from a block's start, clipped to -1..64), as one 64-byte
    # record: the mask that keeps the message's bytes of the block, and the padding's 0x80 byte
    # right after the last of them (r = 64: none, it falls in the next block; r = -1: none, it
    # fell in the previous one).
    keep = np.zeros((66, 64), dtype=np.uint8)
    pad = np.zeros((66, 64), dtype=np.uint8)
    for r in range(65):
        keep[r + 1, :r] = 0xFF
        if r < 64:
            pad[r + 1, r] = 0x80
    return keep.view("V64").ravel(), pad.view("V64").ravel()


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
    # A block is read as the 64 bytes from any offset, up to 72 bytes past a message's end (a
    # last block may hold only the 0x80 byte and the length): the buffer gets that many zero
    # bytes, and a view of 64-byte records at every offset, which numpy gathers with one copy each.
    padded = bytes(buf) + bytes(72)
    blocks = np.ndarray((len(padded) - 63,), dtype="V64", buffer=padded, strides=(1,))
    n_blocks = (length + 8) // 64 + 1  # the message, the 0x80 byte, the 8-byte bit length
    # The messages of one block (up to 55 bytes: nearly all shingles) in their own order, so that
    # their slices are read in order; then the others, shortest first, so that those of several
    # blocks come together at the end. (Lengths clipped to 16 bits sort by radix; the clip
    # changes no block count that matters.)
    single = np.flatnonzero(n_blocks == 1)
    several = np.flatnonzero(n_blocks > 1)
    several = several[np.argsort(np.minimum(length[several], 32767).astype(np.int16), kind="stable")]
    order = np.concatenate([single, several])
    start, length, n_blocks = start[order], length[order], n_blocks[order]
    for i in range(0, n, chunk):
        j = min(i + chunk, n)
        s, ln, nb = start[i:j], length[i:j], n_blocks[i:j]
        state = np.repeat(_H0[:, None], j - i, axis=1)
        _compress(state, _block(blocks, s, ln, nb, 0))
        for b in range(1, int(nb.max())):
            more = np.flatnonzero(nb > b)
            sub = state[:, more]
            _compress(sub, _block(blocks, s[more], ln[more], nb[more], b))
            state[:, more] = sub
        out[order[i:j]] = state[0]
    return out.byteswap()  # the digest's first 4 bytes are the word big-endian; datasketch reads them little-endian


def _block(blocks: np.ndarray, start: np.ndarray, length: np.ndarray, n_blocks: np.ndarray, b: int) -> np.ndarray:
    """Block ``b`` of each message's padded form, as a (16 x messages) array of its words."""
    m = len(start)
    rows = blocks[start + 64 * b].view(_U32).reshape(m, 16)  # the bytes, as native words
    r = np.clip(length - 64 * b, -1, 64) + 1
    rows &= _KEEP[r].view(_U32).reshape(m, 16)
    rows |= _PAD[r].view(_U32).reshape(m, 16)
    w = np.empty((16, m), dtype=_U32)
    np.copyto(w, rows.view(">u4").T)  # SHA-1's words are big-endian: numpy swaps while it transposes
    last = np.flatnonzero(n_blocks == b + 1)  # the bit length ends the last block (no message byte there)
    bits = length[last] * 8
    w[14, last] |= (bits >> 32).astype(_U32)
    w[15, last] |= (bits & 0xFFFFFFFF).astype(_U32)
    return w


def _compress(state: np.ndarray, w: np.ndarray) -> None:
    """One SHA-1 compression of ``state`` (5 x messages, updated in place) with the block whose
    16 words are ``w`` (16 x messages; overwritten: the message schedule is kept in it as a ring,
    W[t] in row t mod 16, so that the working set stays in the L2 cache)."""
    m = w.shape[1]
    scratch = np.empty((2, m), dtype=_U32)
    f, tmp = scratch[0], scratch[1]
    a, b, c, d, e = (state[k].copy() for k in range(5))
    # Positional out arguments and local names: each call's overhead counts at this size.
    xor, band, bor, add, shl, shr = np.bitwise_xor, np.bitwise_and, np.bitwise_or, np.add, np.left_shift, np.right_shift
    s1, s2, s5, s27, s30, s31 = (_SHIFT[r] for r in (1, 2, 5, 27, 30, 31))
    for t in range(80):
        wt = w[t & 15]
        if t >= 16:  # W[t] = rotl1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]), over W[t-16]
            xor(wt, w[(t - 3) & 15], wt)
            xor(wt, w[(t - 8) & 15], wt)
            xor(wt, w[(t - 14) & 15], wt)
            shl(wt, s1, tmp)
            shr(wt, s31, wt)
            bor(wt, tmp, wt)
        if t < 20:  # Ch(b, c, d) = d ^ (b & (c ^ d))
            xor(c, d, f)
            band(f, b, f)
            xor(f, d, f)
        elif 40 <= t < 60:  # Maj(b, c, d) = (b & c) | (d & (b | c))
            bor(b, c, f)
            band(f, d, f)
            band(b, c, tmp)
            bor(f, tmp, f)
        else:  # Parity
            xor(b, c, f)
            xor(f, d, f)
        add(f, e, f)
        add(f, wt, f)
        add(f, _K[t // 20], f)
        shl(a, s5, tmp)  # rotl5(a), added in two halves (their bits do not overlap)
        add(f, tmp, f)
        shr(a, s27, tmp)
        add(f, tmp, f)
        shl(b, s30, tmp)  # c <- rotl30(b), in b's array
        shr(b, s2, b)
        bor(b, tmp, b)
        # e's array is free now: it becomes the next round's scratch for f.
        a, b, c, d, e, f = f, a, b, c, d, e
    state[0] += a
    state[1] += b
    state[2] += c
    state[3] += d
    state[4] += e
