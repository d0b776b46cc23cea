"""An exponential moving average of the trainable weights (``tadm train --ema-decay``).

At batch 3 on a CPU the weights a stage ends with are one noisy sample of where the run is: the nano models'
checkpoints 100 steps apart score up to 0.04 dB apart on the same photographs, while the mean of three of them
scores above most of them (docs/training-log.md, 2026-12-03). The average keeps that mean at every step, over the
last ~1 / (1 - decay) steps, and the stage writes it as its model.

It starts equal to the weights the stage starts from (on a continued model those are trained weights, so no
bias correction is needed), is kept in float32 on the weights' device, and is saved in every checkpoint
(``averaged.safetensors``) so that a resumed run continues the same average. A LoRA adapter's two factors are
averaged each, as ``from_checkpoint`` averages checkpoints: over the small steps of a continued run the product of
the averages stays close to the average of the products.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .registry import NamedParameters

AVERAGED_FILE = "averaged.safetensors"


class WeightAverage:
    """``shadow = decay * shadow + (1 - decay) * weights`` after every optimiser step."""

    def __init__(self, params: NamedParameters, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the average's decay must be between 0 and 1 (exclusive), got {decay}")
        self.decay = decay
        self.shadow = {name: p.detach().to(torch.float32).clone() for name, p in params.items()}

    @torch.no_grad()
    def update(self, params: NamedParameters) -> None:
        for name, p in params.items():
            self.shadow[name].lerp_(p.detach().to(torch.float32), 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, params: NamedParameters) -> None:
        """Write the average into ``params`` (the model the stage saves)."""
        for name, p in params.items():
            p.copy_(self.shadow[name])

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.cpu().contiguous() for k, v in self.shadow.items()}, str(directory / AVERAGED_FILE))

    def load(self, directory: Path) -> bool:
        """Continue the average saved in a checkpoint; False (the average restarts from the current weights)
        when the checkpoint has none, i.e. its run did not average."""
        from safetensors.torch import load_file

        path = directory / AVERAGED_FILE
        if not path.is_file():
            return False
        saved = load_file(str(path))
        if set(saved) != set(self.shadow):  # ValueError: checkpointing imports this module, not the reverse
            raise ValueError(f"{path} was written for other parameters ({len(saved)} vs "
                             f"{len(self.shadow)} tensors)")
        for name, tensor in saved.items():
            self.shadow[name] = tensor.to(self.shadow[name].device, torch.float32)
        return True
