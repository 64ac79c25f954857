// The generator's side of the page, in a worker so that inference never blocks the page's event loop (a
// frame takes a few hundred milliseconds on a small CPU, and WebRTC messages must keep flowing meanwhile).
// Runs the graphs `python -m shared_model.export` writes (shared_model/runtime/onnx_backend.py
// OnnxRenderer) with onnxruntime-web, on WebGPU where the browser has it and on WebAssembly otherwise.
// Requests (postMessage): {id, op: "load" | "references" | "picture" | "forget" | "render", args}, one at a time
// and in order (a picture is prepared between two renders, as the Python receiver's render thread does);
// replies {id, result} or {id, error}.

import * as ort from "../vendor/onnxruntime-web/ort.webgpu.bundle.min.mjs";
import { decodePicture } from "./picture-codec.js";

// The bundle holds its JavaScript glue; only the .wasm file is fetched, from the vendor folder.
ort.env.wasm.wasmPaths = { wasm: new URL("../vendor/onnxruntime-web/ort-wasm-simd-threaded.asyncify.wasm", import.meta.url).href };

const PARTS = ["detector", "encoder", "generator"];
/** A reference stays in use unless another is nearer by more than this fraction (ReferencePicker). */
const PICK_MARGIN = 0.15;

let sessions = null;
let references = []; // the page's own pictures
const pictures = new Map(); // the sender's, by id
let current = null;
let warm = false;

/** "webgpu" when there is a WebGPU adapter, else "wasm"; `wanted` overrides. */
async function pickProvider(wanted) {
  if (wanted) {
    return wanted;
  }
  try {
    return navigator.gpu && (await navigator.gpu.requestAdapter()) ? "webgpu" : "wasm";
  } catch {
    return "wasm";
  }
}

async function load({ urls, provider: wanted }) {
  let provider = await pickProvider(wanted);
  const create = (p) => Promise.all(urls.map((url) => ort.InferenceSession.create(url, { executionProviders: [p] })));
  let created;
  try {
    created = await create(provider);
  } catch (err) {
    if (provider === "wasm") throw err;
    console.warn(`onnxruntime-web: ${provider} failed (${err.message}); running on wasm`);
    provider = "wasm";
    created = await create(provider);
  }
  sessions = Object.fromEntries(PARTS.map((part, i) => [part, created[i]]));
  return { provider };
}

/** uint8 RGBA pixels (res x res) to float32 (1, 3, res, res) in [0, 1], as onnx_backend.image_input. */
function imageTensor({ width, height, data }) {
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      out[c * plane + i] = data[4 * i + c] / 255;
    }
  }
  return new ort.Tensor("float32", out, [1, 3, height, width]);
}

/** A picture's keypoints and encoder features, computed once. The first picture ever prepared is also drawn
from its own keypoints, so that the generator's first run (the slowest) is not a call's first frame. */
async function prepare(image) {
  const source = imageTensor(image);
  const { keypoints, strengths } = await sessions.detector.run({ image: source });
  const ref = { source, keypoints, strengths, features: await sessions.encoder.run({ image: source }) };
  if (!warm) {
    await generate(ref, keypoints.data, strengths.data);
    warm = true;
  }
  return ref;
}

/** The page's own pictures. */
async function setReferences({ images }) {
  const refs = [];
  for (const image of images) {
    refs.push(await prepare(image));
  }
  references = refs;
  current = null;
  return refs.length;
}

/** One of the sender's pictures (AV1 bytes), decoded and prepared; it takes the place of `replaces`. */
async function addPicture({ id, data, replaces, resolution }) {
  const prepared = await prepare(await decodePicture(data, resolution));
  pictures.delete(replaces);
  pictures.set(id, prepared);
}

/** Strength-weighted mean distance between a reference's keypoints and a frame's (keypoint_distance). */
function keypointDistance(ref, kp, st) {
  const rk = ref.keypoints.data;
  const rs = ref.strengths.data;
  let num = 0;
  let den = 0;
  for (let p = 0; p < st.length; p++) {
    const w = rs[p] * st[p];
    num += Math.hypot(rk[2 * p] - kp[2 * p], rk[2 * p + 1] - kp[2 * p + 1]) * w;
    den += w;
  }
  return num / Math.max(den, 1e-6);
}

/** The nearest reference in keypoints, kept unless another is nearer by PICK_MARGIN. */
function pick(kp, st) {
  const d = references.map((ref) => keypointDistance(ref, kp, st));
  const best = d.indexOf(Math.min(...d));
  if (current === null || d[best] < (1 - PICK_MARGIN) * d[current]) {
    current = best;
  }
  return current;
}

/** The sender's pictures are gone (a new call starts). */
function forgetPictures() {
  pictures.clear();
}

/** The frame rebuilt from the picture it names (0: the nearest own one), or null when that is not held. */
function render({ keypoints, strengths, picture }) {
  if (!picture && !references.length) return null;
  const ref = picture ? pictures.get(picture) : references[pick(keypoints, strengths)];
  return ref ? generate(ref, keypoints, strengths) : null;
}

/** The generator's output from `ref`: RGBA pixels as onnx_backend.image_output rounds them. */
async function generate(ref, keypoints, strengths) {
  const p = strengths.length;
  const { prediction } = await sessions.generator.run({
    source: ref.source,
    kp_source: ref.keypoints,
    strength_source: ref.strengths,
    kp_driving: new ort.Tensor("float32", keypoints, [1, p, 2]),
    strength_driving: new ort.Tensor("float32", strengths, [1, p]),
    ...ref.features,
  });
  const [, , height, width] = prediction.dims;
  const plane = width * height;
  const rgb = await prediction.getData();
  const pixels = new Uint8ClampedArray(4 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      pixels[4 * i + c] = Math.round(Math.min(Math.max(rgb[c * plane + i], 0), 1) * 255);
    }
    pixels[4 * i + 3] = 255;
  }
  return { pixels, width, height };
}

const OPS = { load, references: setReferences, picture: addPicture, forget: forgetPictures, render };

let queue = Promise.resolve();

self.onmessage = ({ data: { id, op, args } }) => {
  queue = queue.then(async () => {
    try {
      const result = await OPS[op](args);
      self.postMessage({ id, result }, result?.pixels ? [result.pixels.buffer] : []);
    } catch (err) {
      self.postMessage({ id, error: err?.message ?? String(err) });
    }
  });
};
