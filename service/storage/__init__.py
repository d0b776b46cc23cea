"""What the service stores, used by the API and the worker alike: bytes (originals, thumbnails, reconstructions)
behind a small protocol with a local-filesystem backend (default) and an S3-compatible one, content-addressed
keys (:mod:`.keys`), the reconstruction cache under a byte budget (:mod:`.cache`), and the image records kept in
Redis (:mod:`.records`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Storage, StorageError
from .keys import (
    original_key,
    reconstruction_key,
    sha256_hex,
    thumbnail_key,
    thumbnail_key_format,
    uploaded_thumbnail_key,
    variant_key,
    variants_prefix,
)

if TYPE_CHECKING:
    from ..config import Settings


def open_storage(settings: Settings) -> Storage:
    """The backend the settings name (``local`` or ``s3``)."""
    if settings.storage_backend == "local":
        from .local import LocalStorage

        return LocalStorage(settings.storage_dir)
    if settings.storage_backend == "s3":
        from .s3 import S3Storage

        return S3Storage(settings.s3_bucket, prefix=settings.s3_prefix, endpoint_url=settings.s3_endpoint_url,
                         region=settings.s3_region)
    raise ValueError(f"`storage_backend` must be local or s3 but is {settings.storage_backend!r}")


__all__ = ["Storage", "StorageError", "open_storage", "original_key", "reconstruction_key", "sha256_hex",
           "thumbnail_key", "thumbnail_key_format", "uploaded_thumbnail_key", "variant_key", "variants_prefix"]
