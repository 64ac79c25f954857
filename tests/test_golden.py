"""Golden vectors: checked-in wire v3 messages with the values they decode to, so that a change of the
bitstream is always deliberate. They fail when today's decoder reads a checked-in message differently, or
today's encoder writes other bytes for the same values.

After a deliberate change of the wire format, regenerate them with ``python tests/test_golden.py`` (and bump
``WIRE_VERSION`` when deployed peers could not read the new messages).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from shared_model.wire.control import (
    Accept,
    Bye,
    Control,
    Hello,
    Picture,
    PictureAck,
    PictureChunk,
    PictureRefused,
    Refuse,
    Stats,
    decode_control,
)
from shared_model.wire.keycoding import CodingSettings, Quantized, dequantize, quantize
from shared_model.wire.messages import FrameDecoder, FrameEncoder, ModelIdentity

DATA = Path(__file__).parent / "data"
FRAMES, CONTROL = DATA / "wire_v3_frames.json", DATA / "wire_v3_control.json"
ID = ModelIdentity("tps", "8637786482", 50, "3f0c2a9e51")
SETTINGS = CodingSettings.from_px(0.5, 256, 1 / 16, 4)
FPS, EPOCH = 25.0, 1_790_000_000_000_000_000


def _control_examples() -> list[Control]:
    hello = Hello.of(FrameEncoder(ID, SETTINGS, FPS, EPOCH), 256, (120, 40, 300), "av1")
    return [hello, Accept(1, 8), Refuse("sender runs model 'x' version '1'"),
            Stats((120, 40, 300), {"captured": 250, "sent": 240}), Bye("source ended", 249), Bye("bye received", None),
            Picture(1, 1300, None), Picture(9, 2100, 1), PictureChunk(1, 1, bytes(range(256)) + b"\x00\xff"),
            PictureAck(9, (2, 9)), PictureRefused(4, "too many pictures: this receiver holds at most 8")]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, CodingSettings):
        return value.as_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


def _frames_input() -> list[dict[str, Any]]:
    """A talking-head-like track: intra, predicted, a picture change, an anchor after an ack, a head turn."""
    rng = np.random.default_rng(7)
    base = rng.uniform(-0.6, 0.6, (50, 2))
    strengths = rng.uniform(0.7, 1.0, 50)
    plan = [(0, 0, None), (1, 0, None), (2, 1, None), (3, 1, 0), (4, 1, None), (5, 2, 3), (6, 2, None), (9, 2, 5)]
    out = []
    for seq, picture, ack in plan:
        kp = base + np.array([0.01 * seq, -0.004 * seq]) + rng.normal(0, 0.003, (50, 2))
        q = quantize(kp, strengths + rng.normal(0, 0.01, 50), SETTINGS, picture)
        out.append({"seq": seq, "capture_ns": EPOCH + seq * 40_000_000 + 3_000_000 * (seq % 2), "picture": picture,
                    "ack_before": ack, "kp_q": q.kp.tolist(), "st_q": q.st.tolist()})
    return out


def _values(f: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    return dequantize(Quantized(np.array(f["kp_q"], np.int32), np.array(f["st_q"], np.int32)), SETTINGS)


def _encode_frames(frames: list[dict[str, Any]]) -> list[bytes]:
    enc = FrameEncoder(ID, SETTINGS, FPS, EPOCH)
    out = []
    for f in frames:
        if f["ack_before"] is not None:
            enc.acknowledge(f["ack_before"])
        frame = enc.encode(f["seq"], f["capture_ns"], *_values(f), f["picture"])
        enc.sent(frame)
        out.append(frame.data)
    return out


def write() -> None:
    DATA.mkdir(exist_ok=True)
    frames = _frames_input()
    dec = FrameDecoder(ID, SETTINGS, FPS, EPOCH)
    for f, data in zip(frames, _encode_frames(frames)):
        msg = dec.decode(data)
        f.update(hex=data.hex(), ref_seq=msg.ref_seq, decoded_capture_ns=msg.capture_ns)
    FRAMES.write_text(json.dumps({"identity": [ID.model_id, ID.model_version, ID.num_keypoints],
                                  "settings": SETTINGS.as_dict(), "fps": FPS, "epoch_ns": EPOCH,
                                  "messages": frames}, indent=0))
    CONTROL.write_text(json.dumps([{"type": m.TYPE, "fields": {k: _plain(v) for k, v in vars(m).items()},
                                    "hex": m.encode().hex()} for m in _control_examples()], indent=1))


def test_checked_in_frames_decode_to_their_values_and_encode_to_their_bytes():
    golden = json.loads(FRAMES.read_text())
    assert golden["settings"] == SETTINGS.as_dict() and golden["identity"] == [ID.model_id, ID.model_version, 50]
    dec = FrameDecoder(ID, SETTINGS, FPS, EPOCH)
    for f in golden["messages"]:
        msg = dec.decode(bytes.fromhex(f["hex"]))
        want_kp, want_st = _values(f)
        assert (msg.seq, msg.ref_seq, msg.picture, msg.capture_ns) == (f["seq"], f["ref_seq"], f["picture"],
                                                                        f["decoded_capture_ns"])
        assert np.array_equal(msg.keypoints, want_kp) and np.array_equal(msg.strengths, want_st)
    assert [d.hex() for d in _encode_frames(golden["messages"])] == [f["hex"] for f in golden["messages"]]
    assert [f["ref_seq"] for f in golden["messages"]] == [None, 0, 1, 2, 0, 4, 5, 6]  # 4: anchor, from acked 0


def test_checked_in_control_messages_decode_to_their_fields_and_encode_to_their_bytes():
    golden = json.loads(CONTROL.read_text())
    examples = _control_examples()
    assert [g["type"] for g in golden] == [m.TYPE for m in examples]
    for g, msg in zip(golden, examples):
        decoded = decode_control(bytes.fromhex(g["hex"]))
        assert decoded == msg and {k: _plain(v) for k, v in vars(decoded).items()} == g["fields"]
        assert msg.encode().hex() == g["hex"]


if __name__ == "__main__":
    write()
    print(f"wrote {FRAMES} and {CONTROL}")
