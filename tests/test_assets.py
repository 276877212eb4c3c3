"""The benchmark data and the PII gibberish model ship inside the package, checked by checksum."""

from __future__ import annotations

from pathlib import Path

import pytest

from santa import assets
from santa.eval.tasks import BenchmarkDataError, resolve_data_dir
from santa.pipeline.config import benchmark_dirs


def test_packaged_files_match_their_checksums() -> None:
    expected = assets.expected_checksums()
    # Every benchmark folder the harness and decontamination read, and BigCode's gibberish model.
    for name in (
        "multipl-e_8b88bd5/prompts/humaneval-java-reworded.json",
        "multipl-e_11b407b/prompts/mbpp-js-reworded.json",
        "multipl-e_9b61dc6/prompts/fim-humaneval-py.json",
        "multipl-e_8b88bd5/datasets/sanitized-mbpp.json",
        "human-eval-infilling_88062ff/data/HumanEval-SingleLineInfilling.jsonl.gz",
        "bigcode-dataset_bebec92/pii/gibberish_data/big.model",
    ):
        assert name in expected
    assert assets.verify() == {}
    for folder in {n.split("/")[0] for n in expected}:
        assert (assets.ASSETS / folder / "LICENSE").is_file(), folder


def test_a_damaged_file_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(
        "0" * 64 + "  multipl-e_8b88bd5/prompts/humaneval-py-reworded.json\n" + "1" * 64 + "  nowhere.json\n"
    )
    monkeypatch.setattr(assets, "CHECKSUMS", sums)
    assert assets.verify() == {
        "multipl-e_8b88bd5/prompts/humaneval-py-reworded.json": "checksum differs",
        "nowhere.json": "missing",
    }


def test_user_folder_wins_then_packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANTA_DATA", raising=False)
    assert resolve_data_dir(None) == assets.ASSETS
    assert benchmark_dirs(None) == [assets.ASSETS]
    monkeypatch.setenv("SANTA_DATA", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert benchmark_dirs(None) == [tmp_path, assets.ASSETS]
    with pytest.raises(BenchmarkDataError, match="does not exist"):
        resolve_data_dir(tmp_path / "nope")
    # The cache key names the packaged copy by its checksums, not by where santa is installed.
    ident = assets.identity([assets.ASSETS])
    assert ident[0].startswith("santa-assets:") and str(assets.ASSETS) not in ident[0]
