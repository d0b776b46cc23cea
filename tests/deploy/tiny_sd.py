"""A tiny Stable-Diffusion-shaped repository in the Hugging Face cache layout, for `tadm models pull` offline.

Real diffusers/transformers classes in tiny configs (the `tiny` preset's UNet and VAE, a 1-layer CLIP text
encoder, a CLIP BPE tokenizer over a handful of tokens), saved where ``snapshot_download`` looks for a cached
snapshot: ``<cache>/models--<org>--<name>/snapshots/<commit>/`` with ``refs/main`` naming the commit.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def snapshot_dir(cache_dir: Path, repo_id: str) -> Path:
    """An empty snapshot folder of ``repo_id`` in the cache, with ``refs/main`` naming it."""
    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / COMMIT
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snapshot.mkdir(parents=True)
    return snapshot


def write_tiny_sd_snapshot(cache_dir: Path, repo_id: str, prediction_type: str = "epsilon",
                           with_vae: bool = True) -> Path:
    """Write the tiny repository into ``cache_dir`` and return its snapshot folder (also a diffusers directory
    to pass as a local base model)."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from model.backbones import SD_NOISE_SCHEDULE, TINY

    snapshot = snapshot_dir(cache_dir, repo_id)
    (snapshot / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))

    torch.manual_seed(0)
    UNet2DConditionModel(**TINY.unet).save_pretrained(snapshot / "unet")
    if with_vae:
        AutoencoderKL(**TINY.vae).save_pretrained(snapshot / "vae")
    schedule = {k: v for k, v in SD_NOISE_SCHEDULE.items() if not k.startswith("_")}
    DDPMScheduler(**{**schedule, "prediction_type": prediction_type}).save_pretrained(snapshot / "scheduler")

    # A CLIP BPE tokenizer needs a vocabulary and a merges file; a few byte-level tokens are enough for "".
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5}
    with tempfile.TemporaryDirectory() as source:
        tok_dir = Path(source)
        (tok_dir / "vocab.json").write_text(json.dumps(vocab))
        (tok_dir / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(snapshot / "tokenizer")
    text_config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=TINY.cross_attention_dim,
        intermediate_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    CLIPTextModel(text_config).save_pretrained(snapshot / "text_encoder")
    return snapshot


def write_tiny_vae_snapshot(cache_dir: Path, repo_id: str, seed: int = 1) -> Path:
    """A tiny AutoencoderKL at the root of a repository, as ``stabilityai/sd-vae-ft-mse`` is laid out, with
    weights of its own (another seed than the SD snapshot's ``vae/``)."""
    import torch
    from diffusers import AutoencoderKL

    from model.backbones import TINY

    snapshot = snapshot_dir(cache_dir, repo_id)
    torch.manual_seed(seed)
    AutoencoderKL(**TINY.vae).save_pretrained(snapshot)
    return snapshot
