"""Load a trained model and its tokenizer from whatever a user points at: a Lightning checkpoint
(`.ckpt`), a Hugging Face GPTBigCode export directory, a run directory under outputs/, or a
Hugging Face hub id (``bigcode/gpt_bigcode-santacoder``), which resolves through the Hugging Face
cache as transformers' ``from_pretrained`` does (:func:`resolve_model_path`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerFast

from santa.checkpoint import model_state_dict, saved_model_config, saved_tokenizer_json
from santa.data.tokenizer import load_tokenizer, tokenizer_from_json
from santa.errors import SantaError
from santa.model.config import GPTConfig
from santa.model.gpt import GPT


class ArtifactError(SantaError, ValueError):
    """A path that holds no model santa can load."""


@dataclass
class Loaded:
    model: GPT
    tokenizer: PreTrainedTokenizerFast
    source: Path


def load_checkpoint(path: Path, device: str = "cpu") -> Loaded:
    """A model and its tokenizer from a santa training checkpoint (format: ``santa.checkpoint``)."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # pickle/zip errors name no file; say which and what it should be
        raise ArtifactError(f"{path} is not a readable santa/Lightning checkpoint: {exc}") from exc
    cfg = saved_model_config(ckpt)
    if cfg is None:
        raise ArtifactError(f"{path} has no santa model configuration: was it written by santa's trainer?")
    tokenizer_json = saved_tokenizer_json(ckpt)
    if tokenizer_json is None:
        raise ArtifactError(f"{path} carries no tokenizer; export the run with hf/ or pass a newer checkpoint")
    model = GPT(GPTConfig.from_dict(dict(cfg)))
    model.load_state_dict(model_state_dict(ckpt))
    return Loaded(model.eval(), tokenizer_from_json(tokenizer_json), path)


def load_hf_dir(path: Path, device: str = "cpu") -> Loaded:
    from santa.model.hf import import_hf

    model = import_hf(path, device=device)
    return Loaded(model.eval(), load_tokenizer(path), path)


# What a model directory needs from the hub: config, weights, tokenizer. Not every file of the
# repository: many ship the weights twice (safetensors and a PyTorch pickle), or training state.
_HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]


def is_hub_id(name: str) -> bool:
    """Whether ``name`` can be a Hugging Face hub repository id (``org/name`` or ``name``) rather
    than a file path: what is meant when no such path exists."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not name or name.startswith((".", "~", "/")) or name.endswith(".ckpt") or "\\" in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


@dataclass(frozen=True)
class HubModel:
    """Where a hub id resolved to: the snapshot directory in the Hugging Face cache."""

    repo_id: str
    revision: str  # the commit the snapshot holds
    path: Path


def hub_snapshot(repo_id: str, revision: str | None = None) -> HubModel:
    """The cached snapshot of ``repo_id`` (downloading what is missing unless ``HF_HUB_OFFLINE``
    is set), as ``from_pretrained`` resolves a name. Errors are one line naming the id."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}" + (f" (revision {revision})" if revision else "")

    def download(patterns: list[str]) -> Path:
        try:
            return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
        except IncompleteSnapshotError as exc:
            # Offline, with a cached snapshot that lacks some file the patterns name (a README's
            # json, say): usable when what a model needs is there.
            folder = Path(exc.snapshot_path)
            if (folder / "config.json").is_file() and (any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))):
                return folder
            raise ArtifactError(
                f"model {where}: the cached snapshot {folder} is incomplete (no config.json or weights) and "
                "the Hugging Face hub cannot be reached to complete it"
            ) from None

    try:
        folder = download(_HUB_FILES)
        if not any(folder.glob("*.safetensors")):  # older repositories ship only PyTorch pickles
            folder = download(["*.bin"])
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise ArtifactError(
                f"model {where} is not a local path and is not in the Hugging Face cache "
                f"({constants.HF_HUB_CACHE}), and HF_HUB_OFFLINE=1 forbids downloading it: unset HF_HUB_OFFLINE, "
                f"or download it where there is network (`hf download {repo_id}`) and point HF_HOME/HF_HUB_CACHE there"
            ) from None
        raise ArtifactError(
            f"model {where} is not a local path, is not in the Hugging Face cache ({constants.HF_HUB_CACHE}), "
            "and the Hugging Face hub could not be reached to download it (set HF_HUB_OFFLINE=1 to use only the cache)"
        ) from None
    except GatedRepoError:
        raise ArtifactError(
            f"model {where} is gated on the Hugging Face hub: accept its terms and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise ArtifactError(
            f"no model at {repo_id}: no such local path, and no Hugging Face hub model of that name "
            "(or it is private: log in with `hf auth login`)"
        ) from None
    except RevisionNotFoundError:
        raise ArtifactError(f"model {repo_id} has no revision {revision!r} on the Hugging Face hub") from None
    except HfHubHTTPError as exc:
        raise ArtifactError(
            f"model {where}: the Hugging Face hub refused the download: {exc}".replace("\n", " ")
        ) from None
    return HubModel(repo_id, folder.name, folder)


def resolve_model_path(path: str | Path, revision: str | None = None) -> tuple[Path, HubModel | None]:
    """A local path as it is; else a hub id resolved through the Hugging Face cache (and the
    hub, when online), with where it came from."""
    local = Path(path).expanduser()
    if local.exists():
        if revision:
            raise ArtifactError(f"model.revision={revision} applies to hub ids, not to the local path {local}")
        return local, None
    if not is_hub_id(str(path)):
        raise ArtifactError(
            f"no model at {local}: give a .ckpt file, an HF export directory, a run directory or a Hugging Face hub id"
        )
    hub = hub_snapshot(str(path), revision)
    return hub.path, hub


def load_model(path: str | Path, device: str = "cpu") -> Loaded:
    """A `.ckpt`, an HF export dir (config.json + safetensors), a run dir (uses hf/ or last.ckpt),
    or a hub id of a GPTBigCode model (see :func:`resolve_model_path`)."""
    path, _ = resolve_model_path(path)
    if path.is_file():
        return load_checkpoint(path, device)
    if (path / "config.json").is_file():
        return load_hf_dir(path, device)
    if (path / "hf" / "config.json").is_file():
        return load_hf_dir(path / "hf", device)
    for candidate in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
        if candidate.is_file():
            return load_checkpoint(candidate, device)
    raise ArtifactError(
        f"{path} holds no model: expected config.json (HF export), hf/config.json or "
        "checkpoints/last.ckpt (a santa run directory)"
    )
