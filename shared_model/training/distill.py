"""Teach a new keypoint detector to give a trained one's keypoints and strengths (a backbone swap that keeps
what the generator has learned to read)."""
from __future__ import annotations

import logging

import torch
from torch import nn
from tqdm import tqdm

from .data import PairSampler

log = logging.getLogger(__name__)


def distill_detector(student: nn.Module, teacher: nn.Module, sampler: PairSampler, steps: int, batch: int = 32,
                     lr: float = 1e-3, device: torch.device | str = "cpu") -> list[float]:
    """Train ``student`` for ``steps`` steps to match ``teacher`` (frozen, eval mode) on augmented frames;
    returns the loss per step (L1 on coordinates plus L1 on strengths)."""
    teacher.eval().requires_grad_(False)
    student.train()
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    losses = []
    for step in tqdm(range(steps), desc="distil detector", disable=None):
        for group in opt.param_groups:  # cosine decay
            group["lr"] = lr * 0.5 * (1 + torch.cos(torch.tensor(step / steps * torch.pi))).item()
        _, frames = sampler.sample(batch)
        frames = frames.to(device)
        with torch.no_grad():
            kp_t, st_t = teacher(frames)
        kp_s, st_s = student(frames)
        loss = (kp_s - kp_t).abs().mean() + (st_s - st_t).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if (step + 1) % 100 == 0:  # tqdm is silent in a log file
            log.info("distilling the detector: step %d of %d, loss %.4f", step + 1, steps, losses[-1])
    log.info("distilled the detector: loss %.4f -> %.4f", losses[0], losses[-1])
    return losses
