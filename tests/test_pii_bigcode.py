"""`detect_pii(rules="bigcode")` against BigCode's PII pipeline (bigcode-dataset bebec92, pii/),
re-implemented here from its description with the libraries it used — the `regex` module,
`ipaddress`, detect-secrets on a temporary .txt file under `transient_settings`, and
gibberish-detector reading BigCode's model — and run side by side on snippets written for this
test. Nothing here imports santa's bigcode code (santa.filters.pii_bigcode): the two must agree
span for span.

The re-implementation ("the reference" below):
* emails: BigCode's email regex (verbose, MULTILINE), group 1 of every match;
* IPs: its IP regex (delimiters consumed), kept when the value has a digit, is not a date by
  its five date regexes, is not a seven-character dotted quad without "dns"/"server" in
  ``content[start-100:end+100]``, parses with ipaddress; then its redaction step leaves
  ``is_private`` addresses and the 14 DNS servers alone;
* keys: ``SecretsCollection.scan_file`` with its 18 plugins and 4 filters, then per finding the
  gibberish test (model limit 4.0, lower-cased value), the hash-line test on the lines before the
  value's first occurrence, the hash-file test, and every occurrence of the value reported.
"""

from __future__ import annotations

import ipaddress
import os
import random
import tempfile

import pytest
import regex
from detect_secrets import SecretsCollection
from detect_secrets.settings import transient_settings
from gibberish_detector import detector

from santa.assets import ASSETS
from santa.filters.pii import PIIRedaction, detect_pii

# ----------------------------------------------------------------------------------------------
# The reference, re-implemented

_IP_L = r"""(?:^|[\s\x08@?,!;:'"().\p{Han}])"""
_IP_R = r"""(?:$|[\s@,?!;:'"(.\p{Han}])"""
_BYTE = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
_G = "[0-9a-fA-F]{1,4}"
_B = r"(?:25[0-5]|(?:2[0-4]|1{0,1}[0-9]){0,1}[0-9])"
_V6 = "|".join(
    [
        f"(?:{_G}:){{7,7}}{_G}",
        f"(?:{_G}:){{1,7}}:",
        f"(?:{_G}:){{1,6}}:{_G}",
        f"(?:{_G}:){{1,5}}(?::{_G}){{1,2}}",
        f"(?:{_G}:){{1,4}}(?::{_G}){{1,3}}",
        f"(?:{_G}:){{1,3}}(?::{_G}){{1,4}}",
        f"(?:{_G}:){{1,2}}(?::{_G}){{1,5}}",
        f"{_G}:(?:(?::{_G}){{1,6}})",
        f":(?:(?::{_G}){{1,7}}|:)",
        "fe80:(?::[0-9a-fA-F]{0,4}){0,4}%[0-9a-zA-Z]{1,}",
        rf"::(?:ffff(?::0{{1,4}}){{0,1}}:){{0,1}}(?:{_B}\.){{3,3}}{_B}",
        rf"(?:{_G}:){{1,4}}:(?:{_B}\.){{3,3}}({_B})",
    ]
)
IP_RE = regex.compile(_IP_L + "(" + rf"{_BYTE}(?:\.{_BYTE}){{3}}" + "|" + _V6 + ")" + _IP_R, regex.MULTILINE)
DATE_RES = [
    regex.compile(_IP_L + "(" + body + ")" + _IP_R)
    for body in (
        r"[1-2][0-9]{3}[\p{Pd}/][1-2][0-9]{3}",
        r"[1-2][0-9]{3}[\p{Pd}/.][0-3][0-9][\p{Pd}/.][0-3][0-9]",
        r"[0-3][0-9][\p{Pd}/.][0-3][0-9][\p{Pd}/.](?:[0-9]{2}|[1-2][0-9]{3})",
        r"[0-3][0-9][\p{Pd}/](?:[0-9]{2}|[1-2][0-9]{3})",
        r"[1-2][0-9]{3}-[0-3][0-9]",
    )
]
EMAIL_RE = regex.compile(
    r"""
    (?<= ^ | [\[({<\x08\s@,?!;'"\p{Han}¿¡:.] | \\['"] )    # what may stand before
    (
      (?: [^\]\[(){}<>\x08\s@,?!;'":\#/\\=.\-]              # local part: most characters,
        | (?: [=.\-] (?! [.@]) ) )+                        # and = . - unless . or @ follows
      @
      (?: (?: \w | [^.\x08\s@?!;,/()>\-:] [^.\x08\s@?!;,/()>]{0,62} [^.\x08\s@?!;,/()>\-:'"] ) \. ){1,10}
      (?: [\p{L}\p{M}]{2,63} | xn-- \w+ )                  # top-level domain
    )
    (?= $ | [\])}>\x08\s@,?!;'"\p{Han}] | \\['"] | :(?!\d) | \.(?!\S) )
    """,
    regex.MULTILINE | regex.VERBOSE,
)
DNS_SERVERS = {
    "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "76.76.19.19", "76.223.122.150", "9.9.9.9",
    "149.112.112.112", "208.67.222.222", "208.67.220.220", "8.26.56.26", "8.20.247.20",
    "94.140.14.14", "94.140.15.15",
}  # fmt: skip
PLUGINS = [
    "ArtifactoryDetector", "AWSKeyDetector", "Base64HighEntropyString", "HexHighEntropyString",
    "AzureStorageKeyDetector", "CloudantDetector", "DiscordBotTokenDetector", "GitHubTokenDetector",
    "IbmCloudIamDetector", "IbmCosHmacDetector", "JwtTokenDetector", "MailchimpDetector",
    "NpmDetector", "SendGridDetector", "SlackDetector", "SoftlayerDetector", "StripeDetector",
    "TwilioKeyDetector",
]  # fmt: skip
FILTERS = ["is_potential_uuid", "is_likely_id_string", "is_templated_secret", "is_sequential_string"]
MODEL = ASSETS / "bigcode-dataset_bebec92" / "pii" / "gibberish_data" / "big.model"
GIBBERISH = detector.create_from_model(str(MODEL))


def ref_emails_ips(content: str) -> set[tuple[int, int, str]]:
    out = set()
    for m in EMAIL_RE.finditer(content):
        out.add((*m.span(1), "email"))
    for m in IP_RE.finditer(content):
        value, (start, end) = m.group(1), m.span(1)
        if not any(c.isdigit() for c in value) or any(p.match(value) for p in DATE_RES):
            continue
        window = content[start - 100 : end + 100].lower()
        if value.count(".") == 3 and len(value) == 7 and "dns" not in window and "server" not in window:
            continue
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            continue
        if addr.is_private or value in DNS_SERVERS:  # the redaction step's skip
            continue
        out.add((start, end, "ip"))
    return out


def ref_keys(content: str) -> set[tuple[int, int, str]]:
    fd, path = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    secrets = SecretsCollection()
    settings = {
        "plugins_used": [{"name": n} for n in PLUGINS],
        "filters_used": [{"path": f"detect_secrets.filters.heuristic.{f}"} for f in FILTERS],
    }
    try:
        with transient_settings(settings):
            secrets.scan_file(path)
    finally:
        os.unlink(path)
    out = set()
    for found in secrets.data.values():
        for secret in found:
            value = secret.secret_value
            if not GIBBERISH.is_gibberish(value.lower()):
                continue
            if value in content:
                line = content[: content.index(value)].splitlines()[-1]  # IndexError at offset 0
                if len(value) in (32, 40, 64) and any(w in line.lower() for w in ("sha", "md5", "hash", "byte")):
                    continue
            limit = int(0.02 * content.count("\n"))
            lines = [x.lower() for x in content.splitlines()]
            if sum(x.count("sha") for x in lines) > limit or sum(x.count("hash") for x in lines) > limit:
                continue
            pos = 0
            while value in content[pos:]:
                start = content.index(value, pos)
                out.add((start, start + len(value), "key"))
                pos = start + len(value)
    return out


def reference(content: str) -> set[tuple[int, int, str]]:
    return ref_emails_ips(content) | ref_keys(content)


def santa_bigcode(content: str) -> set[tuple[int, int, str]]:
    return {(d.start, d.end, d.type) for d in detect_pii(content, rules="bigcode")}


# ----------------------------------------------------------------------------------------------
# Snippets (every address, name and key made up)

AWS_ID, AWS_SECRET = "AKIAH526QP3UM3YEW2SV", "AlIrCRZg1LsKnGO3ciADW18zOl2DFJX1+XwtiQW0"
B64 = "yImuWQ9rXxApsUQ1wU1p8jhVkBkFTTeLr+5ZhOcz"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0ODIxOTA3NzM1IiwibmFtZSI6IlByaXlhIFJhbWFuIiwiaWF0Ijox"
    "NzE1ODcxMTIzfQ.Qz3Dc4YC8wXcg8HNNyNl-PxgL5PmucqEhR9Ico6q90_"
)

SNIPPETS: dict[str, str] = {
    # --- emails
    "mail-headers": (
        'From: Jane Roe <jane.roe@fastmail.fm>\nTo: ops-alerts@orbitfleet.io, "Bo" <bo@x.co.uk>\n'
        "Reply-To: noreply+bounces@mail.kestrel-labs.com\nSubject: weekly report\n\nBody text.\n"
    ),
    "py-docstring-author": '"""Telemetry client.\n\nMaintainer: Jane Roe <jane.roe@fastmail.fm>\n'
    'Requires: httpx@0.27.0, pydantic@2.7.1\n"""\nimport httpx\n',
    "urls": (
        "# docs: https://docs.example.org/a?contact=help@kestrel-labs.com&x=1\n"
        "REPO = 'git@github.com:orbitfleet/ingest.git'\n"
        "FTP = 'ftp://deploy@files.orbitfleet.io/pub'\n"
        "CDN = '<script src=\"https://cdn.jsdelivr.net/npm/chart.js@4.4.0/dist/chart.umd.min.js\"></script>'\n"
        "lib = 'https://unpkg.com/react@latest.min.js'\n"
    ),
    "html": (
        '<footer>\n  <a href="mailto:support@quillpad.app">Support</a> |\n'
        "  <span>press@quillpad.app.</span>\n  <p>(billing@quillpad.app)</p>\n</footer>\n"
    ),
    "dotenv": (
        'ADMIN_EMAIL=admin@corp-mail.io\nSMTP_USER="mailer@corp-mail.io"\nAPP_ENV=production\n'
        "SENTRY_DSN=https://4f1c9a7e@o12345.ingest.sentry.io/998877\n"
    ),
    "json-escaped": '{"text": "write to \\"jdoe@example.org\\" or \\\'ann@example.org\\\'", "n": 3}\n',
    "code-at-signs": (
        "@dataclass\nclass P:\n    w = x@self.weight\n    y = a@b.dot(c)\n"
        "user = 'root@127.0.0.1'\npkg = 'lodash@4.17.21'\n"
    ),
    "unicode-email": "# 作者：李雷<lilei@例子.中国>，联系 hanmeimei@qq.com。\n",
    # --- IP addresses
    "ip-urls": (
        "BASE = 'http://52.14.201.77:8080/v1'\nALT = \"https://[2604:a880:400:d1::7e3:f001]/x\"\n"
        "PEER = '2604:a880:400:d1::7e3:f001'\n"
    ),
    "ip-config": (
        "upstream backend {\n    server 185.199.108.153:443;\n    server 10.0.3.7:443;\n}\n"
        "resolver 8.8.8.8 1.1.1.1;\nallow 34.107.22.191/32;\nallow 52.94.76.0/22;\n"
    ),
    "ip-lists": 'HOSTS = "52.1.2.3,52.1.2.4, 52.1.2.5"\nPAIR = (35.190.27.188)\nARR = [44.55.66.77]\n',
    "ip-versions": (
        'version = "1.2.3.4"\nua = "Chrome/119.0.6045.105"\nrel = "12.10.22.1"\n'
        'w = "3.14.15.92"\n# the dns server below\nns = "5.2.7.9"\n'
    ),
    "ip-window-wrap": '# 1.2.3.4 is the resolver\nx = "9.8.7.6"\n' + "pad = 0\n" * 30 + "# dns\n",
    "ip-slices-v6": (
        "a = xs[1::2]\nb = Foo::Bar\nt = '12:30:45'\nmac = '00:1a:2b:3c:4d:5e'\n"
        "lo = '::1'\nmapped = '::ffff:52.1.9.9'\nll = 'fe80::1ff:fe23:4567:890a%eth0'\n"
        "full = '2001:4860:4860:0:0:0:0:8888'\ndoc = '2001:db8::1'\n"
    ),
    "ip-yaml": "nodes:\n  - 18.202.44.9\n  - 192.168.1.20\n  - 100.64.0.1\nbind: 0.0.0.0\n",
    # --- keys
    "aws": f'import boto3\ns3 = boto3.client("s3",\n    aws_access_key_id="{AWS_ID}",\n'
    f'    aws_secret_access_key="{AWS_SECRET}")\n',
    "providers": (
        'GITHUB = "ghp_Ii5jOy9bKFhJEnwIVPauu4I0VHmE43fhoSjz"\n'
        'SLACK = "xoxb-525997467524-6031814269994-L9OH5t4ox8Dku5bXkpKNYJBl"\n'
        'STRIPE = "sk_live_51HqK2xLmN8pQrS4tUvW6yZ0aBcDeFgHi"\n'
        'SENDGRID = "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"\n'
        'TWILIO = "SK2a6f8c1e4b7d9a0c3e5f7b9d1a3c5e7f"\n'
        'MAILCHIMP = "3e8f1a9c7b2d4f6a8c0e2b4d6f8a1c3e-us14"\n'
        'DISCORD = "MTA4NzY1NDMyMTk4NzY1NDMyMQ.GkP9xQ.abcDEFghiJKLmnoPQRstuVWXyz0123456"\n'
        f'JWT = "{JWT}"\n'
        "//registry.npmjs.org/:_authToken=npm_Q9vT2xLmN8pQrS4tUvW6yZ0aBcDeFgHiJk\n"
        'ART = "AKCp8jQ8x9LmN2pR4sT6vX8zA1cE3gI5kM7oQ9sU1wY3aC5eG7iK9mO1qS3uW5yZ7bD9fH"\n'
        'AZ = "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=lJzRc1YdHaAA2KCNJJ1tkYwF/+mKK6Ygw0NGe170Xu592euJv2wYUtBlV8z+qnlcNQSnIYVTkLWntUO1F8j8rQ==;"\n'
    ),
    "generic-entropy": f"const KEY = '{B64}';\nconst again = '{B64}';\n// prefix{B64}suffix\n",
    "hashes": (
        'md5 = "3a11f590d757dca7eb9afe89850d1ac9"\n'
        'COMMIT = "dcf58694f267a95ebc7b300c338fa11c826a85c9"\n'
        'checksum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"\n'
        "x = 1\n" * 3
    ),
    "hash-line-before": 'digest = sha256(data)\n"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"\n'
    + "y = 2\n" * 60,
    "hash-line-words": (
        'key_bytes = "rR9QABSKPZ0D65wtMdAEqhaOiEW3EfR9"\n'
        'TOKEN = "nSq0qz0TxKTthZS1kZdR7dftVs2Tn12U"  # md5 of the secret\n'
        'sig_md5 = "Qz3Dc4YC8wXcg8HNNyNl9PxgL5Pmucq1"\n' + "z = 0\n" * 60
    ),
    "uuids": 'ID = "3f0c9c8e-5a4b-4c7d-9e2f-1a2b3c4d5e6f"\nREQ = "b7e1f2a3-4c5d-4e6f-8a9b-0c1d2e3f4a5b"\n',
    "lockfile-integrity": (
        '{\n  "name": "app",\n  "lockfileVersion": 3,\n  "packages": {\n    "node_modules/ms": {\n'
        '      "version": "2.1.3",\n      "resolved": "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz",\n'
        '      "integrity": "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA=="\n'
        "    }\n  }\n}\n"
    ),
    "yarn-lock": (
        'ms@2.1.3:\n  version "2.1.3"\n  resolved "https://registry.yarnpkg.com/ms/-/ms-2.1.3.tgz#574c8138ce1d2b5861f0b44579dbadd60c6615b2"\n'
        "  integrity sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==\n"
    ),
    "dotenv-ini-fallback": (
        "DATABASE_URL=postgres://app@db.internal:5432/app\n"
        "API_KEY=GRBxXGxDXs7P+lUZzhYIR4M7obeJ+rflk6kA7USU\nDEBUG=false\n"
    ),
    "ini-with-section": (
        "[default]\naws_access_key_id = AKIADIQITEXQC2N5D6QT\n"
        "aws_secret_access_key = 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\nregion = us-east-2\n"
    ),
    "crlf": 'token = "nSq0qz0TxKTthZS1kZdR7dftVs2Tn12UyIgdh7ajDmVS8101"\r\nhost = "52.14.201.78"\r\n',
    "hash-heavy": f'API_KEY = "{B64}"\nw = x.shape\nshared = 1\n',
    "english-strings": 'MSG = "TheQuickBrownFoxJumpsOverTheLazyDogAndRunsAway"\nSEQ = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"\n',
}


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_agrees_with_the_reference_span_for_span(name: str) -> None:
    text = SNIPPETS[name]
    assert santa_bigcode(text) == reference(text)


def test_the_snippets_exercise_every_type() -> None:
    # Not a vacuous agreement: the reference finds plenty of each type here, and misses some.
    found = [s for text in SNIPPETS.values() for s in reference(text)]
    counts = {t: sum(1 for s in found if s[2] == t) for t in ("email", "ip", "key")}
    assert counts["email"] >= 12 and counts["ip"] >= 10 and counts["key"] >= 10, counts


# Pieces for generated snippets: each joins a few at random with random delimiters, so the
# regexes meet their delimiters, shared delimiters and look-arounds in combinations no one wrote.
PIECES = [
    "jane.roe@fastmail.fm", "ops-alerts@orbitfleet.io", "a.b-c@d-e.co.uk", "x@self.weight", "pkg@1.2.3",
    "NAME=bo@x.org", "chart.js@latest.min.js", "git@github.com:o/r.git", "u@例子.中国", "t@xn--bcher-kva.example",
    "52.14.201.77", "185.199.108.153", "10.0.3.7", "8.8.8.8", "1.2.3.4", "12.10.22.1", "256.1.1.1",
    "2604:a880:400:d1::7e3:f001", "::1", "fe80::1%eth0", "::ffff:52.1.9.9", "xs[1::2]", "00:1a:2b:3c:4d:5e",
    "52.94.76.0/22", "v1.2.3.4.5", "dns", "server", AWS_ID, f'"{AWS_SECRET}"', f"'{B64}'", B64,
    '"3a11f590d757dca7eb9afe89850d1ac9"', "sha256", "hash", '"3f0c9c8e-5a4b-4c7d-9e2f-1a2b3c4d5e6f"',
    "ghp_Ii5jOy9bKFhJEnwIVPauu4I0VHmE43fhoSjz", "key =", "API_KEY=", "[section]", "#", "// ", "<", ">",
]  # fmt: skip
JOINERS = [" ", ", ", ",", "\n", "\r\n", "(", ")", "[", "]", '"', "'", ":", ";", "/", "=", " = ", '\\"', "\t", "."]


@pytest.mark.parametrize("seed", range(8))
def test_agrees_on_generated_snippets(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        parts = [rng.choice(PIECES) + rng.choice(JOINERS) for _ in range(rng.randint(2, 14))]
        text = rng.choice(["", "x ", "[global]\n", "# dns\n"]) + "".join(parts)
        assert santa_bigcode(text) == reference(text), text


# Lines of .env / ini / code files: detect-secrets re-reads a file with no finding as ini, and
# whether that parses decides whether unquoted values are scanned at all.
INI_LINES = [
    "API_KEY=GRBxXGxDXs7P+lUZzhYIR4M7obeJ+rflk6kA7USU", "token: nSq0qz0TxKTthZS1kZdR7dftVs2Tn12UyIgdh7ajDmVS8101",
    "DEBUG=false", "# comment", "; semi", "  continued rR9QABSKPZ0D65wtMdAEqhaOiEW3EfR9", "[section]", "[x", "[1, 2]",
    "}", "import os", "", "   ", "\ufeffX=1", "PATH=%(home)s/bin", "home = /usr", "= novalue", "KEY", "a:b",
    f'pw = "{B64}"', "\tindented=1", "url = http://a:b@c.io", "DEBUG=true",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_agrees_on_generated_config_files(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(30):
        text = "\n".join(rng.choice(INI_LINES) for _ in range(rng.randint(1, 8))) + rng.choice(["", "\n", "\r\n"])
        assert santa_bigcode(text) == reference(text), text


def values(text: str, kind: str) -> list[str]:
    return [text[d.start : d.end] for d in detect_pii(text, rules="bigcode") if d.type == kind]


def test_quirks_that_are_the_papers_data() -> None:
    # A local part may swallow `NAME=` at the start of a line.
    assert values("ADMIN_EMAIL=admin@corp-mail.io\n", "email") == ["ADMIN_EMAIL=admin@corp-mail.io"]
    # Two addresses sharing one comma: the first consumes it, the second is not found.
    assert values('H = "52.1.2.3,52.1.2.4"\n', "ip") == ["52.1.2.3"]
    # A ")" is no right delimiter.
    assert values("PAIR = (35.190.27.188)\n", "ip") == []
    # content[start-100:end+100] with start < 100 wraps to the end of the file: "dns" right
    # after an early version-shaped address is not seen, "dns" in the wrapped window is.
    near = 'ns = "5.2.7.9"  # dns server\n' + "x = 0\n" * 20
    wrapped = 'ns = "5.2.7.9"\n' + "x = 0\n" * 9 + "# dns\n" + "y = 1\n" * 12
    assert values(near, "ip") == [] and values(wrapped, "ip") == ["5.2.7.9"]
    assert santa_bigcode(near) == reference(near) and santa_bigcode(wrapped) == reference(wrapped)
    assert [text[d.start : d.end] for text in (near,) for d in detect_pii(text, types=["ip"])] == ["5.2.7.9"]
    # Only what ipaddress calls is_private is skipped (shared CGNAT space, multicast and 0.0.0.0
    # are kept or not as this Python's ipaddress says, for both).
    for value in ("100.64.0.1", "0.0.0.0", "224.0.0.251"):
        assert (values(f'a = "{value}"\n', "ip") == []) == ipaddress.ip_address(value).is_private
    # An unquoted .env value is found through detect-secrets' ini fallback.
    assert values("API_KEY=GRBxXGxDXs7P+lUZzhYIR4M7obeJ+rflk6kA7USU\nDEBUG=false\n", "key") == [
        "GRBxXGxDXs7P+lUZzhYIR4M7obeJ+rflk6kA7USU"
    ]
    # A kept value is reported wherever it occurs, inside longer tokens too.
    assert values(f"k = '{B64}'\n// x{B64}y\n", "key") == [B64, B64]


def test_a_key_at_offset_zero() -> None:
    # The reference's hash-line test reads the last line *before* the value; at offset 0 there is
    # none and it raises IndexError (its job would stop). santa reads the empty text instead.
    text = "xoxb-525997467524-6031814269994-L9OH5t4ox8Dku5bXkpKNYJBl is the bot token\n"
    with pytest.raises(IndexError):
        ref_keys(text)
    assert values(text, "key") == [text.split()[0]]
    assert ref_keys("# " + text) == santa_bigcode("# " + text) != set()


def test_values_come_out_as_the_plugins_report_them() -> None:
    # Stripe's regex takes 24 characters after the prefix (and, quoted, the Base64 plugin the
    # whole string: two overlapping spans); GitHub's reports just "ghp" — which the model calls
    # gibberish, so every "ghp" of the file is a key; the JWT plugin stops before the signature.
    stripe = "sk_live_51HqK2xLmN8pQrS4tUvW6yZ0aBcDeFgHi"
    assert values(f"STRIPE = {stripe}\n", "key") == [stripe[:32]]
    assert values(f'STRIPE = "{stripe}"\n', "key") == [stripe[:32], stripe]
    assert values("T = ghp_Ii5jOy9bKFhJEnwIVPauu4I0VHmE43fhoSjz  # ghp tokens\n", "key") == ["ghp", "ghp"]
    assert values(f'JWT = "{JWT}"\n', "key") == [JWT[: JWT.rindex(".") + 1]]


def test_the_step_redacts_overlapping_reference_spans_once() -> None:
    # The reference reports a kept key value at every occurrence, also inside an email's local
    # part; the step replaces each region once.
    text = f'K = "{B64}"\nmail = "{B64}@mail.example.com"\n'
    spans = detect_pii(text, rules="bigcode")
    assert any(a.end > b.start for a, b in zip(spans, spans[1:]))  # the key inside the email
    assert {(d.start, d.end, d.type) for d in spans} == reference(text)
    decision = PIIRedaction(rules="bigcode", mode="tags").redact_record({"content": text})
    assert decision.content == 'K = "<KEY>"\nmail = "<EMAIL>"\n'
