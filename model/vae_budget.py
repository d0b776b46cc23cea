"""How large an image the VAE takes in one pass: the default of ``TADMPipeline.vae_max_pixels``.

One pass and the banded VAE (:mod:`model.vae_tiling`) compute the same; the budget only trades memory for a
little time. One pass peaks at about ``ONE_PASS_MAPS`` feature maps of the widest full-resolution stage alive at
once (the decoder's last upsampled stage: ``block_out_channels[1]`` channels; the normalised, activated and
convolved copies and the LoRA branch), so its cost per pixel follows the VAE's widths and the dtype.

* CPU: the largest image whose one pass stays within ``CPU_ONE_PASS_BYTES``.
* CUDA: the largest image whose one pass fits in ``CUDA_FREE_FRACTION`` of the memory free on the device at the
  call (the driver's free memory plus what torch's allocator holds unused), leaving the rest to the allocator's
  fragmentation and to convolution workspaces.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

# Measured on CPU in float32 (VmHWM of a fresh process, scripts/bench_vae_tiling.py): a one-pass decode peaked at
# 388 bytes per pixel for the nano VAE (16 channels at full resolution, LoRA rank 8; 2048x2048 and 3840x2160
# alike), 6.1 maps of 16 x 4 bytes, and at 4930 for SD 2.1's (256 channels, LoRA; 512x512), 4.8 maps; encoders
# peak lower (272 and 2559). The larger count is the model. On CUDA the same count in the dtype's bytes is an
# estimate, not a measurement (3 KiB per pixel for SD 2.1's VAE in bfloat16): the allocator rounds and caches.
ONE_PASS_MAPS = 6.0
# The CPU worker's pod has 8 GiB for the model, the job's images and the UNet's tiles: 2 GiB for a one-pass VAE
# keeps 2048x2048 in one pass for the nano VAE (1.5 GiB measured) and sends 3840x2160 (3.0 GiB in one pass) and
# larger through the bands (1.1 GiB at 3840x2160).
CPU_ONE_PASS_BYTES = 2 * 1024**3
CUDA_FREE_FRACTION = 0.5


def one_pass_bytes_per_pixel(vae_config: Mapping, dtype: torch.dtype) -> float:
    """Peak bytes per image pixel of a one-pass encode or decode (the decoder's, the larger of the two)."""
    widths = list(vae_config["block_out_channels"])
    return ONE_PASS_MAPS * max(widths[:2]) * torch.empty((), dtype=dtype).element_size()


def default_vae_max_pixels(vae_config: Mapping, device: torch.device, dtype: torch.dtype) -> int:
    """The one-pass budget in pixels for a VAE of ``vae_config`` on ``device`` in ``dtype`` (see the module)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        allowance = CUDA_FREE_FRACTION * free
    else:
        allowance = CPU_ONE_PASS_BYTES
    return max(1, int(allowance / one_pass_bytes_per_pixel(vae_config, dtype)))
