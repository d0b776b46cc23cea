"""``tadm models pull``: download a base model into the Hugging Face cache and prepare a TADM model directory.

``tadm models pull tadm-official --scale 16|32 --output DIR`` gets the real model in one command: SD 2.1, its VAE
and the authors' released checkpoints, imported (service/cli/official.py).

``tadm models pull sd21-base`` fetches Stable Diffusion 2.1-base (only the files serving and training read: UNet,
VAE, scheduler, text encoder and tokenizer, as safetensors; not the 5 GB single-file checkpoints) into the Hugging
Face cache. With ``--output DIR`` it then builds the ``sd21-base`` TADM on that backbone and writes a model
directory that references the base by its hub id, so the directory (and its model id) does not depend on where
the cache is mounted. The TADM modules in that directory are freshly initialised: it is the starting point for
``tadm train``; the authors' trained weights come with ``tadm models pull tadm-official`` (see deploy/README.md).

Offline (``HF_HUB_OFFLINE=1``, or no route to the hub) with nothing cached, the command fails with one line that
says so, and writes nothing.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from model.cli import CommandError
from model.thumbnail import SUPPORTED_SCALES

from . import official
from .hub import SD_PIPELINE_FILES, HubRepository, check_output, download, save_atomically

logger = logging.getLogger(__name__)


SD21_BASE = HubRepository(
    repo_id="stabilityai/stable-diffusion-2-1-base",  # == model.backbones.SD21_BASE_HUB_ID (no torch import here)
    allow_patterns=(*SD_PIPELINE_FILES, "vae/config.json", "vae/diffusion_pytorch_model.safetensors"),
)
# Where offline users get the base from by hand (appended to a download failure).
SD21_BASE_MANUAL = "point TADM_SD21_BASE at a local diffusers-format directory"
PULLABLE = ("sd21-base", "tadm-official")


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="get model weights (base models, model directories)")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    parser = models_sub.add_parser(
        "pull",
        help="download a base model into the Hugging Face cache and optionally prepare a TADM model directory",
        description="\n\n".join(__doc__.split("\n\n")[1:3]),
    )
    parser.add_argument("name", choices=PULLABLE,
                        help="sd21-base: the base model and untrained TADM modules (to train); tadm-official: SD 2.1, "
                             "its VAE and the authors' released checkpoints, imported (a model that reconstructs)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="Hugging Face hub cache to fill (default: HF_HUB_CACHE, else $HF_HOME/hub); serve with the same "
        "HF_HUB_CACHE",
    )
    parser.add_argument("--repo-id", default=None,
                        help=f"download the base model from this hub repository instead (a mirror of "
                             f"{SD21_BASE.repo_id}, or for tadm-official of {official.SD21.repo_id})")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of the repository (default: main)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="model directory to create (must not exist yet; required for tadm-official)")
    parser.add_argument("--scale", type=int, choices=SUPPORTED_SCALES, default=16, help="scale of the model directory (default 16)")
    official.add_arguments(parser)
    parser.set_defaults(handler=_pull)


def _pull(args: argparse.Namespace) -> int:
    if args.name == "tadm-official":
        return official.pull(args)
    official.refuse_arguments(args)
    base = SD21_BASE
    repo_id = args.repo_id or base.repo_id
    output: Path | None = args.output
    # 1. Check the output first: a download of several GB must not end in "directory exists".
    check_output(output)
    # 2. Download (or find in the cache) before importing torch: the offline failure stays cheap.
    snapshot = download(repo_id, base.allow_patterns, cache_dir=args.cache_dir, revision=args.revision,
                        manual=SD21_BASE_MANUAL)
    print(f"{repo_id}: {snapshot}")  # noqa: T201
    if output is None:
        return 0
    # 3. Build the TADM on the downloaded backbone and write the model directory.
    pipe = prepare_model_directory("sd21-base", Path(snapshot), repo_id, output, scale=args.scale)
    print(  # noqa: T201
        f"model directory {output} (model {pipe.model_id}, {pipe.scale}x, base {repo_id}); its TADM modules are "
        "untrained: train it (tadm train), or get the authors' model (tadm models pull tadm-official)"
    )
    return 0


def prepare_model_directory(preset: str, snapshot: Path, repo_id: str, output: Path, *, scale: int):
    """Build ``preset`` on the backbone in ``snapshot`` and write it to ``output``, referencing ``repo_id``."""
    from model import TADMPipeline
    from model.backbones import BaseModelNotFoundError

    try:
        pipe = TADMPipeline.from_preset(preset, scale=scale, base=str(snapshot))
    except BaseModelNotFoundError as exc:
        raise CommandError(f"the download in {snapshot} is incomplete or not diffusers-format: {exc}") from exc
    # Reference the base by hub id, not by cache path: the same weights give the same model id on every host.
    pipe.config["base"] = {"kind": "pretrained", "ref": repo_id}
    save_atomically(pipe, output)
    return pipe
