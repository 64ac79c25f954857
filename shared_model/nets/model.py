"""The codec models (keypoint detector + TPS or implicit-warping generator), their training step, and
loading of shipped weights."""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ModelConfig
from .generator import TPSGenerator
from .implicit import IWGenerator
from .keypoints import KeypointDetector
from ..training.losses import LossWeights, reconstruction_loss, warp_loss
from .tps import RandomTPS

WEIGHTS_DIR = Path(__file__).parents[1] / "weights"
#: The model named when none is given.
DEFAULT_MODEL = "tps"


class CodecModel(nn.Module):
    """What both generators share: the keypoint detector (sender side), identity, and the equivariance loss."""

    kind = ""

    def __init__(self, cfg: ModelConfig, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.meta = dict(meta or {})
        self.detector = KeypointDetector(cfg)

    @property
    def model_id(self) -> str:
        """Name of the weights, carried in every wire message (e.g. ``tps`` or ``tps-grid_s1``)."""
        return self.meta.get("id", "untrained")

    @property
    def version(self) -> str:
        """Short hash of the weights."""
        return self.meta.get("version", "0")

    @property
    def detector_version(self) -> str:
        """Short hash of the keypoint detector's weights (as shipped, fp16): what the two ends of a call must
        share. A personal generator enrolled from a shipped model keeps that model's detector."""
        return weights_version({k: v.half() if v.is_floating_point() else v
                                for k, v in self.detector.state_dict().items()})

    def frame_losses(self, prediction: torch.Tensor, driving: torch.Tensor, kp_drv: torch.Tensor,
                     weights: LossWeights) -> dict[str, torch.Tensor]:
        """The loss terms both generators share: reconstruction, and equivariance of the keypoints."""
        losses = reconstruction_loss(prediction, driving, weights)
        if weights.equivariance:
            losses["equivariance"] = weights.equivariance * self.equivariance_loss(driving, kp_drv)
        return losses

    def equivariance_loss(self, driving: torch.Tensor, kp_drv: torch.Tensor) -> torch.Tensor:
        """Keypoints of a randomly TPS-warped frame, mapped back, must land on the frame's keypoints."""
        tps = RandomTPS(driving.shape[0], device=driving.device)
        kp_t, _ = self.detector(tps.warp_image(driving))
        return (tps.transform_points(kp_t) - kp_drv).abs().mean()


class TPSModel(CodecModel):
    """Keypoint detector and TPS generator trained together; the receiver uses one reference per frame."""

    kind = "tps"

    def __init__(self, cfg: ModelConfig, meta: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, meta)
        self.generator = TPSGenerator(cfg)
        #: Training only: width of the uniform noise (in [-1, 1] coordinates) added to the driving keypoints
        #: the generator sees, so that it learns to live with the wire's quantization.
        self.kp_noise = 0.0

    def reconstruct(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        """Rebuild ``driving`` from ``source`` through the keypoints (evaluation helper)."""
        kp_s, st_s = self.detector(source)
        kp_d, st_d = self.detector(driving)
        return self.generator(source, kp_s, st_s, kp_d, st_d)["prediction"]

    def training_losses(self, source: torch.Tensor, driving: torch.Tensor,
                        weights: LossWeights) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """All loss terms for a batch, and the prediction."""
        kp_s, st_s = self.detector(source)
        kp_d, st_d = self.detector(driving)
        kp_in = kp_d + (torch.rand_like(kp_d) - 0.5) * self.kp_noise if self.training and self.kp_noise else kp_d
        out = self.generator(source, kp_s, st_s, kp_in, st_d)
        losses = self.frame_losses(out["prediction"], driving, kp_d, weights)
        if weights.warp:
            drv_feats = self.generator.encoder(driving)
            occ = out["occlusion"]
            losses["warp"] = weights.warp * warp_loss(out["warped_feats"], [f * o for f, o in zip(drv_feats, occ)])
        return losses, out["prediction"]


class IWModel(CodecModel):
    """Keypoint detector and implicit-warping generator trained together; the receiver attends over all
    its references at once."""

    kind = "iw"

    def __init__(self, cfg: ModelConfig, meta: dict[str, Any] | None = None) -> None:
        super().__init__(cfg, meta)
        self.generator = IWGenerator(cfg)

    def forward_set(self, sources: torch.Tensor, driving: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Sources (B, R, 3, H, W) or (B, 3, H, W) rebuilding ``driving``: generator output, driving keypoints."""
        if sources.dim() == 4:
            sources = sources[:, None]
        b, r = sources.shape[:2]
        kp_s, st_s = self.detector(sources.flatten(0, 1))
        kp_d, st_d = self.detector(driving)
        refs = self.generator.prepare(sources, kp_s.view(b, r, -1, 2), st_s.view(b, r, -1))
        return self.generator(refs, kp_d, st_d), kp_d

    def reconstruct(self, source: torch.Tensor, driving: torch.Tensor) -> torch.Tensor:
        return self.forward_set(source, driving)[0]["prediction"]

    def training_losses(self, source: torch.Tensor, driving: torch.Tensor,
                        weights: LossWeights) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        out, kp_d = self.forward_set(source, driving)
        return self.frame_losses(out["prediction"], driving, kp_d, weights), out["prediction"]


MODEL_CLASSES: dict[str, type[CodecModel]] = {"tps": TPSModel, "iw": IWModel}


def build_model(cfg: ModelConfig, meta: dict[str, Any] | None = None) -> CodecModel:
    return MODEL_CLASSES[cfg.generator](cfg, meta)


def copy_matching(model: nn.Module, state: dict[str, torch.Tensor]) -> int:
    """Copy every tensor of ``state`` whose name and shape ``model`` shares (starting one generator from
    the other's detector, encoder and decoder); returns how many were copied."""
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return len(matching)


def weights_version(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha1()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:10]


def save_model(model: CodecModel, path: str | Path, model_id: str, extra: dict[str, Any] | None = None) -> dict:
    """Write the shipped format: fp16 weights, config and meta (id, version, training notes)."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    meta = {**model.meta, **(extra or {}), "id": model_id, "kind": model.kind, "version": weights_version(state),
            "detector_version": model.detector_version}
    buf = io.BytesIO()
    torch.save({"config": model.cfg.to_dict(), "meta": meta, "state": state}, buf)
    Path(path).write_bytes(buf.getvalue())
    return meta


def available_models() -> list[str]:
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A shipped model name (``tps``, ``tps-grid_s1``) or a file path, to the weights file."""
    path = Path(name_or_path)
    if path.suffix == ".pt" and path.is_file():
        return path
    shipped = WEIGHTS_DIR / f"{name_or_path}.pt"
    if shipped.is_file():
        return shipped
    raise FileNotFoundError(f"no model {str(name_or_path)!r}: not a weights file, and not one of the shipped "
                            f"models {available_models()}")


class WeightsError(ValueError):
    """A weights file that cannot be used: not one, incomplete, or its content no longer matches its version."""


def _read_weights(path: Path) -> dict[str, Any]:
    """The saved config, meta and state, checked: a stored version must match the state's content."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises assorted errors on files it did not write (EOFError, UnpicklingError, ...)
        raise WeightsError(f"{path} is not a weights file ({type(exc).__name__}: {str(exc)[:100]})") from exc
    if isinstance(blob, dict) and "model" in blob:  # a training checkpoint
        blob = blob["model"]
    if not (isinstance(blob, dict) and isinstance(blob.get("config"), dict) and isinstance(blob.get("state"), dict)
            and isinstance(blob.setdefault("meta", {}), dict)
            and all(isinstance(v, torch.Tensor) for v in blob["state"].values())):
        raise WeightsError(f"{path} holds no model: a weights file has a config, meta and a state of tensors")
    stored = blob["meta"].get("version")
    if stored is not None and stored != (content := weights_version(blob["state"])):
        raise WeightsError(f"{path} is damaged: it states version {stored!r}, its content hashes to {content}")
    return blob


def read_weights(name_or_path: str | Path) -> dict[str, Any]:
    """The config, meta and state (float32) of shipped weights or a weights file, not yet fitted to networks:
    fine-tuning copies what fits into a model whose networks have changed since (``train --init``)."""
    blob = _read_weights(resolve_model_path(name_or_path))
    return {**blob, "state": {k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()}}


def load_model(name_or_path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu") -> CodecModel:
    """Load shipped weights or a file written by ``save_model`` or a training checkpoint, in eval mode.
    WeightsError (a ValueError) when the file is not such weights or its content does not match its version."""
    blob = read_weights(name_or_path)
    try:
        model = build_model(ModelConfig.from_dict(blob["config"]), blob["meta"])
        model.load_state_dict(blob["state"])
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise WeightsError(f"{resolve_model_path(name_or_path)}: weights that do not fit their config: "
                           f"{str(exc)[:200]}") from exc
    return model.to(device).eval()


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` gives CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA GPU")
    return torch.device(requested)
