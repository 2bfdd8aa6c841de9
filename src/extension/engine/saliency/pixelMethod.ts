/**
 * What the pixel-level saliency methods share: their context and interface (they run through
 * ImageSession.explain, saliency/explain.ts, not through cam/base.ts runMethod), their options, and the three ways
 * an input gradient G [1, H, W, C] becomes a map at the model input's resolution:
 *
 *   signed     s(p) = sum_c G(p, c);            values = s / max_p |s|   in [-1, 1], 0 = no attribution
 *              (the channel sum keeps Integrated Gradients' completeness: sum_p s(p) = sum of the attributions)
 *   magnitude  m(p) = max_c |G(p, c)|;          values = m / max_p m     in [0, 1]   (Simonyan et al. 2014)
 *   rgb        v = 0.5 + 0.1 * (G - mean(G)) / (std(G) + 1e-5), clipped to [0, 1], per value, channels in RGB
 *              order (a 'caffe' model's BGR input swapped back; gray repeated): the rendering of guided
 *              backpropagation images used by pytorch-grad-cam (deprocess_image); `values` hold the magnitude.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import type { LoadedModel } from '../model';
import type { BatchScores, CamContext, CamMethod, MapDetails, MapResult, MethodParam } from '../cam/base';

export interface PixelContext {
  model: LoadedModel;
  /** The preprocessed model input [1, H, W, C]. Owned by the caller. */
  input: tf.Tensor4D;
  /** Model output index of the class explained (offset applied). */
  classIndex: number;
  /** The class's logits (and probabilities) for a batch of inputs [n, H, W, C]; the caller keeps the inputs. */
  scoreBatch: (inputs: tf.Tensor4D) => Promise<BatchScores>;
  /** Guided Grad-CAM: the Grad-CAM map at the target layer (in [0, 1], at the layer's resolution). */
  camMap?: () => Promise<MapResult>;
  options?: Record<string, unknown>;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface PixelMethod extends CamMethod {
  group: 'pixel';
  /** The map at the model input's resolution; no tensor outlives the call. */
  explainPixels(ctx: PixelContext): Promise<MapResult>;
}

export function isPixelMethod(m: CamMethod): m is PixelMethod {
  return m.group === 'pixel' && typeof (m as PixelMethod).explainPixels === 'function';
}

/** `compute` of a pixel method: they need the whole model and run through ImageSession.explain. */
export function pixelOnly(label: string): (ctx: CamContext) => tf.Tensor2D {
  return () => {
    throw new CamLensError('METHOD_NOT_APPLICABLE', `${label} is a pixel-level method: it runs through ImageSession.explain, not on a layer's activations`);
  };
}

/** The batch-size option the batched methods take besides their declared params. */
export const BATCH_PARAM: MethodParam = {
  id: 'batchSize', label: 'Batch size', kind: 'number', default: 0, min: 0, max: 256, step: 1,
  description: 'Inputs per forward-and-backward pass; 0: as many as fit in about 384 MB (at most 32)',
};

/** The render choice of guided backpropagation and Guided Grad-CAM. */
export const RENDER_PARAM: MethodParam = {
  id: 'render', label: 'Render', kind: 'choice', default: 'rgb',
  choices: [{ value: 'rgb', label: 'RGB image' }, { value: 'magnitude', label: 'Magnitude' }],
  description: 'RGB: the input gradient as colours (grey: none); magnitude: the largest |gradient| over the channels of each pixel',
};

/**
 * `options` checked against `params`: each value of its kind, a number within min..max (an integer where the step
 * is), a choice among its values; absent ones take the default. Keys of no param are ignored (the panel may keep
 * other methods' values). Bad values are a BAD_ARGUMENT naming the option and what it takes.
 */
export function readParams(label: string, params: readonly MethodParam[], options: Record<string, unknown> | undefined): Record<string, number | string | boolean> {
  const out: Record<string, number | string | boolean> = {};
  for (const p of params) {
    const v = options?.[p.id];
    if (v === undefined || v === null) {
      out[p.id] = p.default;
      continue;
    }
    const bad = (what: string): never => {
      throw new CamLensError('BAD_ARGUMENT', `${label}: option ${p.id} must be ${what}, got ${JSON.stringify(v)}`);
    };
    if (p.kind === 'number') {
      const integer = p.step !== undefined && Number.isInteger(p.step);
      const range = `${p.min ?? '-inf'} to ${p.max ?? 'inf'}`;
      if (typeof v !== 'number' || !Number.isFinite(v)) bad(`a number from ${range}`);
      const n = v as number;
      if ((p.min !== undefined && n < p.min) || (p.max !== undefined && n > p.max)) bad(`${integer ? 'an integer' : 'a number'} from ${range}`);
      if (integer && !Number.isInteger(n)) bad(`an integer from ${range}`);
      out[p.id] = n;
    } else if (p.kind === 'choice') {
      const values = (p.choices ?? []).map((c) => c.value);
      if (typeof v !== 'string' || !values.includes(v)) bad(`one of ${values.join(', ')}`);
      out[p.id] = v as string;
    } else {
      if (typeof v !== 'boolean') bad('true or false');
      out[p.id] = v as boolean;
    }
  }
  return out;
}

/** The batch size of `options` (0 or absent: undefined, the default). */
export function batchOption(label: string, options: Record<string, unknown> | undefined): number | undefined {
  const b = readParams(label, [BATCH_PARAM], options).batchSize as number;
  return b > 0 ? b : undefined;
}

/** Per-pixel channel sums of [1, H, W, C] and their min and max. */
async function channelSums(g: tf.Tensor4D): Promise<{ sums: Float32Array; min: number; max: number }> {
  const t = tf.sum(g, 3);
  const sums = (await t.data()) as Float32Array;
  t.dispose();
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < sums.length; i++) {
    if (!Number.isFinite(sums[i])) sums[i] = 0;
    if (sums[i] < min) min = sums[i];
    if (sums[i] > max) max = sums[i];
  }
  return { sums, min, max };
}

/** The signed map of an attribution [1, H, W, C] (module comment); the caller keeps `g`. */
export async function signedMap(g: tf.Tensor4D, details?: MapDetails): Promise<MapResult> {
  const [, height, width] = g.shape;
  const { sums, min, max } = await channelSums(g);
  const scale = Math.max(Math.abs(min), Math.abs(max));
  const values = new Float32Array(sums.length);
  if (scale > 0) for (let i = 0; i < sums.length; i++) values[i] = sums[i] / scale;
  return { width, height, values, rawMin: min, rawMax: max, signed: true, ...(details ? { details } : {}) };
}

/** The magnitude map of a gradient [1, H, W, C] (module comment); the caller keeps `g`. */
export async function magnitudeMap(g: tf.Tensor4D, details?: MapDetails): Promise<MapResult> {
  const [, height, width] = g.shape;
  const t = tf.tidy(() => tf.max(tf.abs(g), 3));
  const mag = (await t.data()) as Float32Array;
  t.dispose();
  let min = Infinity;
  let max = 0;
  for (let i = 0; i < mag.length; i++) {
    if (!Number.isFinite(mag[i])) mag[i] = 0;
    if (mag[i] < min) min = mag[i];
    if (mag[i] > max) max = mag[i];
  }
  const values = new Float32Array(mag.length);
  if (max > 0) for (let i = 0; i < mag.length; i++) values[i] = mag[i] / max;
  return { width, height, values, rawMin: min, rawMax: max, ...(details ? { details } : {}) };
}

/** The RGB rendering of a gradient [1, H, W, C] in RGB order (module comment), H * W * 3 values in [0, 1]. */
export async function rgbImage(g: tf.Tensor4D, model: LoadedModel): Promise<Float32Array> {
  const [, height, width, c] = g.shape;
  const data = (await g.data()) as Float32Array;
  let sum = 0;
  let n = 0;
  for (const v of data) if (Number.isFinite(v)) { sum += v; n++; }
  const mean = n ? sum / n : 0;
  let sq = 0;
  for (const v of data) if (Number.isFinite(v)) sq += (v - mean) * (v - mean);
  const std = n ? Math.sqrt(sq / n) : 0;
  const px = height * width;
  const out = new Float32Array(px * 3);
  const bgr = model.metadata.preprocess === 'caffe' && c === 3;
  const put = (v: number): number => (Number.isFinite(v) ? Math.min(1, Math.max(0, 0.5 + (0.1 * (v - mean)) / (std + 1e-5))) : 0.5);
  for (let p = 0; p < px; p++) {
    for (let k = 0; k < 3; k++) {
      const src = c === 1 ? 0 : c === 3 ? (bgr ? 2 - k : k) : Math.min(k, c - 1);
      out[3 * p + k] = put(data[p * c + src]);
    }
  }
  return out;
}

/** Guided backpropagation's map for `render`: the magnitude, with the RGB image for 'rgb'. */
export async function renderedMap(g: tf.Tensor4D, model: LoadedModel, render: string, details?: MapDetails): Promise<MapResult> {
  const map = await magnitudeMap(g, details);
  return render === 'rgb' ? { ...map, rgb: await rgbImage(g, model) } : map;
}

/** A check every method makes of its input: [1, H, W, C]. */
export function checkInput(label: string, input: tf.Tensor4D): void {
  if (input.rank !== 4 || input.shape[0] !== 1) {
    throw new CamLensError('BAD_ARGUMENT', `${label} needs one preprocessed input [1, height, width, channels], got [${input.shape.join(', ')}]`);
  }
}
