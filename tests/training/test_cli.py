"""`tadm train` from the command line: the perceptual-loss refusal, and a real stage-1 run."""

from __future__ import annotations

import pytest

from model.evaluation import perceptual
from service.cli import main


def test_stage2_refuses_without_perceptual_weights_unless_a_substitute_is_chosen(tmp_path, photo_folder, capsys):
    if perceptual.unavailable_reason("lpips") is None:
        pytest.skip("LPIPS and its weights are installed here: there is nothing to refuse")
    code = main(["train", "stage2", "--init", str(tmp_path / "nowhere"), "--data", str(photo_folder),
                 "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1
    assert "LPIPS" in err and "--perceptual-loss" in err and "none" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_stage1_runs_from_the_command_line(tmp_path, photo_folder, capsys):
    out = tmp_path / "run"
    code = main(["train", "stage1", "--preset", "tiny", "--data", str(photo_folder), "-o", str(out),
                 "--iterations", "2", "--batch-size", "1", "--crop-size", "64", "--num-workers", "0",
                 "--validate-every", "2", "--checkpoint-every", "2"])
    assert code == 0
    assert (out / "model" / "tadm.json").is_file()
    assert (out / "checkpoints" / "step-00000002" / "state.json").is_file()
    assert list((out / "validation" / "step-00000002").glob("*.png"))
    assert "stage1 done" in capsys.readouterr().out


def test_a_loss_weight_is_recorded_and_a_wrong_one_refused(tmp_path, photo_folder, capsys):
    import json

    common = ["train", "stage1", "--preset", "tiny", "--data", str(photo_folder), "--iterations", "1",
              "--batch-size", "1", "--crop-size", "64", "--num-workers", "0", "--validate-every", "0"]
    assert main([*common, "-o", str(tmp_path / "run"), "--loss-weight", "lr_guidance=0.5"]) == 0
    entry = json.loads((tmp_path / "run" / "model" / "training.json").read_text())["stages"][-1]
    assert entry["loss_weights"]["lr_guidance"] == 0.5 and entry["loss_weights"]["latent_direct"] == 1.0
    assert entry["loss_weights_changed"] == {"lr_guidance": 0.5}

    assert main([*common, "-o", str(tmp_path / "wrong"), "--loss-weight", "latent=0.5"]) == 1
    err = capsys.readouterr().err
    assert "stage1 has no loss term 'latent'" in err and "latent_direct" in err
    assert not (tmp_path / "wrong").exists()  # refused before anything was written
    with pytest.raises(SystemExit):  # argparse: not TERM=WEIGHT
        main([*common, "-o", str(tmp_path / "bad"), "--loss-weight", "latent"])
    assert "expected TERM=WEIGHT" in capsys.readouterr().err


def test_bad_data_folder_is_a_one_line_error(tmp_path, capsys):
    code = main(["train", "stage1", "--preset", "tiny", "--data", str(tmp_path / "missing"), "-o",
                 str(tmp_path / "run"), "--num-workers", "0"])
    assert code == 1
    assert "no such data folder" in capsys.readouterr().err


@pytest.mark.slow
def test_two_processes_train_as_one_run(tmp_path, photo_folder):
    """torchrun with two CPU processes (gloo): one log, one checkpoint, one model, and both ranks took part."""
    import json
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    tadm = Path(sys.executable).with_name("tadm")
    if not torchrun.exists() or not tadm.exists():
        pytest.skip("torchrun or the tadm entry point is not installed in this environment")
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
         str(tadm), "train", "stage1", "--preset", "tiny", "--data", str(photo_folder), "-o", str(out),
         "--iterations", "2", "--batch-size", "1", "--crop-size", "64", "--num-workers", "0",
         "--validate-every", "0", "--checkpoint-every", "2", "--log-every", "1", "--gradient-accumulation", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    steps = [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # the main process alone writes the log
    history = json.loads((out / "model" / "training.json").read_text())["stages"]
    assert history[-1]["processes"] == 2 and history[-1]["gradient_accumulation"] == 2
    assert (out / "checkpoints" / "step-00000002" / "state.json").is_file()


def test_g_d_grows_from_the_command_line_and_never_shrinks(tmp_path, photo_folder, capsys):
    common = ["--data", str(photo_folder), "--iterations", "1", "--batch-size", "1", "--crop-size", "64",
              "--num-workers", "0", "--validate-every", "0"]
    assert main(["train", "stage1", "--preset", "tiny", "-o", str(tmp_path / "start"), *common]) == 0
    start = str(tmp_path / "start" / "model")
    grown = tmp_path / "grown"
    assert main(["train", "stage1", "--init", start, "--skip-stage-check", "--decoder-channels", "32",
                 "-o", str(grown), *common]) == 0
    assert '"decoder_channels": 32' in (grown / "model" / "dfrm" / "config.json").read_text()
    capsys.readouterr()
    code = main(["train", "stage1", "--init", start, "--skip-stage-check", "--decoder-res-blocks", "0",
                 "-o", str(tmp_path / "shrunk"), *common])
    err = capsys.readouterr().err
    assert code == 1
    assert "G_d can only grow" in err and "Traceback" not in err
    assert not (tmp_path / "shrunk" / "model").exists()
