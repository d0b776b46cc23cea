"""The `tadm` command (``service.cli:main``, the console script), run by whoever types `tadm ...`.

``main`` gathers the command modules: the model library's (downscale, upscale, import-official, train, eval)
and the service's own: ``serve`` (`tadm serve [--dev]`), ``worker`` (`tadm worker`) and ``models`` (`tadm models
pull`). Heavy imports (torch, the model) happen inside the handlers, so `tadm --help` and the API stay light.
"""

from __future__ import annotations

from .entry import build_parser, main

__all__ = ["build_parser", "main"]
