"""The "comments" data variant: keep files whose comment characters make up a ratio strictly
between ``min_ratio`` and ``max_ratio`` (0.01 and 0.8) of the file.

What counts, as in BigCode's ``text_extraction.py``:

* Python: docstrings of the module, classes and functions (``ast.get_docstring``, cleaned and
  joined by newlines) plus ``#`` comments (``tokenize``) with the ``#`` characters removed;
  ratio = len((docstrings + "\\n" + comments).strip()) / len(file).
* Java, JavaScript: the characters of pygments' ``Comment.Single`` and ``Comment.Multiline``
  tokens (delimiters included) / len(file).

``method: reference`` runs exactly those libraries; they lex at ~1-3 MB/s (pygments' JavaScript
lexer ~0.5 MB/s), slower than the rest of the pipeline together. ``method: fast`` (the default)
computes the same quantities with one compiled regular expression per language that recognises
strings, comments and (for Python) the positions where a docstring can stand; its ratios and
decisions are checked against the reference on real files in tests/test_filters.py.

A Python file that does not parse (Python 2, a syntax error) is not given a ratio of 0 as in the
original: the reference method falls back to the regex lexer for what ``ast`` or ``tokenize``
could not read and says so in the decision's details (``note``); the fast method never parses.
"""

from __future__ import annotations

import bisect
import inspect
import io
import re
import tokenize
import warnings
from collections.abc import Iterator
from functools import cache
from typing import Any

import numpy as np

from santa.errors import SantaError
from santa.filters.base import Decision, Record, RecordStep

METHODS = ("fast", "reference")

# --------------------------------------------------------------------------------------------
# Python, fast: a lexer of the tokens that matter for comments and docstrings.

_PY_TOKENS = re.compile(
    # String bodies as "unrolled loops" (a run of ordinary characters, then one escape or lone
    # quote, repeated): the regex engine then runs over text in C instead of trying an
    # alternation at every character.
    r"""
    (?P<s> \"\"\"[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*(?:\"\"\"|\Z)
         | '''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*(?:'''|\Z)
         | "[^"\\\r\n]*(?:\\.[^"\\\r\n]*)*(?:"|(?=[\r\n])|\Z)
         | '[^'\\\r\n]*(?:\\.[^'\\\r\n]*)*(?:'|(?=[\r\n])|\Z) )
    | (?P<c>\#[^\r\n]*)
    | (?P<k>\\\r?\n)
    | (?P<n>(?:(?:\r?\n|\r)[ \t\f]*)+)
    """,
    re.X | re.S,
)
# BigCode's node types: modules, classes and functions; ``async def`` is not among them.
_HEADER = re.compile(r"(?:def|class)\b")
_PREFIX = re.compile(r"[rRuU]{1,2}|[bBfF][rR]?|[rR][bBfF]")
# After a docstring candidate only a comment, a semicolon or the end of the line may follow.
_STATEMENT_END = re.compile(r"[ \t]*(?:[#;\r\n]|\\\r?\n|\Z)")
_QUOTES = ('"""', "'''", '"', "'")


def _string_value(token: str) -> str:
    for q in _QUOTES:
        if token.startswith(q):
            body = token[len(q) :]
            return body[: -len(q)] if body.endswith(q) else body
    return token


def _ends_with_colon(content: str, start: int, end: int) -> bool:
    """Is the last non-blank character of ``content[start:end]`` a ':'?"""
    j = end - 1
    while j >= start and content[j] in " \t\f":
        j -= 1
    return j >= start and content[j] == ":"


# Characters that can start a token of _PY_TOKENS. Jumping over the others with a character-class
# run and then matching the token where it starts is ~5x faster than finditer, which tries the
# whole pattern at every position (it has no literal prefix to search for).
_PY_SKIP_LINES = re.compile(r"""[^"'#\\\r\n]*""")
# Without line ends: python_text_fast sees strings, comments and backslash continuations only.
_PY_SKIP = re.compile(r"""[^"'#\\]*""")


def _py_tokens(content: str, pos: int, skipper: re.Pattern[str] | None = None) -> Iterator[re.Match[str]]:
    skip, token, n = (skipper or _PY_SKIP).match, _PY_TOKENS.match, len(content)
    while True:
        pos = skip(content, pos).end()  # type: ignore[union-attr]
        if pos >= n:
            return
        m = token(content, pos)
        if m is None:  # a backslash not before a line end
            pos += 1
            continue
        yield m
        pos = m.end()


def _bracket_balance(content: str) -> np.ndarray:
    """balance[i] = opening minus closing brackets in ``content[:i]`` (strings and comments
    included; the lexer subtracts theirs)."""
    codes = np.frombuffer(content.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    step = _BRACKETS[np.minimum(codes, 127)] * (codes < 128)
    balance = np.zeros(len(codes) + 1, dtype=np.int64)
    np.cumsum(step, out=balance[1:])
    return balance


_BRACKETS = np.zeros(128, dtype=np.int64)
_BRACKETS[[ord(c) for c in "([{"]] = 1
_BRACKETS[[ord(c) for c in ")]}"]] = -1


def _python_text_linewise(content: str) -> tuple[list[str], list[str]]:
    """:func:`python_text_fast` by a state machine over every token, line ends included: the
    definition of what counts, and the fallback for the few files python_text_fast leaves to it
    (a string at the start of a backslash-continued line)."""
    docs: list[str] = []
    comments: list[str] = []
    balance = _bracket_balance(content)
    hidden = 0  # bracket balance inside strings and comments seen so far
    at_start = True  # nothing significant yet on this logical line
    header = False  # this logical line starts with def/class
    doc_allowed = True  # the next statement may be a docstring (module start, after a header)
    line_start = 0  # where this logical line's text starts
    code_end = -1  # start of this line's comment, i.e. the end of its code (-1: no comment)
    prev_end = len(content) - len(content.lstrip(" \t\f"))
    for m in _py_tokens(content, prev_end, _PY_SKIP_LINES):
        start = m.start()
        kind = m.lastgroup
        prefix = ""
        if start > prev_end:
            if kind == "s" and start - prev_end <= 2 and _PREFIX.fullmatch(content, prev_end, start):
                prefix = content[prev_end:start]
            elif at_start:
                header = _HEADER.match(content, prev_end) is not None
                at_start = False
        prev_end = m.end()
        if kind == "s":
            if (
                (
                    at_start
                    and doc_allowed
                    or header
                    and balance.item(start) - hidden <= 0
                    and _ends_with_colon(content, line_start, start)
                )
                and not set(prefix.lower()) & {"f", "b"}
                and _STATEMENT_END.match(content, prev_end)
            ):
                value = _string_value(m.group())
                if value.strip():
                    docs.append(inspect.cleandoc(value))
            at_start = False
            hidden += balance.item(prev_end) - balance.item(start)
        elif kind == "c":
            comments.append(m.group())
            code_end = start
            hidden += balance.item(prev_end) - balance.item(start)
        elif kind == "n":
            if balance.item(start) - hidden <= 0:
                if not at_start:
                    doc_allowed = header and _ends_with_colon(content, line_start, code_end if code_end >= 0 else start)
                at_start, header = True, False
                line_start = prev_end
            code_end = -1
    return docs, comments


# One match per token: the run of characters that cannot start one, then the token (a string, a
# comment or a backslash continuation; a lone backslash is skipped), so that finditer does the
# whole loop in C. Possessive: the skip never backtracks; \Z ends the text in one match.
_PY_SKIP_TOKEN = re.compile(
    r"""(?:[^"'#\\]++|\\(?!\r?\n))*+(?:""" + _PY_TOKENS.pattern[: _PY_TOKENS.pattern.index("| (?P<n>")] + r"""|\Z)""",
    re.X | re.S,
)
_BRACKET_STEP = np.zeros(256, dtype=np.int8)
_BRACKET_STEP[[ord(c) for c in "([{"]] = 1
_BRACKET_STEP[[ord(c) for c in ")]}"]] = -1
_BLANK = " \t\f"
_LINE_BLANK = " \t\f\r\n"


class _PyLines:
    """Line structure of a Python file around given positions, for python_text_fast: physical
    line starts, logical line starts (lines joined inside brackets, strings and after a
    backslash), bracket depth outside strings and comments. Computed on demand: most strings
    are never asked about."""

    def __init__(self, content: str, starts: list[int], ends: list[int], k_ends: set[int]) -> None:
        self.content, self.starts, self.ends, self.k_ends = content, starts, ends, k_ends
        self.has_cr = "\r" in content
        self._balance: np.ndarray | None = None
        self._hidden: np.ndarray | None = None

    def depth(self, pos: int) -> int:
        """Open brackets before ``pos``, those inside strings and comments not counted (``pos``
        not inside one)."""
        if self._balance is None:
            c = self.content
            if c.isascii():
                codes = np.frombuffer(c.encode("ascii"), dtype=np.uint8)
            else:
                codes = np.minimum(np.frombuffer(c.encode("utf-32-le", "surrogatepass"), dtype=np.uint32), 255)
            balance = np.zeros(len(codes) + 1, dtype=np.int32)
            np.cumsum(_BRACKET_STEP[codes], out=balance[1:])
            inside = balance[np.asarray(self.ends)] - balance[np.asarray(self.starts)]
            self._hidden = np.concatenate(([0], np.cumsum(inside)))
            self._balance = balance
        assert self._hidden is not None
        return int(self._balance[pos]) - int(self._hidden[bisect.bisect_right(self.ends, pos)])

    def line_start(self, pos: int) -> int:
        """Start of the physical line holding ``pos`` (a position in its text, or its line end)."""
        c = self.content
        nl = c.rfind("\n", 0, pos)
        if self.has_cr:
            nl = max(nl, c.rfind("\r", nl + 1, pos))
        return nl + 1

    def _break_start(self, line: int) -> int:
        """Where the line break before the physical line starting at ``line`` (> 0) starts."""
        return line - 2 if line >= 2 and self.content[line - 2 : line] == "\r\n" else line - 1

    def _in_string(self, pos: int) -> int | None:
        i = bisect.bisect_right(self.starts, pos) - 1
        return self.starts[i] if i >= 0 and self.ends[i] > pos else None

    def logical_start(self, line: int) -> int:
        """Start of the first physical line of the logical line the physical line ``line`` is in."""
        while line > 0:
            brk = self._break_start(line)
            inside = self._in_string(brk)
            if inside is not None:
                line = self.line_start(inside)
            elif line in self.k_ends or self.depth(line) > 0:
                line = self.line_start(brk)
            else:
                break
        return line

    def code_start(self, line: int) -> int:
        """Where the code of a logical line starting at physical line ``line`` starts: after the
        indentation and any backslash continuations right after it (which are not code)."""
        c, i, n = self.content, line, len(self.content)
        while i < n and c[i] in _BLANK:
            i += 1
        while c.startswith("\\", i) and (i + 2 in self.k_ends or i + 3 in self.k_ends):
            i += 2 if i + 2 in self.k_ends else 3
        return i

    def ends_with_colon(self, start: int, end: int) -> bool:
        """Is the last non-blank character of ``content[start:end]`` (one physical line) a ':'?"""
        c, j = self.content, end - 1
        while j >= start and c[j] in _BLANK:
            j -= 1
        return j >= start and c[j] == ":"

    def doc_allowed(self, line: int) -> bool:
        """May a docstring start the logical line beginning at physical line ``line``: is the
        last logical line before it with code (not blank, not only a comment) a ``def``/``class``
        header ending in ':', or is there none (module start)?"""
        c = self.content
        while True:
            q = line - 1
            while q >= 0 and c[q] in _LINE_BLANK:
                q -= 1
            if q < 0:
                return True
            first = self.logical_start(self.line_start(q))
            code = self.code_start(first)
            i = bisect.bisect_left(self.starts, code)
            if code > q or (i < len(self.starts) and self.starts[i] == code and c[code] == "#"):
                line = first  # only a comment (or continuations): look further up
                continue
            # The end of its code on its last physical line: before its comment (which runs to the
            # line end, so holds q), or the line end.
            last = self.line_start(q)
            j = bisect.bisect_right(self.starts, q) - 1
            end = self.starts[j] if j >= 0 and self.ends[j] > q and c[self.starts[j]] == "#" else q + 1
            return _HEADER.match(c, code) is not None and self.ends_with_colon(max(code, last), end)


def python_text_fast(content: str) -> tuple[list[str], list[str]]:
    """(docstrings cleaned as ``ast.get_docstring`` does, comments) of Python source, by regex.

    A docstring is a plain (not f- or b-) string that is a whole statement and the first one of
    the module or of a ``def``/``class`` body (on the header's line or the next logical line).
    The regex engine skips everything but strings, comments and backslash continuations; only
    the few strings that stand alone at the start of a line (or after a header's ':') are
    then placed in their logical line (:class:`_PyLines`). Same results as the state machine
    over every token of :func:`_python_text_linewise`, ~3x faster.
    """
    docs: list[str] = []
    comments: list[str] = []
    strings: list[tuple[int, int]] = []
    starts: list[int] = []
    ends: list[int] = []
    k_ends: set[int] = set()
    for m in _PY_SKIP_TOKEN.finditer(content):
        kind = m.lastgroup
        if kind == "s":
            span = m.span("s")
            strings.append(span)
        elif kind == "c":
            span = m.span("c")
            comments.append(content[span[0] : span[1]])
        elif kind == "k":
            k_ends.add(m.end())
            continue
        else:
            continue
        starts.append(span[0])
        ends.append(span[1])
    lines: _PyLines | None = None
    for start, end in strings:
        if not _STATEMENT_END.match(content, end):
            continue
        lines = lines or _PyLines(content, starts, ends, k_ends)
        line = lines.line_start(start)
        head = content[line:start]
        gap = head if line in k_ends else head.lstrip(_BLANK)
        if not gap or (len(gap) <= 2 and _PREFIX.fullmatch(gap)):
            if line in k_ends:
                return _python_text_linewise(content)  # after a backslash, at_start depends on more
            # The string starts a logical line (unless brackets are open).
            if (line == 0 or lines.depth(line) <= 0) and not set(gap.lower()) & {"f", "b"} and lines.doc_allowed(line):
                value = _string_value(content[start:end])
                if value.strip():
                    docs.append(inspect.cleandoc(value))
            continue
        # `def f(): "doc"`: after the header's colon, on its line.
        if lines.ends_with_colon(line, start) and lines.depth(start) <= 0:
            first = lines.logical_start(line)
            code = lines.code_start(first)
            if _HEADER.match(content, code) is not None and lines.ends_with_colon(max(code, line), start):
                value = _string_value(content[start:end])
                if value.strip():
                    docs.append(inspect.cleandoc(value))
    return docs, comments


def _python_ratio(docs: list[str], comments: list[str], length: int) -> float:
    # BigCode joins the docstrings with newlines and untokenizes the comments (concatenated),
    # removes every "#", then strips the whole text.
    text = "\n".join(docs) + "\n" + "".join(comments).replace("#", "")
    return len(text.strip()) / length


# --------------------------------------------------------------------------------------------
# Python, reference: ast + tokenize (BigCode's code), with the fast lexer as the fallback.


def python_text_reference(content: str) -> tuple[list[str], list[str], str | None]:
    """(docstrings, comments, note): ``note`` says what could not be parsed and how it was read."""
    import ast

    notes = []
    docs: list[str] | None = None
    comments: list[str] | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for invalid escapes in old code
            tree = ast.parse(content)
        # As BigCode: modules, classes and (non-async) functions.
        docs = [
            d
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and (d := ast.get_docstring(node))
        ]
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        notes.append(f"ast: {type(exc).__name__} (line {getattr(exc, 'lineno', '?')}); docstrings by regex lexer")
    try:
        comments = [
            tok.string
            for tok in tokenize.generate_tokens(io.StringIO(content).readline)
            if tok.type == tokenize.COMMENT
        ]
    except (tokenize.TokenError, SyntaxError, ValueError, RecursionError) as exc:
        notes.append(f"tokenize: {type(exc).__name__}; comments by regex lexer")
    if docs is None or comments is None:
        fast_docs, fast_comments = python_text_fast(content)
        docs = fast_docs if docs is None else docs
        comments = fast_comments if comments is None else comments
    return docs, comments, "; ".join(notes) or None


# --------------------------------------------------------------------------------------------
# Java and JavaScript

_C_TOKENS = {
    "Java": re.compile(
        r"""
        (?P<c>//[^\r\n]*|/\*[^*]*(?:\*+[^*/][^*]*)*(?:\*+/|\Z))
        | \"\"\"[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*(?:\"\"\"|\Z)
        | "[^"\\\r\n]*(?:\\.[^"\\\r\n]*)*"?
        | '[^'\\\r\n]*(?:\\.[^'\\\r\n]*)*'?
        """,
        re.X | re.S,
    ),
    "JavaScript": re.compile(
        r"""
        (?P<c>//[^\r\n]*|/\*[^*]*(?:\*+[^*/][^*]*)*(?:\*+/|\Z))
        | "[^"\\\r\n]*(?:\\.[^"\\\r\n]*)*"?
        | '[^'\\\r\n]*(?:\\.[^'\\\r\n]*)*'?
        | `[^`\\]*(?:\\.[^`\\]*)*`?
        | (?P<slash>/)
        """,
        re.X | re.S,
    ),
}
# A "/" starts a regular expression literal where an operand is expected (pygments' rule too):
# at the start, after an operator or an opening bracket, or after these keywords.
_JS_REGEX = re.compile(r"/(?:[^/\\\r\n\[]|\\.|\[(?:[^\]\\\r\n]|\\.)*\])+/[A-Za-z]*")
_JS_OPERAND_BEFORE = frozenset("(,=:[!&|?{};+-*%<>~^")
_JS_KEYWORD_BEFORE = re.compile(r"(?:return|typeof|case|do|else|in|of|new|delete|void|throw)\Z")


def _js_regex_allowed(content: str, pos: int) -> bool:
    j = pos - 1
    while j >= 0 and content[j] in " \t\r\n":
        j -= 1
    if j < 0 or content[j] in _JS_OPERAND_BEFORE:
        return True
    return content[j].isalpha() and _JS_KEYWORD_BEFORE.search(content, max(0, j - 9), j + 1) is not None


_C_SKIP = {"Java": re.compile(r"""[^/"']*"""), "JavaScript": re.compile(r"""[^/"'`]*""")}


# Java needs no context for a "/", so one finditer does the loop in C (as for Python).
_JAVA_SKIP_TOKEN = re.compile(r"""(?:[^/"']++|/(?![/*]))*+(?:""" + _C_TOKENS["Java"].pattern + r"""|\Z)""", re.X | re.S)


def c_like_comment_chars_fast(content: str, lang: str) -> int:
    """Characters inside ``//`` and ``/* */`` comments (delimiters included), skipping strings,
    template literals and JavaScript regular expression literals."""
    if lang == "Java":
        total = 0
        for m in _JAVA_SKIP_TOKEN.finditer(content):
            if m.lastgroup == "c":
                a, b = m.span("c")
                total += b - a
        return total
    skip, token, n = _C_SKIP[lang].match, _C_TOKENS[lang].match, len(content)
    total = 0
    pos = 0
    while True:
        pos = skip(content, pos).end()  # type: ignore[union-attr]  # a `[^...]*` pattern always matches
        if pos >= n:
            return total
        hit = token(content, pos)
        if hit is None:  # a division sign in Java
            pos += 1
            continue
        kind = hit.lastgroup
        if kind == "c":
            total += hit.end() - hit.start()
        elif kind == "slash" and _js_regex_allowed(content, pos):
            literal = _JS_REGEX.match(content, pos)
            if literal is not None:
                pos = literal.end()
                continue
        pos = hit.end()


_PYGMENTS_NAMES = {"Java": "java", "JavaScript": "javascript"}


@cache
def _pygments_lexer(lang: str) -> Any:
    from pygments.lexers import get_lexer_by_name

    # stripnl=False etc.: lex the text exactly as given, so lengths add up to the file's.
    return get_lexer_by_name(_PYGMENTS_NAMES[lang], stripnl=False, stripall=False, ensurenl=False)


def c_like_comment_chars_reference(content: str, lang: str) -> int:
    from pygments.token import Comment

    wanted = (Comment.Single, Comment.Multiline)
    return sum(len(value) for tok, value in _pygments_lexer(lang).get_tokens(content) if tok in wanted)


# --------------------------------------------------------------------------------------------


def comment_ratio(content: str, lang: str, method: str = "fast") -> tuple[float | None, str | None]:
    """(ratio, note) for a file; ratio None for a language this step cannot measure."""
    if not content:
        return 0.0, None
    if lang == "Python":
        if method == "reference":
            docs, comments, note = python_text_reference(content)
            return _python_ratio(docs, comments, len(content)), note
        docs, comments = python_text_fast(content)
        return _python_ratio(docs, comments, len(content)), None
    if lang in _C_TOKENS:
        if method == "reference":
            return c_like_comment_chars_reference(content, lang) / len(content), None
        return c_like_comment_chars_fast(content, lang) / len(content), None
    return None, None


class CommentRatio(RecordStep):
    stat_label = "comment characters / characters"

    def __init__(
        self, min_ratio: float = 0.01, max_ratio: float = 0.8, method: str = "fast", other_languages: str = "keep"
    ) -> None:
        if method not in METHODS:
            raise SantaError(
                f"comments: method must be one of {list(METHODS)}, got {method!r} (pipeline.params.comments.method)"
            )
        if not 0 <= min_ratio < max_ratio <= 1:
            raise SantaError(f"comments: need 0 <= min_ratio < max_ratio <= 1, got {min_ratio}, {max_ratio}")
        if other_languages not in ("keep", "drop"):
            raise SantaError(f"comments: other_languages must be keep or drop, got {other_languages!r}")
        self.min_ratio, self.max_ratio = float(min_ratio), float(max_ratio)
        self.method, self.other_languages = method, other_languages

    def params(self) -> dict[str, Any]:
        return {
            "min_ratio": self.min_ratio,
            "max_ratio": self.max_ratio,
            "method": self.method,
            "other_languages": self.other_languages,
        }

    def decide(self, content: str, lang: str) -> Decision:
        ratio, note = comment_ratio(content, lang, self.method)
        details = {"note": note} if note else None
        if ratio is None:
            keep = self.other_languages == "keep"
            return Decision(
                keep,
                None,
                "" if keep else f"comment ratio not measured for {lang}",
                details={"note": f"comment ratio not measured for {lang}: {self.other_languages}"},
            )
        r = round(ratio, 5)
        if ratio <= self.min_ratio:
            return Decision(False, r, f"comment ratio {ratio:.4f} <= {self.min_ratio:g}", details=details)
        if ratio >= self.max_ratio:
            return Decision(False, r, f"comment ratio {ratio:.4f} >= {self.max_ratio:g}", details=details)
        return Decision(True, r, details=details)

    def process(self, batch: list[Record]) -> list[Decision]:
        return [self.decide(rec["content"], rec.get("lang") or "") for rec in batch]
