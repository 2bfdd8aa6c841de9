/**
 * The contract between the ONNX graph builder and the operator implementations.
 *
 * Every value of the graph is either a constant (a HostTensor: initializers, Constant nodes, and everything
 * computed from constants and from static shapes, such as Shape → Gather → Concat → Reshape arithmetic, which
 * is folded once the input size is known) or a runtime value: a tfjs tensor computed per image.
 *
 * Layout of runtime values. ONNX is channels-first ([N, C, H, W]); the engine and every CAM method work on
 * [1, h, w, K] activations. A runtime value therefore has a logical shape (ONNX's) and a physical layout: the
 * permutation `perm` such that physical axis i holds logical axis perm[i]. Convolutions, pooling and
 * normalisation produce [0, 2, 3, 1] (NHWC) and read it; element-wise ops keep their input's layout; ops that
 * address axes (Concat, Split, Softmax, Reduce*, Slice, Pad, LayerNormalization) map each logical axis to its
 * physical position; ops that depend on the logical memory order (Reshape, Flatten, Squeeze, Unsqueeze,
 * MatMul over a moved axis) convert explicitly, and a transposition that only moves axes of size 1 is a
 * reshape. A Transpose node costs nothing: only the permutation changes. Hence a rank-4 value's physical
 * tensor is [N, H, W, C] for the maps, including after ConvNeXt's Transpose to channels-last.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../../../errors';
import { AttrType, attrText, type AttributeProto, type NodeProto, type TensorProto } from '../proto';
import type { HostTensor } from '../tensor';
import type { GradFilters } from '../../../gradOps';

/** A node as the builder sees it: unique name, and its position in the file. */
export interface NodeDef {
  index: number;
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Map<string, AttributeProto>;
  proto: NodeProto;
}

/** Per-batch-size values that compiled ops read at run time (shape constants that depend on the batch). */
export interface RunCtx {
  batch: number;
  /** The constant `id` at this batch size. */
  constAt(id: string): HostTensor;
}

export function unsupported(node: NodeDef, what: string, hint?: string): CamLensError {
  return new CamLensError('UNSUPPORTED_MODEL', `operator ${node.opType} (node "${node.name}"): ${what}`, hint);
}

export function invalid(node: NodeDef, what: string): CamLensError {
  return new CamLensError('MODEL_INVALID', `node "${node.name}" (${node.opType}): ${what}`, 'the model file is inconsistent: export it again');
}

/** Typed access to a node's attributes, with the node named in every error. */
export class Attrs {
  constructor(private readonly node: NodeDef) {}

  has(name: string): boolean {
    return this.node.attrs.has(name);
  }

  private get(name: string, types: number[]): AttributeProto | undefined {
    const a = this.node.attrs.get(name);
    if (!a) return undefined;
    if (a.refAttrName) throw unsupported(this.node, `attribute ${name} refers to a function attribute`);
    // Old exporters leave `type` unset: accept then whichever field is filled.
    if (a.type !== 0 && !types.includes(a.type)) throw invalid(this.node, `attribute ${name} has type ${a.type}, expected ${types.join(' or ')}`);
    return a;
  }

  int(name: string, def: number): number;
  int(name: string): number | undefined;
  int(name: string, def?: number): number | undefined {
    const a = this.get(name, [AttrType.INT]);
    if (!a) return def;
    if (a.i === undefined) throw invalid(this.node, `attribute ${name} has no integer value`);
    return a.i;
  }

  float(name: string, def: number): number;
  float(name: string): number | undefined;
  float(name: string, def?: number): number | undefined {
    const a = this.get(name, [AttrType.FLOAT]);
    if (!a) return def;
    if (a.f === undefined) throw invalid(this.node, `attribute ${name} has no float value`);
    return a.f;
  }

  ints(name: string, def: number[]): number[];
  ints(name: string): number[] | undefined;
  ints(name: string, def?: number[]): number[] | undefined {
    const a = this.get(name, [AttrType.INTS]);
    return a ? a.ints.slice() : def;
  }

  floats(name: string): number[] | undefined {
    const a = this.get(name, [AttrType.FLOATS]);
    return a ? a.floats.slice() : undefined;
  }

  string(name: string, def: string): string;
  string(name: string): string | undefined;
  string(name: string, def?: string): string | undefined {
    const a = this.get(name, [AttrType.STRING]);
    return a ? attrText(a) ?? def : def;
  }

  attr(name: string): AttributeProto | undefined {
    return this.node.attrs.get(name);
  }
}

/** What an op sees of one of its inputs while the graph is analysed. */
export interface InputInfo {
  name: string;
  /** False for an omitted optional input (empty name, or past the end). */
  present: boolean;
  /** Set where the input is a constant. */
  value?: HostTensor;
  /** Logical shape (constants: their dims). */
  shape: number[];
}

/** Analysis-time view of a node (fold and infer). */
export interface OpCtx {
  node: NodeDef;
  opset: number;
  attrs: Attrs;
  inputs: InputInfo[];
  /** The batch size the analysis runs at. */
  batch: number;
  /** The input's constant value; throws naming the input where it is not constant. */
  constant(i: number, what: string): HostTensor;
  /** Decodes a tensor attribute (its external data confined to the model folder like initializers). */
  decode(t: TensorProto, what: string): HostTensor;
}

/** Compile-time view: the analysis plus layouts and tensor ownership. */
export interface CompileCtx extends OpCtx {
  /** Layout of each input (identity for constants and absent inputs). */
  perms: number[][];
  /** Logical output shapes from the analysis (batch 1). */
  outShapes: number[][];
  /** Registers a tensor the graph owns (disposed with it) and returns it. */
  own<T extends tf.Tensor>(t: T): T;
  /** The graph's rotated filters for input gradients (gradOps.ts); convolutions register theirs here. */
  gradFilters?: GradFilters;
  /**
   * A data input: returns a getter of its physical tensor at run time. A constant input becomes a tensor
   * the graph owns (layout identity), created once here.
   */
  data(i: number): (ins: (tf.Tensor | undefined)[]) => tf.Tensor;
  /** A constant read at compile time (weights, axes): it must not depend on the batch size. */
  staticConst(i: number, what: string): HostTensor;
  /** A constant read at run time, per batch size (shapes that follow the batch). */
  dynamicConst(i: number, what: string): (rt: RunCtx) => HostTensor;
}

export interface Compiled {
  /** Physical layout of each output. */
  perms: number[][];
  exec(ins: (tf.Tensor | undefined)[], rt: RunCtx): tf.Tensor[];
  /** Number of weight elements the op holds (for the layer list). */
  params?: number;
  /** For fusion and the CAM head: the op's weights in a form others can reuse. */
  info?: Record<string, unknown>;
}

export interface OpDef {
  /** Host evaluation where every input needed is constant (or only its shape is read): the outputs, or undefined. */
  fold?(ctx: OpCtx): HostTensor[] | undefined;
  /** Logical shapes of the outputs of a runtime node. */
  infer(ctx: OpCtx): number[][];
  compile(ctx: CompileCtx): Compiled;
}
