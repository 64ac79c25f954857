"""Train the codec model: ``python -m shared_model.train --data CACHE --out RUN [options]``.

CACHE is a folder written by ``python -m shared_model.training.data``. The run folder receives ``checkpoint.pt``
(resumable), ``model.pt`` (shipped format, fp16), ``best.pt`` (the same, at the best validation so far),
``metrics.jsonl`` and validation grids ``val_STEP.png``. Options may also come from a JSON file
(``--config FILE``, keys as the long flags with underscores); flags given on the command line win.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .nets.config import ModelConfig
from .nets.mobilenet import load_imagenet
from .training.data import FrameCache, PairSampler
from .training.distill import distill_detector
from .training.losses import LossWeights
from .media.metrics import psnr
from .runtime.inference import spread_subset
from .nets.model import (CodecModel, WeightsError, build_model, copy_matching, load_model, pick_device, read_weights,
                         save_model)

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    data: list[str] = field(default_factory=list)
    model: str = "tps"  # generator: tps or iw
    out: str = "runs/tps"
    model_id: str = "tps"
    init: str | None = None  # weights to start from (fine-tuning)
    steps: int = 3000
    batch: int = 8
    lr: float = 4e-4
    core_resolution: int | None = None  # a new model's detector / dense-motion size (default min(128, data))
    hr_channels: list[int] | None = None  # its full-resolution levels (default: 16, then 8 channels)
    seed: int = 0
    device: str = "auto"
    val_every: int = 250
    val_pairs: int = 32
    save_every: int = 100
    time_limit_min: float | None = None  # stop (and save) after this many minutes
    stop_at: int | None = None  # stop (and save) at this step; the lr schedule still spans ``steps``
    dropout_until: float = 0.2  # TPS dropout during this share of the steps
    threads: int | None = None
    max_refs: int = 4  # iw: each batch takes a set of 1..max_refs references per sample
    window_share: float = 0.0  # iw: share of batches whose sets come from REF_WINDOW consecutive frames
    crop_jitter: float = 0.0  # re-frame each training sample by up to this share of the crop (see PairSampler)
    kp_noise_px: float = 0.0  # tps: uniform noise this wide (px) on the driving keypoints, e.g. the wire's step
    channels_last: bool = True  # NHWC tensors: 18 % faster steps on the development CPU (docs/model.md)
    precision: str = "fp32"  # "bf16": the training step under bf16 autocast (the TPS solve and flow stay fp32)
    freeze_detector: bool = False  # train the generator only (enrolment: the sender keeps the shipped detector)
    freeze_motion: bool = False  # keep the dense motion and the source encoder of --init (iw: learn to choose)
    feature_loss: float = 0.0  # weight of the ImageNet MobileNetV2 feature loss (0: off)
    kp_backbone: str | None = None  # swap the --init model's detector backbone (cnn, mobilenet_v2) ...
    distill_steps: int = 1000  # ... teaching the new one the old one's keypoints first, for this many steps
    people_limit: int | None = None  # train on this many of the training people only (a learning curve)
    lr_new: float | None = None  # learning rate of the tensors --init did not provide (default: --lr)


def load_caches(paths: list[str], people_limit: int | None = None) -> list[tuple[FrameCache, list[dict], list[dict]]]:
    """Each cache with its training and held-out clips; ``people_limit`` keeps the training clips of that many
    people (the same ones every time: the first by a hash of their name)."""
    caches = []
    for p in paths:
        cache = FrameCache.load(p)
        train_clips = cache.split(held_out=False)
        if people_limit:
            people = sorted({c.get("person", c["name"]) for c in train_clips}, key=name_hash)[:people_limit]
            train_clips = [c for c in train_clips if c.get("person", c["name"]) in people]
        caches.append((cache, train_clips, cache.split(held_out=True)))
    return caches


def name_hash(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


#: Sets' validation references come from a clip's first cached frames (1 s at 25 fps, every second frame cached).
REF_WINDOW = 12


def validation_pairs(caches, count: int, refs: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed held-out pairs: the first frame of each held-out clip (or, for sets, ``refs`` frames spread over
    the clip's first ``REF_WINDOW`` cached frames) against evenly spaced later frames."""
    clips = [(cache, c) for cache, _, held in caches for c in held] or [(cache, c) for cache, train, _ in caches for c in train]
    per_clip = max(1, math.ceil(count / len(clips)))
    src, drv = [], []
    for cache, clip in clips:
        frames = cache.clip_frames(clip)
        first = 1 if refs == 1 else min(max(refs, REF_WINDOW), len(frames) - 1)
        for j in first - 1 + (np.arange(1, per_clip + 1) * (len(frames) - first + 1) // (per_clip + 1)):
            src.append(frames[0] if refs == 1 else frames[spread_subset(first, refs)])
            drv.append(frames[j])
    idx = np.linspace(0, len(src) - 1, min(count, len(src))).round().astype(int)
    to_t = lambda a: torch.from_numpy(np.stack([a[i] for i in idx])).movedim(-1, -3).float() / 255.0
    return to_t(src), to_t(drv)


def save_grid(path: Path, source: torch.Tensor, driving: torch.Tensor, prediction: torch.Tensor, rows: int = 6) -> None:
    """PNG with one row per pair: source (each of a set) | driving | prediction."""
    n = min(rows, source.shape[0])
    sources = source if source.dim() == 5 else source[:, None]
    tiles = torch.cat([torch.cat([*sources[i], driving[i], prediction[i]], dim=2) for i in range(n)], dim=1)
    img = (tiles.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def frozen_parts(model: CodecModel, opts: TrainOptions) -> list[torch.nn.Module]:
    """The parts ``opts`` keeps as ``--init`` gave them."""
    parts: list[torch.nn.Module] = [model.detector] if opts.freeze_detector else []
    if opts.freeze_motion:
        parts += [model.generator.dense_motion, model.generator.encoder]
    return parts


def set_training(model: CodecModel, frozen: list[torch.nn.Module]) -> None:
    """Training mode, except frozen parts, which keep their batch-norm statistics."""
    model.train()
    for part in frozen:
        part.eval()


@torch.no_grad()
def validate(model: CodecModel, src: torch.Tensor, drv: torch.Tensor, device: torch.device, batch: int = 8,
             frozen: list[torch.nn.Module] | None = None):
    """Validation PSNR, the frozen (first) reference's, and the predictions; ``src`` holds single references
    (N, 3, H, W) or sets (N, R, 3, H, W)."""
    model.eval()
    preds = torch.cat([model.reconstruct(src[i:i + batch].to(device), drv[i:i + batch].to(device)).cpu()
                       for i in range(0, len(src), batch)])
    set_training(model, frozen or [])
    first = src if src.dim() == 4 else src[:, 0]
    return psnr(preds, drv).mean().item(), psnr(first, drv).mean().item(), preds


#: Channels of the full-resolution levels a model gains, one per doubling (256 px, then 512 px).
DEFAULT_HR_CHANNELS = (16, 8)


def grown_config(cfg: ModelConfig, resolution: int, hr_channels: list[int] | None = None) -> ModelConfig:
    """``cfg`` at an output ``resolution`` at least its own: the core stays, full-resolution levels are added, and
    the flow is composed at half the core resolution (then upsampled: it is smooth) to keep the receiver fast."""
    doublings = 0
    while cfg.resolution * 2**doublings < resolution:
        doublings += 1
    if cfg.resolution * 2**doublings != resolution:
        raise ValueError(f"cannot grow a {cfg.resolution} px model to {resolution} px (powers of two only)")
    added = tuple(hr_channels[len(cfg.hr_channels):] if hr_channels else DEFAULT_HR_CHANNELS[:doublings])
    if len(added) != doublings:
        raise ValueError(f"{doublings} full-resolution levels to add, {len(added)} channel counts given")
    return replace(cfg, resolution=resolution, core_resolution=cfg.core, hr_channels=cfg.hr_channels + added,
                   flow_scale=max(cfg.flow_scale, 2) if doublings else cfg.flow_scale)


def new_config(kind: str, resolution: int, core: int | None, hr_channels: list[int] | None) -> ModelConfig:
    core = core or min(resolution, 128)
    return grown_config(ModelConfig(generator=kind, resolution=core, core_resolution=core), resolution, hr_channels)


def init_model(init: str, kind: str, resolution: int, hr_channels: list[int] | None = None,
               kp_backbone: str | None = None) -> CodecModel:
    """Start from trained weights: every tensor of the same name and shape is copied, so the same generator
    is fine-tuned, an ``iw`` model can start from ``tps`` weights (detector, encoder, decoder), and a model
    can be grown to a higher output resolution (its core copied, the new full-resolution levels starting
    from an upsampled copy of the core's output)."""
    base = read_weights(init)
    base_cfg = ModelConfig.from_dict(base["config"])
    if base_cfg.resolution > resolution:
        raise ValueError(f"--init model is {base_cfg.resolution} px, data is {resolution} px")
    cfg = replace(grown_config(base_cfg, resolution, hr_channels), generator=kind,
                  kp_backbone=kp_backbone or base_cfg.kp_backbone)
    model = build_model(cfg)
    copied = copy_matching(model, base["state"])
    log.info("started %s from %s: %d of %d tensors copied", kind, init, copied, len(model.state_dict()))
    model.meta = {"init": str(init)}
    return model


def param_groups(model: CodecModel, opts: TrainOptions) -> list[dict]:
    """The trainable parameters; with ``--lr-new``, those ``--init`` did not provide (a new generator's attention)
    in a group of their own that learns at that rate while the fine-tuned rest learns at ``--lr``."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not (opts.init and opts.lr_new):
        return [{"params": [p for _, p in trainable], "lr_scale": 1.0}]
    given = {k: v.shape for k, v in read_weights(opts.init)["state"].items()}
    fresh = [p for n, p in trainable if given.get(n) != p.shape]
    rest = [p for n, p in trainable if given.get(n) == p.shape]
    return [{"params": rest, "lr_scale": 1.0}, {"params": fresh, "lr_scale": opts.lr_new / opts.lr}]


def lr_at(step: int, opts: TrainOptions) -> float:
    """Short warm-up, then cosine decay to 5 % of the base rate."""
    warm = min(100, opts.steps // 20)
    if step < warm:
        return opts.lr * (step + 1) / warm
    t = (step - warm) / max(1, opts.steps - warm)
    return opts.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def train(opts: TrainOptions, model_cfg: ModelConfig | None = None, weights: LossWeights = LossWeights()) -> dict:
    """Run (or resume) training; returns a summary with the first and last losses and the validation PSNR."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    random.seed(opts.seed)
    device = pick_device(opts.device)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    caches = load_caches(opts.data, opts.people_limit)
    res = caches[0][0].frames.shape[1]
    for cache, _, _ in caches:
        if cache.frames.shape[1] != res:
            raise ValueError("all data caches must have the same resolution")
    if opts.init:
        model = init_model(opts.init, opts.model, res, opts.hr_channels, opts.kp_backbone)
    else:
        model = build_model(model_cfg or new_config(opts.model, res, opts.core_resolution, opts.hr_channels))
    if model.kind != opts.model:
        raise ValueError(f"the model config is for {model.kind}, not --model {opts.model}")
    model = model.to(device)
    frozen = frozen_parts(model, opts)
    set_training(model, frozen)
    for part in frozen:
        part.requires_grad_(False)
    if opts.freeze_detector:
        weights = replace(weights, equivariance=0.0)
    if opts.feature_loss:
        weights = replace(weights, feature=opts.feature_loss)
    memory_format = torch.channels_last if opts.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    if opts.kp_noise_px:
        if model.kind != "tps":
            raise ValueError("--kp-noise-px is for the tps generator")
        model.kp_noise = opts.kp_noise_px * 2.0 / res
    opt = torch.optim.Adam(param_groups(model, opts), lr=opts.lr, betas=(0.5, 0.999))
    step, elapsed, history = 0, 0.0, []
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        try:
            model.load_state_dict(ckpt["model_state"])
        except RuntimeError:  # its message lists every tensor: hundreds of lines
            raise WeightsError(f"{ckpt_path} does not fit the network built from --init {opts.init} (did those "
                               "weights change since the run began?): move the run folder away to start "
                               "again") from None
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed, history = ckpt["step"], ckpt["elapsed"], ckpt["history"]
        log.info("resumed from %s at step %d", ckpt_path, step)
    samplers = [PairSampler(cache, train_clips, seed=opts.seed + step + i, crop_jitter=opts.crop_jitter)
                for i, (cache, train_clips, _) in enumerate(caches)]
    teacher = load_model(opts.init, device) if opts.init and opts.kp_backbone and step == 0 else None
    if teacher is not None and teacher.cfg.kp_backbone != model.cfg.kp_backbone:
        # A new detector backbone: ImageNet start, then the old detector's keypoints, then joint training.
        if model.cfg.kp_backbone == "mobilenet_v2":
            load_imagenet(model.detector.backbone)
        distill_detector(model.detector, teacher.detector, samplers[0], opts.distill_steps, device=device)
        model.detector.to(memory_format=memory_format)
        set_training(model, frozen)
    val_src, val_drv = validation_pairs(caches, opts.val_pairs, opts.max_refs if model.kind == "iw" else 1)
    held_names = [c["name"] for _, _, held in caches for c in held]
    held_people = {c["name"]: c.get("person", c["name"]) for _, _, held in caches for c in held}
    training_people = len({c.get("person", c["name"]) for _, train_clips, _ in caches for c in train_clips})

    def save_weights(name: str) -> None:
        save_model(model, out / name, opts.model_id,
                   {"steps": step, "train_minutes": round(elapsed / 60, 1), "data": [str(d) for d in opts.data],
                    "device": str(device), "held_out_clips": held_names,
                    "held_out_people": held_people, "training_people": training_people})

    def save() -> None:
        torch.save({"model_state": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                    "elapsed": elapsed, "history": history, "options": opts.__dict__,
                    "model": {"config": model.cfg.to_dict(), "meta": {**model.meta, "id": opts.model_id},
                              "state": model.state_dict()}}, ckpt_path)
        save_weights("model.pt")

    log_file = (out / "metrics.jsonl").open("a")
    started = time.time() - elapsed
    bar = tqdm(total=opts.steps, initial=step, desc="train", dynamic_ncols=True, disable=None)
    running: dict[str, float] = {}

    def run_validation() -> dict[str, float]:
        val_psnr, base_psnr, preds = validate(model, val_src, val_drv, device, frozen=frozen)
        save_grid(out / f"val_{step:06d}.png", val_src, val_drv, preds)
        bar.write(f"step {step}: validation PSNR {val_psnr:.2f} dB (frozen reference {base_psnr:.2f} dB)")
        if val_psnr > max((h["val_psnr"] for h in history), default=-math.inf):
            save_weights("best.pt")  # the weights of the best validation so far
        history.append({"step": step, "val_psnr": val_psnr, "val_baseline_psnr": base_psnr, "time_s": round(elapsed, 1)})
        return {"val_psnr": val_psnr, "val_baseline_psnr": base_psnr}

    if step == 0:
        run_validation()
    while step < opts.steps:
        if opts.time_limit_min is not None and elapsed > opts.time_limit_min * 60:
            log.info("time limit reached at step %d", step)
            break
        if opts.stop_at is not None and step >= opts.stop_at:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, opts) * group.get("lr_scale", 1.0)
        sampler = samplers[step % len(samplers)]
        if model.kind == "tps":
            cut = opts.dropout_until * opts.steps
            model.generator.dense_motion.dropout_p = 0.1 + 0.2 * step / cut if step < cut else 0.0
            source, driving = sampler.sample(opts.batch)
        else:
            refs = int(sampler.rng.integers(1, opts.max_refs + 1))
            window = REF_WINDOW if sampler.rng.random() < opts.window_share else 0
            source, driving = sampler.sample_sets(opts.batch, refs, window)
        source = source.to(device, memory_format=memory_format if source.dim() == 4 else torch.contiguous_format)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=opts.precision == "bf16"):
            losses, _ = model.training_losses(source, driving.to(device, memory_format=memory_format), weights)
        losses = {k: v.float() for k, v in losses.items()}
        total = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        finite = bool(torch.isfinite(grad_norm))
        if finite:
            opt.step()
        else:  # one non-finite gradient would make every weight NaN after clipping: skip the batch, say so
            log.warning("step %d: non-finite gradient (loss %.3f), batch skipped", step, total.item())
        step += 1
        elapsed = time.time() - started
        for k, v in losses.items():
            running[k] = 0.9 * running.get(k, v.item()) + 0.1 * v.item()
        running["total"] = 0.9 * running.get("total", total.item()) + 0.1 * total.item()
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in running.items()})
        record = {"step": step, "time_s": round(elapsed, 1), "lr": lr_at(step - 1, opts), **{k: v.item() for k, v in losses.items()},
                  "total": total.item(), **({} if finite else {"skipped": True})}
        if step % opts.val_every == 0 or step == opts.steps:
            record.update(run_validation())
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        if step % opts.save_every == 0:
            save()
    bar.close()
    save()
    log_file.close()
    return {"steps": step, "history": history, "elapsed_s": elapsed}


def parse_args(argv: list[str] | None) -> TrainOptions:
    ap = argparse.ArgumentParser(prog="python -m shared_model.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="JSON file of options")
    ap.add_argument("--model", choices=["tps", "iw"], help="which generator to train (default tps)")
    ap.add_argument("--data", nargs="+", help="one or more data caches")
    ap.add_argument("--out")
    ap.add_argument("--model-id", help="name stored in the weights (and on the wire)")
    ap.add_argument("--init", help="start from these weights (shipped name or file): fine-tuning")
    for name in ("steps", "stop_at", "batch", "seed", "val_every", "val_pairs", "save_every", "threads", "max_refs",
                 "core_resolution", "distill_steps", "people_limit"):
        ap.add_argument("--" + name.replace("_", "-"), type=int)
    ap.add_argument("--hr-channels", type=int, nargs="+", help="channels of each full-resolution level")
    for name in ("lr", "lr_new", "time_limit_min", "dropout_until", "crop_jitter", "kp_noise_px", "feature_loss",
                 "window_share"):
        ap.add_argument("--" + name.replace("_", "-"), type=float)
    ap.add_argument("--device", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--kp-backbone", choices=["cnn", "mobilenet_v2"])
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--precision", choices=["fp32", "bf16"],
                    help="bf16: the training step under bf16 autocast (1.7x faster on a CPU with avx512_bf16)")
    ap.add_argument("--freeze-detector", action="store_true", default=None,
                    help="train the generator only (the keypoints stay those of --init)")
    ap.add_argument("--freeze-motion", action="store_true", default=None,
                    help="keep the dense motion and source encoder of --init (iw: learn to choose among the warps)")
    args = ap.parse_args(argv)
    values = json.loads(Path(args.config).read_text()) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if v is not None and k != "config"})
    opts = TrainOptions(**values)
    if not opts.data:
        ap.error("--data is required (here or in --config)")
    return opts


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        summary = train(parse_args(argv))
    except WeightsError as exc:
        log.error("%s", exc)
        return 2
    log.info("done: %d steps in %.1f min", summary["steps"], summary["elapsed_s"] / 60)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
