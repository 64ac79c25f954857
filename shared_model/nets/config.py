"""Model configuration: every size of the codec model (either generator) in one place, stored with its weights."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


#: Keys older weights files carry that no longer mean anything (read and ignored).
RETIRED = frozenset({"iw_reduction"})  # the token grid of the first implicit-warping design


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the keypoint detector and of the generator: ``tps`` (TPS motion) or ``iw`` (implicit warping).

    ``resolution`` is the output (and reference) size. The keypoint detector, the dense motion and the
    generator's deeper levels run on a ``core_resolution`` copy of the picture; each doubling from there to the
    output is one light full-resolution level (``hr_channels``, coarsest first): the reference and its features
    are warped at full resolution, the motion is not recomputed there. 128 px models have no such level.
    The ``iw_*`` sizes are used by ``iw`` only (which runs the TPS dense motion too, once per reference).
    """

    generator: str = "tps"
    resolution: int = 256
    core_resolution: int | None = None  # None: the output resolution (no full-resolution levels)
    hr_channels: tuple[int, ...] = ()  # one per doubling from core_resolution to resolution
    num_tps: int = 10  # K TPS transforms
    points_per_tps: int = 5  # N control points per transform
    kp_backbone: str = "cnn"  # keypoint detector: "cnn" (kp_channels) or "mobilenet_v2" (ImageNet-initialised)
    kp_channels: tuple[int, ...] = (32, 64, 128, 192)  # keypoint detector stages (each halves the size)
    motion_scale: int = 4  # dense motion runs at core / motion_scale
    flow_scale: int = 1  # the TPS mappings are evaluated, and the flow composed, at core / flow_scale
    motion_channels: tuple[int, ...] = (64, 128, 256)  # dense motion hourglass
    heatmap_variance: float = 0.01
    gen_channels: tuple[int, ...] = (24, 48, 96, 192)  # generator encoder, one level per entry
    gen_res_blocks: int = 1  # residual blocks per decoder level
    iw_map_channels: int = 16  # channels of the rendered keypoint map (each keypoint paints a learned colour)
    iw_unet_channels: tuple[int, ...] = (32, 64, 128)  # query / key U-Nets, run on the attention grid (the flow's)
    iw_dim: int = 64  # query / key width
    iw_extra_kv: int = 8  # learned key/value pairs that let a location take "none of the references"
    iw_kv_dropout: float = 0.15  # share of (reference, location) entries hidden from the attention while training
    iw_max_refs: int = 8  # references one attention call takes at most (the receiver's documented maximum)

    def __post_init__(self) -> None:
        if self.generator not in ("tps", "iw"):
            raise ValueError(f"unknown generator {self.generator!r} (tps or iw)")
        if self.core * 2 ** len(self.hr_channels) != self.resolution:
            raise ValueError(f"resolution {self.resolution} must be core_resolution {self.core} doubled once per "
                             f"entry of hr_channels {self.hr_channels}")
        if self.kp_backbone not in ("cnn", "mobilenet_v2"):
            raise ValueError(f"unknown keypoint backbone {self.kp_backbone!r} (cnn or mobilenet_v2)")

    @property
    def core(self) -> int:
        """Side of the picture the detector, the dense motion and the deeper generator levels read."""
        return self.core_resolution or self.resolution

    @property
    def num_keypoints(self) -> int:
        return self.num_tps * self.points_per_tps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k not in RETIRED}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
