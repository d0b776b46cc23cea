"""What `tadm models pull` does with the Hugging Face Hub and the disk: fetch a repository's files into the
cache with one-line errors, and write a model directory atomically."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from model.cli import CommandError


@dataclass(frozen=True)
class HubRepository:
    """A hub repository that `tadm models pull` fetches, and which of its files."""

    repo_id: str
    # Only what the pipeline loads; SD repositories also hold fp16 variants, .bin duplicates and big .ckpt files.
    allow_patterns: tuple[str, ...]


# The files of an SD 2.x diffusers repository that the pipeline loads apart from its VAE (fp16 variants, .bin
# duplicates and the big .ckpt files are left out).
SD_PIPELINE_FILES = (
    "model_index.json",
    "scheduler/*.json",
    "tokenizer/*",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
)


def check_output(output: Path | None) -> None:
    if output is not None and output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise CommandError(f"{output} already exists and is not an empty directory; choose a new --output")


def download(repo_id: str, allow_patterns: tuple[str, ...], *, cache_dir: Path | None, revision: str | None,
             manual: str) -> str:
    """``snapshot_download`` with every failure turned into a one-line :class:`CommandError`; ``manual`` says
    what to do by hand instead, for the offline case."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = cache_dir or constants.HF_HUB_CACHE
    try:
        return snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=list(allow_patterns)
        )
    except LocalEntryNotFoundError as exc:
        reason = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hugging Face Hub is unreachable"
        raise CommandError(
            f"cannot download {repo_id}: {reason} and the cache {where} has no copy of it; run this where "
            f"huggingface.co is reachable (then copy the cache), or {manual}"
        ) from exc
    except GatedRepoError as exc:
        raise CommandError(
            f"{repo_id} requires accepting its licence on huggingface.co and a token (HF_TOKEN)"
        ) from exc
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise CommandError(f"{repo_id} (revision {revision or 'main'}) was not found on the hub; try --repo-id") from exc
    except HfHubHTTPError as exc:
        raise CommandError(f"downloading {repo_id} failed: {str(exc).splitlines()[0]}") from exc
    except OSError as exc:  # disk full, permissions on the cache
        raise CommandError(f"cannot write the Hugging Face cache {where}: {exc}") from exc


def save_atomically(pipe, output: Path) -> None:
    """Write the model directory to a sibling temporary directory and rename it into place, so an interrupted
    run leaves no half-written model directory behind."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.partial-{os.getpid()}")
    try:
        pipe.save_pretrained(staging)
        if output.exists():
            output.rmdir()  # checked empty before anything was downloaded
        os.replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
