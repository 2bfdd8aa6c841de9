/**
 * Element-wise operators. Broadcasting is numpy's (shapes right-aligned); the output takes the layout of its
 * highest-rank runtime input and every other operand is laid out to match (constants once, at load). On
 * constants the same formulas run on the host, so that shape arithmetic (Mul, Div, Add on shape values,
 * Equal/Where as torch writes `view(-1)` checks) folds.
 *
 * Activation formulas, as the ONNX operator specifications define them:
 *   HardSigmoid(x) = max(0, min(1, alpha*x + beta))     (alpha 0.2, beta 0.5)
 *   HardSwish(x)   = x * max(0, min(1, x/6 + 1/2))
 *   Gelu(x)        = x/2 * (1 + erf(x/sqrt 2)), or with approximate="tanh"
 *                    x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
 *   PRelu(x)       = x for x >= 0, slope*x otherwise  =  relu(x) - slope*relu(-x)
 *   Clip(x)        = min(max(x, min), max): attributes before opset 11, optional inputs since
 * Each is written with tfjs ops that have gradients on every backend we run (cpu, wasm).
 */
import * as tf from '@tensorflow/tfjs-core';
import { DataType } from '../proto';
import { hostTensor, isFloatType, sizeOf, type HostTensor } from '../tensor';
import { constOperand, defaultPerm, runtimeOperand, strides } from '../layout';
import { broadcast } from './shape';
import { invalid, unsupported, type CompileCtx, type Compiled, type OpCtx, type OpDef } from './types';
import { activation as gradActivation } from '../../../gradOps';

// ------------------------------------------------------------------------------------------------ host

/** Applies `fn` element by element over broadcast inputs. */
function hostNary(ins: HostTensor[], fn: (...v: number[]) => number, dataType: number, node: OpCtx['node']): HostTensor {
  let dims: number[] | undefined = ins[0].dims;
  for (const h of ins.slice(1)) dims = dims && broadcast(dims, h.dims);
  if (!dims) throw invalid(node, `shapes ${ins.map((h) => `[${h.dims.join(', ')}]`).join(' and ')} do not broadcast`);
  const r = dims.length;
  const n = sizeOf(dims);
  const steps = ins.map((h) => {
    const ext = [...new Array<number>(r - h.dims.length).fill(1), ...h.dims];
    return strides(ext).map((s, i) => (ext[i] === 1 ? 0 : s));
  });
  const out: number[] = new Array(n);
  const idx = new Array<number>(r).fill(0);
  const args = new Array<number>(ins.length);
  for (let o = 0; o < n; o++) {
    for (let k = 0; k < ins.length; k++) {
      let s = 0;
      for (let d = 0; d < r; d++) s += idx[d] * steps[k][d];
      args[k] = ins[k].data[s];
    }
    out[o] = fn(...args);
    for (let d = r - 1; d >= 0; d--) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
  return hostTensor(dataType, dims, out);
}

function allConst(ctx: OpCtx): HostTensor[] | undefined {
  const present = ctx.inputs.filter((i) => i.present);
  return present.every((i) => i.value) ? present.map((i) => i.value as HostTensor) : undefined;
}

function broadcastShape(ctx: OpCtx): number[][] {
  let dims: number[] | undefined = ctx.inputs[0].shape;
  for (const i of ctx.inputs.slice(1)) if (i.present) dims = dims && broadcast(dims, i.shape);
  if (!dims) throw invalid(ctx.node, `shapes ${ctx.inputs.filter((i) => i.present).map((i) => `[${i.shape.join(', ')}]`).join(' and ')} do not broadcast`);
  return [dims];
}

// ------------------------------------------------------------------------------------------------ runtime

/**
 * Compiles an n-ary element-wise op: every present input brought to the output's rank and layout (the
 * layout of the first runtime input of that rank), then `fn` on the physical tensors.
 */
function naryCompile(ctx: CompileCtx, fn: (xs: tf.Tensor[]) => tf.Tensor): Compiled {
  const rank = ctx.outShapes[0].length;
  const present = ctx.inputs.map((i, k) => [i, k] as const).filter(([i]) => i.present);
  const lead = present.find(([i]) => !i.value && i.shape.length === rank);
  const perm = lead ? ctx.perms[lead[1]] : defaultPerm(rank);
  const getters = present.map(([i, k]) => {
    if (i.value) {
      const v = i.value;
      const t = ctx.own(v.dims.length === 0 || sizeOf(v.dims) === 1 && v.dims.length <= rank ? tf.scalar(v.data[0], 'float32') : constOperand(v, rank, perm));
      return () => t;
    }
    const g = ctx.data(k);
    const from = ctx.perms[k];
    return (ins: (tf.Tensor | undefined)[]) => runtimeOperand(g(ins), from, rank, perm);
  });
  return { perms: [perm], exec: (ins) => [fn(getters.map((g) => g(ins)))] };
}

function unaryCompile(ctx: CompileCtx, fn: (x: tf.Tensor) => tf.Tensor): Compiled {
  const x = ctx.data(0);
  return { perms: [ctx.perms[0]], exec: (ins) => [fn(x(ins))] };
}

function binary(host: (a: number, b: number, isInt: boolean) => number, run: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, boolOut = false): OpDef {
  return {
    fold(ctx) {
      const v = allConst(ctx);
      if (!v) return undefined;
      const isInt = !isFloatType(v[0].dataType);
      return [hostNary(v, (a, b) => host(a, b, isInt), boolOut ? DataType.BOOL : v[0].dataType, ctx.node)];
    },
    infer: broadcastShape,
    compile: (ctx) => naryCompile(ctx, ([a, b]) => run(a, b)),
  };
}

function variadic(host: (vs: number[]) => number, run: (xs: tf.Tensor[]) => tf.Tensor): OpDef {
  return {
    fold(ctx) {
      const v = allConst(ctx);
      return v ? [hostNary(v, (...xs) => host(xs), v[0].dataType, ctx.node)] : undefined;
    },
    infer: broadcastShape,
    compile: (ctx) => naryCompile(ctx, (xs) => (xs.length === 1 ? xs[0] : run(xs))),
  };
}

function unary(host: ((v: number) => number) | undefined, run: (x: tf.Tensor, ctx: CompileCtx) => tf.Tensor): OpDef {
  return {
    fold(ctx) {
      const v = ctx.inputs[0].value;
      return v && host ? [hostNary([v], host, v.dataType, ctx.node)] : undefined;
    },
    infer: (ctx) => [ctx.inputs[0].shape.slice()],
    compile: (ctx) => unaryCompile(ctx, (x) => run(x, ctx)),
  };
}

/** An activation with float attributes read at compile time and on the host. */
function activation(attrs: Record<string, number>, host: (v: number, a: Record<string, number>) => number, run: (x: tf.Tensor, a: Record<string, number>) => tf.Tensor): OpDef {
  const read = (ctx: OpCtx) => Object.fromEntries(Object.entries(attrs).map(([k, d]) => [k, ctx.attrs.float(k, d)]));
  return {
    fold(ctx) {
      const v = ctx.inputs[0].value;
      if (!v) return undefined;
      const a = read(ctx);
      return [hostNary([v], (x) => host(x, a), v.dataType, ctx.node)];
    },
    infer: (ctx) => [ctx.inputs[0].shape.slice()],
    compile(ctx) {
      const a = read(ctx);
      return unaryCompile(ctx, (x) => run(x, a));
    },
  };
}

const erfHost = (x: number): number => {
  // Abramowitz and Stegun 7.1.26 is too coarse for folding weights; use the series/continued fraction split.
  const t = Math.abs(x);
  if (t < 2.5) {
    let sum = t;
    let term = t;
    for (let n = 1; n < 60; n++) {
      term *= -t * t / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for large |x|.
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (t + f);
  return Math.sign(x) * (1 - Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f));
};

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const SQRT1_2 = Math.SQRT1_2;

function gelu(x: tf.Tensor, approximate: string): tf.Tensor {
  if (approximate === 'tanh') {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
  }
  return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, SQRT1_2)), 1));
}

/** relu(x) - slope * relu(-x): PRelu with a broadcast slope, differentiable on every backend. */
const prelu = (x: tf.Tensor, slope: tf.Tensor): tf.Tensor => tf.sub(tf.relu(x), tf.mul(slope, tf.relu(tf.neg(x))));

/** Clip's bounds: attributes (opset < 11) or optional constant inputs. */
function clipBounds(ctx: OpCtx): [number, number] {
  if (ctx.opset < 11) return [ctx.attrs.float('min', -Infinity), ctx.attrs.float('max', Infinity)];
  const b = (i: number): number | undefined => {
    const inp = ctx.inputs[i];
    if (!inp?.present) return undefined;
    const v = ctx.constant(i, i === 1 ? 'min' : 'max');
    if (v.data.length !== 1) throw invalid(ctx.node, `its ${i === 1 ? 'min' : 'max'} has ${v.data.length} values, expected one`);
    return v.data[0];
  };
  return [b(1) ?? -Infinity, b(2) ?? Infinity];
}

export function clipKind(lo: number, hi: number): 'relu' | 'relu6' | undefined {
  if (lo === 0 && hi === 6) return 'relu6';
  if (lo === 0 && hi === Infinity) return 'relu';
  return undefined;
}

const LOWEST = -3.4028234663852886e38;

const Clip: OpDef = {
  fold(ctx) {
    const v = ctx.inputs[0].value;
    if (!v) return undefined;
    const [lo, hi] = clipBounds(ctx);
    return [hostNary([v], (x) => Math.min(Math.max(x, lo), hi), v.dataType, ctx.node)];
  },
  infer: (ctx) => [ctx.inputs[0].shape.slice()],
  compile(ctx) {
    const [lo, hi] = clipBounds(ctx);
    if (lo > hi) throw invalid(ctx.node, `min ${lo} is above max ${hi}`);
    const kind = clipKind(lo, hi);
    if (kind === 'relu6') return { ...unaryCompile(ctx, (x) => gradActivation(x, 'relu6')), info: { activation: 'relu6' } };
    if (kind === 'relu') return { ...unaryCompile(ctx, (x) => gradActivation(x, 'relu')), info: { activation: 'relu' } };
    return unaryCompile(ctx, (x) => tf.clipByValue(x, Math.max(lo, LOWEST), Math.min(hi, -LOWEST)));
  },
};

const PRelu: OpDef = {
  fold(ctx) {
    const v = allConst(ctx);
    return v ? [hostNary(v, (x, s) => (x >= 0 ? x : s * x), v[0].dataType, ctx.node)] : undefined;
  },
  infer: (ctx) => {
    const [x, s] = ctx.inputs;
    const out = broadcast(x.shape, s.shape);
    // Opset < 9 PRelu slopes of shape [C] or [C, 1, 1] broadcast "unidirectionally" to [N, C, H, W].
    if (!out || out.join() !== x.shape.join()) {
      if (s.shape.length === 1 && x.shape.length >= 2 && s.shape[0] === x.shape[1]) return [x.shape.slice()];
      throw invalid(ctx.node, `slope of shape [${s.shape.join(', ')}] does not broadcast to the input [${x.shape.join(', ')}]`);
    }
    return [x.shape.slice()];
  },
  compile(ctx) {
    const [x, s] = ctx.inputs;
    const rank = x.shape.length;
    if (s.value) {
      let v = s.value;
      // A [C] slope (older exporters) is per channel: axis 1, not the last axis.
      if (v.dims.length === 1 && rank >= 2 && v.dims[0] === x.shape[1] && x.shape[rank - 1] !== v.dims[0]) {
        v = { ...v, dims: [v.dims[0], ...new Array<number>(rank - 2).fill(1)] };
      }
      const perm = ctx.perms[0];
      const slope = ctx.own(constOperand(v, rank, perm));
      const get = ctx.data(0);
      return { perms: [perm], exec: (ins) => [prelu(get(ins), slope)] };
    }
    return naryCompile(ctx, ([a, b]) => prelu(a, b));
  },
};

function pow(a: tf.Tensor, b: tf.Tensor, exponent?: number): tf.Tensor {
  if (exponent === 2) return tf.square(a);
  if (exponent === 1) return a;
  if (exponent === 0.5) return tf.sqrt(a);
  if (exponent === 3) return tf.mul(tf.square(a), a);
  return tf.pow(a, b);
}

const Pow: OpDef = {
  fold(ctx) {
    const v = allConst(ctx);
    return v ? [hostNary(v, (a, b) => a ** b, v[0].dataType, ctx.node)] : undefined;
  },
  infer: (ctx) => [ctx.inputs[0].shape.length >= ctx.inputs[1].shape.length ? ctx.inputs[0].shape.slice() : broadcastShape(ctx)[0]],
  compile(ctx) {
    const e = ctx.inputs[1].value;
    const exponent = e && e.data.length === 1 ? e.data[0] : undefined;
    return naryCompile(ctx, ([a, b]) => pow(a, b, exponent));
  },
};

function whereOp(): OpDef {
  return {
    fold(ctx) {
      const v = allConst(ctx);
      return v ? [hostNary(v, (c, a, b) => (c ? a : b), v[1].dataType, ctx.node)] : undefined;
    },
    infer: broadcastShape,
    compile: (ctx) => naryCompile(ctx, ([c, a, b]) => tf.where(tf.cast(c, 'bool'), a, b)),
  };
}

const intDiv = (a: number, b: number, isInt: boolean): number => (isInt ? Math.trunc(a / b) : a / b);

export const ELEMENTWISE_OPS: Record<string, OpDef> = {
  Add: binary((a, b) => a + b, tf.add),
  Sub: binary((a, b) => a - b, tf.sub),
  Mul: binary((a, b) => a * b, tf.mul),
  Div: binary(intDiv, tf.div),
  Mod: binary((a, b) => a - b * Math.floor(a / b), tf.mod),
  Pow,
  Equal: binary((a, b) => Number(a === b), tf.equal, true),
  Less: binary((a, b) => Number(a < b), tf.less, true),
  LessOrEqual: binary((a, b) => Number(a <= b), tf.lessEqual, true),
  Greater: binary((a, b) => Number(a > b), tf.greater, true),
  GreaterOrEqual: binary((a, b) => Number(a >= b), tf.greaterEqual, true),
  And: binary((a, b) => Number(Boolean(a) && Boolean(b)), (a, b) => tf.logicalAnd(tf.cast(a, 'bool'), tf.cast(b, 'bool')), true),
  Or: binary((a, b) => Number(Boolean(a) || Boolean(b)), (a, b) => tf.logicalOr(tf.cast(a, 'bool'), tf.cast(b, 'bool')), true),
  Where: whereOp(),
  Max: variadic((vs) => Math.max(...vs), (xs) => xs.reduce((a, b) => tf.maximum(a, b))),
  Min: variadic((vs) => Math.min(...vs), (xs) => xs.reduce((a, b) => tf.minimum(a, b))),
  Sum: variadic((vs) => vs.reduce((a, b) => a + b, 0), (xs) => tf.addN(xs)),
  Mean: variadic((vs) => vs.reduce((a, b) => a + b, 0) / vs.length, (xs) => tf.div(tf.addN(xs), xs.length)),
  Not: unary((v) => Number(!v), (x) => tf.logicalNot(tf.cast(x, 'bool'))),
  Relu: { ...unary((v) => Math.max(v, 0), (x) => tf.relu(x)), compile: (ctx) => ({ ...unaryCompile(ctx, (x) => gradActivation(x, 'relu')), info: { activation: 'relu' } }) },
  Sigmoid: unary(sigmoid, (x) => tf.sigmoid(x)),
  Tanh: unary(Math.tanh, (x) => tf.tanh(x)),
  Erf: unary(erfHost, (x) => tf.erf(x)),
  Sqrt: unary(Math.sqrt, (x) => tf.sqrt(x)),
  Exp: unary(Math.exp, (x) => tf.exp(x)),
  Log: unary(Math.log, (x) => tf.log(x)),
  Neg: unary((v) => -v, (x) => tf.neg(x)),
  Abs: unary(Math.abs, (x) => tf.abs(x)),
  Reciprocal: unary((v) => 1 / v, (x) => tf.reciprocal(x)),
  Floor: unary(Math.floor, (x) => tf.floor(x)),
  Ceil: unary(Math.ceil, (x) => tf.ceil(x)),
  Sign: unary(Math.sign, (x) => tf.sign(x)),
  Softplus: unary((v) => Math.log1p(Math.exp(v)), (x) => tf.softplus(x)),
  Softsign: unary((v) => v / (1 + Math.abs(v)), (x) => tf.div(x, tf.add(tf.abs(x), 1))),
  Mish: unary((v) => v * Math.tanh(Math.log1p(Math.exp(v))), (x) => tf.mul(x, tf.tanh(tf.softplus(x)))),
  HardSwish: unary((v) => v * Math.min(Math.max(v / 6 + 0.5, 0), 1), (x) => tf.mul(x, tf.div(tf.relu6(tf.add(x, 3)), 6))),
  LeakyRelu: activation({ alpha: 0.01 }, (v, a) => (v >= 0 ? v : a.alpha * v), (x, a) => tf.leakyRelu(x, a.alpha)),
  HardSigmoid: activation({ alpha: 0.2, beta: 0.5 }, (v, a) => Math.min(Math.max(a.alpha * v + a.beta, 0), 1),
    (x, a) => tf.clipByValue(tf.add(tf.mul(x, a.alpha), a.beta), 0, 1)),
  Elu: activation({ alpha: 1 }, (v, a) => (v >= 0 ? v : a.alpha * (Math.exp(v) - 1)),
    (x, a) => tf.add(tf.relu(x), tf.mul(tf.sub(tf.exp(tf.neg(tf.relu(tf.neg(x)))), 1), a.alpha))),
  Selu: activation({ alpha: 1.6732632423543772, gamma: 1.0507009873554805 }, (v, a) => a.gamma * (v >= 0 ? v : a.alpha * (Math.exp(v) - 1)),
    (x, a) => tf.mul(tf.add(tf.relu(x), tf.mul(tf.sub(tf.exp(tf.neg(tf.relu(tf.neg(x)))), 1), a.alpha)), a.gamma)),
  Gelu: {
    fold(ctx) {
      const v = ctx.inputs[0].value;
      if (!v) return undefined;
      const tanh = ctx.attrs.string('approximate', 'none') === 'tanh';
      return [hostNary([v], (x) => (tanh ? 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))) : 0.5 * x * (1 + erfHost(x * SQRT1_2))), v.dataType, ctx.node)];
    },
    infer: (ctx) => [ctx.inputs[0].shape.slice()],
    compile(ctx) {
      const approximate = ctx.attrs.string('approximate', 'none');
      if (approximate !== 'none' && approximate !== 'tanh') throw unsupported(ctx.node, `approximate="${approximate}" is not supported (none or tanh)`);
      return unaryCompile(ctx, (x) => gelu(x, approximate));
    },
  },
  Clip,
  PRelu,
};
