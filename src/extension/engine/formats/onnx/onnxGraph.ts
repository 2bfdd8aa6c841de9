/**
 * An ONNX model as the engine's executable graph (ExecGraph): one op per ONNX node that runs per image,
 * compiled once at load into a closure over tfjs ops (ops/*.ts), executed by our own scheduler so that any
 * value can be fed or fetched: feeding a layer's activation A and fetching the logits gives f(A), the
 * function Grad-CAM differentiates with tf.grad (gradients reach every intermediate value, since every op is
 * a differentiable tfjs op).
 *
 * Values and layouts: see ops/types.ts. What crosses `run`'s boundary (feeds and fetches) is a rank-4 value
 * in its physical layout ([N, H, W, C] for a convolution's output, which is what the CAM methods take), any
 * other value in ONNX's logical layout.
 *
 * Fusion: Conv → BatchNormalization → Relu/Clip(0, 6) chains (each value with one consumer) become one
 * tf.fused.conv2d / depthwiseConv2d with the normalisation folded into the filter and bias and the
 * activation clamped in the kernel. The values inside a chain stay addressable: `run` uses the chain's
 * separate ops whenever one of them is fed or fetched.
 *
 * Batch size: the graph is analysed at batch 1, 2 and 3 (analyze.ts). Constants that follow the batch are
 * extrapolated per batch size; where the graph fixes batch 1 (a literal Reshape to [1, -1]), a batch of n
 * images runs as n single images, so Score-CAM's batches work on every model.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../../errors';
import { isSpatialShape, type ExecGraph, type GraphOp, type RunOptions } from '../../graph';
import type { LinearHead } from '../../cam/base';
import { analyze, opContext, type Analysis, type OnnxIr } from './analyze';
import { defaultPerm, identityPerm, physical, relayout } from './layout';
import { opDef } from './ops/registry';
import { buildConv, type ChannelAffine, type ConvSpec, type LinearInfo } from './ops/nn';
import type { CompileCtx, Compiled, NodeDef, RunCtx } from './ops/types';
import type { HostTensor } from './tensor';
import type { ModelOutput } from '../../outputs';
import { GradFilters } from '../../gradOps';

export interface OnnxOp extends GraphOp {
  /** The ONNX node (absent for the input op). */
  node?: NodeDef;
  compiled?: Compiled;
  /** Per node input: the runtime value id it reads, or undefined (constant or absent). */
  args: (string | undefined)[];
  /** Set on a fused op: the names of the nodes it stands for. */
  fusedFrom?: string[];
  /** Set on a fused op: the values inside the chain that it does not produce. */
  hidden?: string[];
}

/** Ops that only pass or reshape values: skipped when looking for the softmax and the CAM head. */
const PASS = new Set(['Identity', 'Dropout', 'Flatten', 'Reshape', 'Squeeze', 'Unsqueeze', 'Cast']);

export interface OnnxGraphOptions {
  /** Logical input shape at batch 1 ([1, C, H, W], or [1, H, W, C] for channels-last inputs). */
  inputShape: number[];
  /** Physical layout of the input: NHWC from NCHW ([0, 2, 3, 1]) or as is. */
  inputPerm: number[];
}

interface BatchConst {
  base: HostTensor;
  slope: Float64Array;
}

export class OnnxGraph implements ExecGraph {
  readonly kind = 'onnx' as const;
  readonly ops: OnnxOp[] = [];
  /** Execution order with the fused chains in place of their members. */
  readonly foldedOps: OnnxOp[] = [];
  readonly inputIds: string[];
  readonly outputIds: string[];
  /** Physical [null, H, W, C]. */
  readonly inputShape: (number | null)[];
  readonly outputActivation: 'softmax' | 'sigmoid' | 'none';
  readonly outputs: readonly ModelOutput[];
  readonly outputIndex: number;
  /** The value holding the logits: the output, or the input of a final Softmax/LogSoftmax/Sigmoid. */
  readonly logitsId: string;
  readonly totalParams: number;
  /** Batches of n > 1 run image by image (the graph fixes batch 1). */
  readonly splitBatches: boolean;
  /** Why batches run image by image, if they do. */
  readonly splitReason?: string;
  private readonly analysis: Analysis;
  private readonly perms = new Map<string, number[]>();
  /** Logical dims that grow with the batch: per value, the slope of each dim. */
  private readonly dimSlopes = new Map<string, number[]>();
  private readonly batchConsts = new Map<string, BatchConst>();
  private readonly constCache = new Map<string, HostTensor>();
  private readonly byName = new Map<string, OnnxOp>();
  private readonly byOutput = new Map<string, OnnxOp>();
  private readonly producer = new Map<string, OnnxOp>();
  private readonly consumers = new Map<string, OnnxOp[]>();
  /** Fused op producing a value (its chain's last output). */
  private readonly fusedProducer = new Map<string, OnnxOp>();
  private readonly owned: tf.Tensor[] = [];
  /** Rotated filters for input gradients (gradOps.ts), made at load for small models. */
  private readonly gradFilters = new GradFilters();

  constructor(readonly ir: OnnxIr, opts: OnnxGraphOptions) {
    const inputName = ir.input.name;
    this.inputIds = [inputName];
    this.outputIds = [ir.output.name];
    this.outputs = ir.outputs;
    this.outputIndex = ir.outputIndex;
    const a1 = analyze(ir, opts.inputShape);
    this.analysis = a1;
    let split: string | undefined;
    let a2: Analysis | undefined;
    try {
      a2 = analyze(ir, [2, ...opts.inputShape.slice(1)]);
      const a3 = analyze(ir, [3, ...opts.inputShape.slice(1)]);
      split = this.batchDependence(a1, a2, a3);
    } catch (e) {
      split = `the graph does not run at batch 2 (${(e as Error).message})`;
    }
    for (const [id, s] of a1.shapes) {
      const s2 = a2?.shapes.get(id);
      this.dimSlopes.set(id, s.map((d, i) => (s2 && !split ? s2[i] - d : 0)));
    }
    this.perms.set(inputName, opts.inputPerm);
    const phys = physical(opts.inputShape, opts.inputPerm);
    this.inputShape = [null, ...phys.slice(1)];
    const inputOp: OnnxOp = { name: inputName, className: 'InputLayer', inputs: [], outputs: [inputName], outputShape: this.inputShape, inbound: [], params: 0, args: [] };
    this.addOp(inputOp);

    const staticReads = new Set<string>();
    let total = 0;
    try {
      for (const node of a1.runtime) {
        const op = this.compileNode(node, staticReads);
        total += op.params;
        this.addOp(op);
      }
      for (const id of staticReads) {
        if (this.batchConsts.has(id)) split ??= `the constant "${id}" changes with the batch and is read once at load`;
      }
      this.fuse();
      this.gradFilters.prepareIfSmall();
    } catch (e) {
      this.dispose();
      throw e;
    }
    this.splitBatches = split !== undefined;
    this.splitReason = split;
    this.totalParams = total;
    const [activation, logitsId] = this.findLogits();
    this.outputActivation = activation;
    this.logitsId = logitsId;
  }

  /** Constants that change with the batch must do so linearly (shape arithmetic); returns why not, if not. */
  private batchDependence(a1: Analysis, a2: Analysis, a3: Analysis): string | undefined {
    for (const [id, v1] of a1.consts) {
      if (this.ir.initializers.has(id)) continue;
      const v2 = a2.consts.get(id);
      const v3 = a3.consts.get(id);
      if (!v2 || !v3) return `the value "${id}" is constant at batch 1 only`;
      const same = v1.dims.length === v2.dims.length && v1.dims.every((d, i) => d === v2.dims[i]) && v1.data.every((x, i) => x === v2.data[i]);
      if (same) continue;
      if (v1.dims.join() !== v2.dims.join() || v1.dims.join() !== v3.dims.join()) return `the constant "${id}" changes shape with the batch`;
      const slope = Float64Array.from(v1.data, (x, i) => v2.data[i] - x);
      if (!v1.data.every((x, i) => Math.abs(x + 2 * slope[i] - v3.data[i]) < 1e-6)) return `the constant "${id}" is not linear in the batch`;
      this.batchConsts.set(id, { base: v1, slope });
    }
    return undefined;
  }

  private constAt(id: string, batch: number): HostTensor {
    const bc = this.batchConsts.get(id);
    if (!bc || batch === 1) {
      const v = this.analysis.consts.get(id);
      if (!v) throw new CamLensError('MODEL_INVALID', `constant "${id}" is missing`);
      return v;
    }
    const key = `${id}\u0000${batch}`;
    let v = this.constCache.get(key);
    if (!v) {
      const data = bc.base.data instanceof Float32Array
        ? Float32Array.from(bc.base.data, (x, i) => x + bc.slope[i] * (batch - 1))
        : Float64Array.from(bc.base.data, (x, i) => x + bc.slope[i] * (batch - 1));
      v = { ...bc.base, data };
      if (this.constCache.size > 256) this.constCache.clear();
      this.constCache.set(key, v);
    }
    return v;
  }

  private compileNode(node: NodeDef, staticReads: Set<string>): OnnxOp {
    const a = this.analysis;
    const def = opDef(node.opType);
    if (!def) throw new CamLensError('UNSUPPORTED_MODEL', `operator ${node.opType} (node "${node.name}") is not supported`);
    const base = opContext(this.ir, node, a.consts, a.shapes, 1);
    const perms = base.inputs.map((inp) => (inp.present && !inp.value ? this.perms.get(inp.name) as number[] : identityPerm(inp.shape.length)));
    const outShapes = node.outputs.map((o) => a.shapes.get(o) ?? []);
    const own = <T extends tf.Tensor>(t: T): T => {
      this.owned.push(t);
      return t;
    };
    const constant = (i: number, what: string): HostTensor => {
      const v = base.constant(i, what);
      staticReads.add(node.inputs[i]);
      return v;
    };
    const ctx: CompileCtx = {
      ...base,
      constant,
      perms,
      outShapes,
      own,
      gradFilters: this.gradFilters,
      staticConst: constant,
      dynamicConst: (i, what) => {
        base.constant(i, what);
        const id = node.inputs[i];
        return (rt: RunCtx) => rt.constAt(id);
      },
      data: (i) => {
        const inp = base.inputs[i];
        if (!inp?.present) throw new CamLensError('MODEL_INVALID', `node "${node.name}" (${node.opType}) has no input ${i}`);
        if (inp.value) {
          staticReads.add(inp.name);
          const v = inp.value;
          const isFloat = v.data instanceof Float32Array;
          const t = own(isFloat ? tf.tensor(v.data, v.dims, 'float32') : tf.tensor(Int32Array.from(v.data), v.dims, 'int32'));
          return () => t;
        }
        return (ins) => ins[i] as tf.Tensor;
      },
    };
    let compiled: Compiled;
    try {
      compiled = def.compile(ctx);
    } catch (e) {
      if (e instanceof CamLensError) throw e;
      throw new CamLensError('MODEL_INVALID', `node "${node.name}" (${node.opType}) cannot be compiled (${(e as Error)?.message ?? String(e)})`);
    }
    node.outputs.forEach((o, i) => {
      if (o !== '') this.perms.set(o, compiled.perms[i] ?? defaultPerm((a.shapes.get(o) ?? []).length));
    });
    const args = base.inputs.map((inp) => (inp.present && !inp.value ? inp.name : undefined));
    const inputs = [...new Set(args.filter((x): x is string => x !== undefined))];
    const outputs = node.outputs.filter((o) => o !== '');
    return {
      name: node.name,
      className: node.opType,
      inputs,
      outputs,
      outputShape: this.externalShape(outputs[0]),
      inbound: inputs.map((id) => this.producer.get(id)?.name ?? '(input)'),
      params: compiled.params ?? 0,
      node,
      compiled,
      args,
    };
  }

  /** The value's shape as `run` hands it out (batch as null): physical for rank 4, logical otherwise. */
  private externalShape(id: string): (number | null)[] {
    const s = this.analysis.shapes.get(id);
    if (!s) return [];
    const perm = this.externalPerm(id);
    return perm.map((a) => (a === 0 ? null : s[a]));
  }

  /** ONNX's (logical) shape of a runtime value at batch 1. */
  logicalShape(id: string): number[] {
    const s = this.analysis.shapes.get(id);
    if (!s) throw new CamLensError('UNKNOWN_LAYER', `"${id}" is not a runtime value of the ONNX model`);
    return s.slice();
  }

  /** A constant of the graph (initializer or folded), at batch 1. */
  constValue(id: string): HostTensor | undefined {
    return this.analysis.consts.get(id);
  }

  private externalPerm(id: string): number[] {
    const p = this.perms.get(id) as number[];
    return p.length === 4 ? p : identityPerm(p.length);
  }

  private addOp(op: OnnxOp): void {
    this.ops.push(op);
    this.byName.set(op.name, op);
    op.outputs.forEach((o) => {
      this.producer.set(o, op);
      if (!this.byOutput.has(o)) this.byOutput.set(o, op);
    });
    for (const id of op.inputs) {
      const list = this.consumers.get(id) ?? [];
      list.push(op);
      this.consumers.set(id, list);
    }
  }

  private singleConsumer(id: string): OnnxOp | undefined {
    const c = this.consumers.get(id) ?? [];
    if (c.length !== 1 || this.outputIds.includes(id)) return undefined;
    // The consumer must read the value once, as its data input.
    const op = c[0];
    return op.args.filter((x) => x === id).length === 1 && op.args[0] === id ? op : undefined;
  }

  /** Conv → BatchNormalization → Relu/Clip(0, 6) chains into one fused convolution each. */
  private fuse(): void {
    const replaced = new Map<OnnxOp, OnnxOp | null>();
    for (const conv of this.ops) {
      const spec = conv.compiled?.info?.conv as ConvSpec | undefined;
      if (!spec || conv.outputs.length !== 1) continue;
      const members = [conv];
      let bn: ChannelAffine | undefined;
      let act: 'relu' | 'relu6' | undefined;
      let cur = conv.outputs[0];
      let next = this.singleConsumer(cur);
      if (next?.className === 'BatchNormalization' && next.compiled?.info?.bn && next.outputs.length === 1) {
        bn = next.compiled.info.bn as ChannelAffine;
        members.push(next);
        cur = next.outputs[0];
        next = this.singleConsumer(cur);
      }
      const a = next?.compiled?.info?.activation as 'relu' | 'relu6' | undefined;
      if (next && a && (next.className === 'Relu' || next.className === 'Clip') && next.outputs.length === 1) {
        act = a;
        members.push(next);
      }
      if (members.length === 1) continue;
      const last = members[members.length - 1];
      const from = this.perms.get(conv.args[0] as string) as number[];
      const run = buildConv(spec, (t) => {
        this.owned.push(t);
        return t;
      }, bn, act, this.gradFilters);
      const get = conv.args[0] as string;
      const fused: OnnxOp = {
        ...conv,
        outputs: last.outputs,
        outputShape: last.outputShape,
        compiled: { perms: [[0, 2, 3, 1]], exec: (ins) => [run(relayout(ins[0] as tf.Tensor, from, [0, 2, 3, 1]))] },
        args: [get],
        fusedFrom: members.map((m) => m.name),
        hidden: members.slice(0, -1).map((m) => m.outputs[0]),
      };
      replaced.set(conv, fused);
      for (const m of members.slice(1)) replaced.set(m, null);
      this.fusedProducer.set(last.outputs[0], fused);
    }
    for (const op of this.ops) {
      const r = replaced.get(op);
      if (r === undefined) this.foldedOps.push(op);
      else if (r) this.foldedOps.push(r);
    }
  }

  /** Walks back from the output through shape-only ops to a final Softmax, LogSoftmax or Sigmoid. */
  private findLogits(): ['softmax' | 'sigmoid' | 'none', string] {
    let op = this.producer.get(this.outputIds[0]);
    while (op && PASS.has(op.className) && op.inputs.length === 1) op = this.producer.get(op.inputs[0]);
    if (op && op.inputs.length === 1 && op.node) {
      if (op.className === 'Softmax' || op.className === 'LogSoftmax') return ['softmax', op.inputs[0]];
      if (op.className === 'Sigmoid') return ['sigmoid', op.inputs[0]];
    }
    return ['none', this.outputIds[0]];
  }

  get size(): number {
    return this.ops.length;
  }

  /** An op by node name, or by the name of a value it outputs (a second output gets an op of its own). */
  op(name: string): OnnxOp {
    const hit = this.byName.get(name);
    if (hit) return hit;
    const owner = this.byOutput.get(name);
    if (owner) {
      if (owner.outputs[0] === name) return owner;
      const alias: OnnxOp = { ...owner, name, outputs: [name], outputShape: this.externalShape(name) };
      this.byName.set(name, alias);
      return alias;
    }
    const near = [...this.byName.keys()].filter((n) => n.includes(name) || name.includes(n)).slice(0, 5);
    throw new CamLensError('UNKNOWN_LAYER', `no node or value named "${name}" in the ONNX model` + (near.length ? ` (did you mean ${near.join(', ')}?)` : ''),
      'run `cam-lens layers` to list the nodes and their output names');
  }

  hasOp(name: string): boolean {
    return this.byName.has(name) || this.byOutput.has(name);
  }

  spatialOps(): OnnxOp[] {
    return this.ops.filter((op) => op.node && isSpatialShape(op.outputShape));
  }

  /** True for an op that averages (or maxes) a rank-4 value over its whole spatial extent. */
  isGlobalPool(op: OnnxOp, kind: 'avg' | 'any' = 'any'): boolean {
    const c = op.className;
    const src = op.inputs[0];
    const inShape = src ? this.analysis.shapes.get(src) : undefined;
    if (!inShape || inShape.length !== 4 || !op.node) return false;
    if (c === 'GlobalAveragePool' || (kind === 'any' && c === 'GlobalMaxPool')) return true;
    if (c === 'ReduceMean' || (kind === 'any' && c === 'ReduceMax')) {
      // The reduced axes must be the input's height and width (physical axes 1 and 2 of its layout), plus
      // axes of size 1 at most.
      const axes = op.compiled?.info?.reduceAxes as number[] | undefined;
      const perm = this.perms.get(src) as number[];
      if (!axes) return false;
      const spatial = [perm[1], perm[2]];
      return spatial.every((a) => axes.includes(a)) && axes.every((a) => spatial.includes(a) || inShape[a] === 1);
    }
    if (c === 'AveragePool' || (kind === 'any' && c === 'MaxPool')) {
      const out = this.analysis.shapes.get(op.outputs[0]) ?? [];
      return out.length === 4 && out[2] === 1 && out[3] === 1;
    }
    return false;
  }

  recommendedTarget(): OnnxOp {
    const spatial = this.spatialOps();
    if (spatial.length === 0) {
      throw new CamLensError('NO_SPATIAL_LAYER', 'the ONNX model has no node with a spatial (height x width x channels) output, so there is nothing to draw a map on');
    }
    for (let i = this.ops.length - 1; i >= 0; i--) {
      const op = this.ops[i];
      const flattensMap = (op.className === 'Flatten' || op.className === 'Reshape') && isSpatialShape(this.producer.get(op.inputs[0])?.outputShape ?? []);
      if (!this.isGlobalPool(op) && !flattensMap) continue;
      let src = this.producer.get(op.inputs[0]);
      while (src && (src.className === 'Identity' || src.className === 'Dropout') && src.inputs.length === 1) src = this.producer.get(src.inputs[0]);
      if (src && src.node && isSpatialShape(src.outputShape)) return src;
    }
    return spatial[spatial.length - 1];
  }

  producerOf(id: string): OnnxOp | undefined {
    return this.producer.get(id);
  }

  consumersOf(id: string): OnnxOp[] {
    return this.consumers.get(id) ?? [];
  }

  /** Whether `id` reaches the logits through shape-only ops (and a final softmax). */
  reachesLogits(id: string): boolean {
    let cur = id;
    for (let guard = 0; guard < 64; guard++) {
      if (cur === this.logitsId || this.outputIds.includes(cur)) return true;
      const cons = this.consumersOf(cur);
      if (cons.length !== 1 || !PASS.has(cons[0].className)) return false;
      cur = cons[0].outputs[0];
    }
    return false;
  }

  /**
   * CAM's linear head after `target` (see head.ts): target → (Identity/Dropout) → a global average pooling
   * (GlobalAveragePool, ReduceMean over height and width, an AveragePool to 1x1) → (shape-only) → either the
   * logits ('identity': the target's channels are the classes) or one Gemm/MatMul/1x1 Conv with constant
   * weights, an optional constant bias Add, then the logits ('dense').
   */
  linearHead(target: GraphOp): LinearHead {
    const na = (why: string) => new CamLensError('METHOD_NOT_APPLICABLE', `CAM needs global average pooling then a linear classifier right after the target layer: ${why}`,
      'use gradcam, which works on any differentiable model');
    const next = (id: string): OnnxOp => {
      const c = this.consumersOf(id);
      if (c.length !== 1) throw na(c.length === 0 ? 'the layer feeds nothing' : `the layer output branches into ${c.length} nodes`);
      return c[0];
    };
    let id = target.outputs[0];
    let op = next(id);
    while (op.className === 'Identity' || op.className === 'Dropout') {
      id = op.outputs[0];
      op = next(id);
    }
    if (!this.isGlobalPool(op, 'avg')) throw na(`"${target.name}" is followed by ${op.className} "${op.name}", not a global average pooling`);
    id = op.outputs[0];
    if (this.reachesLogits(id)) return { kind: 'identity' };
    op = next(id);
    while (PASS.has(op.className)) {
      id = op.outputs[0];
      op = next(id);
    }
    let weights: HostTensor | undefined;
    const info = op.compiled?.info;
    if ((op.className === 'Gemm' || op.className === 'MatMul') && info?.linear && op.args[0] === id) {
      if (op.className === 'Gemm' && op.node?.attrs.get('transA')?.i) throw na(`the classifier Gemm "${op.name}" transposes the pooled features`);
      weights = (info.linear as LinearInfo).weights;
    } else if (op.className === 'Conv' && info?.conv) {
      const spec = info.conv as ConvSpec;
      const f = spec.filters[0];
      if (spec.kind !== 'conv2d' || f.dims[0] !== 1 || f.dims[1] !== 1) throw na(`the classifier convolution "${op.name}" is not a 1x1 convolution`);
      weights = { ...f, dims: [f.dims[2], f.dims[3]] };
    }
    if (!weights || weights.dims.length !== 2) throw na(`the pooled features go to ${op.className} "${op.name}", not straight to a linear classifier`);
    let after = op.outputs[0];
    const cons = this.consumersOf(after);
    if (cons.length === 1 && cons[0].className === 'Add' && cons[0].inputs.length === 1) after = cons[0].outputs[0];
    if (!this.reachesLogits(after)) throw na(`the classifier ${op.className} "${op.name}" is followed by more than a bias and a softmax`);
    const w = weights;
    return { kind: 'dense', weights: tf.tensor2d(Float32Array.from(w.data), w.dims as [number, number]) };
  }

  /** Physical shape a value should have at batch n (for the consistency check after each op). */
  private expectedShape(id: string, batch: number): number[] | undefined {
    const s = this.analysis.shapes.get(id);
    const perm = this.perms.get(id);
    if (!s || !perm) return undefined;
    const slopes = this.dimSlopes.get(id) ?? [];
    const dims = s.map((d, i) => d + (slopes[i] ?? 0) * (batch - 1));
    return physical(dims, perm);
  }

  run(feeds: Map<string, tf.Tensor>, fetches: string[], opts: RunOptions = {}): Map<string, tf.Tensor> {
    const firstId = feeds.keys().next().value as string | undefined;
    if (firstId === undefined) throw new CamLensError('BAD_ARGUMENT', 'the model input was not fed');
    for (const id of feeds.keys()) {
      if (!this.perms.has(id)) throw new CamLensError('UNKNOWN_LAYER', `value ${id} is not a runtime value of the ONNX model`);
    }
    const firstPerm = this.externalPerm(firstId);
    const batch = (feeds.get(firstId) as tf.Tensor).shape[firstPerm.indexOf(0)] ?? 1;
    if (this.splitBatches && batch > 1) return this.runSplit(feeds, fetches, opts, batch);
    return this.runBatch(feeds, fetches, opts, batch);
  }

  /** n images one at a time, results stacked (for graphs that fix batch 1). */
  private runSplit(feeds: Map<string, tf.Tensor>, fetches: string[], opts: RunOptions, batch: number): Map<string, tf.Tensor> {
    const parts = new Map<string, tf.Tensor[]>(fetches.map((id) => [id, []]));
    const axisOf = (id: string) => this.externalPerm(id).indexOf(0);
    try {
      for (let i = 0; i < batch; i++) {
        const sub = new Map<string, tf.Tensor>();
        for (const [id, t] of feeds) {
          const ax = axisOf(id);
          sub.set(id, tf.slice(t, t.shape.map((_, k) => (k === ax ? i : 0)), t.shape.map((d, k) => (k === ax ? 1 : d))));
        }
        const out = this.runBatch(sub, fetches, opts, 1);
        for (const id of fetches) {
          const t = out.get(id) as tf.Tensor;
          (parts.get(id) as tf.Tensor[]).push(sub.has(id) && t === sub.get(id) ? tf.clone(t) : t);
        }
        if (!opts.keepIntermediates) for (const t of sub.values()) t.dispose();
      }
      const result = new Map<string, tf.Tensor>();
      for (const id of fetches) {
        const list = parts.get(id) as tf.Tensor[];
        result.set(id, tf.concat(list, axisOf(id)));
        if (!opts.keepIntermediates) for (const t of list) t.dispose();
      }
      return result;
    } catch (e) {
      if (!opts.keepIntermediates) for (const list of parts.values()) for (const t of list) t.dispose();
      throw e;
    }
  }

  private runBatch(feeds: Map<string, tf.Tensor>, fetches: string[], opts: RunOptions, batch: number): Map<string, tf.Tensor> {
    const keepAll = Boolean(opts.keepIntermediates);
    const targets = fetches.map((id) => (opts.logits && id === this.outputIds[0] ? this.logitsId : id));
    const touched = new Set<string>([...feeds.keys(), ...targets]);
    const producerOf = (id: string): OnnxOp | undefined => {
      const f = this.fusedProducer.get(id);
      if (f && !(f.hidden ?? []).some((h) => touched.has(h))) return f;
      return this.producer.get(id);
    };
    // The ops needed: walk back from the fetches, stopping at fed values.
    const needed = new Set<OnnxOp>();
    const stack = [...targets];
    const seen = new Set<string>();
    while (stack.length) {
      const id = stack.pop() as string;
      if (seen.has(id) || feeds.has(id)) continue;
      seen.add(id);
      const op = producerOf(id);
      if (!op) throw new CamLensError('UNKNOWN_LAYER', `value ${id} cannot be computed from the given inputs`);
      if (!op.node) throw new CamLensError('BAD_ARGUMENT', 'the model input was not fed');
      needed.add(op);
      for (const a of op.args) if (a !== undefined) stack.push(a);
    }
    const order = this.executionOrder(needed);
    const remaining = new Map<string, number>();
    for (const op of order) for (const a of op.args) if (a !== undefined) remaining.set(a, (remaining.get(a) ?? 0) + 1);
    const values = new Map<string, tf.Tensor>();
    const refs = new Map<tf.Tensor, number>();
    const caller = new Set<tf.Tensor>(feeds.values());
    const hold = (id: string, t: tf.Tensor) => {
      values.set(id, t);
      refs.set(t, (refs.get(t) ?? 0) + 1);
    };
    const release = (id: string) => {
      const t = values.get(id);
      if (!t) return;
      values.delete(id);
      const r = (refs.get(t) ?? 1) - 1;
      refs.set(t, r);
      if (r <= 0 && !caller.has(t)) t.dispose();
    };
    const keep = new Set<string>(targets);
    const rt: RunCtx = { batch, constAt: (id) => this.constAt(id, batch) };
    try {
      for (const [id, t] of feeds) hold(id, relayout(t, this.externalPerm(id), this.perms.get(id) as number[]));
      for (const op of order) {
        const ins = op.args.map((a) => (a === undefined ? undefined : values.get(a)));
        let outs: tf.Tensor[];
        try {
          outs = tf.tidy(() => (op.compiled as Compiled).exec(ins, rt));
        } catch (e) {
          if (e instanceof CamLensError) throw e;
          const msg = ((e as Error)?.message ?? String(e)).split('\n')[0];
          throw new CamLensError(/gradient|not registered|Cannot compute/i.test(msg) ? 'METHOD_NOT_APPLICABLE' : 'MODEL_INVALID',
            `node "${op.name}" (${op.className}) failed on the ${tf.getBackend()} backend: ${msg}`);
        }
        op.outputs.forEach((id, i) => {
          const t = outs[i];
          const want = this.expectedShape(id, batch);
          if (want && (t.rank !== want.length || t.shape.some((d, k) => d !== want[k]))) {
            throw new CamLensError('MODEL_INVALID', `node "${op.name}" (${op.className}) produced a [${t.shape.join(', ')}] tensor where the model's shapes give [${want.join(', ')}]`);
          }
          hold(id, t);
        });
        if (!keepAll) {
          for (const a of op.args) {
            if (a === undefined) continue;
            const left = (remaining.get(a) ?? 1) - 1;
            remaining.set(a, left);
            if (left === 0 && !keep.has(a)) release(a);
          }
        }
      }
      const result = new Map<string, tf.Tensor>();
      const handed = new Set<tf.Tensor>();
      fetches.forEach((id, i) => {
        const src = targets[i];
        let t = values.get(src) as tf.Tensor;
        if (!t) throw new CamLensError('UNKNOWN_LAYER', `value ${src} was not computed`);
        const out = relayout(t, this.perms.get(src) as number[], this.externalPerm(src));
        t = out;
        handed.add(t);
        result.set(id, t);
      });
      if (!keepAll) {
        for (const [id, t] of [...values]) {
          if (!handed.has(t)) release(id);
        }
      }
      return result;
    } catch (e) {
      if (!keepAll) for (const id of [...values.keys()]) release(id);
      throw e;
    }
  }

  /** The needed ops in execution order (fused ops sit where their first member was). */
  private executionOrder(needed: Set<OnnxOp>): OnnxOp[] {
    const out: OnnxOp[] = [];
    const fusedAt = new Map<string, OnnxOp[]>();
    for (const op of needed) if (op.fusedFrom) fusedAt.set(op.fusedFrom[0], [...(fusedAt.get(op.fusedFrom[0]) ?? []), op]);
    for (const op of this.ops) {
      for (const f of fusedAt.get(op.name) ?? []) out.push(f);
      if (needed.has(op)) out.push(op);
    }
    return out;
  }

  /** Weight elements per op and the sample input shape (for probes and benches). */
  get sampleInputShape(): number[] {
    return [1, ...(this.inputShape.slice(1) as number[])];
  }

  dispose(): void {
    for (const t of this.owned) t.dispose();
    this.owned.length = 0;
    this.gradFilters.dispose();
  }
}
