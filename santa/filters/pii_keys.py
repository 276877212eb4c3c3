"""Secret keys with detect-secrets, scanned in memory (the PII step's key half).

BigCode wrote every document to a temporary file and called ``SecretsCollection.scan_file`` on
it with 18 plugins and 4 heuristic filters (../shared/FACTS.md), then dropped keys that do not
look like gibberish, hash-looking keys and every key of a hash-heavy file. That costs a file
write, a settings reload and a full plugin pass over every line of every document (~0.14 MB/s).

Here the same detect-secrets plugin objects and filter functions run on the text itself, and only
on *candidate lines*: lines meeting a cheap necessary condition for at least one plugin to report
something (e.g. a quoted hex string with 9+ distinct characters, since entropy cannot exceed
log2 of the number of distinct symbols and the hex limit is 3.0 bits; ``AKIA``-style IDs; JWTs
start with ``eyJ``). A line no plugin could match is never handed to the plugins, so the
prefilter changes speed, not results; tests/test_pii.py checks that against detect-secrets' own
line runner.

Differences from BigCode's temporary-file scan, on purpose:

* no ini/yaml *transformers*: detect-secrets re-reads a file that yielded nothing as an ini file
  and quotes its values; code files almost never parse as ini, and the ``santa`` rules' unquoted
  assignment pass (below) covers the case that matters (``API_KEY=...`` without quotes);
* spans: detect-secrets reports values, not positions; a value is located in the line it was
  found on (every occurrence there) and elsewhere in the file where it stands as a whole token;
  delimiters some plugins include in the value (Artifactory's ``"``/``=``) are trimmed, and two
  plugin bugs are undone (GitHub reports just ``ghp``, JWT stops before the signature).

BigCode's extra filters and santa's changes to them (``rules="bigcode"``, BigCode's own flow
with its quirks, is :mod:`santa.filters.pii_bigcode`):

====================================  ==========================  ==============================
filter                                BigCode                     ``santa`` rules
====================================  ==========================  ==============================
gibberish: keep a key only if the     every key                   not for hex-only values (their
character model finds it unlikely                                 6-letter alphabet makes the
                                                                  test meaningless, as
                                                                  detect-secrets itself notes)
                                                                  nor for fixed-format tokens
                                                                  (GitHub, Slack, Stripe, JWT...)
hash line: drop a 32/40/64-char key   substring on the line       also commit, digest, checksum,
on a line saying sha/md5/hash/byte                                revision (git ids, digests)
hash file: drop all keys when         substrings "sha"/"hash"     words only (``sha256``,
"sha"/"hash" is frequent              > int(2 % of lines)         ``file_hash``; not ``shape``,
                                                                  ``share``, ``hashlib``,
                                                                  ``hashCode``), and at least 2
unquoted values                       never seen                  ``api_key = AbC...`` outside
                                                                  quotes is scanned by the
                                                                  entropy plugins
====================================  ==========================  ==============================

The gibberish test is :class:`GibberishModel`: a character-bigram model of English trained, at
first use, on ``pydoc_data.topics`` (the Python reference manual that every CPython standard
library ships, ~0.45 MB, used by ``help()``); no download. It replaces BigCode's
``gibberish-detector`` model trained on an English text corpus (same method: mean negative log
transition probability over the lower-cased letters, gibberish above a threshold).
"""

from __future__ import annotations

import bisect
import hashlib
import math
import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from santa.filters.pii_regex import iter_lines

__all__ = [
    "PLUGIN_NAMES",
    "FILTER_NAMES",
    "GIBBERISH_THRESHOLD",
    "GibberishModel",
    "KeyHit",
    "RawSecret",
    "SpanSet",
    "candidate_lines",
    "detect_keys",
    "gibberish_model",
    "plugins",
    "scan_lines",
]

# The paper's plugin list (detect-secrets class names), in a fixed order.
PLUGIN_NAMES: tuple[str, ...] = (
    "ArtifactoryDetector",
    "AWSKeyDetector",
    "Base64HighEntropyString",
    "HexHighEntropyString",
    "AzureStorageKeyDetector",
    "CloudantDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "IbmCloudIamDetector",
    "IbmCosHmacDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "SendGridDetector",
    "SlackDetector",
    "SoftlayerDetector",
    "StripeDetector",
    "TwilioKeyDetector",
)
# The paper's heuristic filters (functions of detect_secrets.filters.heuristic).
FILTER_NAMES: tuple[str, ...] = (
    "is_potential_uuid",
    "is_likely_id_string",
    "is_templated_secret",
    "is_sequential_string",
)

# Calibrated on this model (docs/pii.md): 99.9 % of random base64/alphanumeric strings of 20-40
# characters score above it, 96 % of the standard library's identifiers of 12+ characters below.
GIBBERISH_THRESHOLD = 3.7
# Fewer letters than this and the bigram average says nothing: such a value counts as gibberish
# (it is mostly digits and symbols, which no word is).
_MIN_LETTERS = 8

# Fixed-format tokens: their shape already says "secret"; a word-like random part (rare but
# possible) must not veto them. The generic entropy and assignment detectors stay tested.
_STRUCTURED_TYPES = frozenset(
    {
        "GitHub Token",
        "Slack Token",
        "Stripe Access Key",
        "SendGrid API Key",
        "JSON Web Token",
        "Azure Storage Account access key",
        "NPM tokens",
        "Discord Bot Token",
    }
)
_GENERIC_TYPES = frozenset({"Base64 High Entropy String", "Hex High Entropy String"})
_AWS_KEY_ID = re.compile(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}")
_HEX = frozenset(string.hexdigits + "-")

_B64 = r"A-Za-z0-9+/\\=_\-"  # Base64HighEntropyString's charset, backslash included (sic)

# Candidate-line triggers: for every plugin, a necessary condition for it to report anything,
# each a regex led by a literal or a plain substring search, because Python's `re` scans for a
# literal at hundreds of MB/s but tries a leading character class or alternation at every
# position (10-20 MB/s). Changing a plugin's configuration (e.g. a lower entropy limit) means
# revisiting the bounds here; tests/test_pii.py compares against the full line scan.
_QUOTED = (  # Hex/Base64HighEntropyString only look inside quotes (AWS's secret regex too)
    # The closing quote is a lookahead: it may open the next string, as the plugins see it.
    re.compile(rf'"([{_B64}]{{9,}})(?=")'),
    re.compile(rf"'([{_B64}]{{9,}})(?=')"),
)
# Shannon entropy is at most log2(distinct symbols): a hex string needs 9 distinct characters to
# exceed 3.0 bits, a base64 string 23 to exceed 4.5 bits. That, not length, rules out the long
# class and constant names quoted all over Java.
_HEX_MIN, _B64_MIN = 9, 23
# Each trigger names the plugins it stands for; a line is handed only to the plugins whose trigger
# fired on it (which also spares long lines the regexes that backtrack on them, like Npm's `.+`).
# Grouped by leading literal: one pass over the text per group.
_LITERAL_TRIGGERS: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = tuple(
    (re.compile(p), frozenset(names))
    for p, names in (
        (
            r"A(?:"
            r"(?:3T[A-Z0-9]|BIA|CCA|KIA|SIA)[0-9A-Z]{16}"  # AWS access key ID
            r"|KC[A-Za-z0-9]{10}|P[\dA-F][A-Za-z0-9]{8}"  # Artifactory
            r"|ccountKey="  # Azure storage
            r"|C[a-z0-9]{32})",  # Twilio
            ("AWSKeyDetector", "ArtifactoryDetector", "AzureStorageKeyDetector", "TwilioKeyDetector"),
        ),
        (r"S(?:G\.|K[a-z0-9]{32})", ("SendGridDetector", "TwilioKeyDetector")),
        (r"gh[pousr]_", ("GitHubTokenDetector",)),
        (r"-us\d", ("MailchimpDetector",)),
    )
)
# Plain substrings: str.find beats a regex when the first character is common ("e", "_", "k").
_PLAIN_LITERALS = (("eyJ", "JwtTokenDetector"), ("_authToken", "NpmDetector"), ("k_live_", "StripeDetector"))
# Discord: the literal-led middle and last parts, then the plugin's own regex on that line.
_DISCORD_HINT = re.compile(r"\.[A-Za-z\d_\-]{6}\.[A-Za-z\d_\-]{27}")
_DISCORD = re.compile(r"[MNO][A-Za-z\d_\-]{23,25}\.[A-Za-z\d_\-]{6}\.[A-Za-z\d_\-]{27}")
# Searched in the lower-cased text: Slack (IGNORECASE regexes), the URL forms of Cloudant and
# Softlayer credentials, and AWS's `aws ... key = "<40 chars>"` (which needs no entropy).
_LOWER_LITERALS = (
    ("xox", "SlackDetector"),
    ("hooks.slack.com", "SlackDetector"),
    ("cloudant.com", "CloudantDetector"),
    ("softlayer.com", "SoftlayerDetector"),
    ("aws", "AWSKeyDetector"),
)
# Literals that share a rarer part are searched together, once per text, then told apart on
# the few lines that hold that part (each search of a text costs ~30 ms per 34 MB).
_LITERAL_GROUPS: tuple[tuple[str | re.Pattern[str], tuple[str, ...]], ...] = (
    (".com", ("hooks.slack.com", "cloudant.com", "softlayer.com")),
    ("xox", ("xox",)),
    ("aws", ("aws",)),
)
# Cloudant, IBM Cloud IAM, IBM COS HMAC and Softlayer match `<name> = <secret>` assignments whose
# name holds "key", "pw(d)", "pass(word)" or "token" (case-insensitive) and whose secret is 24+
# characters of [\w-]. santa's unquoted-value pass looks at the same lines and a few more words.
_KEYWORDS = ("key", "pw", "pass", "token")
_KEYWORD_PLUGINS = frozenset({"CloudantDetector", "IbmCloudIamDetector", "IbmCosHmacDetector", "SoftlayerDetector"})
_LONG_RUN = re.compile(r"[A-Za-z0-9_\-]{24}")
_SECRET_WORDS = ("key", "pw", "pass", "token", "secret", "auth", "credential")
_WORD_GROUPS: tuple[tuple[str | re.Pattern[str], tuple[str, ...]], ...] = (
    ("key", ("key",)),
    (re.compile("p(?:w|ass)"), ("pw", "pass")),  # one search led by "p" instead of two
    ("token", ("token",)),
    ("secret", ("secret",)),
    ("auth", ("auth",)),
    ("credential", ("credential",)),
)

# santa: `API_KEY=AbC...` / `token: AbC...` / `Authorization: Bearer AbC...` outside quotes.
_UNQUOTED_ASSIGNMENT = re.compile(
    r"(?i)(?<![\w.\-])([\w.\-]*(?:key|secret|token|passw(?:or)?d|pwd|auth\w*|credentials?)[\w.\-]*)"
    r"[\"']?[ \t]*(?:=|:=|:|=>)[ \t]*(?:(?:bearer|basic|token)[ \t]+)?"
    # Not an attribute, call or index: `api_key = settings.API_KEY`, `token = make_token()`.
    rf"([{_B64}]{{16,}})(?![.(\[])"
)
_UNQUOTED_VALUE = re.compile(rf"[{_B64}]{{16}}")
# The unquoted pass skips minified lines: its regex backtracks on long identifier runs.
_UNQUOTED_MAX_LINE = 1000

_HASH_LINE_WORDS = ("sha", "md5", "hash", "byte")
# santa: a 40/64-hex value next to these is a git object id or a content digest.
_SANTA_HASH_LINE_WORDS = ("commit", "digest", "checksum", "revision")
_HASH_LENGTHS = (32, 40, 64)
# santa's "hash word": sha, sha1, SHA-256, hash, hashes, hashed, file_hash; not shape, share,
# shadow, hashlib, hashCode, getHash.
_HASH_WORD = re.compile(r"(?i:(?<![a-z])(?:sha(?![a-z])|hash(?:es|ed)?(?![a-z])))(?!Code)")


@dataclass(frozen=True)
class KeyHit:
    start: int
    end: int
    # detect-secrets' secret type ("AWS Access Key", "Base64 High Entropy String", ...).
    kind: str


@dataclass(frozen=True)
class RawSecret:
    """One detect-secrets finding on one line (the line's id: its index or start offset)."""

    line: int
    kind: str
    value: str


# ----------------------------------------------------------------------------------------------
# The gibberish model


class GibberishModel:
    """Character-bigram model: ``score(s)`` is the mean negative log probability (nats) of the
    transitions between consecutive letters of ``s`` (lower-cased, non-letters skipped), so
    English-like strings score low and random ones high."""

    def __init__(self, text: str, smoothing: float = 1.0) -> None:
        import numpy as np

        letters = string.ascii_lowercase
        # Every non-letter becomes a space: bigrams are counted within words only (counted with
        # numpy: a Counter of the ~0.5 M pairs costs every worker process ~0.1 s).
        cleaned = np.frombuffer(re.sub(r"[^a-z]+", " ", text.lower()).encode("ascii"), dtype=np.uint8)
        first, second = cleaned[:-1], cleaned[1:]
        both = (first != 32) & (second != 32)
        pairs = np.bincount((first[both] - 97).astype(np.int64) * 26 + (second[both] - 97), minlength=26 * 26).tolist()
        self.nll: dict[str, dict[str, float]] = {}
        for i, a in enumerate(letters):
            row = {b: pairs[26 * i + j] + smoothing for j, b in enumerate(letters)}
            total = sum(row.values())
            self.nll[a] = {b: -math.log(c / total) for b, c in row.items()}
        self.fingerprint = hashlib.sha256(
            repr(sorted((a + b, round(v, 9)) for a, r in self.nll.items() for b, v in r.items())).encode()
        ).hexdigest()[:12]

    def score(self, s: str) -> float | None:
        """Mean transition cost, or None when ``s`` has fewer than 8 letters."""
        chars = [c for c in s.lower() if "a" <= c <= "z"]
        if len(chars) < _MIN_LETTERS:
            return None
        nll = self.nll
        return sum(nll[a][b] for a, b in zip(chars, chars[1:])) / (len(chars) - 1)

    def is_gibberish(self, s: str, threshold: float = GIBBERISH_THRESHOLD) -> bool:
        value = self.score(s)
        return True if value is None else value > threshold


@lru_cache(maxsize=1)
def gibberish_model() -> GibberishModel:
    """The model trained on the running Python's reference manual (cached per process)."""
    try:
        from pydoc_data.topics import topics
    except ImportError as exc:  # a stripped Python without pydoc_data
        from santa.errors import SantaError

        raise SantaError(
            "the PII key filter trains its gibberish model on the Python reference manual "
            "(module pydoc_data.topics), which this Python lacks; install the full standard "
            "library (Debian: libpython3-stdlib) or drop 'key' from the pii step's types"
        ) from exc
    return GibberishModel("\n".join(topics[k] for k in sorted(topics)))


# ----------------------------------------------------------------------------------------------
# detect-secrets, in memory


@lru_cache(maxsize=1)
def plugins() -> tuple[Any, ...]:
    """The paper's 18 detect-secrets plugins, instantiated once per process."""
    # Imported lazily: detect-secrets pulls in requests (~0.3 s) and only this step needs it.
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
    by_name = {cls.__name__: cls for cls in classes}
    missing = [n for n in PLUGIN_NAMES if n not in by_name]
    if missing:
        raise RuntimeError(f"detect-secrets lacks the plugins {missing}; santa pins detect-secrets==1.5.0")
    # Default arguments = BigCode's configuration (Base64 limit 4.5, Hex limit 3.0).
    return tuple(by_name[n]() for n in PLUGIN_NAMES)


@lru_cache(maxsize=1)
def _filters() -> tuple[Any, Any, Any, Any]:
    from detect_secrets.filters import heuristic

    return (
        heuristic.is_potential_uuid,
        heuristic.is_likely_id_string,
        heuristic.is_templated_secret,
        heuristic.is_sequential_string,
    )


def _filtered_out(secret: str, line: str, plugin: Any) -> bool:
    """detect-secrets' secret-level filtering with the paper's four heuristic filters."""
    uuid, likely_id, templated, sequential = _filters()
    return bool(uuid(secret) or likely_id(secret, line, plugin) or templated(secret) or sequential(secret))


class _Doc:
    """A document as detect-secrets reads a file: lines split on "\\n". A line is named by the
    offset of its first character, so no table of all line starts is ever built (most documents
    have no candidate line at all)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._lower: str | None = None
        self._keywords: dict[str, dict[int, int]] | None = None

    def line(self, start: int) -> str:
        end = self.text.find("\n", start)
        return self.text[start:] if end == -1 else self.text[start:end]

    @property
    def lower(self) -> str:
        if self._lower is None:
            low = self.text.lower()
            # A few characters lower-case to two ('İ'); offsets must stay those of the text, so
            # those stay as they are (every ASCII letter still lower-cases).
            if len(low) != len(self.text):
                low = "".join(c if len(c.lower()) != 1 else c.lower() for c in self.text)
            self._lower = low
        return self._lower

    def matching(self, what: re.Pattern[str] | str, src: str | None = None) -> Iterator[tuple[int, int]]:
        """(start, end) of each line where ``what`` (regex or substring) occurs in ``src``."""
        return iter_lines(self.text, what, src)

    def keyword_lines(self) -> dict[str, dict[int, int]]:
        """For each of the secret words, the lines holding it (start -> end), computed once."""
        if self._keywords is None:
            self._keywords = {w: {} for w in _SECRET_WORDS}
            for word, line_start, line_end in self.grouped_lines(_WORD_GROUPS):
                self._keywords[word][line_start] = line_end
        return self._keywords

    def grouped_lines(
        self, groups: Iterable[tuple[str | re.Pattern[str], tuple[str, ...]]]
    ) -> Iterator[tuple[str, int, int]]:
        """(literal, line start, line end) for each line of the lower-cased text holding one of a
        group's literals, the group searched once by what its literals share."""
        low = self.lower
        for shared, literals in groups:
            for start, end in self.matching(shared, low):
                if len(literals) == 1 and isinstance(shared, str):
                    yield literals[0], start, end
                    continue
                line = low[start:end]
                for literal in literals:
                    if literal in line:
                        yield literal, start, end


def candidate_lines(text: str) -> list[int]:
    """Start offsets of the lines on which some plugin could report a secret, in order."""
    return sorted(_candidates(_Doc(text)))


def _candidates(doc: _Doc) -> dict[int, set[str]]:
    """Line start -> the plugins that could report something on that line."""
    found: dict[int, set[str]] = {}

    def add(start: int, names: Iterable[str]) -> None:
        found.setdefault(start, set()).update(names)

    text = doc.text
    for pattern in _QUOTED:
        for start, end in doc.matching(pattern):
            for distinct in map(set, pattern.findall(text, start, end)):
                if len(distinct) >= _B64_MIN:
                    add(start, ("Base64HighEntropyString", "AWSKeyDetector"))
                if len(distinct) >= _HEX_MIN and not distinct - _HEX:
                    add(start, ("HexHighEntropyString",))
    for pattern, names in _LITERAL_TRIGGERS:
        for start, _ in doc.matching(pattern):
            add(start, names)
    for start, end in doc.matching(_DISCORD_HINT):
        if _DISCORD.search(text, start, end):
            add(start, ("DiscordBotTokenDetector",))
    for needle, name in _PLAIN_LITERALS:
        for start, _ in doc.matching(needle):
            add(start, (name,))
    plugin_of = dict(_LOWER_LITERALS)
    for needle, start, _ in doc.grouped_lines(_LITERAL_GROUPS):
        add(start, (plugin_of[needle],))
    keyword_lines = doc.keyword_lines()
    for needle in _KEYWORDS:
        for start, end in keyword_lines[needle].items():
            if _LONG_RUN.search(text, start, end):
                add(start, _KEYWORD_PLUGINS)
    return found


def scan_lines(lines: list[str] | dict[int, str], only: dict[int, set[str]] | None = None) -> list[RawSecret]:
    """detect-secrets' line-based plugin pass over ``lines`` (a list, or line id -> line): what
    ``scan._process_line_based_plugins`` reports with the paper's plugins and filters, without
    global settings, temporary files or log records holding secret values. ``only`` restricts
    each line to the named plugins."""
    loaded = plugins()
    found: set[RawSecret] = set()
    for i, raw_line in lines.items() if isinstance(lines, dict) else enumerate(lines):
        line = raw_line.rstrip()
        names = None if only is None else only[i]
        for plugin in loaded:
            if names is not None and plugin.__class__.__name__ not in names:
                continue
            for secret in plugin.analyze_line(filename="<memory>", line=line):
                value = secret.secret_value
                if value and not _filtered_out(value, line, plugin):
                    found.add(RawSecret(i, plugin.secret_type, value))
    # analyze_line returns sets (hash order varies between processes): sort for determinism.
    return sorted(found, key=lambda r: (r.line, r.kind, r.value))


def _scan_unquoted(doc: _Doc) -> list[tuple[RawSecret, int, int]]:
    """santa's assignment pass: (finding, start, end in line) for unquoted secret-named values."""
    entropy = [p for p in plugins() if p.__class__.__name__ in ("Base64HighEntropyString", "HexHighEntropyString")]
    lines: dict[int, int] = {}
    for found in doc.keyword_lines().values():
        lines.update(found)
    out: list[tuple[RawSecret, int, int]] = []
    for start in sorted(lines):
        end = lines[start]
        if end - start > _UNQUOTED_MAX_LINE or not _UNQUOTED_VALUE.search(doc.text, start, end):
            continue
        line = doc.text[start:end]
        for a in _UNQUOTED_ASSIGNMENT.finditer(line):
            value = a.group(2)
            # Presented as detect-secrets' config transformer presents ini values: `name = "value"`.
            pseudo = f'{a.group(1)} = "{value}"'
            for plugin in entropy:
                found = plugin.analyze_line(filename="<memory>", line=pseudo)
                if any(not _filtered_out(f.secret_value, pseudo, plugin) for f in found):
                    out.append((RawSecret(start, plugin.secret_type, value), a.start(2), a.end(2)))
                    break
    return out


# ----------------------------------------------------------------------------------------------
# BigCode's false-positive filters


_GITHUB_TOKEN = re.compile(r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}")


def _secret_values(kind: str, value: str, line: str) -> list[str]:
    """The secret(s) a detect-secrets value stands for, without the extra text some plugins
    report with it."""
    if kind == "GitHub Token":
        # The plugin's regex has a capturing group around the prefix, so `findall` reports
        # just "ghp": take the whole tokens of the line instead.
        return sorted(set(_GITHUB_TOKEN.findall(line)))
    if kind == "JSON Web Token":
        # The plugin's regex ends in a lazy `*?`, so it reports header.payload without the
        # signature: extend each occurrence over the signature's characters.
        return sorted({m.group() for m in re.finditer(re.escape(value) + r"[A-Za-z0-9_.+/=\-]*", line)})
    if kind == "Azure Storage Account access key":
        value = value.removeprefix("AccountKey=")
    # Artifactory's regexes include the delimiter around the token (`"AKC..."`, `=AKC...`).
    value = value.strip().strip("\"'").lstrip("=:").strip().strip("\"'")
    return [value] if value else []


def _is_hash_line(value: str, line: str) -> bool:
    if len(value) not in _HASH_LENGTHS:
        return False
    low = line.lower()
    return any(w in low for w in _HASH_LINE_WORDS + _SANTA_HASH_LINE_WORDS)


def file_has_hashes(text: str) -> bool:
    """BigCode's "hash-heavy file" test, on words: hash words more often than 2 % of the lines
    (and at least twice)."""
    return len(_HASH_WORD.findall(text)) > max(1, int(0.02 * text.count("\n")))


def _passes_gibberish(value: str, kind: str) -> bool:
    if kind in _STRUCTURED_TYPES or (kind == "AWS Access Key" and _AWS_KEY_ID.fullmatch(value)):
        return True
    if not (set(value) - _HEX):
        return True
    return gibberish_model().is_gibberish(value)


def keep_secret(value: str, kind: str, line: str) -> bool:
    """The per-key filters (gibberish, hash line) on a trimmed detect-secrets value."""
    if not value:
        return False
    if not _passes_gibberish(value, kind):
        return False
    return not _is_hash_line(value, line)


# ----------------------------------------------------------------------------------------------
# The whole key detection


def detect_keys(text: str) -> list[KeyHit]:
    """Secret keys in ``text`` as spans (see the module docstring for the rules)."""
    doc = _Doc(text)
    candidates = _candidates(doc)
    findings: list[tuple[RawSecret, int | None, int | None]] = [
        (r, None, None) for r in scan_lines({start: doc.line(start) for start in candidates}, candidates)
    ]
    findings += _scan_unquoted(doc)
    if not findings or file_has_hashes(text):
        return []
    hits: dict[tuple[int, int], KeyHit] = {}
    kept_values: dict[str, str] = {}
    for raw, s, e in findings:
        line = doc.line(raw.line)
        base = raw.line
        for value in _secret_values(raw.kind, raw.value, line):
            if keep_secret(value, raw.kind, line):
                spans = [(s, e)] if s is not None and e is not None else list(_occurrences(line, value))
                _add_hits(hits, kept_values, value, raw.kind, base, spans)
    # The same value elsewhere in the file (a comment repeating the key, a second config block)
    # is the same secret; only whole-token occurrences, so no other token is cut in two.
    taken = SpanSet()
    for a, b in sorted(hits):
        if not taken.overlaps(a, b):
            taken.add(a, b)
    for value, kind in kept_values.items():
        for a, b in _occurrences(text, value, whole_token=True):
            if (a, b) not in hits and not taken.overlaps(a, b):
                hits[(a, b)] = KeyHit(a, b, kind)
                taken.add(a, b)
    return sorted(hits.values(), key=lambda h: (h.start, h.end))


class SpanSet:
    """Non-overlapping [start, end) spans with an O(log n) overlap test (a blocklist file holds
    thousands of addresses; pairwise tests would be quadratic)."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._starts, start)
        return (i > 0 and self._ends[i - 1] > start) or (i < len(self._starts) and self._starts[i] < end)

    def add(self, start: int, end: int) -> None:
        i = bisect.bisect_right(self._starts, start)
        self._starts.insert(i, start)
        self._ends.insert(i, end)


def _add_hits(
    hits: dict[tuple[int, int], KeyHit],
    kept_values: dict[str, str],
    value: str,
    kind: str,
    base: int,
    spans: list[tuple[int, int]],
) -> None:
    for a, b in spans:
        span = (base + a, base + b)
        # Two plugins on one span: name the specific format, not "high entropy string".
        if span not in hits or hits[span].kind in _GENERIC_TYPES:
            hits[span] = KeyHit(span[0], span[1], kind)
    if value not in kept_values or kept_values[value] in _GENERIC_TYPES:
        kept_values[value] = kind


_TOKEN_CHAR = re.compile(r"[A-Za-z0-9+/=_\-]")


def _occurrences(text: str, value: str, *, whole_token: bool = False) -> Iterator[tuple[int, int]]:
    pos = text.find(value)
    while pos != -1:
        end = pos + len(value)
        if not whole_token or (
            (pos == 0 or not _TOKEN_CHAR.match(text[pos - 1]))
            and (end == len(text) or not _TOKEN_CHAR.match(text[end]))
        ):
            yield pos, end
        pos = text.find(value, end)
