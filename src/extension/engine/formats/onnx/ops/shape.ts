/**
 * Operators that move values or compute shapes: Constant, Identity, Dropout, Shape, Size, Cast, Gather,
 * Concat, Unsqueeze, Squeeze, Slice, Reshape, Flatten, Transpose, Expand, Tile, ConstantOfShape, Range,
 * Split. On constants they run on the host (that is how dynamic-shape arithmetic such as
 * Shape → Gather → Unsqueeze → Concat → Reshape folds away once the input size is known); on runtime values
 * they run as tfjs ops, converting between physical and logical layouts where the ONNX semantics depend
 * on the logical order (see ops/types.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { DataType } from '../proto';
import { hostTensor, isFloatType, sizeOf, type HostTensor } from '../tensor';
import { constOperand, defaultPerm, fromLogical, hostTranspose, identityPerm, normAxis, relayout, samePerm, strides, toLogical } from '../layout';
import { invalid, unsupported, type CompileCtx, type Compiled, type NodeDef, type OpCtx, type OpDef } from './types';

// ------------------------------------------------------------------------------------------------ helpers

const ints = (h: HostTensor): number[] => Array.from(h.data, (v) => Math.trunc(v));

/** Largest constant the host folds (elements): shape arithmetic is tiny; more means a corrupt or hostile graph. */
const MAX_FOLDED = 1 << 24;

function checkFoldSize(node: NodeDef, dims: readonly number[]): void {
  const n = sizeOf(dims);
  if (!(n <= MAX_FOLDED) || dims.some((d) => !(Number.isInteger(d) && d >= 0))) {
    throw invalid(node, `would build a constant of shape [${dims.join(', ')}] (${n} values), more than CAM Lens computes at load`);
  }
}

/** Logical shape of a physical tensor in layout `perm`. */
export function logicalShape(t: tf.Tensor, perm: readonly number[]): number[] {
  const out = new Array<number>(perm.length);
  perm.forEach((a, i) => (out[a] = t.shape[i]));
  return out;
}

function checkAxis(node: NodeDef, axis: number, rank: number, what = 'axis'): number {
  const a = normAxis(axis, rank);
  if (!(a >= 0 && a < rank)) throw invalid(node, `${what} ${axis} is out of range for a tensor of rank ${rank}`);
  return a;
}

/** Target shape of Reshape: 0 copies the input dim (unless allowzero), -1 takes what is left. */
export function reshapeTarget(node: NodeDef, inDims: readonly number[], target: readonly number[], allowzero: boolean): number[] {
  const out = target.map((d, i) => (d === 0 && !allowzero ? inDims[i] : d));
  if (out.some((d) => d === undefined)) throw invalid(node, `shape [${target.join(', ')}] copies a dimension the input [${inDims.join(', ')}] does not have`);
  const total = sizeOf(inDims);
  const free = out.filter((d) => d === -1).length;
  if (free > 1) throw invalid(node, `shape [${target.join(', ')}] has more than one -1`);
  if (out.some((d) => d < -1)) throw invalid(node, `shape [${target.join(', ')}] has a negative size`);
  if (free === 1) {
    const known = out.reduce((a, d) => (d === -1 ? a : a * d), 1);
    if (known === 0 || total % known !== 0) throw invalid(node, `cannot reshape [${inDims.join(', ')}] (${total} values) to [${target.join(', ')}]`);
    return out.map((d) => (d === -1 ? total / known : d));
  }
  if (sizeOf(out) !== total) throw invalid(node, `cannot reshape [${inDims.join(', ')}] (${total} values) to [${out.join(', ')}] (${sizeOf(out)} values)`);
  return out;
}

function hostReshape(h: HostTensor, dims: number[]): HostTensor {
  return { dataType: h.dataType, dims, data: h.data };
}

/** Generic host slice: per axis a start, a step and a count. */
function hostSlice(h: HostTensor, starts: number[], steps: number[], counts: number[]): HostTensor {
  const n = sizeOf(counts);
  const inStr = strides(h.dims);
  const data = new (h.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(n);
  const rank = counts.length;
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < n; o++) {
    let src = 0;
    for (let d = 0; d < rank; d++) src += (starts[d] + idx[d] * steps[d]) * inStr[d];
    data[o] = h.data[src];
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < counts[d]) break;
      idx[d] = 0;
    }
  }
  return { dataType: h.dataType, dims: counts.slice(), data };
}

/** ONNX Slice semantics for one axis of length `dim`: clamped start and the element count. */
function sliceAxis(start: number, end: number, step: number, dim: number): [number, number] {
  if (step === 0) return [0, 0];
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), dim);
    e = Math.min(Math.max(e, 0), dim);
    return [s, Math.max(0, Math.ceil((e - s) / step))];
  }
  s = Math.min(Math.max(s, -1), dim - 1);
  e = Math.min(Math.max(e, -1), dim - 1);
  return [s, Math.max(0, Math.ceil((e - s) / step))];
}

interface SliceSpec {
  starts: number[];
  ends: number[];
  axes: number[];
  steps: number[];
}

/** Full per-axis (start, step, count) of a Slice on a tensor of logical shape `dims`. */
function slicePlan(node: NodeDef, dims: readonly number[], spec: SliceSpec): { starts: number[]; steps: number[]; counts: number[] } {
  const rank = dims.length;
  const starts = new Array<number>(rank).fill(0);
  const steps = new Array<number>(rank).fill(1);
  const counts = dims.slice();
  const { axes } = spec;
  if (spec.starts.length !== axes.length || spec.ends.length !== axes.length || spec.steps.length !== axes.length) {
    throw invalid(node, `starts, ends, axes and steps have different lengths (${spec.starts.length}, ${spec.ends.length}, ${axes.length}, ${spec.steps.length})`);
  }
  axes.forEach((ax, i) => {
    const a = checkAxis(node, ax, rank, 'slice axis');
    if (spec.steps[i] === 0) throw invalid(node, 'a slice step is 0');
    const [s, c] = sliceAxis(spec.starts[i], spec.ends[i], spec.steps[i], dims[a]);
    starts[a] = s;
    steps[a] = spec.steps[i];
    counts[a] = c;
  });
  return { starts, steps, counts };
}

/**
 * Elements start, start + step, … (count of them) along `axis`, with differentiable ops only (tfjs has no
 * gradient for stridedSlice): a negative step reverses the axis first; then the span is cut (zero-padded at
 * the end to count * step), reshaped to [count, step] and the first column kept.
 */
function stepAxis(t: tf.Tensor, axis: number, start: number, step: number, count: number): tf.Tensor {
  const dim = t.shape[axis];
  const at = (v: number) => t.shape.map((d, i) => (i === axis ? v : 0));
  const len = (v: number) => t.shape.map((d, i) => (i === axis ? v : d));
  if (count === 0) return tf.slice(t, at(0), len(0));
  if (step === 1) return tf.slice(t, at(start), len(count));
  let x = t;
  let s = start;
  let k = step;
  if (step < 0) {
    x = tf.reverse(t, axis);
    s = dim - 1 - start;
    k = -step;
  }
  const avail = Math.min(count * k, dim - s);
  let span = tf.slice(x, at(s), len(avail));
  if (avail < count * k) span = tf.pad(span, span.shape.map((_, i) => (i === axis ? [0, count * k - avail] : [0, 0])) as [number, number][]);
  const shape = span.shape;
  const split = [...shape.slice(0, axis), count, k, ...shape.slice(axis + 1)];
  const first = tf.slice(tf.reshape(span, split), split.map(() => 0), split.map((d, i) => (i === axis + 1 ? 1 : d)));
  return tf.reshape(first, [...shape.slice(0, axis), count, ...shape.slice(axis + 1)]);
}

function unsqueezeAxes(ctx: OpCtx, rank: number): number[] {
  const raw = ctx.opset >= 13 ? ints(ctx.constant(1, 'axes')) : ctx.attrs.ints('axes');
  if (!raw) throw invalid(ctx.node, 'has no axes');
  const outRank = rank + raw.length;
  const axes = raw.map((a) => checkAxis(ctx.node, a, outRank)).sort((a, b) => a - b);
  if (new Set(axes).size !== axes.length) throw invalid(ctx.node, `repeats an axis in [${raw.join(', ')}]`);
  return axes;
}

function unsqueezeDims(dims: readonly number[], axes: number[]): number[] {
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < dims.length + axes.length; i++) out.push(axes.includes(i) ? 1 : dims[j++]);
  return out;
}

function squeezeAxes(ctx: OpCtx, dims: readonly number[]): number[] {
  let raw: number[] | undefined;
  if (ctx.opset >= 13) raw = ctx.inputs[1]?.present ? ints(ctx.constant(1, 'axes')) : undefined;
  else raw = ctx.attrs.ints('axes');
  if (!raw) return dims.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
  const axes = raw.map((a) => checkAxis(ctx.node, a, dims.length));
  for (const a of axes) if (dims[a] !== 1) throw invalid(ctx.node, `cannot squeeze axis ${a} of [${dims.join(', ')}]: its size is not 1`);
  return axes;
}

function transposePerm(ctx: OpCtx, rank: number): number[] {
  const p = ctx.attrs.ints('perm') ?? identityPerm(rank).reverse();
  if (p.length !== rank || new Set(p.map((a) => normAxis(a, rank))).size !== rank) throw invalid(ctx.node, `perm [${p.join(', ')}] does not permute ${rank} axes`);
  return p.map((a) => normAxis(a, rank));
}

function concatDims(ctx: OpCtx): [number, number[]] {
  const shapes = ctx.inputs.filter((i) => i.present).map((i) => i.shape);
  const rank = shapes[0].length;
  const axis = checkAxis(ctx.node, ctx.attrs.int('axis', 0), rank);
  const out = shapes[0].slice();
  out[axis] = 0;
  for (const s of shapes) {
    if (s.length !== rank || s.some((d, i) => i !== axis && d !== shapes[0][i])) {
      throw invalid(ctx.node, `cannot concatenate [${shapes.map((x) => `[${x.join(', ')}]`).join(', ')}] along axis ${axis}`);
    }
    out[axis] += s[axis];
  }
  return [axis, out];
}

function hostConcat(parts: HostTensor[], axis: number, dims: number[], dataType: number): HostTensor {
  const outer = sizeOf(dims.slice(0, axis));
  const data = isFloatType(dataType) ? new Float32Array(sizeOf(dims)) : new Float64Array(sizeOf(dims));
  let o = 0;
  for (let i = 0; i < outer; i++) {
    for (const p of parts) {
      const inner = sizeOf(p.dims.slice(axis));
      data.set(p.data.subarray(i * inner, (i + 1) * inner), o);
      o += inner;
    }
  }
  return { dataType, dims, data };
}

function hostGather(data: HostTensor, idx: HostTensor, axis: number): HostTensor {
  const d = data.dims;
  const outer = sizeOf(d.slice(0, axis));
  const inner = sizeOf(d.slice(axis + 1));
  const n = idx.data.length;
  const dims = [...d.slice(0, axis), ...idx.dims, ...d.slice(axis + 1)];
  const out = new (data.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(sizeOf(dims));
  let o = 0;
  for (let i = 0; i < outer; i++) {
    for (let j = 0; j < n; j++) {
      let k = idx.data[j];
      if (k < 0) k += d[axis];
      const src = (i * d[axis] + k) * inner;
      out.set(data.data.subarray(src, src + inner), o);
      o += inner;
    }
  }
  return { dataType: data.dataType, dims, data: out };
}

/** Numpy-style broadcast of two shapes; undefined where they do not broadcast. */
export function broadcast(a: readonly number[], b: readonly number[]): number[] | undefined {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return undefined;
    out.push(x === 1 ? y : x);
  }
  return out;
}

function hostExpand(h: HostTensor, dims: number[]): HostTensor {
  const r = dims.length;
  const src = [...new Array<number>(r - h.dims.length).fill(1), ...h.dims];
  const str = strides(src).map((s, i) => (src[i] === 1 ? 0 : s));
  const n = sizeOf(dims);
  const data = new (h.data.constructor as Float32ArrayConstructor | Float64ArrayConstructor)(n);
  const idx = new Array<number>(r).fill(0);
  for (let o = 0; o < n; o++) {
    let s = 0;
    for (let d = 0; d < r; d++) s += idx[d] * str[d];
    data[o] = h.data[s];
    for (let d = r - 1; d >= 0; d--) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
  return { dataType: h.dataType, dims, data };
}

/** The element type a Cast produces, as stored on the host. */
function castValues(h: HostTensor, to: number): HostTensor {
  if (isFloatType(to)) return { dataType: to, dims: h.dims, data: Float32Array.from(h.data) };
  if (to === DataType.BOOL) return { dataType: to, dims: h.dims, data: Float64Array.from(h.data, (v) => (v !== 0 ? 1 : 0)) };
  return { dataType: to, dims: h.dims, data: Float64Array.from(h.data, (v) => (Number.isFinite(v) ? Math.trunc(v) : 0)) };
}

/** Splits of a Split node: from the `split` input/attribute, `num_outputs`, or equal parts. */
function splitSizes(ctx: OpCtx, dim: number): number[] {
  let sizes: number[] | undefined;
  if (ctx.opset >= 13) sizes = ctx.inputs[1]?.present ? ints(ctx.constant(1, 'split')) : undefined;
  else sizes = ctx.attrs.ints('split');
  const n = ctx.node.outputs.length;
  if (!sizes) {
    const parts = ctx.attrs.int('num_outputs', n);
    const each = Math.ceil(dim / parts);
    sizes = Array.from({ length: parts }, (_, i) => Math.max(0, Math.min(each, dim - i * each)));
  }
  if (sizes.length !== n || sizes.reduce((a, b) => a + b, 0) !== dim) {
    throw invalid(ctx.node, `splits [${sizes.join(', ')}] do not divide a dimension of ${dim} into ${n} outputs`);
  }
  return sizes;
}

/** A compiled op that returns its input unchanged (same layout). */
function passThrough(ctx: CompileCtx): Compiled {
  const x = ctx.data(0);
  return { perms: [ctx.perms[0]], exec: (ins) => [x(ins)] };
}

const sameShape = (ctx: OpCtx): number[][] => [ctx.inputs[0].shape.slice()];

// ------------------------------------------------------------------------------------------------ ops

const Constant: OpDef = {
  fold(ctx) {
    const a = ctx.attrs;
    const t = a.attr('value');
    if (t?.t) return [ctx.decode(t.t, `the value of Constant "${ctx.node.name}"`)];
    if (a.has('value_float')) return [hostTensor(DataType.FLOAT, [], [a.float('value_float') as number])];
    if (a.has('value_floats')) return [hostTensor(DataType.FLOAT, [(a.floats('value_floats') ?? []).length], a.floats('value_floats') ?? [])];
    if (a.has('value_int')) return [hostTensor(DataType.INT64, [], [a.int('value_int') as number])];
    if (a.has('value_ints')) return [hostTensor(DataType.INT64, [(a.ints('value_ints') ?? []).length], a.ints('value_ints') ?? [])];
    throw unsupported(ctx.node, `a constant of this kind (${[...ctx.node.attrs.keys()].join(', ') || 'no value'}) is not supported`);
  },
  infer: () => [],
  compile(ctx) {
    throw unsupported(ctx.node, 'is not constant');
  },
};

const Identity: OpDef = {
  fold: (ctx) => (ctx.inputs[0].value ? [ctx.inputs[0].value] : undefined),
  infer: sameShape,
  compile: passThrough,
};

const Dropout: OpDef = {
  fold: (ctx) => (ctx.inputs[0].value && ctx.node.outputs.length === 1 ? [ctx.inputs[0].value] : undefined),
  infer: (ctx) => {
    if (ctx.node.outputs.length > 1 && ctx.node.outputs[1] !== '') {
      // The mask output is all true in inference; nothing in a classifier reads it.
      return [ctx.inputs[0].shape.slice(), ctx.inputs[0].shape.slice()];
    }
    return [ctx.inputs[0].shape.slice()];
  },
  compile(ctx) {
    const x = ctx.data(0);
    if (ctx.node.outputs.length > 1 && ctx.node.outputs[1] !== '') {
      return { perms: [ctx.perms[0], ctx.perms[0]], exec: (ins) => { const t = x(ins); return [t, tf.onesLike(t)]; } };
    }
    return { perms: [ctx.perms[0]], exec: (ins) => [x(ins)] };
  },
};

const Shape: OpDef = {
  fold(ctx) {
    const dims = ctx.inputs[0].shape;
    const r = dims.length;
    let start = ctx.attrs.int('start', 0);
    let end = ctx.attrs.int('end', r);
    start = Math.min(Math.max(start < 0 ? start + r : start, 0), r);
    end = Math.min(Math.max(end < 0 ? end + r : end, 0), r);
    const v = dims.slice(start, Math.max(start, end));
    return [hostTensor(DataType.INT64, [v.length], v)];
  },
  infer: () => [],
  compile(ctx) {
    throw unsupported(ctx.node, 'was not folded');
  },
};

const Size: OpDef = {
  fold: (ctx) => [hostTensor(DataType.INT64, [], [sizeOf(ctx.inputs[0].shape)])],
  infer: () => [],
  compile(ctx) {
    throw unsupported(ctx.node, 'was not folded');
  },
};

const Cast: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    return v ? [castValues(v, ctx.attrs.int('to', DataType.FLOAT))] : undefined;
  },
  infer: sameShape,
  compile(ctx) {
    const to = ctx.attrs.int('to', DataType.FLOAT);
    const x = ctx.data(0);
    if (isFloatType(to)) return { perms: [ctx.perms[0]], exec: (ins) => { const t = x(ins); return [t.dtype === 'float32' ? t : tf.cast(t, 'float32')]; } };
    if (to === DataType.BOOL) return { perms: [ctx.perms[0]], exec: (ins) => [tf.cast(x(ins), 'bool')] };
    return { perms: [ctx.perms[0]], exec: (ins) => [tf.cast(x(ins), 'int32')] };
  },
};

const Gather: OpDef = {
  fold(ctx) {
    const [d, i] = ctx.inputs;
    if (!d.value || !i.value) return undefined;
    const axis = checkAxis(ctx.node, ctx.attrs.int('axis', 0), d.shape.length);
    for (const k of i.value.data) {
      if (!(k >= -d.shape[axis] && k < d.shape[axis])) throw invalid(ctx.node, `index ${k} is out of range for a dimension of ${d.shape[axis]}`);
    }
    return [hostGather(d.value, i.value, axis)];
  },
  infer(ctx) {
    const [d, i] = ctx.inputs;
    const axis = checkAxis(ctx.node, ctx.attrs.int('axis', 0), d.shape.length);
    return [[...d.shape.slice(0, axis), ...i.shape, ...d.shape.slice(axis + 1)]];
  },
  compile(ctx) {
    const x = ctx.data(0);
    const perm = ctx.perms[0];
    const rank = perm.length;
    const axis = checkAxis(ctx.node, ctx.attrs.int('axis', 0), rank);
    const idx = ctx.staticConst(1, 'indices');
    const dim = ctx.inputs[0].shape[axis];
    const list = Array.from(idx.data, (k) => (k < 0 ? k + dim : k));
    if (list.some((k) => !(k >= 0 && k < dim))) throw invalid(ctx.node, `an index is out of range for a dimension of ${dim}`);
    const pa = perm.indexOf(axis);
    if (idx.dims.length === 0) {
      // One index: a slice, then the axis dropped (its size is 1, so dropping it moves no data).
      const outPerm = perm.filter((a) => a !== axis).map((a) => (a > axis ? a - 1 : a));
      return {
        perms: [outPerm],
        exec: (ins) => {
          const t = x(ins);
          const begin = t.shape.map((_, i) => (i === pa ? list[0] : 0));
          const size = t.shape.map((d, i) => (i === pa ? 1 : d));
          return [tf.reshape(tf.slice(t, begin, size), t.shape.filter((_, i) => i !== pa))];
        },
      };
    }
    if (idx.dims.length === 1 && list.every((k, i) => k === list[0] + i)) {
      return {
        perms: [perm],
        exec: (ins) => {
          const t = x(ins);
          return [tf.slice(t, t.shape.map((_, i) => (i === pa ? list[0] : 0)), t.shape.map((d, i) => (i === pa ? list.length : d)))];
        },
      };
    }
    if (idx.dims.length === 1 && list.length <= 256) {
      // A few indices: the runs of consecutive indices sliced out and concatenated. tf.gather's gradient
      // needs UnsortedSegmentSum, which the wasm backend lacks; slices differentiate everywhere.
      const runs: [number, number][] = [];
      for (const k of list) {
        const last = runs[runs.length - 1];
        if (last && last[0] + last[1] === k) last[1]++;
        else runs.push([k, 1]);
      }
      return {
        perms: [perm],
        exec: (ins) => {
          const t = x(ins);
          const parts = runs.map(([start, n]) => tf.slice(t, t.shape.map((_, i) => (i === pa ? start : 0)), t.shape.map((d, i) => (i === pa ? n : d))));
          return [parts.length === 1 ? parts[0] : tf.concat(parts, pa)];
        },
      };
    }
    const outRank = rank - 1 + idx.dims.length;
    const outPerm = defaultPerm(outRank);
    const indices = ctx.own(tf.tensor(Int32Array.from(list), idx.dims, 'int32'));
    return {
      perms: [outPerm],
      exec: (ins) => [fromLogical(tf.gather(toLogical(x(ins), perm), indices, axis), outPerm)],
    };
  },
};

const Concat: OpDef = {
  fold(ctx) {
    const ins = ctx.inputs.filter((i) => i.present);
    if (!ins.every((i) => i.value)) return undefined;
    const [axis, dims] = concatDims(ctx);
    return [hostConcat(ins.map((i) => i.value as HostTensor), axis, dims, (ins[0].value as HostTensor).dataType)];
  },
  infer: (ctx) => [concatDims(ctx)[1]],
  compile(ctx) {
    const [axis] = concatDims(ctx);
    const present = ctx.inputs.map((i, k) => [i, k] as const).filter(([i]) => i.present && i.shape[axis] !== 0);
    const first = present.find(([i]) => !i.value);
    const perm = first ? ctx.perms[first[1]] : defaultPerm(ctx.outShapes[0].length);
    const getters = present.map(([i, k]) => {
      if (i.value) {
        const t = ctx.own(constOperand(i.value, perm.length, perm));
        return () => t;
      }
      const g = ctx.data(k);
      const from = ctx.perms[k];
      return (ins: (tf.Tensor | undefined)[]) => relayout(g(ins), from, perm);
    });
    const pa = perm.indexOf(axis);
    return {
      perms: [perm],
      exec: (ins) => {
        const parts = getters.map((g) => g(ins));
        // Constants carry batch 1: follow the runtime inputs' batch where the concat axis is not the batch.
        return [parts.length === 1 ? parts[0] : tf.concat(parts, pa)];
      },
    };
  },
};

const Unsqueeze: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    if (!v) return undefined;
    return [hostReshape(v, unsqueezeDims(v.dims, unsqueezeAxes(ctx, v.dims.length)))];
  },
  infer: (ctx) => [unsqueezeDims(ctx.inputs[0].shape, unsqueezeAxes(ctx, ctx.inputs[0].shape.length))],
  compile(ctx) {
    const x = ctx.data(0);
    const perm = ctx.perms[0];
    const axes = unsqueezeAxes(ctx, perm.length);
    const outRank = perm.length + axes.length;
    // Old logical axis a becomes map[a]; the inserted axes have size 1, so any layout keeping the old axes'
    // physical order is a reshape. Prefer the default layout (NHWC for rank 4) where it keeps that order.
    const map: number[] = [];
    for (let i = 0, j = 0; i < outRank; i++) if (!axes.includes(i)) map[j++] = i;
    const oldOrder = perm.map((a) => map[a]);
    const cand = defaultPerm(outRank);
    const keepsOrder = samePerm(cand.filter((a) => !axes.includes(a)), oldOrder);
    const outPerm = keepsOrder ? cand : [...oldOrder, ...axes];
    return {
      perms: [outPerm],
      exec: (ins) => {
        const t = x(ins);
        const logical = unsqueezeDims(logicalShape(t, perm), axes);
        return [tf.reshape(t, outPerm.map((a) => logical[a]))];
      },
    };
  },
};

const Squeeze: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    if (!v) return undefined;
    const axes = squeezeAxes(ctx, v.dims);
    return [hostReshape(v, v.dims.filter((_, i) => !axes.includes(i)))];
  },
  infer(ctx) {
    const dims = ctx.inputs[0].shape;
    const axes = squeezeAxes(ctx, dims);
    return [dims.filter((_, i) => !axes.includes(i))];
  },
  compile(ctx) {
    const x = ctx.data(0);
    const perm = ctx.perms[0];
    const axes = squeezeAxes(ctx, ctx.inputs[0].shape);
    const outPerm = perm.filter((a) => !axes.includes(a)).map((a) => a - axes.filter((b) => b < a).length);
    return {
      perms: [outPerm],
      exec: (ins) => {
        const t = x(ins);
        return [tf.reshape(t, t.shape.filter((_, i) => !axes.includes(perm[i])))];
      },
    };
  },
};

function sliceSpec(ctx: OpCtx, read: (i: number, what: string) => HostTensor, rank: number): SliceSpec {
  if (ctx.opset < 10) {
    const starts = ctx.attrs.ints('starts');
    const ends = ctx.attrs.ints('ends');
    if (!starts || !ends) throw invalid(ctx.node, 'has no starts or ends');
    const axes = ctx.attrs.ints('axes') ?? identityPerm(starts.length);
    return { starts, ends, axes, steps: axes.map(() => 1) };
  }
  const starts = ints(read(1, 'starts'));
  const ends = ints(read(2, 'ends'));
  const axes = ctx.inputs[3]?.present ? ints(read(3, 'axes')) : identityPerm(starts.length);
  const steps = ctx.inputs[4]?.present ? ints(read(4, 'steps')) : axes.map(() => 1);
  void rank;
  return { starts, ends, axes, steps };
}

const Slice: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    if (!v) return undefined;
    const plan = slicePlan(ctx.node, v.dims, sliceSpec(ctx, (i, w) => ctx.constant(i, w), v.dims.length));
    return [hostSlice(v, plan.starts, plan.steps, plan.counts)];
  },
  infer(ctx) {
    const dims = ctx.inputs[0].shape;
    return [slicePlan(ctx.node, dims, sliceSpec(ctx, (i, w) => ctx.constant(i, w), dims.length)).counts];
  },
  compile(ctx) {
    const x = ctx.data(0);
    const perm = ctx.perms[0];
    const readers = [1, 2, 3, 4].map((i) => (ctx.opset >= 10 && ctx.inputs[i]?.present ? ctx.dynamicConst(i, ['starts', 'ends', 'axes', 'steps'][i - 1]) : undefined));
    const node = ctx.node;
    return {
      perms: [perm],
      exec: (ins, rt) => {
        const t = x(ins);
        const dims = logicalShape(t, perm);
        const spec = sliceSpec(ctx, (i) => (readers[i - 1] as (r: typeof rt) => HostTensor)(rt), dims.length);
        const plan = slicePlan(node, dims, spec);
        const begin = perm.map((a) => plan.starts[a]);
        const size = perm.map((a) => plan.counts[a]);
        if (plan.steps.every((s) => s === 1)) return [tf.slice(t, begin, size)];
        let y = t;
        perm.forEach((a, i) => (y = stepAxis(y, i, plan.starts[a], plan.steps[a], plan.counts[a])));
        return [y];
      },
    };
  },
};

const Reshape: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    if (!v) return undefined;
    return [hostReshape(v, reshapeTarget(ctx.node, v.dims, ints(ctx.constant(1, 'shape')), ctx.attrs.int('allowzero', 0) === 1))];
  },
  infer: (ctx) => [reshapeTarget(ctx.node, ctx.inputs[0].shape, ints(ctx.constant(1, 'shape')), ctx.attrs.int('allowzero', 0) === 1)],
  compile(ctx) {
    const x = ctx.data(0);
    const perm = ctx.perms[0];
    const shape = ctx.dynamicConst(1, 'shape');
    const allowzero = ctx.attrs.int('allowzero', 0) === 1;
    const outPerm = defaultPerm(ctx.outShapes[0].length);
    const node = ctx.node;
    return {
      perms: [outPerm],
      exec: (ins, rt) => {
        const t = x(ins);
        const logical = toLogical(t, perm);
        const target = reshapeTarget(node, logical.shape, ints(shape(rt)), allowzero);
        return [fromLogical(tf.reshape(logical, target), outPerm)];
      },
    };
  },
};

function flattenDims(ctx: OpCtx, dims: readonly number[]): number[] {
  const axis = normAxis(ctx.attrs.int('axis', 1), dims.length);
  if (!(axis >= 0 && axis <= dims.length)) throw invalid(ctx.node, `axis ${ctx.attrs.int('axis', 1)} is out of range for rank ${dims.length}`);
  return [sizeOf(dims.slice(0, axis)), sizeOf(dims.slice(axis))];
}

const Flatten: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    return v ? [hostReshape(v, flattenDims(ctx, v.dims))] : undefined;
  },
  infer: (ctx) => [flattenDims(ctx, ctx.inputs[0].shape)],
  compile(ctx) {
    const x = ctx.data(0);
    const perm = ctx.perms[0];
    return {
      perms: [identityPerm(2)],
      exec: (ins) => {
        const logical = toLogical(x(ins), perm);
        return [tf.reshape(logical, flattenDims(ctx, logical.shape))];
      },
    };
  },
};

const Transpose: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    return v ? [hostTranspose(v, transposePerm(ctx, v.dims.length))] : undefined;
  },
  infer(ctx) {
    const dims = ctx.inputs[0].shape;
    return [transposePerm(ctx, dims.length).map((a) => dims[a])];
  },
  compile(ctx) {
    // out logical axis j = in logical axis t[j]; the physical tensor stays, its axes are relabelled.
    const t = transposePerm(ctx, ctx.perms[0].length);
    const x = ctx.data(0);
    return { perms: [ctx.perms[0].map((a) => t.indexOf(a))], exec: (ins) => [x(ins)] };
  },
};

function expandDims(ctx: OpCtx, dims: readonly number[], shape: HostTensor): number[] {
  const out = broadcast(dims, ints(shape));
  if (!out) throw invalid(ctx.node, `cannot expand [${dims.join(', ')}] to [${ints(shape).join(', ')}]`);
  return out;
}

const Expand: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    if (!v) return undefined;
    const dims = expandDims(ctx, v.dims, ctx.constant(1, 'shape'));
    checkFoldSize(ctx.node, dims);
    return [hostExpand(v, dims)];
  },
  infer: (ctx) => [expandDims(ctx, ctx.inputs[0].shape, ctx.constant(1, 'shape'))],
  compile(ctx) {
    const x = ctx.data(0);
    const perm = ctx.perms[0];
    const shape = ctx.dynamicConst(1, 'shape');
    const outPerm = defaultPerm(ctx.outShapes[0].length);
    return {
      perms: [outPerm],
      exec: (ins, rt) => {
        const logical = toLogical(x(ins), perm);
        const dims = expandDims(ctx, logical.shape, shape(rt));
        const ext = tf.reshape(logical, [...new Array<number>(dims.length - logical.rank).fill(1), ...logical.shape]);
        return [fromLogical(tf.broadcastTo(ext, dims), outPerm)];
      },
    };
  },
};

const Tile: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    if (!v) return undefined;
    const reps = ints(ctx.constant(1, 'repeats'));
    checkFoldSize(ctx.node, v.dims.map((d, i) => d * (reps[i] ?? 1)));
    let out = v;
    // Tile = expand over new leading axes per dimension: done with concat along each axis.
    reps.forEach((r, axis) => {
      const dims = out.dims.slice();
      dims[axis] *= r;
      out = hostConcat(new Array<HostTensor>(r).fill(out), axis, dims, out.dataType);
    });
    return [out];
  },
  infer(ctx) {
    const reps = ints(ctx.constant(1, 'repeats'));
    const dims = ctx.inputs[0].shape;
    if (reps.length !== dims.length) throw invalid(ctx.node, `has ${reps.length} repeats for a tensor of rank ${dims.length}`);
    return [dims.map((d, i) => d * reps[i])];
  },
  compile(ctx) {
    const x = ctx.data(0);
    const perm = ctx.perms[0];
    const reps = ctx.dynamicConst(1, 'repeats');
    return { perms: [perm], exec: (ins, rt) => { const r = ints(reps(rt)); return [tf.tile(x(ins), perm.map((a) => r[a]))]; } };
  },
};

const ConstantOfShape: OpDef = {
  fold(ctx) {
    const dims = ints(ctx.constant(0, 'shape'));
    checkFoldSize(ctx.node, dims);
    const v = ctx.attrs.attr('value')?.t;
    const value = v ? ctx.decode(v, `the value of ConstantOfShape "${ctx.node.name}"`) : hostTensor(DataType.FLOAT, [1], [0]);
    return [hostTensor(value.dataType, dims, new Array<number>(sizeOf(dims)).fill(value.data[0] ?? 0))];
  },
  infer: () => [],
  compile(ctx) {
    throw unsupported(ctx.node, 'takes a shape that is not constant');
  },
};

const Range: OpDef = {
  fold(ctx) {
    const [s, l, d] = [0, 1, 2].map((i) => ctx.constant(i, ['start', 'limit', 'delta'][i]).data[0]);
    if (d === 0) throw invalid(ctx.node, 'has delta 0');
    const n = Math.max(0, Math.ceil((l - s) / d));
    checkFoldSize(ctx.node, [n]);
    return [hostTensor(ctx.constant(0, 'start').dataType, [n], Array.from({ length: n }, (_, i) => s + i * d))];
  },
  infer: () => [],
  compile(ctx) {
    throw unsupported(ctx.node, 'takes bounds that are not constant');
  },
};

const Split: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    if (!v) return undefined;
    const axis = checkAxis(ctx.node, ctx.attrs.int('axis', 0), v.dims.length);
    const sizes = splitSizes(ctx, v.dims[axis]);
    let at = 0;
    return sizes.map((n) => {
      const starts = v.dims.map((_, i) => (i === axis ? at : 0));
      const counts = v.dims.map((d, i) => (i === axis ? n : d));
      at += n;
      return hostSlice(v, starts, v.dims.map(() => 1), counts);
    });
  },
  infer(ctx) {
    const dims = ctx.inputs[0].shape;
    const axis = checkAxis(ctx.node, ctx.attrs.int('axis', 0), dims.length);
    return splitSizes(ctx, dims[axis]).map((n) => dims.map((d, i) => (i === axis ? n : d)));
  },
  compile(ctx) {
    const x = ctx.data(0);
    const perm = ctx.perms[0];
    const dims = ctx.inputs[0].shape;
    const axis = checkAxis(ctx.node, ctx.attrs.int('axis', 0), dims.length);
    const sizes = splitSizes(ctx, dims[axis]);
    const pa = perm.indexOf(axis);
    return { perms: sizes.map(() => perm), exec: (ins) => tf.split(x(ins), sizes, pa) };
  },
};

export const SHAPE_OPS: Record<string, OpDef> = {
  Constant, Identity, Dropout, Shape, Size, Cast, Gather, Concat, Unsqueeze, Squeeze, Slice, Reshape, Flatten, Transpose,
  Expand, Tile, ConstantOfShape, Range, Split,
};
