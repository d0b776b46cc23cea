"""The importer, fed pickles laid out like the authors' released checkpoints (their DFRM and LoRA files), built here
from modules with the authors' names on the tiny backbone (the real SD 2.1 cannot be downloaded here); the
pretrained path runs on tiny SD-shaped diffusers directories (tests/deploy/tiny_sd.py)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from model import TADMPipeline
from model.checkpoints import ModelDirectoryError
from model.importer import OfficialCheckpointError, build_official, find_official_checkpoints, import_official
from tests.deploy.tiny_sd import write_tiny_sd_snapshot, write_tiny_vae_snapshot
from tests.model.official_files import write_official_checkpoints

SF = 0.18215


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    return write_official_checkpoints(tmp_path_factory.mktemp("official"))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """Local diffusers directories: SD 2.1-shaped bases (v- and ε-prediction) and a VAE of its own."""
    root = tmp_path_factory.mktemp("hub")
    return {
        "sd21": write_tiny_sd_snapshot(root, "local/sd21", prediction_type="v_prediction", with_vae=False),
        "sd21-base": write_tiny_sd_snapshot(root, "local/sd21-base"),
        "vae": write_tiny_vae_snapshot(root, "local/sd-vae-ft-mse"),
    }


def run_import(official, tadm_path=None, dfrm_path=None, out="model", **options):
    root = official.dfrm_path.parent
    return import_official(dfrm_path or official.dfrm_path, tadm_path or official.tadm_path, root / out,
                           preset="tiny", vae=None, **options)


def test_every_key_maps_and_the_modules_compute_what_the_released_inference_does(official):
    pipe = run_import(official)
    g = torch.Generator().manual_seed(9)
    x = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    z_unscaled = torch.randn(1, 4, 8, 8, generator=g) * 5  # what their code fed the DFRM
    with torch.no_grad():
        theirs = official.dfrm(x, z_unscaled)
        ours = pipe.dfrm(x, z_unscaled * SF)  # this project passes scaled latents everywhere
        assert torch.allclose(ours["y"], theirs["y"], atol=1e-5)
        assert torch.allclose(ours["z_hat"], theirs["z_hat"] * SF, atol=1e-5)
        # Their released inference feeds the TPM the scaled latent, the tensor the UNet sees.
        assert torch.allclose(pipe.tpm(z_unscaled * SF), official.tpm(z_unscaled * SF), atol=1e-5)
        assert not torch.allclose(pipe.tpm(z_unscaled * SF), official.tpm(z_unscaled), atol=1e-2)
        eps = torch.randn(1, 4, 8, 8, generator=g)
        t = torch.tensor([77.0])
        assert torch.equal(pipe.refiner(z_unscaled, eps, t), official.refiner(z_unscaled, eps, t))
    unet_state = pipe.unet.state_dict()
    for key, value in official.tadm["state_dict_unet"].items():
        assert torch.equal(unet_state[key], value), key
    config = json.loads((official.dfrm_path.parent / "model" / "tadm.json").read_text())
    assert (config["tpm_input"], config["layout"], config["imported_from"]) == ("scaled", "official", "wwangcece/TADM")


def test_the_training_convention_is_an_option_with_its_own_model_id(official):
    released = run_import(official, out="released")
    training = run_import(official, out="training", tpm_input="training")
    z_unscaled = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3)) * 5
    with torch.no_grad():  # their training forward fed the TPM the unscaled latent
        assert torch.allclose(training.tpm(z_unscaled * SF), official.tpm(z_unscaled), atol=1e-4)
    assert training.config["tpm_input"] == "unscaled"
    assert training.model_id != released.model_id
    loaded = TADMPipeline.from_pretrained(official.dfrm_path.parent / "training")
    assert loaded.model_id == training.model_id
    with pytest.raises(ValueError, match="`tpm_input` must be one of \\['released', 'training'\\]"):
        run_import(official, out="bad", tpm_input="inference")


def test_a_tpm_config_that_contradicts_tadm_json_is_refused(official):
    run_import(official, out="edited")
    tpm_config = official.dfrm_path.parent / "edited" / "tpm" / "config.json"
    config = json.loads(tpm_config.read_text())
    tpm_config.write_text(json.dumps({**config, "latent_scale": 1 / SF}))  # hashed nowhere: tadm.json is
    with pytest.raises(ModelDirectoryError, match="says the TPM sees the scaled latent"):
        TADMPipeline.from_pretrained(official.dfrm_path.parent / "edited")


def test_imported_directory_loads_and_reconstructs(official, kodak_image):
    pipe = run_import(official, out="again")
    loaded = TADMPipeline.from_pretrained(official.dfrm_path.parent / "again")
    assert loaded.model_id == pipe.model_id and loaded.config["imported_from"]
    thumb = loaded.downscale(kodak_image)
    assert thumb.image.size == (768 // 16, 512 // 16)  # 768x512 is a multiple of 64 already
    assert np.asarray(loaded.upscale(thumb)).shape == (512, 768, 3)


def test_on_sd21_with_a_vae_of_its_own(official, hub, caplog):
    caplog.set_level(logging.INFO, logger="model")
    out = official.dfrm_path.parent / "sd21"
    pipe = import_official(official.dfrm_path, official.tadm_path, out, base=str(hub["sd21"]), vae=str(hub["vae"]))
    assert pipe.config["preset"] == "sd21" and pipe.config["noise_schedule"]["prediction_type"] == "v_prediction"
    assert pipe.config["base"]["ref"] == str(hub["sd21"]) and pipe.config["vae"]["ref"] == str(hub["vae"])
    assert "predicts" not in caplog.text  # the base is what the preset expects
    assert "conv_in: relative L2 distance" in caplog.text
    from diffusers import AutoencoderKL

    from model import lora

    own_vae = AutoencoderKL.from_pretrained(hub["vae"]).state_dict()
    loaded = TADMPipeline.from_pretrained(out)
    assert loaded.model_id == pipe.model_id
    decoder = lora.base_state_dict(loaded.vae)
    assert all(torch.equal(decoder[k], v) for k, v in own_vae.items())  # the VAE of --vae, not a base's
    assert pipe.model_id != import_official(official.dfrm_path, official.tadm_path, out.with_name("sd21-b"),
                                            base=str(hub["sd21"]), vae=str(hub["sd21-base"])).model_id


def test_a_base_with_another_prediction_type_is_warned_about(official, hub, caplog):
    with caplog.at_level(logging.WARNING, logger="model"):
        pipe = build_official(official.dfrm_path, official.tadm_path, base=str(hub["sd21-base"]),
                              vae=str(hub["vae"]))
    assert "predicts 'epsilon' but preset 'sd21' expects 'v_prediction'" in caplog.text
    assert pipe.config["noise_schedule"]["prediction_type"] == "epsilon"  # what the base says is what runs


@pytest.mark.parametrize("part", ["state_dict_unet", "state_dict_vae", "state_dict_timemapping", "state_dict_refiner"])
def test_a_missing_key_fails_loudly(official, part):
    tadm = {**official.tadm, part: dict(list(official.tadm[part].items())[1:])}
    path = official.dfrm_path.parent / f"missing-{part}.pkl"
    torch.save(tadm, path)
    with pytest.raises(OfficialCheckpointError, match="missing|lacks"):
        run_import(official, tadm_path=path, out=f"m-{part}")


@pytest.mark.parametrize("part", ["state_dict_unet", "state_dict_timemapping"])
def test_an_extra_key_fails_loudly(official, part):
    tadm = {**official.tadm, part: {**official.tadm[part], "surplus.weight": torch.zeros(1)}}
    path = official.dfrm_path.parent / f"extra-{part}.pkl"
    torch.save(tadm, path)
    with pytest.raises(OfficialCheckpointError, match="unexpected.*surplus"):
        run_import(official, tadm_path=path, out=f"x-{part}")


def test_a_dfrm_with_a_missing_key_fails(official):
    state = official.dfrm.state_dict()
    state.pop("inv_module.1.H.conv3.weight")
    path = official.dfrm_path.parent / "bad-dfrm.pth"
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


def test_checkpoints_are_found_by_content_for_the_scale_asked(tmp_path):
    folder = tmp_path / "drive"
    x16 = write_official_checkpoints(folder, 16, dfrm_name="dfrm.ckpt", bare_dfrm=True)  # the bare state dict
    x32 = write_official_checkpoints(folder / "x32", 32)  # a subfolder, as a Drive folder may have
    (folder / "README.txt").write_text("not a checkpoint")
    (folder / "notes.pkl").write_bytes(b"junk")
    assert find_official_checkpoints(folder, 16) == (x16.dfrm_path, x16.tadm_path)
    assert find_official_checkpoints(folder, 32) == (x32.dfrm_path, x32.tadm_path)
    x16.tadm_path.rename(folder / "tadm_final.pkl")  # two TADM checkpoints, neither named for 16
    with pytest.raises(OfficialCheckpointError,
                       match="one whose name holds 16 among several.*tadm_final.pkl.*notes.pkl \\(unreadable\\)"):
        find_official_checkpoints(folder, 16)
    with pytest.raises(OfficialCheckpointError, match="exactly one 16x DFRM.*found DFRMs {32: \\['dfrm_x32.pth'\\]}"):
        find_official_checkpoints(folder / "x32", 16)


def test_the_command_line_imports_and_names_a_bad_vae_in_one_line(official, hub, tmp_path, capsys):
    from service.cli import main

    common = ["import-official", "--dfrm", str(official.dfrm_path), "--tadm", str(official.tadm_path),
              "--base", str(hub["sd21"])]
    assert main([*common, "--vae", str(hub["vae"]), "-o", str(tmp_path / "m"), "--tpm-input", "training"]) == 0
    assert "imported 16x model" in capsys.readouterr().out
    assert json.loads((tmp_path / "m" / "tadm.json").read_text())["tpm_input"] == "unscaled"
    assert main([*common, "--vae", str(tmp_path / "nowhere"), "-o", str(tmp_path / "m2")]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tadm")]  # not tqdm's bars
    assert err == [f"tadm import-official: error: the VAE directory '{tmp_path / 'nowhere'}' does not exist"]
    assert not (tmp_path / "m2").exists()
