"""``python -m signaling [--host 127.0.0.1] [--port 8765] [--key-file K] [--certfile C --keyfile K] [--models DIR]``.

The signaling server. It also serves the browser receiver at ``http://HOST:PORT/`` (``/room/NAME`` joins NAME)
with the ONNX models exported under ``--models`` (docs/web.md). Health check: ``GET /healthz`` over plain HTTP
(or HTTPS with --certfile). Room tokens: ``python -m signaling.tokens`` (docs/call.md, "Who can join a room").
Stops cleanly on SIGINT / SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import ssl

from shared_model.call.aio import stop_on_signals
from shared_model.runtime.cache import onnx_cache_root

from .limits import Limits
from .server import SignalingServer, bound_port, tls_context
from .static import WebApp
from .tokens import read_key

log = logging.getLogger("signaling")


async def run(host: str, port: int, server: SignalingServer, tls: ssl.SSLContext | None, web: WebApp) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        async with server.serve(host, port, tls) as ws_server:
            scheme = "wss" if tls else "ws"
            log.info("signaling on %s://%s:%d (max %d rooms, %d per client; rooms %s)", scheme, host,
                     bound_port(ws_server), server.limits.max_rooms, server.limits.rooms_per_client,
                     "open with issued tokens only" if server.lock.key else "take the first joiner's token")
            log.info("browser receiver on %s://%s:%d/ with models %s", "https" if tls else "http", host,
                     bound_port(ws_server), [m["name"] for m in web.model_index()] or "(none yet)")
            await stop.wait()
            log.info("shutting down (%d rooms open)", len(server.rooms))
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m signaling", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    ap.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port, printed in the log)")
    ap.add_argument("--key-file", help="secret key: rooms open only with the tokens it issues "
                                       "(python -m signaling.tokens --key-file K --room NAME)")
    ap.add_argument("--certfile", help="TLS certificate chain (PEM): serve wss:// itself")
    ap.add_argument("--keyfile", help="TLS private key (PEM), if not in --certfile")
    defaults = Limits()
    ap.add_argument("--max-rooms", type=int, default=defaults.max_rooms, help="rooms open at once (%(default)s)")
    ap.add_argument("--rooms-per-client", type=int, default=defaults.rooms_per_client,
                    help="rooms one client address may be in at once (%(default)s)")
    ap.add_argument("--lonely-timeout", type=float, default=defaults.lonely_timeout_s, metavar="S",
                    help="send away a peer waiting alone in its room this long (%(default)s s)")
    ap.add_argument("--models", default=str(onnx_cache_root()),
                    help="folder of exported models for the browser receiver, one sub-folder per "
                         "python -m shared_model.export --out (default %(default)s)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # websockets logs two lines per HTTP request (a page load is a dozen); joins and leaves are logged above it.
    logging.getLogger("websockets.server").setLevel(logging.WARNING)
    try:
        key = read_key(args.key_file) if args.key_file else None
        tls = tls_context(args.certfile, args.keyfile) if args.certfile else None
    except (OSError, ValueError, ssl.SSLError) as exc:
        log.error("%s", exc)
        return 2
    limits = Limits(max_rooms=args.max_rooms, rooms_per_client=args.rooms_per_client,
                    lonely_timeout_s=args.lonely_timeout)
    web = WebApp(args.models)
    try:
        asyncio.run(run(args.host, args.port, SignalingServer(limits, key=key, web=web), tls, web))
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
