// Wire format v3 at the receiving end (shared_model/wire/messages.py): frame messages and acks. Decoding is
// strict and gives the Python receiver's results, errors included; see docs/wire-format.md.

import { CodingError, TIME_WRAP, decodePayload, roundHalfEven } from "./keycoding.js";

export const WIRE_VERSION = 3;
const V1_FIRST_BYTE = 0x97;
export const MAX_FRAME_BYTES = 2048;
export const MAX_SEQ = 2 ** 32 - 1;
export const MAX_DISTANCE = 15;
export const ACK_INTERVAL_S = 0.1;
const HEADER_BYTES = 3;
const SEQ_WRAP = 2 ** 16;

/** A message that does not follow the wire format (dropped, counted as malformed). */
export class WireError extends Error {}
/** Another wire version, or a frame before an accepted hello (refused, counted). */
export class WireRefused extends WireError {}
/** A valid frame predicted from a frame this end does not hold (spoiled). */
export class MissingReference extends Error {}

/** The value congruent to `low` modulo `wrap` nearest to `near`. */
function unwrap(low, wrap, near) {
  return low + wrap * roundHalfEven((near - low) / wrap);
}

/** The receiver's side of one call: decodes frames, holding those later ones may refer to. */
export class FrameDecoder {
  /** @param {{numKeypoints: number}} identity @param settings CodingSettings @param {bigint} epochNs */
  constructor(identity, settings, fps, epochNs) {
    this.identity = identity;
    this.settings = settings;
    this.fps = fps;
    this.epochNs = epochNs;
    this.frames = new Map(); // seq -> {q: {kp, st}, ms}
    this.newest = { seq: 0, ms: 0 };
  }

  /** For a hello (checked by control.js) that checkHello accepted. */
  static fromHello(hello, identity) {
    return new FrameDecoder(identity, hello.coding, hello.fps, hello.epoch_ns);
  }

  /** `[seq, reference distance]` of a frame message (Uint8Array); WireError / WireRefused if it is not one. */
  header(data) {
    if (!(data instanceof Uint8Array)) {
      throw new WireError(`frame message must be binary, got ${typeof data}`);
    }
    if (data.length > MAX_FRAME_BYTES) {
      throw new WireError(`frame message of ${data.length} bytes exceeds ${MAX_FRAME_BYTES}`);
    }
    if (data.length === 0) {
      throw new WireError("empty frame message");
    }
    if (data[0] === V1_FIRST_BYTE) {
      throw new WireRefused(`a wire version 1 message (msgpack), this end speaks version ${WIRE_VERSION}`);
    }
    if (data[0] >> 4 !== WIRE_VERSION) {
      throw new WireRefused(`wire version ${data[0] >> 4}, this end speaks version ${WIRE_VERSION}`);
    }
    if (data.length < HEADER_BYTES) {
      throw new WireError(`frame message of ${data.length} bytes is shorter than its ${HEADER_BYTES}-byte header`);
    }
    let seq = unwrap(data[1] | (data[2] << 8), SEQ_WRAP, this.newest.seq);
    if (seq < 0) {
      seq += SEQ_WRAP;
    }
    if (seq > MAX_SEQ) {
      throw new WireError(`sequence number ${seq} out of range`);
    }
    return [seq, data[0] & 0x0f];
  }

  /**
   * Decode one frame message: `{seq, captureNs (BigInt), keypoints (Float32Array P*2), strengths, size,
   * refSeq, picture}`; it becomes a frame later ones may refer to.
   */
  decode(data) {
    const [seq, distance] = this.header(data);
    let ref = null;
    if (distance) {
      ref = this.frames.get(seq - distance) ?? null;
      if (ref === null) {
        throw new MissingReference(`frame ${seq} refers to frame ${seq - distance}, which this end does not hold`);
      }
    }
    let decoded;
    try {
      decoded = decodePayload(data.subarray(HEADER_BYTES), this.identity.numKeypoints, ref && ref.q, this.settings);
    } catch (err) {
      if (err instanceof CodingError) {
        throw new WireError(`frame ${seq}: ${err.message}`);
      }
      throw err;
    }
    const { time, kp, st, picture } = decoded;
    const ms =
      ref === null
        ? unwrap(time, TIME_WRAP, this.newest.ms + ((seq - this.newest.seq) * 1000) / this.fps)
        : ref.ms + roundHalfEven((distance * 1000) / this.fps) + time;
    this.frames.set(seq, { q: { kp, st, picture }, ms });
    if (seq > this.newest.seq || this.frames.size === 1) {
      this.newest = { seq, ms };
    }
    for (const old of this.frames.keys()) {
      if (old < this.newest.seq - MAX_DISTANCE) {
        this.frames.delete(old);
      }
    }
    const captureNs = this.epochNs + BigInt(ms) * 1000000n;
    return {
      seq,
      captureNs: captureNs > 0n ? captureNs : 0n,
      keypoints: Float32Array.from(kp, (q) => q * this.settings.kpStep),
      strengths: Float32Array.from(st, (q) => q * this.settings.stStep),
      size: data.length,
      refSeq: ref === null ? null : seq - distance,
      picture,
    };
  }
}

/** The receiver's ack of the newest frame it decoded (sent back on the keypoint channel). */
export function encodeAck(seq) {
  const out = new Uint8Array(5);
  out[0] = WIRE_VERSION << 4;
  new DataView(out.buffer).setUint32(1, seq, true);
  return out;
}
