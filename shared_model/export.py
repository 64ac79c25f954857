"""Export a model to three single-file ONNX graphs (static shapes, batch 1) for onnxruntime.

    python -m shared_model.export --model NAME|PATH --out DIR

Writes ``detector.onnx`` (sender), ``encoder.onnx`` and ``generator.onnx`` (receiver) and ``meta.json``;
what each graph holds: ``shared_model.runtime.graphs``.
"""
from __future__ import annotations

import argparse
import logging

from .nets.model import DEFAULT_MODEL, load_model
from .runtime.graphs import PARTS, export_model

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m shared_model.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="shipped model name or weights file")
    ap.add_argument("--out", required=True, help="folder for the .onnx files")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        model = load_model(args.model)
    except FileNotFoundError as exc:
        log.error("%s", exc)
        return 2
    export_model(model, args.out)
    log.info("wrote %s", ", ".join(f"{p}.onnx" for p in PARTS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
