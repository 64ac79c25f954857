"""Speed of the sender and the receiver per frame, and the cost of each part of a model.

    python -m shared_model.benchmark [--model NAME|PATH] [--device auto|cpu|cuda] [--threads 1,2]
                                     [--backends torch,onnx] [--precisions fp32,bf16] [--compile] [--out FILE.json]

The first table is what a call runs per frame at the model's output resolution, for every backend, precision
and thread count asked for: the sender's face crop (from a 640x480 frame) and keypoint detector, and the
receiver's rendering from received keypoints with a cached reference (``runtime.Backend``, as the call uses
it); medians over ``--repeats`` frames of a generated talking face, and the frames per second they allow.
``bf16`` / ``fp16`` run torch under autocast, ``int8`` onnxruntime's quantized generator (each precision
with the backends that run it); ``--compile`` wraps the generator in ``torch.compile`` (on a GPU in its
"reduce-overhead" mode, which replays CUDA graphs: batch 1 is many small kernels).
The second table is the cost of each part with torch at the first thread count, in the precision a receiver
here runs by default (``--precision auto``): parameters, GFLOPs, ms.
The sender runs the keypoint detector. For ``tps`` the receiver runs the source encoder once per reference
and the dense motion network plus decoder for every frame; for ``iw`` it prepares each reference's encoder
features once, and per frame runs the dense motion and key network once per reference, the attention over all
of them and the decoder once, measured with 1, 2, 4 and 8 references.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from .media.crop import StreamCropper
from .nets.model import DEFAULT_MODEL, CodecModel, load_model, pick_device
from .runtime.backend import PRECISIONS, Backend, auto_precision
from .runtime.inference import ReferenceRenderer, precision_context
from .training.synthetic import talking_face


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
        "dense_motion incl. TPS solve (receiver, per frame)": (g.dense_motion,
                                                               lambda: g.dense_motion(src, kp_s, st_s, kp_d, st_d)),
        "decoder incl. feature warps (receiver, per frame)": (g.decoder, decode),
        "receiver total per frame (cached references)": (None,
                                                         lambda: g(src, kp_s, st_s, kp_d, st_d, source_feats=feats)),
    }


def iw_parts(model: CodecModel, src: torch.Tensor, drv: torch.Tensor, counts: tuple[int, ...] = (1, 2, 4, 8)) -> Parts:
    g = model.generator
    kp_s, st_s = model.detector(src)
    kp_d, st_d = model.detector(drv)
    parts: Parts = {"reference set: encoder + keypoint map (receiver, once per reference)":
                    (None, lambda: g.prepare(src[None], kp_s[None], st_s[None]))}
    for r in counts:
        refs = g.prepare(src[None].expand(1, r, -1, -1, -1), kp_s[None].expand(1, r, -1, -1),
                         st_s[None].expand(1, r, -1))
        parts[f"receiver per frame, {r} reference{'s' if r > 1 else ''} (motion per reference, attention, decoder)"] = \
            (None, lambda refs=refs: g(refs, kp_d, st_d))
    return parts


def held_mb_per_reference(model: CodecModel, src: torch.Tensor) -> float:
    """What an ``iw`` receiver holds for each reference of its set (the picture, its encoder pyramid and its
    keypoint map), in MB; rendering a frame needs about as much again per reference for the moved features."""
    kp, st = model.detector(src)
    refs = model.generator.prepare(src[None], kp[None], st[None])
    return round(sum(t.numel() * t.element_size() for t in (refs.images, refs.maps, *refs.feats)) / 2**20, 2)


@torch.inference_mode()
def benchmark(model_name: str, device: torch.device, repeats: int = 20) -> dict:
    model = load_model(model_name, device)
    res = model.cfg.resolution
    src = torch.rand(1, 3, res, res, device=device)
    drv = torch.rand(1, 3, res, res, device=device)
    parts: Parts = {"keypoint_detector (sender, per frame)": (model.detector, lambda: model.detector(drv))}
    parts.update((tps_parts if model.kind == "tps" else iw_parts)(model, src, drv))
    rows = {}
    precision = auto_precision("torch", device)
    for name, (module, fn) in parts.items():
        with precision_context(device, precision):
            rows[name] = {"params_m": round(sum(p.numel() for p in module.parameters()) / 1e6, 3) if module else None,
                          "gflops": round(_gflops(fn), 3), "ms": round(_time_ms(fn, device, repeats), 2)}
    return {"model": model.model_id, "kind": model.kind, "resolution": res, "device": str(device),
            "parts_precision": precision,
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
            "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(), "parts": rows,
            **({"held_mb_per_reference": held_mb_per_reference(model, src)} if model.kind == "iw" else {})}


def call_speed(model_name: str, backend: str, device: str, threads: int, precision: str, repeats: int,
               compile_generator: bool = False) -> dict:
    """Median ms per frame of the sender (crop + detector) and the receiver (render), and the fps they allow."""
    torch.set_num_threads(threads)
    b = Backend(model_name, backend, device, threads=threads, precision=precision)
    res = b.model.cfg.resolution
    frames = talking_face(frames=repeats + 3, size=480, seed=3)
    frames = np.pad(frames, ((0, 0), (0, 0), (80, 80), (0, 0)), mode="edge")  # a 640x480 camera frame
    cropper = StreamCropper(res)
    crops = [c for c in (cropper(f) for f in frames) if c is not None]
    extractor, renderer = b.extractor(), b.renderer([crops[0]])
    if compile_generator and backend == "torch":
        b.model.generator = torch.compile(b.model.generator,
                                          mode="reduce-overhead" if b.device.type == "cuda" else None)
    crop_s, detect_s, render, kps = [], [], [], []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        crop = cropper(frame)
        tc = time.perf_counter()
        kp, strength = extractor(crop)
        kps.append((kp, strength))
        t1 = time.perf_counter()
        renderer.render(kp, strength)
        if b.device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if i >= 3:  # warm-up
            crop_s.append(tc - t0)
            detect_s.append(t1 - tc)
            render.append(t2 - t1)
    side_by_side = None
    if threads == 1 and b.device.type == "cpu":  # the receiver's default on a CPU: workers of one thread each
        side_by_side = _side_by_side_fps(renderer, kps, SIDE_BY_SIDE)
    # The face detection inside the crop runs every few frames: its mean, not its median, is its cost a frame.
    crop_ms, detector_ms = 1000 * float(np.mean(crop_s)), 1000 * float(np.median(detect_s))
    sender_ms, receiver_ms = crop_ms + detector_ms, 1000 * float(np.median(render))
    return {"backend": backend, "device": str(b.device), "threads": threads, "precision": precision,
            "compiled": compile_generator, "resolution": res, "sender_ms": round(sender_ms, 2),
            "sender_crop_ms": round(crop_ms, 2), "sender_detector_ms": round(detector_ms, 2),
            "receiver_ms": round(receiver_ms, 2), "receiver_fps": round(1000 / receiver_ms, 1),
            "sender_fps": round(1000 / sender_ms, 1),
            f"receiver_fps_{SIDE_BY_SIDE}_workers": side_by_side}


#: Render workers side by side, one thread each, as the receiver runs on a CPU by default (``--workers``).
SIDE_BY_SIDE = 2


def _side_by_side_fps(renderer: ReferenceRenderer, kps: list[tuple[np.ndarray, np.ndarray]], workers: int) -> float:
    """Frames a second when ``workers`` threads render different frames at once."""
    with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        list(pool.map(lambda k: renderer.render(*k), kps[:workers]))
        t = time.perf_counter()
        list(pool.map(lambda k: renderer.render(*k), kps))
        return round(len(kps) / (time.perf_counter() - t), 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shared_model.benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--threads", default="1,2", help="CPU thread counts to measure (default %(default)s)")
    ap.add_argument("--backends", default="torch,onnx", help="torch and/or onnx (default %(default)s)")
    ap.add_argument("--precisions", default="fp32,bf16,int8",
                    help="fp32, bf16, fp16 (torch), int8 (onnx); each with the backends that run it "
                         "(default %(default)s)")
    ap.add_argument("--compile", action="store_true", help="also measure torch with torch.compile'd generator")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", help="JSON file to write")
    args = ap.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    runs = []
    for backend in args.backends.split(","):
        for precision in [p for p in args.precisions.split(",") if p in PRECISIONS[backend]]:
            for compiled in ([False, True] if args.compile and backend == "torch" else [False]):
                for n in threads:
                    runs.append(call_speed(args.model, backend, args.device, n, precision, args.repeats, compiled))
                    r = runs[-1]
                    print(f"{backend:5s} {r['device']:4s} {precision:4s}{' compiled' if compiled else ''} {n} threads: "
                          f"sender {r['sender_ms']:6.2f} ms (detector {r['sender_detector_ms']:5.2f}), "
                          f"receiver {r['receiver_ms']:6.2f} ms "
                          f"({r['receiver_fps']:.1f} fps" + (f"; {SIDE_BY_SIDE} workers side by side "
                          f"{r[f'receiver_fps_{SIDE_BY_SIDE}_workers']:.1f} fps)"
                                                  if r[f"receiver_fps_{SIDE_BY_SIDE}_workers"] else ")"))
    torch.set_num_threads(threads[0])
    result = benchmark(args.model, pick_device(args.device), args.repeats)
    result["calls"] = runs
    print(f"parts, torch {result['parts_precision']}, {threads[0]} thread{'s' * (threads[0] > 1)}:")
    for name, row in result["parts"].items():
        print(f"{name:55s} {row['params_m'] or '':>7} M params {row['gflops']:8.3f} GFLOPs {row['ms']:8.2f} ms")
    if "held_mb_per_reference" in result:
        print(f"memory held per reference of a set: {result['held_mb_per_reference']} MB")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
