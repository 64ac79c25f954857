"""Model configuration: every size of the codec model (either generator) in one place, stored with its weights."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the keypoint detector and of the generator: ``tps`` (TPS motion) or ``iw`` (implicit warping).

    The ``motion_*`` sizes are used by ``tps`` only, the ``iw_*`` sizes by ``iw`` only.
    """

    generator: str = "tps"
    resolution: int = 128
    num_tps: int = 10  # K TPS transforms
    points_per_tps: int = 5  # N control points per transform
    kp_channels: tuple[int, ...] = (32, 64, 128, 192)  # keypoint detector stages (each halves the size)
    motion_scale: int = 4  # dense motion runs at resolution / motion_scale
    motion_channels: tuple[int, ...] = (64, 128, 256)  # dense motion hourglass
    heatmap_variance: float = 0.01
    gen_channels: tuple[int, ...] = (24, 48, 96, 192)  # generator encoder, one level per entry
    gen_res_blocks: int = 1  # residual blocks per decoder level
    iw_map_channels: int = 16  # channels of the rendered keypoint map (each keypoint paints a learned colour)
    iw_unet_channels: tuple[int, ...] = (32, 64, 128)  # query / key U-Nets, run at resolution / 4
    iw_dim: int = 64  # query / key width
    iw_reduction: int = 1  # spatial reduction: tokens on a (resolution / 4 / iw_reduction)^2 grid per image
    iw_extra_kv: int = 8  # learned key/value pairs that let a location take "none of the references"
    iw_kv_dropout: float = 0.15  # share of reference tokens hidden from the attention while training
    iw_max_refs: int = 8  # references one attention call takes at most (the receiver's documented maximum)

    def __post_init__(self) -> None:
        if self.generator not in ("tps", "iw"):
            raise ValueError(f"unknown generator {self.generator!r} (tps or iw)")

    @property
    def num_keypoints(self) -> int:
        return self.num_tps * self.points_per_tps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
