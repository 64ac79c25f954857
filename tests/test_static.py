"""The browser receiver's files served beside the signaling websocket, and the vendored JavaScript."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from signaling.client import SignalingClient
from signaling.server import SignalingServer, bound_port
from signaling.static import WEB_ROOT, WebApp
from signaling.vendor import MANIFEST, PACKAGES, VENDOR, Package, extract, sri


def fake_export(folder: Path, model: str = "tps",
                parts: tuple[str, ...] = ("detector", "encoder", "generator")) -> None:
    folder.mkdir(parents=True)
    for part in parts:
        (folder / f"{part}.onnx").write_bytes(f"{model} {part}".encode())
    meta = {"model": model, "model_version": "abc", "detector_version": "d1", "resolution": 256, "num_keypoints": 50,
            "opset": 18}
    (folder / "meta.json").write_text(json.dumps(meta))


@pytest.fixture
async def site(tmp_path):
    """A signaling server with the web app, its models folder holding one complete export."""
    fake_export(tmp_path / "models" / "tps")
    async with SignalingServer(web=WebApp(tmp_path / "models")).serve("127.0.0.1", 0) as ws_server:
        yield f"127.0.0.1:{bound_port(ws_server)}", tmp_path / "models"


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a plain HTTP GET (in a thread: urllib blocks)."""
    def fetch() -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()
    return await asyncio.to_thread(fetch)


async def test_serves_the_page_its_scripts_and_the_runtime(site):
    host, _ = site
    for path in ("/", "/room/demo", "/room/a.b-c_1/"):
        status, headers, body = await get(f"http://{host}{path}")
        assert status == 200 and headers["Content-Type"].startswith("text/html"), path
        assert b'<script type="module" src="/app/main.js">' in body
    status, headers, body = await get(f"http://{host}/app/wire.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert body == (WEB_ROOT / "app" / "wire.js").read_bytes()
    wasm = WEB_ROOT / "vendor" / "onnxruntime-web" / "ort-wasm-simd-threaded.asyncify.wasm"
    status, headers, body = await get(f"http://{host}/vendor/onnxruntime-web/{wasm.name}")
    assert (status, headers["Content-Type"], len(body)) == (200, "application/wasm", wasm.stat().st_size)
    # cross-origin isolated (onnxruntime-web may use threads), revalidated rather than fetched again
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    etag = {"If-None-Match": headers["ETag"]}
    status, _, body = await get(f"http://{host}/vendor/onnxruntime-web/{wasm.name}", **etag)
    assert (status, body) == (304, b"")


@pytest.mark.parametrize("path", ["/nope", "/app/../static.py", "/static.py", "/app/", "/room/bad%20name",
                                  "/room/a/b", "/vendor/msgpack/LICENSE", "/models/tps/secret.txt",
                                  "/models/../models/tps/meta.json", "/models/missing/generator.onnx"])
async def test_anything_else_is_not_found(site, path):
    host, _ = site
    assert (await get(f"http://{host}{path}"))[0] == 404


async def test_lists_and_serves_complete_exports_only(site):
    host, models = site
    fake_export(models / "partial", parts=("detector", "encoder"))
    (models / "broken").mkdir()
    for part in ("detector", "encoder", "generator"):
        (models / "broken" / f"{part}.onnx").write_bytes(b"x")
    (models / "broken" / "meta.json").write_text("{not json")
    fake_export(models / "later", model="tps-me")  # exported while the server runs
    status, _, body = await get(f"http://{host}/models/index.json")
    assert status == 200
    assert json.loads(body) == [
        {"name": "later", "model": "tps-me", "model_version": "abc", "detector_version": "d1", "resolution": 256,
         "num_keypoints": 50},
        {"name": "tps", "model": "tps", "model_version": "abc", "detector_version": "d1", "resolution": 256,
         "num_keypoints": 50}]
    status, headers, body = await get(f"http://{host}/models/tps/generator.onnx")
    assert (status, headers["Content-Type"], body) == (200, "application/octet-stream", b"tps generator")


async def test_signaling_and_health_still_answer_on_the_same_port(site):
    host, _ = site
    async with SignalingClient(f"ws://{host}/ws", "web", "receiver") as receiver:
        async with SignalingClient(f"ws://{host}/", "web", "sender"):
            assert receiver.peer_present or await receiver.receive("peer-joined", timeout=5)
    status, _, body = await get(f"http://{host}/healthz")
    assert status == 200 and body.startswith(b"ok")


def test_shipped_vendor_files_are_the_pinned_ones():
    manifest = json.loads(MANIFEST.read_text())
    assert [(p["npm"], p["version"], p["integrity"]) for p in manifest["packages"]] == \
        [(p.npm, p.version, p.integrity) for p in PACKAGES]
    shipped = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - {MANIFEST.name}
    assert shipped == set(manifest["files"])
    for name, entry in manifest["files"].items():
        data = (VENDOR / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["bytes"], entry["sha256"]), name
    assert sum(e["bytes"] for e in manifest["files"].values()) < 30e6  # one wasm build only


def tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_vendoring_checks_the_tarball_and_takes_only_the_listed_files(tmp_path):
    tgz = tarball(tmp_path / "p.tgz", {"LICENSE": b"ISC", "dist/a.mjs": b"a", "dist/sub/b.mjs": b"b",
                                       "dist/a.mjs.map": b"map", "src/c.ts": b"c"})
    package = Package("p", "1.0.0", sri(tgz.read_bytes()), "p", "ISC", ("LICENSE", "dist/*.mjs"), strip="dist/")
    copied = extract(tgz, package, tmp_path / "out" / "p")
    assert sorted(copied) == ["p/LICENSE", "p/a.mjs", "p/sub/b.mjs"]
    assert (tmp_path / "out" / "p" / "sub" / "b.mjs").read_bytes() == b"b"
    assert copied["p/a.mjs"] == {"bytes": 1, "sha256": hashlib.sha256(b"a").hexdigest()}
    with pytest.raises(RuntimeError, match="integrity"):
        extract(tgz, replace(package, integrity=sri(b"other")), tmp_path / "out2")
    with pytest.raises(RuntimeError, match="has no"):
        extract(tgz, replace(package, files=("LICENSE", "dist/*.wasm")), tmp_path / "out3")
