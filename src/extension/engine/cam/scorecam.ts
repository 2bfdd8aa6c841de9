/**
 * Score-CAM — Wang et al. 2020, "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
 * Networks", CVPR Workshops, https://arxiv.org/abs/1910.01279
 *
 * Gradient-free: each channel of the target layer is used as a mask on the input, and its weight is how
 * much of the class the masked input alone still carries.
 *
 *   M_k = (U_k - min U_k) / (max U_k - min U_k),   U_k = Up(A^k)    channel k upsampled bilinearly to the
 *                                                                    input size, min-max normalised to [0,1]
 *   w_k = softmax( f(X ∘ M_k) )_c                                    class probability on the masked input
 *   L   = ReLU( sum_k w_k A^k )                                      at the target layer's resolution
 *
 * Conventions, as the authors' code (haofanwang/Score-CAM) and tf-keras-vis:
 * - Masking multiplies the *preprocessed* input X (the tensor the model takes), as the authors' code and
 *   pytorch-grad-cam do, not the 0..255 pixels. So a zero mask is 0 in model space: mid-grey for '[-1,1]',
 *   black for '[0,1]', the ImageNet mean colour for 'caffe'/'imagenet'. The paper's baseline term f(X_b) is
 *   dropped, as in every reference implementation.
 * - Upsampling uses half-pixel centres (PyTorch's interpolate(align_corners=False) in the authors' code, and
 *   our own display upsampling).
 * - A channel whose map is constant (a dead ReLU channel, typically) gives no mask: it is skipped with weight 0
 *   and costs no forward pass (the authors' code skips it too; pytorch-grad-cam divides by max-min+1e-8 and
 *   feeds an all-zero mask instead). Upsampling cannot make a non-constant map constant or vice versa, so the
 *   test is made on the layer's own values.
 * - pytorch-grad-cam differs in one more place: it takes the class *logit* of each masked input and applies a
 *   softmax across the channels (w = softmax_k(z_c(X ∘ M_k))). Option `weighting: 'channel-softmax'`
 *   reproduces that; the default `'probability'` is the paper's weight.
 *
 * Options: `batchSize` (at most this many masked inputs per forward pass, default 8; with a pool, smaller
 * where that gives every thread two batches, see batchPlan); `channels` N (default 32; 0 or 'all' for every
 * channel; `topChannels` is its older name): only the N channels ranked highest by `rankChannelsBy` are scored,
 * the others get weight 0 ("Faster Score-CAM" of tf-keras-vis, which ranks by spatial standard deviation,
 * `'std'`; the default `'mean'` ranks by mean activation); `weighting` (above).
 *
 * Why a budget by default: the full method costs a forward pass per channel, 2,048 on an Inception-v3 layer
 * (minutes on two cores). With 32 channels it costs what 32 forward passes do on any model, and the map stays
 * close to the full one where a few channels carry the map (r 0.98 on MobileNet and the demo model); the
 * channels that weigh most in sum_k w_k A^k are the ones with large activations whatever their w_k, hence the
 * mean. The map's `details` say which channels were scored ("top 32 of 256 channels by mean activation") and
 * estimate the time of the full method from this run's rate.
 *
 * Cost: one forward pass per scored channel (at most the budget, never a constant one), in batches, spread over the context's worker pool when
 * there is one. Progress is reported per batch; the AbortSignal is checked before each batch is taken, so a
 * cancellation stops within one batch per thread.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import { bilinearWeights, sourceCoord } from '../../../shared/heatmap';
import { runInThread, type ScoreRequest, type ScoreTask } from '../scorePool';
import { scaleChannels, weightedChannelSum, type BatchScores, type CamContext, type CamMethod, type MethodParam } from './base';

/**
 * How the channels to score are chosen when not all of them are: the N largest by
 * - 'mean': mean activation over the map (the channels that weigh most in sum_k w_k A^k whatever their w_k);
 * - 'std': spatial standard deviation (tf-keras-vis's "Faster Score-CAM").
 * bench/scorecam.ts --agreement measures each against the full method.
 */
export type ChannelCriterion = 'mean' | 'std';
export const CHANNEL_CRITERIA: readonly ChannelCriterion[] = ['mean', 'std'];
const CRITERION_WORDS: Record<ChannelCriterion, string> = { mean: 'mean activation', std: 'spatial std' };

export interface ScoreCamOptions {
  batchSize: number;
  /** At most this many channels are scored, the best by `rankChannelsBy`; Infinity: every non-constant channel. */
  channels: number;
  rankChannelsBy: ChannelCriterion;
  weighting: 'probability' | 'channel-softmax';
}

/**
 * Default channel budget: 32 masked passes (one batch-1 forward pass each at most) whatever the layer's width,
 * so that a 2,048-channel Inception layer costs what a 256-channel MobileNet one does. Over the bench models
 * the 32 channels of largest mean activation give a map within r = 0.98 of the full method on average
 * (bench/scorecam.ts --agreement; README "Speed").
 */
export const SCORECAM_DEFAULT_CHANNELS = 32;
export const SCORECAM_DEFAULT_CRITERION: ChannelCriterion = 'mean';

/**
 * Default batch: 8. A masked input costs the same at batch 8 as at 16 or 32 on wasm (bench/scorecam.ts,
 * one thread), and over the pool 8 finished 2-4% sooner than 16 (less time with one thread done and the other
 * still in its last batch); progress and cancellation come twice as often.
 */
export const SCORECAM_DEFAULT_BATCH = 8;

/**
 * One masked pass in one thread costs 0.97-0.99 of a batch-1 forward pass (docs/scorecam-speed.md: 0.93 for
 * the network at batch 8, the mask the rest): the factor of `estimateScoreCamMs`.
 */
export const MASKED_PASS_COST = 0.98;

/** Smallest max-min range divided by in the mask normalisation; constant channels never get here. */
const MIN_RANGE = 1e-12;

function intOption(o: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new CamLensError('BAD_ARGUMENT', `Score-CAM option ${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function enumOption<T extends string>(o: Record<string, unknown>, name: string, allowed: readonly T[], def: T): T {
  const v = o[name];
  if (v === undefined || v === null) return def;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new CamLensError('BAD_ARGUMENT', `Score-CAM option ${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

const MAX_CHANNELS = 1 << 20;

/**
 * The channel budget from `channels` (an integer, 0 or 'all' for every channel; default
 * SCORECAM_DEFAULT_CHANNELS) or its older name `topChannels` (an integer; given alone it wins over the default).
 */
function channelBudget(o: Record<string, unknown>): number {
  const c = o.channels;
  const top = intOption(o, 'topChannels', 1, MAX_CHANNELS);
  if (c === undefined || c === null) return top ?? SCORECAM_DEFAULT_CHANNELS;
  let n: number;
  if (c === 'all' || c === 0) n = Infinity;
  else {
    const v = intOption(o, 'channels', 0, MAX_CHANNELS);
    if (v === undefined) throw new CamLensError('BAD_ARGUMENT', `Score-CAM option channels must be an integer or "all", got ${JSON.stringify(c)}`);
    n = v;
  }
  if (top !== undefined && top !== n) {
    throw new CamLensError('BAD_ARGUMENT', `Score-CAM options channels (${JSON.stringify(c)}) and topChannels (${top}) disagree: topChannels is the older name of channels, give one`);
  }
  return n;
}

export function scoreCamOptions(o: Record<string, unknown> = {}): ScoreCamOptions {
  if (typeof o.channels === 'string' && o.channels !== 'all') {
    throw new CamLensError('BAD_ARGUMENT', `Score-CAM option channels must be an integer or "all", got ${JSON.stringify(o.channels)}`);
  }
  return {
    batchSize: intOption(o, 'batchSize', 1, 1024) ?? SCORECAM_DEFAULT_BATCH,
    channels: channelBudget(o),
    rankChannelsBy: enumOption(o, 'rankChannelsBy', CHANNEL_CRITERIA, SCORECAM_DEFAULT_CRITERION),
    weighting: enumOption(o, 'weighting', ['probability', 'channel-softmax'] as const, 'probability'),
  };
}

export interface ChannelStats {
  min: Float64Array;
  max: Float64Array;
  mean: Float64Array;
  std: Float64Array;
  /** Channels whose values are all finite and not all equal. */
  usable: boolean[];
}

/** Per-channel statistics of a channels-last activation with `positions` = h*w rows of K values. */
export function channelStats(a: ArrayLike<number>, positions: number, k: number): ChannelStats {
  const min = new Float64Array(k).fill(Infinity);
  const max = new Float64Array(k).fill(-Infinity);
  const sum = new Float64Array(k);
  const sq = new Float64Array(k);
  const finite = new Array<boolean>(k).fill(true);
  for (let p = 0; p < positions; p++) {
    const row = p * k;
    for (let c = 0; c < k; c++) {
      const v = a[row + c];
      if (!Number.isFinite(v)) {
        finite[c] = false;
        continue;
      }
      if (v < min[c]) min[c] = v;
      if (v > max[c]) max[c] = v;
      sum[c] += v;
      sq[c] += v * v;
    }
  }
  const mean = new Float64Array(k);
  const std = new Float64Array(k);
  const usable: boolean[] = [];
  for (let c = 0; c < k; c++) {
    mean[c] = sum[c] / positions;
    std[c] = Math.sqrt(Math.max(0, sq[c] / positions - mean[c] * mean[c]));
    // Constant up to rounding: bilinear upsampling of a constant map moves it by an ulp at most.
    const range = max[c] - min[c];
    usable.push(finite[c] && range > 1e-6 * Math.max(Math.abs(max[c]), Math.abs(min[c])));
  }
  return { min, max, mean, std, usable };
}

/**
 * The channels Score-CAM scores, in index order: the usable ones, or the `channels` (older name `topChannels`)
 * highest-ranked of them by `rankChannelsBy`. Without a budget, all usable ones.
 */
export function selectChannels(stats: ChannelStats, opts: { channels?: number; topChannels?: number; rankChannelsBy: ChannelCriterion }): number[] {
  const usable = stats.usable.flatMap((u, c) => (u ? [c] : []));
  const budget = opts.channels ?? opts.topChannels;
  if (budget === undefined || budget >= usable.length) return usable;
  const key = opts.rankChannelsBy === 'mean' ? stats.mean : stats.std;
  // Stable: ties keep the lower channel index.
  const ranked = [...usable].sort((x, y) => key[y] - key[x] || x - y);
  return ranked.slice(0, budget).sort((x, y) => x - y);
}

/** The words of a selection for captions: "top 32 of 256 channels by mean activation", "all 250 channels". */
export function selectionNote(scored: number, usable: number, total: number, by: ChannelCriterion | 'all'): string {
  if (by !== 'all') return `top ${scored} of ${total} channels by ${CRITERION_WORDS[by]}`;
  const constant = total - usable;
  return `all ${usable} channels` + (constant > 0 ? ` (${constant} constant skipped)` : '');
}

/**
 * Wall time of scoring `channels` masked inputs, estimated from one batch-1 forward pass of `forwardMs` on
 * `threads` threads (the pool's parallelism): each costs MASKED_PASS_COST of a forward pass in one thread, and
 * the threads share them.
 */
export function estimateScoreCamMs(channels: number, forwardMs: number, threads = 1): number {
  return (channels * forwardMs * MASKED_PASS_COST) / Math.max(1, threads);
}

/** What a Score-CAM with `options` would score at `activation` [1, h, w, K], without scoring anything. */
export async function planScoreCam(activation: tf.Tensor4D, options: Record<string, unknown> = {}): Promise<{ total: number; usable: number; scored: number; by: ChannelCriterion | 'all'; note: string }> {
  const opts = scoreCamOptions(options);
  const [, h, w, k] = activation.shape;
  const stats = channelStats((await activation.data()) as Float32Array, h * w, k);
  const usable = stats.usable.filter(Boolean).length;
  const scored = selectChannels(stats, opts).length;
  const by = scored < usable ? opts.rankChannelsBy : 'all';
  return { total: k, usable, scored, by, note: selectionNote(scored, usable, k, by) };
}

/** Channels `channels` of a channels-last activation [positions, K], as [positions, n]. */
export function pickChannels(a: ArrayLike<number>, positions: number, k: number, channels: readonly number[]): Float32Array {
  const n = channels.length;
  const out = new Float32Array(positions * n);
  for (let p = 0; p < positions; p++) for (let j = 0; j < n; j++) out[p * n + j] = a[p * k + channels[j]];
  return out;
}

/**
 * The source positions one axis of the half-pixel-centre bilinear resize that `maskedInputs` applies
 * (shared/heatmap's sourceCoord, as tf.image.resizeBilinear with halfPixelCenters) reads for output size `out`
 * from input size `size`, reduced to the ones that can hold an extreme: for each pair of neighbouring input
 * cells the smallest and the largest interpolation fraction used between them. Within such a pair the output
 * is linear in the fraction.
 */
export function extremeSamples(size: number, out: number): Array<[number, number, number]> {
  const groups = new Map<number, [number, number, number, number]>();
  for (let o = 0; o < out; o++) {
    const [lo, hi, frac] = sourceCoord(o, size, out);
    const key = lo * size + hi;
    const g = groups.get(key);
    if (!g) groups.set(key, [lo, hi, frac, frac]);
    else {
      g[2] = Math.min(g[2], frac);
      g[3] = Math.max(g[3], frac);
    }
  }
  const samples: Array<[number, number, number]> = [];
  for (const [lo, hi, f0, f1] of groups.values()) {
    samples.push([lo, hi, f0]);
    if (f1 !== f0) samples.push([lo, hi, f1]);
  }
  return samples;
}

/**
 * Min and max of each channel of `maps` [h, w, n] after upsampling to [H, W] with half-pixel centres, without
 * upsampling: a bilinear interpolant is linear along each axis between two input cells, so its extremes over
 * the output grid lie on the rows and columns `extremeSamples` keeps (about 2h x 2w of the H x W positions).
 */
export function upsampledRanges(maps: ArrayLike<number>, h: number, w: number, n: number, H: number, W: number): { lo: Float64Array; hi: Float64Array } {
  const rows = extremeSamples(h, H);
  const cols = extremeSamples(w, W);
  const lo = new Float64Array(n).fill(Infinity);
  const hi = new Float64Array(n).fill(-Infinity);
  for (const [r0, r1, fr] of rows) {
    for (const [c0, c1, fc] of cols) {
      const tl = (r0 * w + c0) * n;
      const tr = (r0 * w + c1) * n;
      const bl = (r1 * w + c0) * n;
      const br = (r1 * w + c1) * n;
      for (let j = 0; j < n; j++) {
        const top = maps[tl + j] + (maps[tr + j] - maps[tl + j]) * fc;
        const bottom = maps[bl + j] + (maps[br + j] - maps[bl + j]) * fc;
        const v = top + (bottom - top) * fr;
        if (v < lo[j]) lo[j] = v;
        if (v > hi[j]) hi[j] = v;
      }
    }
  }
  return { lo, hi };
}

/**
 * The masked inputs for n channel maps [h, w, n] (channels last, as a typed array): each map upsampled to the
 * input size (half-pixel centres), min-max normalised to [0, 1], times the preprocessed input [1, H, W, C].
 * Returns [n, H, W, C]; disposes nothing it was given. Used by the calling thread and by the workers alike.
 *
 * Cost matters: this runs once per Score-CAM batch. The normalisation is affine and bilinear weights sum to
 * one, so normalising the small maps (with the ranges the upsampled maps have, found by `upsampledRanges`)
 * and then upsampling gives the same masks as upsampling first. The upsampling is separable: the vertical
 * pass (n x H x w values, a few thousand) runs here, the horizontal one is a single matrix product with the
 * column weights, repeated over the input's C channels so that its output is already [n, H, W, C] and the
 * product with the input only broadcasts over the batch axis. On wasm (MobileNet, 16 masks of 224 x 224 x 3)
 * this takes 1.8 ms where tf.image.resizeBilinear plus the product took 2.9 ms: the resize kernel is scalar
 * code, the matrix product runs on XNNPACK. The weight matrix is made per call: it is small (w x W*C), so
 * XNNPACK's packing of it costs nothing measurable, and no tensor outlives the call.
 */
export function maskedInputs(input: tf.Tensor4D, maps: ArrayLike<number>, mapShape: readonly [number, number, number]): tf.Tensor4D {
  const [, H, W, C] = input.shape;
  const [h, w, n] = mapShape;
  if (maps.length !== h * w * n) throw new CamLensError('BAD_ARGUMENT', `Score-CAM maps have ${maps.length} values for shape [${mapShape.join(', ')}]`);
  const { lo, hi } = upsampledRanges(maps, h, w, n, H, W);
  const rowWeights = bilinearWeights(h, H);
  // Vertical pass on the normalised maps: rows[j, Y, x] = sum_i U[Y, i] * map_j[i, x].
  const rows = new Float32Array(n * H * w);
  const norm = new Float64Array(h * w);
  for (let j = 0; j < n; j++) {
    const scale = 1 / Math.max(hi[j] - lo[j], MIN_RANGE);
    for (let p = 0; p < h * w; p++) norm[p] = (maps[p * n + j] - lo[j]) * scale;
    for (let Y = 0; Y < H; Y++) {
      const o = (j * H + Y) * w;
      for (let i = 0; i < h; i++) {
        const u = rowWeights[Y * h + i];
        if (u === 0) continue;
        for (let x = 0; x < w; x++) rows[o + x] += u * norm[i * w + x];
      }
    }
  }
  // Horizontal weights with the channel repeat: cols[x, X*C + c] = V[X, x].
  const colWeights = bilinearWeights(w, W);
  const cols = new Float32Array(w * W * C);
  for (let x = 0; x < w; x++) {
    for (let X = 0; X < W; X++) {
      const v = colWeights[X * w + x];
      if (v !== 0) cols.fill(v, x * W * C + X * C, x * W * C + (X + 1) * C);
    }
  }
  return tf.tidy(() => {
    const up = tf.matMul(tf.tensor2d(rows, [n * H, w]), tf.tensor2d(cols, [w, W * C]));
    return tf.mul(input, tf.reshape(up, [n, H, W, C])) as tf.Tensor4D;
  });
}

/** The Score-CAM channel weights (0 for channels not scored) from the scores of the selected channels. */
export function channelWeights(k: number, channels: readonly number[], scores: BatchScores, weighting: ScoreCamOptions['weighting']): Float32Array {
  const w = new Float32Array(k);
  if (weighting === 'probability') {
    channels.forEach((c, j) => (w[c] = scores.probabilities[j]));
    return w;
  }
  let max = -Infinity;
  for (const z of scores.logits) if (z > max) max = z;
  let sum = 0;
  for (const z of scores.logits) sum += Math.exp(z - max);
  channels.forEach((c, j) => (w[c] = Math.exp(scores.logits[j] - max) / sum));
  return w;
}

/**
 * How `n` masked inputs are cut into batches, as [start, size] pairs: batches of `batchSize`, and over several
 * threads small enough that every thread gets at least two (32 channels on two threads: four batches of 8, not
 * one of 32 and an idle thread; with two each, a thread slowed down by other work hands its second one over).
 * All batches but the last have the same size: batches shrinking towards the end (guided self-scheduling)
 * measured slower than equal ones (the 32-channel Score-CAM on MobileNet in bench/scorecam.ts: 25-27x a forward
 * pass against 17x), although a change of batch size itself costs nothing measurable on wasm.
 */
export function batchPlan(n: number, batchSize: number, threads: number): Array<[number, number]> {
  const size = Math.max(1, threads > 1 ? Math.min(batchSize, Math.ceil(n / (2 * threads))) : batchSize);
  const plan: Array<[number, number]> = [];
  for (let i = 0; i < n; i += size) plan.push([i, Math.min(size, n - i)]);
  return plan;
}

/** Numbers the Score-CAM runs of this thread, so that a worker can tell one run's input from the next. */
let scoreCalls = 0;

/** The scores of the selected channels' masked inputs, batched over the pool's workers or this thread. */
export async function scoreChannels(ctx: CamContext, data: Float32Array, channels: number[], opts: ScoreCamOptions): Promise<BatchScores> {
  const input = ctx.input as tf.Tensor4D;
  const scoreBatch = ctx.scoreBatch as NonNullable<CamContext['scoreBatch']>;
  const [, h, w, k] = ctx.activation.shape;
  const inputShape = input.shape as [number, number, number, number];
  let inputData: Float32Array | undefined;
  const inputKey = ++scoreCalls;
  const threads = ctx.scorePool?.parallelism ?? 1;
  const tasks: ScoreTask[] = [];
  for (const [i, size] of batchPlan(channels.length, opts.batchSize, threads)) {
    const chs = channels.slice(i, i + size);
    const maps = () => pickChannels(data, h * w, k, chs);
    tasks.push({
      size: chs.length,
      async request(): Promise<ScoreRequest> {
        inputData ??= Float32Array.from(await input.data());
        return { kind: 'masks', outputIndex: ctx.classIndex, inputKey, input: inputData, inputShape, maps: maps(), mapShape: [h, w, chs.length] };
      },
      async local(): Promise<BatchScores> {
        const batch = maskedInputs(input, maps(), [h, w, chs.length]);
        try {
          return await scoreBatch(batch);
        } finally {
          batch.dispose();
        }
      },
    });
  }
  const total = channels.length;
  let done = 0;
  ctx.onProgress?.(0, total);
  const runOpts = {
    signal: ctx.signal,
    what: 'Score-CAM',
    onTaskDone: (i: number) => {
      done += tasks[i].size;
      ctx.onProgress?.(done, total);
    },
  };
  const results = ctx.scorePool ? await ctx.scorePool.run(tasks, runOpts) : await runInThread(tasks, runOpts);
  const probabilities = new Float32Array(total);
  const logits = new Float32Array(total);
  let o = 0;
  for (const r of results) {
    probabilities.set(r.probabilities, o);
    logits.set(r.logits, o);
    o += r.probabilities.length;
  }
  if (o !== total) throw new CamLensError('BAD_ARGUMENT', `Score-CAM got ${o} scores for ${total} masked inputs`);
  return { probabilities, logits };
}

/** The Score-CAM channel weights [K] (0 for the channels not scored); sets `ctx.details`. */
async function scoreCamWeights(ctx: CamContext): Promise<Float32Array> {
  if (!ctx.input || !ctx.scoreBatch) {
    throw new CamLensError('METHOD_NOT_APPLICABLE', 'Score-CAM needs the model input and a way to run the model on masked copies of it', 'explain through an image session');
  }
  const opts = scoreCamOptions(ctx.options);
  const [, h, w, k] = ctx.activation.shape;
  const data = (await ctx.activation.data()) as Float32Array;
  const stats = channelStats(data, h * w, k);
  const usable = stats.usable.filter(Boolean).length;
  const channels = selectChannels(stats, opts);
  const t0 = performance.now();
  const scores = channels.length > 0 ? await scoreChannels(ctx, data, channels, opts) : { probabilities: new Float32Array(0), logits: new Float32Array(0) };
  const ms = performance.now() - t0;
  const by = channels.length < usable ? opts.rankChannelsBy : 'all';
  ctx.details = {
    note: selectionNote(channels.length, usable, k, by),
    channels: { scored: channels.length, usable, total: k, by, ms, allMs: channels.length > 0 ? (ms / channels.length) * usable : 0 },
  };
  return channelWeights(k, channels, scores, opts.weighting);
}

/** The channel budget and batching options as panel parameters (shared with Ablation-CAM, which batches alike). */
export const CHANNEL_BUDGET_PARAMS: MethodParam[] = [
  {
    id: 'channels', label: 'Channels scored', kind: 'number', default: SCORECAM_DEFAULT_CHANNELS, min: 0, max: MAX_CHANNELS, step: 1,
    description: `At most this many channels are scored (one forward pass each), the highest-ranked; the others get weight 0. 0: every channel. Default ${SCORECAM_DEFAULT_CHANNELS}`,
  },
  {
    id: 'rankChannelsBy', label: 'Rank channels by', kind: 'choice', default: SCORECAM_DEFAULT_CRITERION,
    choices: [{ value: 'mean', label: 'mean activation' }, { value: 'std', label: 'spatial std (Faster Score-CAM)' }],
    description: 'How the channels within the budget are chosen: largest mean activation, or largest spatial standard deviation',
  },
  {
    id: 'batchSize', label: 'Batch size', kind: 'number', default: SCORECAM_DEFAULT_BATCH, min: 1, max: 1024, step: 1,
    description: 'At most this many copies per forward pass',
  },
];

export const scorecam: CamMethod = {
  id: 'scorecam',
  label: 'Score-CAM',
  group: 'cam',
  params: [
    ...CHANNEL_BUDGET_PARAMS,
    {
      id: 'weighting', label: 'Weighting', kind: 'choice', default: 'probability',
      choices: [{ value: 'probability', label: 'class probability (paper)' }, { value: 'channel-softmax', label: 'softmax of logits across channels (pytorch-grad-cam)' }],
      description: "A channel's weight: the class probability of its masked input (the paper), or pytorch-grad-cam's softmax of the class logits across channels",
    },
  ],
  paper: 'Wang et al. 2020',
  needsGradients: false,
  isAsync: true,
  async compute(ctx: CamContext): Promise<tf.Tensor2D> {
    const weights = await scoreCamWeights(ctx);
    return tf.tidy(() => weightedChannelSum(ctx.activation, tf.tensor1d(weights)));
  },
  async weightedActivations(ctx: CamContext): Promise<tf.Tensor4D> {
    const weights = await scoreCamWeights(ctx);
    return tf.tidy(() => scaleChannels(ctx.activation, tf.tensor1d(weights)));
  },
};
