// Control messages (wire v3, shared_model/wire/control.py): msgpack maps {v: 3, t: TYPE, FIELD: value, ...} on
// the reliable channel, checked once, at the edge, exactly as decode_control checks them. The only module that
// knows their encoding. Checked messages hold integers as Number (those that may pass 2^53, epoch_ns and the
// sender's counters, as BigInt, to keep every digit), numbers as Number, texts as strings, binary data as
// Uint8Array; anything else is a WireError (WireRefused for another wire version).

import { Decoder, Encoder } from "../vendor/msgpack/index.mjs";
import { CodingSettings } from "./keycoding.js";
import { MAX_SEQ, WIRE_VERSION, WireError, WireRefused } from "./wire.js";

export const MAX_CONTROL_BYTES = 4096;
export const CHUNK_BYTES = 1000;
export const MAX_PICTURE_BYTES = 65536;
export const MAX_PICTURE_ID = 255;
export const MAX_PICTURES = 8;
/** A sender's frame rate (control.py MIN_FPS, MAX_FPS). */
const MIN_FPS = 0.1, MAX_FPS = 240;
const TEXT = 1000;
const MAX_INT64 = 2n ** 63n - 1n;

/** A msgpack float, kept apart from integers (2.0 is not 2, as in Python). */
class Float {
  constructor(value) {
    this.value = value;
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** The vendored decoder (methods of the pinned 3.1.3) telling floats from integers and refusing bad UTF-8 and
 * non-text map keys, as Python's msgpack does. */
class StrictDecoder extends Decoder {
  readF32() {
    return new Float(super.readF32());
  }

  readF64() {
    return new Float(super.readF64());
  }

  decodeUtf8String(byteLength, headerOffset) {
    const start = this.pos + headerOffset;
    if (this.bytes.byteLength >= start + byteLength) {
      strictUtf8.decode(this.bytes.subarray(start, start + byteLength)); // throws on invalid UTF-8
    }
    return super.decodeUtf8String(byteLength, headerOffset);
  }
}

const decoder = new StrictDecoder({
  useBigInt64: true,
  mapKeyConverter: (key) => {
    if (typeof key !== "string") throw new WireError(`map key of type ${typeof key}`);
    return key;
  },
});
const encoder = new Encoder();

/** A value for an error message. */
function show(value) {
  if (value instanceof Float) return String(value.value);
  return typeof value === "string" ? JSON.stringify(value.slice(0, 40)) : String(value);
}

const isInteger = (v) => (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint";

// --- checks (control.py's), each returning the checked value or throwing WireError ---

function integer(lo, hi) {
  return (value) => {
    if (!isInteger(value) || !(BigInt(lo) <= BigInt(value) && BigInt(value) <= BigInt(hi))) {
      throw new WireError(`must be an integer in [${lo}, ${hi}], got ${show(value)}`);
    }
    return typeof hi === "bigint" ? BigInt(value) : Number(value);
  };
}

/** A finite number in [lo, hi]. */
function number(lo, hi) {
  return (value) => {
    const v = value instanceof Float ? value.value : isInteger(value) ? Number(value) : NaN;
    if (!(Number.isFinite(v) && lo <= v && v <= hi)) {
      throw new WireError(`must be a number in [${lo}, ${hi}], got ${show(value)}`);
    }
    return v;
  };
}

function text(maxLen) {
  return (value) => {
    if (typeof value !== "string" || [...value].length > maxLen) {
      throw new WireError(`must be text of at most ${maxLen} characters`);
    }
    return value;
  };
}

function blob(maxLen) {
  return (value) => {
    if (!(value instanceof Uint8Array) || !(value.length > 0 && value.length <= maxLen)) {
      throw new WireError(`must be 1 to ${maxLen} bytes`);
    }
    return value;
  };
}

const optional = (inner) => (value) => (value === null ? null : inner(value));
const isMap = (v) => v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype;

/** At most `maxLen` distinct integers in [lo, hi], sorted. */
function integers(lo, hi, maxLen) {
  const one = integer(lo, hi);
  return (value) => {
    if (!Array.isArray(value) || value.length > maxLen) {
      throw new WireError(`must be a list of at most ${maxLen} integers`);
    }
    const items = value.map(one).sort((a, b) => a - b);
    if (new Set(items).size !== items.length) {
      throw new WireError("holds an integer twice");
    }
    return items;
  };
}

/** [x, y, side] of the face crop in source pixels. */
function cropBox(value) {
  if (!Array.isArray(value) || value.length !== 3) {
    throw new WireError("must be a list [x, y, side]");
  }
  const box = value.map(integer(0, 2 ** 16));
  if (box[2] < 1) {
    throw new WireError("side must be at least 1");
  }
  return box;
}

/** keycoding.CodingSettings.from_dict and problem(). */
function codingSettings(value) {
  if (!isMap(value) || Object.keys(value).sort().join() !== "anchor_every,kp_step,st_step") {
    throw new WireError("coding settings must hold kp_step, st_step and anchor_every");
  }
  const step = (name, lo, hi) => {
    const v = value[name];
    const x = v instanceof Float ? v.value : typeof v === "number" || typeof v === "bigint" ? Number(v) : NaN;
    if (!(lo <= x && x <= hi)) {
      throw new WireError(`${name} must be a number in [${lo}, ${hi}], got ${show(v)}`);
    }
    return x;
  };
  const kpStep = step("kp_step", 1 / 4096, 1 / 4);
  const stStep = step("st_step", 1 / 1024, 1 / 2);
  const anchor = value.anchor_every;
  if (!(isInteger(anchor) && anchor >= 1 && anchor <= 64)) {
    throw new WireError(`anchor_every must be an integer in [1, 64], got ${show(anchor)}`);
  }
  return new CodingSettings(kpStep, stStep, Number(anchor));
}

/** At most 32 counters: names of at most 32 characters to non-negative integers. */
function counterMap(value) {
  if (!isMap(value) || Object.keys(value).length > 32) {
    throw new WireError("must be a map of at most 32 counters");
  }
  const count = integer(0, MAX_INT64);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [text(32)(k), count(v)]));
}

/** Each type's fields, in control.py's order, with their checks. */
const TYPES = {
  hello: {
    model: text(64), model_version: text(64), detector: text(64), keypoints: integer(1, 1024), resolution: integer(16, 4096),
    fps: number(MIN_FPS, MAX_FPS), crop: optional(cropBox), coding: codingSettings, epoch_ns: integer(0, MAX_INT64),
    picture_codec: text(16),
  },
  accept: { own_pictures: integer(0, 255), max_pictures: integer(1, MAX_PICTURES) },
  refuse: { reason: text(TEXT) },
  stats: { crop: optional(cropBox), counts: counterMap },
  bye: { reason: text(TEXT), last_seq: optional(integer(-1, MAX_SEQ)) },
  picture: { id: integer(1, MAX_PICTURE_ID), size: integer(1, MAX_PICTURE_BYTES), replaces: optional(integer(1, MAX_PICTURE_ID)) },
  chunk: { id: integer(1, MAX_PICTURE_ID), index: integer(0, Math.floor(MAX_PICTURE_BYTES / CHUNK_BYTES)), data: blob(CHUNK_BYTES) },
  "picture-ack": { id: integer(1, MAX_PICTURE_ID), held: integers(1, MAX_PICTURE_ID, MAX_PICTURES) },
  "picture-refused": { id: integer(1, MAX_PICTURE_ID), reason: text(TEXT) },
};

/**
 * Why a checked hello must be refused (control.Hello.check), or null when this end can decode and render the
 * sender's frames. `identity`: {modelId, modelVersion, numKeypoints, detectorVersion}.
 */
export function checkHello(hello, identity, resolution, pictureCodec) {
  if (hello.detector !== identity.detectorVersion) {
    return (
      `sender runs model ${show(hello.model)} version ${show(hello.model_version)} (keypoint detector ` +
      `${show(hello.detector)}), this receiver runs ${show(identity.modelId)} version ` +
      `${show(identity.modelVersion)}, trained on detector ${show(identity.detectorVersion)}: run the same model ` +
      "on both ends, or enrol from the sender's model"
    );
  }
  if (hello.keypoints !== identity.numKeypoints || hello.resolution !== resolution) {
    return (
      `sender sends ${hello.keypoints} keypoints at ${hello.resolution} px, this receiver expects ` +
      `${identity.numKeypoints} at ${resolution} px`
    );
  }
  if (hello.picture_codec !== pictureCodec) {
    return `sender codes pictures as ${show(hello.picture_codec)}, this receiver decodes ${show(pictureCodec)}`;
  }
  return null;
}

/** One control message, checked through: {type, ...fields}; WireError (WireRefused for another version). */
export function decodeControl(data) {
  if (typeof data === "string") {
    throw new WireRefused(
      `a text control message (wire version 2 sent JSON), this end speaks msgpack, wire version ${WIRE_VERSION}`,
    );
  }
  if (!(data instanceof Uint8Array) || data.length === 0) {
    throw new WireError("control message must be non-empty bytes");
  }
  if (data.length > MAX_CONTROL_BYTES) {
    throw new WireError(`control message of ${data.length} bytes exceeds ${MAX_CONTROL_BYTES}`);
  }
  let msg;
  try {
    msg = decoder.decode(data);
  } catch (err) {
    throw new WireError(`control message is not msgpack: ${err.message}`);
  }
  if (!isMap(msg)) {
    throw new WireError("control message must be a map");
  }
  const { v: version, t: type, ...body } = msg;
  if (!(isInteger(version) && Number(version) === WIRE_VERSION)) {
    throw new WireRefused(`control message of wire version ${show(version)}, this end speaks ${WIRE_VERSION}`);
  }
  if (typeof type !== "string" || !Object.hasOwn(TYPES, type)) {
    throw new WireError(`control message of unknown type ${show(type)}`);
  }
  const spec = TYPES[type];
  const names = Object.keys(spec);
  if (Object.keys(body).length !== names.length || !names.every((n) => Object.hasOwn(body, n))) {
    throw new WireError(`${type} message: the fields must be exactly ${names.join(", ")}`);
  }
  const out = { type };
  for (const name of names) {
    try {
      out[name] = spec[name](body[name]);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      throw new WireError(`${type} message: ${name} ${err.message}`);
    }
  }
  return out;
}

/** A control message of `type` with `fields` (every field of the type, in any order), as msgpack bytes. */
export function encodeControl(type, fields) {
  const names = Object.keys(TYPES[type] ?? {});
  if (!names.length || Object.keys(fields).length !== names.length || !names.every((n) => n in fields)) {
    throw new RangeError(`a ${type} message needs exactly the fields ${names.join(", ")}`);
  }
  const data = encoder.encode({ v: WIRE_VERSION, t: type, ...Object.fromEntries(names.map((n) => [n, fields[n]])) });
  if (data.length > MAX_CONTROL_BYTES) {
    throw new RangeError(`${type} message of ${data.length} bytes exceeds ${MAX_CONTROL_BYTES}`);
  }
  return data;
}
