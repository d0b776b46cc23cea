"""tadm's model library: TADM (ICCV 2025) for extreme image rescaling.

``model.Thumbnail`` imports without torch (the API process uses it); ``model.TADMPipeline`` and the modules
import torch lazily, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .thumbnail import Thumbnail, ThumbnailError, ThumbnailMismatchError

if TYPE_CHECKING:
    from .pipeline import TADMPipeline

__all__ = ["TADMPipeline", "Thumbnail", "ThumbnailError", "ThumbnailMismatchError"]


def __getattr__(name: str) -> Any:
    if name == "TADMPipeline":
        from .pipeline import TADMPipeline

        return TADMPipeline
    raise AttributeError(f"module 'model' has no attribute {name!r}")
