"""The stage-1/3 LR guidance target is an antialiased bicubic thumbnail, like the `bicubic` baseline's."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from model.training.losses import bicubic_target


def test_guidance_target_matches_pillows_antialiased_bicubic(kodak_dir):
    with Image.open(kodak_dir / "kodak__kodim01.png") as photo:
        image = photo.convert("RGB").crop((0, 0, 256, 256))
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1
    target = bicubic_target(x, 16)
    assert target.shape == (1, 3, 16, 16)
    pillow = np.asarray(image.resize((16, 16), Image.Resampling.BICUBIC), dtype=np.float32) / 127.5 - 1
    ours = target[0].permute(1, 2, 0).numpy()
    aliased = torch.nn.functional.interpolate(x, size=(16, 16), mode="bicubic", align_corners=False)[0]
    # Pillow and torch differ by rounding and edge handling only; point-sampled bicubic is far off.
    assert np.abs(ours - pillow).mean() < 0.02
    assert np.abs(aliased.permute(1, 2, 0).numpy() - pillow).mean() > 2 * np.abs(ours - pillow).mean()
