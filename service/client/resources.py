"""The API's resources as frozen dataclasses: the same fields as the response schemas of
``service.api.schemas`` (a test keeps them equal), read from JSON without pydantic."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROBLEM_PREFIX = "urn:tadm:problem:"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem: ``type`` is stable (``urn:tadm:problem:<slug>``); ``extensions`` holds other members."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The last part of ``type`` (``not-found``), or the whole type when it is not one of ours."""
        return self.type.removeprefix(PROBLEM_PREFIX)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Problem:
        known = {"type", "title", "status", "detail", "instance"}
        return cls(
            type=str(data.get("type") or "about:blank"),
            title=str(data.get("title") or ""),
            status=int(data.get("status") or 0),
            detail=data.get("detail"),
            instance=data.get("instance"),
            extensions={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class Quality:
    """What the stored thumbnail's reconstruction measured against the upload before the original was deleted;
    ``method`` ``plain``: a classical thumbnail was stored because the model's gave the photo back worse."""

    method: str
    psnr_y: float
    ms_ssim_y: float | None
    ssimulacra2: float
    bicubic_psnr_y: float
    thumbnail_deviation: float = 0.0
    thumbnail_pulled_in: bool = False  # the model's thumbnail went beyond the bound and was pulled in to it
    colour_map: bool = False  # the stored thumbnail carries the sender's colour map
    colour_lattice: str | None = None  # and a lattice of colour maps of this size ("8x8")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Quality:
        ms_ssim = data.get("ms_ssim_y")
        return cls(str(data["method"]), float(data["psnr_y"]), None if ms_ssim is None else float(ms_ssim),
                   float(data["ssimulacra2"]), float(data["bicubic_psnr_y"]),
                   float(data.get("thumbnail_deviation", 0.0)), bool(data.get("thumbnail_pulled_in", False)),
                   bool(data.get("colour_map", False)), data.get("colour_lattice"))


@dataclass(frozen=True)
class Image:
    """A stored image: its thumbnail is kept, the original is not. ``saving`` = 1 - thumbnail/original bytes;
    ``quality`` is None for an image stored without verification."""

    id: str
    width: int
    height: int
    scale: int
    model_id: str
    thumbnail_url: str
    full_url: str
    original_bytes: int
    thumbnail_bytes: int
    saving: float
    created_at: str | float
    method: str = "tadm"
    auto: bool = False
    quality: Quality | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Image:
        plain = {name: data[name] for name in cls.__dataclass_fields__ if name not in ("method", "auto", "quality")}
        quality = Quality.from_json(data["quality"]) if data.get("quality") else None
        return cls(**plain, method=str(data.get("method", "tadm")), auto=bool(data.get("auto", False)),
                   quality=quality)


@dataclass(frozen=True)
class Stats:
    """Store-wide totals (``GET /v1/stats``)."""

    images: int
    original_bytes: int
    stored_bytes: int
    saving: float
    verified: int
    fallbacks: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stats:
        return cls(int(data["images"]), int(data["original_bytes"]), int(data["stored_bytes"]),
                   float(data["saving"]), int(data["verified"]), int(data["fallbacks"]))


@dataclass(frozen=True)
class Job:
    """A background job (``downscale`` after an upload, ``upscale`` for a reconstruction)."""

    id: str
    kind: str
    status: str
    progress: float
    attempts: int
    error: Problem | None
    image_id: str | None
    result_url: str | None
    created_at: str | float
    updated_at: str | float

    @property
    def done(self) -> bool:
        """True once the job can change no more (succeeded, failed or cancelled)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            id=data["id"], kind=data["kind"], status=data["status"],
            progress=float(data.get("progress") or 0.0), attempts=int(data.get("attempts") or 0),
            error=Problem.from_json(data["error"]) if data.get("error") else None,
            image_id=data.get("image_id"), result_url=data.get("result_url"),
            created_at=data.get("created_at", ""), updated_at=data.get("updated_at", ""),
        )


@dataclass(frozen=True)
class ModelQuality:
    """What a model measured against bicubic; ``preview`` until it reaches the quality target."""

    evaluation_set: str
    images: int
    psnr_y: float
    bicubic_psnr_y: float
    ms_ssim_y: float | None
    bicubic_ms_ssim_y: float | None
    release_psnr_y: float
    preview: bool
    summary: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelQuality:
        def optional(key: str) -> float | None:
            return None if data.get(key) is None else float(data[key])

        return cls(str(data["evaluation_set"]), int(data["images"]), float(data["psnr_y"]),
                   float(data["bicubic_psnr_y"]), optional("ms_ssim_y"), optional("bicubic_ms_ssim_y"),
                   float(data["release_psnr_y"]), bool(data["preview"]), str(data["summary"]))


@dataclass(frozen=True)
class ModelSummary:
    """One model a live worker serves. ``trained`` is False for random weights (the ``tiny`` test preset);
    ``quality`` is what the model measured, when that was recorded for its weights; ``plain_rule_psnr_y`` the
    PSNR-Y from which bicubic's reconstruction makes an upload keep the plain thumbnail (None: no such rule)."""

    model_id: str
    preset: str
    scale: int
    trained: bool
    quality: ModelQuality | None = None
    plain_rule_psnr_y: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelSummary:
        quality = ModelQuality.from_json(data["quality"]) if data.get("quality") else None
        rule = data.get("plain_rule_psnr_y")
        return cls(data["model_id"], data["preset"], int(data["scale"]), bool(data["trained"]), quality,
                   None if rule is None else float(rule))


@dataclass(frozen=True)
class ModelInfo:
    """What the live workers serve (``GET /v1/info``); ``warning`` is set e.g. when a model is untrained,
    ``notice`` while a model is a preview (below the quality target), with its measured PSNR-Y against bicubic."""

    workers: int
    models: list[ModelSummary]
    warning: str | None
    notice: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelInfo:
        models = [ModelSummary.from_json(model) for model in data.get("models", [])]
        return cls(workers=int(data.get("workers", 0)), models=models, warning=data.get("warning"),
                   notice=data.get("notice"))
