"""The importer, fed pickles laid out like the authors' released checkpoints (spec sections 2 and 6), built here
from modules with the spec's names on the tiny backbone (the real SD 2.1-base cannot be downloaded here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import TADMPipeline, lora
from model.dfrm import DFRM
from model.importer import OfficialCheckpointError, import_official
from model.scheduler import Refiner
from model.tpm import TimestepPredictor

SF = 0.18215


def randomised(module: torch.nn.Module, seed: int, std: float = 0.02) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module.eval()


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """Their modules (trained on unscaled latents) and their two pickles."""
    root = tmp_path_factory.mktemp("official")
    dfrm = randomised(DFRM(scale=16, pixel_channels=4, hidden_channels=16, num_res_blocks=2, num_inv_blocks=2,
                           inv_growth=8), 1)
    tpm = randomised(TimestepPredictor(channels=8, num_res_blocks=2, mlp_hidden=16, mlp_depth=2), 2, std=0.2)
    refiner = randomised(Refiner(channels=8, num_res_blocks=2), 3)
    donor = TADMPipeline.from_preset("tiny", pretrained=False, seed=5)
    for module in (donor.unet, donor.vae):
        with torch.no_grad():
            for name, p in module.named_parameters():
                if "lora_" in name:
                    p.normal_(0, 0.01)
    torch.save({"state_dict": dfrm.state_dict()}, root / "dfrm.pth")
    tadm = {
        "rank_unet": donor.config["unet_lora_rank"],
        "unet_lora_target_modules": list(lora.UNET_LORA_TARGETS),
        "state_dict_unet": {k: v for k, v in donor.unet.state_dict().items() if "lora" in k or "conv_in" in k},
        "rank_vae": donor.config["vae_lora_rank"],
        "vae_lora_target_modules": lora.VAE_LORA_TARGETS,
        "state_dict_vae": {k: v for k, v in donor.vae.state_dict().items() if "lora" in k},
        "state_dict_timemapping": tpm.state_dict(),
        "state_dict_refiner": refiner.state_dict(),
    }
    torch.save(tadm, root / "tadm.pkl")
    return {"root": root, "dfrm": dfrm, "tpm": tpm, "refiner": refiner, "donor": donor, "tadm": tadm}


def run_import(official, tadm_path=None, dfrm_path=None, out="model"):
    root = official["root"]
    return import_official(dfrm_path or root / "dfrm.pth", tadm_path or root / "tadm.pkl", root / out, preset="tiny")


def test_every_key_maps_and_the_modules_behave_as_theirs(official):
    pipe = run_import(official)
    g = torch.Generator().manual_seed(9)
    x = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    z_unscaled = torch.randn(1, 4, 8, 8, generator=g) * 5  # what their code fed the DFRM and TPM
    with torch.no_grad():
        theirs = official["dfrm"](x, z_unscaled)
        ours = pipe.dfrm(x, z_unscaled * SF)  # this project passes scaled latents everywhere
        assert torch.allclose(ours["y"], theirs["y"], atol=1e-5)
        assert torch.allclose(ours["z_hat"], theirs["z_hat"] * SF, atol=1e-5)
        assert torch.allclose(pipe.tpm(z_unscaled * SF), official["tpm"](z_unscaled), atol=1e-4)
        eps = torch.randn(1, 4, 8, 8, generator=g)
        t = torch.tensor([77.0])
        assert torch.equal(pipe.refiner(z_unscaled, eps, t), official["refiner"](z_unscaled, eps, t))
    unet_state = pipe.unet.state_dict()
    for key, value in official["tadm"]["state_dict_unet"].items():
        assert torch.equal(unet_state[key], value), key


def test_imported_directory_loads_and_reconstructs(official, kodak_image):
    pipe = run_import(official, out="again")
    loaded = TADMPipeline.from_pretrained(official["root"] / "again")
    assert loaded.model_id == pipe.model_id and loaded.config["imported_from"]
    thumb = loaded.downscale(kodak_image)
    assert np.asarray(loaded.upscale(thumb)).shape == (512, 768, 3)


@pytest.mark.parametrize("part", ["state_dict_unet", "state_dict_vae", "state_dict_timemapping", "state_dict_refiner"])
def test_a_missing_key_fails_loudly(official, part):
    tadm = {**official["tadm"], part: dict(list(official["tadm"][part].items())[1:])}
    path = official["root"] / f"missing-{part}.pkl"
    torch.save(tadm, path)
    with pytest.raises(OfficialCheckpointError, match="missing|lacks"):
        run_import(official, tadm_path=path, out=f"m-{part}")


@pytest.mark.parametrize("part", ["state_dict_unet", "state_dict_timemapping"])
def test_an_extra_key_fails_loudly(official, part):
    tadm = {**official["tadm"], part: {**official["tadm"][part], "surplus.weight": torch.zeros(1)}}
    path = official["root"] / f"extra-{part}.pkl"
    torch.save(tadm, path)
    with pytest.raises(OfficialCheckpointError, match="unexpected.*surplus"):
        run_import(official, tadm_path=path, out=f"x-{part}")


def test_a_dfrm_with_a_missing_key_fails(official):
    state = official["dfrm"].state_dict()
    state.pop("inv_module.1.H.conv3.weight")
    path = official["root"] / "bad-dfrm.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(OfficialCheckpointError, match="inv_module.1.H.conv3.weight"):
        run_import(official, dfrm_path=path, out="bad-dfrm")


def test_not_a_checkpoint(official, tmp_path):
    path = tmp_path / "junk.pkl"
    path.write_bytes(b"not a pickle")
    with pytest.raises(OfficialCheckpointError, match="cannot be read"):
        run_import(official, tadm_path=path, out="junk")
    torch.save({"something": torch.zeros(1)}, path)
    with pytest.raises(OfficialCheckpointError, match="not a TADM checkpoint"):
        run_import(official, tadm_path=path, out="junk2")
