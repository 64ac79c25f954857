// Decoding side of the keypoint coding (shared_model/wire/keycoding.py): the coded fields of one frame.
// Integers on the grids are decoded exactly as the Python receiver decodes them; see docs/wire-format.md.

import { Categorical, InvalidData, QuantizedLaplace, RangeDecoder, Uniform } from "./rangecoder.js";

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
/** Picture ids a frame can name (0: none of the sender's pictures). */
export const PICTURE_IDS = 256;
/** How often a predicted frame names another picture than the frame it refers to. */
export const PICTURE_CHANGE = 1 / 128;
const changed = new Categorical([1 - PICTURE_CHANGE, PICTURE_CHANGE]);

/** Coded data that does not decode to a valid frame. */
export class CodingError extends Error {}

/** Python's round(): halves go to the even neighbour. */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Grid steps and anchor interval, as agreed in the hello (keycoding.CodingSettings; checked in control.js). */
export class CodingSettings {
  constructor(kpStep, stStep, anchorEvery) {
    this.kpStep = kpStep;
    this.stStep = stStep;
    this.anchorEvery = anchorEvery;
    this.kpMax = roundHalfEven(1 / kpStep);
    this.stMax = roundHalfEven(1 / stStep);
  }
}

/** The picture a frame names: coded on its own in an intra frame, else as "the same as its reference's". */
function decodePictureId(dec, ref) {
  if (ref !== null && dec.decode(changed) === 0) {
    return ref.picture;
  }
  return dec.decode(uniform(PICTURE_IDS));
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
 * `{time, kp, st, picture}` of `count` keypoints from a frame's coded bytes (Uint8Array); `ref` is the
 * reference frame's `{kp, st, picture}` (Int32Array on the grids) or null for an intra frame. CodingError when
 * the bytes cannot be such a frame.
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
    const picture = decodePictureId(dec, ref);
    const { kpMax, stMax } = settings;
    const kp = decodeBlock(dec, -kpMax, kpMax, count, 2, ref === null ? null : ref.kp);
    const st = decodeBlock(dec, 0, stMax, count, 1, ref === null ? null : ref.st);
    return { time, kp, st, picture };
  } catch (err) {
    if (err instanceof InvalidData) {
      throw new CodingError(`undecodable payload: ${err.message}`);
    }
    throw err;
  }
}
