/**
 * One image through one model, with everything expensive cached so that switching class, method or
 * layer is cheap: the logits (one forward pass), per target layer the activation A and the values the
 * downstream part of the network needs, and per (layer, class) the gradient dY_c/dA.
 *
 * Gradients: f(A) = logit_c re-runs only the ops downstream of the target layer, fed with A and the
 * cached values upstream ops produced ("frontier"), so branches and merges after the target are handled
 * and the gradient costs one partial forward plus one partial backward pass. On a new image the forward pass
 * stops at the target layer and that taped run gives the logits too: one forward pass in all, not a whole one
 * and then the part after the layer again (at MobileNet's first layer that was a second forward pass).
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError, throwIfAborted } from './errors';
import type { GraphOp } from './graph';
import { labelOf, numClasses, resolveClass, type LoadedModel } from './model';
import { findClassHead } from './head';
import { classLogitValues, classLogits } from './outputs';
import { forwardLogits } from './forward';
import { type BatchScores, type CamContext, type MapResult } from './cam/base';
import { getMethod } from './cam/registry';
import { runCamMethod } from './cam/smoothing';
import { explainCombined, needsCombining } from './cam/combine';
import type { ScorePool } from './scorePool';
import { isPixelMethod } from './saliency/pixelMethod';
import { explainPixels } from './saliency/explain';

export interface Prediction {
  /** Class index (label index; the model output is index + labelOffset). */
  index: number;
  label: string;
  probability: number;
}

export interface ExplainRequest {
  method: string;
  /** Target layer name; default: the recommended layer. */
  layer?: string;
  /**
   * Several target layers whose maps are brought to the input size and averaged (CAM methods, cam/combine.ts);
   * given, it replaces `layer`. One name is the same as `layer`.
   */
  layers?: string[];
  /** Class index or label; default: the top-1 class. */
  classChoice?: string | number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Method options, and the CAM_OPTIONS every CAM method takes (augSmooth, eigenSmooth: cam/smoothing.ts). */
  options?: Record<string, unknown>;
  /**
   * Worker threads for the masked passes of Score-CAM. Used only when it was made for this session's model
   * file; otherwise (or when it cannot start) the passes run in this thread.
   */
  pool?: ScorePool;
}

export interface ExplainResult {
  method: string;
  /** The target layer (the first of `layers` where there are several). */
  layer: string;
  /** The layers whose maps were averaged, where there were several; the map then has the input's size. */
  layers?: string[];
  target: Prediction;
  heatmap: MapResult;
  timingsMs: { forward: number; gradients: number; method: number; total: number };
  cached: { forward: boolean; gradients: boolean };
}

interface LayerEntry {
  activation: tf.Tensor4D;
  /** Upstream values the downstream ops consume (id → tensor). */
  frontier: Map<string, tf.Tensor>;
}

const MAX_CACHED_LAYERS = 4;
const MAX_CACHED_GRADIENTS = 16;

function softmax(logits: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const out = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = Math.exp(logits[i] - max);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/**
 * Scores of one model output for a batch of inputs [n, H, W, C] (preprocessed): the probability the model
 * reports (softmax over all outputs, or the sigmoid for a sigmoid head, as `ImageSession.probabilities`) and
 * the logit. One forward pass at batch size n; `inputs` stays the caller's. Shared by the in-thread path and
 * the Score-CAM workers, so both compute the very same numbers.
 */
export async function classScores(model: LoadedModel, inputs: tf.Tensor4D, outputIndex: number): Promise<BatchScores> {
  return classScoresFrom(model, new Map([[model.graph.inputIds[0], inputs]]), inputs.shape[0], outputIndex);
}

/** `classScores` of a batch of n given by any feeds (the input, or a layer's values and what the ops after it need). */
export async function classScoresFrom(model: LoadedModel, feeds: Map<string, tf.Tensor>, n: number, outputIndex: number): Promise<BatchScores> {
  const g = model.graph;
  const out = g.outputIds[0];
  let data: Float32Array;
  const input = feeds.size === 1 ? feeds.get(g.inputIds[0]) : undefined;
  if (input) {
    // A batch of images: ONNX Runtime for an ONNX model where it serves it (forward.ts), else the graph.
    data = classLogitValues(model, await forwardLogits(model, input as tf.Tensor4D));
  } else {
    const res = g.run(feeds, [out], { logits: true });
    const t = res.get(out) as tf.Tensor;
    try {
      data = classLogitValues(model, (await t.data()) as Float32Array);
    } finally {
      if (![...feeds.values()].includes(t)) t.dispose();
    }
  }
  const m = model.numOutputs;
  if (data.length !== n * m) {
    throw new CamLensError('UNSUPPORTED_MODEL', `expected ${n} x ${m} outputs for a batch of ${n}, got ${data.length} values`);
  }
  if (outputIndex < 0 || outputIndex >= m) throw new CamLensError('BAD_ARGUMENT', `output index ${outputIndex} is out of range 0..${m - 1}`);
  const probabilities = new Float32Array(n);
  const logits = new Float32Array(n);
  const sigmoid = g.outputActivation === 'sigmoid';
  for (let i = 0; i < n; i++) {
    const row = data.subarray(i * m, (i + 1) * m);
    const z = row[outputIndex];
    logits[i] = z;
    if (sigmoid) {
      probabilities[i] = 1 / (1 + Math.exp(-z));
      continue;
    }
    let max = -Infinity;
    for (const v of row) if (v > max) max = v;
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    probabilities[i] = Math.exp(z - max) / sum;
  }
  return { probabilities, logits };
}

export class ImageSession {
  private logitsData?: Float32Array;
  private probs?: Float32Array;
  private readonly layers = new Map<string, LayerEntry>();
  private readonly grads = new Map<string, tf.Tensor4D>();
  private disposed = false;

  /** Takes ownership of `input` ([1, H, W, C], preprocessed). */
  constructor(readonly model: LoadedModel, readonly input: tf.Tensor4D) {}

  private check(): void {
    if (this.disposed) throw new CamLensError('BAD_ARGUMENT', 'this image session was disposed');
  }

  /** Class logits of all model outputs (first call runs the forward pass); [-z, z] for a binary classifier. */
  async logits(): Promise<Float32Array> {
    this.check();
    if (!this.logitsData) {
      // The logits alone: ONNX Runtime for an ONNX model where it serves it (forward.ts), else the graph.
      this.logitsData = classLogitValues(this.model, await forwardLogits(this.model, this.input));
    }
    return this.logitsData;
  }

  /** Scores of model output `outputIndex` for a batch of inputs [n, H, W, C] (see `classScores`). */
  scoreBatch(inputs: tf.Tensor4D, outputIndex: number): Promise<BatchScores> {
    this.check();
    return classScores(this.model, inputs, outputIndex);
  }

  /**
   * Scores of model output `outputIndex` when the activation of `op` is replaced by each of a batch of
   * activations [n, h, w, K] and only the ops after it run (Ablation-CAM), with the cached values upstream ops
   * produced for them repeated n times. `activations` stays the caller's.
   */
  async scoreActivations(op: GraphOp, activations: tf.Tensor4D, outputIndex: number): Promise<BatchScores> {
    const entry = this.layerEntry(op, false);
    const n = activations.shape[0];
    const g = this.model.graph;
    const repeat = (t: tf.Tensor): tf.Tensor => (n > 1 && t.rank >= 1 && t.shape[0] === 1 ? tf.tile(t, [n, ...new Array<number>(t.rank - 1).fill(1)]) : t);
    const feeds = new Map<string, tf.Tensor>();
    const made: tf.Tensor[] = [];
    const add = (id: string, t: tf.Tensor) => {
      const r = repeat(t);
      if (r !== t) made.push(r);
      feeds.set(id, r);
    };
    try {
      for (const [id, t] of entry.frontier) add(id, t);
      if (this.consumesInput(op.outputs[0])) add(g.inputIds[0], this.input);
      feeds.set(op.outputs[0], activations);
      return await classScoresFrom(this.model, feeds, n, outputIndex);
    } finally {
      for (const t of made) t.dispose();
    }
  }

  /** Whether ops downstream of `target` read the model input itself. */
  private consumesInput(target: string): boolean {
    const g = this.model.graph;
    const seen = new Set<string>();
    const stack = [target];
    while (stack.length) {
      const id = stack.pop() as string;
      for (const op of g.consumersOf(id)) {
        if (op.inputs.includes(g.inputIds[0])) return true;
        for (const o of op.outputs) {
          if (!seen.has(o)) {
            seen.add(o);
            stack.push(o);
          }
        }
      }
    }
    return false;
  }

  /** Probabilities of all model outputs, as the model itself would report them. */
  async probabilities(): Promise<Float32Array> {
    return this.probabilitiesOf(await this.logits());
  }

  private probabilitiesOf(logits: Float32Array): Float32Array {
    if (!this.probs) {
      this.probs = this.model.graph.outputActivation === 'sigmoid'
        ? logits.map((v) => 1 / (1 + Math.exp(-v)))
        : softmax(logits);
    }
    return this.probs;
  }

  /** The top-1 output from known logits, as `predictions(1)` ranks them (the first of equal probabilities). */
  private topOutput(logits: Float32Array): number {
    const p = this.probabilitiesOf(logits);
    const off = this.model.metadata.labelOffset;
    let best = off;
    for (let o = off + 1; o < off + numClasses(this.model); o++) if (p[o] > p[best]) best = o;
    return best;
  }

  async predictions(topK = 5): Promise<Prediction[]> {
    const p = await this.probabilities();
    const off = this.model.metadata.labelOffset;
    const idx = Array.from({ length: numClasses(this.model) }, (_, i) => i + off);
    idx.sort((a, b) => p[b] - p[a]);
    return idx.slice(0, Math.max(1, topK)).map((o) => ({ index: o - off, label: labelOf(this.model, o), probability: p[o] }));
  }

  async predictionFor(outputIndex: number): Promise<Prediction> {
    const p = await this.probabilities();
    const off = this.model.metadata.labelOffset;
    return { index: outputIndex - off, label: labelOf(this.model, outputIndex), probability: p[outputIndex] };
  }

  targetOp(layer?: string): GraphOp {
    const g = this.model.graph;
    const op = layer ? g.op(layer) : g.recommendedTarget();
    if (op.className === 'InputLayer' || op.outputShape.length !== 4) {
      throw new CamLensError('LAYER_NOT_SPATIAL', `layer "${op.name}" (${op.className}) has output shape [${op.outputShape.map((d) => d ?? 'N').join(', ')}], not a spatial feature map`,
        `pick a convolutional layer, such as "${g.recommendedTarget().name}"`);
    }
    return op;
  }

  /** Activation of a layer (cached, owned by the session). */
  activation(layer?: string): tf.Tensor4D {
    return this.layerEntry(this.targetOp(layer)).activation;
  }

  /** `withLogits`: a first forward pass also computes the logits (false: it stops where the layer's values are). */
  private layerEntry(op: GraphOp, withLogits = true): LayerEntry {
    this.check();
    const hit = this.layers.get(op.name);
    if (hit) {
      this.layers.delete(op.name);
      this.layers.set(op.name, hit);
      return hit;
    }
    const g = this.model.graph;
    const target = op.outputs[0];
    const frontierIds = this.frontierIds(target);
    // The first request for an image computes the logits in the same pass (one forward pass, not two).
    const out = g.outputIds[0];
    const fetchLogits = withLogits && this.logitsData === undefined;
    const fetches = [target, ...frontierIds];
    if (fetchLogits && !fetches.includes(out)) fetches.push(out);
    const res = g.run(new Map([[g.inputIds[0], this.input]]), fetches, { logits: true });
    if (fetchLogits) {
      const t = res.get(out) as tf.Tensor;
      this.logitsData = classLogitValues(this.model, t.dataSync() as Float32Array);
      if (t !== res.get(target) && !frontierIds.includes(out)) t.dispose();
    }
    const frontier = new Map<string, tf.Tensor>();
    for (const id of frontierIds) frontier.set(id, res.get(id) as tf.Tensor);
    const entry = { activation: res.get(target) as tf.Tensor4D, frontier };
    this.layers.set(op.name, entry);
    while (this.layers.size > MAX_CACHED_LAYERS) {
      const [oldest] = this.layers.keys();
      this.evictLayer(oldest);
    }
    return entry;
  }

  private evictLayer(name: string): void {
    const e = this.layers.get(name);
    if (!e) return;
    this.layers.delete(name);
    const keep = new Set<tf.Tensor>([this.input]);
    e.activation.dispose();
    for (const t of e.frontier.values()) if (!keep.has(t)) t.dispose();
    for (const [k, t] of this.grads) {
      if (k.startsWith(`${name}\u0000`)) {
        t.dispose();
        this.grads.delete(k);
      }
    }
  }

  /** Values produced upstream of `target` that ops downstream of it consume. */
  private frontierIds(target: string): string[] {
    const g = this.model.graph;
    const downstream = new Set<GraphOp>();
    const produced = new Set<string>([target]);
    const stack = [target];
    while (stack.length) {
      const id = stack.pop() as string;
      for (const op of g.consumersOf(id)) {
        if (downstream.has(op)) continue;
        downstream.add(op);
        for (const o of op.outputs) {
          produced.add(o);
          stack.push(o);
        }
      }
    }
    const out = new Set<string>();
    for (const op of downstream) for (const id of op.inputs) if (!produced.has(id) && id !== g.inputIds[0]) out.add(id);
    return [...out];
  }

  /** dlogit_c / dA at the layer (cached). */
  gradient(layer: string | undefined, outputIndex: number): tf.Tensor4D {
    const op = this.targetOp(layer);
    return this.grads.get(`${op.name}\u0000${outputIndex}`) ?? this.differentiate(op, () => outputIndex)[0];
  }

  /**
   * dlogit_c / dA at `op` for c = pick(), cached; returns it and c. The ops after `op` run once, on the gradient
   * tape; where the logits are not known yet they are read off that run, before `pick` is called (so it may
   * use them: the top-1 class).
   */
  private differentiate(op: GraphOp, pick: () => number): [tf.Tensor4D, number] {
    const entry = this.layerEntry(op, false);
    const g = this.model.graph;
    const target = op.outputs[0];
    const out = g.outputIds[0];
    const feedsBase = new Map<string, tf.Tensor>(entry.frontier);
    feedsBase.set(g.inputIds[0], this.input);
    const n = this.model.numOutputs;
    let outputIndex = -1;
    const score = (a: tf.Tensor): tf.Scalar => {
      const feeds = new Map(feedsBase);
      feeds.set(target, a);
      const res = g.run(feeds, [out], { logits: true, keepIntermediates: true });
      const t = res.get(out) as tf.Tensor;
      if (this.logitsData === undefined) this.logitsData = classLogitValues(this.model, t.dataSync() as Float32Array);
      outputIndex = pick();
      const logits = tf.reshape(classLogits(this.model, t), [-1]);
      if (logits.shape[0] !== n) throw new CamLensError('UNSUPPORTED_MODEL', `expected ${n} logits, got ${logits.shape[0]}`);
      return tf.sum(tf.slice(logits, [outputIndex], [1])) as tf.Scalar;
    };
    let grad: tf.Tensor4D;
    try {
      grad = tf.grad(score)(entry.activation) as tf.Tensor4D;
    } catch (e) {
      const msg = (e as Error).message;
      if (/not registered|Gradient for|Cannot compute gradient/i.test(msg)) {
        throw new CamLensError('METHOD_NOT_APPLICABLE', `the ${tf.getBackend()} backend cannot differentiate through the layers after "${op.name}": ${msg.split('\n')[0]}`,
          'use cam, or another backend');
      }
      throw e;
    }
    const key = `${op.name}\u0000${outputIndex}`;
    const hit = this.grads.get(key);
    if (hit) {
      grad.dispose();
      return [hit, outputIndex];
    }
    this.grads.set(key, grad);
    while (this.grads.size > MAX_CACHED_GRADIENTS) {
      const [oldest] = this.grads.keys();
      this.grads.get(oldest)?.dispose();
      this.grads.delete(oldest);
    }
    return [grad, outputIndex];
  }

  /** Resolves a class choice to a model output index; undefined → top-1. */
  async resolveTarget(choice?: string | number): Promise<number> {
    if (choice === undefined || choice === '') {
      const [top] = await this.predictions(1);
      return top.index + this.model.metadata.labelOffset;
    }
    return resolveClass(this.model, choice);
  }

  async explain(req: ExplainRequest): Promise<ExplainResult> {
    const t0 = performance.now();
    const method = getMethod(req.method);
    throwIfAborted(req.signal, 'the explanation');
    if (needsCombining(req)) return explainCombined(this, req, (input) => new ImageSession(this.model, input));
    if (req.layers?.length === 1) req = { ...req, layer: req.layers[0], layers: undefined };
    if (method.needsGradients && this.model.supportsGradients === false) {
      throw new CamLensError('METHOD_NOT_APPLICABLE', `${method.label} needs gradients, and they do not reach this model's layers` +
        (this.model.gradientNote ? `: ${this.model.gradientNote}` : ''), 'use scorecam or eigencam (or cam where the head allows it)');
    }
    // Pixel-level saliency (engine/saliency): at the model input's resolution, from input gradients.
    if (isPixelMethod(method)) return explainPixels(this, method, req, this.logitsData !== undefined);
    const op = this.targetOp(req.layer);
    const hadForward = this.logitsData !== undefined && this.layers.has(op.name);
    // A gradient method on a new image: the forward pass stops at the layer, and the gradient's run of the ops
    // after it gives the logits (and with them the top-1 class).
    const shared = method.needsGradients && this.logitsData === undefined;
    const chosen = shared && req.classChoice !== undefined && req.classChoice !== '' ? resolveClass(this.model, req.classChoice) : undefined;
    const entry = this.layerEntry(op, !shared);
    let outputIndex = shared ? -1 : await this.resolveTarget(req.classChoice);
    const t1 = performance.now();
    if (shared) outputIndex = this.differentiate(op, () => chosen ?? this.topOutput(this.logitsData as Float32Array))[1];
    const gradKey = `${op.name}\u0000${outputIndex}`;
    const hadGrad = !shared && this.grads.has(gradKey);
    const gradients = method.needsGradients ? this.gradient(op.name, outputIndex) : undefined;
    const t2 = performance.now();
    throwIfAborted(req.signal, 'the explanation');
    const ctx: CamContext = {
      activation: entry.activation,
      classIndex: outputIndex,
      gradients,
      linearHead: () => findClassHead(this.model, op),
      input: this.input,
      scoreBatch: (inputs) => this.scoreBatch(inputs, outputIndex),
      scoreActivations: (activations) => this.scoreActivations(op, activations, outputIndex),
      scorePool: req.pool && req.pool.serves(this.model.path) ? req.pool : undefined,
      signal: req.signal,
      onProgress: req.onProgress,
      options: req.options,
    };
    const heatmap = await runCamMethod(method, ctx);
    const t3 = performance.now();
    return {
      method: method.id,
      layer: op.name,
      target: await this.predictionFor(outputIndex),
      heatmap,
      timingsMs: { forward: t1 - t0, gradients: t2 - t1, method: t3 - t2, total: t3 - t0 },
      cached: { forward: hadForward, gradients: method.needsGradients && hadGrad },
    };
  }

  dispose(): void {
    if (this.disposed) return;
    for (const name of [...this.layers.keys()]) this.evictLayer(name);
    for (const t of this.grads.values()) t.dispose();
    this.grads.clear();
    this.input.dispose();
    this.disposed = true;
  }
}
