"""What a training run shows while it runs: the JSONL loss log (mirrored to TensorBoard when installed) and
validation sheets (original | reconstruction, with their PSNR-Y in the log)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from model.pipeline import TADMPipeline

logger = logging.getLogger(__name__)


def validate(pipe: TADMPipeline, images: list[Path], directory: Path, crop: int) -> None:
    """Downscale and upscale a centre crop of each validation image; save original | reconstruction."""
    import numpy as np
    from PIL import Image

    from model.evaluation.metrics import y_metrics

    directory.mkdir(parents=True, exist_ok=True)
    for module in pipe.modules:
        module.eval()
    for path in images:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        w, h = image.size
        size = min(crop, w, h) // pipe.scale * pipe.scale
        image = image.crop(((w - size) // 2, (h - size) // 2, (w - size) // 2 + size, (h - size) // 2 + size))
        out = pipe.upscale(pipe.downscale(image, learned=True))
        sheet = Image.new("RGB", (2 * size, size))
        sheet.paste(image, (0, 0))
        sheet.paste(out, (size, 0))
        sheet.save(directory / f"{path.stem}.png")
        psnr = y_metrics(np.asarray(image), np.asarray(out))["psnr_y"]
        logger.info("validation %s: PSNR-Y %.2f dB", path.name, psnr)


class TrainingLog:
    """JSONL loss log (main process only), mirrored to TensorBoard when it is installed."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.file = path.open("a") if enabled else None
        self.tensorboard = None
        if enabled:
            import importlib.util

            if importlib.util.find_spec("tensorboard") is not None:
                from torch.utils.tensorboard import SummaryWriter

                self.tensorboard = SummaryWriter(str(path.parent / "tensorboard"))

    def write(self, record: dict) -> None:
        if self.file is None:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tensorboard is not None:
            for key, value in record.items():
                if key != "step":
                    self.tensorboard.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
