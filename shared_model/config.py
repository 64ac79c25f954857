"""Model configuration: every size of the TPS codec model in one place, stored with its weights."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the keypoint detector and the TPS generator."""

    resolution: int = 128
    num_tps: int = 10  # K TPS transforms
    points_per_tps: int = 5  # N control points per transform
    kp_channels: tuple[int, ...] = (32, 64, 128, 192)  # keypoint detector stages (each halves the size)
    motion_scale: int = 4  # dense motion runs at resolution / motion_scale
    motion_channels: tuple[int, ...] = (64, 128, 256)  # dense motion hourglass
    heatmap_variance: float = 0.01
    gen_channels: tuple[int, ...] = (24, 48, 96, 192)  # generator encoder, one level per entry
    gen_res_blocks: int = 1  # residual blocks per decoder level

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
