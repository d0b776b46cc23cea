"""Fixtures for the training tests: a tiny model on small crops of real photographs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny models are far faster on one thread than on two cores shared with other test processes.
    Module scope, autouse: it is in place before the module-scoped training runs are made."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory, kodak_dir: Path) -> Path:
    """One 64x64 crop of a Kodak photograph: every training batch is that crop (or its mirror image)."""
    folder = tmp_path_factory.mktemp("photos")
    with Image.open(kodak_dir / "kodak__kodim23.png") as img:
        img.convert("RGB").crop((320, 160, 384, 224)).save(folder / "parrot.png")
    return folder


def small_run(stage: str, output: Path, data: Path, **overrides):
    """A TrainConfig for a few steps of the tiny model on 64 px crops; no validation, no worker processes."""
    from model.training.trainer import TrainConfig

    options = dict(
        stage=stage, output_dir=output, data_dirs=[data], iterations=6, batch_size=2, crop_size=64, lr=1e-3,
        checkpoint_every=1000, validate_every=0, log_every=1, num_workers=0,
    )
    options.update(overrides)
    return TrainConfig(**options)


def fixed_batch_loss(pipe, stage_name: str, data: Path) -> float:
    """The stage's loss on the training crop (unflipped), with the quantisation noise seeded."""
    import numpy as np

    from model.training import stages

    with Image.open(next(data.iterdir())) as img:
        x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    stage = stages.get_stage(stage_name)
    stages.set_trainable(pipe, stage.trainable(pipe))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        z = pipe.encode_latent(x)
        return float(stage.loss(pipe, x, z, None)["loss"])
