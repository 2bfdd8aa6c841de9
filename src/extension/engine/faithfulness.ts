/**
 * Faithfulness scores of a saliency map: does removing what the map points at hurt the class, and does the
 * map alone keep it? Each score is reported for the map and for a random map (seeded) as the chance baseline.
 *
 * Deletion and insertion — Petsiuk et al. 2018, "RISE: Randomized Input Sampling for Explanation of Black-box
 * Models", BMVC, https://arxiv.org/abs/1806.07421
 *   The map is upsampled to the input size (bilinear, half-pixel centres) and the P pixels are ranked by it,
 *   most salient first (ties: raster order). In `steps` equal steps (default 20) the top i/steps of the pixels
 *   are deleted — replaced by a blurred copy of the image — or, for insertion, restored into the blurred image.
 *   The class probability p_i is recorded at each of the steps + 1 points x_i = i/steps, and
 *     AUC = sum_i (p_i + p_{i+1}) / 2 * (1/steps)          (trapezoid rule over [0, 1])
 *   A faithful map has a low deletion AUC (the class falls fast) and a high insertion AUC.
 *   Baseline: the paper deletes to black and inserts into a blur; we use the blurred image for both (so both
 *   curves run between the same two images). The blur is RISE's: a Gaussian kernel of 11 taps and sigma 5 at
 *   224 pixels, scaled with the input size (separable, mirrored at the borders), applied to the preprocessed input.
 *
 * Average Drop and Increase in Confidence — Chattopadhyay et al. 2018, "Grad-CAM++", WACV,
 * https://arxiv.org/abs/1710.11063
 *   With Y_c the class probability on the image and O_c on the image multiplied by the explanation map as a
 *   soft mask (upsampled, values in [0, 1]; the preprocessed input is multiplied, as Score-CAM masks it):
 *     Average Drop  = 100 * max(0, Y_c - O_c) / Y_c      (%, lower is better; one image, so no average)
 *     Increase      = O_c > Y_c                           (the paper's percentage over a data set, per image)
 *
 * All inputs of one call are scored in batches (over a worker pool when given), with progress and
 * cancellation per batch; every tensor is disposed.
 */
import * as tf from '@tensorflow/tfjs-core';
import { upsampleBilinear } from '../../shared/heatmap';
import { CamLensError } from './errors';
import { runInThread, type ScorePool, type ScoreTask } from './scorePool';
import type { BatchScores } from './cam/base';

/** A map at any resolution, row-major; values are used as given (higher = more salient). */
export interface MapLike {
  width: number;
  height: number;
  values: ArrayLike<number>;
}

/** What the scores need from an image session. */
export interface Scorer {
  /** The preprocessed input [1, H, W, C]. */
  readonly input: tf.Tensor4D;
  scoreBatch(inputs: tf.Tensor4D, outputIndex: number): Promise<BatchScores>;
  /** The model file, to check that a worker pool runs the same model. */
  readonly model?: { path: string };
}

export interface FaithfulnessOptions {
  /** Deletion/insertion steps (default 20). */
  steps?: number;
  /** Inputs per forward pass (default 16). */
  batchSize?: number;
  /** Seed of the random baseline map (default 0). */
  seed?: number;
  /** Blur of the baseline image; default RISE's, scaled to the input size. */
  blur?: { kernel: number; sigma: number };
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  pool?: ScorePool;
}

export interface CurveScore {
  auc: number;
  /** Class probability at x = 0, 1/steps, …, 1. */
  curve: number[];
}

export interface MapScores {
  deletion: CurveScore;
  insertion: CurveScore;
  /** Percent. */
  averageDrop: number;
  increaseInConfidence: boolean;
  /** Y_c: class probability on the image. */
  originalScore: number;
  /** O_c: class probability on the image masked by the map. */
  maskedScore: number;
}

export interface FaithfulnessReport {
  outputIndex: number;
  steps: number;
  baseline: 'blur';
  blur: { kernel: number; sigma: number };
  seed: number;
  map: MapScores;
  random: MapScores;
}

export const DEFAULT_STEPS = 20;

/** RISE's blur (klen 11, sigma 5 at 224 px) scaled to an input of `size` pixels. */
export function defaultBlur(size: number): { kernel: number; sigma: number } {
  const s = size / 224;
  let kernel = Math.max(3, Math.round(11 * s));
  if (kernel % 2 === 0) kernel += 1;
  return { kernel, sigma: Math.max(0.5, 5 * s) };
}

/** Separable Gaussian blur of [1, H, W, C], mirrored at the borders. */
export function gaussianBlur(x: tf.Tensor4D, kernel: number, sigma: number): tf.Tensor4D {
  if (!Number.isInteger(kernel) || kernel < 1 || kernel % 2 === 0) throw new CamLensError('BAD_ARGUMENT', `blur kernel must be an odd positive integer, got ${kernel}`);
  if (!(sigma > 0)) throw new CamLensError('BAD_ARGUMENT', `blur sigma must be positive, got ${sigma}`);
  const [, H, W, C] = x.shape;
  const r = (kernel - 1) / 2;
  const taps: number[] = [];
  for (let i = -r; i <= r; i++) taps.push(Math.exp(-(i * i) / (2 * sigma * sigma)));
  const total = taps.reduce((a, b) => a + b, 0);
  const g = taps.map((t) => t / total);
  return tf.tidy(() => {
    // 'symmetric' mirroring allows a pad as large as the image; larger kernels are clipped to fit.
    const ry = Math.min(r, H);
    const rx = Math.min(r, W);
    const gy = g.slice(r - ry, r + ry + 1);
    const gx = g.slice(r - rx, r + rx + 1);
    const norm = (a: number[]) => a.map((v) => v / a.reduce((s, t) => s + t, 0));
    const fy = tf.tile(tf.reshape(tf.tensor1d(norm(gy)), [gy.length, 1, 1, 1]), [1, 1, C, 1]) as tf.Tensor4D;
    const fx = tf.tile(tf.reshape(tf.tensor1d(norm(gx)), [1, gx.length, 1, 1]), [1, 1, C, 1]) as tf.Tensor4D;
    const padded = tf.mirrorPad(x, [[0, 0], [ry, ry], [rx, rx], [0, 0]], 'symmetric');
    const v = tf.depthwiseConv2d(padded, fy, 1, 'valid');
    return tf.depthwiseConv2d(v, fx, 1, 'valid') as tf.Tensor4D;
  });
}

/** A seeded uniform [0, 1) map (mulberry32), the chance baseline. */
export function randomMap(width: number, height: number, seed: number): MapLike {
  let a = seed >>> 0;
  const values = new Float32Array(width * height);
  for (let i = 0; i < values.length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    values[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  return { width, height, values };
}

/** Trapezoid rule over equally spaced points on [0, 1]. */
export function trapezoidAuc(curve: readonly number[]): number {
  const n = curve.length - 1;
  if (n < 1) return curve[0] ?? 0;
  let s = 0;
  for (let i = 0; i < n; i++) s += (curve[i] + curve[i + 1]) / 2;
  return s / n;
}

/** Per pixel of an H x W input: its rank by the upsampled map, 0 = most salient (ties in raster order). */
export function pixelRanks(map: MapLike, outW: number, outH: number): Float32Array {
  const up = upsampleBilinear(map.values, map.width, map.height, outW, outH);
  const value = (i: number) => (Number.isFinite(up[i]) ? up[i] : -Infinity);
  const order = Array.from({ length: up.length }, (_, i) => i);
  order.sort((a, b) => value(b) - value(a) || a - b);
  const rank = new Float32Array(up.length);
  order.forEach((p, r) => (rank[p] = r));
  return rank;
}

/** The map upsampled to the input and min-max normalised to [0, 1]: the soft mask of Average Drop. */
function softMask(map: MapLike, outW: number, outH: number): Float32Array {
  const up = upsampleBilinear(map.values, map.width, map.height, outW, outH);
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of up) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const range = hi - lo;
  return up.map((v) => (Number.isFinite(v) && range > 0 ? (v - lo) / range : 0));
}

/** One perturbed input. */
type Spec =
  | { kind: 'original' }
  | { kind: 'blurred' }
  | { kind: 'delete' | 'insert'; map: number; count: number }
  | { kind: 'soft'; map: number };

interface Plan {
  specs: Spec[];
  steps: number;
  pixels: number;
}

function stepCounts(steps: number, pixels: number): number[] {
  return Array.from({ length: steps + 1 }, (_, i) => Math.round((i * pixels) / steps));
}

interface EvalRequest {
  deletion: boolean;
  insertion: boolean;
  soft: boolean;
}

/**
 * Scores every input the requests need — the image and its blur once, then per map the inner points of its
 * curves and its soft-masked image — and returns the probabilities per spec.
 */
async function evaluate(scorer: Scorer, maps: MapLike[], outputIndex: number, what: EvalRequest, opts: FaithfulnessOptions): Promise<{ plan: Plan; scores: Float32Array; blur: { kernel: number; sigma: number } }> {
  const steps = opts.steps ?? DEFAULT_STEPS;
  if (!Number.isInteger(steps) || steps < 1 || steps > 1000) throw new CamLensError('BAD_ARGUMENT', `steps must be an integer from 1 to 1000, got ${steps}`);
  const batchSize = opts.batchSize ?? 16;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new CamLensError('BAD_ARGUMENT', `batch size must be a positive integer, got ${batchSize}`);
  const input = scorer.input;
  const [, H, W, C] = input.shape;
  const pixels = H * W;
  const blur = opts.blur ?? defaultBlur(Math.min(H, W));
  const counts = stepCounts(steps, pixels);
  const specs: Spec[] = [{ kind: 'original' }, { kind: 'blurred' }];
  maps.forEach((_, m) => {
    for (let i = 1; i < steps; i++) {
      if (what.deletion) specs.push({ kind: 'delete', map: m, count: counts[i] });
      if (what.insertion) specs.push({ kind: 'insert', map: m, count: counts[i] });
    }
    if (what.soft) specs.push({ kind: 'soft', map: m });
  });

  const blurred = gaussianBlur(input, blur.kernel, blur.sigma);
  const ranks: tf.Tensor4D[] = [];
  const softs: tf.Tensor4D[] = [];
  try {
    for (const m of maps) {
      if (m.values.length !== m.width * m.height) throw new CamLensError('BAD_ARGUMENT', `a ${m.width}x${m.height} map needs ${m.width * m.height} values, got ${m.values.length}`);
      if (what.deletion || what.insertion) ranks.push(tf.tensor4d(pixelRanks(m, W, H), [1, H, W, 1]));
      if (what.soft) softs.push(tf.tensor4d(softMask(m, W, H), [1, H, W, 1]));
    }
    const one = (s: Spec): tf.Tensor4D => {
      switch (s.kind) {
        case 'original':
          return input;
        case 'blurred':
          return blurred;
        case 'soft':
          return tf.mul(input, softs[s.map]);
        case 'delete':
        case 'insert': {
          // The `count` most salient pixels come from the other image.
          const top = tf.cast(tf.less(ranks[s.map], s.count), 'float32');
          const [from, to] = s.kind === 'delete' ? [input, blurred] : [blurred, input];
          return tf.add(from, tf.mul(tf.sub(to, from), top));
        }
      }
    };
    const build = (batch: Spec[]): tf.Tensor4D => tf.tidy(() => (batch.length === 1 ? tf.clone(one(batch[0])) : tf.concat(batch.map(one), 0)));
    const tasks: ScoreTask[] = [];
    for (let i = 0; i < specs.length; i += batchSize) {
      const batch = specs.slice(i, i + batchSize);
      tasks.push({
        size: batch.length,
        async request() {
          const t = build(batch);
          try {
            return { kind: 'inputs', outputIndex, data: (await t.data()) as Float32Array, shape: [batch.length, H, W, C] };
          } finally {
            t.dispose();
          }
        },
        async local() {
          const t = build(batch);
          try {
            return await scorer.scoreBatch(t, outputIndex);
          } finally {
            t.dispose();
          }
        },
      });
    }
    let done = 0;
    opts.onProgress?.(0, specs.length);
    const runOpts = {
      signal: opts.signal,
      what: 'the faithfulness scores',
      onTaskDone: (i: number) => {
        done += tasks[i].size;
        opts.onProgress?.(done, specs.length);
      },
    };
    const usePool = opts.pool && scorer.model && opts.pool.serves(scorer.model.path);
    const results = usePool ? await (opts.pool as ScorePool).run(tasks, runOpts) : await runInThread(tasks, runOpts);
    const scores = new Float32Array(specs.length);
    let o = 0;
    for (const r of results) {
      scores.set(r.probabilities, o);
      o += r.probabilities.length;
    }
    return { plan: { specs, steps, pixels }, scores, blur };
  } finally {
    blurred.dispose();
    for (const t of ranks) t.dispose();
    for (const t of softs) t.dispose();
  }
}

function curveOf(plan: Plan, scores: Float32Array, kind: 'delete' | 'insert', map: number): CurveScore {
  const inner: number[] = [];
  plan.specs.forEach((s, i) => {
    if (s.kind === kind && s.map === map) inner.push(scores[i]);
  });
  const [original, blurred] = [scores[0], scores[1]];
  const curve = kind === 'delete' ? [original, ...inner, blurred] : [blurred, ...inner, original];
  return { auc: trapezoidAuc(curve), curve };
}

function mapScores(plan: Plan, scores: Float32Array, map: number): MapScores {
  const y = scores[0];
  const o = scores[plan.specs.findIndex((s) => s.kind === 'soft' && s.map === map)];
  return {
    deletion: curveOf(plan, scores, 'delete', map),
    insertion: curveOf(plan, scores, 'insert', map),
    averageDrop: y > 0 ? (100 * Math.max(0, y - o)) / y : 0,
    increaseInConfidence: o > y,
    originalScore: y,
    maskedScore: o,
  };
}

/** Deletion and insertion AUC, Average Drop and Increase in Confidence of a map and of a random map. */
export async function faithfulness(scorer: Scorer, map: MapLike, outputIndex: number, opts: FaithfulnessOptions = {}): Promise<FaithfulnessReport> {
  const seed = opts.seed ?? 0;
  const maps = [map, randomMap(map.width, map.height, seed)];
  const { plan, scores, blur } = await evaluate(scorer, maps, outputIndex, { deletion: true, insertion: true, soft: true }, opts);
  return { outputIndex, steps: plan.steps, baseline: 'blur', blur, seed, map: mapScores(plan, scores, 0), random: mapScores(plan, scores, 1) };
}

/** Deletion curves and AUCs of several maps on one image and class (the image and its blur are scored once). */
export async function deletionScores(scorer: Scorer, maps: MapLike[], outputIndex: number, opts: FaithfulnessOptions = {}): Promise<CurveScore[]> {
  const { plan, scores } = await evaluate(scorer, maps, outputIndex, { deletion: true, insertion: false, soft: false }, opts);
  return maps.map((_, m) => curveOf(plan, scores, 'delete', m));
}
