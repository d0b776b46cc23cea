"""How a model pads, tiles and decodes an image: a property of the model, named in its ``tadm.json``.

Two layouts exist:

* ``project`` (this project's models, and the default of a directory that names none): reflect padding to a
  multiple of the scale, the project's latent tiles (:mod:`model.tiling`), and the VAE in one pass up to the
  pipeline's memory budget (``pipe.vae_max_pixels``), in bands that compute the same above it
  (:mod:`model.vae_tiling`).
* ``official`` (imported checkpoints): what the authors' released inference does (``src/inference_tadm.py`` and
  ``src/tadm_tile.py`` of github.com/wwangcece/TADM), so that imported models compute what produced their
  published figures. Reflect padding at the bottom/right to a multiple of 64 pixels; their latent tiles and
  merge window; the VAE in one pass up to their tiled VAE's thresholds (the encoder while the image's longer
  side is at most 1088 px, the decoder while the latent's longer side is at most 1046, i.e. 8368 px). Beyond
  them their tiled VAE shares GroupNorm statistics across its tiles to approximate one pass; the bands of
  :mod:`model.vae_tiling` compute one pass exactly and take over there (diffusers' tiling, which normalises
  each tile alone, did before).

A layout changes outputs, so it is part of the config the model id hashes; runtime knobs (tile batch size,
``pipe.vae_tile_size``, ``pipe.vae_max_pixels``) are not: one pass and the bands agree to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tiling import OFFICIAL_TILES, PROJECT_TILES, TileLayout


@dataclass(frozen=True)
class Layout:
    """``pad_multiple``: the image is reflect-padded to a multiple of it (None: of the scale).
    ``vae_encoder_untiled_max`` / ``vae_decoder_untiled_max``: the longest image side (px) the encoder, and the
    longest latent side the decoder, take in one pass (None: the pipeline's ``vae_max_pixels`` decides)."""

    name: str
    tiles: TileLayout
    pad_multiple: int | None = None
    vae_encoder_untiled_max: int | None = None
    vae_decoder_untiled_max: int | None = None

    def pad_multiples(self, height: int, width: int, scale: int) -> tuple[int, int]:
        """The multiple each side is padded to. Reflect padding needs the pad shorter than the side, which
        padding to 64 is not for sides of 32 px or less: those are padded to a multiple of the scale (the
        authors' script fails on them)."""
        multiple = self.pad_multiple

        def side(n: int) -> int:
            return multiple if multiple is not None and -n % multiple < n else scale

        return side(height), side(width)


# Every layout, by the name tadm.json gives: the one list of them (the command line offers these names too).
LAYOUTS = {layout.name: layout for layout in (
    Layout("project", PROJECT_TILES),
    Layout("official", OFFICIAL_TILES, pad_multiple=64, vae_encoder_untiled_max=1088, vae_decoder_untiled_max=1046),
)}


def get_layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise ValueError(f"`layout` must be one of {sorted(LAYOUTS)} but is {name!r}")
    return LAYOUTS[name]
