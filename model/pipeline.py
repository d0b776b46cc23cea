"""TADMPipeline: HR image -> thumbnail (sender) and thumbnail -> HR image (receiver), tiled.

Receiver (the paper's inference)::

    y (thumbnail) --F⁻¹, G_d--> ẑ --tiles--> [t_i = TPM, ε_i = UNet(ẑ_i, t_i, c_empty), z0_i = S(ẑ_i, ε_i, t_i)]
        --Gaussian merge--> z0 --VAE decoder (LoRA)--> x̂, cropped to the original size

The components are attributes (``vae``, ``unet``, ``dfrm``, ``tpm``, ``refiner``, the optional ``consistency`` and
``plain_rule``); the small TADM modules run in float32 everywhere (the INN's inverse and the 8-bit rounding want
it), the UNet and VAE in ``dtype``. Padding and tiles follow the model's :class:`model.layout.Layout`; the VAE runs
in one pass up to :attr:`TADMPipeline.vae_max_pixels`, beyond in bands that give the same (:mod:`model.vae_tiling`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from PIL import Image

from . import backbones, checkpoints, lora, vae_budget, vae_tiling
from .attention import set_unet_attention
from .colour_map import corrected_with_map
from .consistency import CONSISTENCY_DIR, ThumbnailConsistency, load_consistency
from .dfrm import DFRM
from .image_tensors import ImageInput, load_rgb, pil_to_tensor, tensor_to_uint8
from .layout import get_layout
from .plain_rule import PlainRule, load_plain_rule
from .scheduler import HybridScheduler, Refiner
from .thumbnail import Thumbnail, plain_thumbnail, plain_upscale, thumbnail_size
from .tiling import ProgressFn, TiledResult, Tiling, denoise_tiled
from .tpm import TimestepPredictor


def default_dtype(device: torch.device) -> torch.dtype:
    """float32 on CPU; bfloat16 on CUDA (fp16 is available as an explicit choice)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class TADMPipeline:
    """A TADM model for one scale (16x or 32x). Build with :meth:`from_preset` or :meth:`from_pretrained`."""

    def __init__(
        self,
        *,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        dfrm: DFRM,
        tpm: TimestepPredictor,
        refiner: Refiner,
        empty_prompt: torch.Tensor,
        config: dict,
        vae_max_pixels: int | None = None,
        consistency: ThumbnailConsistency | None = None,
        plain_rule: PlainRule | None = None,
    ) -> None:
        self.vae, self.unet, self.dfrm, self.tpm, self.refiner = vae, unet, dfrm, tpm, refiner
        # The receiver's low-frequency correction (model.consistency), or None. Not in the model id: the thumbnail
        # does not depend on it, so thumbnails made before it decode with it.
        self.consistency = consistency.eval().requires_grad_(False) if consistency is not None else None
        self.plain_rule = plain_rule  # the sender's (model.plain_rule), or None; not in the model id either
        self.empty_prompt = empty_prompt.float()
        self.config = dict(config)
        self.scale: int = int(config["scale"])
        self.scheduler = HybridScheduler(refiner, config["noise_schedule"], t0=int(config.get("t0", 50)))
        self.scaling_factor = float(self.vae.config.scaling_factor)
        self.latent_factor = backbones.vae_latent_factor(self.vae.config)
        self.layout = get_layout(config.get("layout", "project"))
        # The receiver's, outside the model id: its tiles unless the caller says otherwise, its attention's pool.
        preset = backbones.get_preset(config["preset"])
        self.default_tiling: Tiling = preset.tiling_for(self.scale)
        self.attention_pool = preset.attention_pool_for(self.scale)
        set_unet_attention(self.unet, pool=self.attention_pool)
        # Above the one-pass budget the VAE runs in bands of about vae_tile_size² pixels (model.vae_tiling): speed
        # and transient memory only, the result does not depend on it.
        self.vae_tile_size, self.vae_max_pixels = 512, vae_max_pixels
        for module in self.modules:
            module.eval().requires_grad_(False)
        self.model_id = self.compute_model_id()
        self.device, self.dtype = torch.device("cpu"), torch.float32

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_preset(
        cls,
        name: str,
        scale: int = 16,
        pretrained: bool = True,
        *,
        base: str | None = None,
        vae: str | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        seed: int = 0,
        vae_max_pixels: int | None = None,
    ) -> TADMPipeline:
        """Build a pipeline from a named preset (``tiny``, ``nano``, ``sd21-base``, ``sd21``).

        ``pretrained=False`` builds the architecture from its config with seeded random weights and no download.
        ``pretrained=True`` loads the base model from ``base`` (a hub id or local directory) for ``sd21-base`` and
        ``sd21``, with the VAE of ``vae`` when given (else the base's), and the shipped trained weights for
        ``nano``; ``tiny`` has no pretrained weights and is always random. ``vae_max_pixels``: see the attribute.
        """
        preset = backbones.get_preset(name)
        if pretrained and name == "nano":
            shipped = backbones.SHIPPED_WEIGHTS_DIR / f"nano-{scale}x"
            if not (shipped / checkpoints.CONFIG_NAME).is_file():
                raise checkpoints.ModelDirectoryError(
                    f"the trained nano model for {scale}x is not shipped in this checkout ({shipped}); "
                    "use --preset tiny (random weights) or a model directory"
                )
            return cls.from_pretrained(shipped, device=device, dtype=dtype, vae_max_pixels=vae_max_pixels)
        vae_ref = vae
        references: dict[str, dict] = {}
        if pretrained and preset.hub_id is not None:
            ref = backbones.resolve_base(preset, base)
            vae, unet, schedule, empty = backbones.load_pretrained_backbone(ref, vae_ref, preset)
            backbones.check_prediction_type(preset, schedule, ref)
            base_info = {"kind": "pretrained", "ref": ref}
            if vae_ref is not None:
                references["vae"] = {"kind": "pretrained", "ref": vae_ref}
        else:
            if vae_ref is not None:
                raise ValueError(f"`vae` needs a pretrained backbone, but preset {name!r} is built with random weights")
            vae = unet = None
            schedule, base_info = dict(preset.noise_schedule), {"kind": "embedded"}
            empty = backbones.random_empty_prompt(preset, torch.Generator("cpu").manual_seed(seed))
        # Every random initialisation (backbone, TADM modules, LoRA-A) is seeded: same preset, same seed, same model.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if vae is None or unet is None:
                vae, unet = backbones.random_backbone(preset)
            tadm = _build_tadm_modules(preset, scale)
            lora.attach_unet_lora(unet, preset.unet_lora_rank)
            lora.attach_vae_lora(vae, preset.vae_lora_rank)
        config = {
            "format": checkpoints.FORMAT_VERSION,
            "preset": name,
            "scale": scale,
            "t0": 50,
            "base": base_info,
            "noise_schedule": schedule,
            "unet_lora_rank": preset.unet_lora_rank,
            "vae_lora_rank": preset.vae_lora_rank,
            # This project's convention: the TPM sees the latent the UNet sees (see model.importer for others).
            "tpm_input": "scaled",
            "layout": "project",
            **references,
        }
        pipe = cls(vae=vae, unet=unet, empty_prompt=empty, config=config, vae_max_pixels=vae_max_pixels, **tadm)
        return pipe.to(device, dtype)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        *,
        vae_max_pixels: int | None = None,
    ) -> TADMPipeline:
        """Load a model directory written by :meth:`save_pretrained` (or by the importer or the trainer).
        ``vae_max_pixels``: see the attribute (None: the device's default)."""
        path = Path(path)
        config = checkpoints.read_config(path)
        preset = backbones.get_preset(config["preset"])  # an unknown preset is an error; sizes come from configs
        if config["base"]["kind"] == "pretrained":
            vae_ref = config["vae"]["ref"] if "vae" in config else None
            vae, unet, _, _ = backbones.load_pretrained_backbone(config["base"]["ref"], vae_ref, preset)
        else:
            vae = AutoencoderKL.from_pretrained(path / checkpoints.BACKBONE_DIR, subfolder="vae")
            unet = UNet2DConditionModel.from_pretrained(path / checkpoints.BACKBONE_DIR, subfolder="unet")
        # unet_lora_alpha: only in a model whose adapter grew (model.training.grow_lora); else peft's default
        lora.attach_unet_lora(unet, int(config["unet_lora_rank"]), alpha=config.get("unet_lora_alpha"))
        lora.attach_vae_lora(vae, int(config["vae_lora_rank"]))
        adapters = checkpoints.load_tensors(path / checkpoints.ADAPTERS_NAME)
        lora.load_adapter_state_dict(unet, checkpoints.split_prefixed(adapters, "unet"), "unet", lora.UNET_FULL_TRAINED)
        lora.load_adapter_state_dict(vae, checkpoints.split_prefixed(adapters, "vae"), "vae")
        empty = checkpoints.load_tensors(path / checkpoints.EMPTY_PROMPT_NAME)["embedding"]
        tpm = TimestepPredictor.from_pretrained(path / "tpm")
        checkpoints.check_tpm_input(config, tpm.config.latent_scale, float(vae.config.scaling_factor), path)
        pipe = cls(
            vae=vae,
            unet=unet,
            dfrm=checkpoints.scale_checked(DFRM.from_pretrained(path / "dfrm"), config, path),
            tpm=tpm,
            refiner=Refiner.from_pretrained(path / "refiner"),
            empty_prompt=empty,
            config=config,
            vae_max_pixels=vae_max_pixels,
            consistency=load_consistency(path, int(config["scale"])),
            plain_rule=load_plain_rule(path),
        )
        return pipe.to(device, dtype)

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the model directory (see :mod:`model.checkpoints`); the base model is referenced, not copied."""
        if any(layer.merged for module in (self.unet, self.vae) for _, layer in lora.lora_layers(module)):
            # merged base weights plus the adapters would apply the LoRA twice on loading
            raise RuntimeError("cannot save a pipeline whose LoRA is merged (serving mode); save it before merging")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        checkpoints.write_config(directory, self.config)
        for name in ("dfrm", "tpm", "refiner"):
            getattr(self, name).save_pretrained(directory / name)
        if self.consistency is not None:
            self.consistency.save_pretrained(directory / CONSISTENCY_DIR)
        if self.plain_rule is not None:
            self.plain_rule.save(directory)
        checkpoints.save_tensors(directory / checkpoints.ADAPTERS_NAME, self._adapter_tensors())
        checkpoints.save_tensors(directory / checkpoints.EMPTY_PROMPT_NAME, {"embedding": self.empty_prompt})
        if self.config["base"]["kind"] == "embedded":
            for name in ("unet", "vae"):
                module = getattr(self, name)
                sub = directory / checkpoints.BACKBONE_DIR / name
                sub.mkdir(parents=True, exist_ok=True)
                module.save_config(sub)
                checkpoints.save_tensors(sub / "diffusion_pytorch_model.safetensors", lora.base_state_dict(module))
        self.model_id = self.compute_model_id()
        return directory

    # -- identity and placement -------------------------------------------------------------------------
    @property
    def modules(self) -> list[torch.nn.Module]:
        return [self.vae, self.unet, self.dfrm, self.tpm, self.refiner]

    def _adapter_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"unet.{k}": v for k, v in lora.adapter_state_dict(self.unet, lora.UNET_FULL_TRAINED).items()}
        tensors.update({f"vae.{k}": v for k, v in lora.adapter_state_dict(self.vae).items()})
        return tensors

    def compute_model_id(self) -> str:
        """Hash of the config and the weights that define outputs (float32, device independent)."""
        tensors: dict[str, torch.Tensor] = {f"adapters.{k}": v for k, v in self._adapter_tensors().items()}
        for name in ("dfrm", "tpm", "refiner"):
            tensors.update({f"{name}.{k}": v for k, v in getattr(self, name).state_dict().items()})
        tensors["empty_prompt"] = self.empty_prompt
        if self.config["base"]["kind"] == "embedded":
            for name in ("unet", "vae"):
                tensors.update({f"backbone.{name}.{k}": v for k, v in lora.base_state_dict(getattr(self, name)).items()})
        return checkpoints.compute_model_id(self.config, tensors)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> TADMPipeline:
        """Move to ``device`` (default CPU); UNet and VAE in ``dtype`` (default: fp32 on CPU, bf16 on CUDA)."""
        device = torch.device(device or "cpu")
        dtype = dtype or default_dtype(device)
        if device.type == "cpu" and dtype != torch.float32:
            raise ValueError(f"`dtype` on CPU must be torch.float32 but is {dtype}")
        for module, want in ((self.vae, dtype), (self.unet, dtype), (self.dfrm, torch.float32),
                             (self.tpm, torch.float32), (self.refiner, torch.float32)):
            module.to(device)
            if module.dtype != want:  # diffusers warns on every dtype-carrying .to(), even a no-op one
                module.to(want)
        if self.consistency is not None:
            self.consistency.to(device)
        self.empty_prompt = self.empty_prompt.to(device)
        self.device, self.dtype = device, dtype
        return self

    def merge_lora(self) -> None:
        """Fold the LoRA adapters into the base weights for serving (outputs unchanged up to rounding)."""
        lora.merge_lora(self.unet)
        lora.merge_lora(self.vae)

    # -- sender -----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def downscale(self, image: ImageInput, *, learned: bool = False, bicubic: float | None = None) -> Thumbnail:
        """HR image (PIL or path) -> :class:`Thumbnail` with 1/scale of the width and height: the rescaler's, or
        the plain one where the model's plain rule applies (not with ``learned``: training data, benchmarks).
        ``bicubic``: the photo's bicubic PSNR-Y at this scale (model.plain_rule), where the caller measured it."""
        # 1. Check inputs
        image = load_rgb(image)
        w, h = image.size
        if w < self.scale or h < self.scale:
            raise ValueError(f"image must be at least {self.scale}x{self.scale} pixels but is {w}x{h}")
        if not learned and self.plain_rule is not None and self.plain_rule.applies(image, self.scale, bicubic):
            return plain_thumbnail(image, self.scale)
        # 2. Preprocess: [-1,1], reflect-pad bottom/right (to a multiple of the scale, or the layout's)
        x = self.pad_image(pil_to_tensor(image).to(self.device))  # (1, 3, H', W')
        # 3. Encode and rescale
        z = self.encode_latent(x)  # (1, C, H'/f, W'/f), scaled
        y = self.dfrm.downscale(x, z, noise=False)  # (1, 3, H'/s, W'/s), 8-bit levels in [-1,1]
        # 4. The thumbnail covers the original padded to a multiple of the scale (a layout that pads further
        #    drops the rest; thumbnail_to_latent reflects it back)
        tw, th = thumbnail_size((w, h), self.scale)
        lr = Image.fromarray(tensor_to_uint8(y[..., :th, :tw]))
        return Thumbnail(lr, self.scale, (w, h), self.model_id)

    @staticmethod
    def _pad(x: torch.Tensor, multiple: int | tuple[int, int]) -> torch.Tensor:
        mh, mw = (multiple, multiple) if isinstance(multiple, int) else multiple
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % mh, -w % mw
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        return x

    def pad_image(self, x: torch.Tensor) -> torch.Tensor:
        """Reflect-pad (B,3,H,W) at the bottom/right as the model's layout says (a multiple of the scale, or 64)."""
        return self._pad(x, self.layout.pad_multiples(x.shape[-2], x.shape[-1], self.scale))

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels (B,3,H,W) in [-1,1] -> scaled latent (B,C,H/f,W/f) in float32: the posterior's mode, in one
        pass while the image fits the budget (:attr:`vae_max_pixels`), else in bands that compute the same."""
        x = x.to(self.device, self.dtype)
        if self._vae_one_pass(x.shape[-2:], self.layout.vae_encoder_untiled_max):
            self.vae.disable_tiling()
            mean = self.vae.encode(x).latent_dist.mode()
        else:
            mean = vae_tiling.encode(self.vae, x, self.vae_tile_size**2).chunk(2, dim=1)[0]
        return mean.float() * self.scaling_factor

    # -- receiver ---------------------------------------------------------------------------------------
    @torch.inference_mode()
    def upscale(
        self,
        thumbnail: Thumbnail | bytes,
        *,
        tiling: Tiling | None = None,
        progress: ProgressFn | None = None,
    ) -> Image.Image:
        """Thumbnail -> HR image at the original size, in the latent tiles of ``tiling`` (default: the model's,
        :attr:`default_tiling`). ``progress(done, total)`` is called over latent tiles."""
        thumbnail = self.check_thumbnail(thumbnail)  # 1. Check inputs (a plain thumbnail: see upscale_direct)
        if thumbnail.plain:
            return plain_upscale(thumbnail)
        # 2. LR image -> degraded latent ẑ
        z_hat = self.thumbnail_to_latent(thumbnail)
        # 3. One step per tile, merged
        (result,) = self.denoise([z_hat], tiling, progress)
        # 4. Decode, crop the padding, correct the low frequencies (when the model has the step)
        return self.latent_to_image(result.latent, thumbnail.original_size, thumbnail)

    @torch.inference_mode()
    def upscale_direct(self, thumbnail: Thumbnail | bytes) -> Image.Image:
        """Thumbnail -> HR image without the diffusion step: G_d's latent ẑ straight into the VAE decoder.

        What a stage-1 model gives on its own; evaluation puts it beside :meth:`upscale` to show what the one-step
        diffusion adds."""
        thumbnail = self.check_thumbnail(thumbnail)
        if thumbnail.plain:  # reconstructed as it was made, by bicubic
            return plain_upscale(thumbnail)
        return self.latent_to_image(self.thumbnail_to_latent(thumbnail), thumbnail.original_size)

    def check_thumbnail(self, thumbnail: Thumbnail | bytes) -> Thumbnail:
        if isinstance(thumbnail, (bytes, bytearray)):
            thumbnail = Thumbnail.from_bytes(bytes(thumbnail))
        if not isinstance(thumbnail, Thumbnail):
            raise TypeError(f"`thumbnail` must be a Thumbnail or its bytes but is {type(thumbnail).__name__}")
        thumbnail.check_compatible(self.model_id, self.scale)
        return thumbnail

    @torch.inference_mode()
    def thumbnail_to_latent(self, thumbnail: Thumbnail) -> torch.Tensor:
        """F⁻¹ and G_d: thumbnail -> ẑ (1, C, H'/f, W'/f), float32, H' x W' the size :meth:`downscale` padded
        the original to."""
        y = pil_to_tensor(thumbnail.image).to(self.device)  # (1, 3, ⌈H/s⌉, ⌈W/s⌉)
        w, h = thumbnail.original_size
        mh, mw = self.layout.pad_multiples(h, w, self.scale)
        # Padding to more than the scale (the official layout's 64 px) left LR pixels out of the thumbnail:
        # reflect the thumbnail to the padded size, as the image was reflected (smaller than both multiples).
        y = self._pad(y, (mh // self.scale, mw // self.scale))
        return self.dfrm.upscale(y)

    @torch.inference_mode()
    def denoise(
        self,
        latents: Sequence[torch.Tensor],
        tiling: Tiling | None = None,
        progress: ProgressFn | None = None,
    ) -> list[TiledResult]:
        """The one-step diffusion over the tiles of several latents at once (tiles share UNet batches), placed
        and merged as the model's layout says; ``tiling`` defaults to the model's (:attr:`default_tiling`)."""
        return denoise_tiled(latents, self.denoise_step, tiling or self.default_tiling, progress, self.layout.tiles)

    def denoise_step(self, tiles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of tiles (B,C,h,w) -> (clean tiles z0, timesteps t)."""
        t = self.tpm(tiles)  # (B,), continuous in [10, 200]
        context = self.empty_prompt.expand(tiles.shape[0], -1, -1).to(self.dtype)  # (B, 77, D)
        eps = self.unet(tiles.to(self.dtype), t, encoder_hidden_states=context).sample.float()
        return self.scheduler(tiles, eps, t), t

    @torch.inference_mode()
    def latent_to_image(self, z0: torch.Tensor, original_size: tuple[int, int],
                        thumbnail: Thumbnail | None = None) -> Image.Image:
        """VAE decoder (with its LoRA), cropped to ``original_size``; with the ``thumbnail`` the latent came from,
        the model's consistency step (:mod:`model.consistency`) with the thumbnail's colour map corrects it."""
        x = self.decode_latent(z0)  # (1, 3, H', W')
        w, h = original_size
        x = x[..., :h, :w]
        if thumbnail is not None and self.consistency is not None:
            lr = pil_to_tensor(thumbnail.image).to(self.device)
            x = corrected_with_map(self.consistency, lr, x, thumbnail.colour_map, thumbnail.colour_lattice)
        return Image.fromarray(tensor_to_uint8(x))

    @torch.inference_mode()
    def decode_latent(self, z0: torch.Tensor) -> torch.Tensor:
        """Scaled latent (B,C,h,w) -> pixels (B,3,h·f,w·f) in the VAE's dtype, about [-1,1]: in one pass while
        the image fits the budget (:attr:`vae_max_pixels`), else in bands that compute the same."""
        z = z0.to(self.device, self.dtype) / self.scaling_factor
        h, w = z.shape[-2:]
        if self._vae_one_pass((h * self.latent_factor, w * self.latent_factor), self.layout.vae_decoder_untiled_max,
                              latent_side=max(h, w)):
            self.vae.disable_tiling()
            return self.vae.decode(z).sample
        return vae_tiling.decode(self.vae, z, self.vae_tile_size**2)

    # -- the VAE's one-pass budget ----------------------------------------------------------------------
    @property
    def vae_max_pixels(self) -> int:
        """The largest image (height x width of the padded image, in pixels) the VAE encodes or decodes in one
        pass. Larger images go through :mod:`model.vae_tiling`, which computes the same in a third to a half of
        the memory (on CPU also in less time). Assign an int to fix it, or None for the default of the device and dtype
        (:func:`model.vae_budget.default_vae_max_pixels`: on CUDA it follows the memory free at each call)."""
        if self._vae_max_pixels is not None:
            return self._vae_max_pixels
        return vae_budget.default_vae_max_pixels(self.vae.config, self.device, self.dtype)

    @vae_max_pixels.setter
    def vae_max_pixels(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"`vae_max_pixels` must be positive or None but is {value}")
        self._vae_max_pixels = value

    def _vae_one_pass(self, image_size: Sequence[int], layout_max_side: int | None,
                      latent_side: int | None = None) -> bool:
        """Whether the VAE takes an image of ``image_size`` (height, width in pixels) in one pass. A layout with
        its own thresholds (``official``: the longest side, in pixels for the encoder and in latent pixels for the
        decoder) decides by them; otherwise the budget does."""
        if layout_max_side is not None:
            side = latent_side if latent_side is not None else max(image_size)
            return side <= layout_max_side
        return image_size[0] * image_size[1] <= self.vae_max_pixels

    def __repr__(self) -> str:
        return (f"TADMPipeline(preset={self.config['preset']!r}, scale={self.scale}, model_id={self.model_id!r}, "
                f"device={self.device}, dtype={self.dtype})")


def _build_tadm_modules(preset: backbones.Preset, scale: int) -> dict[str, Any]:
    return {
        "dfrm": DFRM(scale=scale, latent_factor=preset.latent_factor, **preset.dfrm),
        "tpm": TimestepPredictor(**preset.tpm),
        "refiner": Refiner(**preset.refiner),
    }

