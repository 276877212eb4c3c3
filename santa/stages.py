"""The data stages before training, each cached on disk under a key of the config that made it:

    corpus     the embedded demo corpus, or the user's record files (`data.input`)
    pipeline   the data pipeline (`pipeline=<preset>`: PII, filters, dedup, decontamination) over
               both splits at once, so a held-out file cannot be a near-copy of a training file
    tokenizer  byte-level BPE trained on a per-language sample of the training split
    tokens     uint16 token shards of the training and held-out splits

A rerun with the same config reuses every stage; sweeps over model variants share them. A lock per
stage directory lets the processes of a data parallel run (each of which runs train.py) build a
stage once and wait for it.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock
from omegaconf import ListConfig
from rich.console import Console

from santa.cache_key import config_key
from santa.confdict import plain_dict
from santa.data.corpus import build_demo_corpus, print_manifest
from santa.data.datamodule import DataFiles
from santa.data.records import read_records, stable_unit
from santa.data.shards import TokenShard, tokenize_corpus
from santa.data.tokenizer import fingerprint, load_tokenizer, train_tokenizer
from santa.errors import SantaError


class DataStageError(SantaError, ValueError):
    """The data the user pointed at cannot make a training set."""


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory) + ".lock"):
        yield


@dataclass
class Corpus:
    """Record files of the two splits (or one file list split by a stable hash) and their key."""

    key: str
    train: list[Path]
    val: list[Path]
    split_by_hash: float | None = None  # val fraction when train/val share the same files
    info: dict[str, Any] = field(default_factory=dict)

    def records(self, split: str) -> Iterator[dict[str, Any]]:
        files = self.train if split == "train" else self.val
        for rec in read_records(files):
            if self.split_by_hash is not None:
                held_out = (
                    stable_unit(rec.get("max_stars_repo_name"), rec.get("max_stars_repo_path")) < self.split_by_hash
                )
                if held_out != (split == "val"):
                    continue
            yield rec


def _file_identity(paths: list[Path]) -> list[tuple[str, int, int]]:
    return [(str(p.resolve()), p.stat().st_size, int(p.stat().st_mtime)) for p in paths]


def corpus_stage(data: dict[str, Any], cache_dir: Path, console: Console) -> Corpus:
    if data.get("input"):
        sources = list(data["input"]) if isinstance(data["input"], (list, tuple, ListConfig)) else [data["input"]]
        files = list(read_records(sources).files)  # FileNotFoundError names the missing path
        key = config_key({"input": _file_identity(files), "val_fraction": data["val_fraction"]})
        console.print(f"[bold]corpus[/bold] {len(files)} record file(s) from {', '.join(map(str, sources))}")
        return Corpus(key, files, files, split_by_hash=float(data["val_fraction"]), info={"input": sources})
    params = {**dict(data["demo"]), "val_fraction": float(data["val_fraction"])}
    out = cache_dir / "corpus" / f"demo-{config_key(params)}"
    with locked(out):
        manifest = build_demo_corpus(out, **params, console=console)
    print_manifest(manifest, console)  # which sources were found, which are absent and skipped
    key = config_key({"demo": manifest.parameters})
    return Corpus(key, manifest.train_files, manifest.val_files, info={"manifest": manifest})


def _unfiltered_tokenizer(tok: dict[str, Any], raw: Corpus, cache_dir: str) -> Any:
    """The tokenizer a step like fertility counts tokens with, before the clean corpus (and so
    the training tokenizer) exists: one trained the same way on the unfiltered corpus (cached)."""
    return load_tokenizer(tokenizer_stage(tok, raw, Path(cache_dir), Console(stderr=True, soft_wrap=True)))


def pipeline_stage(cfg: Any, raw: Corpus, cache_dir: Path, console: Console) -> Corpus:
    """Run (or reuse) the configured pipeline over the raw corpus; the clean shards keep the raw
    corpus's train/val assignment (demo: per file; data.input: the same stable hash)."""
    from santa.pipeline.config import build_config, step_specs, tokenizer_loader
    from santa.pipeline.engine import run_pipeline

    pipeline = plain_dict(cfg["pipeline"])
    if not step_specs(pipeline):
        return raw
    tok = plain_dict(cfg["tokenizer"])
    if tok.get("path"):
        loader = tokenizer_loader(tok["path"])
        tok_id: Any = fingerprint(load_tokenizer(tok["path"]))
    else:
        loader = functools.partial(_unfiltered_tokenizer, tok, raw, str(cache_dir))
        tok_id = {
            "unfiltered": raw.key,
            **{k: tok[k] for k in ("vocab_size", "min_frequency", "spelling", "files_per_lang")},
        }
    inputs = list(dict.fromkeys(raw.train + raw.val))
    out = cache_dir / "pipeline" / config_key({"corpus": raw.key, "pipeline": pipeline, "tokenizer": tok_id})
    engine = cfg.get("engine") or {"name": "local"}
    pcfg = build_config(
        pipeline=pipeline,
        engine=engine,
        input=[str(p) for p in inputs],
        output=out,
        tokenizer=loader,
        tokenizer_id=json.dumps(tok_id, sort_keys=True),
        benchmark_data=cfg.get("benchmark_data"),
        cache_dir=cache_dir,
    )
    console.print(f"[bold]pipeline[/bold] {pipeline.get('name', '?')}: {[s.name for s in pcfg.steps]} -> {out}")
    result = run_pipeline(pcfg, console)
    totals = result.report["totals"]
    if totals["kept"]["files"] == 0:
        raise DataStageError(
            f"no documents in {_describe(inputs)} after the pipeline ({totals['read']['files']} read, none kept; "
            f"see {out / 'report.json'})"
        )
    key = config_key({"raw": raw.key, "pipeline": result.report["key"]})
    info = {**raw.info, "pipeline": str(out)}
    if raw.split_by_hash is not None:
        files = result.data_files
        return Corpus(key, files, files, split_by_hash=raw.split_by_hash, info=info)
    splits = {
        s: [f for p in (raw.train if s == "train" else raw.val) for f in result.unit_data_files(p)]
        for s in ("train", "val")
    }
    for split, files in splits.items():
        if not files:
            raise DataStageError(
                f"no documents left in the {split} split ({_describe(raw.train if split == 'train' else raw.val)}) "
                f"after the pipeline; see {out / 'report.json'}"
            )
    return Corpus(key, splits["train"], splits["val"], info=info)


def _describe(files: list[Path]) -> str:
    return ", ".join(map(str, files[:3])) + (f" and {len(files) - 3} more" if len(files) > 3 else "")


def _nonempty(corpus: Corpus, split: str, records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``records``, or a clear error when there are none (before any stage writes anything)."""
    first = next(records, None)
    if first is None:
        files = corpus.train if split == "train" else corpus.val
        hint = (
            f"; with data.val_fraction={corpus.split_by_hash} no file was held out, raise it"
            if split == "val" and corpus.split_by_hash is not None
            else ""
        )
        raise DataStageError(f"no documents in the {split} split of {_describe(files)}{hint}")
    yield first
    yield from records


def _sample_texts(corpus: Corpus, per_lang: int) -> Iterator[str]:
    taken: dict[str, int] = {}
    for rec in _nonempty(corpus, "train", iter(corpus.records("train"))):
        lang = rec.get("lang") or "?"
        if taken.get(lang, 0) < per_lang:
            taken[lang] = taken.get(lang, 0) + 1
            yield rec["content"]


def tokenizer_stage(tok: dict[str, Any], corpus: Corpus, cache_dir: Path, console: Console) -> Path:
    if tok.get("path"):
        path = Path(tok["path"])
        load_tokenizer(path)  # validates the special tokens, naming what is missing
        return path if path.is_dir() else path.parent
    params = {k: tok[k] for k in ("vocab_size", "min_frequency", "spelling", "files_per_lang")}
    out = cache_dir / "tokenizer" / config_key({"corpus": corpus.key, **params})
    with locked(out):
        if (out / "tokenizer.json").is_file():
            return out
        console.print(f"[bold]tokenizer[/bold] training a byte-level BPE of {params['vocab_size']} entries")
        # HF tokenizers' own bars (documents read, then merges computed of vocab_size, with an
        # ETA), on a terminal only: in a log file they would be noise.
        tokenizer = train_tokenizer(
            _sample_texts(corpus, int(params["files_per_lang"])),
            int(params["vocab_size"]),
            min_frequency=int(params["min_frequency"]),
            spelling=params["spelling"],
            show_progress=console.is_terminal,
        )
        tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, out)
    return out


def tokens_stage(corpus: Corpus, tokenizer_dir: Path, cache_dir: Path, console: Console) -> DataFiles:
    tokenizer = load_tokenizer(tokenizer_dir)
    out = cache_dir / "tokens" / config_key({"corpus": corpus.key, "tokenizer": fingerprint(tokenizer)})
    prefixes = {split: out / split for split in ("train", "val")}
    with locked(out):
        for split, prefix in prefixes.items():
            if _shard_complete(prefix):
                continue
            out.mkdir(parents=True, exist_ok=True)
            console.print(f"[bold]tokens[/bold] tokenizing the {split} split")
            # A counting pass (reading is cheap next to tokenizing) gives the bar a total and an ETA.
            total = sum(1 for _ in corpus.records(split)) if console.is_terminal else None
            tokenize_corpus(
                _nonempty(corpus, split, iter(corpus.records(split))), tokenizer, prefix, console=console, total=total
            )
    return DataFiles(
        train=[str(prefixes["train"])],
        val=[str(prefixes["val"])],
        tokenizer_dir=str(tokenizer_dir),
        pipeline_dir=corpus.info.get("pipeline"),
    )


def _shard_complete(prefix: Path) -> bool:
    try:
        TokenShard(prefix)
        return True
    except Exception:  # missing or corrupt: rebuild (the reader's message is for users, not here)
        return False


def prepare(cfg: Any, console: Console | None = None) -> DataFiles:
    """Run (or reuse) every data stage for a composed training config."""
    console = console or Console(stderr=True, soft_wrap=True)
    cache_dir = Path(cfg["cache_dir"])
    raw = corpus = corpus_stage(cfg["data"], cache_dir, console)
    if cfg.get("pipeline") is not None:
        corpus = pipeline_stage(cfg, corpus, cache_dir, console)
    # An empty held-out split is reported now, not after the tokenizer has trained.
    next(_nonempty(corpus, "val", iter(corpus.records("val"))))
    tok = cfg["tokenizer"]
    train_on = tok.get("train_on", "clean")
    if train_on not in ("clean", "raw"):
        raise DataStageError(f"tokenizer.train_on must be clean or raw, got {train_on!r}")
    # raw: the same tokenizer for every data variant of a sweep (and the one fertility counted with).
    tokenizer_dir = tokenizer_stage(tok, raw if train_on == "raw" else corpus, cache_dir, console)
    return tokens_stage(corpus, tokenizer_dir, cache_dir, console)
