// Rebuilding the face in the browser, main-thread side: the model the server offers, reference pictures (the
// sender's, sent over the call, and the page's own, dropped on it), and the canvas. Inference runs in
// render-worker.js; this class forwards requests to it and draws its frames onto the canvas at the model's
// output resolution.

/** The exported models the server offers: [{name, model, model_version, detector_version, resolution, num_keypoints}]. */
export async function modelIndex() {
  const response = await fetch("/models/index.json");
  if (!response.ok) {
    throw new Error(`the server lists no models (${response.status})`);
  }
  return response.json();
}

/** A picture file as ImageData of `size` x `size`: the centred square, scaled (face crops come as they are). */
export async function pictureImage(file, size) {
  const bitmap = await createImageBitmap(file);
  const side = Math.min(bitmap.width, bitmap.height);
  const canvas = new OffscreenCanvas(size, size);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(bitmap, (bitmap.width - side) / 2, (bitmap.height - side) / 2, side, side, 0, 0, size, size);
  return ctx.getImageData(0, 0, size, size);
}

export class Renderer {
  constructor(entry, worker, canvas) {
    this.entry = entry;
    this.worker = worker;
    this.canvas = canvas;
    this.calls = new Map();
    this.nextId = 0;
    this.own = 0; // pictures of its own (frames naming picture 0 are rebuilt from the nearest)
    this.provider = null;
    worker.onmessage = ({ data: { id, result, error } }) => {
      const { resolve, reject } = this.calls.get(id);
      this.calls.delete(id);
      error === undefined ? resolve(result) : reject(new Error(error));
    };
    worker.onerror = (event) => {
      for (const { reject } of this.calls.values()) reject(new Error(`render worker: ${event.message}`));
      this.calls.clear();
    };
  }

  /** The model `entry` of the index, loaded in a worker; `provider` forces "wasm" or "webgpu". */
  static async load(entry, canvas, provider = null) {
    const worker = new Worker(new URL("./render-worker.js", import.meta.url), { type: "module" });
    const renderer = new Renderer(entry, worker, canvas);
    const urls = ["detector", "encoder", "generator"].map((part) => new URL(`/models/${entry.name}/${part}.onnx`, location.href).href);
    renderer.provider = (await renderer.call("load", { urls, provider })).provider;
    canvas.width = canvas.height = entry.resolution;
    return renderer;
  }

  call(op, args = {}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, args });
    });
  }

  get identity() {
    return {
      modelId: this.entry.model, modelVersion: this.entry.model_version, numKeypoints: this.entry.num_keypoints,
      detectorVersion: this.entry.detector_version,
    };
  }

  /** Replace the own pictures with `images` (ImageData at the model's resolution). */
  async setReferences(images) {
    this.own = await this.call("references", { images });
  }

  /** Decode (AV1) and prepare the sender's picture `id`, dropping `replaces` (or null) once it is in; rejects
   * when the bytes are not one picture at the model's resolution. */
  addPicture(id, data, replaces) {
    return this.call("picture", { id, data, replaces, resolution: this.entry.resolution });
  }

  /** Forget the sender's pictures (those of an earlier call). */
  forgetPictures() {
    return this.call("forget");
  }

  /** Rebuild `frame` ({keypoints, strengths, picture}) and draw it on the canvas; false (nothing drawn) when
   * the picture it names is not held (0: when there is no picture of its own). */
  async render({ keypoints, strengths, picture }) {
    const drawn = await this.call("render", { keypoints, strengths, picture });
    if (drawn === null) return false;
    this.canvas.getContext("2d").putImageData(new ImageData(drawn.pixels, drawn.width, drawn.height), 0, 0);
    return true;
  }
}
