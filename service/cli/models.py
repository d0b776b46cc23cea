"""``tadm models pull``: download a base model into the Hugging Face cache and prepare a TADM model directory.

``tadm models pull sd21-base`` fetches Stable Diffusion 2.1-base (only the files serving and training read: UNet,
VAE, scheduler, text encoder and tokenizer, as safetensors; not the 5 GB single-file checkpoints) into the Hugging
Face cache. With ``--output DIR`` it then builds the ``sd21-base`` TADM on that backbone and writes a model
directory that references the base by its hub id, so the directory (and its model id) does not depend on where
the cache is mounted. The TADM modules in that directory are freshly initialised: it is the starting point for
``tadm train``; the authors' trained weights come in with ``tadm import-official`` (see deploy/README.md).

Offline (``HF_HUB_OFFLINE=1``, or no route to the hub) with nothing cached, the command fails with one line that
says so, and writes nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from model.cli import CommandError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseModel:
    """A base model that `tadm models pull` knows how to fetch."""

    repo_id: str
    # Only what the pipeline loads; SD repositories also hold fp16 variants, .bin duplicates and big .ckpt files.
    allow_patterns: tuple[str, ...]
    preset: str


SD21_BASE = BaseModel(
    repo_id="stabilityai/stable-diffusion-2-1-base",  # == model.backbones.SD21_BASE_HUB_ID (no torch import here)
    allow_patterns=(
        "model_index.json",
        "scheduler/*.json",
        "tokenizer/*",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    ),
    preset="sd21-base",
)
PULLABLE = {"sd21-base": SD21_BASE}


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="get model weights (base models, model directories)")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    parser = models_sub.add_parser(
        "pull",
        help="download a base model into the Hugging Face cache and optionally prepare a TADM model directory",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("name", choices=sorted(PULLABLE), help="which base model")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="Hugging Face hub cache to fill (default: HF_HUB_CACHE, else $HF_HOME/hub); serve with the same "
        "HF_HUB_CACHE",
    )
    parser.add_argument("--repo-id", default=None, help=f"download from this hub repository instead (a mirror of {SD21_BASE.repo_id})")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of the repository (default: main)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="model directory to create (must not exist yet)")
    parser.add_argument("--scale", type=int, choices=(16, 32), default=16, help="scale of the model directory (default 16)")
    parser.set_defaults(handler=_pull)


def _pull(args: argparse.Namespace) -> int:
    base = PULLABLE[args.name]
    repo_id = args.repo_id or base.repo_id
    output: Path | None = args.output
    # 1. Check the output first: a download of several GB must not end in "directory exists".
    if output is not None and output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise CommandError(f"{output} already exists and is not an empty directory; choose a new --output")
    # 2. Download (or find in the cache) before importing torch: the offline failure stays cheap.
    snapshot = download(repo_id, base.allow_patterns, cache_dir=args.cache_dir, revision=args.revision)
    print(f"{repo_id}: {snapshot}")  # noqa: T201
    if output is None:
        return 0
    # 3. Build the TADM on the downloaded backbone and write the model directory.
    pipe = prepare_model_directory(base.preset, Path(snapshot), repo_id, output, scale=args.scale)
    print(  # noqa: T201
        f"model directory {output} (model {pipe.model_id}, {pipe.scale}x, base {repo_id}); its TADM modules are "
        "untrained: train it (tadm train) or import the authors' weights (tadm import-official)"
    )
    return 0


def download(repo_id: str, allow_patterns: tuple[str, ...], *, cache_dir: Path | None, revision: str | None) -> str:
    """``snapshot_download`` with every failure turned into a one-line :class:`CommandError`."""
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
            f"huggingface.co is reachable (then copy the cache), or point TADM_SD21_BASE at a local "
            f"diffusers-format directory"
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


def prepare_model_directory(preset: str, snapshot: Path, repo_id: str, output: Path, *, scale: int):
    """Build ``preset`` on the backbone in ``snapshot`` and write it to ``output``, referencing ``repo_id``.

    Written to a sibling temporary directory and renamed into place, so an interrupted run leaves no
    half-written model directory behind.
    """
    from model import TADMPipeline
    from model.backbones import BaseModelNotFoundError

    try:
        pipe = TADMPipeline.from_preset(preset, scale=scale, base=str(snapshot))
    except BaseModelNotFoundError as exc:
        raise CommandError(f"the download in {snapshot} is incomplete or not diffusers-format: {exc}") from exc
    # Reference the base by hub id, not by cache path: the same weights give the same model id on every host.
    pipe.config["base"] = {"kind": "pretrained", "ref": repo_id}
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.partial-{os.getpid()}")
    try:
        pipe.save_pretrained(staging)
        if output.exists():
            output.rmdir()  # checked empty above
        os.replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return pipe
