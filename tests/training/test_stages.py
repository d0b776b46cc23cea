"""Per stage, exactly the specified parameters require gradients; the registry can be extended."""

from __future__ import annotations

import pytest
import torch

from model.pipeline import TADMPipeline
from model.training import stages


@pytest.fixture(scope="module")
def pipe() -> TADMPipeline:
    return TADMPipeline.from_preset("tiny", scale=16, pretrained=False)


def trainable_names(pipe) -> set[str]:
    names = set()
    for prefix in ("vae", "unet", "dfrm", "tpm", "refiner"):
        module = getattr(pipe, prefix)
        names |= {f"{prefix}.{n}" for n, p in module.named_parameters() if p.requires_grad}
    return names


def expected_enhancement(pipe) -> set[str]:
    """Written from the supplement, independently of stages.enhancement_parameters."""
    names = {f"unet.{n}" for n, _ in pipe.unet.named_parameters() if "lora_" in n}
    names |= {f"unet.{n}" for n, _ in pipe.unet.named_parameters() if n.split(".")[0] == "conv_in"
              and "lora_" not in n}
    names |= {f"vae.{n}" for n, _ in pipe.vae.named_parameters() if "lora_" in n}
    names |= {f"tpm.{n}" for n, _ in pipe.tpm.named_parameters()}
    names |= {f"refiner.{n}" for n, _ in pipe.refiner.named_parameters()}
    return names


def test_stage1_trains_exactly_the_dfrm(pipe):
    stages.set_trainable(pipe, stages.get_stage("stage1").trainable(pipe))
    assert trainable_names(pipe) == {f"dfrm.{n}" for n, _ in pipe.dfrm.named_parameters()}
    assert pipe.dfrm.training and not pipe.unet.training and not pipe.vae.training


def test_stage2_trains_lora_conv_in_tpm_refiner(pipe):
    stages.set_trainable(pipe, stages.get_stage("stage2").trainable(pipe))
    names = trainable_names(pipe)
    assert names == expected_enhancement(pipe)
    assert {"unet.conv_in.weight", "unet.conv_in.bias"} <= names
    assert not any(n.startswith("vae.encoder") for n in names)  # the decoder's LoRA only
    assert any(n.startswith("vae.decoder") and "lora_" in n for n in names)
    assert not any(n.startswith("dfrm.") for n in names)
    assert not pipe.dfrm.training  # the frozen DFRM keeps rounding its thumbnail


def test_stage3_trains_the_union(pipe):
    stages.set_trainable(pipe, stages.get_stage("stage3").trainable(pipe))
    dfrm = {f"dfrm.{n}" for n, _ in pipe.dfrm.named_parameters()}
    assert trainable_names(pipe) == dfrm | expected_enhancement(pipe)


def test_registry_takes_a_new_stage(pipe):
    stage = stages.Stage(name="stage-test", summary="TPM only", trainable=lambda p: stages._prefixed("tpm", p.tpm),
                         loss=stages.losses.stage2_loss, loss_weights=stages.losses.IMAGE_WEIGHTS,
                         optimizer="adam", lr=1e-4, halve_every=None,
                         iterations=1, uses_perceptual=False, previous=None)
    stages.register_stage(stage)
    try:
        assert stages.get_stage("stage-test") is stage
        with pytest.raises(ValueError, match="already registered"):
            stages.register_stage(stage)
        stages.set_trainable(pipe, stage.trainable(pipe))
        assert trainable_names(pipe) == {f"tpm.{n}" for n, _ in pipe.tpm.named_parameters()}
    finally:
        del stages.STAGES["stage-test"]


def test_unknown_stage_names_the_choices():
    with pytest.raises(ValueError, match="stage1"):
        stages.get_stage("stage9")


def test_a_changed_loss_weight_changes_the_total_by_that_term(pipe):
    """stage 3 with the latent term at 0.25 instead of 1: the total loses 0.75 x that term, nothing else moves."""
    stage = stages.get_stage("stage3")
    weights = stages.loss_weights(stage, {"latent": 0.25})
    assert weights == {**stage.loss_weights, "latent": 0.25}
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def terms(w):
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the same quantisation noise for both
            return stage.loss(pipe, x, pipe.encode_latent(x), None, w)

    default, changed = terms(stage.loss_weights), terms(weights)
    assert float(default["latent"]) > 0
    assert torch.allclose(default["latent"], changed["latent"]) and torch.allclose(default["mse"], changed["mse"])
    assert float(default["loss"] - changed["loss"]) == pytest.approx(0.75 * float(default["latent"]), rel=1e-4)


def test_unknown_or_negative_loss_weights_are_refused_by_name():
    stage = stages.get_stage("stage3")
    with pytest.raises(ValueError, match="no loss term 'latnet'.*lr_guidance"):
        stages.loss_weights(stage, {"latnet": 1.0})
    with pytest.raises(ValueError, match="mse is negative"):
        stages.loss_weights(stage, {"mse": -1.0})
