/**
 * TensorFlow.js GraphModels (`model.json` with `format: graph-model`, converted from a SavedModel or a TF-Hub
 * module) behind the same ExecGraph interface as LayersModels, so the session, the CAM methods and the front
 * ends treat both formats alike.
 *
 * - Loading goes through our IO handler (loader.ts: manifest paths confined to the model folder, shard sizes
 *   checked) and `loadGraphModel` from @tensorflow/tfjs-converter.
 * - Ops are the graph's nodes that the output depends on, in topological order; weight constants are not ops
 *   but belong to the nodes reading them (their sizes are the node's `params`). GraphDefs from the converter
 *   rarely record output shapes, so shapes come from one execution on a zero input at load time (cached per
 *   model.json, size and modification time), unless every node carries `_output_shapes`.
 * - Executing from an intermediate node: `GraphModel.execute(inputs, outputs)` accepts any node name as an input
 *   key; it compiles the subgraph from the fed nodes to the fetched ones and never runs what lies upstream of
 *   a fed node. Feeding the target node's value A (and, where the graph branches around the target, the
 *   upstream values the rest consumes) and fetching the output therefore computes f(A) = logits.
 * - Logits: where the output is (a reshape of) a Softmax or Sigmoid node, logits mode fetches that node's input.
 *
 * Gradients: DO flow through `GraphModel.execute` from an intermediate node to the output. The executor runs
 * every node through the public tfjs-core ops (conv2d, relu6, mean, add, …), which record on the active
 * gradient tape like any other op call; its internal `tidy` and its disposal of intermediates do not break
 * the tape, because the engine keeps its own copies of the tensors a backward pass needs. (One requirement:
 * the gradient functions must be registered, which importing @tensorflow/tfjs-layers does; with tfjs-core
 * and the converter alone, tf.grad fails with "gradient function not found for Sum".) Evidence (tfjs 4.22,
 * the reference TF-Hub MobileNet v1 0.25 GraphModel, cpu and wasm backends; test/engine/graphModel.test.ts):
 *   - tf.grad of A ↦ execute({[Conv2d_13_pointwise/Relu6]: A}, output)[c] equals W[:, c] / 49 (the analytic
 *     gradient through Mean(7x7) then the 1x1 Logits conv; max abs difference 0 on both backends);
 *   - from Conv2d_11_pointwise/Relu6, through two depthwise-separable blocks, tf.grad agrees with central
 *     finite differences (e.g. -0.003041 vs -0.003055 at eps 1e-2 in float32);
 *   - the Keras MobileNet re-expressed as a GraphDef with the same weights gives the same CAM, Grad-CAM and
 *     Grad-CAM++ maps as the LayersModel at conv_pw_11/12/13_relu (correlation 0.99999999).
 * Caveat: a tfjs-core kernel without a registered gradient stops the backward pass ("gradient function not
 * found for X"). Converted graphs do contain such ops: StridedSlice, Einsum, TopK and CropAndResize have none
 * in tfjs 4.22. Control-flow graphs cannot run under `execute` at all (refused at load). So each GraphModel is
 * probed (tf.grad from its earliest spatial node to the summed logits on a zero input, on the current
 * backend) the first time `LoadedModel.supportsGradients` is read; when false, `gradientNote` says why.
 * The flag is conservative: targets downstream of the blocking op may still differentiate, and the session
 * reports a per-layer failure as METHOD_NOT_APPLICABLE anyway.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import { CamLensError } from './errors';
import { isSpatialShape, type ExecGraph, type GraphOp, type RunOptions } from './graph';
import { artifactsHandler } from './loader';
import { pickOutput, type ModelOutput, type OutputActivation } from './outputs';

/** One attribute value of a GraphDef node in the converter's JSON form. */
export interface RawAttr {
  b?: boolean;
  i?: string | number;
  f?: number;
  s?: string;
  type?: string;
  list?: { i?: (string | number)[]; s?: string[]; f?: number[]; shape?: RawShape[] };
  shape?: RawShape;
  tensor?: unknown;
}
interface RawShape {
  dim?: { size?: string | number }[];
  unknownRank?: boolean;
}
interface RawNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, RawAttr>;
}

/** A GraphModel node as an op. */
export interface GraphNodeOp extends GraphOp {
  /** The node's data inputs in order, as value ids; weight constants included (see `isConst`). */
  args: string[];
  attr: Record<string, RawAttr>;
}

/** Nodes that pass their input through unchanged. */
export const IDENTITY_OPS = new Set(['Identity', 'StopGradient', 'Snapshot', 'PreventGradient']);
/** Nodes that only change the shape of their input. */
export const RESHAPE_OPS = new Set(['Reshape', 'Squeeze', 'ExpandDims']);
const CONST_OPS = new Set(['Const']);

/** `name:0` → `name`; `name:k` stays; control inputs (`^name`) → undefined. */
function valueId(ref: string): string | undefined {
  if (ref.startsWith('^')) return undefined;
  const m = /^(.*):(\d+)$/.exec(ref);
  if (m && m[2] === '0') return m[1];
  return ref;
}

function nodeOf(id: string): string {
  const m = /^(.*):(\d+)$/.exec(id);
  return m ? m[1] : id;
}

/** Decodes a list-of-strings attribute (the converter writes bytes as base64). */
export function attrStrings(a: RawAttr | undefined): string[] {
  return (a?.list?.s ?? []).map((s) => Buffer.from(s, 'base64').toString('utf8'));
}

function rawShape(s: RawShape | undefined): (number | null)[] | undefined {
  if (!s || s.unknownRank) return undefined;
  return (s.dim ?? []).map((d) => {
    const n = Number(d.size ?? -1);
    return n < 0 ? null : n;
  });
}

/** Shapes inferred by execution, per model file, so reopening a model does not re-run the zero pass. */
const shapeCache = new Map<string, Map<string, number[]>>();
const MAX_CACHED_SHAPE_SETS = 8;

export interface GraphModelGraphOptions {
  /** Input height/width to infer shapes with where the graph leaves them free. */
  fallbackSize?: [number, number];
  /** Key of the shape cache (model.json path + size + mtime); no caching without one. */
  cacheKey?: string;
  /** The output to explain where the graph has several, by name or index (outputs.ts pickOutput). */
  output?: string | number;
}

export class GraphModelGraph implements ExecGraph {
  readonly kind = 'graph' as const;
  readonly ops: GraphNodeOp[] = [];
  readonly inputIds: string[];
  readonly outputIds: string[];
  readonly inputShape: (number | null)[];
  readonly inputDtype: string;
  readonly outputActivation: 'softmax' | 'sigmoid' | 'none';
  readonly outputs: readonly ModelOutput[];
  readonly outputIndex: number;
  /** The value holding the logits: the output, or the input of a final Softmax/Sigmoid. */
  readonly logitsId: string;
  /** Elements of the float weight constants the output depends on (each constant counted once). */
  readonly totalParams: number;
  /** A concrete input shape (batch 1; free height/width from the metadata, else 224): shape inference and probes use it. */
  readonly sampleInputShape: number[];
  private readonly nodes = new Map<string, RawNode>();
  private readonly byName = new Map<string, GraphNodeOp>();
  private readonly producer = new Map<string, GraphNodeOp>();
  private readonly consumers = new Map<string, GraphNodeOp[]>();

  constructor(readonly model: GraphModel, topology: { node?: RawNode[] }, opts: GraphModelGraphOptions = {}) {
    const raw = Array.isArray(topology.node) ? topology.node : [];
    for (const n of raw) {
      if (!n || typeof n.name !== 'string' || typeof n.op !== 'string') {
        throw new CamLensError('MODEL_INVALID', 'the GraphModel topology has a node without a name or op');
      }
      this.nodes.set(n.name, n);
    }
    const inputs = model.inputs;
    const outputs = model.outputs;
    if (inputs.length !== 1 || outputs.length < 1) {
      throw new CamLensError('UNSUPPORTED_MODEL',
        `the GraphModel has ${inputs.length} inputs and ${outputs.length} outputs; CAM Lens explains image classifiers with one input`);
    }
    const outputIds = outputs.map((o, i) => {
      const outIndex = /:(\d+)$/.exec(model.outputNodes[i] ?? '')?.[1];
      return outIndex && outIndex !== '0' ? `${o.name}:${outIndex}` : o.name;
    });
    const infos = outputs.map((o, i): ModelOutput => {
      const shape = o.shape;
      const last = shape?.[shape.length - 1];
      return {
        name: outputIds[i],
        units: typeof last === 'number' && last >= 0 ? last : null,
        activation: this.rawActivation(outputIds[i]),
        classifierShaped: shape === undefined || shape.length === 2,
      };
    });
    // Several outputs and a graph that does not record their shapes: one pass on a zero input tells which are
    // classifiers, so that the default choice is the right one.
    if (infos.length > 1 && infos.some((o) => o.units === null)) this.measureOutputs(infos, inputs[0].shape, opts.fallbackSize);
    this.outputs = infos;
    this.outputIndex = pickOutput(this.outputs, opts.output, 'the GraphModel');
    this.inputIds = [inputs[0].name];
    this.outputIds = [outputIds[this.outputIndex]];
    this.inputShape = (inputs[0].shape ?? [-1, -1, -1, 3]).map((d) => (d < 0 ? null : d));
    if (this.inputShape.length !== 4) {
      throw new CamLensError('UNSUPPORTED_MODEL', `the model's input has rank ${this.inputShape.length} (${JSON.stringify(this.inputShape)}); an image classifier takes [batch, height, width, channels]`);
    }
    this.inputDtype = String(inputs[0].dtype ?? 'float32');
    if (this.inputDtype !== 'float32') {
      throw new CamLensError('UNSUPPORTED_MODEL', `the GraphModel's input "${inputs[0].name}" takes ${this.inputDtype} values; CAM Lens feeds float32 images`);
    }

    const [fh, fw] = opts.fallbackSize ?? [224, 224];
    this.sampleInputShape = this.inputShape.map((d, i) => d ?? (i === 0 ? 1 : i === 1 ? fh : i === 2 ? fw : 3));
    const order = this.liveOrder();
    let totalParams = 0;
    const countedConsts = new Set<string>();
    for (const name of order) {
      const n = this.nodes.get(name) as RawNode;
      const args = (n.input ?? []).map(valueId).filter((x): x is string => x !== undefined);
      const valueInputs = args.filter((id) => !this.isConst(id));
      let params = 0;
      for (const id of args) {
        if (!this.isConst(id)) continue;
        const size = this.constSize(id);
        params += size;
        if (!countedConsts.has(id)) {
          countedConsts.add(id);
          totalParams += size;
        }
      }
      const op: GraphNodeOp = {
        name,
        className: n.op,
        inputs: valueInputs,
        outputs: [name],
        outputShape: rawShape(n.attr?._output_shapes?.list?.shape?.[0]) ?? [],
        inbound: valueInputs.map((id) => nodeOf(id)),
        params,
        args,
        attr: n.attr ?? {},
      };
      this.ops.push(op);
      this.byName.set(name, op);
      this.producer.set(name, op);
      for (const id of valueInputs) {
        // Secondary outputs (`name:1`) are values of the same op.
        const p = this.byName.get(nodeOf(id));
        if (p && !p.outputs.includes(id)) {
          p.outputs.push(id);
          this.producer.set(id, p);
        }
        const list = this.consumers.get(id) ?? [];
        list.push(op);
        this.consumers.set(id, list);
      }
    }
    this.totalParams = totalParams;
    const [activation, logitsId] = this.findLogits();
    this.outputActivation = activation;
    this.logitsId = logitsId;
    this.inferShapes(opts);
  }

  /** Names of the non-constant nodes the output depends on, inputs before consumers (iterative DFS). */
  private liveOrder(): string[] {
    const order: string[] = [];
    const state = new Map<string, 1 | 2>();
    const root = nodeOf(this.outputIds[0]);
    if (!this.nodes.has(root)) throw new CamLensError('MODEL_INVALID', `the GraphModel's output node "${root}" is not in its topology`);
    const stack: [string, boolean][] = [[root, false]];
    while (stack.length) {
      const [name, done] = stack.pop() as [string, boolean];
      if (done) {
        state.set(name, 2);
        order.push(name);
        continue;
      }
      if (state.has(name)) continue;
      const n = this.nodes.get(name);
      if (!n) throw new CamLensError('MODEL_INVALID', `the GraphModel references a node "${name}" that its topology does not define`);
      if (CONST_OPS.has(n.op)) continue;
      state.set(name, 1);
      stack.push([name, true]);
      const ins = (n.input ?? []).map(valueId).filter((x): x is string => x !== undefined).map(nodeOf);
      for (let i = ins.length - 1; i >= 0; i--) {
        const s = state.get(ins[i]);
        if (s === 1) throw new CamLensError('UNSUPPORTED_MODEL', `the GraphModel has a cycle through "${ins[i]}" (control flow); CAM Lens runs feed-forward graphs`);
        if (s === undefined) stack.push([ins[i], false]);
      }
    }
    return order;
  }

  isConst(id: string): boolean {
    const n = this.nodes.get(nodeOf(id));
    return n !== undefined && CONST_OPS.has(n.op);
  }

  /** The weight tensor of a constant node (owned by the model: never dispose it). */
  constTensor(id: string): tf.Tensor | undefined {
    return this.model.weights[nodeOf(id)]?.[0];
  }

  /** Elements of a float weight constant; integer constants (axes, shapes, slice bounds) are not parameters. */
  private constSize(id: string): number {
    const t = this.constTensor(id);
    return t && t.dtype === 'float32' ? t.size : 0;
  }

  /** Fills in the units (and shape class) of each output by one execution on a zero input; leaves them unknown if it fails. */
  private measureOutputs(infos: ModelOutput[], inputShape: number[] | undefined, fallback?: [number, number]): void {
    const [fh, fw] = fallback ?? [224, 224];
    const shape = (inputShape ?? [-1, -1, -1, 3]).map((d, i) => (d >= 0 ? d : i === 0 ? 1 : i === 1 ? fh : i === 2 ? fw : 3));
    const x = tf.zeros(shape);
    let outs: tf.Tensor[] = [];
    try {
      outs = this.execute({ [this.model.inputs[0].name]: x }, infos.map((o) => o.name));
      outs.forEach((t, i) => {
        infos[i].units = t.shape[t.shape.length - 1] ?? null;
        infos[i].classifierShaped = t.rank === 2;
      });
    } catch {
      // The model's own error comes again, with its message, when the chosen output is run.
    } finally {
      x.dispose();
      for (const t of outs) t.dispose();
    }
  }

  /** findLogits on the raw topology, for any output (the ops exist for the chosen one only). */
  private rawActivation(id: string): OutputActivation {
    let n = this.nodes.get(nodeOf(id));
    const valueInputs = (x: RawNode) => (x.input ?? []).map(valueId).filter((v): v is string => v !== undefined && !this.isConst(v));
    for (let guard = 0; n && guard < 64 && (IDENTITY_OPS.has(n.op) || RESHAPE_OPS.has(n.op)) && valueInputs(n).length === 1; guard++) {
      n = this.nodes.get(nodeOf(valueInputs(n)[0]));
    }
    if (n && valueInputs(n).length === 1) {
      if (n.op === 'Softmax') return 'softmax';
      if (n.op === 'Sigmoid') return 'sigmoid';
    }
    return 'none';
  }

  /** Walks back from the output through identities/reshapes to a final Softmax or Sigmoid. */
  private findLogits(): ['softmax' | 'sigmoid' | 'none', string] {
    let op = this.producer.get(this.outputIds[0]);
    while (op && (IDENTITY_OPS.has(op.className) || RESHAPE_OPS.has(op.className)) && op.inputs.length === 1) {
      op = this.producer.get(op.inputs[0]);
    }
    if (op && op.inputs.length === 1) {
      if (op.className === 'Softmax') return ['softmax', op.inputs[0]];
      if (op.className === 'Sigmoid') return ['sigmoid', op.inputs[0]];
    }
    return ['none', this.outputIds[0]];
  }

  private inferShapes(opts: GraphModelGraphOptions): void {
    if (this.ops.every((op) => op.outputShape.length > 0 || op.attr._output_shapes !== undefined)) return;
    const cached = opts.cacheKey ? shapeCache.get(opts.cacheKey) : undefined;
    let shapes = cached;
    if (!shapes) {
      const shape = this.sampleInputShape;
      const names = this.ops.filter((op) => op.name !== this.inputIds[0]).map((op) => op.name);
      shapes = new Map();
      const x = tf.zeros(shape);
      let outs: tf.Tensor[] = [];
      try {
        outs = this.execute({ [this.inputIds[0]]: x }, names);
        names.forEach((n, i) => (shapes as Map<string, number[]>).set(n, outs[i].shape));
      } finally {
        x.dispose();
        for (const t of outs) t.dispose();
      }
      shapes.set(this.inputIds[0], shape);
      if (opts.cacheKey) {
        shapeCache.set(opts.cacheKey, shapes);
        while (shapeCache.size > MAX_CACHED_SHAPE_SETS) shapeCache.delete(shapeCache.keys().next().value as string);
      }
    }
    // Values computed from the image carry the batch dimension first: show it as null, like Keras does.
    const batched = new Set<string>([this.inputIds[0]]);
    for (const op of this.ops) {
      const s = shapes.get(op.name);
      if (!s) continue;
      const fromInput = op.name === this.inputIds[0] || op.inputs.some((id) => batched.has(nodeOf(id)));
      if (fromInput) batched.add(op.name);
      op.outputShape = s.map((d, i) => (i === 0 && fromInput && s.length > 1 ? null : d));
    }
  }

  /** `GraphModel.execute` with errors turned into CamLensErrors and the result always an array. */
  private execute(inputs: tf.NamedTensorMap, fetches: string[]): tf.Tensor[] {
    if (fetches.length === 0) return [];
    let out: tf.Tensor | tf.Tensor[];
    try {
      out = this.model.execute(inputs, fetches);
    } catch (e) {
      const msg = ((e as Error)?.message ?? String(e)).split('\n')[0];
      if (/executeAsync|dynamic op|returned a promise/i.test(msg)) {
        throw new CamLensError('UNSUPPORTED_MODEL', `the GraphModel needs asynchronous execution (control flow or dynamic shapes): ${msg}`,
          'CAM Lens explains feed-forward classifiers; export the model without control flow');
      }
      if (/not (yet )?(implemented|supported)|Unsupported op|Unknown op|not registered/i.test(msg)) {
        throw new CamLensError('UNSUPPORTED_MODEL', `TensorFlow.js cannot run this GraphModel: ${msg}`);
      }
      throw new CamLensError('MODEL_INVALID', `the GraphModel failed to execute: ${msg}`);
    }
    return Array.isArray(out) ? out : [out];
  }

  get size(): number {
    return this.ops.length;
  }

  /** GraphModels are run as converted: nothing is folded at load. */
  get foldedOps(): GraphNodeOp[] {
    return this.ops;
  }

  op(name: string): GraphNodeOp {
    const op = this.byName.get(name);
    if (!op) {
      const tail = name.split('/').pop() ?? name;
      const near = [...this.byName.keys()].filter((n) => n.endsWith(`/${tail}`) || n.includes(name)).slice(0, 5);
      throw new CamLensError('UNKNOWN_LAYER', `no node named "${name}" in the GraphModel` + (near.length ? ` (did you mean ${near.join(', ')}?)` : ''),
        'run `cam-lens layers` to list the nodes');
    }
    return op;
  }

  hasOp(name: string): boolean {
    return this.byName.has(name);
  }

  spatialOps(): GraphNodeOp[] {
    return this.ops.filter((op) => op.name !== this.inputIds[0] && isSpatialShape(op.outputShape));
  }

  /** True for a node that averages (or maxes) a [N, H, W, C] map over its whole spatial extent. */
  isGlobalPool(op: GraphOp, kind: 'avg' | 'any' = 'any'): boolean {
    const n = op as GraphNodeOp;
    const inShape = this.producer.get(n.inputs[0])?.outputShape ?? [];
    if (inShape.length !== 4) return false;
    if (n.className === 'Mean' || (kind === 'any' && n.className === 'Max')) {
      const axesId = n.args[1];
      const axes = axesId && this.isConst(axesId) ? Array.from(this.constTensor(axesId)?.dataSync() ?? []) : [];
      const norm = new Set(axes.map((a) => (a < 0 ? a + 4 : a)));
      return norm.size === 2 && norm.has(1) && norm.has(2);
    }
    if (n.className === 'AvgPool' || (kind === 'any' && n.className === 'MaxPool')) {
      const out = n.outputShape;
      return out.length === 4 && out[1] === 1 && out[2] === 1;
    }
    return false;
  }

  /**
   * The last spatial node before the last global pooling (in topological order, every node here leads to
   * the output), skipping identities; without a global pooling, the last spatial node.
   */
  recommendedTarget(): GraphNodeOp {
    const spatial = this.spatialOps();
    if (spatial.length === 0) {
      throw new CamLensError('NO_SPATIAL_LAYER', 'the GraphModel has no node with a spatial (height x width x channels) output, so there is nothing to draw a map on');
    }
    for (let i = this.ops.length - 1; i >= 0; i--) {
      const op = this.ops[i];
      if (!this.isGlobalPool(op)) continue;
      let src = this.producer.get(op.inputs[0]);
      while (src && IDENTITY_OPS.has(src.className) && src.inputs.length === 1) src = this.producer.get(src.inputs[0]);
      if (src && src.name !== this.inputIds[0] && isSpatialShape(src.outputShape)) return src;
    }
    return spatial[spatial.length - 1];
  }

  producerOf(id: string): GraphNodeOp | undefined {
    return this.producer.get(id);
  }

  consumersOf(id: string): GraphNodeOp[] {
    return this.consumers.get(id) ?? [];
  }

  /**
   * Runs `GraphModel.execute` fed with `feeds` (any node values, which cut the graph there). A fetch that is
   * also fed comes back as a clone, so the caller may dispose every returned tensor. `keepIntermediates` is
   * not needed here: the executor's disposal of intermediates does not affect gradient tapes.
   */
  run(feeds: Map<string, tf.Tensor>, fetches: string[], opts: RunOptions = {}): Map<string, tf.Tensor> {
    const inputs: tf.NamedTensorMap = {};
    for (const [id, t] of feeds) {
      if (!this.producer.has(id)) throw new CamLensError('UNKNOWN_LAYER', `value ${id} is not a node of the GraphModel`);
      inputs[id] = t;
    }
    // Fetch ids → node values to execute (logits mode reads the softmax input for the output).
    const nameOf = new Map<string, string>();
    for (const id of fetches) {
      const name = opts.logits && id === this.outputIds[0] ? this.logitsId : id;
      if (!feeds.has(name) && !this.producer.has(name)) throw new CamLensError('UNKNOWN_LAYER', `value ${name} is not a node of the GraphModel`);
      nameOf.set(id, name);
    }
    const names = [...new Set([...nameOf.values()].filter((n) => !feeds.has(n)))];
    if (!feeds.has(this.inputIds[0]) && names.length > 0) this.checkFeedsSuffice(feeds, names);
    const outs = this.execute(inputs, names);
    const byName = new Map<string, tf.Tensor>(names.map((n, i) => [n, outs[i]]));
    const result = new Map<string, tf.Tensor>();
    const handedOut = new Set<tf.Tensor>();
    for (const [id, name] of nameOf) {
      let t = feeds.get(name) ?? (byName.get(name) as tf.Tensor);
      // Every returned tensor is the caller's: clone fed values and values fetched under two ids.
      if (feeds.has(name) || handedOut.has(t)) t = tf.clone(t);
      handedOut.add(t);
      result.set(id, t);
    }
    return result;
  }

  /** Without the image fed, the fetched values must be computable from the fed ones. */
  private checkFeedsSuffice(feeds: Map<string, tf.Tensor>, fetches: string[]): void {
    const seen = new Set<string>();
    const stack = [...fetches];
    while (stack.length) {
      const id = stack.pop() as string;
      if (seen.has(id) || feeds.has(id)) continue;
      seen.add(id);
      if (id === this.inputIds[0]) throw new CamLensError('BAD_ARGUMENT', 'the model input was not fed');
      const op = this.producer.get(id);
      if (op) stack.push(...op.inputs);
    }
  }

  dispose(): void {
    // The weights belong to the GraphModel, which the LoadedModel disposes.
  }
}

/**
 * The converter trusts its GraphDef; a model.json may come from anywhere. Before handing it over: nodes are
 * objects with unique string names and ops, and every input names a node that exists.
 */
function checkTopology(topology: unknown, file: string): void {
  const nodes = (topology as { node?: unknown })?.node;
  const bad = (msg: string) => new CamLensError('MODEL_INVALID', `${path.basename(file)}: ${msg}`, 'choose the model.json that the TensorFlow.js converter wrote');
  if (!Array.isArray(nodes) || nodes.length === 0) throw bad('the GraphModel topology has no nodes');
  const names = new Set<string>();
  for (const n of nodes as RawNode[]) {
    if (!n || typeof n !== 'object' || typeof n.name !== 'string' || typeof n.op !== 'string' || n.name === '') throw bad('the GraphModel topology has a node without a name or op');
    if (names.has(n.name)) throw bad(`two nodes are named "${n.name}"`);
    names.add(n.name);
    if (n.input !== undefined && (!Array.isArray(n.input) || !n.input.every((x) => typeof x === 'string'))) throw bad(`node "${n.name}" has inputs that are not node names`);
  }
  for (const n of nodes as RawNode[]) {
    for (const ref of n.input ?? []) {
      const target = nodeOf(ref.replace(/^\^/, ''));
      if (!names.has(target)) throw bad(`node "${n.name}" reads "${target}", which the topology does not define`);
    }
  }
}

export interface LoadedGraph {
  graphModel: GraphModel;
  graph: GraphModelGraph;
}

/** Builds a GraphModel from validated artifacts and wraps it; disposes it again if wrapping fails. */
export async function loadGraphModelArtifacts(artifacts: tf.io.ModelArtifacts, file: string, opts: { fallbackSize?: [number, number]; output?: string | number } = {}): Promise<LoadedGraph> {
  checkTopology(artifacts.modelTopology, file);
  let graphModel: GraphModel;
  try {
    graphModel = await loadGraphModel(artifactsHandler(artifacts));
  } catch (e) {
    const msg = ((e as Error)?.message ?? String(e)).split('\n')[0];
    throw new CamLensError('MODEL_INVALID', `TensorFlow.js could not build the GraphModel in ${file}: ${msg}`);
  }
  let cacheKey: string | undefined;
  try {
    const st = fs.statSync(file);
    cacheKey = `${file}\u0000${st.size}\u0000${st.mtimeMs}\u0000${(opts.fallbackSize ?? []).join('x')}\u0000${opts.output ?? ''}`;
  } catch {
    cacheKey = undefined;
  }
  try {
    const graph = new GraphModelGraph(graphModel, artifacts.modelTopology as { node?: RawNode[] }, { fallbackSize: opts.fallbackSize, cacheKey, output: opts.output });
    return { graphModel, graph };
  } catch (e) {
    graphModel.dispose();
    throw e;
  }
}

/**
 * Whether tf.grad gets through the graph from its earliest spatial node to the logits, on the current
 * backend: one forward and one backward pass on a zero input. Returns the reason when it does not.
 */
export function probeGradients(graph: GraphModelGraph): { ok: true } | { ok: false; reason: string } {
  const spatial = graph.spatialOps();
  if (spatial.length === 0) return { ok: false, reason: 'the GraphModel has no spatial node to take gradients at' };
  const first = spatial[0];
  try {
    tf.tidy(() => {
      const x = tf.zeros(graph.sampleInputShape);
      const a = graph.run(new Map([[graph.inputIds[0], x]]), [first.outputs[0]]).get(first.outputs[0]) as tf.Tensor;
      const f = (v: tf.Tensor): tf.Scalar => {
        const out = graph.run(new Map([[first.outputs[0], v]]), [graph.outputIds[0]], { logits: true, keepIntermediates: true });
        return tf.sum(out.get(graph.outputIds[0]) as tf.Tensor) as tf.Scalar;
      };
      const g = tf.grad(f)(a);
      if (g.shape.join() !== a.shape.join()) throw new Error(`gradient of shape [${g.shape}] for an activation of shape [${a.shape}]`);
    });
    return { ok: true };
  } catch (e) {
    const msg = ((e as Error)?.message ?? String(e)).split('\n')[0];
    return { ok: false, reason: `gradients do not flow through this GraphModel on the ${tf.getBackend()} backend (${msg})` };
  }
}
