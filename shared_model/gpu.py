"""Training on a lent GPU machine, in runs of under 10 minutes that resume from the weights of the last one.

Such a machine starts bare, reaches nothing outside, and receives only the working tree (at most 64 MiB in all,
the shipped weights included), so the training frames travel packed as JPEG within a byte budget::

    python -m shared_model.gpu pack --data cache/videos256 --init runs/tps256/model.pt --recipe RECIPE.json
    # on the GPU machine, from the repository root ($OUT comes back; see docs/model.md):
    python3 -m shared_model.gpu run --minutes 8 --out $OUT
    # here again: the weights that came back start the next run
    python -m shared_model.gpu pack ... --init OUT/model.pt

Speed on the GPU (``bench``: torch in fp32 / fp16 / bf16, eager and compiled with CUDA graphs, and
onnxruntime's CUDA provider where the machine has onnxruntime-gpu; batch 1 at the shipped resolution)::

    python3 -m shared_model.gpu bench --out $OUT      # $OUT/bench.json

``pack`` writes ``.gpu/`` (git-ignored): ``frames.npz`` (JPEG bytes of frames spread over every training clip,
as many per clip as the budget allows), ``init.pt`` and ``recipe.json``. ``run`` unpacks the frames into a
frame cache, trains with the recipe on CUDA from ``init.pt`` for ``--minutes``, and copies the fp16
``model.pt`` (about 11 MB) and ``metrics.jsonl`` to ``--out``. Adam's state does not travel (it would not fit):
each run starts it afresh, with a short warm-up.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np

from .training.data import FrameCache

log = logging.getLogger(__name__)

PACK_DIR = Path(".gpu")
JPEG_QUALITY = 92


def encode(frame: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def pack(data: str | Path, init: str | Path, recipe: str | Path, out: Path = PACK_DIR, budget_mb: float = 12.0) -> dict:
    """Pack the training clips of a frame cache into ``out`` within ``budget_mb`` of JPEG; returns the index."""
    cache = FrameCache.load(data)
    clips = cache.split(held_out=False)
    probe = [len(encode(cache.clip_frames(c)[0])) for c in clips[:: max(1, len(clips) // 20)]]
    per_clip = max(2, int(budget_mb * 2**20 / (np.mean(probe) * len(clips))))
    blobs, index = [], []
    for clip in clips:
        frames = cache.clip_frames(clip)
        picks = np.unique(np.linspace(0, len(frames) - 1, min(per_clip, len(frames))).round().astype(int))
        index.append({**clip, "start": len(blobs), "length": len(picks), "held_out": False})
        blobs += [np.frombuffer(encode(frames[i]), np.uint8) for i in picks]
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "frames.npz", *blobs)
    resolution = int(cache.frames.shape[1])
    (out / "index.json").write_text(json.dumps({"resolution": resolution, "clips": index}))
    shutil.copy(init, out / "init.pt")
    options = {**json.loads(Path(recipe).read_text()), "data": ["cache/gpu"], "out": "runs/gpu",
               "init": str(out / "init.pt"), "device": "cuda"}
    (out / "recipe.json").write_text(json.dumps(options, indent=1))
    size = sum(b.nbytes for b in blobs) / 2**20
    log.info("packed %d frames of %d clips (%d a clip, %.1f MB) into %s", len(blobs), len(index), per_clip, size, out)
    return {"frames": len(blobs), "clips": len(index), "mb": size}


def unpack(pack_dir: Path, cache_dir: Path) -> None:
    """The packed JPEGs as a frame cache (``frames.npy`` and ``index.json``)."""
    index = json.loads((pack_dir / "index.json").read_text())
    with np.load(pack_dir / "frames.npz") as blobs:
        frames = [cv2.cvtColor(cv2.imdecode(blobs[f"arr_{i}"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                  for i in range(len(blobs.files))]
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(cache_dir / "frames.npy", np.stack(frames))
    (cache_dir / "index.json").write_text(json.dumps(index))


def run(pack_dir: Path, minutes: float, out: Path, device: str = "cuda", steps: int | None = None) -> None:
    """Unpack, train on the GPU for ``minutes`` (at most ``steps``), and copy the weights and metrics to ``out``."""
    from .train import main as train_main

    recipe = json.loads((pack_dir / "recipe.json").read_text())
    unpack(pack_dir, Path(recipe["data"][0]))
    train_main(["--config", str(pack_dir / "recipe.json"), "--time-limit-min", str(minutes), "--device", device,
                *(["--stop-at", str(steps)] if steps else [])])
    out.mkdir(parents=True, exist_ok=True)
    for name in ("model.pt", "metrics.jsonl"):
        shutil.copy(Path(recipe["out"]) / name, out / name)


def bench(out: Path, model: str, device: str = "cuda", compiled: bool = True, repeats: int = 100) -> dict:
    """``shared_model.benchmark`` as a GPU is measured: one thread, every torch precision, compiled too, and
    onnxruntime when it has the CUDA provider (the workplace's GPU image has only the CPU one, and
    onnxruntime-gpu's wheel is too large to carry). Writes and returns ``out/bench.json``."""
    import onnxruntime as ort

    from .benchmark import main as benchmark_main

    onnx = device == "cpu" or "CUDAExecutionProvider" in ort.get_available_providers()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "bench.json"
    benchmark_main(["--model", model, "--device", device, "--threads", "1", "--repeats", str(repeats),
                    "--backends", "torch,onnx" if onnx else "torch", "--precisions", "fp32,fp16,bf16",
                    *(["--compile"] if compiled else []), "--out", str(path)])
    result = json.loads(path.read_text())
    result["onnx_measured"] = onnx
    path.write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shared_model.gpu", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="pack frames, start weights and recipe into .gpu/")
    p.add_argument("--data", required=True, help="frame cache (python -m shared_model.training.data)")
    p.add_argument("--init", required=True, help="weights to start from (the last run's model.pt)")
    p.add_argument("--recipe", required=True, help="training options (JSON, as --config of shared_model.train)")
    p.add_argument("--budget-mb", type=float, default=12.0, help="JPEG bytes to pack (the tree travels in 64 MiB)")
    p.add_argument("--pack-dir", type=Path, default=PACK_DIR)
    r = sub.add_parser("run", help="on the GPU machine: unpack, train, copy the weights to --out")
    r.add_argument("--minutes", type=float, default=8.0)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--pack-dir", type=Path, default=PACK_DIR)
    r.add_argument("--device", default="cuda", help="cuda (cpu only to try the script)")
    r.add_argument("--steps", type=int, help="stop after this many steps (to try the script)")
    b = sub.add_parser("bench", help="on the GPU machine: the benchmark of every backend and precision to --out")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--model", default="tps")
    b.add_argument("--device", default="cuda", help="cuda (cpu only to try the script)")
    b.add_argument("--no-compile", action="store_true", help="skip torch.compile (to try the script quickly)")
    b.add_argument("--repeats", type=int, default=100)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.command == "pack":
        print(json.dumps(pack(args.data, args.init, args.recipe, args.pack_dir, args.budget_mb)))
    elif args.command == "bench":
        bench(args.out, args.model, args.device, not args.no_compile, args.repeats)
    else:
        run(args.pack_dir, args.minutes, args.out, args.device, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
