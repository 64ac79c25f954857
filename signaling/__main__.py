"""``python -m signaling [--host 127.0.0.1] [--port 8765] [--max-rooms N] [--models DIR]``: the signaling server.

It also serves the browser receiver at ``http://HOST:PORT/`` (``/room/NAME`` joins NAME) with the ONNX
models exported under ``--models`` (docs/web.md). Health check: ``GET /healthz`` over plain HTTP. Stops
cleanly on SIGINT / SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import logging

from shared_model.call.aio import stop_on_signals
from shared_model.runtime.cache import onnx_cache_root

from .server import SignalingServer, bound_port
from .static import WebApp

log = logging.getLogger("signaling")


async def run(host: str, port: int, max_rooms: int, models: str) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    web = WebApp(models)
    server = SignalingServer(max_rooms, web)
    with stop_on_signals(stop):
        async with server.serve(host, port) as ws_server:
            log.info("signaling on ws://%s:%d (max %d rooms)", host, bound_port(ws_server), max_rooms)
            log.info("browser receiver on http://%s:%d/ with models %s from %s", host, bound_port(ws_server),
                     [m["name"] for m in web.model_index()] or "(none yet)", models)
            await stop.wait()
            log.info("shutting down (%d rooms open)", len(server.rooms))
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m signaling", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    ap.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port, printed in the log)")
    ap.add_argument("--max-rooms", type=int, default=100)
    ap.add_argument("--models", default=str(onnx_cache_root()),
                    help="folder of exported models for the browser receiver, one sub-folder per "
                         "python -m shared_model.export --out (default %(default)s)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # websockets logs two lines per HTTP request (a page load is a dozen); joins and leaves are logged above it.
    logging.getLogger("websockets.server").setLevel(logging.WARNING)
    try:
        asyncio.run(run(args.host, args.port, args.max_rooms, args.models))
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
