/**
 * Ablation-CAM — Desai and Ramaswamy 2020, "Ablation-CAM: Visual Explanation for Deep Convolutional Network via
 * Gradient-free Localization", WACV 2020, https://openaccess.thecvf.com/content_WACV_2020/papers/Desai_Ablation-CAM_Visual_Explanation_for_Deep_Convolutional_Network_via_Gradient-free_Localization_WACV_2020_paper.pdf
 *
 * Gradient-free: a channel's weight is the relative drop of the class score when that channel of the target
 * layer is set to zero and the layers after it are run again.
 *
 *   y_c      class score (logit) of the image
 *   y_c^k    class score with A^k := 0 at the target layer (the layers before it are not run again)
 *   w_k      = (y_c - y_c^k) / |y_c|
 *   L        = ReLU( sum_k w_k A^k )                         at the target layer's resolution
 *
 * As pytorch-grad-cam's AblationCAM, the score is the class logit (its ClassifierOutputTarget on a PyTorch
 * classifier's raw outputs). It divides by y_c itself, which for a negative logit (a class the model does not
 * predict; the paper assumes a positive score) turns every drop into a gain and inverts the map, and which
 * makes the two classes of a binary classifier (logits -z and z) give the same map. We divide by |y_c|: the same
 * weights wherever y_c > 0, and a channel whose removal lowers the class's score always counts for it. Where
 * y_c is exactly 0 the drop is taken undivided (the normalised map is the same for any positive divisor) and
 * the details say so.
 *
 * Batched like Score-CAM (scorecam.ts): `batchSize` ablated copies of the activation per partial forward pass
 * (default 8), progress per batch, the AbortSignal checked before each batch. Channel budget as Score-CAM:
 * `channels` N (default 32; 0 or 'all' for every channel) scores only the N channels ranked highest by
 * `rankChannelsBy` ('mean' activation, default, or spatial 'std'); the others get weight 0, and the map's
 * details say which ("top 32 of 256 channels by mean activation"). pytorch-grad-cam's own budget
 * (ratio_channels_to_ablate) ranks channels by their overlap with the activations' first principal component;
 * the mean is cheaper and is what Score-CAM's budget uses. An all-zero channel costs nothing: zeroing it changes
 * nothing, its weight is 0 without a pass.
 *
 * Cost: one partial forward pass (the layers after the target) per scored channel, plus one for y_c, all in this
 * thread: Score-CAM's worker threads run whole models on inputs, not the layers after a given one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import { runInThread, type ScoreTask } from '../scorePool';
import { scaleChannels, weightedChannelSum, type BatchScores, type CamContext, type CamMethod } from './base';
import {
  CHANNEL_BUDGET_PARAMS, CHANNEL_CRITERIA, SCORECAM_DEFAULT_BATCH, SCORECAM_DEFAULT_CHANNELS, SCORECAM_DEFAULT_CRITERION,
  batchPlan, channelStats, selectChannels, selectionNote, type ChannelCriterion,
} from './scorecam';

export interface AblationCamOptions {
  batchSize: number;
  /** At most this many channels are ablated, the best by `rankChannelsBy`; Infinity: every channel not all zero. */
  channels: number;
  rankChannelsBy: ChannelCriterion;
}

const MAX_CHANNELS = 1 << 20;

function bad(name: string, what: string, v: unknown): CamLensError {
  return new CamLensError('BAD_ARGUMENT', `Ablation-CAM option ${name} must be ${what}, got ${JSON.stringify(v)}`);
}

export function ablationCamOptions(o: Record<string, unknown> = {}): AblationCamOptions {
  const b = o.batchSize ?? SCORECAM_DEFAULT_BATCH;
  if (typeof b !== 'number' || !Number.isInteger(b) || b < 1 || b > 1024) throw bad('batchSize', 'an integer from 1 to 1024', b);
  const c = o.channels ?? SCORECAM_DEFAULT_CHANNELS;
  let channels: number;
  if (c === 'all' || c === 0) channels = Infinity;
  else if (typeof c === 'number' && Number.isInteger(c) && c > 0 && c <= MAX_CHANNELS) channels = c;
  else throw bad('channels', `an integer from 0 to ${MAX_CHANNELS} or "all"`, c);
  const r = o.rankChannelsBy ?? SCORECAM_DEFAULT_CRITERION;
  if (typeof r !== 'string' || !(CHANNEL_CRITERIA as readonly string[]).includes(r)) throw bad('rankChannelsBy', `one of ${CHANNEL_CRITERIA.join(', ')}`, r);
  return { batchSize: b, channels, rankChannelsBy: r as ChannelCriterion };
}

/** [n, 1, 1, K] multipliers: row j is all ones but 0 at channel chs[j]. */
function ablationMasks(chs: readonly number[], k: number): tf.Tensor4D {
  const m = new Float32Array(chs.length * k).fill(1);
  chs.forEach((c, j) => (m[j * k + c] = 0));
  return tf.tensor4d(m, [chs.length, 1, 1, k]);
}

/** The class logits with each of `channels` zeroed in turn, batched, in `channels` order. */
async function ablatedScores(ctx: CamContext, channels: number[], opts: AblationCamOptions): Promise<Float32Array> {
  const score = ctx.scoreActivations as NonNullable<CamContext['scoreActivations']>;
  const k = ctx.activation.shape[3];
  const tasks: ScoreTask[] = batchPlan(channels.length, opts.batchSize, 1).map(([i, size]) => {
    const chs = channels.slice(i, i + size);
    return {
      size,
      request(): never {
        throw new CamLensError('BAD_ARGUMENT', 'Ablation-CAM batches run in the calling thread only');
      },
      async local(): Promise<BatchScores> {
        const batch = tf.tidy(() => {
          const masks = ablationMasks(chs, k);
          return tf.mul(ctx.activation, masks) as tf.Tensor4D;
        });
        try {
          return await score(batch);
        } finally {
          batch.dispose();
        }
      },
    };
  });
  const total = channels.length;
  let done = 0;
  ctx.onProgress?.(0, total);
  const results = await runInThread(tasks, {
    signal: ctx.signal,
    what: 'Ablation-CAM',
    onTaskDone: (i) => {
      done += tasks[i].size;
      ctx.onProgress?.(done, total);
    },
  });
  const out = new Float32Array(total);
  let o = 0;
  for (const r of results) {
    out.set(r.logits, o);
    o += r.logits.length;
  }
  if (o !== total) throw new CamLensError('BAD_ARGUMENT', `Ablation-CAM got ${o} scores for ${total} ablated copies`);
  return out;
}

/** The Ablation-CAM channel weights [K] (0 for the channels not ablated); sets `ctx.details`. */
export async function ablationCamWeights(ctx: CamContext): Promise<Float32Array> {
  if (!ctx.scoreActivations) {
    throw new CamLensError('METHOD_NOT_APPLICABLE', 'Ablation-CAM needs a way to run the layers after the target layer on changed activations', 'explain through an image session');
  }
  const opts = ablationCamOptions(ctx.options);
  const [, h, w, k] = ctx.activation.shape;
  const data = (await ctx.activation.data()) as Float32Array;
  const stats = channelStats(data, h * w, k);
  // Usable: finite, not all zero (a constant non-zero channel still matters when zeroed).
  const usableMask = new Array<boolean>(k).fill(true);
  const nonzero = new Array<boolean>(k).fill(false);
  for (let p = 0; p < h * w; p++) {
    for (let c = 0; c < k; c++) {
      const v = data[p * k + c];
      if (!Number.isFinite(v)) usableMask[c] = false;
      else if (v !== 0) nonzero[c] = true;
    }
  }
  for (let c = 0; c < k; c++) usableMask[c] &&= nonzero[c];
  const usable = usableMask.filter(Boolean).length;
  const channels = selectChannels({ ...stats, usable: usableMask }, opts);
  const t0 = performance.now();
  const base = await ctx.scoreActivations(ctx.activation);
  const y = base.logits[0];
  if (!Number.isFinite(y)) throw new CamLensError('BAD_ARGUMENT', `Ablation-CAM: the class score is ${y}, not a finite number`);
  const ablated = channels.length > 0 ? await ablatedScores(ctx, channels, opts) : new Float32Array(0);
  const ms = performance.now() - t0;
  const by = channels.length < usable ? opts.rankChannelsBy : 'all';
  const skipped = k - usable;
  let note = by === 'all' ? `all ${usable} channels` + (skipped > 0 ? ` (${skipped} all-zero skipped)` : '') : selectionNote(channels.length, usable, k, by);
  if (y === 0) note += '; class score 0: undivided score drops';
  ctx.details = {
    note,
    channels: { scored: channels.length, usable, total: k, by, ms, allMs: channels.length > 0 ? (ms / (channels.length + 1)) * (usable + 1) : 0 },
  };
  const weights = new Float32Array(k);
  const d = y === 0 ? 1 : Math.abs(y);
  channels.forEach((c, j) => (weights[c] = (y - ablated[j]) / d));
  return weights;
}

export const ablationcam: CamMethod = {
  id: 'ablationcam',
  label: 'Ablation-CAM',
  group: 'cam',
  params: CHANNEL_BUDGET_PARAMS.map((p) => (p.id === 'channels'
    ? { ...p, label: 'Channels ablated', description: `At most this many channels are ablated (one pass of the layers after the target each), the highest-ranked; the others get weight 0. 0: every channel. Default ${SCORECAM_DEFAULT_CHANNELS}` }
    : p)),
  paper: 'Desai and Ramaswamy 2020',
  needsGradients: false,
  isAsync: true,
  async compute(ctx: CamContext): Promise<tf.Tensor2D> {
    const weights = await ablationCamWeights(ctx);
    return tf.tidy(() => weightedChannelSum(ctx.activation, tf.tensor1d(weights)));
  },
  async weightedActivations(ctx: CamContext): Promise<tf.Tensor4D> {
    const weights = await ablationCamWeights(ctx);
    return tf.tidy(() => scaleChannels(ctx.activation, tf.tensor1d(weights)));
  },
};
