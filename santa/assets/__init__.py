"""Data files that ship inside the package: benchmark prompts (MultiPL-E at the paper's and at
v2.1.0's commit, the FIM-HumanEval solutions, HumanEval single-line infilling) and BigCode's PII
gibberish model, one folder per ``<source>_<commit>`` with its license beside it.

A folder the user names (``data_dir=`` / ``benchmark_data=``) or ``$SANTA_DATA`` wins over the
packaged copy; :func:`verify` checks the packaged files against ``SHA256SUMS``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ASSETS = Path(__file__).resolve().parent
CHECKSUMS = ASSETS / "SHA256SUMS"


class AssetError(ValueError):
    """A data folder or file the user named is missing, or a packaged file is damaged."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def user_data_dir(given: str | Path | None = None) -> Path | None:
    """The folder the user chose, if any: ``given`` first, then ``$SANTA_DATA``. It must exist."""
    for value, what in ((given, "data_dir"), (os.environ.get("SANTA_DATA"), "$SANTA_DATA")):
        if value in (None, ""):
            continue
        path = Path(os.path.expanduser(str(value)))
        if not path.is_dir():
            raise AssetError(
                f"{what}={value}: no such directory (it should hold folders such as multipl-e_8b88bd5/; "
                "leave it unset to use the copy shipped inside santa)"
            )
        return path
    return None


def data_dir(given: str | Path | None = None) -> Path:
    """Where benchmark data is read from: the user's folder if one is set, else the packaged copy."""
    return user_data_dir(given) or ASSETS


def data_dirs(given: str | Path | None = None) -> list[Path]:
    """The user's folder (if set) then the packaged copy: a file missing from the first is read
    from the second."""
    user = user_data_dir(given)
    return [user, ASSETS] if user is not None and user.resolve() != ASSETS else [ASSETS]


def expected_checksums() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in CHECKSUMS.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip()] = digest
    return out


def verify() -> dict[str, str]:
    """Check every packaged file against SHA256SUMS; returns {file: problem} (empty when all is well)."""
    problems: dict[str, str] = {}
    for name, digest in expected_checksums().items():
        path = ASSETS / name
        if not path.is_file():
            problems[name] = "missing"
        elif sha256_file(path) != digest:
            problems[name] = "checksum differs"
    return problems


def identity(dirs: list[Path]) -> list[str]:
    """A cache-key-friendly name for each data folder: the packaged copy is named by its checksum
    file's digest (so the key does not depend on where santa is installed), a user's folder by path."""
    out = []
    for d in dirs:
        if d.resolve() == ASSETS:
            out.append("santa-assets:" + sha256_file(CHECKSUMS)[:16])
        else:
            out.append(str(d.resolve()))
    return out
