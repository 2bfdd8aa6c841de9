/**
 * Heatmap maths shared by the engine (overlay PNG, CLI) and the webview (live overlay, hover readout), so that
 * the value a user reads under the pointer is exactly the value that was painted there. Pure: imports nothing.
 *
 * Geometry convention (half-pixel centres): pixel i of an axis of size n covers [i, i+1) and has its centre at
 * i + 0.5. Resizing an axis from n_in to n_out maps output pixel o to the source coordinate
 *     s = (o + 0.5) * n_in / n_out - 0.5,
 * clamped to [0, n_in - 1], and interpolates linearly between floor(s) and floor(s) + 1. This is the convention
 * of tf.image.resizeBilinear(..., halfPixelCenters=true), PyTorch's interpolate(align_corners=False) and OpenCV's
 * INTER_LINEAR (which pytorch-grad-cam uses to upsample its maps), so our upsampled maps line up with theirs.
 */

/**
 * A class activation map at the target layer's resolution, row-major, values normally min-max normalised to
 * [0,1]. `rawMin` and `rawMax` are the map's range before normalisation (kept for the readout and the JSON
 * export, because "all zeros" and "weak but structured" look the same once normalised).
 */
export interface Heatmap {
  width: number;
  height: number;
  values: Float32Array;
  rawMin: number;
  rawMax: number;
}

function checkSize(what: string, w: number, h: number): void {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) {
    throw new RangeError(`${what}: size must be positive integers, got ${w}x${h}`);
  }
}

function checkMap(map: ArrayLike<number>, w: number, h: number): void {
  checkSize('heatmap', w, h);
  if (map.length !== w * h) {
    throw new RangeError(`heatmap: ${map.length} values do not fill ${w}x${h} (= ${w * h})`);
  }
}

/**
 * Source sample for output coordinate `o` (may be fractional) along an axis resized from `nIn` to `nOut`:
 * the lower index, the upper index and the weight of the upper one.
 */
export function sourceCoord(o: number, nIn: number, nOut: number): [number, number, number] {
  let s = ((o + 0.5) * nIn) / nOut - 0.5;
  if (s < 0) s = 0;
  const i0 = Math.floor(s);
  if (i0 >= nIn - 1) return [nIn - 1, nIn - 1, 0];
  return [i0, i0 + 1, s - i0];
}

/**
 * The same resize along one axis as a matrix: row o holds the weights of the `nIn` source samples that output
 * sample o mixes (at most two are non-zero; each row sums to 1). Row-major [nOut, nIn].
 */
export function bilinearWeights(nIn: number, nOut: number): Float64Array {
  checkSize('bilinearWeights', nIn, nOut);
  const m = new Float64Array(nOut * nIn);
  for (let o = 0; o < nOut; o++) {
    const [i0, i1, f] = sourceCoord(o, nIn, nOut);
    m[o * nIn + i0] += 1 - f;
    m[o * nIn + i1] += f;
  }
  return m;
}

/**
 * Bilinear resize of a row-major `w`x`h` map to `outW`x`outH` with half-pixel centres (see the file comment).
 * Works for up- and downscaling (downscaling does not average: it is not meant for shrinking images). Returns a
 * new array; the input is not modified.
 */
export function upsampleBilinear(
  map: ArrayLike<number>,
  w: number,
  h: number,
  outW: number,
  outH: number,
): Float32Array {
  checkMap(map, w, h);
  checkSize('upsampleBilinear output', outW, outH);
  // Column taps are the same for every row: compute them once.
  const x0 = new Int32Array(outW);
  const x1 = new Int32Array(outW);
  const fx = new Float64Array(outW);
  for (let x = 0; x < outW; x++) [x0[x], x1[x], fx[x]] = sourceCoord(x, w, outW);

  const out = new Float32Array(outW * outH);
  for (let y = 0; y < outH; y++) {
    const [y0, y1, fy] = sourceCoord(y, h, outH);
    const r0 = y0 * w;
    const r1 = y1 * w;
    const o = y * outW;
    for (let x = 0; x < outW; x++) {
      const a = x0[x];
      const b = x1[x];
      const t = fx[x];
      const top = map[r0 + a] + (map[r0 + b] - map[r0 + a]) * t;
      const bottom = map[r1 + a] + (map[r1 + b] - map[r1 + a]) * t;
      out[o + x] = top + (bottom - top) * fy;
    }
  }
  return out;
}

/** Smallest and largest finite value; both 0 when there is none. */
export function finiteRange(values: ArrayLike<number>): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < min) min = v; // NaN compares false and is skipped
    if (v > max) max = v;
  }
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    // Only infinities / NaN, or empty: recompute over finite values only.
    min = Infinity;
    max = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (Number.isFinite(v)) {
        if (v < min) min = v;
        if (v > max) max = v;
      }
    }
    if (min === Infinity) return { min: 0, max: 0 };
  }
  return { min, max };
}

/**
 * Min-max normalisation to [0,1], the convention of pytorch-grad-cam and torchcam:
 *     out = (v - min) / (max - min + eps).
 * The epsilon keeps a constant map (max = min, e.g. an all-zero map after ReLU) at 0 everywhere instead of
 * dividing by zero; it makes the largest value (max-min)/(max-min+eps), a hair under 1. Non-finite inputs are
 * ignored for the range and map to 0. Returns a new array.
 */
export function minMaxNormalize(values: ArrayLike<number>, eps = 1e-7): Float32Array {
  const { min, max } = finiteRange(values);
  const scale = 1 / (max - min + eps);
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) continue; // stays 0
    const n = (v - min) * scale;
    out[i] = n < 0 ? 0 : n > 1 ? 1 : n;
  }
  return out;
}

/** Builds a Heatmap from a raw map: values min-max normalised, raw range kept. */
export function makeHeatmap(raw: ArrayLike<number>, width: number, height: number, eps = 1e-7): Heatmap {
  checkMap(raw, width, height);
  const { min, max } = finiteRange(raw);
  return { width, height, values: minMaxNormalize(raw, eps), rawMin: min, rawMax: max };
}

/**
 * The map value shown at image pixel (x, y) of an `imageW`x`imageH` image, for the hover readout. Uses the same
 * half-pixel bilinear sampling as upsampleBilinear, so heatAt(..., x, y, W, H) equals
 * upsampleBilinear(map, w, h, W, H)[y * W + x] for integer x, y; fractional coordinates (a pointer between
 * pixels) are sampled continuously. Returns NaN when (x, y) lies outside [0, imageW) x [0, imageH).
 */
export function heatAt(
  map: ArrayLike<number>,
  w: number,
  h: number,
  x: number,
  y: number,
  imageW: number,
  imageH: number,
): number {
  checkMap(map, w, h);
  checkSize('heatAt image', imageW, imageH);
  if (!(x >= 0 && x < imageW && y >= 0 && y < imageH)) return NaN;
  const [x0, x1, fx] = sourceCoord(x, w, imageW);
  const [y0, y1, fy] = sourceCoord(y, h, imageH);
  const top = map[y0 * w + x0] + (map[y0 * w + x1] - map[y0 * w + x0]) * fx;
  const bottom = map[y1 * w + x0] + (map[y1 * w + x1] - map[y1 * w + x0]) * fx;
  return top + (bottom - top) * fy;
}
