"""The receiver's thumbnail-consistency step: a small network at the thumbnail's resolution that corrects the
reconstruction's low frequencies.

Why: the one-step diffusion and the VAE decoder give texture back well, but on smooth photos (fog, clear skies,
sunsets) their low frequencies drift: the autoencoder tops out in the high 30s of dB where upsampling a bicubic
thumbnail is nearly exact. Adding back what a *bicubic* thumbnail says the reconstruction lacks (back-projection)
would fix that, but the receiver holds the learned thumbnail, not a bicubic one, and back-projecting onto the
learned thumbnail pushes its deliberate colour shifts into the photo. This module learns the missing link: from
the learned thumbnail ``y`` and the reconstruction's own bicubic thumbnail ``d`` it predicts

* ``r``: what the photo's bicubic thumbnail differs from ``d`` by, so the corrected low frequencies are
  ``up(d + r)``;
* ``g`` in [0, 1]: how much of the reconstruction's detail above the thumbnail's frequencies to keep (where the
  photo is flat that detail is the decoder's grain).

and returns ``up(d + r) + up(g) * (x - up(d))`` for the reconstruction ``x``. With ``r = 0`` and ``g = 1`` this is
``x`` itself, which is how the module starts. It runs only on the receiver and leaves the thumbnail format alone:
thumbnails made before it was added decode with it.

``down`` is antialiased bicubic by exactly the scale, ``up`` bicubic, both over the image reflect-padded to a
multiple of the scale, as the sender pads it.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

# The step's folder inside a model directory (model.checkpoints); a model without it reconstructs without the step.
CONSISTENCY_DIR = "consistency"
# The gate's logit before training, and how fast it moves. The shipped steps were trained with the logit at 8
# (sigmoid 0.9997: the untrained module is exactly the reconstruction) and a gain of 1, and their gates never moved
# (above 0.998 on every photo; Adam moves a logit by about its learning rate a step, and 8 is far from shut),
# though shutting it gains 0.3 to 1.7 dB on four smooth 32x photos. These defaults read those steps as saved; new ones
# are trained with TRAINED_GATE_START and TRAINED_GATE_GAIN (model.training.consistency).
GATE_START = 8.0
GATE_GAIN = 1.0
# A logit of 3 keeps 95 % of the detail before training; a gain of 8 lets a few hundred steps shut the gate.
TRAINED_GATE_START = 3.0
TRAINED_GATE_GAIN = 8.0


def pad_to_scale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Reflect-pad (B,C,H,W) at the bottom/right to a multiple of ``scale`` (what the sender does). Built from
    copies: F.pad's reflect mode is several times slower on large CPU tensors."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % scale, -w % scale
    if pad_h:
        x = torch.cat((x, x[..., h - 1 - pad_h:h - 1, :].flip(-2)), dim=-2)
    if pad_w:
        x = torch.cat((x, x[..., w - 1 - pad_w:w - 1].flip(-1)), dim=-1)
    return x


def down(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscale by exactly ``scale`` (the sizes must be multiples)."""
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)


def up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


def up_matrix(n_in: int, n_out: int, keep: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(keep, n_in): the first ``keep`` rows of bicubic upsampling from ``n_in`` to ``n_out`` samples along one
    axis, exactly :func:`up`'s weights (read off by upsampling the identity)."""
    eye = torch.eye(n_in, dtype=dtype).reshape(1, n_in, n_in, 1)
    return up(eye, (n_out, 1))[0, :, :keep, 0].T


def up_cropped(x: torch.Tensor, size: tuple[int, int], crop: tuple[int, int]) -> torch.Tensor:
    """``up(x, size)[..., :crop[0], :crop[1]]`` as two matrix products: several times faster on a CPU than
    F.interpolate's bicubic at photo sizes, and the padding is never computed."""
    rows = up_matrix(x.shape[-2], size[0], crop[0], x.dtype).to(x.device)
    cols = up_matrix(x.shape[-1], size[1], crop[1], x.dtype).to(x.device)
    return rows @ x @ cols.T


class ThumbnailConsistency(ModelMixin, ConfigMixin):
    """Predicts the low-frequency correction ``r`` and the detail gate ``g`` from (thumbnail, own thumbnail).

    Args:
        scale: 16 or 32, the thumbnail's reduction per side.
        channels: width of the hidden convolutions.
        num_layers: 3x3 convolutions in all (each sees one more thumbnail pixel around; 16 px of photo at 16x).
        gate_start: the gate's logit before training (only the initial weights depend on it).
        gate_gain: the gate's logit is this times the head's output (a larger gain learns faster).
        global_context: also give every pixel the whole thumbnail's statistics (:func:`global_context`). The
            rescaler's colour shifts depend on the whole photo (its encoder normalises over the whole image), so
            a network that sees 13x13 thumbnail pixels cannot tell them apart from the photo's own colours.
    """

    @register_to_config
    def __init__(self, scale: int = 16, channels: int = 64, num_layers: int = 6,
                 gate_start: float = GATE_START, gate_gain: float = GATE_GAIN, global_context: bool = False) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"`num_layers` must be at least 2 but is {num_layers}")
        inputs = 9 + (CONTEXT_CHANNELS if global_context else 0)
        layers: list[nn.Module] = [nn.Conv2d(inputs, channels, 3, padding=1), nn.LeakyReLU(0.2)]
        for _ in range(num_layers - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels, 4, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.zero_()  # type: ignore[union-attr]  # created with bias=True
            self.head.bias[3] = gate_start / gate_gain  # type: ignore[index]

    def forward(self, thumbnail: torch.Tensor, own: torch.Tensor,
                context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,3,h,w) learned thumbnail and the reconstruction's own bicubic thumbnail, both in [-1,1] ->
        (r (B,3,h,w), g (B,1,h,w)). With ``global_context``, ``context`` is :func:`global_context` of the whole
        thumbnails when these are a crop of them (training), else it is computed from these."""
        inputs = [thumbnail, own, thumbnail - own]
        if self.config.global_context:
            if context is None:
                context = global_context(thumbnail, own)
            inputs.append(context[:, :, None, None].expand(-1, -1, *own.shape[-2:]).to(own.dtype))
        out = self.head(self.body(torch.cat(inputs, 1)))
        return out[:, :3], torch.sigmoid(out[:, 3:] * self.config.gate_gain)

    def correct(self, thumbnail: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The corrected reconstruction: ``thumbnail`` (B,3,⌈H/s⌉,⌈W/s⌉) and ``image`` (B,3,H,W), both in [-1,1]
        -> (B,3,H,W) in [-1,1] (not clamped)."""
        own = self.own_thumbnail(image)
        r, g = self(thumbnail.to(own.dtype), own)
        return combine(image, own + r, own, g, self.config.scale)

    def own_thumbnail(self, image: torch.Tensor) -> torch.Tensor:
        """``d``: the bicubic thumbnail of a reconstruction (B,3,H,W), reflect-padded to the scale first."""
        return down(pad_to_scale(image, self.config.scale), self.config.scale)


# Per colour channel, the mean and standard deviation of the thumbnail, the own thumbnail and their difference.
CONTEXT_CHANNELS = 18


def global_context(thumbnail: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """(B, CONTEXT_CHANNELS): what the whole (B,3,h,w) thumbnails say about the photo's colours."""
    planes = torch.cat((thumbnail, own, thumbnail - own), 1)
    return torch.cat((planes.mean((2, 3)), planes.std((2, 3), correction=0)), 1)


def combine(image: torch.Tensor, low: torch.Tensor, own: torch.Tensor, gate: torch.Tensor,
            scale: int) -> torch.Tensor:
    """``up(low) + up(gate) * (image - up(own))``: the reconstruction ``image`` (B,3,H,W) with its low frequencies
    (its own thumbnail ``own``, ``scale`` times smaller) replaced by ``low`` and its detail above them weighed by
    ``gate`` (B,1,h,w). ``image`` is left as it was."""
    h, w = image.shape[-2:]
    padded = (own.shape[-2] * scale, own.shape[-1] * scale)
    # up() is linear: the three maps go up together, straight to the unpadded size
    maps = up_cropped(torch.cat((low, own, gate), 1), padded, (h, w))
    # in place: at photo sizes every fresh full-size tensor costs more than the arithmetic on it
    return (image - maps[:, 3:6]).mul_(maps[:, 6:]).add_(maps[:, :3])


def load_consistency(model_dir: Path, scale: int) -> ThumbnailConsistency | None:
    """The step saved in ``model_dir``, or None when the model has none; its scale must be the model's."""
    folder = Path(model_dir) / CONSISTENCY_DIR
    if not folder.is_dir():
        return None
    module = ThumbnailConsistency.from_pretrained(folder)
    if module.config.scale != scale:
        raise ValueError(f"{folder} was trained for {module.config.scale}x but the model is {scale}x")
    return module
