/**
 * The shared base of the CAM methods (pytorch-grad-cam and torchcam are organised the same way): a method
 * only says how to turn the target layer's activations A (and, if it needs them, the gradients dY_c/dA of
 * the class logit) into a 2-D map; validation, the final ReLU and the min-max normalisation live here.
 *
 * Shapes: A and dY/dA are [1, h, w, K] (batch 1, channels last). A method returns the raw map [h, w].
 * Convention (as the reference implementations): map = ReLU(raw), then (map - min) / (max - min + eps).
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import type { ScorePool } from '../scorePool';
import type { MapDetails, MethodParam, OptionValue } from '../../../shared/protocol';

export type { MapDetails, MethodParam, OptionValue };

/**
 * The options every 'cam' method takes (pytorch-grad-cam's aug_smooth and eigen_smooth), applied around the
 * method by the session (engine/cam/smoothing.ts); the panel shows them once for all CAM methods (`common`).
 */
export const CAM_OPTIONS: readonly MethodParam[] = [
  {
    id: 'augSmooth', label: 'Augmentation smoothing', kind: 'boolean', default: false, common: true,
    description: 'Average the maps of 6 copies of the image (unflipped and horizontally flipped, scaled 1.0, 1.1, 1.2), each mapped back to the image: fewer edge artefacts, 6 times the cost (pytorch-grad-cam aug_smooth)',
  },
  {
    id: 'eigenSmooth', label: 'Eigen smoothing', kind: 'boolean', default: false, common: true,
    description: 'The first principal component of the weighted activations instead of their sum: less noise (pytorch-grad-cam eigen_smooth; for methods that sum weight x activation)',
  },
];

export const NORMALIZE_EPS = 1e-7;

export interface LinearHead {
  /** 'dense': class score = sum_k W[k, c] * GAP(A)_k + b_c.  'identity': the target's channel c is the class map. */
  kind: 'dense' | 'identity';
  /** [K, C] for 'dense'. Owned by the head's creator. */
  weights?: tf.Tensor2D;
}

/** Per-input scores of one class for a batch of inputs. */
export interface BatchScores {
  /** The class probability as the model reports it: softmax over the outputs (sigmoid for a sigmoid head). */
  probabilities: Float32Array;
  /** The class logit (the input of the final softmax/sigmoid). */
  logits: Float32Array;
}

export interface CamContext {
  /** Activations of the target layer, [1, h, w, K]. Owned by the caller; must not be disposed or mutated. */
  activation: tf.Tensor4D;
  /** Model output index of the class explained (offset applied). */
  classIndex: number;
  /** Gradients of the class logit w.r.t. `activation`, [1, h, w, K]; only for methods with needsGradients. */
  gradients?: tf.Tensor4D;
  /** The GAP-then-linear head after the target layer (CAM only); throws METHOD_NOT_APPLICABLE where absent. */
  linearHead?: () => LinearHead;
  /**
   * Scores of the class explained for a batch of inputs [n, H, W, C] (Score-CAM): its probability as the model
   * reports it (softmax, or sigmoid for a sigmoid head) and its logit, one per input. The caller keeps
   * ownership of `inputs`. Not every context provides it.
   */
  scoreBatch?: (inputs: tf.Tensor4D) => Promise<BatchScores>;
  /**
   * Scores of the class explained when the target layer's activation is replaced by each of a batch of
   * activations [n, h, w, K] and the layers after it are run (Ablation-CAM); one per row, as `scoreBatch`.
   * The caller keeps ownership of `activations`. Not every context provides it.
   */
  scoreActivations?: (activations: tf.Tensor4D) => Promise<BatchScores>;
  /** The preprocessed model input [1, H, W, C] (Score-CAM masks it). Owned by the caller. */
  input?: tf.Tensor4D;
  /**
   * Worker threads that each hold their own copy of the model, for Score-CAM's masked passes. Absent (or unable
   * to start) means in-thread batches through `scoreBatch`.
   */
  scorePool?: ScorePool;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Method options (batch size, channel budget…). */
  options?: Record<string, unknown>;
  /** Set by the method: what the map was made from (Score-CAM's scored channels); `runMethod` returns it with the map. */
  details?: MapDetails;
}

export interface CamMethod {
  id: string;
  label: string;
  /**
   * 'cam': a class activation map at the target layer's resolution (CAM_OPTIONS apply); 'pixel': pixel-level
   * saliency at the model input's resolution.
   */
  group: 'cam' | 'pixel';
  /** The method reads a target layer (every 'cam' method, Guided Grad-CAM among the pixel ones). Absent: true. */
  usesLayer?: boolean;
  /** The method's own options, for the panel's Options area and --help (CAM_OPTIONS are not repeated here). */
  params?: MethodParam[];
  needsGradients: boolean;
  /** The map does not depend on the class explained (Eigen-CAM): the panels caption it so. */
  classIndependent?: boolean;
  /** Short description with the paper, for pickers and --help. */
  paper: string;
  /** True for methods whose compute returns a Promise (they manage their own tensors). */
  isAsync?: boolean;
  /** The raw (pre-ReLU) map [h, w]. Synchronous methods are called inside tf.tidy by `runMethod`. */
  compute(ctx: CamContext): tf.Tensor2D | Promise<tf.Tensor2D>;
  /**
   * The weighted activations [1, h, w, K] whose sum over the channels is the raw map (w_k A^k, or an element-wise
   * product such as dY/dA * A): the `eigenSmooth` option takes their first principal component instead of the
   * sum (cam/smoothing.ts). Absent: eigenSmooth does not apply (Eigen-CAM's map already is one). Synchronous
   * ones run inside tf.tidy; an async one returns a tensor the caller disposes (as its `compute`).
   */
  weightedActivations?(ctx: CamContext): tf.Tensor4D | Promise<tf.Tensor4D>;
}

export interface MapResult {
  width: number;
  height: number;
  /** Row-major, in [0, 1]. */
  values: Float32Array;
  /** Min and max of the map after the ReLU and before normalisation. */
  rawMin: number;
  rawMax: number;
  /** What the method reports about the map (CamContext.details), for captions and the JSON. */
  details?: MapDetails;
  /**
   * Pixel saliency with a sign (gradients, SmoothGrad, Integrated Gradients; engine/saliency): `values` are in
   * [-1, 1], divided by the largest |value|, 0 meaning no attribution. Absent: `values` are in [0, 1].
   */
  signed?: boolean;
  /** Guided backpropagation's RGB rendering: width * height * 3 values in [0, 1] (`values` then holds its magnitude). */
  rgb?: Float32Array;
}

/** sum_k w_k * A[:, :, k] for per-channel weights w [K]: the step every weight-based method shares. */
export function weightedChannelSum(activation: tf.Tensor4D, weights: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => {
    const [, h, w, k] = activation.shape;
    const flat = tf.reshape(activation, [h * w, k]);
    return tf.reshape(tf.matMul(flat, tf.reshape(weights, [k, 1])), [h, w]) as tf.Tensor2D;
  });
}

/** w_k * A[:, :, :, k] for per-channel weights w [K]: the terms `weightedChannelSum` adds up, [1, h, w, K]. */
export function scaleChannels(activation: tf.Tensor4D, weights: tf.Tensor1D): tf.Tensor4D {
  return tf.tidy(() => tf.mul(activation, tf.reshape(weights, [1, 1, 1, -1])) as tf.Tensor4D);
}

/** Spatial mean / sum over h, w of a [1, h, w, K] tensor → [K]. */
export function spatialMean(t: tf.Tensor4D): tf.Tensor1D {
  return tf.tidy(() => tf.reshape(tf.mean(t, [0, 1, 2]), [t.shape[3]]) as tf.Tensor1D);
}

export function spatialSum(t: tf.Tensor4D): tf.Tensor1D {
  return tf.tidy(() => tf.reshape(tf.sum(t, [0, 1, 2]), [t.shape[3]]) as tf.Tensor1D);
}

export function validateContext(method: CamMethod, ctx: CamContext): void {
  const a = ctx.activation;
  if (a.rank !== 4 || a.shape[0] !== 1) {
    throw new CamLensError('LAYER_NOT_SPATIAL', `${method.label} needs a [1, height, width, channels] activation, got [${a.shape.join(', ')}]`,
      'pick a convolutional layer');
  }
  if (method.needsGradients) {
    const g = ctx.gradients;
    if (!g) throw new CamLensError('METHOD_NOT_APPLICABLE', `${method.label} needs gradients, and none were computed`);
    if (g.shape.join() !== a.shape.join()) {
      throw new CamLensError('BAD_ARGUMENT', `gradient shape [${g.shape.join(', ')}] differs from activation shape [${a.shape.join(', ')}]`);
    }
  }
}

/** ReLU, then min-max normalisation; returns the map and the raw range. Disposes nothing it was given. */
export async function finalizeMap(raw: tf.Tensor2D): Promise<MapResult> {
  const [height, width] = raw.shape;
  const relu = tf.relu(raw);
  const data = (await relu.data()) as Float32Array;
  relu.dispose();
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = Number.isFinite(data[i]) ? data[i] : 0;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const values = new Float32Array(data.length);
  const range = max - min;
  for (let i = 0; i < data.length; i++) {
    const v = Number.isFinite(data[i]) ? data[i] : 0;
    values[i] = (v - min) / (range + NORMALIZE_EPS);
  }
  return { width, height, values, rawMin: min, rawMax: max };
}

/** Validates, computes and finalises a method's map; no tensor outlives the call. */
export async function runMethod(method: CamMethod, ctx: CamContext): Promise<MapResult> {
  validateContext(method, ctx);
  const raw = method.isAsync
    ? await (method.compute(ctx) as Promise<tf.Tensor2D>)
    : tf.tidy(() => method.compute(ctx) as tf.Tensor2D);
  try {
    if (raw.rank !== 2) throw new CamLensError('BAD_ARGUMENT', `${method.id} returned a map of rank ${raw.rank}`);
    const map = await finalizeMap(raw);
    return ctx.details ? { ...map, details: ctx.details } : map;
  } finally {
    raw.dispose();
  }
}
