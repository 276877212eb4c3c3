"""Email and IP address detection by regular expressions (the PII step's regex half).

The rules follow BigCode's (../shared/FACTS.md, "PII redaction"): boundary look-arounds so a match
never starts or ends inside a longer token, then candidate filters for IP addresses (no digit,
date-like, version-like unless "dns"/"server" is near, must parse with :mod:`ipaddress`, never a
private address or a well-known public DNS resolver). The regexes are santa's own, written for
Python's :mod:`re` (no third-party ``regex`` module).

On top of that, santa's rules address users' recurring complaints: ``pkg@1.2.3`` / ``user@127.0.0.1`` are not emails (the top-level domain must be
letters), nor are URL path segments (``/npm/pkg@next.js``), SSH remotes (``git@host:org/repo``),
matrix products on attributes (``x@self.weight``) and method calls (``a@b.dot(c)``); CIDR ranges
(``52.94.0.0/16``) are networks, not hosts, and stay; a dotted quad after a version word on its
line (``"build": "4.17.2.9"``) is a version. (``rules="bigcode"``, BigCode's own regexes and
filters with their quirks, is :mod:`santa.filters.pii_bigcode`.)

Every function returns spans into the text; no function returns or logs the matched value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["PUBLIC_DNS_RESOLVERS", "RegexHit", "detect_emails", "detect_ips", "iter_lines"]

# Never redacted: they are infrastructure everybody hard-codes, not anybody's address.
PUBLIC_DNS_RESOLVERS: frozenset[str] = frozenset(
    {
        "8.8.8.8",
        "8.8.4.4",  # Google
        "1.1.1.1",
        "1.0.0.1",  # Cloudflare
        "9.9.9.9",
        "149.112.112.112",  # Quad9
        "208.67.222.222",
        "208.67.220.220",  # OpenDNS
        "76.76.19.19",
        "76.223.122.150",  # Alternate DNS
        "8.26.56.26",
        "8.20.247.20",  # Comodo
        "94.140.14.14",
        "94.140.15.15",  # AdGuard
    }
)


@dataclass(frozen=True)
class RegexHit:
    start: int
    end: int
    # "email", "ipv4" or "ipv6"
    kind: str


# ----------------------------------------------------------------------------------------------
# Emails

# Local part: RFC 5322's "atext" minus the characters that in code are far more often syntax
# than address ('"(),:;<>[\]` and friends). The top-level domain must be letters: that is what
# keeps `pkg@1.2.3`, `user@127.0.0.1` and `lib@2.x` out.
_EMAIL = re.compile(
    r"(?<![\w.%+\-@])"
    r"([A-Za-z0-9_%+\-](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
    r"@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24})"
    # Not followed by more domain ("a@b.co.uk" must not stop at "b.co") or another "@".
    r"(?![\w\-@]|\.[A-Za-z0-9])"
)
# What follows the "@" of every match of _EMAIL (a superset: no bound on the label's length).
_EMAIL_HINT = re.compile(r"@[A-Za-z0-9][A-Za-z0-9\-]*\.")
# Receivers that make `x@self.weight` a matrix product, not an address.
_CODE_RECEIVERS = frozenset({"self", "this", "cls", "super"})


def detect_emails(text: str) -> list[RegexHit]:
    """Email addresses in ``text`` as spans."""
    if "@" not in text:
        return []
    hits: list[RegexHit] = []
    # Only lines where an "@" is followed by a domain label and a dot are searched: a regex that
    # must first find a local part would otherwise try every identifier of the file, and most
    # "@"s in code are decorators and annotations (`@Override`, `@property`).
    for line_start, line_end in iter_lines(text, _EMAIL_HINT):
        line = text[line_start:line_end]
        for m in _EMAIL.finditer(line):
            start, end = m.span(1)
            if _not_an_email(line, start, end):
                continue
            hits.append(RegexHit(line_start + start, line_start + end, "email"))
    return hits


def _not_an_email(line: str, start: int, end: int) -> bool:
    before = line[start - 1] if start else ""
    after = line[end : end + 2]
    # A URL path segment (`/npm/pkg@next.min.js`) or URL userinfo (`ftp://user@host.org`).
    if before == "/":
        return True
    # SSH/scp remote syntax: `git@github.com:org/repo.git`.
    if len(after) == 2 and after[0] == ":" and after[1] not in " \t\"'":
        return True
    # A method call on the "domain": `a@b.dot(c)`.
    if after[:1] == "(":
        return True
    domain = line[line.index("@", start) + 1 : end]
    return domain.split(".", 1)[0] in _CODE_RECEIVERS


def iter_lines(text: str, what: re.Pattern[str] | str, src: str | None = None) -> Iterator[tuple[int, int]]:
    """(start, end) of each line of ``text`` (split on "\\n", end excluding it) where ``what`` — a
    regex or a plain substring — occurs in ``src`` (``text`` or a same-length transform of it,
    such as its lower case). One search per matching line, so a line is reported once."""
    src = text if src is None else src
    if isinstance(what, str):
        pos = src.find(what)
    else:
        m = what.search(src)
        pos = m.start() if m else -1
    while pos != -1:
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        if end == -1:
            end = len(text)
        yield start, end
        if isinstance(what, str):
            pos = src.find(what, end + 1)
        else:
            m = what.search(src, end + 1)
            pos = m.start() if m else -1


# ----------------------------------------------------------------------------------------------
# IP addresses

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Not inside a longer dotted number or a word (`v1.2.3.4`, `1.2.3.4.5`).
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
# A broad IPv6 shape: hex groups and colons (an embedded IPv4 tail allowed); ipaddress then
# decides what is an address. Cheaper and more exact than the usual ten-branch regex.
_IPV6 = re.compile(
    r"(?<![\w:.])"
    r"(?:[0-9A-Fa-f]{1,4}|:)?(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"(?:\.\d{1,3}\.\d{1,3}\.\d{1,3})?"
    r"(?![\w:])"
)
# What a line must contain before the IPv4 / IPv6 regex runs on it. Both are led by a literal,
# which Python's `re` finds at hundreds of MB/s; the full regexes start with a lookbehind and a
# character class, which it tries at every position (5-10 MB/s), so they see those lines only.
_IPV4_HINT = re.compile(r"\.\d{1,3}\.\d{1,3}\.\d")
# Compressed addresses hold "::", full ones seven colons, so ":h:h:" somewhere.
_IPV6_HINT = re.compile(r"::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")
_CIDR = re.compile(r"/(\d{1,3})(?![\w/]|\.\d)")
# Dates that look like dotted quads: dd.mm.yy.x or mm.dd.yy.x (two-digit day and month).
_DATE_LIKE = re.compile(r"(\d\d)\.(\d\d)\.\d\d(?:\.|$)")
# A version word earlier on the same line (`version = "4.12.0.15"`, `__version__ = `,
# `{"min_version": "1.2.3.4", "build": "4.17.2.9"}`).
_VERSION_WORD = re.compile(r"version|\bver\b|\bbuild|\brelease", re.IGNORECASE)
_DNS_OR_SERVER = re.compile(r"dns|server", re.IGNORECASE)


def detect_ips(text: str) -> list[RegexHit]:
    """Public IPv4 and IPv6 addresses in ``text`` as spans, after the exclusions."""
    hits: list[RegexHit] = []
    for version, hint, pattern in ((4, _IPV4_HINT, _IPV4), (6, _IPV6_HINT, _IPV6)):
        for line_start, line_end in iter_lines(text, hint):
            for m in pattern.finditer(text, line_start, line_end):
                start, end = m.start(), m.end()
                span = _keep_ip(text, start, end, version)
                if span:
                    hits.append(RegexHit(span[0], span[1], f"ipv{version}"))
    return sorted(hits, key=lambda h: h.start)


def _keep_ip(text: str, start: int, end: int, version: int) -> tuple[int, int] | None:
    """The span to redact, or None when the candidate is excluded."""
    value = text[start:end]
    if not any(c.isdigit() for c in value):
        return None
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    if addr.version != version:
        return None
    if version == 4:
        if _looks_like_date(value):
            return None
        context = text[max(0, start - 100) : end + 100]
        looks_like_version = len(value) == 7  # four single-digit parts: 1.2.3.4
        if not looks_like_version:
            line_before = text[text.rfind("\n", 0, start) + 1 : start]
            looks_like_version = bool(_VERSION_WORD.search(line_before[-80:]))
        if looks_like_version and not _DNS_OR_SERVER.search(context):
            return None
    cidr = _CIDR.match(text, end)
    if cidr:
        # A range names a network, not a host; only a host route (/32, /128) is an address.
        if int(cidr.group(1)) < (32 if version == 4 else 128):
            return None
    if _never_redacted(addr, value):
        return None
    return start, end


def _looks_like_date(value: str) -> bool:
    m = _DATE_LIKE.match(value)
    if not m:
        return False
    a, b = int(m.group(1)), int(m.group(2))
    # dd.mm or mm.dd with a real day and month.
    return (1 <= a <= 31 and 1 <= b <= 12) or (1 <= a <= 12 and 1 <= b <= 31)


def _never_redacted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, value: str) -> bool:
    if value in PUBLIC_DNS_RESOLVERS:
        return True
    # Private (RFC 1918, unique-local), loopback, link-local, documentation, shared (CGNAT) and
    # reserved space are not anybody's address; multicast groups are protocol constants.
    # `x[1::2]` parses as IPv6 "1::2": reserved space, so Python slices are safe too.
    return (not addr.is_global) or addr.is_multicast or addr.is_reserved
