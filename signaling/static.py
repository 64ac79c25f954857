"""The browser receiver's files over plain HTTP on the signaling port: a websockets ``process_request`` hook.

``GET /`` and ``/room/NAME`` serve the page (``signaling/web/index.html``), ``/app/…`` and ``/vendor/…`` its
scripts and onnxruntime-web; ``/models/index.json`` lists the exported models found in the models folder
(one sub-folder per ``python -m shared_model.export`` output) and ``/models/FOLDER/PART.onnx`` serves their
graphs. A websocket handshake (``Upgrade: websocket``) is left to the signaling handler; anything else is
404. Responses carry an ETag (a repeated visit revalidates the 27 MB runtime instead of fetching it again) and
the two headers that make the page cross-origin isolated, so onnxruntime-web may run several threads.
"""
from __future__ import annotations

import json
import logging
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .protocol import ROOM_PATTERN

log = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).with_name("web")
MODEL_FILES = ("detector.onnx", "encoder.onnx", "generator.onnx", "meta.json")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".json": "application/json", ".wasm": "application/wasm", ".onnx": "application/octet-stream",
                 ".md": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8"}
ISOLATION = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
             "Cache-Control": "no-cache"}


class WebApp:
    """Serves the page's files (a fixed list, read from ``root`` at start) and the models in ``models``."""

    def __init__(self, models: str | Path, root: Path = WEB_ROOT) -> None:
        self.models = Path(models)
        self.files = {"/" + p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
                      if p.is_file() and p.suffix in CONTENT_TYPES}
        if not any(path.endswith(".wasm") for path in self.files):
            log.warning("the browser page lacks onnxruntime-web's wasm (not kept in git): "
                        "run python -m signaling.vendor")

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path = urlsplit(request.path).path
        if path == "/" or (path.startswith("/room/") and ROOM_PATTERN.fullmatch(path[6:].rstrip("/"))):
            path = "/index.html"
        if path == "/models/index.json":
            return _respond(connection, HTTPStatus.OK, json.dumps(self.model_index()).encode(), ".json")
        file = self.files.get(path) or self._model_file(path)
        if file is None:
            return connection.respond(HTTPStatus.NOT_FOUND, f"not found: {path}\n")
        return _send_file(connection, request, file)

    def model_index(self) -> list[dict[str, object]]:
        """The complete exports under the models folder: folder name plus their meta.json fields."""
        index = []
        for folder in sorted(self.models.iterdir()) if self.models.is_dir() else []:
            if not (ROOM_PATTERN.fullmatch(folder.name) and all((folder / f).is_file() for f in MODEL_FILES)):
                continue
            try:
                meta = json.loads((folder / "meta.json").read_text())
                index.append({"name": folder.name, **{k: meta[k] for k in
                                                      ("model", "model_version", "detector_version",
                                                                                 "resolution", "num_keypoints")}})
            except (OSError, ValueError, KeyError) as exc:
                log.warning("skipped model folder %s: bad meta.json (%s)", folder, exc)
        return index

    def _model_file(self, path: str) -> Path | None:
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "models" and ROOM_PATTERN.fullmatch(parts[2]) and parts[3] in MODEL_FILES:
            file = self.models / parts[2] / parts[3]
            return file if file.is_file() else None
        return None


def _respond(connection: ServerConnection, status: HTTPStatus, body: bytes, suffix: str,
             etag: str | None = None) -> Response:
    response = connection.respond(status, "")
    response.body = body
    headers = response.headers
    for name in ("Content-Type", "Content-Length"):
        del headers[name]
    headers["Content-Length"] = str(len(body))
    if status != HTTPStatus.NOT_MODIFIED:
        headers["Content-Type"] = CONTENT_TYPES[suffix]
    for name, value in ISOLATION.items():
        headers[name] = value
    if etag:
        headers["ETag"] = etag
    return response


def _send_file(connection: ServerConnection, request: Request, file: Path) -> Response:
    try:
        stat = file.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        if request.headers.get("If-None-Match") == etag:
            return _respond(connection, HTTPStatus.NOT_MODIFIED, b"", file.suffix, etag)
        return _respond(connection, HTTPStatus.OK, file.read_bytes(), file.suffix, etag)
    except OSError as exc:
        log.warning("cannot serve %s: %s", file, exc)
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
