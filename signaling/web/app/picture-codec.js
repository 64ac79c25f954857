// The sender's reference pictures: one raw AV1 intra frame each (shared_model/media/picture_codec.py), decoded
// with WebCodecs' VideoDecoder (dav1d in Chromium): the planes are the ones PyAV's dav1d gives, bit for bit (AV1
// decoding is exact). They are turned into RGB here, not by the browser's colour path, exactly as PyAV's rgb24
// does it on x86-64 (swscale's SIMD yuv420p to rgb24: BT.601 limited range, each chroma sample for its 2 x 2
// pixels, 16-bit fixed point), so the page rebuilds faces from the very pixels the Python receiver uses.

/** A picture this end cannot take (the session answers picture-refused). */
export class PictureError extends Error {}

/** The codec name both ends agree on in the hello. */
export const PICTURE_CODEC = "av1";
/** WebCodecs' name for it: profile 0 (8-bit 4:2:0), level 3.0, main tier: covers the model's 256 px pictures. */
const CODEC = "av01.0.04M.08";

/** The picture's one frame as packed I420 planes (Y, U, V: 1.5 resolution² bytes, as PyAV's yuv420p);
 * PictureError unless it is one `resolution` px square 8-bit 4:2:0 frame. */
export async function decodePlanes(bytes, resolution) {
  if (typeof VideoDecoder === "undefined") {
    throw new PictureError("no WebCodecs VideoDecoder to decode AV1 (browsers offer it in secure contexts only: HTTPS)");
  }
  const config = { codec: CODEC, codedWidth: resolution, codedHeight: resolution };
  if (!(await VideoDecoder.isConfigSupported(config)).supported) {
    throw new PictureError(`this browser cannot decode AV1 (${CODEC})`);
  }
  const frames = [];
  let failure = null;
  const decoder = new VideoDecoder({ output: (frame) => frames.push(frame), error: (err) => (failure = err) });
  try {
    decoder.configure(config);
    decoder.decode(new EncodedVideoChunk({ type: "key", timestamp: 0, data: bytes }));
    await decoder.flush();
  } catch (err) {
    frames.forEach((frame) => frame.close());
    throw new PictureError(`picture does not decode as AV1: ${(failure ?? err).message}`);
  } finally {
    if (decoder.state !== "closed") decoder.close();
  }
  try {
    const [frame] = frames;
    if (frames.length !== 1) {
      throw new PictureError(`picture holds ${frames.length} frames, not 1`);
    }
    if (frame.codedWidth !== resolution || frame.codedHeight !== resolution || frame.format !== "I420") {
      throw new PictureError(
        `picture is ${frame.codedWidth}x${frame.codedHeight} ${frame.format}, not ${resolution}x${resolution} I420`,
      );
    }
    const luma = resolution * resolution;
    const half = (resolution + 1) >> 1;
    const planes = new Uint8Array(luma + 2 * half * half);
    const layout = [{ offset: 0, stride: resolution }, { offset: luma, stride: half }, { offset: luma + half * half, stride: half }];
    await frame.copyTo(planes, { layout });
    return planes;
  } finally {
    frames.forEach((frame) => frame.close());
  }
}

// swscale's BT.601 coefficients in 16-bit fixed point (x 65536: luma 255/219 = 1.164, V to red 1.596, U and V to
// green -0.392 and -0.813, U to blue 2.017) divided by 8 and rounded, applied as its pmulhw does to values
// scaled by 8: (a * c) >> 16, each product floored on its own.
const [Y_GAIN, V_RED, U_GREEN, V_GREEN, U_BLUE] = [9539, 13075, -3209, -6660, 16525];
const high = (a, c) => (a * c) >> 16;

/** The picture as {width, height, data (RGBA)}; PictureError as decodePlanes. */
export async function decodePicture(bytes, resolution) {
  const planes = await decodePlanes(bytes, resolution);
  const half = (resolution + 1) >> 1;
  const uPlane = resolution * resolution;
  const vPlane = uPlane + half * half;
  const data = new Uint8ClampedArray(4 * resolution * resolution); // clamps to [0, 255]
  for (let row = 0; row < resolution; row++) {
    for (let col = 0; col < resolution; col++) {
      const c = (row >> 1) * half + (col >> 1);
      const y = high(8 * planes[row * resolution + col] - 128, Y_GAIN);
      const u = 8 * planes[uPlane + c] - 1024;
      const v = 8 * planes[vPlane + c] - 1024;
      const i = 4 * (row * resolution + col);
      data[i] = y + high(v, V_RED);
      data[i + 1] = y + high(u, U_GREEN) + high(v, V_GREEN);
      data[i + 2] = y + high(u, U_BLUE);
      data[i + 3] = 255;
    }
  }
  return { width: resolution, height: resolution, data };
}
