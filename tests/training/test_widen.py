"""Growing a trained G_d or G_e (model.training.widen): same outputs, new weights that learn, and the trainer's
record."""

from __future__ import annotations

import json

import pytest
import torch

from model.dfrm import DFRM
from model.training.widen import widen_decoder, widen_encoder

from .conftest import small_run


def trained_looking_dfrm(scale: int, seed: int = 0) -> DFRM:
    """A small DFRM with every weight random (no zero-initialised layer hides a wrong copy)."""
    dfrm = DFRM(scale=scale, latent_channels=8, pixel_channels=4, hidden_channels=16, num_res_blocks=2,
                num_inv_blocks=2, inv_growth=8, latent_factor=4, shuffle_channels=8)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in dfrm.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
    return dfrm.eval()


@pytest.mark.parametrize("scale", [16, 32])  # one and two ConvBlocks between shuffles
def test_a_grown_g_d_gives_the_same_latent(scale):
    dfrm = trained_looking_dfrm(scale)
    wider = widen_decoder(dfrm, channels=24, res_blocks=4, shuffle_channels=12)
    assert dfrm.decoder_shape == (16, 2, 8) and wider.decoder_shape == (24, 4, 12)
    assert sum(p.numel() for p in wider.parameters()) > sum(p.numel() for p in dfrm.parameters())
    y = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(1)) * 2 - 1
    expected = dfrm.upscale(y)
    assert expected.abs().max() > 0.1  # a copy that dropped weights would not reproduce this
    torch.testing.assert_close(wider.upscale(y), expected, rtol=0, atol=1e-5)
    x = torch.rand(1, 3, scale * 2, scale * 2) * 2 - 1
    z = torch.randn(1, 8, scale // 2, scale // 2)
    assert torch.equal(wider.downscale(x, z, noise=False), dfrm.downscale(x, z, noise=False))  # G_e, F untouched


def test_the_new_weights_learn():
    dfrm = trained_looking_dfrm(16)
    wider = widen_decoder(dfrm, channels=24, res_blocks=3).train()
    new_block = wider.final_module[3]  # the third Resblock did not exist before
    first_conv = wider.final_module[0].conv_in
    assert torch.count_nonzero(new_block.res_block[2].weight) == 0
    assert torch.count_nonzero(first_conv.weight[16:]) > 0  # new channels carry signal from the start
    y = torch.rand(2, 3, 4, 4) * 2 - 1
    target = torch.randn(2, 8, 16, 16)
    loss = torch.nn.functional.mse_loss(wider.upscale(y), target)
    loss.backward()
    assert new_block.res_block[2].weight.grad.abs().sum() > 0
    # an old channel's weights from the new channels: zero now, but they get a gradient
    resblock_conv = wider.final_module[1].res_block[0]
    assert torch.count_nonzero(resblock_conv.weight[:16, 16:]) == 0
    assert resblock_conv.weight.grad[:16, 16:].abs().sum() > 0


@pytest.mark.parametrize("scale", [16, 32])  # two and three PixelUnshuffles in the latent branch
def test_a_grown_g_e_gives_the_same_thumbnail(scale):
    dfrm = trained_looking_dfrm(scale)
    wider = widen_encoder(dfrm, channels=28, res_blocks=3)
    assert dfrm.encoder_shape == (16, 2) and wider.encoder_shape == (28, 3)
    assert wider.decoder_shape == dfrm.decoder_shape  # G_d's defaults follow hidden_channels: pinned
    x = torch.rand(2, 3, scale * 2, scale * 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    z = torch.randn(2, 8, scale // 2, scale * 3 // 4, generator=torch.Generator().manual_seed(2))
    expected = dfrm.to_image(dfrm.encode_features(x, z))
    assert expected.std() > 0.05  # a copy that dropped weights would not reproduce this
    torch.testing.assert_close(wider.to_image(wider.encode_features(x, z)), expected, rtol=0, atol=1e-5)
    y = torch.rand(1, 3, 3, 4) * 2 - 1
    assert torch.equal(wider.upscale(y), dfrm.upscale(y))  # G_d and F untouched


def test_the_new_g_e_weights_learn():
    dfrm = trained_looking_dfrm(16)
    wider = widen_encoder(dfrm, channels=24, res_blocks=3).train()
    new_fusion_block = wider.fusing_module[2]  # the third fusion Resblock did not exist before
    to_features = wider.fusing_module[-1].conv_in  # writes the 3 feature channels: pixel 4 + latent 16 read
    assert torch.count_nonzero(new_fusion_block.res_block[2].weight) == 0
    assert torch.count_nonzero(to_features.weight[:, 20:]) == 0
    assert torch.count_nonzero(wider.latent_module[0].conv_in.weight[16:]) > 0  # new channels carry signal
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z = torch.randn(2, 8, 8, 8)
    loss = torch.nn.functional.mse_loss(wider.encode_features(x, z), torch.randn(2, 3, 2, 2))
    loss.backward()
    assert new_fusion_block.res_block[2].weight.grad.abs().sum() > 0
    assert to_features.weight.grad[:, 20:].abs().sum() > 0  # the thumbnail can start reading the new channels


def test_g_e_cannot_shrink():
    with pytest.raises(ValueError, match="G_e can only grow, but its channels would go from 16 to 8"):
        widen_encoder(trained_looking_dfrm(16), channels=8)


def test_a_grown_g_d_saves_and_loads(tmp_path):
    wider = widen_decoder(trained_looking_dfrm(16), channels=20, res_blocks=3)
    wider.save_pretrained(tmp_path)
    loaded = DFRM.from_pretrained(tmp_path).eval()
    y = torch.rand(1, 3, 3, 3) * 2 - 1
    assert loaded.decoder_shape == (20, 3, 8)
    assert torch.equal(loaded.upscale(y), wider.eval().upscale(y))


def test_g_d_cannot_shrink():
    with pytest.raises(ValueError, match="Resblocks would go from 2 to 1"):
        widen_decoder(trained_looking_dfrm(16), res_blocks=1)


def test_a_stage_that_grows_g_d_records_it(tmp_path, photo_folder):
    from model.pipeline import TADMPipeline
    from model.training.trainer import train

    start = train(small_run("stage1", tmp_path / "start", photo_folder, preset="tiny", iterations=1))
    before = TADMPipeline.from_pretrained(start).dfrm.decoder_shape
    grown = train(small_run("stage1", tmp_path / "grown", photo_folder, init=start, iterations=2,
                            check_previous_stage=False, decoder_channels=before[0] * 2, decoder_res_blocks=before[1] + 1))
    assert TADMPipeline.from_pretrained(grown).dfrm.decoder_shape[:2] == (before[0] * 2, before[1] + 1)
    entry = json.loads((grown / "training.json").read_text())["stages"][-1]
    assert entry["g_d_grown_from"] == list(before)
    assert entry["g_d"][:2] == [before[0] * 2, before[1] + 1]


def test_a_stage_that_grows_g_e_records_it_and_its_checkpoints_rebuild(tmp_path, photo_folder):
    from model.pipeline import TADMPipeline
    from model.training.from_checkpoint import checkpoint_dfrm_sizes, model_from_checkpoints
    from model.training.trainer import train

    start = train(small_run("stage1", tmp_path / "start", photo_folder, preset="tiny", iterations=1))
    before = TADMPipeline.from_pretrained(start).dfrm
    grown = train(small_run("stage3", tmp_path / "grown", photo_folder, init=start, iterations=2, checkpoint_every=2,
                            check_previous_stage=False, encoder_channels=before.encoder_shape[0] + 8,
                            encoder_res_blocks=before.encoder_shape[1] + 1))
    after = TADMPipeline.from_pretrained(grown)
    assert after.dfrm.encoder_shape == (before.encoder_shape[0] + 8, before.encoder_shape[1] + 1)
    assert after.dfrm.decoder_shape == before.decoder_shape
    entry = json.loads((grown / "training.json").read_text())["stages"][-1]
    assert entry["g_e_grown_from"] == list(before.encoder_shape) and entry["g_e"] == list(after.dfrm.encoder_shape)
    # from_checkpoint grows the start model's G_e to the checkpoint's: the same model as the stage wrote
    checkpoint = tmp_path / "grown" / "checkpoints" / "step-00000002"
    # tiny's G_d has one PixelShuffle, so no width between shuffles to read
    assert checkpoint_dfrm_sizes(checkpoint) == (after.dfrm.encoder_shape, (*after.dfrm.decoder_shape[:2], None))
    rebuilt = model_from_checkpoints("stage3", start, [checkpoint], tmp_path / "rebuilt")
    assert rebuilt.model_id == after.model_id
