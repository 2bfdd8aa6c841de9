/**
 * The executable-graph interface every model format implements (ExecGraph: ops, value ids, `run` from any
 * intermediate value), and its LayersModel implementation: the layer graph flattened into one
 * topologically ordered list of ops, with an executor of our own. GraphModels: see graphModel.ts.
 *
 * Why our own executor instead of `model.predict`: Grad-CAM needs the gradient of a class score with
 * respect to an intermediate activation A, i.e. a function f(A) = logit_c that re-runs only the part of
 * the network after the target layer, also where that part branches and merges (skip connections) and
 * where the target sits inside a nested base model (Keras transfer learning). Feeding A for the target's
 * output id and re-running the ops downstream of it gives exactly that function, and `tf.grad` does the rest.
 *
 * Conventions:
 * - always inference mode (`training: false`): dropout off, batch norm uses its moving statistics;
 * - the class score is the logit: a final softmax (an `Activation`/`Softmax` layer, or the activation of the
 *   last Dense/Conv) is bypassed in "logits" mode, together with any shape-only layers after it;
 * - BatchNormalization layers that directly follow a linear Conv2D/DepthwiseConv2D are folded into that
 *   convolution at load time (inference only): one fused conv+bias instead of conv then 4 elementwise ops.
 *   A fused op keeps the ops it replaced (`parts`); a run that feeds or fetches a value inside one (the conv's
 *   own output, or the normalised value before a fused ReLU) runs that op's parts instead, and only that op's;
 * - while a gradient tape records, convolutions, batch normalisations, ReLU/ReLU6 and Dense layers run through
 *   gradOps.ts, whose gradients give dx only (tfjs' fused ops would also compute every filter and bias gradient).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { CamLensError } from './errors';
import * as gradOps from './gradOps';
import { pickOutput, type ModelOutput, type OutputActivation } from './outputs';

/** Structural view of tfjs-layers internals we rely on (stable across 4.x). */
interface SymbolicTensorLike {
  id: number;
  name: string;
  shape: (number | null)[];
}
interface NodeLike {
  outboundLayer: LayerLike;
  inputTensors: SymbolicTensorLike[];
  outputTensors: SymbolicTensorLike[];
  outputShapes: (number | null)[] | (number | null)[][];
}
export interface LayerLike {
  name: string;
  getClassName(): string;
  getConfig(): Record<string, unknown>;
  countParams(): number;
  apply(inputs: tf.Tensor | tf.Tensor[], kwargs?: Record<string, unknown>): tf.Tensor | tf.Tensor[];
  activation?: { apply(x: tf.Tensor): tf.Tensor; getClassName(): string };
  inboundNodes: NodeLike[];
}
interface ContainerLike extends LayerLike {
  inputs: SymbolicTensorLike[];
  outputs: SymbolicTensorLike[];
  nodesByDepth: Record<string, NodeLike[]>;
  containerNodes: Set<string>;
  layers: LayerLike[];
  model?: ContainerLike;
  build?: () => void;
}

export interface FusedConv extends gradOps.ConvRun {
  bias: tf.Tensor1D;
  /** Explicit where a ZeroPadding2D before the convolution was folded in. */
  pad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  /** The BatchNormalization op folded in, if any. */
  foldedBn?: string;
  /** A ReLU/ReLU6 that followed the convolution, applied inside the fused kernel (a clamp of its output). */
  activation?: gradOps.FusableActivation;
  /** The name of that activation op. */
  fusedActivation?: string;
}

/**
 * One node of an executable graph, whatever the model format: a Keras layer call of a LayersModel, or a
 * TensorFlow op of a GraphModel. Value ids name the tensors flowing between ops; `run` feeds and fetches them.
 */
export interface GraphOp {
  /** Unique, user-facing name (the layer name, or the GraphModel node name). */
  name: string;
  /** Keras layer class (`Conv2D`, `ReLU`…) or TensorFlow op type (`Conv2D`, `Relu6`, `Mean`…). */
  className: string;
  /** Value ids this op consumes (a GraphModel's weight constants are not values: they belong to the op). */
  inputs: string[];
  outputs: string[];
  /** Output shape with a null batch dimension; null where unknown. */
  outputShape: (number | null)[];
  /** Names of the ops producing this op's inputs. */
  inbound: string[];
  params: number;
}

/** An op of a LayersModel's flattened graph. */
export interface LayerOp extends GraphOp {
  layer: LayerLike;
  /** Set on the folded conv op of the fast op list. */
  fused?: FusedConv;
  /** A fused op: the ops it replaced, in order (each may itself be fused), and the value ids only they produce. */
  parts?: LayerOp[];
  hidden?: Set<string>;
  /** How the op runs while a gradient tape records, where that differs from the layer's own call (see gradOps.ts). */
  taped?: TapedForm;
  /** Logits mode: how to skip the final softmax. */
  softmax?: 'identity' | 'linear-activation';
}

/** An op's gradient-only form: a convolution (also a BatchNormalization as a 1x1 depthwise one, or a Dense layer as a 1x1 convolution), or an activation. */
type TapedForm =
  | { kind: 'conv'; run: gradOps.ConvRun; then?: { apply(x: tf.Tensor): tf.Tensor } }
  | { kind: 'dense'; run: gradOps.ConvRun; skipsSoftmax: boolean }
  | { kind: 'activation'; activation: gradOps.TapedActivation };

export interface RunOptions {
  /** Return the pre-softmax (pre-sigmoid) logits for the model output. */
  logits?: boolean;
  /** Keep every intermediate alive until the call returns (needed under tf.grad). */
  keepIntermediates?: boolean;
}

/**
 * What the session, the CAM heads and the front ends need from a model's graph, implemented by LayerGraph
 * (LayersModel, executed layer by layer) and GraphModelGraph (GraphModel, executed by `GraphModel.execute`).
 *
 * Contract of `run`: computes `fetches` from `feeds` (value id → tensor). Any value may be fed, which cuts
 * the graph there: feeding the target layer's activation A and fetching the output gives f(A) = logits,
 * the function Grad-CAM differentiates with `tf.grad`. The returned map holds exactly the fetches; the
 * caller owns every returned tensor that it did not feed itself. In `logits` mode, fetching `outputIds[0]`
 * returns the logits (the input of a final softmax or sigmoid), of shape [1, numOutputs] up to reshaping.
 */
export interface ExecGraph {
  readonly kind: 'layers' | 'graph' | 'onnx';
  /** All ops in topological order, as listed to the user. */
  readonly ops: readonly GraphOp[];
  /** The op list the executor runs (after load-time rewrites such as BatchNormalization folding). */
  readonly foldedOps: readonly GraphOp[];
  readonly inputIds: string[];
  readonly outputIds: string[];
  /** The model input's shape, batch first (null where free). */
  readonly inputShape: (number | null)[];
  /** The activation the model applies to its logits; `run({logits: true})` skips it. */
  readonly outputActivation: 'softmax' | 'sigmoid' | 'none';
  /**
   * Every output of the model, in its own order (outputs.ts). The graph is built for one of them,
   * `outputs[outputIndex]`, whose value is `outputIds[0]`; its ops are the ones that output depends on.
   */
  readonly outputs: readonly ModelOutput[];
  readonly outputIndex: number;
  readonly size: number;
  op(name: string): GraphOp;
  hasOp(name: string): boolean;
  /** Ops whose output is a 4-D feature map with a spatial extent (possible CAM targets). */
  spatialOps(): GraphOp[];
  /** The default target: the last spatial op before the global pooling that leads to the classifier. */
  recommendedTarget(): GraphOp;
  producerOf(id: string): GraphOp | undefined;
  consumersOf(id: string): GraphOp[];
  run(feeds: Map<string, tf.Tensor>, fetches: string[], opts?: RunOptions): Map<string, tf.Tensor>;
  dispose(): void;
}

const isContainer = (l: LayerLike): l is ContainerLike =>
  Array.isArray((l as ContainerLike).layers) && typeof (l as ContainerLike).nodesByDepth === 'object' ||
  typeof (l as ContainerLike).build === 'function' && Array.isArray((l as ContainerLike).layers) && (l as ContainerLike).getClassName() === 'Sequential';

/** The functional container behind a model: Sequential keeps one in `.model`. */
function functional(c: ContainerLike): ContainerLike {
  if (c.getClassName() === 'Sequential') {
    if (c.model == null && c.build) c.build();
    if (c.model == null) throw new CamLensError('UNSUPPORTED_MODEL', `Sequential model ${c.name} has no layers`);
    return c.model;
  }
  return c;
}

/** Layers that only move values around: skipped when looking for the head or the softmax. */
const PASS_THROUGH = new Set(['Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'GaussianDropout', 'GaussianNoise', 'AlphaDropout', 'ActivityRegularization', 'Reshape', 'Flatten']);
const GLOBAL_POOL = new Set(['GlobalAveragePooling2D', 'GlobalMaxPooling2D', 'GlobalAveragePooling1D', 'GlobalMaxPooling1D', 'Flatten']);

function activationName(layer: LayerLike): string | undefined {
  const cfg = layer.getConfig();
  const a = cfg.activation;
  return typeof a === 'string' ? a : undefined;
}

const LINEAR_ACTIVATION = { apply: (x: tf.Tensor) => x, getClassName: () => 'linear' };

export class LayerGraph implements ExecGraph {
  readonly kind = 'layers' as const;
  readonly ops: LayerOp[] = [];
  /**
   * The executor's fast op list: BatchNormalization folded into convolutions, and a ReLU/ReLU6 that follows a
   * convolution applied inside it (same as `ops` when nothing folds).
   */
  foldedOps: LayerOp[] = [];
  readonly inputIds: string[];
  readonly outputIds: string[];
  readonly inputShape: (number | null)[];
  private readonly producer = new Map<string, LayerOp>();
  private readonly consumers = new Map<string, LayerOp[]>();
  private readonly byName = new Map<string, LayerOp>();
  private foldedProducer: Map<string, LayerOp>;
  /** Value ids the fast op list does not compute (inside a fused op: a conv's pre-BN output, a pre-activation value). */
  private readonly hiddenIds = new Set<string>();
  private readonly ownedTensors: tf.Tensor[] = [];
  /** The rotated filters of input gradients (gradOps.ts). */
  private readonly gradFilters = new gradOps.GradFilters();
  private readonly usedPrefixes = new Set<string>();
  /** The op whose softmax is skipped in logits mode, and the output activation of the model. */
  readonly outputActivation: 'softmax' | 'sigmoid' | 'none';
  readonly outputs: readonly ModelOutput[];
  readonly outputIndex: number;

  /** `output`: the output to explain, by name or index (outputs.ts pickOutput); default the first classifier-shaped one. */
  constructor(readonly model: LayersModel, opts: { foldBatchNorm?: boolean; output?: string | number } = {}) {
    const root = functional(model as unknown as ContainerLike);
    if (root.inputs.length !== 1 || root.outputs.length < 1) {
      throw new CamLensError('UNSUPPORTED_MODEL',
        `the model has ${root.inputs.length} inputs and ${root.outputs.length} outputs; CAM Lens explains image classifiers with one input`);
    }
    const inputId = `${root.inputs[0].id}`;
    this.inputIds = [inputId];
    this.inputShape = root.inputs[0].shape;
    // The top-level input layer is listed like Keras' summary does.
    const inLayer = (root.layers.find((l) => l.getClassName() === 'InputLayer') ?? null) as LayerLike | null;
    if (inLayer) {
      this.addOp({ name: inLayer.name, layer: inLayer, className: 'InputLayer', inputs: [], outputs: [inputId], outputShape: root.inputs[0].shape, inbound: [], params: 0 });
    }
    const outputIds = this.flatten(root, '', [inputId]);
    const names = (root as ContainerLike & { outputNames?: string[] }).outputNames ?? [];
    this.outputs = outputIds.map((id, i): ModelOutput => {
      const shape = root.outputs[i].shape;
      const last = shape[shape.length - 1];
      return {
        name: names[i] ?? this.producer.get(id)?.name ?? `output_${i}`,
        units: typeof last === 'number' ? last : null,
        activation: this.finalActivation(id)[0],
        classifierShaped: shape.length === 2,
      };
    });
    this.outputIndex = pickOutput(this.outputs, opts.output);
    this.outputIds = [outputIds[this.outputIndex]];
    // Only what the chosen output depends on: the other heads are neither targets nor consumers (CAM's head
    // search and the fusions below count consumers).
    if (outputIds.length > 1) this.prune();
    this.outputActivation = this.markSoftmax();
    const bnFolded = opts.foldBatchNorm === false ? this.ops : this.foldBatchNorm();
    this.foldedOps = opts.foldBatchNorm === false ? this.ops : this.foldZeroPadding(this.fuseActivations(bnFolded, producers(bnFolded)));
    this.foldedProducer = producers(this.foldedOps);
    for (const op of this.foldedOps) for (const id of op.hidden ?? []) this.hiddenIds.add(id);
    this.prepareTapedForms();
  }

  private addOp(op: LayerOp): void {
    let name = op.name;
    for (let k = 1; this.byName.has(name); k++) name = `${op.name}#${k}`;
    op.name = name;
    this.ops.push(op);
    this.byName.set(name, op);
    for (const id of op.outputs) this.producer.set(id, op);
    for (const id of op.inputs) {
      const list = this.consumers.get(id) ?? [];
      list.push(op);
      this.consumers.set(id, list);
    }
  }

  /** Inlines a container's graph; `inputIds` are the value ids fed to its inputs. Returns its output ids. */
  private flatten(container: ContainerLike, prefix: string, inputIds: string[]): string[] {
    const c = functional(container);
    const alias = new Map<number, string>();
    c.inputs.forEach((t, i) => alias.set(t.id, inputIds[i]));
    const resolve = (t: SymbolicTensorLike): string => alias.get(t.id) ?? `${prefix}${t.id}`;
    const depths = Object.keys(c.nodesByDepth).map(Number).sort((a, b) => b - a);
    for (const d of depths) {
      for (const node of c.nodesByDepth[d]) {
        const layer = node.outboundLayer;
        if (layer.getClassName() === 'InputLayer') continue;
        const ins = node.inputTensors.map(resolve);
        if (isContainer(layer)) {
          // A nested model called twice (shared weights) gets `name#1/…` for its second call.
          let sub = `${prefix}${layer.name}/`;
          for (let k = 1; this.usedPrefixes.has(sub); k++) sub = `${prefix}${layer.name}#${k}/`;
          this.usedPrefixes.add(sub);
          const outs = this.flatten(layer, sub, ins);
          node.outputTensors.forEach((t, i) => alias.set(t.id, outs[i]));
          continue;
        }
        const outs = node.outputTensors.map((t) => `${prefix}${t.id}`);
        const shapes = node.outputShapes;
        const outputShape = (Array.isArray(shapes[0]) ? shapes[0] : shapes) as (number | null)[];
        this.addOp({
          name: `${prefix}${layer.name}`,
          layer,
          className: layer.getClassName(),
          inputs: ins,
          outputs: outs,
          outputShape,
          inbound: ins.map((id) => this.producer.get(id)?.name ?? '(input)'),
          params: safeCount(layer),
        });
      }
    }
    return c.outputs.map(resolve);
  }

  /** The final softmax/sigmoid before output `id`, walking back through shape-only layers, and how to skip it. */
  private finalActivation(id: string): [OutputActivation, LayerOp?, LayerOp['softmax']?] {
    let op = this.producer.get(id);
    while (op && PASS_THROUGH.has(op.className) && op.inputs.length === 1) op = this.producer.get(op.inputs[0]);
    if (!op) return ['none'];
    if (op.className === 'Softmax') return ['softmax', op, 'identity'];
    const act = activationName(op.layer);
    if (op.className === 'Activation' && (act === 'softmax' || act === 'sigmoid')) return [act, op, 'identity'];
    if (act === 'softmax' || act === 'sigmoid') return [act, op, 'linear-activation'];
    return ['none'];
  }

  /** Marks the chosen output's final softmax/sigmoid to be skipped in logits mode. */
  private markSoftmax(): OutputActivation {
    const [act, op, how] = this.finalActivation(this.outputIds[0]);
    if (op) op.softmax = how;
    return act;
  }

  /** Drops the ops the chosen output does not depend on (the input layer stays). */
  private prune(): void {
    const live = new Set<LayerOp>();
    const stack = [...this.outputIds];
    const seen = new Set<string>();
    while (stack.length) {
      const id = stack.pop() as string;
      if (seen.has(id)) continue;
      seen.add(id);
      const op = this.producer.get(id);
      if (!op || live.has(op)) continue;
      live.add(op);
      stack.push(...op.inputs);
    }
    const kept = this.ops.filter((op) => live.has(op) || op.className === 'InputLayer');
    this.ops.length = 0;
    this.producer.clear();
    this.consumers.clear();
    this.byName.clear();
    for (const op of kept) {
      this.ops.push(op);
      this.byName.set(op.name, op);
      for (const id of op.outputs) this.producer.set(id, op);
      for (const id of op.inputs) {
        const list = this.consumers.get(id) ?? [];
        list.push(op);
        this.consumers.set(id, list);
      }
    }
  }

  private foldBatchNorm(): LayerOp[] {
    const replaced = new Map<LayerOp, LayerOp | null>();
    for (const bn of this.ops) {
      if (bn.className !== 'BatchNormalization' || bn.inputs.length !== 1) continue;
      const conv = this.producer.get(bn.inputs[0]);
      if (!conv || (conv.className !== 'Conv2D' && conv.className !== 'DepthwiseConv2D')) continue;
      if ((this.consumers.get(conv.outputs[0]) ?? []).length !== 1 || this.outputIds.includes(conv.outputs[0])) continue;
      const fused = foldPair(conv.layer, bn.layer, conv.className === 'Conv2D' ? 'conv2d' : 'depthwise', bn.name);
      if (!fused) continue;
      this.ownedTensors.push(fused.filter, fused.bias);
      replaced.set(conv, fusedOp([conv, bn], fused));
      replaced.set(bn, null);
    }
    return applyReplacements(this.ops, replaced);
  }

  /**
   * conv → ReLU/ReLU6 becomes one fused op whose kernel clamps its output (XNNPACK on wasm does the clamp while
   * writing the convolution's result). On wasm a separate ReLU6 costs more than the convolutions themselves:
   * Keras' relu6 is `minimum(6, relu(x))`, a broadcasting binary op with no SIMD path. The convolution's own
   * output then no longer exists in this list; `run` uses the list without this rewrite when it is fed or fetched.
   */
  private fuseActivations(base: LayerOp[], producer: Map<string, LayerOp>): LayerOp[] {
    const replaced = new Map<LayerOp, LayerOp | null>();
    for (const act of base) {
      const kind = fusableActivation(act);
      if (!kind || act.inputs.length !== 1 || act.outputs.length !== 1) continue;
      const conv = producer.get(act.inputs[0]);
      if (!conv || replaced.has(conv) || conv.outputs.length !== 1) continue;
      const mid = conv.outputs[0];
      if ((this.consumers.get(mid) ?? []).length !== 1 || this.outputIds.includes(mid) || this.inputIds.includes(mid)) continue;
      let fused = conv.fused;
      if (!fused && (conv.className === 'Conv2D' || conv.className === 'DepthwiseConv2D')) {
        const plain = plainConv(conv.layer, conv.className === 'Conv2D' ? 'conv2d' : 'depthwise');
        if (plain) {
          this.ownedTensors.push(plain.bias);
          fused = plain;
        }
      }
      if (!fused || fused.activation) continue;
      replaced.set(conv, fusedOp([conv, act], { ...fused, activation: kind, fusedActivation: act.name }));
      replaced.set(act, null);
    }
    return applyReplacements(base, replaced);
  }

  /**
   * ZeroPadding2D → a 'valid' fused convolution (Keras' pattern before strided convolutions: ResNet's stem,
   * EfficientNet's and MobileNet v2's strided depthwise convolutions) becomes the convolution with that padding
   * of its own: the same sums (XNNPACK reads zeros for the padding either way) without the padded copy, and under a
   * gradient tape without the padding's gradient, a slice (wasm's Slice is a slow generic loop).
   */
  private foldZeroPadding(base: LayerOp[]): LayerOp[] {
    const replaced = new Map<LayerOp, LayerOp | null>();
    const byFirst = new Map<LayerOp, LayerOp>();
    for (const op of base) {
      let first = op;
      while (first.parts) first = first.parts[0];
      byFirst.set(first, op);
    }
    for (const zp of base) {
      if (zp.className !== 'ZeroPadding2D' || zp.inputs.length !== 1 || zp.outputs.length !== 1) continue;
      const padded = zp.outputs[0];
      const users = this.consumers.get(padded) ?? [];
      if (users.length !== 1 || this.outputIds.includes(padded)) continue;
      const conv = byFirst.get(users[0]);
      const pads = zeroPadding(zp.layer);
      if (!conv?.fused || conv.fused.pad !== 'valid' || !pads || replaced.has(conv)) continue;
      const hidden = new Set([...(conv.hidden ?? []), padded]);
      replaced.set(conv, { ...conv, inputs: zp.inputs, inbound: zp.inbound, fused: { ...conv.fused, pad: [[0, 0], pads[0], pads[1], [0, 0]] }, parts: [zp, conv], hidden });
      replaced.set(zp, null);
    }
    return applyReplacements(base, replaced);
  }

  get size(): number {
    return this.ops.length;
  }

  op(name: string): LayerOp {
    const op = this.byName.get(name);
    if (!op) {
      const near = [...this.byName.keys()].filter((n) => n.includes(name) || name.includes(n)).slice(0, 5);
      throw new CamLensError('UNKNOWN_LAYER', `no layer named "${name}" in the model` + (near.length ? ` (did you mean ${near.join(', ')}?)` : ''),
        'run `cam-lens layers` to list the layers');
    }
    return op;
  }

  hasOp(name: string): boolean {
    return this.byName.has(name);
  }

  /** Ops whose output is a 4-D feature map with a spatial extent. */
  spatialOps(): LayerOp[] {
    return this.ops.filter((op) => isSpatialShape(op.outputShape) && op.className !== 'InputLayer');
  }

  /**
   * The default target layer: the last spatial layer before the global pooling (or flatten) that leads to
   * the classifier; without one, the last spatial layer in topological order.
   *
   * Where the classifier comes before the pooling (DarkNet: a 1x1 convolution to one channel per class, then
   * GAP straight into the logits), this picks that convolution on purpose: its channel c is exactly the
   * class-c evidence whose spatial mean is logit c, so CAM is exact there (the 'identity' head), and
   * Grad-CAM, XGrad-CAM and HiResCAM give the same map (dlogit_c/dA is 1/(h·w) on channel c, 0 elsewhere).
   * The layer before it (128 channels in darknet_tiny) would mix classes through the 1x1 weights and
   * cannot serve CAM at all.
   */
  recommendedTarget(): LayerOp {
    const spatial = this.spatialOps();
    if (spatial.length === 0) {
      throw new CamLensError('NO_SPATIAL_LAYER', 'the model has no layer with a spatial (height x width x channels) output, so there is nothing to draw a map on');
    }
    for (let i = this.ops.length - 1; i >= 0; i--) {
      const op = this.ops[i];
      if (!GLOBAL_POOL.has(op.className)) continue;
      let src = this.producer.get(op.inputs[0]);
      while (src && isSpatialShape(src.outputShape) && (PASS_THROUGH.has(src.className)) && src.inputs.length === 1) {
        src = this.producer.get(src.inputs[0]);
      }
      if (src && isSpatialShape(src.outputShape) && src.className !== 'InputLayer') return src;
    }
    return spatial[spatial.length - 1];
  }

  /** The op that produces a value id, in the op list the executor will use. */
  producerOf(id: string): LayerOp | undefined {
    return this.producer.get(id);
  }

  consumersOf(id: string): LayerOp[] {
    return this.consumers.get(id) ?? [];
  }

  /**
   * Runs the ops needed to compute `fetches` from `feeds` (value id → tensor). Any value may be fed, which
   * cuts the graph there. `logits` skips the final softmax. The returned map holds only the fetches (fed
   * tensors pass through as is); intermediates are disposed as soon as no later op needs them, unless
   * `keepIntermediates` (needed under tf.grad, whose tape holds on to them).
   */
  run(feeds: Map<string, tf.Tensor>, fetches: string[], opts: RunOptions = {}): Map<string, tf.Tensor> {
    const [ops, producer] = this.opsFor(new Set([...fetches, ...feeds.keys()]));
    const taped = gradOps.taping();
    // Which ops are needed: walk back from the fetches, stopping at fed values.
    const needed = new Set<LayerOp>();
    const stack = [...fetches];
    const seen = new Set<string>();
    while (stack.length) {
      const id = stack.pop() as string;
      if (seen.has(id) || feeds.has(id)) continue;
      seen.add(id);
      const op = producer.get(id);
      if (!op) throw new CamLensError('UNKNOWN_LAYER', `value ${id} cannot be computed from the given inputs`);
      if (op.className === 'InputLayer') throw new CamLensError('BAD_ARGUMENT', 'the model input was not fed');
      needed.add(op);
      stack.push(...op.inputs);
    }
    const remaining = new Map<string, number>();
    for (const op of ops) if (needed.has(op)) for (const id of op.inputs) remaining.set(id, (remaining.get(id) ?? 0) + 1);
    const values = new Map<string, tf.Tensor>(feeds);
    const keep = new Set<string>([...fetches, ...feeds.keys()]);
    // Layers such as Dropout (inference) or a bypassed softmax return their input object itself, so a
    // tensor may stand for several ids: count references per tensor object before disposing.
    const refs = new Map<tf.Tensor, number>();
    const fed = new Set<tf.Tensor>(feeds.values());
    for (const op of ops) {
      if (!needed.has(op)) continue;
      const ins = op.inputs.map((id) => values.get(id) as tf.Tensor);
      // tidy: some tfjs-layers layers (ReLU with maxValue, …) leave intermediates behind.
      const outs = tf.tidy(() => this.execOp(op, ins, Boolean(opts.logits), taped));
      op.outputs.forEach((id, i) => {
        values.set(id, outs[i]);
        refs.set(outs[i], (refs.get(outs[i]) ?? 0) + 1);
      });
      if (!opts.keepIntermediates) {
        for (const id of op.inputs) {
          const left = (remaining.get(id) ?? 1) - 1;
          remaining.set(id, left);
          if (left === 0 && !keep.has(id)) {
            const t = values.get(id) as tf.Tensor;
            values.delete(id);
            const r = (refs.get(t) ?? 1) - 1;
            refs.set(t, r);
            if (r <= 0 && !fed.has(t)) t.dispose();
          }
        }
      }
    }
    const result = new Map<string, tf.Tensor>();
    for (const id of fetches) result.set(id, values.get(id) as tf.Tensor);
    return result;
  }

  /**
   * The op list for a run that feeds or fetches `touched`: the fast list, where a fused op that computes one of
   * them inside itself gives way to its parts (recursively, so a conv+BN+ReLU group targeted at its BN output
   * runs as conv+BN folded, then the ReLU). Only those ops: the rest of the network stays folded.
   */
  private opsFor(touched: Set<string>): [LayerOp[], Map<string, LayerOp>] {
    if (![...touched].some((id) => this.hiddenIds.has(id))) return [this.foldedOps, this.foldedProducer];
    const open = (op: LayerOp): LayerOp[] =>
      op.parts && [...(op.hidden ?? [])].some((id) => touched.has(id)) ? op.parts.flatMap(open) : [op];
    const ops = this.foldedOps.flatMap(open);
    return [ops, producers(ops)];
  }

  private execOp(op: LayerOp, ins: tf.Tensor[], logits: boolean, taped: boolean): tf.Tensor[] {
    if (op.fused) return [gradOps.conv(ins[0] as tf.Tensor4D, op.fused, this.gradFilters)];
    if (logits && op.softmax === 'identity') return [ins[0]];
    if (taped && op.taped && ins.length === 1) {
      const y = this.runTaped(op.taped, ins[0], logits);
      if (y) return [y];
    }
    const arg = ins.length === 1 ? ins[0] : ins;
    if (logits && op.softmax === 'linear-activation') {
      const saved = op.layer.activation;
      op.layer.activation = LINEAR_ACTIVATION;
      try {
        return toArray(op.layer.apply(arg, { training: false }));
      } finally {
        op.layer.activation = saved;
      }
    }
    return toArray(op.layer.apply(arg, { training: false }));
  }

  /** An op's gradient-only form (null where it does not apply to this call: the layer runs as itself). */
  private runTaped(form: TapedForm, x: tf.Tensor, logits: boolean): tf.Tensor | null {
    if (form.kind === 'activation') return gradOps.activation(x, form.activation);
    if (form.kind === 'conv') {
      if (x.rank !== 4) return null;
      const y = gradOps.conv(x as tf.Tensor4D, form.run, this.gradFilters);
      return form.then ? form.then.apply(y) : y;
    }
    if (x.rank !== 2 || (form.skipsSoftmax && !logits)) return null;
    const [n, k] = x.shape;
    return tf.reshape(gradOps.conv(tf.reshape(x, [n, 1, 1, k]), form.run, this.gradFilters), [n, -1]);
  }

  /**
   * The gradient-only forms of the ops a taped run can meet (see gradOps.ts): convolutions that are not fused
   * (their own weights; a ReLU/ReLU6 activation of their own inside), BatchNormalization over the channels of
   * a 4-D value as a 1x1 depthwise convolution, ReLU/ReLU6 layers, and Dense layers (linear, ReLU, or the
   * skipped final softmax/sigmoid) as a 1x1 convolution. Then, for small models, the rotated filters of every
   * convolution a gradient can run through (gradOps.GradFilters).
   */
  private prepareTapedForms(): void {
    for (const op of this.ops) {
      const kind = op.className === 'Conv2D' ? 'conv2d' : op.className === 'DepthwiseConv2D' ? 'depthwise' : undefined;
      if (kind && !op.softmax) {
        // A convolution's own activation: ReLU/ReLU6 inside the kernel; another (swish, sigmoid: squeeze-and-
        // excitation) applied after it, as tfjs-layers does.
        const parts = convParts(op.layer, kind, true) ?? convParts(op.layer, kind, 'any');
        if (parts) {
          const bias = parts.bias ? parts.bias.read() as tf.Tensor1D : undefined;
          const own = parts.activation ? undefined : op.layer.activation;
          const name = own?.getClassName();
          const then = name === 'swish' ? { apply: (x: tf.Tensor) => gradOps.activation(x, 'swish') }
            : own && name !== 'linear' && name !== 'Linear' ? own : undefined;
          op.taped = { kind: 'conv', run: { kind, filter: parts.kernel.read() as tf.Tensor4D, bias, ...parts.geometry, activation: parts.activation }, then };
        }
      } else if (op.className === 'BatchNormalization') {
        const run = batchNormAsConv(op, this.ownedTensors);
        if (run) op.taped = { kind: 'conv', run };
      } else if (op.className === 'Dense') {
        const run = denseAsConv(op, this.ownedTensors);
        if (run) op.taped = { kind: 'dense', run, skipsSoftmax: op.softmax === 'linear-activation' };
      } else {
        const act = fusableActivation(op) ?? (op.className === 'Activation' && !op.softmax && activationName(op.layer) === 'swish' ? 'swish' : undefined);
        if (act) op.taped = { kind: 'activation', activation: act };
      }
    }
    for (const op of this.foldedOps) {
      if (op.fused) this.gradFilters.register(op.fused);
      else if (op.taped && op.taped.kind !== 'activation') this.gradFilters.register(op.taped.run);
    }
    this.gradFilters.prepareIfSmall();
  }

  dispose(): void {
    for (const t of this.ownedTensors) t.dispose();
    this.ownedTensors.length = 0;
    this.gradFilters.dispose();
  }
}

/** The op replacing `parts` (in order): named and fed as the first, giving the last one's outputs, computed by `fused`. */
function fusedOp(parts: LayerOp[], fused: FusedConv): LayerOp {
  const hidden = new Set<string>();
  parts.forEach((p, i) => {
    for (const id of p.hidden ?? []) hidden.add(id);
    if (i < parts.length - 1) for (const id of p.outputs) hidden.add(id);
  });
  return { ...parts[0], outputs: parts[parts.length - 1].outputs, fused, parts, hidden, taped: undefined };
}

/**
 * A BatchNormalization (inference, over the last axis) as a 1x1 depthwise convolution: y = x * s + t with
 * s = gamma / sqrt(var + eps), t = beta - mean * s. Its tensors go to `owned`. Null where it does not apply.
 */
function batchNormAsConv(op: LayerOp, owned: tf.Tensor[]): gradOps.ConvRun | null {
  const axis = op.layer.getConfig().axis;
  if (op.outputShape.length !== 4 || !(axis === -1 || axis === 3 || (Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3)))) return null;
  const b = op.layer as unknown as { gamma?: WeightVar | null; beta?: WeightVar | null; movingMean?: WeightVar; movingVariance?: WeightVar; epsilon: number };
  if (!b.movingMean || !b.movingVariance) return null;
  const [filter, bias] = tf.tidy(() => {
    const mean = (b.movingMean as WeightVar).read();
    const variance = (b.movingVariance as WeightVar).read();
    const gamma = b.gamma ? b.gamma.read() : tf.onesLike(mean);
    const beta = b.beta ? b.beta.read() : tf.zerosLike(mean);
    const scale = tf.div(gamma, tf.sqrt(tf.add(variance, b.epsilon)));
    return [tf.reshape(scale, [1, 1, -1, 1]) as tf.Tensor4D, tf.sub(beta, tf.mul(mean, scale)) as tf.Tensor1D];
  });
  owned.push(filter, bias);
  return { kind: 'depthwise', filter, bias, strides: [1, 1], pad: 'valid', dilations: [1, 1] };
}

/** A Dense layer (kernel [in, out]) as a 1x1 convolution over [n, 1, 1, in]; its activation linear or ReLU (a final softmax is skipped in logits mode). */
function denseAsConv(op: LayerOp, owned: tf.Tensor[]): gradOps.ConvRun | null {
  const d = op.layer as unknown as { kernel?: WeightVar; bias?: WeightVar | null };
  const act = activationName(op.layer);
  const activation = act === 'relu' || act === 'relu6' ? act : undefined;
  if (!d.kernel || !(activation || act === 'linear' || act === undefined || op.softmax === 'linear-activation')) return null;
  const kernel = d.kernel.read();
  if (kernel.rank !== 2) return null;
  const filter = tf.reshape(kernel, [1, 1, kernel.shape[0] as number, kernel.shape[1] as number]) as tf.Tensor4D;
  owned.push(filter);
  return { kind: 'conv2d', filter, bias: d.bias ? d.bias.read() as tf.Tensor1D : undefined, strides: [1, 1], pad: 'valid', dilations: [1, 1], activation };
}

function toArray(x: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
  return Array.isArray(x) ? x : [x];
}

function safeCount(layer: LayerLike): number {
  try {
    return layer.countParams();
  } catch {
    return 0;
  }
}

export function isSpatialShape(shape: (number | null)[]): boolean {
  return shape.length === 4 && ((shape[1] ?? 2) > 1 || (shape[2] ?? 2) > 1);
}

function pair(v: unknown, fallback: number): [number, number] {
  if (Array.isArray(v)) return [Number(v[0] ?? fallback), Number(v[1] ?? v[0] ?? fallback)];
  if (typeof v === 'number') return [v, v];
  return [fallback, fallback];
}

/** Value id → the op producing it. */
function producers(ops: readonly LayerOp[]): Map<string, LayerOp> {
  const m = new Map<string, LayerOp>();
  for (const op of ops) for (const id of op.outputs) m.set(id, op);
  return m;
}

/** `ops` with each op in `replaced` swapped for its replacement, or dropped where that is null (order kept). */
function applyReplacements(ops: LayerOp[], replaced: Map<LayerOp, LayerOp | null>): LayerOp[] {
  if (replaced.size === 0) return ops;
  const out: LayerOp[] = [];
  for (const op of ops) {
    const r = replaced.get(op);
    if (r === undefined) out.push(op);
    else if (r) out.push(r);
  }
  return out;
}

/** A channels-last ZeroPadding2D's [[top, bottom], [left, right]], or null. */
function zeroPadding(layer: LayerLike): [[number, number], [number, number]] | null {
  const cfg = layer.getConfig();
  if (cfg.data_format !== undefined && cfg.data_format !== 'channelsLast' && cfg.data_format !== 'channels_last' ||
    cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') return null;
  const p = cfg.padding;
  const two = (v: unknown): [number, number] | null =>
    typeof v === 'number' ? [v, v] : Array.isArray(v) && v.length === 2 && v.every((n) => Number.isInteger(n) && n >= 0) ? [v[0], v[1]] : null;
  if (typeof p === 'number') return [[p, p], [p, p]];
  if (!Array.isArray(p) || p.length !== 2) return null;
  const rows = two(p[0]);
  const cols = two(p[1]);
  return rows && cols ? [rows, cols] : null;
}

/** 'relu' or 'relu6' when the op is exactly that activation (Activation('relu'|'relu6'), ReLU(max_value 6 or none)). */
function fusableActivation(op: LayerOp): 'relu' | 'relu6' | undefined {
  if (op.softmax) return undefined;
  if (op.className === 'Activation') {
    const a = activationName(op.layer);
    return a === 'relu' || a === 'relu6' ? a : undefined;
  }
  if (op.className === 'ReLU') {
    const cfg = op.layer.getConfig();
    const max = cfg.maxValue ?? cfg.max_value;
    const slope = cfg.negativeSlope ?? cfg.negative_slope ?? 0;
    const threshold = cfg.threshold ?? 0;
    if (slope !== 0 || threshold !== 0) return undefined;
    if (max === null || max === undefined) return 'relu';
    return max === 6 ? 'relu6' : undefined;
  }
  return undefined;
}

type ConvGeometry = Pick<FusedConv, 'strides' | 'pad' | 'dilations'>;
type WeightVar = { read(): tf.Tensor };

/**
 * What a fused kernel needs of a Keras convolution with a linear activation: its geometry, kernel and bias
 * variables; null where the fused kernels cannot run it (another activation, channels first, other padding).
 */
function convParts(conv: LayerLike, kind: 'conv2d' | 'depthwise', allowActivation: boolean | 'any' = false):
  { geometry: ConvGeometry; kernel: WeightVar; bias: WeightVar | null; activation?: gradOps.FusableActivation } | null {
  const act = activationName(conv);
  const activation = allowActivation === true && (act === 'relu' || act === 'relu6') ? act : undefined;
  if (act !== 'linear' && act !== undefined && !activation && allowActivation !== 'any') return null;
  const geometry = convGeometry(conv, kind);
  const c = conv as unknown as { kernel?: WeightVar; depthwiseKernel?: WeightVar; bias?: WeightVar | null };
  const kernel = kind === 'conv2d' ? c.kernel : c.depthwiseKernel;
  if (!geometry || !kernel) return null;
  return { geometry, kernel, bias: c.bias ?? null, activation };
}

/** Geometry of a Keras convolution that the fused kernels can run, or null. */
function convGeometry(conv: LayerLike, kind: 'conv2d' | 'depthwise'): ConvGeometry | null {
  const cc = conv.getConfig();
  if (cc.data_format !== undefined && cc.data_format !== 'channelsLast' && cc.data_format !== 'channels_last') return null;
  if (cc.padding !== 'same' && cc.padding !== 'valid') return null;
  const strides = pair(cc.strides, 1);
  const dilations = pair(cc.dilation_rate, 1);
  if (kind === 'conv2d' && (strides[0] > 1 || strides[1] > 1) && (dilations[0] > 1 || dilations[1] > 1)) return null;
  return { strides, pad: cc.padding as 'same' | 'valid', dilations };
}

/** A convolution without BatchNormalization and without its own activation, as a fused op (bias owned by the caller). */
function plainConv(conv: LayerLike, kind: 'conv2d' | 'depthwise'): FusedConv | null {
  const parts = convParts(conv, kind);
  if (!parts) return null;
  const filter = parts.kernel.read() as tf.Tensor4D;
  const [, , cin, mult] = filter.shape;
  const channels = kind === 'conv2d' ? mult : cin * mult;
  // A copy of the bias (or zeros), so that the caller may dispose it.
  const bias = (parts.bias ? tf.clone(parts.bias.read()) : tf.zeros([channels])) as tf.Tensor1D;
  return { kind, filter, bias, ...parts.geometry };
}

/**
 * BN(conv(x)) = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta
 *             = conv_{W * s}(x) + (b - mean) * s + beta,   with s = gamma / sqrt(var + eps) per output channel.
 * For a depthwise kernel [kh, kw, in, mult] the output channel of (c, m) is c * mult + m.
 */
function foldPair(conv: LayerLike, bn: LayerLike, kind: 'conv2d' | 'depthwise', bnName: string): FusedConv | null {
  const bc = bn.getConfig();
  const parts = convParts(conv, kind);
  if (!parts) return null;
  const axis = bc.axis;
  if (!(axis === -1 || axis === 3 || (Array.isArray(axis) && (axis[0] === -1 || axis[0] === 3)))) return null;
  const b = bn as unknown as { gamma?: WeightVar | null; beta?: WeightVar | null; movingMean: WeightVar; movingVariance: WeightVar; epsilon: number };
  if (!b.movingMean || !b.movingVariance) return null;
  return tf.tidy(() => {
    const kernel = parts.kernel.read() as tf.Tensor4D;
    const mean = b.movingMean.read();
    const variance = b.movingVariance.read();
    const gamma = b.gamma ? b.gamma.read() : tf.onesLike(mean);
    const beta = b.beta ? b.beta.read() : tf.zerosLike(mean);
    const scale = tf.div(gamma, tf.sqrt(tf.add(variance, b.epsilon)));
    const [, , cin, cout] = kernel.shape;
    const filter = kind === 'conv2d'
      ? tf.mul(kernel, scale)
      : tf.mul(kernel, tf.reshape(scale, [cin, cout]));
    const convBias = parts.bias ? parts.bias.read() : tf.zerosLike(mean);
    const bias = tf.add(tf.mul(tf.sub(convBias, mean), scale), beta);
    return {
      kind,
      filter: tf.keep(filter as tf.Tensor4D),
      bias: tf.keep(bias as tf.Tensor1D),
      ...parts.geometry,
      foldedBn: bnName,
    };
  });
}
