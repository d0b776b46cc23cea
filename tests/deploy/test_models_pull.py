"""`tadm models pull sd21-base`: offline it fails with one clear line and writes nothing; with the base model
in the Hugging Face cache it prepares a model directory that loads back (from the cache, by hub id).

The hub itself is unreachable here: the success path runs against a tiny SD-shaped repository placed in the
cache (real diffusers/transformers classes, tiny configs), with HF_HUB_OFFLINE=1 in both cases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from deploy_files import REPO

SD21_BASE = "stabilityai/stable-diffusion-2-1-base"


def tadm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TADM_"))}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())", *args],
        env={**clean, "PYTHONPATH": str(REPO), **env}, capture_output=True, text=True, timeout=300, check=False,
        cwd=REPO,
    )


def test_offline_pull_fails_with_one_line_and_writes_nothing(tmp_path):
    output = tmp_path / "model"
    result = tadm("models", "pull", "sd21-base", "--cache-dir", str(tmp_path / "cache"), "--output", str(output),
                  env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tadm models: error: cannot download stabilityai/stable-diffusion-2-1-base")
    assert "HF_HUB_OFFLINE" in lines[0]
    assert not output.exists()


def test_pull_refuses_to_overwrite_an_existing_model_directory(tmp_path, capsys):
    from service.cli import main

    output = tmp_path / "model"
    output.mkdir()
    (output / "tadm.json").write_text("{}")
    # Checked before any download: no hub access is attempted.
    assert main(["models", "pull", "sd21-base", "--output", str(output)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (output / "tadm.json").read_text() == "{}"


# One process writes the tiny repository into the cache, pulls, and loads the result back: torch, diffusers and
# transformers are imported once.
PULL_AND_LOAD = """
import sys
from pathlib import Path
from tiny_sd import write_tiny_sd_snapshot
write_tiny_sd_snapshot(Path(sys.argv[2]), "stabilityai/stable-diffusion-2-1-base")
from service.cli import main
status = main(["models", "pull", "sd21-base", "--output", sys.argv[1]])
if status:
    sys.exit(status)
from model import TADMPipeline
print("loaded", TADMPipeline.from_pretrained(sys.argv[1]).model_id)
"""


def test_pull_from_the_cache_prepares_a_model_directory_that_loads(tmp_path):
    output = tmp_path / "models" / "tadm-sd21-16x"
    cache = tmp_path / "hf-cache"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TADM_"))}
    env = {**clean, "PYTHONPATH": os.pathsep.join([str(REPO), str(Path(__file__).parent)]),
           "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    result = subprocess.run([sys.executable, "-c", PULL_AND_LOAD, str(output), str(cache)], env=env,
                            capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((output / "tadm.json").read_text())
    # The base is referenced by hub id, not by the cache path it was read from.
    assert config["base"] == {"kind": "pretrained", "ref": SD21_BASE}
    assert (config["preset"], config["scale"]) == ("sd21-base", 16)
    assert not list(output.parent.glob(".*partial*"))
    printed_id = result.stdout.split("(model ")[1].split(",")[0]
    # Loaded back from the cache by hub id (offline), it is the same model.
    assert result.stdout.strip().splitlines()[-1] == f"loaded {printed_id}"
