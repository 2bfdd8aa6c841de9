/**
 * Maps made of several maps, as pytorch-grad-cam makes them:
 *
 * - Several target layers (its list of target_layers): each layer's map (ReLU, min-max normalised to [0, 1] as
 *   every map is) is brought to the model input's size by bilinear interpolation with half-pixel centres, the
 *   maps are averaged, and the mean is normalised again:  L = norm( (1/n) sum_l Up(norm(ReLU(L_l))) ).
 * - `augSmooth` (its aug_smooth): the map of each of six copies of the input, unflipped and horizontally flipped
 *   at scales s = 1.0, 1.1 and 1.2, is mapped back to the image's frame and the maps are averaged.
 *   A scale s zooms in about the centre, keeping the input size (the model's input is fixed): the copy's pixel
 *   X shows the image at x = (X + 1/2 - W/2) / s + W/2 - 1/2 (the same for y), bilinear, and the flip follows
 *   the zoom. Mapping back inverts that: the image's pixel x reads the copy's map at X = (x + 1/2 - W/2) s +
 *   W/2 - 1/2 (flipped X -> W - 1 - X), directly from the map at its own resolution (half-pixel centres, so for
 *   the unscaled copies this is exactly the upsampled map, flipped back). At s > 1 the copy does not show the
 *   image's border: there each pixel averages the copies that cover it (at least the two unscaled ones).
 *   The class is the one explained on the image itself, for every copy. The averaged map is normalised again.
 *   pytorch-grad-cam (through the ttach library) multiplies the pixel values by 0.9, 1 and 1.1 where we scale
 *   the geometry (issue #15 asks for scales); both are flipped.
 *
 * Either way the map has the model input's size ([H, W]), not a layer's. Maps of the copies are computed by
 * sessions on the augmented inputs, made and disposed here; the unaugmented one is the session itself.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import type { ExplainRequest, ExplainResult, ImageSession } from '../session';
import { NORMALIZE_EPS, type MapResult } from './base';
import { getMethod } from './registry';
import { camOptionFlags } from './smoothing';

export interface Augmentation {
  flip: boolean;
  scale: number;
}

/** The six copies of augSmooth: no flip then flip, scales 1.0, 1.1, 1.2. */
export const AUG_SMOOTH_AUGMENTATIONS: readonly Augmentation[] = [false, true].flatMap((flip) => [1, 1.1, 1.2].map((scale) => ({ flip, scale })));

export const MAX_LAYERS = 32;

/** Linear interpolation taps at a (possibly fractional, possibly outside) coordinate, clamped to [0, n - 1]. */
function taps(c: number, n: number): [number, number, number] {
  const s = Math.min(Math.max(c, 0), n - 1);
  const i0 = Math.floor(s);
  if (i0 >= n - 1) return [n - 1, n - 1, 0];
  return [i0, i0 + 1, s - i0];
}

/** The image coordinate a copy's pixel X shows (see the file comment), along an axis of n pixels. */
function imageCoord(X: number, n: number, a: Augmentation, flipAxis: boolean): number {
  const z = a.flip && flipAxis ? n - 1 - X : X;
  return (z + 0.5 - n / 2) / a.scale + n / 2 - 0.5;
}

/** The copy's coordinate that shows the image's coordinate x (inverse of imageCoord). */
function copyCoord(x: number, n: number, a: Augmentation, flipAxis: boolean): number {
  const z = (x + 0.5 - n / 2) * a.scale + n / 2 - 0.5;
  return a.flip && flipAxis ? n - 1 - z : z;
}

/** The augmented copy of a [1, H, W, C] input (bilinear, edges clamped). Returns a new tensor. */
export async function augmentInput(input: tf.Tensor4D, a: Augmentation): Promise<tf.Tensor4D> {
  const [, H, W, C] = input.shape;
  const src = (await input.data()) as Float32Array;
  const out = new Float32Array(src.length);
  const cols = Array.from({ length: W }, (_, X) => taps(imageCoord(X, W, a, true), W));
  for (let Y = 0; Y < H; Y++) {
    const [y0, y1, fy] = taps(imageCoord(Y, H, a, false), H);
    for (let X = 0; X < W; X++) {
      const [x0, x1, fx] = cols[X];
      const o = (Y * W + X) * C;
      const p00 = (y0 * W + x0) * C;
      const p01 = (y0 * W + x1) * C;
      const p10 = (y1 * W + x0) * C;
      const p11 = (y1 * W + x1) * C;
      for (let c = 0; c < C; c++) {
        const top = src[p00 + c] + (src[p01 + c] - src[p00 + c]) * fx;
        const bottom = src[p10 + c] + (src[p11 + c] - src[p10 + c]) * fx;
        out[o + c] = top + (bottom - top) * fy;
      }
    }
  }
  return tf.tensor4d(out, [1, H, W, C]);
}

/**
 * Adds a copy's map (row-major h x w, over the copy's frame) mapped back to the image's frame [H, W] into `sum`,
 * and 1 into `count` where the copy covers the pixel.
 */
export function addMappedBack(map: ArrayLike<number>, w: number, h: number, a: Augmentation, W: number, H: number, sum: Float64Array, count: Float64Array): void {
  const cols: Array<[number, number, number] | undefined> = [];
  for (let x = 0; x < W; x++) {
    const X = copyCoord(x, W, a, true);
    cols.push(X >= -0.5 - 1e-9 && X <= W - 0.5 + 1e-9 ? taps(((X + 0.5) * w) / W - 0.5, w) : undefined);
  }
  for (let y = 0; y < H; y++) {
    const Y = copyCoord(y, H, a, false);
    if (Y < -0.5 - 1e-9 || Y > H - 0.5 + 1e-9) continue;
    const [y0, y1, fy] = taps(((Y + 0.5) * h) / H - 0.5, h);
    for (let x = 0; x < W; x++) {
      const t = cols[x];
      if (!t) continue;
      const [x0, x1, fx] = t;
      const top = map[y0 * w + x0] + (map[y0 * w + x1] - map[y0 * w + x0]) * fx;
      const bottom = map[y1 * w + x0] + (map[y1 * w + x1] - map[y1 * w + x0]) * fx;
      sum[y * W + x] += top + (bottom - top) * fy;
      count[y * W + x] += 1;
    }
  }
}

/** The mean of summed maps, then ReLU and min-max normalisation, as a MapResult. */
function averaged(sum: Float64Array, count: Float64Array, W: number, H: number): MapResult {
  const mean = new Float64Array(sum.length);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < sum.length; i++) {
    const v = count[i] > 0 ? Math.max(0, sum[i] / count[i]) : 0;
    mean[i] = Number.isFinite(v) ? v : 0;
    if (mean[i] < min) min = mean[i];
    if (mean[i] > max) max = mean[i];
  }
  const values = new Float32Array(sum.length);
  for (let i = 0; i < sum.length; i++) values[i] = (mean[i] - min) / (max - min + NORMALIZE_EPS);
  return { width: W, height: H, values, rawMin: min, rawMax: max };
}

/** The target layers of a request: `layers` where given (checked, without repeats), else undefined. */
export function requestLayers(req: ExplainRequest): string[] | undefined {
  const ls = req.layers;
  if (ls === undefined) return undefined;
  if (!Array.isArray(ls) || ls.length === 0) throw new CamLensError('BAD_ARGUMENT', 'layers must list at least one layer');
  if (ls.length > MAX_LAYERS) throw new CamLensError('BAD_ARGUMENT', `at most ${MAX_LAYERS} layers can be averaged, got ${ls.length}`);
  const seen = new Set<string>();
  for (const l of ls) {
    if (typeof l !== 'string' || l === '') throw new CamLensError('BAD_ARGUMENT', `layers must be layer names, got ${JSON.stringify(l)}`);
    if (seen.has(l)) throw new CamLensError('BAD_ARGUMENT', `layer "${l}" is listed twice`);
    seen.add(l);
  }
  return ls;
}

/** True when the request needs `explainCombined` rather than one method run at one layer. */
export function needsCombining(req: ExplainRequest): boolean {
  const method = getMethod(req.method);
  const layers = requestLayers(req);
  const flags = camOptionFlags(method, req.options);
  if (layers && layers.length > 1 && method.group !== 'cam') {
    throw new CamLensError('METHOD_NOT_APPLICABLE', `several target layers apply to class activation maps, not to ${method.label} (pixel saliency)`, 'pick one layer');
  }
  return flags.augSmooth || (layers !== undefined && layers.length > 1);
}

function sumTimings(rs: ExplainResult[], total: number): ExplainResult['timingsMs'] {
  const t = { forward: 0, gradients: 0, method: 0, total };
  for (const r of rs) {
    t.forward += r.timingsMs.forward;
    t.gradients += r.timingsMs.gradients;
    t.method += r.timingsMs.method;
  }
  return t;
}

/** The parts' notes: one where they all say the same, else each with what it is the note of. */
function joinedNote(parts: Array<[string, ExplainResult]>): string | undefined {
  const notes = parts.map(([, r]) => r.heatmap.details?.note ?? '');
  if (notes.every((n) => n === notes[0])) return notes[0] || undefined;
  return parts.flatMap(([what], i) => (notes[i] ? [`${what}: ${notes[i]}`] : [])).join('; ');
}

/**
 * The map of a request with several layers and/or augSmooth, from single-layer, unaugmented explanations of
 * `session` (and of sessions on augmented copies, made with `makeSession`, which takes ownership of the input).
 * `augmentations`: the copies augSmooth averages (tests pass others).
 */
export async function explainCombined(session: ImageSession, req: ExplainRequest, makeSession: (input: tf.Tensor4D) => ImageSession,
  augmentations: readonly Augmentation[] = AUG_SMOOTH_AUGMENTATIONS): Promise<ExplainResult> {
  const t0 = performance.now();
  const method = getMethod(req.method);
  const flags = camOptionFlags(method, req.options);
  const layers = requestLayers(req) ?? [session.targetOp(req.layer).name];
  const [, H, W] = session.input.shape;
  if (!flags.augSmooth) return averageLayers(session, req, layers, t0);
  // The class of the image itself, for every copy.
  const outputIndex = await session.resolveTarget(req.classChoice);
  const classChoice = outputIndex - session.model.metadata.labelOffset;
  const options = { ...(req.options ?? {}), augSmooth: false };
  const sum = new Float64Array(W * H);
  const count = new Float64Array(W * H);
  const results: Array<[string, ExplainResult]> = [];
  const n = augmentations.length;
  if (n === 0) throw new CamLensError('BAD_ARGUMENT', 'augSmooth needs at least one augmentation');
  for (let i = 0; i < n; i++) {
    const a = augmentations[i];
    if (!(a.scale >= 1) || !Number.isFinite(a.scale)) throw new CamLensError('BAD_ARGUMENT', `an augmentation's scale must be at least 1, got ${a.scale}`);
    const identity = !a.flip && a.scale === 1;
    const s = identity ? session : makeSession(await augmentInput(session.input, a));
    try {
      const r = await s.explain({
        ...req, classChoice, options, layers, layer: undefined,
        onProgress: req.onProgress && ((done, total) => req.onProgress?.(i * total + done, n * total)),
      });
      addMappedBack(r.heatmap.values, r.heatmap.width, r.heatmap.height, a, W, H, sum, count);
      results.push([`${a.flip ? 'flipped, ' : ''}x${a.scale}`, r]);
    } finally {
      if (!identity) s.dispose();
    }
  }
  const first = results[0][1];
  const heatmap = averaged(sum, count, W, H);
  // The copies' notes differ only by the copy (Score-CAM's channels are ranked on each copy): the image's own.
  const note = first.heatmap.details?.note;
  const copies = augmentations === AUG_SMOOTH_AUGMENTATIONS ? 'flip x scales 1.0, 1.1, 1.2' : results.map(([what]) => what).join(', ');
  heatmap.details = { note: `aug-smoothed: mean of ${n} copies (${copies})` + (note ? `; ${note}` : '') };
  return {
    ...first,
    layers: layers.length > 1 ? first.layers : undefined,
    heatmap,
    timingsMs: sumTimings(results.map(([, r]) => r), performance.now() - t0),
    cached: { forward: results.every(([, r]) => r.cached.forward), gradients: results.every(([, r]) => r.cached.gradients) },
  };
}

/** The mean of the layers' maps at the input size (see the file comment). */
async function averageLayers(session: ImageSession, req: ExplainRequest, layers: string[], t0: number): Promise<ExplainResult> {
  const [, H, W] = session.input.shape;
  const sum = new Float64Array(W * H);
  const count = new Float64Array(W * H);
  const results: Array<[string, ExplainResult]> = [];
  const identity: Augmentation = { flip: false, scale: 1 };
  for (let i = 0; i < layers.length; i++) {
    const r = await session.explain({
      ...req, layer: layers[i], layers: undefined,
      onProgress: req.onProgress && ((done, total) => req.onProgress?.(i * total + done, layers.length * total)),
    });
    // Mapping back through the identity is the half-pixel-centre upsampling to the input size.
    addMappedBack(r.heatmap.values, r.heatmap.width, r.heatmap.height, identity, W, H, sum, count);
    results.push([r.layer, r]);
  }
  const first = results[0][1];
  const heatmap = averaged(sum, count, W, H);
  const note = joinedNote(results);
  heatmap.details = { note: `mean of ${layers.length} layers` + (note ? `; ${note}` : '') };
  return {
    ...first,
    layers: results.map(([l]) => l),
    heatmap,
    timingsMs: sumTimings(results.map(([, r]) => r), performance.now() - t0),
    cached: { forward: results.every(([, r]) => r.cached.forward), gradients: results.every(([, r]) => r.cached.gradients) },
  };
}
