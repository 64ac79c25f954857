"""The browser receiver in a real headless Chromium (Debian's, driven by Playwright; no browser is downloaded).

Decoding: the page's JavaScript must decode exactly what the Python receiver decodes, errors included: every
symbol of the range coder's models against constriction, a call file of 1000 frames written by the real
sender, a lossy and damaged stream, and the hello checks. The call: ``python -m signaling`` serves the page
and the real exported ``tps`` graphs, a real Python sender streams a generated clip, the page draws it; the
canvas must match the Python receiver's rendering of the same messages (PSNR >= 35 dB) and the page must end
on the sender's bye.
"""
from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import constriction
import cv2
import numpy as np
import pytest
from test_wire import EPOCH, FPS, ID, stream

from receiver.demo import free_port, wait_healthy
from receiver.session import Expectation, Session
from shared_model.media.crop import crop_image
from shared_model.media.video import write_video
from shared_model.nets.model import available_models, load_model
from shared_model.runtime.graphs import META_FILE, export_model
from shared_model.runtime.onnx_backend import OnnxModel, OnnxRenderer
from shared_model.training.synthetic import talking_face
from shared_model.wire.keycoding import SCALES, SHIFT_SCALE, TIME_RANGE, TIME_SCALE, CodingSettings

pytest.skip("the browser receiver (signaling/web/app) speaks wire v2: JSON control messages and frames without a "
            "picture; wire v3 (msgpack control, the picture each frame names, AV1 pictures over the call) needs it "
            "ported first", allow_module_level=True)

from shared_model.wire.messages import (  # noqa: E402 (wire v2's control functions, gone in v3)
    ModelIdentity,
    WireError,
    check_hello,
    decode_control,
    encode_control,
    hello_fields,
)
from shared_model.wire.records import CONTROL, read_records
from signaling.client import TOKEN_ENV

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: A Session of the page's, fed messages one by one: per frame message, the decoded frame or why it was dropped.
JS_OUTCOMES = """async ([records, identity, resolution]) => {
  const { Session } = await import("/app/session.js");
  const session = new Session({ identity, resolution }, { ready: false });
  const counters = ["stale", "spoiled", "malformed", "refused"];
  return records.map(([kind, data]) => {
    if (kind === "C") { session.onControl(data); return null; }
    const before = counters.map((c) => session.stats[c]);
    const bytes = typeof data === "string" ? Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0)) : data.text;
    const f = session.checkFrame(bytes);
    if (f) return [f.seq, String(f.captureNs), Array.from(f.keypoints), Array.from(f.strengths), f.size, f.refSeq];
    return counters.find((c, i) => session.stats[c] !== before[i]);
  });
}"""
COUNTERS = ("stale", "spoiled", "malformed", "refused")


@pytest.fixture(scope="module")
def tps_graphs() -> tuple[Path, str]:
    """The shipped tps weights exported to ONNX (cached in the git-ignored cache/ by weights version):
    (models folder for the server, the export's folder name)."""
    if "tps" not in available_models():
        pytest.skip("the shipped model tps (shared_model/weights/tps.pt) is not present")
    model = load_model("tps")
    root = ROOT / "cache" / "test-onnx"
    folder = root / f"tps-{model.version}"
    if not (folder / META_FILE).is_file():
        tmp = export_model(model, root / f"tmp{os.getpid()}", int8=False)  # the page runs the float graphs
        try:
            tmp.rename(folder)
        except OSError:  # another run exported it meanwhile
            pass
    return root, folder.name


@pytest.fixture(scope="module")
def server(tps_graphs):
    """``python -m signaling`` on a free port, serving the page and the exported graphs."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "signaling", "--port", str(port), "--models", str(tps_graphs[0])],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_healthy(port, proc)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with a fresh profile; skipped only where no Chromium is installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does) to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("profile")), headless=True,
                                                       executable_path=str(CHROMIUM), args=FLAGS)
        yield context
        context.close()


@pytest.fixture
def page(browser, server):
    """A blank page of the server's origin, where the app's modules can be imported."""
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(err))
    page.goto(f"http://127.0.0.1:{server}/healthz")
    yield page
    page.close()
    assert not errors, errors


def test_range_decoder_decodes_every_symbol_as_constriction_encodes_it(page):
    """Every symbol of every model the coding uses at the default settings (and a fine one), in one stream each."""
    cases = []
    bounds = {256, 512, 16, 32, 2048, 4096, TIME_RANGE}  # shifts and residuals at 0.5 px and 1/16; 1/16 px
    for bound in sorted(bounds):
        for scale in (*SCALES, SHIFT_SCALE, TIME_SCALE):
            symbols = np.arange(-bound, bound + 1, max(1, bound // 600), dtype=np.int32)
            symbols = np.concatenate([symbols, np.random.default_rng(bound).integers(-bound, bound + 1, 200)])
            enc = constriction.stream.queue.RangeEncoder()
            enc.encode(symbols.astype(np.int32), constriction.stream.model.QuantizedLaplace(-bound, bound),
                       np.zeros(len(symbols)), np.full(len(symbols), scale))
            cases.append(("laplace", bound, float(scale), symbols.tolist(), enc.get_compressed().tolist()))
    for size in (16, 17, 33, 257, 2 * 4096 + 1, 65536):
        symbols = np.random.default_rng(size).integers(0, size, 500).astype(np.int32)
        enc = constriction.stream.queue.RangeEncoder()
        enc.encode(symbols, constriction.stream.model.Uniform(size))
        cases.append(("uniform", size, 0.0, symbols.tolist(), enc.get_compressed().tolist()))
    decoded = page.evaluate("""async (cases) => {
      const { RangeDecoder, Uniform, QuantizedLaplace } = await import("/app/rangecoder.js");
      return cases.map(([kind, n, scale, symbols, words]) => {
        const dec = new RangeDecoder(Uint32Array.from(words));
        const model = kind === "uniform" ? new Uniform(n) : new QuantizedLaplace(-n, n, 0, scale);
        return symbols.map(() => dec.decode(model));
      });
    }""", cases)
    for (kind, n, scale, symbols, _), got in zip(cases, decoded, strict=True):
        assert got == symbols, (kind, n, scale)
    assert page.evaluate("async () => (await import('/app/keycoding.js')).SCALES") == SCALES.tolist()


def python_outcomes(records: list[tuple[bytes, str | bytes]], identity: ModelIdentity, resolution: int) -> list:
    """The Python receiver's Session on the same messages, in the shape JS_OUTCOMES returns."""
    session = Session(None, Expectation(identity, resolution), live=False)
    out = []
    for kind, data in records:
        if kind == CONTROL:
            session.on_control(data)
            out.append(None)
            continue
        before = [getattr(session.stats, c) for c in COUNTERS]
        frame = session.check_frame(data)
        if frame is None:
            out.append(next(c for c, b in zip(COUNTERS, before) if getattr(session.stats, c) != b))
        else:
            out.append([frame.seq, str(frame.capture_ns), frame.keypoints.ravel().tolist(),
                        frame.strengths.tolist(), frame.size, frame.ref_seq])
    return out


def js_outcomes(page, records, identity: ModelIdentity, resolution: int) -> list:
    wire = [["C", d] if k == CONTROL else ["F", base64.b64encode(d).decode() if isinstance(d, bytes) else {"text": d}]
            for k, d in records]
    ident = {"modelId": identity.model_id, "modelVersion": identity.model_version,
             "numKeypoints": identity.num_keypoints}
    return page.evaluate(JS_OUTCOMES, [wire, ident, resolution])


@pytest.fixture(scope="module")
def recorded_call(tmp_path_factory, tps_graphs) -> Path:
    """A call file of 1000 frames, written by the real sender (``--output``, onnxruntime: faster) from a
    generated clip."""
    folder = tmp_path_factory.mktemp("recorded")
    write_video(folder / "clip.mp4", talking_face(frames=1000, size=256, seed=5), 25.0)
    subprocess.run([sys.executable, "-m", "sender", "--source", str(folder / "clip.mp4"), "--output",
                    str(folder / "call.kpc"), "--threads", "1", "--backend", "onnx", "--onnx-dir",
                    str(tps_graphs[0] / tps_graphs[1])], cwd=ROOT, check=True, capture_output=True)
    return folder / "call.kpc"


def test_a_recorded_call_decodes_bit_exactly(page, recorded_call):
    records = list(read_records(recorded_call))
    hello = decode_control(records[0][1])
    identity = ModelIdentity(hello["model"], hello["model_version"], hello["keypoints"])
    want = python_outcomes(records, identity, hello["resolution"])
    assert sum(isinstance(o, list) for o in want) >= 1000
    assert js_outcomes(page, records, identity, hello["resolution"]) == want


def damaged(data: bytes, rng: random.Random) -> bytes | str:
    """One of the ways a message can arrive broken."""
    how = rng.randrange(6)
    if how == 0:
        return data[: rng.randrange(1, len(data))]
    if how == 1:
        i = rng.randrange(3, len(data))
        return data[:i] + bytes([data[i] ^ 1 << rng.randrange(8)]) + data[i + 1:]
    if how == 2:
        return data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
    if how == 3:
        return b"\x97" + data[1:]  # a wire v1 first byte
    if how == 4:
        return data.decode("latin-1")  # sent as text
    return bytes([0x30 | data[0] & 0x0F]) + data[1:]  # another wire version


@pytest.mark.parametrize("settings, first_seq", [(CodingSettings.from_px(0.25, 128, 1 / 64, 4), 0),
                                                 (CodingSettings.from_px(2.0, 128, 1 / 16, 1), 65_500)],
                         ids=["fine-G4", "coarse-G1-seq-wrap"])
def test_loss_reordering_and_damage_are_handled_as_in_python(page, settings, first_seq):
    """Lost and overtaken messages (stale, spoiled), damaged ones (malformed, refused), frames before the
    hello: the page drops exactly what the Python receiver drops and decodes the rest identically."""
    rng = random.Random(7)
    sent, _, _, _ = stream(settings, 300, lose=set(rng.sample(range(300), 60)), ack_delay=3, first_seq=first_seq,
                           shuffle=2)
    arrivals = [f.data for f in sent if rng.random() > 0.2]
    for i in range(0, len(arrivals) - 3, 3):
        arrivals[i:i + 3] = rng.sample(arrivals[i:i + 3], 3)
    arrivals = [damaged(d, rng) if rng.random() < 0.1 else d for d in arrivals]
    hello = encode_control("hello", **hello_fields(ID, 128, FPS, None, settings, EPOCH))
    records = [(b"F", arrivals[0]), (CONTROL, hello), *((b"F", d) for d in arrivals)]
    want = python_outcomes(records, ID, 128)
    assert {"stale", "spoiled", "malformed", "refused"} <= {o for o in want if isinstance(o, str)}
    assert js_outcomes(page, records, ID, 128) == want


def test_hello_checks_and_control_decoding_match_python(page):
    """The same hellos accepted, the same refused, the same control messages malformed."""
    hello = hello_fields(ID, 128, FPS, [1, 2, 3], CodingSettings(), EPOCH)
    coding = hello["coding"]
    variants = [{}, {"wire": 1}, {"wire": 2.0}, {"wire": True}, {"model": "iw"}, {"model_version": "x"},
                {"keypoints": 10}, {"keypoints": 50.0}, {"resolution": 256}, {"fps": 0}, {"fps": 300}, {"fps": 30},
                {"fps": "fast"}, {"fps": True}, {"epoch_ns": -1}, {"epoch_ns": 1.5}, {"epoch_ns": 2**70},
                {"coding": None}, {"coding": {**coding, "kp_step": 0.9}}, {"coding": {**coding, "kp_step": 1}},
                {"coding": {**coding, "st_step": "x"}}, {"coding": {**coding, "anchor_every": 0}},
                {"coding": {**coding, "anchor_every": 4.0}}, {"coding": {**coding, "extra": 1}}]
    texts = [encode_control("hello", **{**hello, **v}) for v in variants]
    texts += ["not json", "[1]", json.dumps({"type": "shout"}), json.dumps({"type": "bye"}), "x" * 20000]

    def python(text: str) -> str | None:
        try:
            msg = decode_control(text)
        except WireError:
            return "malformed"
        return check_hello(msg, ID, 128) if msg["type"] == "hello" else "ok"

    want = [python(t) for t in texts]
    got = page.evaluate("""async ([texts, identity]) => {
      const { decodeControl } = await import("/app/control.js");
      const { checkHello } = await import("/app/wire.js");
      return texts.map((text) => {
        let msg;
        try { msg = decodeControl(text); } catch { return "malformed"; }
        return msg.type === "hello" ? checkHello(msg, identity, 128) : "ok";
      });
    }""", [texts, {"modelId": ID.model_id, "modelVersion": ID.model_version, "numKeypoints": ID.num_keypoints}])
    assert [w is None for w in want] == [g is None for g in got]
    assert [w in ("malformed", "ok") and w for w in want] == [g in ("malformed", "ok") and g for g in got]
    assert sum(w is None for w in want) == 4  # as sent, 30 fps, 50.0 keypoints (== 50 in Python), epoch 2**70


#: The newest drawn frame's seq and the canvas pixels (RGB, base64), read in one go.
SNAPSHOT = """() => {
  const seq = window.kpc.session?.lastRenderedSeq ?? null;
  if (seq === null) return null;
  const canvas = document.getElementById("face");
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let bin = "";
  for (let i = 0; i < rgba.length; i += 4) bin += String.fromCharCode(rgba[i], rgba[i + 1], rgba[i + 2]);
  return [seq, canvas.width, btoa(bin)];
}"""
#: Every message the page received, as [kind, text or base64].
RECORDED = """() => window.kpc.session.recorded.map(([kind, data]) =>
  [kind, typeof data === "string" ? data : btoa(String.fromCharCode(...data))])"""


def test_the_page_receives_a_call_from_the_python_sender_and_draws_what_python_draws(browser, server, tps_graphs,
                                                                                     tmp_path):
    frames = talking_face(frames=150, size=256, seed=3)
    write_video(tmp_path / "clip.mp4", frames, 25.0)
    reference = crop_image(frames[0], 256)
    cv2.imwrite(str(tmp_path / "ref.png"), cv2.cvtColor(reference, cv2.COLOR_RGB2BGR))
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(err))
    token = os.environ[TOKEN_ENV]  # the sender below takes it from the environment too
    page.goto(f"http://127.0.0.1:{server}/room/web-test?record=1&model={tps_graphs[1]}#token={token}")
    page.wait_for_function("['waiting', 'failed'].includes(document.body.dataset.state)", timeout=60_000)
    assert page.inner_text("#status") == "in room web-test: waiting for the sender"
    page.set_input_files("#pictures", str(tmp_path / "ref.png"))
    page.wait_for_function("document.body.dataset.refs === '1'", timeout=60_000)
    sender = subprocess.Popen([sys.executable, "-m", "sender", "--source", str(tmp_path / "clip.mp4"),
                               "--signaling", f"ws://127.0.0.1:{server}", "--room", "web-test", "--fps", "10",
                               "--threads", "1", "--backend", "onnx", "--onnx-dir", str(tps_graphs[0] / tps_graphs[1])],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    snapshots = {}
    deadline = time.monotonic() + 90
    while page.evaluate("document.body.dataset.state") not in ("ended", "failed") and time.monotonic() < deadline:
        if page.evaluate("window.kpc.session?.lastRenderedSeq ?? null") not in (None, *snapshots):
            snap = page.evaluate(SNAPSHOT)
            snapshots[snap[0]] = snap
        time.sleep(0.5)
    sender_log, _ = sender.communicate(timeout=30)
    status, report = page.inner_text("#status"), page.evaluate("window.kpc.session.stats.report()")
    assert (status, sender.returncode) == ("call ended: bye", 0), (status, sender_log)
    assert "no bye from the receiver" not in sender_log, sender_log
    snap = page.evaluate(SNAPSHOT)
    snapshots[snap[0]] = snap
    records = [(CONTROL if k == "C" else b"F", d if k == "C" else base64.b64decode(d))
               for k, d in page.evaluate(RECORDED)]
    page.close()
    assert not errors, errors

    # The Python receiver's decoding and rendering of the messages the page received.
    session = Session(None, Expectation(ModelIdentity.of(load_model("tps")), 256), live=False)
    decoded = {}
    for kind, data in records:
        if kind == CONTROL:
            session.on_control(data)
        elif (frame := session.check_frame(data)) is not None:
            decoded[frame.seq] = frame
    assert session.bye.is_set() and len(decoded) == report["frames_received"] >= 30
    assert report["frames_rendered"] >= 3 and report["sender_last_seq"] == max(decoded)
    folder = tps_graphs[0] / tps_graphs[1]
    renderer = OnnxRenderer(OnnxModel(folder, load_model("tps"), "cpu", threads=1), [reference])
    for seq, width, pixels in snapshots.values():
        canvas = np.frombuffer(base64.b64decode(pixels), np.uint8).reshape(width, width, 3)
        want, _ = renderer.render(decoded[seq].keypoints, decoded[seq].strengths)
        assert cv2.PSNR(canvas, want) >= 35, seq
    assert len(snapshots) >= 2
