"""The embedded demo corpus (records are read with :mod:`santa.data.records`).

The demo corpus is built from source code that is already on the machine, so `make demo` needs no
network: the Python standard library (always present), a JDK's ``lib/src.zip`` and the JavaScript
of the npm that ships with node, where those exist. Records carry The Stack's field names so every
later stage reads the demo and the real corpus the same way.

Output layout of :func:`build_demo_corpus` (one gzip JSON Lines file per language and split)::

    out_dir/
      manifest.json                 parameters, sources found/absent, per-language counts
      train/python.jsonl.gz         train/java.jsonl.gz   train/javascript.jsonl.gz
      val/python.jsonl.gz           val/java.jsonl.gz     val/javascript.jsonl.gz

A language whose source is absent has no files. Read a split with ``read_records(out_dir / "train")``.
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import io
import json
import os
import re
import secrets
import shutil
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from santa.data.records import LANGUAGES, CorpusError, stable_unit, stack_record

__all__ = [
    "DEMO_MAX_FILES_PER_LANG",
    "LocalSource",
    "LanguageStats",
    "CorpusManifest",
    "find_local_sources",
    "build_demo_corpus",
    "manifest_table",
    "print_manifest",
]


_SLUG = {"Python": "python", "Java": "java", "JavaScript": "javascript"}

# 1,000 files per language is ~31 MB with Python 3.11, JDK 25 and npm 11 (13 + 13 + 5 MB, ~9 M
# tokens with an 8k BPE): enough text for a small tokenizer, small enough to train on CPU.
DEMO_MAX_FILES_PER_LANG = 1000

# A line this long is a bundle, a minified build or an embedded blob (npm ships wasm as base64),
# not code anyone wrote. The pipeline's own max-line-length filter (1,000) is stricter on purpose:
# this only keeps obvious machine output out of the demo so that filter has realistic work left.
_MINIFIED_LINE_CHARS = 5000

MANIFEST = "manifest.json"
_FORMAT = "santa-demo-corpus/1"


# --------------------------------------------------------------------------------------------
# Sources on this machine


@dataclass(frozen=True)
class LocalSource:
    """A tree of source files on disk (``kind="dir"``), inside a zip (``"zip"``), or a note that
    a language's usual source is missing here (``"absent"``, ``location=None``)."""

    lang: str
    kind: str
    location: str | None
    description: str
    # max_stars_repo_name of every record from this source, e.g. "local/python-stdlib-3.11".
    repo: str = ""
    # fnmatch patterns on the path within the source ("*" crosses "/").
    exclude: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return self.kind != "absent" and self.location is not None

    def identity(self) -> dict[str, Any]:
        """What decides the corpus content: compared to reuse an existing build."""
        return {
            "lang": self.lang,
            "kind": self.kind,
            "location": self.location,
            "repo": self.repo,
            "exclude": list(self.exclude),
        }


def _python_stdlib() -> LocalSource:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if not (stdlib / "os.py").is_file():
        raise FileNotFoundError(
            f"no Python standard library at {stdlib} (sysconfig's 'stdlib' path; os.py is missing): "
            "the demo corpus needs it. Is this a stripped Python build?"
        )
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return LocalSource(
        lang="Python",
        kind="dir",
        location=str(stdlib),
        description=f"Python {version} standard library",
        repo=f"local/python-stdlib-{version}",
        # site-packages is third-party code; test/ and lib2to3's tests hold deliberately broken
        # files and Python 2 fixtures; _sysconfigdata and config-* are generated per machine.
        exclude=(
            "site-packages/*",
            "dist-packages/*",
            "test/*",
            "lib2to3/tests/*",
            "*__pycache__/*",
            "config-*/*",
            "_sysconfigdata_*",
        ),
    )


def _java_version(home: Path) -> tuple[int, ...]:
    text = ""
    try:
        text = (home / "release").read_text(errors="replace")
    except OSError:
        pass
    m = re.search(r'^JAVA_VERSION="([^"]+)"', text, re.M)
    raw = m.group(1) if m else home.name
    numbers = [int(n) for n in re.findall(r"\d+", raw)]
    if numbers[:2] == [1, 8]:  # JDK 8 calls itself 1.8.0_xxx
        numbers = numbers[1:]
    return tuple(numbers) or (0,)


def _jdk_homes() -> list[Path]:
    homes: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    for exe in ("javac", "java"):
        found = shutil.which(exe)
        if found:
            bin_dir = Path(os.path.realpath(found)).parent
            homes += [bin_dir.parent, bin_dir.parent.parent]  # JDK 8: <home>/jre/bin/java
    for pattern in (
        "/usr/lib/jvm/*",
        "/usr/java/*",
        "/opt/java/*",
        "/Library/Java/JavaVirtualMachines/*/Contents/Home",
    ):
        homes += sorted(Path(p) for p in glob.glob(pattern))
    return homes


def _jdk_source() -> LocalSource:
    best: tuple[tuple[int, ...], Path, Path] | None = None
    seen: set[str] = set()
    for home in _jdk_homes():
        for candidate in (home / "lib" / "src.zip", home / "src.zip"):
            real = os.path.realpath(candidate)
            # Debian's openjdk links lib/src.zip to a file of a package that may not be installed.
            if real in seen or not os.path.isfile(real):
                continue
            seen.add(real)
            version = _java_version(Path(os.path.realpath(home)))
            if best is None or version > best[0]:
                best = (version, Path(os.path.realpath(home)), Path(real))
    if best is None:
        return LocalSource(
            "Java",
            "absent",
            None,
            "no JDK with lib/src.zip ($JAVA_HOME, javac/java on PATH, /usr/lib/jvm/*); "
            "install a JDK's source package (e.g. openjdk-17-source) to add Java",
        )
    version, home, zip_path = best
    v = ".".join(map(str, version))
    return LocalSource(
        lang="Java",
        kind="zip",
        location=str(zip_path),
        description=f"JDK {v} sources ({home})",
        repo=f"local/jdk-{v}",
    )


def _npm_dirs() -> list[Path]:
    dirs: list[Path] = []
    for exe in ("node", "nodejs"):
        found = shutil.which(exe)
        if found:
            prefix = Path(os.path.realpath(found)).parent.parent
            dirs.append(prefix / "lib" / "node_modules" / "npm")
    npm = shutil.which("npm")
    if npm:
        dirs += list(Path(os.path.realpath(npm)).parents)[:4]  # .../npm/bin/npm-cli.js -> .../npm
    dirs += [
        Path("/usr/lib/node_modules/npm"),
        Path("/usr/local/lib/node_modules/npm"),
        Path("/usr/share/nodejs/npm"),
        Path("/opt/homebrew/lib/node_modules/npm"),
    ]
    return dirs


def _npm_source() -> LocalSource:
    for d in _npm_dirs():
        try:
            meta = json.loads((d / "package.json").read_text())
        except (OSError, ValueError):
            continue
        if meta.get("name") != "npm":
            continue
        version = str(meta.get("version", "unknown"))
        return LocalSource(
            lang="JavaScript",
            kind="dir",
            location=str(d.resolve()),
            description=f"npm {version} (ships with node; its lib and bundled node_modules)",
            repo=f"local/npm-{version}",
        )
    node = shutil.which("node") or shutil.which("nodejs")
    return LocalSource(
        "JavaScript",
        "absent",
        None,
        f"no npm installation found (node on PATH: {node or 'none'}; checked lib/node_modules/npm "
        "next to node, /usr/lib/node_modules/npm, /usr/share/nodejs/npm); install node + npm to add JavaScript",
    )


def find_local_sources() -> list[LocalSource]:
    """Python's stdlib (always; an error if missing), the newest JDK's src.zip and npm's
    JavaScript where present. A missing JDK or npm comes back as ``kind="absent"`` with a note."""
    return [_python_stdlib(), _jdk_source(), _npm_source()]


# --------------------------------------------------------------------------------------------
# Records


def _candidates(source: LocalSource) -> list[tuple[str, int]]:
    """(path within the source, size in bytes) of every file of the source's language."""
    exts = LANGUAGES[source.lang]
    assert source.location is not None
    root = Path(source.location)
    out: list[tuple[str, int]] = []
    if source.kind == "zip":
        if not root.is_file():
            raise FileNotFoundError(f"source {source.repo or source.lang}: no zip file at {root}")
        try:
            with zipfile.ZipFile(root) as zf:
                for info in zf.infolist():
                    if not info.is_dir() and info.filename.endswith(exts):
                        out.append((info.filename, info.file_size))
        except zipfile.BadZipFile as exc:
            raise CorpusError(f"source {source.repo or source.lang}: {root} is not a valid zip file: {exc}") from exc
    elif source.kind == "dir":
        if not root.is_dir():
            raise FileNotFoundError(f"source {source.repo or source.lang}: no directory at {root}")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(exts):
                    full = Path(dirpath) / name
                    try:
                        size = full.stat().st_size
                    except OSError:
                        size = 0  # a dangling link; reading it fails and is counted as unreadable
                    out.append((full.relative_to(root).as_posix(), size))
    else:
        raise CorpusError(f"source {source.repo or source.lang}: unknown kind {source.kind!r} (use 'dir' or 'zip')")
    return [(p, s) for p, s in out if not any(fnmatch.fnmatchcase(p, pat) for pat in source.exclude)]


class _SourceReader:
    """Reads files of one source by path; keeps a zip open across reads."""

    def __init__(self, source: LocalSource):
        assert source.location is not None
        self.root = Path(source.location)
        self.zip = zipfile.ZipFile(self.root) if source.kind == "zip" else None

    def read(self, path: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(path)
        return (self.root / path).read_bytes()

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _skip_reason(path: str, data: bytes) -> tuple[str | None, str]:
    if not data.strip():
        return "empty", ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not_utf8", ""
    if ".min." in path.rsplit("/", 1)[-1] or max(map(len, text.splitlines()), default=0) > _MINIFIED_LINE_CHARS:
        return "minified", ""
    return None, text


@dataclass
class LanguageStats:
    candidates: int = 0
    files: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    bytes: dict[str, int] = field(default_factory=lambda: {"train": 0, "val": 0})
    skipped: dict[str, int] = field(default_factory=dict)
    # A few paths per reason, so a surprising count can be checked by hand.
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    repos: list[str] = field(default_factory=list)

    @property
    def n_files(self) -> int:
        return self.files["train"] + self.files["val"]

    @property
    def n_bytes(self) -> int:
        return self.bytes["train"] + self.bytes["val"]

    def skip(self, reason: str, path: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(path)


@dataclass
class CorpusManifest:
    """What :func:`build_demo_corpus` wrote; saved as ``manifest.json`` in the corpus directory."""

    root: Path
    parameters: dict[str, Any]
    found: list[dict[str, Any]]
    absent: list[dict[str, Any]]
    languages: dict[str, LanguageStats]
    files: dict[str, list[str]]
    build_seconds: float = 0.0

    @property
    def train_files(self) -> list[Path]:
        return [self.root / f for f in self.files.get("train", [])]

    @property
    def val_files(self) -> list[Path]:
        return [self.root / f for f in self.files.get("val", [])]

    @property
    def n_files(self) -> int:
        return sum(s.n_files for s in self.languages.values())

    @property
    def n_bytes(self) -> int:
        return sum(s.n_bytes for s in self.languages.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "parameters": self.parameters,
            "sources": {"found": self.found, "absent": self.absent},
            "languages": {k: asdict(v) for k, v in self.languages.items()},
            "totals": {"files": self.n_files, "bytes": self.n_bytes},
            "files": self.files,
            "build_seconds": round(self.build_seconds, 3),
        }

    @classmethod
    def load(cls, out_dir: str | Path) -> CorpusManifest:
        root = Path(out_dir)
        path = root / MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no corpus manifest at {path}: build the corpus first") from None
        except ValueError as exc:
            raise CorpusError(f"{path} is not valid JSON ({exc}); delete {root} and rerun to rebuild it") from exc
        if data.get("format") != _FORMAT:
            raise CorpusError(f"{path}: unknown format {data.get('format')!r} (expected {_FORMAT!r})")
        return cls(
            root=root,
            parameters=data["parameters"],
            found=data["sources"]["found"],
            absent=data["sources"]["absent"],
            languages={k: LanguageStats(**v) for k, v in data["languages"].items()},
            files=data["files"],
            build_seconds=data.get("build_seconds", 0.0),
        )


def _progress(console: Console | None = None, *, transient: bool = True) -> Progress:
    console = console or Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        # Progress bars in a log file are noise; a TTY gets them.
        disable=not console.is_terminal,
    )


def _write_jsonl_gz(path: Path, records: Iterable[dict[str, Any]]) -> None:
    # mtime=0 and no file name in the header: the same records give the same bytes everywhere.
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        io.BufferedWriter(gz, buffer_size=1 << 20) as out,
    ):
        for rec in records:
            out.write(json.dumps(rec, ensure_ascii=False).encode("utf-8"))
            out.write(b"\n")


def _build_language(
    lang: str,
    sources: list[LocalSource],
    tmp: Path,
    *,
    max_files: int | None,
    max_bytes_per_file: int,
    val_fraction: float,
    seed: int,
    progress: Progress,
) -> tuple[LanguageStats, dict[str, str]]:
    stats = LanguageStats(repos=[s.repo for s in sources])
    # Visit candidates in a seeded hash order so a cap samples the whole source evenly (the
    # first 1,000 names of the JDK would all be java.base/com/sun/...).
    todo: list[tuple[float, int, str, int]] = []
    for i, src in enumerate(sources):
        for path, size in _candidates(src):
            todo.append((stable_unit(seed, "sample", src.repo, path), i, path, size))
    todo.sort()
    stats.candidates = len(todo)

    kept: list[tuple[str, str, dict[str, Any]]] = []  # (repo, path, record)
    seen: set[str] = set()
    readers = [_SourceReader(s) for s in sources]
    # With a cap the bar counts kept files towards it; without one, candidates visited.
    task = progress.add_task(lang, total=min(max_files, len(todo)) if max_files is not None else len(todo))
    try:
        for _, i, path, size in todo:
            if max_files is not None and len(kept) >= max_files:
                break
            if max_files is None:
                progress.advance(task)
            src = sources[i]
            if size > max_bytes_per_file:
                stats.skip("too_large", path)
                continue
            try:
                data = readers[i].read(path)
            except (OSError, KeyError, zipfile.BadZipFile):
                stats.skip("unreadable", path)
                continue
            if len(data) > max_bytes_per_file:
                stats.skip("too_large", path)
                continue
            reason, text = _skip_reason(path, data)
            if reason:
                stats.skip(reason, path)
                continue
            rec = stack_record(text, data, lang, src.repo, path)
            # The Stack is exactly deduplicated; npm also bundles the same file in several packages.
            if rec["hexsha"] in seen:
                stats.skip("duplicate", path)
                continue
            seen.add(rec["hexsha"])
            kept.append((src.repo, path, rec))
            if max_files is not None:
                progress.advance(task)
    finally:
        for r in readers:
            r.close()

    kept.sort(key=lambda k: (k[0], k[1]))
    units = [stable_unit(seed, "split", repo, path) for repo, path, _ in kept]
    is_val = [u < val_fraction for u in units]
    # Every language gets held-out data when it has two files or more: the smallest hash is the
    # one that would join val first as val_fraction grows, so the choice is still by hash alone.
    if val_fraction > 0 and len(kept) >= 2 and not any(is_val):
        is_val[min(range(len(kept)), key=units.__getitem__)] = True

    written: dict[str, str] = {}
    slug = _SLUG.get(lang, lang.lower())
    for split in ("train", "val"):
        want = split == "val"
        recs = [rec for (_, _, rec), v in zip(kept, is_val) if v == want]
        stats.files[split] = len(recs)
        stats.bytes[split] = sum(r["size"] for r in recs)
        if recs:
            rel = f"{split}/{slug}.jsonl.gz"
            (tmp / split).mkdir(exist_ok=True)
            _write_jsonl_gz(tmp / rel, recs)
            written[split] = rel
    return stats, written


def _parameters(
    sources: list[LocalSource], max_files_per_lang: int | None, max_bytes_per_file: int, val_fraction: float, seed: int
) -> dict[str, Any]:
    params = {
        "max_files_per_lang": max_files_per_lang,
        "max_bytes_per_file": max_bytes_per_file,
        "val_fraction": val_fraction,
        "seed": seed,
        "sources": [s.identity() for s in sources if s.available],
    }
    return json.loads(json.dumps(params))  # the form it takes after a trip through manifest.json


def _reusable(out_dir: Path, params: dict[str, Any]) -> CorpusManifest | None:
    try:
        manifest = CorpusManifest.load(out_dir)
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    if manifest.parameters != params:
        return None
    if not all(p.is_file() for p in manifest.train_files + manifest.val_files):
        return None
    return manifest


def build_demo_corpus(
    out_dir: str | Path,
    *,
    max_files_per_lang: int | None = DEMO_MAX_FILES_PER_LANG,
    max_bytes_per_file: int = 200_000,
    val_fraction: float = 0.02,
    seed: int = 0,
    sources: list[LocalSource] | None = None,
    console: Console | None = None,
) -> CorpusManifest:
    """Write the demo corpus (see the module docstring for the layout) and return its manifest.

    Files larger than ``max_bytes_per_file``, empty, not UTF-8, minified, or exact duplicates are
    skipped and counted per reason. A file is held out for validation when a seeded, stable hash of
    (repo, path) falls below ``val_fraction``. The directory appears only complete; an existing
    build made with the same parameters and sources is reused as is.
    """
    if max_files_per_lang is not None and max_files_per_lang < 1:
        raise CorpusError(f"max_files_per_lang must be >= 1 or None, got {max_files_per_lang}")
    if not 0.0 <= val_fraction < 1.0:
        raise CorpusError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out_dir = Path(out_dir)
    sources = find_local_sources() if sources is None else list(sources)
    for s in sources:
        if s.lang not in LANGUAGES:
            raise CorpusError(
                f"source {s.repo or s.location}: unknown language {s.lang!r}; use one of {list(LANGUAGES)}"
            )
    present = [s for s in sources if s.available]
    if not present:
        raise CorpusError("no available sources to build a corpus from")
    params = _parameters(sources, max_files_per_lang, max_bytes_per_file, val_fraction, seed)
    existing = _reusable(out_dir, params)
    if existing is not None:
        return existing
    # A rebuild replaces out_dir wholesale: never do that to a directory santa did not make.
    if out_dir.exists() and not (out_dir / MANIFEST).is_file() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(
            f"{out_dir} exists and is not a santa corpus (no {MANIFEST}); choose another directory or remove it"
        )

    start = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_dir(out_dir, "tmp")
    try:
        languages: dict[str, LanguageStats] = {}
        files: dict[str, list[str]] = {"train": [], "val": []}
        with _progress(console) as progress:
            for lang in LANGUAGES:
                lang_sources = [s for s in present if s.lang == lang]
                if not lang_sources:
                    continue
                stats, written = _build_language(
                    lang,
                    lang_sources,
                    tmp,
                    max_files=max_files_per_lang,
                    max_bytes_per_file=max_bytes_per_file,
                    val_fraction=val_fraction,
                    seed=seed,
                    progress=progress,
                )
                languages[lang] = stats
                for split, rel in written.items():
                    files[split].append(rel)
        if not any(files.values()):
            raise CorpusError(
                "the sources yielded no usable files: "
                + "; ".join(f"{lang}: {s.candidates} candidates, skipped {s.skipped}" for lang, s in languages.items())
            )
        manifest = CorpusManifest(
            root=out_dir,
            parameters=params,
            found=[asdict(s) for s in present],
            absent=[asdict(s) for s in sources if not s.available],
            languages=languages,
            files=files,
            build_seconds=time.perf_counter() - start,
        )
        (tmp / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Another process may have published the same build first; theirs is as good as ours.
    return CorpusManifest.load(out_dir)


def _fresh_dir(out_dir: Path, tag: str) -> Path:
    # Next to out_dir so the final rename stays on one file system; mkdir (unlike mkdtemp's 0700)
    # honours the umask, so the published corpus is as readable as any other directory.
    path = out_dir.parent / f".{out_dir.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"
    path.mkdir()
    return path


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the finished build into place; an old (stale) build is swapped out, then removed."""
    old: Path | None = None
    if out_dir.exists():
        old = _fresh_dir(out_dir, "old")
        os.replace(out_dir, old / "corpus")
    try:
        os.replace(tmp, out_dir)
    except OSError:
        if old is not None and not out_dir.exists():
            os.replace(old / "corpus", out_dir)  # put the previous build back rather than lose both
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f}"


def manifest_table(manifest: CorpusManifest) -> Table:
    """The corpus at a glance: files and MB per language and split, and what was skipped why."""
    p = manifest.parameters
    cap = p.get("max_files_per_lang")
    table = Table(
        title=f"demo corpus {manifest.root}",
        caption=(
            f"cap {cap if cap is not None else 'none'} files/language, files <= {p.get('max_bytes_per_file'):,} B, "
            f"val fraction {p.get('val_fraction')}, seed {p.get('seed')}; built in {manifest.build_seconds:.1f} s"
        ),
    )
    for col, justify in (
        ("language", "left"),
        ("source", "left"),
        ("train files", "right"),
        ("val files", "right"),
        ("MB", "right"),
        ("skipped", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for lang, s in manifest.languages.items():
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(s.skipped.items())) or "-"
        table.add_row(lang, ", ".join(s.repos), f"{s.files['train']:,}", f"{s.files['val']:,}", _mb(s.n_bytes), skipped)
    for a in manifest.absent:
        table.add_row(a["lang"], "[dim]absent[/dim]", "-", "-", "-", f"[dim]{a['description']}[/dim]")
    table.add_section()
    train = sum(s.files["train"] for s in manifest.languages.values())
    val = sum(s.files["val"] for s in manifest.languages.values())
    table.add_row("total", "", f"{train:,}", f"{val:,}", _mb(manifest.n_bytes), "")
    return table


def print_manifest(manifest: CorpusManifest | str | Path, console: Console | None = None) -> None:
    """Print :func:`manifest_table` (accepts a manifest or the corpus directory)."""
    if not isinstance(manifest, CorpusManifest):
        manifest = CorpusManifest.load(manifest)
    (console or Console()).print(manifest_table(manifest))
