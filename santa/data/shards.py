"""Token shards: a corpus tokenized once into a flat uint16 memmap, and the packed training windows.

One shard is three files next to each other (``prefix`` is any path without a suffix)::

    {prefix}.bin       uint16 token ids, every document followed by <|endoftext|>
    {prefix}.idx.npy   int64 start offset of each document in .bin, n_docs + 1 entries (last = n_tokens)
    {prefix}.json      n_docs, n_tokens, vocab size, eot id, tokenizer fingerprint, dtype

The .json is written last and removed first on a rewrite, so its presence means "complete".
Document ``i`` with its <|endoftext|> is ``tokens[idx[i]:idx[i+1]]``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from santa.data.tokenizer import EOT, fingerprint, rust_tokenizer
from santa.errors import SantaError

__all__ = ["ShardInfo", "ShardError", "TokenShard", "PackedDataset", "tokenize_corpus", "shard_matches"]

_FORMAT = "santa-token-shard/1"
DTYPE = np.uint16
_MAX_ID = int(np.iinfo(DTYPE).max)


class ShardError(SantaError, ValueError):
    """A token shard that is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class ShardInfo:
    prefix: str
    n_docs: int
    n_tokens: int
    vocab_size: int
    eot_id: int
    tokenizer_fingerprint: str
    dtype: str = "uint16"
    seconds: float = 0.0

    @property
    def files(self) -> tuple[Path, Path, Path]:
        return _paths(self.prefix)


def _paths(prefix: str | Path) -> tuple[Path, Path, Path]:
    p = str(prefix)
    return Path(p + ".bin"), Path(p + ".idx.npy"), Path(p + ".json")


def _strip_suffix(prefix: str | Path) -> str:
    # Accept the path of any of the three files as well as the bare prefix.
    p = str(prefix)
    for suffix in (".idx.npy", ".bin", ".json"):
        if p.endswith(suffix):
            return p[: -len(suffix)]
    return p


def _texts(records: Iterable[dict[str, Any]] | Iterable[str]) -> Iterator[str]:
    for n, rec in enumerate(records, 1):
        if isinstance(rec, str):
            yield rec
        elif isinstance(rec, dict):
            content = rec.get("content")
            if not isinstance(content, str):
                where = rec.get("max_stars_repo_path") or rec.get("path") or f"record {n}"
                raise ValueError(f"{where}: record has no string 'content' field (fields: {sorted(rec)[:10]})")
            yield content
        else:
            raise TypeError(f"record {n}: expected a dict with 'content' or a str, got {type(rec).__name__}")


def _batches(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for t in texts:
        batch.append(t)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def tokenize_corpus(
    records: Iterable[dict[str, Any]] | Iterable[str],
    tokenizer: Any,
    out_prefix: str | Path,
    *,
    batch_size: int = 256,
    console: Console | None = None,
    total: int | None = None,
) -> ShardInfo:
    """Tokenize documents (records with ``content`` or plain strings) into one token shard.

    Streams: memory holds one batch of texts plus the per-document lengths. ``<|endoftext|>``
    written literally inside a document is tokenized as text, so only santa's separators are
    document boundaries.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    backend = rust_tokenizer(tokenizer)  # a fast tokenizer or a bare one; hot loop: no HF wrapper
    vocab = backend.get_vocab(with_added_tokens=True)
    vocab_size = max(vocab.values()) + 1
    if vocab_size - 1 > _MAX_ID:
        raise ValueError(
            f"the tokenizer has {vocab_size:,} ids but token shards store uint16 (ids up to {_MAX_ID:,}); "
            "use a vocabulary of at most 65,536 entries (SantaCoder's is 49,157)"
        )
    if EOT not in vocab:
        raise ValueError(f"the tokenizer has no {EOT!r} token to separate documents with")
    eot = vocab[EOT]
    prefix = _strip_suffix(out_prefix)
    bin_path, idx_path, json_path = _paths(prefix)
    bin_path.parent.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    # 8 bytes a document (a list of ints would cost ~36): a corpus of 25 M files stays at 200 MB.
    lengths = array("q")
    n_tokens = 0
    tmp_bin, tmp_idx, tmp_json = _tmp(bin_path), _tmp(idx_path), _tmp(json_path)
    console = console or Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]tokenizing[/bold]"),
        BarColumn(),
        TextColumn("{task.fields[docs]:,} docs, {task.fields[toks]:,} tokens, {task.fields[rate]:,.0f} tokens/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    saved_flag = backend.encode_special_tokens
    try:
        backend.encode_special_tokens = True
        with progress, open(tmp_bin, "wb") as out:
            task = progress.add_task("tokenize", total=total, docs=0, toks=0, rate=0.0)
            for batch in _batches(_texts(records), batch_size):
                encodings = backend.encode_batch(batch, add_special_tokens=False)
                flat: list[int] = []
                for enc in encodings:
                    ids = enc.ids
                    flat += ids
                    flat.append(eot)
                    lengths.append(len(ids) + 1)
                np.asarray(flat, dtype=DTYPE).tofile(out)
                n_tokens += len(flat)
                elapsed = time.perf_counter() - start
                progress.update(
                    task, completed=len(lengths), docs=len(lengths), toks=n_tokens, rate=n_tokens / max(elapsed, 1e-9)
                )
        if not lengths:
            raise ValueError(f"no documents to tokenize for {prefix}: the input was empty")
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(np.frombuffer(lengths, dtype=np.int64), out=offsets[1:])
        with open(tmp_idx, "wb") as f:
            np.save(f, offsets)
        info = ShardInfo(
            prefix=prefix,
            n_docs=len(lengths),
            n_tokens=n_tokens,
            vocab_size=vocab_size,
            eot_id=int(eot),
            tokenizer_fingerprint=fingerprint(tokenizer),
            seconds=round(time.perf_counter() - start, 3),
        )
        meta = {"format": _FORMAT, **asdict(info)}
        del meta["prefix"]  # the files may move; the prefix is where they are found
        tmp_json.write_text(json.dumps(meta, indent=2) + "\n")
        # The .json marks a complete shard, so it goes first on the way out and last on the way in.
        json_path.unlink(missing_ok=True)
        os.replace(tmp_bin, bin_path)
        os.replace(tmp_idx, idx_path)
        os.replace(tmp_json, json_path)
    except BaseException:
        for p in (tmp_bin, tmp_idx, tmp_json):
            p.unlink(missing_ok=True)
        raise
    finally:
        backend.encode_special_tokens = saved_flag
    return info


def _corrupt(path: Path, what: str, prefix: str) -> ShardError:
    return ShardError(
        f"token shard {prefix}: {path} {what}. The shard is incomplete or damaged: delete "
        f"{prefix}.bin, {prefix}.idx.npy and {prefix}.json and rerun to rebuild it."
    )


class TokenShard:
    """Read-only memory-mapped view of a token shard; checks it is complete on opening."""

    def __init__(self, prefix: str | Path):
        self.prefix = _strip_suffix(prefix)
        bin_path, idx_path, json_path = _paths(self.prefix)
        if not json_path.is_file():
            if bin_path.exists() or idx_path.exists():
                raise _corrupt(json_path, "is missing (an interrupted write?)", self.prefix)
            raise FileNotFoundError(
                f"no token shard at {self.prefix} ({json_path} does not exist); tokenize the corpus first"
            )
        try:
            meta = json.loads(json_path.read_text())
            info = ShardInfo(
                prefix=self.prefix,
                **{
                    k: meta[k] for k in ("n_docs", "n_tokens", "vocab_size", "eot_id", "tokenizer_fingerprint", "dtype")
                },
                seconds=meta.get("seconds", 0.0),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise _corrupt(json_path, f"is not a valid shard description ({exc!r})", self.prefix) from exc
        if meta.get("format") != _FORMAT or info.dtype != "uint16":
            raise _corrupt(
                json_path,
                f"has format {meta.get('format')!r}, dtype {info.dtype!r} (expected {_FORMAT!r}, 'uint16')",
                self.prefix,
            )
        if not bin_path.is_file():
            raise _corrupt(bin_path, "is missing", self.prefix)
        expected = info.n_tokens * np.dtype(DTYPE).itemsize
        actual = bin_path.stat().st_size
        if actual != expected:
            raise _corrupt(
                bin_path,
                f"has {actual:,} bytes but {json_path.name} says {info.n_tokens:,} tokens ({expected:,} bytes)",
                self.prefix,
            )
        try:
            offsets = np.load(idx_path, mmap_mode="r")
        except FileNotFoundError:
            raise _corrupt(idx_path, "is missing", self.prefix) from None
        except (ValueError, OSError, EOFError) as exc:
            raise _corrupt(idx_path, f"cannot be read ({exc})", self.prefix) from exc
        if (
            offsets.dtype != np.int64
            or offsets.shape != (info.n_docs + 1,)
            or offsets[0] != 0
            or offsets[-1] != info.n_tokens
        ):
            raise _corrupt(
                idx_path,
                f"has {offsets.shape} {offsets.dtype} offsets ending at {int(offsets[-1]) if offsets.size else None}; "
                f"expected {info.n_docs + 1} int64 offsets from 0 to {info.n_tokens}",
                self.prefix,
            )
        self.info = info
        self.doc_offsets: np.ndarray = offsets
        self.tokens: np.ndarray = np.memmap(bin_path, dtype=DTYPE, mode="r", shape=(info.n_tokens,))

    @property
    def n_docs(self) -> int:
        return self.info.n_docs

    @property
    def n_tokens(self) -> int:
        return self.info.n_tokens

    @property
    def eot_id(self) -> int:
        return self.info.eot_id

    def __len__(self) -> int:
        return self.info.n_docs

    def document(self, i: int) -> np.ndarray:
        """Tokens of document ``i`` without its trailing ``<|endoftext|>``."""
        n = self.info.n_docs
        if not -n <= i < n:
            raise IndexError(f"document {i} out of range for a shard of {n} documents")
        i %= n
        return self.tokens[int(self.doc_offsets[i]) : int(self.doc_offsets[i + 1]) - 1]

    # A memmap pickles as a full in-memory copy; DataLoader workers started with "spawn" get the
    # prefix instead and map the file themselves.
    def __getstate__(self) -> dict[str, Any]:
        return {"prefix": self.prefix}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["prefix"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"TokenShard({self.prefix!r}, n_docs={self.n_docs:,}, n_tokens={self.n_tokens:,})"


def shard_matches(prefix: str | Path, tokenizer: Any) -> bool:
    """True when a complete shard exists at ``prefix`` and was made with this tokenizer (reuse it)."""
    try:
        shard = TokenShard(prefix)
    except (FileNotFoundError, ShardError):
        return False
    return shard.info.tokenizer_fingerprint == fingerprint(tokenizer)


class PackedDataset:
    """Fixed windows over the concatenated tokens of one or more shards (Megatron-style packing).

    Item ``i`` is ``tokens[i*seq_len : i*seq_len + seq_len + 1]`` as int64: inputs are ``x[:-1]``,
    targets ``x[1:]``. Consecutive windows share one token, so every token after the first is a
    target exactly once; the tail that does not fill a window is dropped.
    """

    def __init__(self, shards: TokenShard | Sequence[TokenShard], seq_len: int):
        shards = [shards] if isinstance(shards, TokenShard) else list(shards)
        if not shards:
            raise ValueError("PackedDataset needs at least one token shard")
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        fingerprints = {s.info.tokenizer_fingerprint for s in shards}
        if len(fingerprints) > 1:
            raise ValueError(
                "the shards were tokenized with different tokenizers: "
                + ", ".join(f"{s.prefix} ({s.info.tokenizer_fingerprint})" for s in shards)
            )
        self.shards = shards
        self.seq_len = seq_len
        self.starts = np.cumsum([0] + [s.n_tokens for s in shards])
        self.n_tokens = int(self.starts[-1])
        if self.n_tokens < seq_len + 1:
            raise ValueError(
                f"the corpus has {self.n_tokens:,} tokens but one window of seq_len={seq_len} needs "
                f"{seq_len + 1:,}: add data or lower seq_len"
            )
        self._len = (self.n_tokens - 1) // seq_len

    @property
    def eot_id(self) -> int:
        return self.shards[0].eot_id

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> np.ndarray:
        if not -self._len <= i < self._len:
            raise IndexError(f"window {i} out of range for {self._len} windows")
        i %= self._len
        lo = i * self.seq_len
        hi = lo + self.seq_len + 1
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        parts = []
        k = first
        while lo < hi:
            shard_lo = lo - int(self.starts[k])
            take = min(hi - lo, self.shards[k].n_tokens - shard_lo)
            parts.append(self.shards[k].tokens[shard_lo : shard_lo + take])
            lo += take
            k += 1
        if len(parts) == 1:
            return parts[0].astype(np.int64)
        return np.concatenate(parts).astype(np.int64)
