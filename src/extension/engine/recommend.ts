/**
 * A target-layer recommendation that is earned on the image at hand: each candidate layer's Grad-CAM map for
 * the class is scored by its deletion AUC (Petsiuk et al. 2018, see faithfulness.ts: delete the pixels the map
 * ranks highest, in 20 steps, into a blurred copy; the faster the class probability falls, the lower the
 * AUC and the more the map points at what the model really uses). Lowest AUC ranks first and is marked best.
 *
 * Candidates (`candidateLayers`): the spatial layers, without the near-duplicates, and by default only the
 * last 8 of them.
 * - Near-duplicates: a layer whose only consumer is a per-element or per-channel layer of the same shape
 *   (a convolution followed by its BatchNormalization, a BatchNormalization followed by its ReLU; in a GraphModel
 *   the Mul and Add of an unfused batch norm, a BiasAdd, a Relu6) gives the same
 *   map up to a per-channel affine change as the layer after it, so only the last of such a chain is a
 *   candidate, i.e. the block output ("conv_pw_13_relu" rather than "conv_pw_13" and "conv_pw_13_bn"), which
 *   is where CAM users point pytorch-grad-cam. Shape-only layers (zero padding, cropping) are skipped too.
 * - The last 8: early layers have receptive fields of a few pixels, see edges rather than objects and cost
 *   the most to explain (largest maps); the last 8 block outputs reach back two or three resolution stages
 *   (in MobileNet v1 the 7x7 and 14x14 stages). `lastN: Infinity` ranks all of them.
 *
 * Cost: per candidate one forward pass to the layer plus one partial backward pass, then 19 passes per map
 * (the image and its blur are scored once for all), batched over the worker pool when one is given.
 * A layer where Grad-CAM cannot run is listed with the reason and not ranked.
 */
import { CamLensError, CancelledError, throwIfAborted, toErrorInfo } from './errors';
import { deletionScores, DEFAULT_STEPS, type MapLike } from './faithfulness';
import { describeModel, type LayerInfo } from './pipeline';
import type { ScorePool } from './scorePool';
import type { ImageSession, Prediction } from './session';

export const DEFAULT_CANDIDATES = 8;

/** Layers that change values element by element or channel by channel, never the spatial pattern. */
const PER_ELEMENT = new Set([
  // Keras layers
  'BatchNormalization', 'LayerNormalization', 'Activation', 'ReLU', 'LeakyReLU', 'PReLU', 'ELU', 'ThresholdedReLU', 'Softmax',
  'Dropout', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout', 'ActivityRegularization',
  // TensorFlow ops (GraphModels)
  'Relu', 'Relu6', 'Elu', 'Selu', 'LeakyRelu', 'Sigmoid', 'Tanh', 'BiasAdd', 'FusedBatchNorm', 'FusedBatchNormV3', 'Identity',
  // ONNX operators (BatchNormalization, Relu, Sigmoid, Tanh, Elu, Selu, LeakyRelu, Dropout, Identity as above)
  'Clip', 'PRelu', 'HardSigmoid', 'HardSwish', 'Gelu', 'Erf', 'Softplus', 'Mish',
]);
/**
 * TensorFlow ops that are per-element when their other operand is a constant (a GraphModel's unfused batch
 * norm: Conv2D → Mul → Add → Relu6). Constants are not values of the graph, so such an op has one inbound value;
 * with two (a residual sum, an attention product) it merges branches and is a candidate of its own.
 */
const PER_ELEMENT_WITH_CONSTANT = new Set(['Mul', 'Add', 'AddV2', 'Sub', 'RealDiv', 'Maximum', 'Minimum', 'Div']);
/** Layers that only move values: never a target of their own. */
const SHAPE_ONLY = new Set(['ZeroPadding2D', 'Cropping2D', 'Pad', 'PadV2', 'MirrorPad', 'InputLayer', 'Placeholder']);

const sameShape = (a: (number | null)[], b: (number | null)[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** The candidate layer names in topological order (see the file comment): the last `lastN` (default 8). */
export function candidatesOf(layers: readonly LayerInfo[], lastN = DEFAULT_CANDIDATES): string[] {
  const consumers = new Map<string, LayerInfo[]>();
  for (const l of layers) for (const src of l.inbound) consumers.set(src, [...(consumers.get(src) ?? []), l]);
  const out: string[] = [];
  for (const l of layers) {
    if (!l.spatial || SHAPE_ONLY.has(l.className)) continue;
    const next = consumers.get(l.name) ?? [];
    const perElement = (n: LayerInfo) => PER_ELEMENT.has(n.className) || (PER_ELEMENT_WITH_CONSTANT.has(n.className) && n.inbound.length === 1);
    if (next.length === 1 && perElement(next[0]) && next[0].spatial && sameShape(next[0].outputShape, l.outputShape)) continue;
    out.push(l.name);
  }
  if (!(lastN >= 1)) throw new CamLensError('BAD_ARGUMENT', `the number of candidate layers must be at least 1, got ${lastN}`);
  return Number.isFinite(lastN) ? out.slice(-lastN) : out;
}

export interface RecommendOptions {
  /** Class index or label; default: the top-1 class. */
  classChoice?: string | number;
  /** Candidate layer names (default: `candidatesOf(…, lastN)`). */
  layers?: string[];
  /** How many of the last candidate layers to rank (default 8; Infinity: all). */
  lastN?: number;
  /** The method whose maps are scored (default gradcam). */
  method?: string;
  steps?: number;
  batchSize?: number;
  pool?: ScorePool;
  signal?: AbortSignal;
  /** Progress over layer maps, then forward passes: (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface LayerScore {
  layer: string;
  outputShape: (number | null)[];
  /** Deletion AUC of the layer's map (lower is better); absent where the map could not be computed. */
  deletionAuc?: number;
  /** 1 = best; absent where not ranked. */
  rank?: number;
  best?: boolean;
  /** The map was all zero after the ReLU, so its pixel ranking is arbitrary. */
  emptyMap?: boolean;
  /** Why the method could not run at this layer. */
  error?: { code?: string; message: string };
}

export interface Recommendation {
  method: string;
  target: Prediction;
  steps: number;
  /** Ranked layers first (best first), then the layers that failed, in model order. */
  ranking: LayerScore[];
  best: string | null;
  /** The conventional choice: the last spatial layer before the global pooling. */
  conventional: string | null;
}

/** Ranks the candidate layers of the session's model for its image and a class by deletion AUC. */
export async function recommendLayer(session: ImageSession, opts: RecommendOptions = {}): Promise<Recommendation> {
  const method = opts.method ?? 'gradcam';
  const summary = describeModel(session.model);
  const layers = opts.layers ?? candidatesOf(summary.layers, opts.lastN ?? DEFAULT_CANDIDATES);
  const info = new Map(summary.layers.map((l) => [l.name, l]));
  const steps = opts.steps ?? DEFAULT_STEPS;
  const outputIndex = await session.resolveTarget(opts.classChoice);
  const target = await session.predictionFor(outputIndex);
  // Progress: one unit per layer map, then one per forward pass of the deletion curves.
  const passes = (ok: number) => 2 + ok * (steps - 1);
  let total = layers.length + passes(layers.length);
  opts.onProgress?.(0, total);

  const scored: { score: LayerScore; map: MapLike }[] = [];
  const failed: LayerScore[] = [];
  for (const [i, layer] of layers.entries()) {
    throwIfAborted(opts.signal, 'the layer recommendation');
    const score: LayerScore = { layer, outputShape: info.get(layer)?.outputShape ?? [] };
    try {
      const r = await session.explain({ method, layer, classChoice: outputIndex - session.model.metadata.labelOffset, signal: opts.signal });
      score.emptyMap = !(r.heatmap.rawMax > r.heatmap.rawMin);
      scored.push({ score, map: r.heatmap });
    } catch (e) {
      if (e instanceof CancelledError) throw e;
      const { code, message } = toErrorInfo(e);
      score.error = { code, message };
      failed.push(score);
    }
    opts.onProgress?.(i + 1, total);
  }
  total = layers.length + (scored.length ? passes(scored.length) : 0);
  if (scored.length > 0) {
    const curves = await deletionScores(session, scored.map((s) => s.map), outputIndex, {
      steps,
      batchSize: opts.batchSize,
      pool: opts.pool,
      signal: opts.signal,
      onProgress: (done) => opts.onProgress?.(layers.length + done, total),
    });
    curves.forEach((c, i) => (scored[i].score.deletionAuc = c.auc));
  }
  // Stable: equal AUCs keep model order.
  const ranked = scored.map((s) => s.score).sort((a, b) => (a.deletionAuc as number) - (b.deletionAuc as number));
  ranked.forEach((s, i) => {
    s.rank = i + 1;
    s.best = i === 0;
  });
  return {
    method,
    target,
    steps,
    ranking: [...ranked, ...failed],
    best: ranked[0]?.layer ?? null,
    conventional: summary.recommendedLayer,
  };
}
