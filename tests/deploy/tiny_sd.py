"""A tiny Stable-Diffusion-shaped repository in the Hugging Face cache layout, for `tadm models pull` offline.

Real diffusers/transformers classes in tiny configs (the `tiny` preset's UNet and VAE, a 1-layer CLIP text
encoder, a CLIP BPE tokenizer over a handful of tokens), saved where ``snapshot_download`` looks for a cached
snapshot: ``<cache>/models--<org>--<name>/snapshots/<commit>/`` with ``refs/main`` naming the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_tiny_sd_snapshot(cache_dir: Path, repo_id: str) -> Path:
    """Write the tiny repository into ``cache_dir`` and return its snapshot folder."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from model.backbones import SD_NOISE_SCHEDULE, TINY

    repo_dir = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / COMMIT
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))

    torch.manual_seed(0)
    UNet2DConditionModel(**TINY.unet).save_pretrained(snapshot / "unet")
    AutoencoderKL(**TINY.vae).save_pretrained(snapshot / "vae")
    schedule = {k: v for k, v in SD_NOISE_SCHEDULE.items() if not k.startswith("_")}
    DDPMScheduler(**schedule).save_pretrained(snapshot / "scheduler")

    # A CLIP BPE tokenizer needs a vocabulary and a merges file; a few byte-level tokens are enough for "".
    tok_dir = cache_dir / "tokenizer-src"
    tok_dir.mkdir()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "b</w>": 3, "a": 4, "b": 5}
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
