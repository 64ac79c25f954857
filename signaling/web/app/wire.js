// Wire format v2 at the receiving end (shared_model/wire/messages.py): frame messages, acks, the hello check.
// Decoding is strict and gives the Python receiver's results, errors included; see docs/wire-format.md.
// Integers from control messages arrive as BigInt (control.js), floats as Number.

import { CodingError, CodingSettings, TIME_WRAP, decodePayload, describe, roundHalfEven } from "./keycoding.js";

export const WIRE_VERSION = 2;
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
  /** @param {{numKeypoints: number}} identity @param {CodingSettings} settings @param {bigint} epochNs */
  constructor(identity, settings, fps, epochNs) {
    this.identity = identity;
    this.settings = settings;
    this.fps = fps;
    this.epochNs = epochNs;
    this.frames = new Map(); // seq -> {q: {kp, st}, ms}
    this.newest = { seq: 0, ms: 0 };
  }

  /** For a hello that checkHello accepted. */
  static fromHello(msg, identity) {
    return new FrameDecoder(identity, CodingSettings.fromDict(msg.coding), Number(msg.fps), msg.epoch_ns);
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
   * refSeq}`; it becomes a frame later ones may refer to.
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
    const { time, kp, st } = decoded;
    const ms =
      ref === null
        ? unwrap(time, TIME_WRAP, this.newest.ms + ((seq - this.newest.seq) * 1000) / this.fps)
        : ref.ms + roundHalfEven((distance * 1000) / this.fps) + time;
    this.frames.set(seq, { q: { kp, st }, ms });
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

const isInt = (v) => typeof v === "bigint";

/**
 * Why a hello must be refused (messages.check_hello), or null when this end can decode and render the
 * sender's frames. `identity`: {modelId, modelVersion, numKeypoints}.
 */
export function checkHello(msg, identity, resolution) {
  const { wire } = msg;
  if (!isInt(wire) || wire !== BigInt(WIRE_VERSION)) {
    return `sender speaks wire version ${describe(wire)}, this receiver speaks ${WIRE_VERSION}`;
  }
  if (msg.model !== identity.modelId || msg.model_version !== identity.modelVersion) {
    return (
      `sender runs model ${describe(msg.model)} version ${describe(msg.model_version)}, this receiver runs ` +
      `${describe(identity.modelId)} version ${describe(identity.modelVersion)}`
    );
  }
  const sameInt = (v, want) => (isInt(v) ? v === BigInt(want) : v === want);
  if (!sameInt(msg.keypoints, identity.numKeypoints) || !sameInt(msg.resolution, resolution)) {
    return (
      `sender sends ${describe(msg.keypoints)} keypoints at ${describe(msg.resolution)} px, this receiver ` +
      `expects ${identity.numKeypoints} at ${resolution} px`
    );
  }
  const fps = isInt(msg.fps) ? Number(msg.fps) : msg.fps;
  if (typeof fps !== "number" || !(fps > 0 && fps <= 240)) {
    return `bad frame rate ${describe(msg.fps)} in hello`;
  }
  if (!(isInt(msg.epoch_ns) && msg.epoch_ns >= 0n)) {
    return `bad epoch ${describe(msg.epoch_ns)} in hello`;
  }
  try {
    CodingSettings.fromDict(msg.coding);
  } catch (err) {
    if (err instanceof CodingError) {
      return `bad coding settings in hello: ${err.message}`;
    }
    throw err;
  }
  return null;
}
