"""Cost per frame of each part of a model: parameters, GFLOPs and milliseconds.

    python -m shared_model.benchmark [--model NAME|PATH] [--device auto|cpu|cuda] [--threads N] [--out FILE.json]

The sender runs the keypoint detector. For ``tps`` the receiver runs the source encoder once per reference
and the dense motion network plus decoder for every frame; for ``iw`` it prepares each reference's tokens
once, and per frame runs the query network, the attention over all references and the decoder, measured
with 1, 2, 4 and 8 references (the attention's cost grows with the references, the rest does not).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from .nets.model import DEFAULT_MODEL, CodecModel, load_model, pick_device


def _time_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    return 1000 * times[len(times) // 2]


def _gflops(fn: Callable[[], object]) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


Parts = dict[str, tuple[torch.nn.Module | None, Callable[[], object]]]


def tps_parts(model: CodecModel, src: torch.Tensor, drv: torch.Tensor) -> Parts:
    g = model.generator
    kp_s, st_s = model.detector(src)
    kp_d, st_d = model.detector(drv)
    feats = g.encoder(src)
    motion = g.dense_motion(src, kp_s, st_s, kp_d, st_d)

    def decode() -> torch.Tensor:
        return g.decoder(g.warp_features(feats, motion["flow"], motion["occlusion"]))

    return {
        "source_encoder (receiver, once per reference)": (g.encoder, lambda: g.encoder(src)),
        "dense_motion incl. TPS solve (receiver, per frame)": (g.dense_motion, lambda: g.dense_motion(src, kp_s, st_s, kp_d, st_d)),
        "decoder incl. feature warps (receiver, per frame)": (g.decoder, decode),
        "receiver total per frame (cached references)": (None, lambda: g(src, kp_s, st_s, kp_d, st_d, source_feats=feats)),
    }


def iw_parts(model: CodecModel, src: torch.Tensor, drv: torch.Tensor, counts: tuple[int, ...] = (1, 2, 4, 8)) -> Parts:
    g = model.generator
    kp_s, st_s = model.detector(src)
    kp_d, st_d = model.detector(drv)
    parts: Parts = {"reference tokens: encoder + key U-Net (receiver, once per reference)":
                    (None, lambda: g.prepare(src[None], kp_s[None], st_s[None]))}
    for r in counts:
        refs = g.prepare(src[None].expand(1, r, -1, -1, -1), kp_s[None].expand(1, r, -1, -1), st_s[None].expand(1, r, -1))
        parts[f"receiver per frame, {r} reference{'s' if r > 1 else ''} (attention + decoder)"] = \
            (None, lambda refs=refs: g(refs, kp_d, st_d))
    return parts


@torch.inference_mode()
def benchmark(model_name: str, device: torch.device, repeats: int = 20) -> dict:
    model = load_model(model_name, device)
    res = model.cfg.resolution
    src = torch.rand(1, 3, res, res, device=device)
    drv = torch.rand(1, 3, res, res, device=device)
    parts: Parts = {"keypoint_detector (sender, per frame)": (model.detector, lambda: model.detector(drv))}
    parts.update((tps_parts if model.kind == "tps" else iw_parts)(model, src, drv))
    rows = {}
    for name, (module, fn) in parts.items():
        rows[name] = {"params_m": round(sum(p.numel() for p in module.parameters()) / 1e6, 3) if module else None,
                      "gflops": round(_gflops(fn), 3), "ms": round(_time_ms(fn, device, repeats), 2)}
    return {"model": model.model_id, "kind": model.kind, "resolution": res, "device": str(device),
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(), "parts": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shared_model.benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", help="JSON file to write")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = benchmark(args.model, pick_device(args.device), args.repeats)
    for name, row in result["parts"].items():
        print(f"{name:55s} {row['params_m'] or '':>7} M params {row['gflops']:8.3f} GFLOPs {row['ms']:8.2f} ms")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
