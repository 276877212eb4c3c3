"""The pii step: each trap and exclusion, the key filters, the candidate-line prefilter against
detect-secrets' own scan, replacements, and the never-record-the-secret rule."""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import re
import string

import pytest
from conftest import stdlib_records

from santa import registry
from santa.errors import SantaError
from santa.filters.base import Decision, RecordStep, StepContext
from santa.filters.pii import (
    POOL_SIZE,
    Detection,
    PIIRedaction,
    _resolve_overlaps,
    detect_pii,
    redact,
    replacement_pools,
)
from santa.filters.pii_keys import (
    FILTER_NAMES,
    PLUGIN_NAMES,
    _candidates,
    _Doc,
    candidate_lines,
    file_has_hashes,
    gibberish_model,
    scan_lines,
)
from santa.filters.pii_regex import PUBLIC_DNS_RESOLVERS

# Fake but realistic-looking secrets (random, never issued by anyone).
AWS_ID = "AKIAH526QP3UM3YEW2SV"
AWS_SECRET = "AlIrCRZg1LsKnGO3ciADW18zOl2DFJX1+XwtiQW0"
GITHUB = "ghp_Ii5jOy9bKFhJEnwIVPauu4I0VHmE43fhoSjz"
SLACK = "xoxb-525997467524-6031814269994-L9OH5t4ox8Dku5bXkpKNYJBl"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0ODIxOTA3NzM1IiwibmFtZSI6IlByaXlhIFJhbWFuIiwiaWF0Ijox"
    "NzE1ODcxMTIzfQ.Qz3Dc4YC8wXcg8HNNyNl-PxgL5PmucqEhR9Ico6q90_"
)
HEX_KEY = "3a11f590d757dca7eb9afe89850d1ac9"
B64_KEY = "yImuWQ9rXxApsUQ1wU1p8jhVkBkFTTeLr+5ZhOcz"
UNQUOTED = "GRBxXGxDXs7P+lUZzhYIR4M7obeJ+rflk6kA7USU"


def found(text: str, rules: str = "santa", types: tuple[str, ...] = ("email", "ip", "key")) -> list[tuple[str, str]]:
    return [(d.type, text[d.start : d.end]) for d in detect_pii(text, types=types, rules=rules)]


def values(text: str, kind: str, rules: str = "santa") -> list[str]:
    return [v for t, v in found(text, rules) if t == kind]


# ----------------------------------------------------------------------------------------------
# Emails


@pytest.mark.parametrize(
    "text, expected",
    [
        ("# Maintainer: Jane Roe <jane.roe@fastmail.fm>\n", ["jane.roe@fastmail.fm"]),
        ('ADMINS = [("Ops", "ops-alerts@orbitfleet.io")]', ["ops-alerts@orbitfleet.io"]),
        (" * @author T. Kowalski (t.kowalski@polmail.pl)", ["t.kowalski@polmail.pl"]),
        ('href: "mailto:help@tidewaterlabs.com?subject=Hi"', ["help@tidewaterlabs.com"]),
        ("to = 'dispatch+eu@mail.quill.co.uk'.", ["dispatch+eu@mail.quill.co.uk"]),
    ],
)
def test_emails_in_comments_and_strings(text: str, expected: list[str]) -> None:
    assert values(text, "email") == expected


@pytest.mark.parametrize(
    "text",
    [
        'deps = ["pkg@1.2.3", "lodash@4.17.21"]',  # package@version
        'target = "user@127.0.0.1"',  # user@IP: a login, and no letter TLD
        "npm install react@18.2.0",
        'src="https://cdn.jsdelivr.net/npm/bootstrap@5.3.0/dist/js/bootstrap.min.js"',
        'src="//cdn.example.net/npm/chart.js@latest.min.js"',  # CDN path segment
        'REMOTE = "git@github.com:orbitfleet/agent.git"',  # scp-style remote
        "h = x@self.weight.T",  # matrix product
        "y = a@b.dot(c)",
        "@app.route('/')\n@Override\n * @param name the name",
        'dsn = "postgres://admin:hunter2@db.internal:5432/fleet"',
    ],
)
def test_email_traps(text: str) -> None:
    assert values(text, "email") == []


def test_bigcode_rules_keep_the_original_false_positives() -> None:
    # The fixes are santa's; `rules=bigcode` reproduces the paper's behaviour.
    assert values("h = x@self.weight", "email", rules="bigcode") == ["x@self.weight"]
    assert values('REMOTE = "git@github.com:org/repo.git"', "email", rules="bigcode") == ["git@github.com"]


# ----------------------------------------------------------------------------------------------
# IP addresses


def test_public_ipv4_and_ipv6_are_found() -> None:
    text = 'UPSTREAMS = ["52.14.201.77", "185.199.108.153"]\nPEER = "2604:a880:400:d1::7e3:f001"\n'
    assert values(text, "ip") == ["52.14.201.77", "185.199.108.153", "2604:a880:400:d1::7e3:f001"]
    assert values("url = 'https://35.190.27.188:8443/ingest'", "ip") == ["35.190.27.188"]


@pytest.mark.parametrize(
    "text",
    [
        'gw = "192.168.1.1"; lan = "10.20.0.15"; vpn = "172.16.4.20"',  # private
        'lo = "127.0.0.1"; ll = "169.254.10.1"; doc = "203.0.113.7"',  # loopback, link-local, docs
        'v6 = ["::1", "fe80::1ff:fe23:4567:890a", "fd12:3456:789a::1"]',
        'mask = "255.255.255.0"',
        'mcast = "224.0.0.251"',
        'bad = ["256.1.1.1", "01.2.3.4", "1.2.3.4.5"]',  # do not parse / part of a longer number
        'released = "12.10.22.1"',  # date-like: dd.mm.yy
        'version = "1.2.3.4"',  # version-like, no dns/server nearby
        '__version__ = "2.10.0.1"',  # santa: a quad right after a version word
        'ua = "Chrome/119.0.6045.105"',
        'slice = xs[1::2]; scope = Foo::bar; t = "12:30:45"; mac = "00:1a:2b:3c:4d:5e"',
        "dead::beef",  # no digit
    ],
)
def test_ip_exclusions(text: str) -> None:
    assert values(text, "ip") == []


def test_dns_resolvers_are_never_redacted() -> None:
    assert len(PUBLIC_DNS_RESOLVERS) == 14
    text = "\n".join(f'resolver_{i} = "{ip}"' for i, ip in enumerate(sorted(PUBLIC_DNS_RESOLVERS)))
    assert values(text, "ip") == []


def test_version_shape_counts_as_ip_near_dns_or_server() -> None:
    assert values('// dns server for the VPN\nconst resolver = "5.2.7.9";', "ip") == ["5.2.7.9"]
    assert values('const build = "5.2.7.9";', "ip") == []


def test_cidr_ranges() -> None:
    # A range names a network, not a host: kept. A /32 host route is an address: redacted.
    assert values('OFFICE = "52.94.76.0/22"; V6 = "2604:a880::/32"', "ip") == []
    assert values('ALLOW = "52.94.76.9/32"', "ip") == ["52.94.76.9"]
    # The original never matched an address followed by "/" at all.
    assert values('ALLOW = "52.94.76.9/32"', "ip", rules="bigcode") == []


# ----------------------------------------------------------------------------------------------
# Keys


def test_keys_in_config_code() -> None:
    text = (
        "s3 = boto3.client(\n"
        f'    aws_access_key_id="{AWS_ID}",\n'
        f'    aws_secret_access_key="{AWS_SECRET}",\n'
        ")\n"
        f'TOKEN = "{GITHUB}"\n'
        f"SLACK_BOT_TOKEN = '{SLACK}'\n"
        f'token = "{JWT}"\n'
        f'WEATHER_API_KEY = "{HEX_KEY}"\n'
        f'API_KEY = "{B64_KEY}";\n'
    )
    assert values(text, "key") == [AWS_ID, AWS_SECRET, GITHUB, SLACK, JWT, HEX_KEY, B64_KEY]
    detectors = {text[d.start : d.end]: d.detector for d in detect_pii(text)}
    # Whole tokens, named by their format (detect-secrets reports "ghp" and a JWT without its
    # signature; santa locates the full token).
    assert detectors[GITHUB] == "GitHub Token"
    assert detectors[JWT] == "JSON Web Token"


def test_a_key_repeated_elsewhere_in_the_file_is_redacted_everywhere() -> None:
    text = f'KEY = "{B64_KEY}"\n# old value was {B64_KEY}\nother = x{B64_KEY}_2\n'
    spans = [(d.start, d.end) for d in detect_pii(text, types=["key"])]
    first = text.index(B64_KEY)
    second = text.index(B64_KEY, first + 1)
    # The third occurrence is part of a longer token: left alone.
    assert spans == [(first, first + len(B64_KEY)), (second, second + len(B64_KEY))]


@pytest.mark.parametrize(
    "text",
    [
        'TENANT = "550e8400-e29b-41d4-a716-446655440000"',  # potential UUID
        'EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"',  # hash line
        'LOGO_MD5 = "9e107d9d372bb6826bd81d3542a419d6"',
        'secret = "${SECRET_KEY_FROM_THE_ENVIRONMENT_123}"',  # templated
        'alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"',  # sequential
        'user_id = "b7Xq9LmT2vR8nK4pW6yZ1cF3hJ5sD0gA"',  # likely id string
        'name = "AccessibilityManagerServiceImplementationFactory"',
        'msg = "TheQuickBrownFoxJumpsOverTheLazyDogAndRunsAway"',  # high entropy, English: not gibberish
        "UPSTREAM_COMMIT = 'dcf58694f267a95ebc7b300c338fa11c826a85c9'",  # santa: git commit id
    ],
)
def test_key_false_positive_filters(text: str) -> None:
    assert values(text, "key") == []


def test_hash_heavy_file_drops_its_keys() -> None:
    text = "\n".join([f'API_KEY = "{B64_KEY}"', "digest = sha256(x)", "other = hash_of(y)", "z = 1"])
    assert values(text, "key") == []


def test_hash_words_are_words_in_santa_rules() -> None:
    # "shape" holds "sha", "hashCode" holds "hash": the paper's substring count drops every key of
    # a small file that mentions them; santa counts words only.
    text = f'KEY = "{B64_KEY}"\nw = x.shape\nint h = obj.hashCode();\n'
    assert values(text, "key") == [B64_KEY]
    assert values(text, "key", rules="bigcode") == []
    assert not file_has_hashes("a = x.shape\n")
    assert file_has_hashes("h1 = sha256(a)\nh2 = file_hash\nx\n")


def test_unquoted_secret_assignments_santa_only() -> None:
    text = f'CONFIG = """\n[default]\naws_secret_access_key = {UNQUOTED}\nregion = us-east-2\n"""\n'
    assert values(text, "key") == [UNQUOTED]
    assert values(text, "key", rules="bigcode") == []
    bearer = '// curl -H "Authorization: Bearer nSq0qz0TxKTthZS1kZdR7dftVs2Tn12UyIgdh7ajDmVS8101" https://x.io'
    assert values(bearer, "key") == ["nSq0qz0TxKTthZS1kZdR7dftVs2Tn12UyIgdh7ajDmVS8101"]
    # Names of things, calls and attributes are not values.
    calls = "token = tokenizer_for_language_v2.encode(x)\napi_key = settings.API_KEY_FROM_ENVIRONMENT\n"
    assert values(calls, "key") == []


def test_gibberish_model() -> None:
    model = gibberish_model()
    assert not model.is_gibberish("superman")
    assert not model.is_gibberish("getattribute_wrapper")
    assert model.is_gibberish("ertrjiloifdfyyoiu")
    assert model.is_gibberish(B64_KEY)
    # Too few letters to judge: treated as gibberish (mostly digits and symbols).
    assert model.is_gibberish("12345678-ab")
    assert re.fullmatch(r"[0-9a-f]{12}", model.fingerprint)


def test_grouped_searches_find_each_literals_lines() -> None:
    """Literals searched together (".com" for the three URL forms, "p(?:w|ass)" for two secret
    words) yield exactly the lines a search per literal yields."""
    from santa.filters import pii_keys

    assert sorted(n for _, g in pii_keys._LITERAL_GROUPS for n in g) == sorted(n for n, _ in pii_keys._LOWER_LITERALS)
    assert sorted(n for _, g in pii_keys._WORD_GROUPS for n in g) == sorted(pii_keys._SECRET_WORDS)
    text = "\n".join(
        [
            "PASSWORD = 1",
            "pw and pass",
            "spwd",
            "x.COM/cloudant.com",
            "hooks.slack.com softlayer.com",
            "nothing here",
            "Token KEY secret Auth credentials",
            "cloudant.co m",
            "pas s p w",
            "",
        ]
    )
    doc = pii_keys._Doc(text)
    low = text.lower()

    def naive(word: str) -> dict[int, int]:
        out, start = {}, 0
        for line in low.split("\n"):
            if word in line:
                out[start] = start + len(line)
            start += len(line) + 1
        return out

    assert doc.keyword_lines() == {w: naive(w) for w in pii_keys._SECRET_WORDS}
    found = {(literal, start) for literal, start, _ in doc.grouped_lines(pii_keys._LITERAL_GROUPS)}
    assert found == {(n, s) for n, _ in pii_keys._LOWER_LITERALS for s in naive(n)}


def test_plugin_and_filter_lists_are_the_papers() -> None:
    assert len(PLUGIN_NAMES) == 18 and len(set(PLUGIN_NAMES)) == 18
    for excluded in ("BasicAuthDetector", "KeywordDetector", "PrivateKeyDetector"):
        assert excluded not in PLUGIN_NAMES
    assert set(FILTER_NAMES) == {
        "is_potential_uuid",
        "is_likely_id_string",
        "is_templated_secret",
        "is_sequential_string",
    }


def _stress_document(rng: random.Random, n_lines: int = 400) -> str:
    """Lines built to sit on both sides of every plugin's trigger."""
    alnum = string.ascii_letters + string.digits
    b64 = alnum + "+/"

    def rs(n: int, cs: str = alnum) -> str:
        return "".join(rng.choice(cs) for _ in range(n))

    makers = [
        lambda: f'k = "{rs(rng.randint(6, 30), "0123456789abcdef")}"',
        lambda: f"k = '{rs(rng.randint(15, 45), b64)}'",
        lambda: f'k = "{rs(8)}"{rs(12, "0123456789abcdef")}"',
        lambda: f"id = AKIA{rs(16, string.ascii_uppercase + string.digits)}",
        lambda: f"AKC{rs(rng.randint(8, 14))} and AP{rng.choice('0123ABCDEF')}{rs(9)}",
        lambda: f"x = {rng.choice('MNO')}{rs(24)}.{rs(6)}.{rs(27)}",
        lambda: f"{rng.choice(['ghp', 'gho', 'ghx'])}_{rs(36)}",
        lambda: "t = eyJ" + rs(20) + "." + rs(30) + "." + rs(10),
        lambda: f"{rs(32, '0123456789abcdef')}-us{rng.randint(1, 20)}",
        lambda: f"//registry.npmjs.org/:_authToken={rs(36, '0123456789abcdef-')}",
        lambda: f"SG.{rs(22)}.{rs(43)}",
        lambda: f"xoxp-{rng.randint(10**5, 10**9)}-{rs(20).lower()}",
        lambda: f"https://hooks.slack.com/services/T{rs(8)}/B{rs(8)}/{rs(24)}",
        lambda: f"sk_live_{rs(24)}",
        lambda: f"AC{rs(32, string.ascii_lowercase + string.digits)}",
        lambda: f"AccountKey={rs(88, b64)}",
        lambda: (
            f'{rng.choice(["cloudant_password", "cl_api_key", "ibm_cloud_iam_key", "softlayer_api_key"])} = "{rs(rng.choice([24, 44, 64]), string.ascii_lowercase + string.digits)}"'
        ),
        lambda: f'cos_hmac_secret_access_key = "{rs(48, "0123456789abcdef")}"',
        lambda: f'aws_token = "{rs(40, b64)}"',
        lambda: f'AWS_SECRET_KEY = "{rs(40, "ab/+")}"',  # AWS's own regex needs no entropy
        lambda: f"plain line {rs(10)} with words",
        lambda: f"{rs(50, alnum + '_-')} = value",
    ]
    return "\n".join(rng.choice(makers)() for _ in range(n_lines)) + "\n"


def test_candidate_prefilter_loses_nothing(tiny_corpus_records: list[dict]) -> None:
    """Scanning only candidate lines finds what detect-secrets' own line runner finds on every
    line, on real code and on lines built to trip every plugin."""
    from detect_secrets.core import scan
    from detect_secrets.settings import transient_settings

    config = {
        "plugins_used": [{"name": n} for n in PLUGIN_NAMES],
        "filters_used": [{"path": f"detect_secrets.filters.heuristic.{f}"} for f in FILTER_NAMES],
    }
    rng = random.Random(7)
    docs = [r["content"] for r in tiny_corpus_records] + [_stress_document(rng) for _ in range(3)]
    total = 0
    with transient_settings(config):
        for text in docs:
            lines = text.split("\n")
            reference = {
                (s.line_number - 1, s.type, s.secret_value)
                for s in scan._process_line_based_plugins(list(enumerate(lines, start=1)), filename="doc.txt")
            }
            offsets = {sum(len(x) + 1 for x in lines[:i]): i for i in range(len(lines))}
            cands = _candidates(_Doc(text))
            assert sorted(cands) == candidate_lines(text)
            ours = {
                (offsets[r.line], r.kind, r.value) for r in scan_lines({c: lines[offsets[c]] for c in cands}, cands)
            }
            assert ours == reference
            total += len(reference)
    assert total > 200  # the stress lines did trip the plugins


@pytest.fixture(scope="module")
def tiny_corpus_records() -> list[dict]:
    return stdlib_records(40)


# ----------------------------------------------------------------------------------------------
# Overlaps and replacements


def test_overlaps_resolve_the_same_in_any_order() -> None:
    dets = [
        Detection(0, 10, "key", "Base64 High Entropy String"),
        Detection(0, 10, "key", "GitHub Token"),
        Detection(5, 30, "email", "email"),
        Detection(28, 40, "ip", "ipv4"),
        Detection(50, 60, "ip", "ipv4"),
        Detection(50, 60, "key", "Hex High Entropy String"),
    ]
    expected = [Detection(5, 30, "email", "email"), Detection(50, 60, "key", "Hex High Entropy String")]
    for seed in range(20):
        shuffled = dets[:]
        random.Random(seed).shuffle(shuffled)
        assert _resolve_overlaps(shuffled) == expected
    assert _resolve_overlaps(dets[:2]) == [Detection(0, 10, "key", "GitHub Token")]


DOC = (
    "# contact: jane.roe@fastmail.fm or b.okafor@quillmail.net\n"
    'HOSTS = ["52.14.201.77", "185.199.108.153", "52.14.201.77"]\n'
    'V6 = "2604:a880:400:d1::7e3:f001"\n'
    f'API_KEY = "{B64_KEY}"\n'
    f'AWS = "{AWS_ID}"\n'
    "# again: jane.roe@fastmail.fm\n"
)
SECRETS = [
    "jane.roe@fastmail.fm",
    "b.okafor@quillmail.net",
    "52.14.201.77",
    "185.199.108.153",
    "2604:a880:400:d1::7e3:f001",
    B64_KEY,
    AWS_ID,
]


def test_santacoder_replacements() -> None:
    new, records = redact(DOC, detect_pii(DOC), mode="santacoder", seed=3)
    by_value = {}
    for r in records:
        by_value.setdefault(DOC[r["start"] : r["end"]], set()).add(r["replacement"])
    # The same value gets the same replacement within the file; distinct values distinct ones.
    assert all(len(reps) == 1 for reps in by_value.values())
    reps = {v: next(iter(r)) for v, r in by_value.items()}
    assert len(set(reps.values())) == len(reps) == len(SECRETS)
    assert re.fullmatch(r"[a-z]{5}@example\.com", reps["jane.roe@fastmail.fm"])
    assert re.fullmatch(r"[a-z0-9]{32}", reps[B64_KEY]) and re.fullmatch(r"[a-z0-9]{32}", reps[AWS_ID])
    for v4 in ("52.14.201.77", "185.199.108.153"):
        addr = ipaddress.ip_address(reps[v4])
        assert addr in ipaddress.ip_network("172.16.0.0/12") or addr in ipaddress.ip_network("192.168.0.0/16")
    assert ipaddress.ip_address(reps["2604:a880:400:d1::7e3:f001"]) in ipaddress.ip_network("fc00::/7")
    for secret in SECRETS:
        assert secret not in new
    # Deterministic given the seed; another seed, other choices.
    assert redact(DOC, detect_pii(DOC), seed=3) == (new, records)
    assert redact(DOC, detect_pii(DOC), seed=4)[0] != new


def test_pools() -> None:
    pools = replacement_pools(0)
    assert {k: len(v) for k, v in pools.items()} == {
        "email": POOL_SIZE,
        "key": POOL_SIZE,
        "ipv4": POOL_SIZE,
        "ipv6": POOL_SIZE,
    }
    assert pools == replacement_pools(0) and pools != replacement_pools(1)


def test_tags_mode() -> None:
    step = PIIRedaction(mode="tags")
    decision = step.process([{"content": DOC}])[0]
    assert decision.content is not None
    assert decision.content.count("<EMAIL>") == 3
    assert decision.content.count("<IP_ADDRESS>") == 4
    assert decision.content.count("<KEY>") == 2
    assert 'API_KEY = "<KEY>"' in decision.content


def test_types_param_limits_what_is_redacted() -> None:
    decision = PIIRedaction(types=["email"]).process([{"content": DOC}])[0]
    assert decision.details["counts"] == {"email": 3}
    assert B64_KEY in decision.content and "52.14.201.77" in decision.content


# ----------------------------------------------------------------------------------------------
# The step contract


def test_step_contract() -> None:
    cls = registry.get("santa.filters", "pii")
    assert cls is PIIRedaction and issubclass(cls, RecordStep)
    step = cls(mode="santacoder", seed=0)
    step.setup(StepContext())
    clean = {"content": "def f(x):\n    return x + 1\n", "lang": "Python", "path": "a.py", "repo": "r", "stars": 3}
    dirty = {"content": DOC, "lang": "Python", "path": "b.py", "repo": "r", "stars": 3}
    empty = {"content": "", "lang": "Python", "path": "c.py", "repo": "r", "stars": None}
    decisions = step.process([clean, dirty, empty])
    assert all(isinstance(d, Decision) and d.keep for d in decisions)
    assert decisions[0].content is None and decisions[0].details is None and decisions[0].stat == 0
    assert decisions[2].content is None and decisions[2].details is None
    assert decisions[1].content is not None and decisions[1].stat == len(decisions[1].details["redactions"])
    # Pure: batch composition changes nothing.
    assert step.process([dirty]) == [decisions[1]]
    params = step.params()
    assert params["mode"] == "santacoder" and params["rules"] == "santa" and params["types"] == ["email", "ip", "key"]
    json.dumps(params)


def test_the_secret_is_never_recorded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    step = PIIRedaction()
    decision = step.process([{"content": DOC}])[0]
    report = json.dumps(
        {"details": decision.details, "stat": decision.stat, "reason": decision.reason, "params": step.params()}
    )
    logs = "\n".join(r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        assert secret not in report
        assert secret not in logs
    for r in decision.details["redactions"]:
        assert set(r) == {"type", "detector", "start", "end", "replacement"}


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "mask"}, {"types": ["email", "phone"]}, {"types": []}, {"rules": "strict"}],
)
def test_bad_params_are_user_errors(kwargs: dict) -> None:
    with pytest.raises(SantaError):
        PIIRedaction(**kwargs)


def test_lower_casing_that_changes_length_keeps_offsets() -> None:
    # 'İ'.lower() is two characters; the keyword search runs on a lower-cased copy of the text.
    text = f'# İstanbul office\nAWS_SECRET_KEY = "{"ab/+" * 10}"\n'
    line = text.index("AWS")
    assert candidate_lines(text) == [line]
    assert "AWSKeyDetector" in _candidates(_Doc(text))[line]
