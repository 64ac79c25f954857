"""Reference images from one's own video: ``python -m receiver.prepare_refs --video FILE --out ./me --count 4``.

The rule (``shared_model.media.reference_frames``): sharp frames in which the face is found, as different from
each other as possible. Give the receiver the folder: ``python -m receiver --refs ./me ...``.
"""
from __future__ import annotations

import argparse
import logging
import sys

from shared_model.media.reference_frames import prepare_refs
from shared_model.media.video import VideoError

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m receiver.prepare_refs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", required=True, help="a video of the speaker's face")
    ap.add_argument("--out", required=True, help="folder to write the PNGs to")
    ap.add_argument("--count", type=int, default=4, help="how many references (default %(default)s)")
    ap.add_argument("--size", type=int, default=256, help="side of the PNGs in pixels (default %(default)s)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.count < 1:
        ap.error("--count must be at least 1")
    try:
        paths = prepare_refs(args.video, args.out, args.count, args.size)
    except VideoError as exc:
        log.error("%s", exc)
        return 2
    print("\n".join(str(p) for p in paths), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
