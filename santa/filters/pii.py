"""PII redaction: emails, IP addresses and secret keys (pipeline step ``pii``).

Detection is in :mod:`santa.filters.pii_regex` (emails, IPs) and :mod:`santa.filters.pii_keys`
(keys with detect-secrets); this module resolves overlaps, chooses replacements and implements
the step contract of :mod:`santa.filters.base`. docs/pii.md is the user's page.

Replacement modes:

* ``santacoder`` — the paper's: random but fixed fake values. Each file draws, from ``seed``
  and the file's content, a permutation of small pools (10 ``xxxxx@example.com`` emails, 10
  32-character ``[a-z0-9]`` keys, 10 private IPv4 addresses in 172.16.0.0/12 and 192.168.0.0/16,
  10 IPv6 addresses in fd00::/8 and fc00::/7); the k-th distinct value of a type gets the k-th
  entry of that permutation, so the same value always gets the same replacement within a file,
  distinct values get distinct replacements (up to 10 per type), and the result depends on
  nothing but the seed and the record: any engine, any batch size, the same output.
* ``tags`` — StarCoder's: ``<EMAIL>``, ``<IP_ADDRESS>``, ``<KEY>``.

The redaction record (``Decision.details``) holds type, span, detector and replacement of each
redaction, never the value it replaced.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from santa.errors import SantaError
from santa.filters.base import Decision, Record, RecordStep, StepContext
from santa.filters.pii_keys import SpanSet, detect_keys, gibberish_model, plugins
from santa.filters.pii_regex import detect_emails, detect_ips

__all__ = [
    "PII_TYPES",
    "MODES",
    "RULES",
    "TAGS",
    "Detection",
    "PIIConfigError",
    "PIIRedaction",
    "detect_pii",
    "redact",
    "replacement_pools",
]

PII_TYPES: tuple[str, ...] = ("email", "ip", "key")
MODES: tuple[str, ...] = ("santacoder", "tags")
# "santa": the paper's rules plus the fixes for users' complaints (pii_regex / pii_keys
# docstrings); "bigcode": BigCode's own code as the paper ran it, quirks included (pii_bigcode).
RULES: tuple[str, ...] = ("santa", "bigcode")
TAGS: dict[str, str] = {"email": "<EMAIL>", "ip": "<IP_ADDRESS>", "key": "<KEY>"}
POOL_SIZE = 10

# When two detections overlap, the longer wins; on equal length, the more specific type, then a
# named-format detector over a generic entropy one (the record then says "GitHub Token").
_TYPE_PRIORITY = {"key": 0, "email": 1, "ip": 2}
_GENERIC_DETECTORS = frozenset({"Base64 High Entropy String", "Hex High Entropy String"})


class PIIConfigError(SantaError, ValueError):
    """Bad parameters for the pii step."""


@dataclass(frozen=True)
class Detection:
    """One piece of PII: ``text[start:end]``. Deliberately without the value itself."""

    start: int
    end: int
    # "email", "ip" or "key"
    type: str
    # What found it: "email", "ipv4", "ipv6", or detect-secrets' secret type.
    detector: str


def _check_types(types: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(types))
    bad = [t for t in chosen if t not in PII_TYPES]
    if bad:
        raise PIIConfigError(f"unknown PII type(s) {bad}; valid types: {', '.join(PII_TYPES)}")
    return chosen


def _check_choice(name: str, value: str, valid: Sequence[str]) -> str:
    if value not in valid:
        raise PIIConfigError(f"pii.{name}={value!r} is not one of: {', '.join(valid)}")
    return value


def detect_pii(text: str, *, types: Iterable[str] = PII_TYPES, rules: str = "santa") -> list[Detection]:
    """Every email, IP address and key in ``text`` that the step would redact, sorted by start.

    ``rules="santa"``: without overlaps. ``rules="bigcode"``: the spans BigCode's pipeline
    redacts (:mod:`santa.filters.pii_bigcode`), one per distinct (start, end, type); these may
    overlap, as the reference's did (the step resolves overlaps before replacing)."""
    chosen = _check_types(types)
    if _check_choice("rules", rules, RULES) == "bigcode":
        from santa.filters.pii_bigcode import detect_bigcode

        return [Detection(h.start, h.end, h.type, h.detector) for h in detect_bigcode(text, chosen)]
    found: list[Detection] = []
    if "email" in chosen:
        found += [Detection(h.start, h.end, "email", h.kind) for h in detect_emails(text)]
    if "ip" in chosen:
        found += [Detection(h.start, h.end, "ip", h.kind) for h in detect_ips(text)]
    if "key" in chosen:
        found += [Detection(h.start, h.end, "key", h.kind) for h in detect_keys(text)]
    return _resolve_overlaps(found)


def _resolve_overlaps(found: list[Detection]) -> list[Detection]:
    # Longest first, then type priority, then position: a total order, so the outcome never
    # depends on the order the detectors ran in.
    ranked = sorted(
        found,
        key=lambda d: (
            -(d.end - d.start),
            _TYPE_PRIORITY[d.type],
            d.detector in _GENERIC_DETECTORS,
            d.start,
            d.detector,
        ),
    )
    kept: list[Detection] = []
    taken = SpanSet()
    for d in ranked:
        if not taken.overlaps(d.start, d.end):
            taken.add(d.start, d.end)
            kept.append(d)
    return sorted(kept, key=lambda d: d.start)


# ----------------------------------------------------------------------------------------------
# Replacements


@lru_cache(maxsize=16)
def replacement_pools(seed: int) -> dict[str, tuple[str, ...]]:
    """The fake values of ``santacoder`` mode for ``seed``: keys "email", "key", "ipv4", "ipv6"."""
    rng = random.Random(f"santa-pii-{seed}")
    lower, alnum = string.ascii_lowercase, string.ascii_lowercase + string.digits

    def distinct(make: Any) -> tuple[str, ...]:
        out: dict[str, None] = {}
        while len(out) < POOL_SIZE:
            out[make()] = None
        return tuple(out)

    def ipv4() -> str:
        if rng.random() < 0.5:
            return f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"

    def ipv6() -> str:
        prefix = rng.choice(("fd00", "fc00"))
        groups = [f"{rng.randrange(0x10000):x}" for _ in range(7)]
        return ":".join([prefix, *groups])

    return {
        "email": distinct(lambda: "".join(rng.choice(lower) for _ in range(5)) + "@example.com"),
        "key": distinct(lambda: "".join(rng.choice(alnum) for _ in range(32))),
        "ipv4": distinct(ipv4),
        "ipv6": distinct(ipv6),
    }


def _pool_name(d: Detection) -> str:
    if d.type == "ip":
        return "ipv6" if d.detector == "ipv6" else "ipv4"
    return d.type


def redact(
    text: str,
    detections: Sequence[Detection],
    *,
    mode: str = "santacoder",
    seed: int = 0,
) -> tuple[str, list[dict[str, Any]]]:
    """Replace each detection (non-overlapping, sorted by start) and return the new text and the
    redaction records: ``{"type", "detector", "start", "end", "replacement"}`` with spans into
    the *original* text, and no original value."""
    _check_choice("mode", mode, MODES)
    if not detections:
        return text, []
    orders: dict[str, list[int]] = {}
    pools: dict[str, tuple[str, ...]] = {}  # (both used in "santacoder" mode only)
    if mode == "santacoder":
        # The file's own permutation of each pool, from the seed and the original content.
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16, key=str(seed).encode()[:64])
        file_rng = random.Random(digest.hexdigest())
        pools = replacement_pools(seed)
        orders = {name: file_rng.sample(range(POOL_SIZE), POOL_SIZE) for name in sorted(pools)}
    assigned: dict[tuple[str, str], str] = {}
    counts: dict[str, int] = {}
    parts: list[str] = []
    records: list[dict[str, Any]] = []
    pos = 0
    for d in detections:
        value = text[d.start : d.end]
        if mode == "tags":
            replacement = TAGS[d.type]
        else:
            pool = _pool_name(d)
            key = (pool, value)
            if key not in assigned:
                k = counts.get(pool, 0)
                counts[pool] = k + 1
                assigned[key] = pools[pool][orders[pool][k % POOL_SIZE]]
            replacement = assigned[key]
        parts.append(text[pos : d.start])
        parts.append(replacement)
        pos = d.end
        records.append(
            {"type": d.type, "detector": d.detector, "start": d.start, "end": d.end, "replacement": replacement}
        )
    parts.append(text[pos:])
    return "".join(parts), records


# ----------------------------------------------------------------------------------------------
# The pipeline step


class PIIRedaction(RecordStep):
    """Redact emails, IP addresses and secret keys in ``content`` (never drops a record).

    Parameters (conf/pii/default.yaml):

    * ``mode``: ``santacoder`` (fixed fake values, the paper) or ``tags`` (``<EMAIL>``, ...).
    * ``types``: which of ``email``, ``ip``, ``key`` to redact (default all three).
    * ``seed``: picks the fake values of ``santacoder`` mode; same seed, same output.
    * ``rules``: ``santa`` (the paper's rules with fixes for known false positives and misses)
      or ``bigcode`` (BigCode's code as the paper ran it, quirks included).

    ``Decision.details`` = ``{"redactions": [{"type", "detector", "start", "end",
    "replacement"}, ...], "counts": {"email": n, ...}}``, spans indexing the original content;
    ``content`` and ``details`` are None for a file with nothing to redact.
    ``Decision.stat`` = number of redactions.
    """

    name = "pii"

    def __init__(
        self,
        mode: str = "santacoder",
        types: Sequence[str] = PII_TYPES,
        seed: int = 0,
        rules: str = "santa",
    ) -> None:
        self.mode = _check_choice("mode", mode, MODES)
        self.types = _check_types(types)
        if not self.types:
            raise PIIConfigError("pii.types is empty; list at least one of: " + ", ".join(PII_TYPES))
        self.seed = int(seed)
        self.rules = _check_choice("rules", rules, RULES)

    def setup(self, context: StepContext) -> None:
        if "key" in self.types:
            # Load the gibberish model and detect-secrets once per worker, not on the first
            # record that happens to hold a key.
            plugins()
            if self.rules == "bigcode":
                from santa.filters.pii_bigcode import gibberish_detector

                gibberish_detector()
            else:
                gibberish_model()

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "types": list(self.types), "seed": self.seed, "rules": self.rules}
        if "key" in self.types:
            if self.rules == "bigcode":
                from santa.filters.pii_bigcode import model_fingerprint

                out["gibberish_model"] = "bigcode-dataset_bebec92/big.model:" + model_fingerprint()
            else:
                # The model is trained from the running Python's manual: a different manual may
                # flip a borderline key, so it belongs to what keys the cache.
                out["gibberish_model"] = gibberish_model().fingerprint
        return out

    def process(self, batch: list[Record]) -> list[Decision]:
        return [self.redact_record(rec) for rec in batch]

    def redact_record(self, record: Record) -> Decision:
        text = record.get("content")
        detections = detect_pii(text, types=self.types, rules=self.rules) if isinstance(text, str) else []
        if self.rules == "bigcode":
            # BigCode's spans may overlap (its redaction then pasted both replacements): one
            # replacement per region here, by the same total order as santa's rules.
            detections = _resolve_overlaps(detections)
        if not detections or not isinstance(text, str):  # (content that is no str has none)
            # No details for a clean file: the engine stores one annotation row per details dict.
            return Decision(keep=True, stat=0.0)
        new_text, records = redact(text, detections, mode=self.mode, seed=self.seed)
        counts: dict[str, int] = {}
        for r in records:
            counts[r["type"]] = counts.get(r["type"], 0) + 1
        return Decision(
            keep=True,
            stat=float(len(records)),
            content=new_text,
            details={"redactions": records, "counts": counts},
        )
