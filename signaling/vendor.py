"""``python -m signaling.vendor`` fetches the JavaScript the page runs (at set-up, as pip fetches packages).

Each pinned npm package is fetched with ``npm pack`` (the npm registry's tarball), checked against its pinned
integrity hash, and only the files the page loads are copied into ``signaling/web/vendor/NAME/``;
``signaling/web/vendor/manifest.json`` records their sizes and SHA-256 (tests check the shipped files against
it). Nothing is fetched at run time: the server serves these copies. onnxruntime-web's 27 MB wasm file is not
kept in git (the working tree stays small enough to travel to a lent GPU machine): set-up runs this command.
"""
from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .static import WEB_ROOT

log = logging.getLogger("signaling.vendor")

VENDOR = WEB_ROOT / "vendor"
MANIFEST = VENDOR / "manifest.json"


@dataclass(frozen=True)
class Package:
    """An npm package, its pinned version and tarball integrity, and the files taken from it: patterns
    (fnmatch, ``*`` crosses folders) inside the tarball's ``package/`` folder, copied without ``strip``."""

    npm: str
    version: str
    integrity: str
    folder: str
    licence: str
    files: tuple[str, ...]
    strip: str = ""


PACKAGES = (
    # WebGPU bundle: runs on WebGPU where the browser has it and on WebAssembly (the wasm EP) everywhere else,
    # with a single .wasm file (the asyncify build; the WebGPU-less build would add 14 MB for no speed gain).
    Package("onnxruntime-web", "1.30.0",
            "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ==",
            "onnxruntime-web", "MIT (Copyright (c) Microsoft Corporation)",
            ("dist/ort.webgpu.bundle.min.mjs", "dist/ort-wasm-simd-threaded.asyncify.wasm"), strip="dist/"),
    # For the control messages once they are msgpack (issue 13); ES modules, no build step.
    Package("@msgpack/msgpack", "3.1.3",
            "sha512-47XIizs9XZXvuJgoaJUIE2lFoID8ugvc0jzSHP+Ptfk8nTbnR8g788wv48N03Kx0UkAv559HWRQ3yzOgzlRNUA==",
            "msgpack", "ISC (Copyright 2019 The MessagePack Community)",
            ("LICENSE", "dist.esm/*.mjs"), strip="dist.esm/"),
)


def sri(data: bytes) -> str:
    """npm's integrity string (subresource-integrity form) of a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def extract(tarball: Path, package: Package, out: Path) -> dict[str, dict[str, object]]:
    """Copy ``package.files`` from a checked tarball into ``out``; returns {path below vendor/: size, sha256}."""
    data = tarball.read_bytes()
    if sri(data) != package.integrity:
        raise RuntimeError(f"{package.npm}@{package.version}: tarball integrity {sri(data)} is not the pinned one")
    copied = {}
    unmatched = set(package.files)
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("package/")
            patterns = [p for p in package.files if fnmatch.fnmatchcase(name, p)]
            if not (member.isfile() and patterns):
                continue
            unmatched.difference_update(patterns)
            target = out / name.removeprefix(package.strip)
            target.parent.mkdir(parents=True, exist_ok=True)
            content = tar.extractfile(member).read()
            target.write_bytes(content)
            copied[f"{out.name}/{target.relative_to(out).as_posix()}"] = {
                "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    if unmatched:
        raise RuntimeError(f"{package.npm}@{package.version} has no {sorted(unmatched)}")
    return copied


def npm_pack(package: Package, folder: Path) -> Path:
    """The package's tarball from the npm registry (``npm pack``), in ``folder``."""
    out = subprocess.run(["npm", "pack", f"{package.npm}@{package.version}", "--json", "--pack-destination",
                          str(folder)], check=True, capture_output=True, text=True).stdout
    return folder / json.loads(out)[0]["filename"]


def vendor(vendor_dir: Path = VENDOR) -> dict[str, object]:
    """Fetch, check and copy every pinned package; write and return the manifest."""
    files: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            out = vendor_dir / package.folder
            if out.exists():
                shutil.rmtree(out)
            copied = extract(npm_pack(package, Path(tmp)), package, out)
            log.info("%s@%s: %d files", package.npm, package.version, len(copied))
            files.update(copied)
    manifest = {"packages": [{"npm": p.npm, "version": p.version, "integrity": p.integrity, "licence": p.licence,
                              "folder": p.folder} for p in PACKAGES], "files": files}
    (vendor_dir / MANIFEST.name).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m signaling.vendor", description=__doc__).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    manifest = vendor()
    total = sum(f["bytes"] for f in manifest["files"].values())
    log.info("wrote %s: %d files, %.1f MB", MANIFEST, len(manifest["files"]), total / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
