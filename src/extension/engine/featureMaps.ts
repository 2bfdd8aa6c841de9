/**
 * Feature maps of one spatial layer for the model inspector: the activation A [1, h, w, K] of an image,
 * re-laid out channel-major so that the webview can draw channel k as one small grayscale tile, with
 * per-channel statistics and, for a chosen class c, each channel's Grad-CAM weight
 *
 *     alpha_k^c = (1 / (h*w)) * sum_ij dY_c / dA_ij^k        (Selvaraju et al. 2017, eq. 1)
 *
 * where Y_c is the class logit (the session differentiates the pre-softmax score, as Grad-CAM does).
 * Sorting the grid by alpha shows which channels Grad-CAM leans on for that class.
 *
 * Payload cap: a late layer of a large network has thousands of channels (ResNet-50: 2048 at 7x7) and an
 * early one large tiles (112x112x64). We send at most `maxChannels` channels (default 512) and at most
 * `maxValues` floats (default 4M = 16 MiB). When channels must be dropped, we keep those that matter most:
 * with a class, the largest |alpha_k| (the channels that move the class score); without one, the largest
 * mean activation. The kept channels are returned in ascending channel order with their original indices
 * (`channelIndex`), and `truncated`/`totalChannels` say that the grid is partial.
 *
 * The session owns the activation and gradient tensors (it caches them); nothing here outlives the call.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError, throwIfAborted } from './errors';
import { numClasses, resolveClass } from './model';
import type { ImageSession } from './session';

export const MAX_FEATURE_CHANNELS = 512;
export const MAX_FEATURE_VALUES = 4 * 1024 * 1024;

export interface FeatureMapsOptions {
  /** Spatial layer; default: the recommended target layer. */
  layer?: string;
  /** Class index (label index, not raw model output) whose per-channel Grad-CAM weights to include. */
  classIndex?: number;
  /** At most this many channels (default MAX_FEATURE_CHANNELS). */
  maxChannels?: number;
  /** At most this many floats in `values` (default MAX_FEATURE_VALUES). */
  maxValues?: number;
  signal?: AbortSignal;
}

export interface FeatureMaps {
  layer: string;
  width: number;
  height: number;
  /** Channels in this payload (<= totalChannels). */
  channels: number;
  /** Channels the layer has. */
  totalChannels: number;
  /** True when channels were left out by the cap. */
  truncated: boolean;
  /** How the kept channels were chosen when truncated. */
  selectedBy: 'all' | 'weight' | 'mean';
  /** Original channel index of each payload channel, ascending. */
  channelIndex: Int32Array;
  /** Channel-major: payload channel c occupies values[c*w*h .. (c+1)*w*h), row-major inside. */
  values: Float32Array;
  min: Float32Array;
  max: Float32Array;
  mean: Float32Array;
  /** alpha_k for `classIndex`, per payload channel. */
  weights?: Float32Array;
  classIndex?: number;
}

function checkLimit(name: string, v: number | undefined, def: number): number {
  if (v === undefined) return def;
  if (!Number.isInteger(v) || v < 1) throw new CamLensError('BAD_ARGUMENT', `${name} must be a positive integer, got ${v}`);
  return v;
}

/** The feature maps of `opts.layer` for the session's image (see the file comment). */
export async function computeFeatureMaps(session: ImageSession, opts: FeatureMapsOptions = {}): Promise<FeatureMaps> {
  const maxChannels = checkLimit('maxChannels', opts.maxChannels, MAX_FEATURE_CHANNELS);
  const maxValues = checkLimit('maxValues', opts.maxValues, MAX_FEATURE_VALUES);
  const op = session.targetOp(opts.layer);
  let outputIndex: number | undefined;
  if (opts.classIndex !== undefined) {
    if (!Number.isInteger(opts.classIndex)) {
      throw new CamLensError('UNKNOWN_CLASS', `class index ${opts.classIndex} is not an integer: the model has ${numClasses(session.model)} classes`);
    }
    outputIndex = resolveClass(session.model, opts.classIndex);
  }
  throwIfAborted(opts.signal, 'the feature maps');
  const act = session.activation(op.name);
  const [, h, w, k] = act.shape;
  const hw = h * w;

  let alphaAll: Float32Array | undefined;
  if (outputIndex !== undefined) {
    const grad = session.gradient(op.name, outputIndex);
    throwIfAborted(opts.signal, 'the feature maps');
    const alpha = tf.tidy(() => tf.reshape(tf.mean(grad, [0, 1, 2]), [k]));
    try {
      alphaAll = new Float32Array(await alpha.data());
    } finally {
      alpha.dispose();
    }
  }
  // Channels-last [h, w, k] as the backend keeps it; reading it once and transposing in JS avoids a
  // second full-size tensor on the backend.
  const hwc = (await act.data()) as Float32Array;

  const minAll = new Float32Array(k).fill(Infinity);
  const maxAll = new Float32Array(k).fill(-Infinity);
  const sumAll = new Float64Array(k);
  for (let p = 0; p < hw; p++) {
    const base = p * k;
    for (let c = 0; c < k; c++) {
      const v = hwc[base + c];
      if (v < minAll[c]) minAll[c] = v;
      if (v > maxAll[c]) maxAll[c] = v;
      sumAll[c] += v;
    }
  }

  const keep = Math.max(1, Math.min(k, maxChannels, Math.floor(maxValues / Math.max(1, hw))));
  let chosen: number[];
  let selectedBy: FeatureMaps['selectedBy'] = 'all';
  if (keep >= k) {
    chosen = Array.from({ length: k }, (_, c) => c);
  } else {
    const a = alphaAll;
    const score = a ? (c: number) => Math.abs(a[c]) : (c: number) => sumAll[c];
    selectedBy = a ? 'weight' : 'mean';
    chosen = Array.from({ length: k }, (_, c) => c)
      .sort((a, b) => score(b) - score(a) || a - b)
      .slice(0, keep)
      .sort((a, b) => a - b);
  }

  const n = chosen.length;
  const values = new Float32Array(n * hw);
  const min = new Float32Array(n);
  const max = new Float32Array(n);
  const mean = new Float32Array(n);
  const weights = alphaAll ? new Float32Array(n) : undefined;
  const channelIndex = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = chosen[i];
    channelIndex[i] = c;
    min[i] = minAll[c];
    max[i] = maxAll[c];
    mean[i] = sumAll[c] / hw;
    if (weights && alphaAll) weights[i] = alphaAll[c];
    const dst = i * hw;
    for (let p = 0; p < hw; p++) values[dst + p] = hwc[p * k + c];
  }

  const out: FeatureMaps = {
    layer: op.name,
    width: w,
    height: h,
    channels: n,
    totalChannels: k,
    truncated: n < k,
    selectedBy,
    channelIndex,
    values,
    min,
    max,
    mean,
  };
  if (weights && opts.classIndex !== undefined) {
    out.weights = weights;
    out.classIndex = opts.classIndex;
  }
  return out;
}
