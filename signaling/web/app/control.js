// Control messages on the reliable channel (hello, accept / refuse, stats, bye): the only module that knows
// their encoding, today JSON text (shared_model/wire/messages.py encode_control / decode_control).
// Decoded messages hold integers as BigInt and other numbers as Number, so that the checks elsewhere can
// tell 2 from 2.0 as Python does, and a nanosecond epoch keeps every digit.

import { WireError } from "./wire.js";

export const CONTROL_TYPES = new Set(["hello", "accept", "refuse", "stats", "bye"]);
export const MAX_CONTROL_BYTES = 16384;

/** A control message of `type` with `fields`, ready for the control channel. */
export function encodeControl(type, fields = {}) {
  if (!CONTROL_TYPES.has(type)) {
    throw new RangeError(`unknown control message type ${type}`);
  }
  return JSON.stringify({ type, ...fields });
}

// JSON integers (no fraction, no exponent) become BigInt. Browsers without JSON.parse source access
// (context undefined) get every integral number as BigInt, a nanosecond epoch rounded to a double.
function reviveIntegers(_key, value, context) {
  if (typeof value !== "number") {
    return value;
  }
  const integral = context === undefined ? Number.isInteger(value) : /^-?\d+$/.test(context.source);
  return integral ? BigInt(context === undefined ? value : context.source) : value;
}

/** A control message as an object with a known `type`; anything else is a WireError. */
export function decodeControl(data) {
  if (typeof data !== "string") {
    throw new WireError("control message must be text, got binary");
  }
  if (data.length > MAX_CONTROL_BYTES && [...data].length > MAX_CONTROL_BYTES) {
    throw new WireError(`control message of ${[...data].length} characters exceeds ${MAX_CONTROL_BYTES}`);
  }
  let msg;
  try {
    msg = JSON.parse(data, reviveIntegers);
  } catch (err) {
    throw new WireError(`control message is not JSON: ${err.message}`);
  }
  if (msg === null || typeof msg !== "object" || Array.isArray(msg) || !CONTROL_TYPES.has(msg.type)) {
    throw new WireError(`control message without a known type: ${data.slice(0, 80)}`);
  }
  return msg;
}
