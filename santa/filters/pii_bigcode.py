"""BigCode's PII detection exactly as the paper's pipeline ran it (``rules="bigcode"``).

The reference is ``bigcode-project/bigcode-dataset`` at commit bebec92, ``pii/``: emails and IP
addresses by two regular expressions of the third-party ``regex`` module with candidate filters
(``utils/emails_ip_addresses_detection.py``), keys by detect-secrets on a temporary ``.txt`` file
followed by a gibberish and two hash filters (``utils/keys_detection.py``), the two concatenated
per file (``pii_detection.py``), and at redaction time private addresses and 14 public DNS
resolvers left alone (``pii_redaction.py``). This module re-implements that behaviour, quirks
included, because its output is the paper's data; santa's own rules (the default) live in
:mod:`santa.filters.pii_regex` and :mod:`santa.filters.pii_keys`, and docs/pii.md lists each
place where they deliberately differ. What is reproduced:

* Emails: a left delimiter looked *behind* (line start, an opening bracket, whitespace, ``@``,
  punctuation, a Han character, an escaped quote), a local part that may hold ``=``, ``.`` and
  ``-`` (not before ``.``/``@``) — so ``NAME=jane@x.org`` is one address — and a TLD of 2-63
  letters or marks (or ``xn--``), followed by a right delimiter looked *ahead*.
* IP addresses: IPv4 or one of the IPv6 alternatives, in the reference's order (so IPv6 comes out
  "as the regex finds it"), between delimiters that the match *consumes*: two addresses separated
  by one comma share that comma and the second is not found; a ``)`` or ``/`` after an address is
  not a right delimiter. Then: a digit required; the reference's five date regexes (of which only
  ``[0-3]d.[0-3]d.dd.`` can fire on a dotted quad); a seven-character dotted quad (``1.2.3.4``) is a
  version unless "dns"/"server" occurs in ``content[start-100:end+100]`` — Python slicing, so for
  an address in the first 100 characters the window starts 100 characters *before the end of the
  file* and is usually empty; it must parse with :mod:`ipaddress`; finally (at redaction) an
  ``is_private`` address or one of the 14 resolvers is kept.
* Keys: detect-secrets' own ``scan_file`` flow with BigCode's 18 plugins and its filter setting
  (the 4 heuristic filters plus detect-secrets' 2 file-level defaults, nothing else). The file is
  read with universal newlines. Detect-secrets first tries the whole file as an ini file (only a
  file that opens with a ``[section]`` parses) and scans its ``key = "value"`` lines instead of the
  file's; otherwise the raw lines. If that yields nothing, it re-reads the file as an ini file
  with a ``[global]`` header prepended (``.env`` and properties files parse; most code does not)
  and scans those lines, where an unquoted value is now quoted for the entropy plugins. Each
  distinct (type, value) then has to pass, on the *value* as detect-secrets reports it: the
  gibberish test with BigCode's own model (``gibberish-detector``, ``big.model`` shipped in
  santa/assets, limit 4.0, on the lower-cased value); the hash-line test, on the text *before*
  the value's first occurrence on its line (the previous line when the value opens its line),
  for values of 32, 40 or 64 characters; the hash-file test ("sha" or "hash" occurring more than
  ``int(0.02 * newlines)`` times). A kept value is reported at every occurrence in the file,
  left to right, non-overlapping, inside longer tokens too. Plugin quirks stay: the GitHub
  plugin reports just ``ghp`` (too short for the gibberish model, so never kept), the JWT plugin
  stops before the signature.

Three cases where the reference cannot run are defined here instead (docs/pii.md): a kept key at
offset 0 (the reference's hash-line test raises IndexError: santa reads the text before it as
empty); content that is not encodable as UTF-8 (lone surrogates: the reference cannot write its
temporary file; santa scans the text as it is); the order of findings (a Python set iterated in
hash order there; sorted here).
"""

from __future__ import annotations

import io
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from santa.assets import ASSETS, sha256_file

__all__ = [
    "BIGCODE_DNS_SERVERS",
    "GIBBERISH_LIMIT",
    "GIBBERISH_MODEL",
    "BigCodeHit",
    "detect_bigcode",
    "detect_email_ip_candidates",
    "detect_key_candidates",
    "gibberish_detector",
    "model_fingerprint",
    "raw_secrets",
]

GIBBERISH_MODEL = ASSETS / "bigcode-dataset_bebec92" / "pii" / "gibberish_data" / "big.model"
# gibberish-detector's default limit, which BigCode kept.
GIBBERISH_LIMIT = 4.0

# pii_redaction.py skips these (and every `is_private` address) when it replaces IPs.
BIGCODE_DNS_SERVERS: frozenset[str] = frozenset(
    {
        "8.8.8.8",
        "8.8.4.4",
        "1.1.1.1",
        "1.0.0.1",
        "76.76.19.19",
        "76.223.122.150",
        "9.9.9.9",
        "149.112.112.112",
        "208.67.222.222",
        "208.67.220.220",
        "8.26.56.26",
        "8.20.247.20",
        "94.140.14.14",
        "94.140.15.15",
    }
)

# The reference's detect-secrets configuration (its 18 plugins, its 4 heuristic filters, plus
# detect-secrets' 2 file-level defaults) is the paper's, which santa.filters.pii_keys holds once
# (PLUGIN_NAMES, FILTER_NAMES) and _scan below runs through its scan_lines.


@dataclass(frozen=True)
class BigCodeHit:
    start: int
    end: int
    # "email", "ip" or "key"
    type: str
    # "email", "ipv4", "ipv6", or detect-secrets' secret type
    detector: str


# ----------------------------------------------------------------------------------------------
# Emails and IP addresses: the regexes, written out piece by piece (the `regex` module: \p{...}
# classes and a variable-length lookbehind). `\x08` is what `\b` means inside a character class.

_HAN = r"\p{Han}"
# Around an IP address (consumed) and around a date (the date regexes use the same sets).
_IP_LEFT = rf"""(?:^|[\x08\s@?,!;:'")(.{_HAN}])"""
_IP_RIGHT = rf"""(?:$|[\s@,?!;:'"(.{_HAN}])"""

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9a-fA-F]{1,4}"
_OCTET_V6 = r"(?:25[0-5]|(?:2[0-4]|1?[0-9])?[0-9])"
_V4_TAIL = rf"(?:{_OCTET_V6}\.){{3}}{_OCTET_V6}"
# Order matters: the first alternative that lets the whole pattern match wins.
_IPV6_ALTERNATIVES = (
    rf"(?:{_H}:){{7}}{_H}",
    rf"(?:{_H}:){{1,7}}:",
    rf"(?:{_H}:){{1,6}}:{_H}",
    rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
    rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
    rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
    rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
    rf"{_H}:(?::{_H}){{1,6}}",
    rf":(?:(?::{_H}){{1,7}}|:)",
    r"fe80:(?::[0-9a-fA-F]{0,4}){0,4}%[0-9a-zA-Z]+",
    rf"::(?:ffff(?::0{{1,4}})?:)?{_V4_TAIL}",
    rf"(?:{_H}:){{1,4}}:{_V4_TAIL}",
)
_IP = _IP_LEFT + "(" + "|".join((_IPV4, *_IPV6_ALTERNATIVES)) + ")" + _IP_RIGHT

_DATE_BODIES = (
    r"[1-2][0-9]{3}[\p{Pd}/][1-2][0-9]{3}",  # yyyy-yyyy
    r"[1-2][0-9]{3}[\p{Pd}/.][0-3][0-9][\p{Pd}/.][0-3][0-9]",  # yyyy-mm-dd
    r"[0-3][0-9][\p{Pd}/.][0-3][0-9][\p{Pd}/.](?:[0-9]{2}|[1-2][0-9]{3})",  # dd.mm.yy(yy)
    r"[0-3][0-9][\p{Pd}/](?:[0-9]{2}|[1-2][0-9]{3})",  # mm/yy(yy)
    r"[1-2][0-9]{3}-[0-3][0-9]",  # yyyy-mm
)

_EMAIL_LEFT = r"""(?<=^|[\[({<\x08\s@,?!;'"\p{Han}¿¡:.]|\\['"])"""
# Any character but brackets, space, punctuation and `=.-`; those three only when neither a dot
# nor the "@" follows.
_EMAIL_LOCAL = r"""(?:[^\]\[(){}<>\x08\s@,?!;'":#/\\=.\-]|[=.\-](?![.@]))+"""
_SUBDOMAIN = r"""(?:(?:\w|[^.\x08\s@?!;,/()>\-:][^.\x08\s@?!;,/()>]{0,62}[^.\x08\s@?!;,/()>\-:'"])\.)"""
_TLD = r"(?:[\p{L}\p{M}]{2,63}|xn--\w+)"
_EMAIL_RIGHT = r"""(?=$|[\])}>\x08\s@,?!;'"\p{Han}]|\\['"]|:(?!\d)|\.(?!\S))"""
_EMAIL = _EMAIL_LEFT + "(" + _EMAIL_LOCAL + "@" + _SUBDOMAIN + "{1,10}" + _TLD + ")" + _EMAIL_RIGHT

# Neither regex can match across a "\n" (both exclude whitespace from the address and from the
# consumed delimiters' far side), so they run on the lines that can hold a *kept* match only:
# an email needs "@", a domain label and a dot; an address that parses needs ".d.d.d" (IPv4) or
# "::" / ":h:h:" (IPv6). A line without these yields nothing the filters keep, whatever the
# regex consumes on it, so skipping it changes speed, not results.
_EMAIL_LINE_HINT = r"@[^\s@.]{1,64}\."
_IP_LINE_HINT = r"\.\d{1,3}\.\d{1,3}\.\d|::|:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:"


@lru_cache(maxsize=1)
def _regexes() -> dict[str, Any]:
    try:
        import regex  # the reference's engine; imported on first use (santa's rules need only `re`)
    except ImportError as exc:
        from santa.errors import SantaError

        raise SantaError(
            "pii rules=bigcode needs the regex package (BigCode's regexes use it): "
            "pip install regex, or pip install 'santa[data]'"
        ) from exc

    return {
        "email": regex.compile(_EMAIL, flags=regex.MULTILINE),
        "ip": regex.compile(_IP, flags=regex.MULTILINE),
        "dates": [regex.compile(_IP_LEFT + "(" + body + ")" + _IP_RIGHT) for body in _DATE_BODIES],
        "email_hint": regex.compile(_EMAIL_LINE_HINT),
        "ip_hint": regex.compile(_IP_LINE_HINT),
    }


def _hint_lines(text: str, hint: Any) -> Iterable[tuple[int, str]]:
    """(offset, line) of each "\\n"-separated line where ``hint`` occurs."""
    m = hint.search(text)
    while m:
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.start())
        if end == -1:
            end = len(text)
        yield start, text[start:end]
        m = hint.search(text, end + 1) if end < len(text) else None


def _is_date(value: str) -> bool:
    return any(p.match(value) for p in _regexes()["dates"])


def _version_like(value: str, context: str) -> bool:
    # Seven characters with three dots: four single digits. Near "dns"/"server" it is an address.
    if value.count(".") == 3 and len(value) == 7:
        low = context.lower()
        return not ("dns" in low or "server" in low)
    return False


def detect_email_ip_candidates(text: str) -> list[BigCodeHit]:
    """Emails and IP addresses as the reference's detection reports them (before its redaction
    step leaves private addresses and the DNS resolvers alone)."""
    rx = _regexes()
    hits: list[BigCodeHit] = []
    if "@" in text:
        for offset, line in _hint_lines(text, rx["email_hint"]):
            for m in rx["email"].finditer(line):
                s, e = m.span(1)
                hits.append(BigCodeHit(offset + s, offset + e, "email", "email"))
    for offset, line in _hint_lines(text, rx["ip_hint"]):
        for m in rx["ip"].finditer(line):
            s, e = m.span(1)
            value = line[s:e]
            start, end = offset + s, offset + e
            if not any(c.isdigit() for c in value) or _is_date(value):
                continue
            # The reference's window, negative start and all.
            if _version_like(value, text[start - 100 : end + 100]):
                continue
            try:
                addr = ipaddress.ip_address(value)
            except ValueError:
                continue
            hits.append(BigCodeHit(start, end, "ip", f"ipv{addr.version}"))
    return hits


def _redacted_ip(value: str) -> bool:
    return not (ipaddress.ip_address(value).is_private or value in BIGCODE_DNS_SERVERS)


# ----------------------------------------------------------------------------------------------
# Keys


@lru_cache(maxsize=1)
def gibberish_detector() -> Any:
    """BigCode's gibberish detector: ``gibberish-detector`` reading the model shipped in santa."""
    try:
        from gibberish_detector import detector
    except ImportError as exc:
        from santa.errors import SantaError

        raise SantaError(
            "pii rules=bigcode needs the gibberish-detector package (BigCode's key filter): "
            "pip install gibberish-detector, or pip install 'santa[data]'"
        ) from exc
    return detector.create_from_model(str(GIBBERISH_MODEL), limit=GIBBERISH_LIMIT)


@lru_cache(maxsize=1)
def model_fingerprint() -> str:
    """The first 12 hex digits of the model file's SHA-256 (for the step's cache key)."""
    return sha256_file(GIBBERISH_MODEL)[:12]


class _TextFile(io.StringIO):
    """The document as detect-secrets reads BigCode's temporary file: universal newlines, and a
    ``.txt`` name (which decides which ini transformers apply)."""

    name = "document.txt"

    def __init__(self, text: str) -> None:
        super().__init__(text, newline=None)


def _scan(lines: list[str]) -> set[tuple[str, str]]:
    """(secret type, value) pairs the reference's plugins and filters report on ``lines``."""
    from santa.filters.pii_keys import _candidates, _Doc, scan_lines

    if any("\n" in line[:-1] for line in lines):
        # Not file lines (never seen: ini values are single lines); no prefilter then.
        return {(r.kind, r.value) for r in scan_lines(list(lines))}
    # The prefilter of pii_keys (tested to lose nothing against detect-secrets' line runner)
    # picks the lines worth handing to the plugins.
    joined = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    doc = _Doc(joined)
    candidates = _candidates(doc)
    return {(r.kind, r.value) for r in scan_lines({s: doc.line(s) for s in candidates}, candidates)}


# A line configparser can read: indented (a continuation), a comment, a section header (or
# something that starts like one), or an option with "=" or ":". Any other non-blank line is a
# parsing error, which configparser raises after reading the whole file.
_INI_LINE = re.compile(r"\s|[#;\[]|[^\n]*[=:]")


def raw_secrets(text: str) -> set[tuple[str, str]]:
    """What ``SecretsCollection.scan_file`` reports on the text as BigCode's ``.txt`` temporary
    file with BigCode's settings, as (secret type, value) pairs (detect-secrets keys a file's
    findings by type and value, so one pair however often it occurs)."""
    from detect_secrets.transformers import get_transformed_file

    fh = _TextFile(text)
    # First pass: the non-eager transformers (the ini parser, for a file that opens with a
    # section), else the file's own lines.
    lines = get_transformed_file(fh)  # type: ignore[arg-type]
    lines_from_file = not lines
    if not lines:
        fh.seek(0)
        lines = fh.readlines()
    found = _scan(lines)
    if found:
        return found
    # Nothing: detect-secrets tries the eager transformers (the ini parser with a header).
    if lines_from_file and any(line.strip() and not _INI_LINE.match(line) for line in lines):
        # A line configparser cannot read makes it raise at the end of its pass, and the
        # transformer then yields nothing: skip the pass (nearly every code file has one).
        return set()
    fh.seek(0)
    lines = get_transformed_file(fh, use_eager_transformers=True)  # type: ignore[arg-type]
    return _scan(lines) if lines else set()


def _is_hash(text: str, value: str) -> bool:
    pos = text.find(value)
    if pos == -1:
        # A value detect-secrets rewrote (an ini value with escaped quotes): not in the text.
        return False
    if len(value) not in (32, 40, 64):
        return False
    before = text[:pos].splitlines()
    # The reference reads the last of these lines; at offset 0 there is none (it raises there).
    line = before[-1].lower() if before else ""
    return any(w in line for w in ("sha", "md5", "hash", "byte"))


def _file_has_hashes(text: str) -> bool:
    threshold = int(0.02 * text.count("\n"))
    low = text.lower()
    return low.count("sha") > threshold or low.count("hash") > threshold


def _occurrences(text: str, value: str) -> Iterable[tuple[int, int]]:
    pos = text.find(value) if value else -1
    while pos != -1:
        yield pos, pos + len(value)
        pos = text.find(value, pos + len(value))


def detect_key_candidates(text: str) -> list[BigCodeHit]:
    """Keys as the reference's ``detect_keys`` reports them: every occurrence of every kept
    value, once per (type, value) finding (so a value two plugins report comes out twice)."""
    found = raw_secrets(text)
    if not found:
        return []
    detector = gibberish_detector()
    hashes_in_file: bool | None = None
    hits: list[BigCodeHit] = []
    for kind, value in sorted(found):
        if not detector.is_gibberish(value.lower()):
            continue
        if _is_hash(text, value):
            continue
        if hashes_in_file is None:
            hashes_in_file = _file_has_hashes(text)
        if hashes_in_file:
            continue
        hits += [BigCodeHit(s, e, "key", kind) for s, e in _occurrences(text, value)]
    return hits


# ----------------------------------------------------------------------------------------------
# Everything


_GENERIC = ("Base64 High Entropy String", "Hex High Entropy String")


def detect_bigcode(text: str, types: Iterable[str] = ("email", "ip", "key")) -> list[BigCodeHit]:
    """The spans BigCode's pipeline redacts in ``text``: its detections of ``types`` minus the IP
    addresses its redaction step leaves alone, one hit per distinct (start, end, type), sorted.
    Spans may overlap (the reference redacts both; see docs/pii.md)."""
    chosen = set(types)
    hits: list[BigCodeHit] = []
    if chosen & {"email", "ip"}:
        hits += [
            h
            for h in detect_email_ip_candidates(text)
            if h.type in chosen and (h.type != "ip" or _redacted_ip(text[h.start : h.end]))
        ]
    if "key" in chosen:
        hits += detect_key_candidates(text)
    distinct: dict[tuple[int, int, str], BigCodeHit] = {}
    for h in hits:
        key = (h.start, h.end, h.type)
        # One span found by two plugins: name the specific one (the record is informational).
        if key not in distinct or (distinct[key].detector in _GENERIC and h.detector not in _GENERIC):
            distinct[key] = h
    return sorted(distinct.values(), key=lambda h: (h.start, h.end, h.type))
