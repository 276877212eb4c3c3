from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from rich.console import Console

from santa.data import corpus
from santa.data.corpus import (
    CorpusManifest,
    LocalSource,
    build_demo_corpus,
    find_local_sources,
    manifest_table,
)
from santa.data.records import git_blob_sha1, read_records, stable_unit

STACK_FIELDS = {
    "content",
    "lang",
    "max_stars_repo_name",
    "max_stars_repo_path",
    "max_stars_count",
    "size",
    "ext",
    "hexsha",
}


def write_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def py_source(tmp_path: Path, n: int = 30, extra: dict[str, bytes | str] | None = None) -> LocalSource:
    files: dict[str, bytes | str] = {f"pkg/mod_{i:03d}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(n)}
    files.update(extra or {})
    root = write_tree(tmp_path / "pysrc", files)
    return LocalSource("Python", "dir", str(root), "test python", repo="local/test-py")


def read_split(manifest: CorpusManifest, split: str) -> list[dict]:
    files = manifest.train_files if split == "train" else manifest.val_files
    return list(read_records(files)) if files else []


def no_leftovers(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------- build


def test_split_is_stable_and_follows_the_hash(tmp_path):
    src = py_source(tmp_path, n=60)
    a = build_demo_corpus(tmp_path / "a", max_files_per_lang=None, val_fraction=0.25, sources=[src])
    b = build_demo_corpus(tmp_path / "b", max_files_per_lang=None, val_fraction=0.25, sources=[src])
    val_a = {r["max_stars_repo_path"] for r in read_split(a, "val")}
    val_b = {r["max_stars_repo_path"] for r in read_split(b, "val")}
    assert val_a == val_b
    expected = {
        f"pkg/mod_{i:03d}.py"
        for i in range(60)
        if stable_unit(0, "split", "local/test-py", f"pkg/mod_{i:03d}.py") < 0.25
    }
    assert val_a == expected and 0 < len(val_a) < 60
    train = {r["max_stars_repo_path"] for r in read_split(a, "train")}
    assert train.isdisjoint(val_a) and len(train | val_a) == 60
    # The same records give the same bytes (gzip without timestamps).
    assert (a.root / "train/python.jsonl.gz").read_bytes() == (b.root / "train/python.jsonl.gz").read_bytes()
    # A different seed is a different split.
    c = build_demo_corpus(tmp_path / "c", max_files_per_lang=None, val_fraction=0.25, seed=1, sources=[src])
    assert {r["max_stars_repo_path"] for r in read_split(c, "val")} != val_a


def test_small_language_still_gets_a_validation_file(tmp_path):
    src = py_source(tmp_path, n=3)
    m = build_demo_corpus(tmp_path / "out", max_files_per_lang=None, val_fraction=1e-9, sources=[src])
    assert m.languages["Python"].files == {"train": 2, "val": 1}


def test_records_have_the_stack_fields_in_path_order(tmp_path):
    src = py_source(tmp_path, n=5)
    m = build_demo_corpus(tmp_path / "out", max_files_per_lang=None, val_fraction=0.0, sources=[src])
    recs = read_split(m, "train")
    assert [r["max_stars_repo_path"] for r in recs] == sorted(r["max_stars_repo_path"] for r in recs)
    for r in recs:
        assert set(r) == STACK_FIELDS
        assert r["lang"] == "Python" and r["ext"] == "py"
        assert r["max_stars_repo_name"] == "local/test-py" and r["max_stars_count"] is None
        data = r["content"].encode()
        assert r["size"] == len(data) and r["hexsha"] == git_blob_sha1(data)
    assert m.files == {"train": ["train/python.jsonl.gz"], "val": []}


def test_bad_files_are_skipped_and_counted(tmp_path):
    src = py_source(
        tmp_path,
        n=4,
        extra={
            "empty.py": "",
            "blank.py": "  \n\n",
            "latin1.py": "s = 'caf\xe9'\n".encode("latin-1"),
            "big.py": "x = 1\n" * 2000,
            "dup.py": "def f0(x):\n    return x + 0\n",
            "long.py": "x = '" + "a" * 6000 + "'\n",
            "notes.txt": "not python",
        },
    )
    m = build_demo_corpus(
        tmp_path / "out", max_files_per_lang=None, max_bytes_per_file=10_000, val_fraction=0.0, sources=[src]
    )
    stats = m.languages["Python"]
    assert stats.skipped == {"empty": 2, "not_utf8": 1, "too_large": 1, "duplicate": 1, "minified": 1}
    assert stats.candidates == 10  # the .txt is not a candidate
    assert stats.files["train"] == 4
    assert "latin1.py" in stats.skipped_examples["not_utf8"]
    saved = json.loads((m.root / "manifest.json").read_text())
    assert saved["languages"]["Python"]["skipped"]["not_utf8"] == 1


def test_exclude_patterns_and_zip_sources(tmp_path):
    zpath = tmp_path / "src.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("java.base/java/lang/A.java", "class A {}\n")
        zf.writestr("java.base/java/lang/B.java", "class B {}\n")
        zf.writestr("java.base/java/lang/README", "not java")
    jsrc = LocalSource("Java", "zip", str(zpath), "test jdk", repo="local/jdk-test")
    psrc = py_source(tmp_path, n=3, extra={"test/test_x.py": "import x\n"})
    psrc = LocalSource(psrc.lang, psrc.kind, psrc.location, psrc.description, psrc.repo, exclude=("test/*",))
    m = build_demo_corpus(tmp_path / "out", max_files_per_lang=None, val_fraction=0.0, sources=[psrc, jsrc])
    assert m.languages["Python"].candidates == 3
    java = [r for r in read_split(m, "train") if r["lang"] == "Java"]
    assert [r["max_stars_repo_path"] for r in java] == ["java.base/java/lang/A.java", "java.base/java/lang/B.java"]
    assert m.files["train"] == ["train/python.jsonl.gz", "train/java.jsonl.gz"]


def test_cap_samples_across_the_source(tmp_path):
    src = py_source(tmp_path, n=50)
    m = build_demo_corpus(tmp_path / "out", max_files_per_lang=10, val_fraction=0.0, sources=[src])
    paths = [r["max_stars_repo_path"] for r in read_split(m, "train")]
    assert len(paths) == 10
    # Hash order, not name order: the first ten names are not simply the ones kept.
    assert paths != [f"pkg/mod_{i:03d}.py" for i in range(10)]


def test_failure_midway_leaves_no_output(tmp_path):
    good = py_source(tmp_path)
    missing = LocalSource("Java", "zip", str(tmp_path / "nowhere.zip"), "broken", repo="local/broken")
    out = tmp_path / "out" / "corpus"
    with pytest.raises(FileNotFoundError, match="nowhere.zip"):
        build_demo_corpus(out, max_files_per_lang=None, sources=[good, missing])
    assert not out.exists() and no_leftovers(out.parent)


def test_failure_while_writing_keeps_the_previous_build(tmp_path, monkeypatch):
    src = py_source(tmp_path)
    out = tmp_path / "corpus"
    first = build_demo_corpus(out, max_files_per_lang=None, sources=[src])
    before = (out / "manifest.json").read_text()

    def explode(path, records):
        raise RuntimeError("disk full")

    monkeypatch.setattr(corpus, "_write_jsonl_gz", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        build_demo_corpus(out, max_files_per_lang=5, sources=[src])  # new parameters: a rebuild
    assert (out / "manifest.json").read_text() == before
    assert first.train_files[0].is_file() and no_leftovers(tmp_path)


def test_rerun_reuses_a_complete_build_and_rebuilds_on_new_parameters(tmp_path, monkeypatch):
    src = py_source(tmp_path)
    out = tmp_path / "corpus"
    first = build_demo_corpus(out, max_files_per_lang=None, sources=[src])
    inode = (out / "manifest.json").stat().st_ino

    def must_not_run(*a, **k):
        raise AssertionError("rebuilt although the parameters match")

    monkeypatch.setattr(corpus, "_build_language", must_not_run)
    again = build_demo_corpus(out, max_files_per_lang=None, sources=[src])
    assert again.parameters == first.parameters and (out / "manifest.json").stat().st_ino == inode
    monkeypatch.undo()

    smaller = build_demo_corpus(out, max_files_per_lang=7, sources=[src])
    assert smaller.n_files == 7 and smaller.parameters["max_files_per_lang"] == 7
    assert no_leftovers(tmp_path)


def test_a_damaged_build_is_rebuilt(tmp_path):
    src = py_source(tmp_path)
    out = tmp_path / "corpus"
    m = build_demo_corpus(out, max_files_per_lang=None, sources=[src])
    m.train_files[0].unlink()
    again = build_demo_corpus(out, max_files_per_lang=None, sources=[src])
    assert again.train_files[0].is_file()


def test_refuses_to_replace_a_directory_it_did_not_make(tmp_path):
    src = py_source(tmp_path, n=2)
    precious = write_tree(tmp_path / "mine", {"thesis.tex": "years of work"})
    with pytest.raises(FileExistsError, match="not a santa corpus"):
        build_demo_corpus(precious, sources=[src])
    assert (precious / "thesis.tex").is_file()
    (tmp_path / "empty").mkdir()
    assert build_demo_corpus(tmp_path / "empty", sources=[src]).n_files == 2


def test_bad_arguments(tmp_path):
    src = py_source(tmp_path, n=2)
    with pytest.raises(ValueError, match="val_fraction"):
        build_demo_corpus(tmp_path / "o", val_fraction=1.0, sources=[src])
    with pytest.raises(ValueError, match="unknown language 'Rust'"):
        build_demo_corpus(tmp_path / "o", sources=[LocalSource("Rust", "dir", str(tmp_path), "x")])
    empty = write_tree(tmp_path / "empty", {"a.py": ""})
    with pytest.raises(ValueError, match="no usable files"):
        build_demo_corpus(tmp_path / "o", sources=[LocalSource("Python", "dir", str(empty), "x", repo="r")])
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------- sources


def test_find_local_sources_on_this_machine():
    sources = find_local_sources()
    assert [s.lang for s in sources] == ["Python", "Java", "JavaScript"]
    py = sources[0]
    assert py.available and py.repo.startswith("local/python-stdlib-") and (Path(py.location) / "os.py").is_file()
    for s in sources[1:]:
        assert s.available or (s.kind == "absent" and s.description)


def test_real_sources_with_a_small_cap(tmp_path):
    m = build_demo_corpus(tmp_path / "demo", max_files_per_lang=20, val_fraction=0.1)
    assert "Python" in m.languages
    for lang, stats in m.languages.items():
        assert stats.n_files == 20, (lang, stats)
        assert stats.files["val"] >= 1
    assert {a["lang"] for a in m.absent} == {"Python", "Java", "JavaScript"} - set(m.languages)
    recs = read_split(m, "train")
    assert all(set(r) == STACK_FIELDS for r in recs)
    py_paths = [r["max_stars_repo_path"] for r in recs if r["lang"] == "Python"]
    assert not any(p.startswith(("test/", "site-packages/")) for p in py_paths)


def test_missing_stdlib_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="standard library"):
        find_local_sources()


def test_absent_jdk_and_npm_are_notes(monkeypatch):
    monkeypatch.setattr(corpus, "_jdk_homes", lambda: [])
    monkeypatch.setattr(corpus, "_npm_dirs", lambda: [])
    py, java, js = find_local_sources()
    assert py.available
    assert not java.available and "src.zip" in java.description
    assert not js.available and "npm" in js.description


def test_newest_jdk_is_chosen_once(tmp_path, monkeypatch):
    def jdk(name: str, version: str, with_zip: bool = True) -> Path:
        home = tmp_path / name
        (home / "lib").mkdir(parents=True)
        (home / "release").write_text(f'JAVA_VERSION="{version}"\n')
        if with_zip:
            with zipfile.ZipFile(home / "lib" / "src.zip", "w") as zf:
                zf.writestr("A.java", "class A {}\n")
        return home

    old, new = jdk("jdk-11", "11.0.2"), jdk("jdk-21", "21.0.1")
    broken = jdk("jdk-99", "99", with_zip=False)
    (broken / "lib" / "src.zip").symlink_to(tmp_path / "not-installed.zip")  # Debian's dangling link
    alias = tmp_path / "default-jdk"
    alias.symlink_to(new)
    monkeypatch.setattr(corpus, "_jdk_homes", lambda: [old, alias, new, broken])
    java = corpus._jdk_source()
    assert java.available and java.repo == "local/jdk-21.0.1"
    assert java.location == str((new / "lib" / "src.zip").resolve())


# ---------------------------------------------------------------------------------- summary


def test_manifest_table_renders(tmp_path):
    src = py_source(tmp_path, extra={"e.py": ""})
    absent = LocalSource("Java", "absent", None, "no JDK here")
    m = build_demo_corpus(tmp_path / "out", max_files_per_lang=None, sources=[src, absent])
    console = Console(record=True, width=200)
    console.print(manifest_table(CorpusManifest.load(tmp_path / "out")))
    text = console.export_text()
    assert "Python" in text and "local/test-py" in text and "empty 1" in text and "no JDK here" in text
    assert m.absent[0]["description"] == "no JDK here"
    corpus.print_manifest(tmp_path / "out", console=console)


def test_manifest_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        CorpusManifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(ValueError, match="delete"):
        CorpusManifest.load(tmp_path)


def test_output_is_world_readable_like_any_directory(tmp_path):
    src = py_source(tmp_path, n=2)
    old = os.umask(0o022)
    try:
        m = build_demo_corpus(tmp_path / "out", max_files_per_lang=None, sources=[src])
    finally:
        os.umask(old)
    assert m.root.stat().st_mode & 0o777 == 0o755
