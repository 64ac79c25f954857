"""The browser receiver in a real headless Chromium (Debian's, driven by Playwright; no browser is downloaded).

Decoding (wire v3): the page's JavaScript must decode exactly what the Python receiver decodes, errors
included: every symbol of the range coder's models against constriction, a call file written by the real
sender from a 1000-frame clip (its frames and its pictures, refreshes included), a lossy and damaged stream,
the msgpack control messages (checked, refused, encoded) and the hello checks, and the AV1 pictures
(WebCodecs). The call: ``python -m signaling`` serves the page and the real exported ``tps`` graphs, a real
Python sender streams a generated clip and sends its own pictures, the page draws it; the canvas must match
the Python receiver's rendering of the same messages (PSNR >= 35 dB) and the page must end on the sender's bye.
"""
from __future__ import annotations

import asyncio
import base64
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import constriction
import cv2
import msgpack
import numpy as np
import pytest
from test_wire import EPOCH, FPS, ID, stream

from receiver.demo import free_port, wait_healthy
from receiver.session import Expectation, Session
from shared_model.errors import PictureError, WireError, WireRefused
from shared_model.media.crop import crop_image
from shared_model.media.picture_codec import PICTURE_CODEC, decode_picture, encode_picture
from shared_model.media.video import write_video
from shared_model.nets.model import load_model
from shared_model.runtime.graphs import META_FILE, export_model
from shared_model.runtime.onnx_backend import OnnxModel, OnnxRenderer
from shared_model.training.synthetic import talking_face
from shared_model.wire.control import MAX_PICTURES, TYPES, Bye, Hello, decode_control
from shared_model.wire.keycoding import PICTURE_CHANGE, SCALES, SHIFT_SCALE, TIME_RANGE, TIME_SCALE, CodingSettings
from shared_model.wire.messages import ModelIdentity
from shared_model.wire.records import CONTROL, FRAME, read_records
from signaling.client import TOKEN_ENV

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Messages between Python and the page: bytes as base64, text as {text} (wire and unwire on the Python side).
JS_WIRE = """
  const fromWire = (data) =>
    typeof data === "string" ? Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0)) : data.text;
  const toWire = (data) => {
    if (typeof data === "string") return { text: data };
    let bin = "";
    for (const b of data) bin += String.fromCharCode(b);
    return btoa(bin);
  };"""


def page_function(params: str, body: str) -> str:
    """An async function for page.evaluate with fromWire and toWire in scope."""
    return f"async ({params}) => {{{JS_WIRE}\n{body}\n}}"


def wire(data: bytes | str) -> str | dict:
    """A message as fromWire takes it."""
    return base64.b64encode(data).decode() if isinstance(data, bytes) else {"text": data}


def unwire(data: str | dict) -> bytes | str:
    """A message as toWire gives it."""
    return base64.b64decode(data) if isinstance(data, str) else data["text"]


#: A Session of the page's, fed messages one by one (each picture decoded with WebCodecs and held before the next
#: message): per frame message, the decoded frame or why it was dropped; and how many pictures it held.
JS_OUTCOMES = page_function("[records, identity, resolution]", """
  const { Session } = await import("/app/session.js");
  const { decodePicture } = await import("/app/picture-codec.js");
  const renderer = { own: 0, addPicture: (id, data) => decodePicture(data, resolution) };
  const session = new Session({ identity, resolution }, renderer);
  const counters = ["stale", "spoiled", "malformed", "refused"];
  const out = [];
  for (const [kind, data] of records) {
    const message = fromWire(data);
    if (kind === "C") {
      session.onControl(message);
      await session.preparing;
      out.push(null);
      continue;
    }
    const before = counters.map((c) => session.stats[c]);
    const f = session.checkFrame(message);
    out.push(f ? [f.seq, String(f.captureNs), [...f.keypoints], [...f.strengths], f.size, f.refSeq, f.picture]
               : counters.find((c, i) => session.stats[c] !== before[i]));
  }
  return [out, session.stats.picturesHeld];
""")
COUNTERS = ("stale", "spoiled", "malformed", "refused")


def run_async(coroutine):
    """asyncio.run in a thread of its own: Playwright's sync API keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class PictureHolder:
    """The Python Session's renderer, as far as decoding needs one: no pictures of its own; it takes the
    sender's (decoded first, so a bad one is refused)."""

    def __init__(self) -> None:
        self.own: list[np.ndarray] = []
        self.pictures: dict[int, np.ndarray] = {}

    def add_picture(self, picture: int, image: np.ndarray) -> None:
        self.pictures[picture] = image

    def remove_picture(self, picture: int) -> None:
        self.pictures.pop(picture, None)


@pytest.fixture(scope="module")
def tps_graphs() -> tuple[Path, str]:
    """The shipped tps weights exported to ONNX (cached in the git-ignored cache/ by weights version):
    (models folder for the server, the export's folder name)."""
    model = load_model("tps")
    root = ROOT / "cache" / "test-onnx"
    folder = root / f"tps-{model.version}"
    if not (folder / META_FILE).is_file():
        tmp = export_model(model, root / f"tmp{os.getpid()}", int8=False)  # the page runs the float graphs
        try:
            tmp.rename(folder)
        except OSError:  # another run exported it meanwhile
            shutil.rmtree(tmp)
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
    for size in (16, 17, 33, 256, 257, 2 * 4096 + 1, 65536):
        symbols = np.random.default_rng(size).integers(0, size, 500).astype(np.int32)
        enc = constriction.stream.queue.RangeEncoder()
        enc.encode(symbols, constriction.stream.model.Uniform(size))
        cases.append(("uniform", size, 0.0, symbols.tolist(), enc.get_compressed().tolist()))
    rng = np.random.default_rng(3)
    for probabilities in ([1 - PICTURE_CHANGE, PICTURE_CHANGE], [PICTURE_CHANGE, 1 - PICTURE_CHANGE],
                          rng.uniform(0, 1, 5).tolist(), (rng.uniform(0, 1, 40) ** 4).tolist()):
        symbols = np.concatenate([np.arange(len(probabilities)), rng.integers(0, len(probabilities), 300)])
        enc = constriction.stream.queue.RangeEncoder()
        enc.encode(symbols.astype(np.int32), constriction.stream.model.Categorical(np.array(probabilities),
                                                                                     perfect=False))
        cases.append(("categorical", probabilities, 0.0, symbols.tolist(), enc.get_compressed().tolist()))
    decoded = page.evaluate("""async (cases) => {
      const { Categorical, RangeDecoder, Uniform, QuantizedLaplace } = await import("/app/rangecoder.js");
      return cases.map(([kind, n, scale, symbols, words]) => {
        const dec = new RangeDecoder(Uint32Array.from(words));
        const model = kind === "uniform" ? new Uniform(n) : kind === "categorical" ? new Categorical(n)
          : new QuantizedLaplace(-n, n, 0, scale);
        return symbols.map(() => dec.decode(model));
      });
    }""", cases)
    for (kind, n, scale, symbols, _), got in zip(cases, decoded, strict=True):
        assert got == symbols, (kind, n, scale)
    assert page.evaluate("async () => (await import('/app/keycoding.js')).SCALES") == SCALES.tolist()


def python_outcomes(records: list[tuple[bytes, str | bytes]], identity: ModelIdentity, resolution: int) -> tuple:
    """The Python receiver's Session on the same messages, in the shape JS_OUTCOMES returns."""
    async def replay() -> tuple:
        session = Session(PictureHolder(), Expectation(identity, resolution), live=False)
        out = []
        for kind, data in records:
            if kind == CONTROL:
                session.on_control(data)
                await session.settle()
                out.append(None)
                continue
            before = [getattr(session.stats, c) for c in COUNTERS]
            frame = session.check_frame(data)
            if frame is None:
                out.append(next(c for c, b in zip(COUNTERS, before, strict=True) if getattr(session.stats, c) != b))
            else:
                out.append([frame.seq, str(frame.capture_ns), frame.keypoints.ravel().tolist(),
                            frame.strengths.tolist(), frame.size, frame.ref_seq, frame.picture])
        return out, session.stats.pictures_held

    return run_async(replay())


def js_outcomes(page, records, identity: ModelIdentity, resolution: int) -> tuple:
    ident = {"modelId": identity.model_id, "modelVersion": identity.model_version,
             "numKeypoints": identity.num_keypoints, "detectorVersion": identity.detector_version}
    return tuple(page.evaluate(JS_OUTCOMES, [[[k.decode(), wire(d)] for k, d in records], ident, resolution]))


@pytest.fixture(scope="module")
def recorded_call(tmp_path_factory, tps_graphs) -> Path:
    """A call file of 1000 frames, written by the real sender (``--output``, onnxruntime: faster) from a
    generated clip; the sender puts its pictures in it (good frames of the first second, refreshes)."""
    folder = tmp_path_factory.mktemp("recorded")
    write_video(folder / "clip.mp4", talking_face(frames=1000, size=256, seed=5), 25.0)
    subprocess.run([sys.executable, "-m", "sender", "--source", str(folder / "clip.mp4"), "--output",
                    str(folder / "call.kpc"), "--threads", "1", "--backend", "onnx", "--onnx-dir",
                    str(tps_graphs[0] / tps_graphs[1])], cwd=ROOT, check=True, capture_output=True)
    return folder / "call.kpc"


def test_a_recorded_call_decodes_bit_exactly(page, recorded_call):
    records = list(read_records(recorded_call))
    hello = decode_control(records[0][1])
    identity = ModelIdentity(hello.model, hello.model_version, hello.keypoints, hello.detector)
    want = python_outcomes(records, identity, hello.resolution)
    frames = [o for o in want[0] if isinstance(o, list)]
    # every frame of the file decoded (those of the first second, before the first picture, are not sent)
    assert len(frames) == sum(kind == FRAME for kind, _ in records) >= 900
    assert want[1] > MAX_PICTURES  # refreshes beyond the bound: held pictures replaced
    assert {f[-1] for f in frames} - {0}
    assert js_outcomes(page, records, identity, hello.resolution) == want


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
    return bytes([0x20 | data[0] & 0x0F]) + data[1:]  # wire version 2


@pytest.mark.parametrize("settings, first_seq", [(CodingSettings.from_px(0.25, 128, 1 / 64, 4), 0),
                                                 (CodingSettings.from_px(2.0, 128, 1 / 16, 1), 65_500)],
                         ids=["fine-G4", "coarse-G1-seq-wrap"])
def test_loss_reordering_and_damage_are_handled_as_in_python(page, settings, first_seq):
    """Lost and overtaken messages (stale, spoiled), damaged ones (malformed, refused), frames before the
    hello, changes of picture: the page drops exactly what the Python receiver drops and decodes the rest
    identically."""
    rng = random.Random(7)
    sent, _, _, _ = stream(settings, 300, lose=set(rng.sample(range(300), 60)), ack_delay=3, first_seq=first_seq,
                           shuffle=2)
    arrivals = [f.data for f in sent if rng.random() > 0.2]
    for i in range(0, len(arrivals) - 3, 3):
        arrivals[i:i + 3] = rng.sample(arrivals[i:i + 3], 3)
    arrivals = [damaged(d, rng) if rng.random() < 0.1 else d for d in arrivals]
    hello = Hello(ID.model_id, ID.model_version, ID.detector_version, ID.num_keypoints, 128, FPS, None, settings, EPOCH,
                  PICTURE_CODEC)
    records = [(b"F", arrivals[0]), (CONTROL, hello.encode()), *((b"F", d) for d in arrivals)]
    want = python_outcomes(records, ID, 128)
    assert {"stale", "spoiled", "malformed", "refused"} <= {o for o in want[0] if isinstance(o, str)}
    assert len({o[-1] for o in want[0] if isinstance(o, list)}) > 1  # frames name several pictures
    assert js_outcomes(page, records, ID, 128) == want


def golden_controls() -> list[bytes]:
    """One message of every control type (tests/data/wire_v3_control.json)."""
    import json
    return [bytes.fromhex(m["hex"]) for m in json.loads((ROOT / "tests/data/wire_v3_control.json").read_text())]


def control_outcome(data: bytes | str) -> str:
    """What the Python receiver makes of a control message: refused (another version), malformed, the hello
    check's verdict, or the type and fields."""
    try:
        msg = decode_control(data)
    except WireRefused:
        return "refused"
    except WireError:
        return "malformed"
    if isinstance(msg, Hello):
        try:
            msg.check(ID, 128, PICTURE_CODEC)
        except WireRefused:
            return "hello refused"
        return "hello accepted"
    return msg.TYPE


#: The page's decodeControl and checkHello on each message, in control_outcome's terms.
JS_CONTROL = page_function("[messages, identity]", """
  const { checkHello, decodeControl } = await import("/app/control.js");
  const { WireRefused } = await import("/app/wire.js");
  return messages.map((m) => {
    let msg;
    try {
      msg = decodeControl(fromWire(m));
    } catch (err) {
      return err instanceof WireRefused ? "refused" : "malformed";
    }
    if (msg.type !== "hello") return msg.type;
    return checkHello(msg, identity, 128, "av1") === null ? "hello accepted" : "hello refused";
  });
""")


def mutated(data: bytes, rng: random.Random) -> bytes:
    """A control message with a byte changed, inserted, removed, or cut short."""
    i = rng.randrange(len(data))
    how = rng.randrange(4)
    if how == 0:
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
    if how == 1:
        return data[:i] + bytes([rng.randrange(256)]) + data[i:]
    if how == 2:
        return data[:i] + data[i + 1:]
    return data[:i]


def test_control_messages_are_checked_and_hellos_accepted_or_refused_as_in_python(page):
    """The same messages checked, the same malformed or of another version, the same hellos refused: variants
    of a hello, the golden message of every type, and 1500 mutated messages."""
    fields = {"v": 3, "t": "hello", "model": ID.model_id, "model_version": ID.model_version,
              "detector": ID.detector_version, "keypoints": 50,
              "resolution": 128, "fps": 25.0, "crop": [1, 2, 3], "coding": CodingSettings().as_dict(),
              "epoch_ns": EPOCH, "picture_codec": "av1"}
    coding = fields["coding"]
    variants = [{}, {"v": 2}, {"v": 3.0}, {"v": True}, {"t": "shout"}, {"model": "iw"}, {"model_version": "x"},
                {"detector": "x"}, {"keypoints": 10}, {"keypoints": 50.0}, {"resolution": 256}, {"fps": 0},
                {"fps": 5e-324}, {"fps": 0.1}, {"fps": 300}, {"fps": 30}, {"fps": "fast"}, {"fps": True},
                {"fps": float("nan")}, {"epoch_ns": -1}, {"epoch_ns": 1.5}, {"epoch_ns": 2**64 - 1}, {"crop": None},
                {"crop": [1, 2, 0]}, {"crop": [1, 2]}, {"coding": None}, {"coding": {**coding, "kp_step": 0.9}},
                {"coding": {**coding, "kp_step": 1}}, {"coding": {**coding, "st_step": "x"}},
                {"coding": {**coding, "anchor_every": 0}}, {"coding": {**coding, "anchor_every": 4.0}},
                {"coding": {**coding, "extra": 1}}, {"picture_codec": "avif"}, {"picture_codec": "a" * 17},
                {"extra": 1}, {"model": "é" * 64}, {"model": "é" * 65}]
    messages = [msgpack.packb({**fields, **v}) for v in variants]
    messages += [msgpack.packb({k: v for k, v in fields.items() if k != "crop"}), msgpack.packb([1]),
                 msgpack.packb({**fields, "model": b"tps"}), msgpack.packb({**fields, 5: 1}),
                 msgpack.packb(fields, use_single_float=True), b"\xc1", b"", b"\x81" * 5000]
    messages += [msgpack.packb({**fields, "model": "tps"})[:-1] + b"\xff"]  # invalid UTF-8
    rng = random.Random(5)
    golden = golden_controls()
    messages += golden + [mutated(rng.choice(golden), rng) for _ in range(1500)]
    messages += ['{"type": "hello"}']  # wire v2's JSON, sent as text
    want = [control_outcome(m) for m in messages]
    ident = {"modelId": ID.model_id, "modelVersion": ID.model_version, "numKeypoints": ID.num_keypoints,
             "detectorVersion": ID.detector_version}
    got = page.evaluate(JS_CONTROL, [[wire(m) for m in messages], ident])
    assert [(m, w) for m, w, g in zip(messages, want, got, strict=True) if w != g] == []
    assert want[:4] == ["hello accepted", "refused", "refused", "refused"]
    # another model's name or version is accepted (a personal generator keeps the detector), another detector not
    assert [want[variants.index(v)] for v in ({"model": "iw"}, {"model_version": "x"}, {"detector": "x"})] == \
        ["hello accepted", "hello accepted", "hello refused"]
    assert {"hello accepted", "hello refused", "malformed", "refused", *TYPES} - {"hello"} <= set(want)


def test_the_page_encodes_its_control_messages_as_python_does(page):
    """accept, refuse, bye, picture-ack and picture-refused: the same bytes as the golden messages (and as Python's
    bye when the page hangs up)."""
    golden = {control_outcome(m): m for m in golden_controls()}
    wanted = {t: decode_control(golden[t]) for t in ("accept", "refuse", "bye", "picture-ack", "picture-refused")}
    fields = {t: {k: list(v) if isinstance(v, tuple) else v for k, v in vars(m).items()} for t, m in wanted.items()}
    got = page.evaluate(page_function("messages", """
      const { encodeControl } = await import("/app/control.js");
      return Object.entries(messages).map(([type, fields]) => [type, toWire(encodeControl(type, fields))]);
    """), fields)
    assert {t: unwire(b) for t, b in got} == {t: golden[t] for t in wanted}
    assert Bye("receiver hung up", None).encode() == unwire(page.evaluate(page_function("", """
      const { encodeControl } = await import("/app/control.js");
      return toWire(encodeControl("bye", { last_seq: null, reason: "receiver hung up" })); // fields in any order
    """)))


def dav1d_planes(data: bytes) -> bytes:
    """The picture's planes as the Python receiver's decoder (PyAV's dav1d) gives them, packed as I420."""
    decoder = av.CodecContext.create("libdav1d", "r")
    (frame,) = [*decoder.decode(av.Packet(data)), *decoder.decode(None)]
    return frame.to_ndarray(format="yuv420p").tobytes()


def test_the_page_decodes_av1_pictures_as_python_does(page):
    """The sender's pictures (AV1, WebCodecs in the page): the same planes as PyAV's dav1d and the same RGB as
    PyAV's swscale, bit for bit (faces at three qualities, noise and saturated colours, which clip); what Python
    refuses (another size, garbage, a picture cut short) refused."""
    faces = [crop_image(frame, 256) for frame in talking_face(frames=60, size=256, seed=2)[::20]]
    pictures = {f"face {i} crf {crf}": encode_picture(face, crf)
                for i, face in enumerate(faces) for crf in (20, 50, 63)}
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]], np.uint8)
    pictures["colours"] = encode_picture(np.repeat(colours[np.arange(256) // 43, None], 256, 1), 0)
    pictures["noise"] = encode_picture(np.random.default_rng(0).integers(0, 256, (256, 256, 3), np.uint8), 10)
    bad = {"small": encode_picture(cv2.resize(faces[0], (128, 128))), "cut": pictures["face 0 crf 50"][:400],
           "garbage": bytes(random.Random(1).randrange(256) for _ in range(900))}
    got = page.evaluate(page_function("pictures", """
      const { decodePicture, decodePlanes } = await import("/app/picture-codec.js");
      const out = {};
      for (const [name, data] of Object.entries(pictures)) {
        try {
          const planes = await decodePlanes(fromWire(data), 256);
          const rgba = (await decodePicture(fromWire(data), 256)).data;
          out[name] = [toWire(planes), toWire(rgba.filter((_, i) => i % 4 !== 3))];
        } catch (err) {
          out[name] = err.constructor.name;
        }
      }
      return out;
    """), {k: wire(v) for k, v in {**pictures, **bad}.items()})
    for name, data in bad.items():
        with pytest.raises(PictureError):
            decode_picture(data, 256)
        assert got[name] == "PictureError", name
    for name, data in pictures.items():
        planes, rgb = (unwire(b) for b in got[name])
        assert planes == dav1d_planes(data), name
        assert rgb == decode_picture(data, 256).tobytes(), name


#: The newest drawn frame's seq and the canvas pixels (RGB, base64), read in one go.
SNAPSHOT = page_function("", """
  const seq = window.kpc.session?.lastRenderedSeq ?? null;
  if (seq === null) return null;
  const canvas = document.getElementById("face");
  const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  return [seq, canvas.width, toWire(rgba.filter((_, i) => i % 4 !== 3))];
""")
#: Every message the page received, as [kind, base64 or {text}].
RECORDED = page_function("", """
  return window.kpc.session.recorded.map(([kind, data]) => [kind, toWire(data)]);
""")


def python_renderings(records, snapshots: dict, folder: Path) -> tuple[dict, dict, Session]:
    """The Python receiver's Session on the messages the page received, pictures included, and onnxruntime's
    rendering of each snapshot's frame from the picture it names, with the pictures held at that frame."""
    model = load_model("tps")
    renderer = OnnxRenderer(OnnxModel(folder, model, "cpu", threads=1), [])
    session = Session(renderer, Expectation(ModelIdentity.of(model), 256), live=False)
    decoded, rendered = {}, {}

    async def replay() -> None:
        for kind, data in records:
            if kind == CONTROL:
                session.on_control(data)
                await session.settle()
            elif (frame := session.check_frame(data)) is not None:
                decoded[frame.seq] = frame
                if frame.seq in snapshots:
                    rendered[frame.seq], _ = renderer.render(frame.keypoints, frame.strengths, frame.picture)

    run_async(replay())
    return decoded, rendered, session


def test_the_page_receives_a_call_from_the_python_sender_and_draws_what_python_draws(browser, server, tps_graphs,
                                                                                     tmp_path, record_property):
    """The sender sends its own pictures (good frames of its first second) over the call; the page decodes
    them (AV1, WebCodecs), acknowledges them and draws every frame from the picture it names."""
    write_video(tmp_path / "clip.mp4", talking_face(frames=150, size=256, seed=3), 25.0)
    page = browser.new_page()
    errors, console = [], []
    page.on("pageerror", lambda err: errors.append(err))
    page.on("console", lambda message: console.append(message.text))
    token = os.environ[TOKEN_ENV]  # the sender below takes it from the environment too
    page.goto(f"http://127.0.0.1:{server}/room/web-test?record=1&model={tps_graphs[1]}#token={token}")
    page.wait_for_function("['waiting', 'failed'].includes(document.body.dataset.state)", timeout=60_000)
    assert page.inner_text("#status") == "in room web-test: waiting for the sender"
    sender = subprocess.Popen([sys.executable, "-m", "sender", "--source", str(tmp_path / "clip.mp4"),
                               "--signaling", f"ws://127.0.0.1:{server}", "--room", "web-test", "--fps", "10",
                               "--threads", "1", "--backend", "onnx", "--onnx-dir", str(tps_graphs[0] / tps_graphs[1])],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    snapshots = {}
    deadline = time.monotonic() + 120
    while page.evaluate("document.body.dataset.state") not in ("ended", "failed") and time.monotonic() < deadline:
        if page.evaluate("window.kpc.session?.lastRenderedSeq ?? null") not in (None, *snapshots):
            snap = page.evaluate(SNAPSHOT)
            snapshots[snap[0]] = snap
        time.sleep(0.5)
    sender_log, _ = sender.communicate(timeout=30)
    status, report = page.inner_text("#status"), page.evaluate("window.kpc.session.stats.report()")
    assert (status, sender.returncode) == ("call ended: bye", 0), (status, sender_log)
    assert "no bye from the receiver" not in sender_log, sender_log
    assert report["frames_rendered"] >= 3, f"{report} {console}"
    snap = page.evaluate(SNAPSHOT)
    snapshots[snap[0]] = snap
    records = [(CONTROL if k == "C" else b"F", unwire(d)) for k, d in page.evaluate(RECORDED)]
    page.close()
    assert not errors, errors

    decoded, rendered, session = python_renderings(records, snapshots, tps_graphs[0] / tps_graphs[1])
    assert session.bye.is_set() and len(decoded) == report["frames_received"] >= 30
    assert report["pictures"]["held"] == session.stats.pictures_held >= 1 and report["pictures"]["refused"] == 0
    assert report["sender_last_seq"] == max(decoded)
    assert all(decoded[seq].picture for seq in snapshots)  # drawn from the sender's pictures
    psnr = {seq: cv2.PSNR(np.frombuffer(unwire(pixels), np.uint8).reshape(width, width, 3), rendered[seq])
            for seq, width, pixels in snapshots.values()}
    record_property("canvas_psnr_db", psnr)
    assert len(psnr) >= 2 and min(psnr.values()) >= 35, psnr
