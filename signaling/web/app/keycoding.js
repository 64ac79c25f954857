// Decoding side of the keypoint coding (shared_model/wire/keycoding.py): the coded fields of one frame.
// Integers on the grids are decoded exactly as the Python receiver decodes them; see docs/wire-format.md.

import { InvalidData, QuantizedLaplace, RangeDecoder, Uniform } from "./rangecoder.js";

/** Laplace scales a block can choose from: numpy.geomspace(0.1, 1000.0, 16), as float64 literals. */
export const SCALES = [
  0.1, 0.18478497974222907, 0.34145488738336016, 0.6309573444801932, 1.1659144011798317,
  2.1544346900318834, 3.981071705534973, 7.3564225445964135, 13.593563908785255, 25.118864315095795, 46.41588833612777,
  85.76958985908936, 158.48931924611142, 292.8644564625237, 541.1695265464638, 1000.0,
];
export const SHIFT_SCALE = 1.5;
export const TIME_SCALE = 3.0;
export const TIME_RANGE = 2 ** 15 - 1;
export const TIME_WRAP = 2 ** 16;

/** Coded data that does not decode to a valid frame. */
export class CodingError extends Error {}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Grid steps and anchor interval, as agreed in the hello (keycoding.CodingSettings). */
export class CodingSettings {
  constructor(kpStep, stStep, anchorEvery) {
    this.kpStep = kpStep;
    this.stStep = stStep;
    this.anchorEvery = anchorEvery;
    this.kpMax = roundHalfEven(1 / kpStep);
    this.stMax = roundHalfEven(1 / stStep);
  }

  /** Settings from a hello's `coding` (integers as BigInt); throws CodingError with Python's reason. */
  static fromDict(fields) {
    const keys = fields !== null && typeof fields === "object" && !Array.isArray(fields) ? Object.keys(fields) : [];
    if (keys.length !== 3 || !["kp_step", "st_step", "anchor_every"].every((k) => keys.includes(k))) {
      throw new CodingError(`coding settings must hold kp_step, st_step and anchor_every, got ${describe(fields)}`);
    }
    const [kp, st] = [fields.kp_step, fields.st_step].map((v) => (typeof v === "bigint" ? Number(v) : v));
    for (const [name, value, lo, hi] of [["kp_step", kp, 1 / 4096, 1 / 4], ["st_step", st, 1 / 1024, 1 / 2]]) {
      if (!(typeof value === "number" && lo <= value && value <= hi)) {
        throw new CodingError(`${name} must be a number in [${lo}, ${hi}], got ${describe(value)}`);
      }
    }
    const anchor = fields.anchor_every;
    if (!(typeof anchor === "bigint" && anchor >= 1n && anchor <= 64n)) {
      throw new CodingError(`anchor_every must be an integer in [1, 64], got ${describe(anchor)}`);
    }
    return new CodingSettings(kp, st, Number(anchor));
  }
}

/** A value from a control message, for error messages (BigInt integers included). */
export function describe(value) {
  return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? Number(v) : v)) ?? String(value);
}

const uniformModels = new Map();
function uniform(size) {
  if (!uniformModels.has(size)) {
    uniformModels.set(size, new Uniform(size));
  }
  return uniformModels.get(size);
}

function decodeBlock(dec, lo, hi, rows, cols, pred) {
  const span = hi - lo;
  const shift = new Int32Array(cols);
  const shiftModel = pred === null ? uniform(span + 1) : new QuantizedLaplace(-span, span, 0, SHIFT_SCALE);
  for (let c = 0; c < cols; c++) {
    shift[c] = dec.decode(shiftModel) + (pred === null ? lo : 0);
  }
  const index = dec.decode(uniform(SCALES.length));
  const model = new QuantizedLaplace(-2 * span, 2 * span, 0, SCALES[index]);
  const values = new Int32Array(rows * cols);
  for (let i = 0; i < values.length; i++) {
    values[i] = dec.decode(model) + shift[i % cols] + (pred === null ? 0 : pred[i]);
  }
  if (values.some((v) => v < lo || v > hi)) {
    throw new CodingError(`decoded values outside [${lo}, ${hi}]`);
  }
  return values;
}

/**
 * `{time, kp, st}` of `count` keypoints from a frame's coded bytes (Uint8Array); `ref` is the reference
 * frame's `{kp, st}` (Int32Array on the grids) or null for an intra frame. CodingError when the bytes cannot
 * be such a frame.
 */
export function decodePayload(data, count, ref, settings) {
  const padded = new Uint8Array(Math.ceil(data.length / 4) * 4).fill(0xff);
  padded.set(data);
  const view = new DataView(padded.buffer);
  const words = new Uint32Array(padded.length / 4);
  for (let i = 0; i < words.length; i++) {
    words[i] = view.getUint32(4 * i);
  }
  try {
    const dec = new RangeDecoder(words);
    const time =
      ref === null ? dec.decode(uniform(TIME_WRAP)) : dec.decode(new QuantizedLaplace(-TIME_RANGE, TIME_RANGE, 0, TIME_SCALE));
    const { kpMax, stMax } = settings;
    const kp = decodeBlock(dec, -kpMax, kpMax, count, 2, ref === null ? null : ref.kp);
    const st = decodeBlock(dec, 0, stMax, count, 1, ref === null ? null : ref.st);
    return { time, kp, st };
  } catch (err) {
    if (err instanceof InvalidData) {
      throw new CodingError(`undecodable payload: ${err.message}`);
    }
    throw err;
  }
}
