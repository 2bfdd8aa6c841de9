/**
 * Network operators: Conv, BatchNormalization, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool,
 * Reduce*, Gemm, MatMul, Softmax, LogSoftmax, LayerNormalization, Pad.
 *
 * Convolutions run channels-last: ONNX weights [M, C/group, kH, kW] become tfjs filters [kH, kW, C, M]
 * (ordinary), [kH, kW, C, M/C] (depthwise: group = C; output channel c*mult + m is ONNX's output channel
 * c*mult + m, the m-th filter of group c), or one ordinary filter per group (other group counts: the input is
 * split along channels, each group convolved, the results concatenated).
 *
 * Padding. ONNX pads are [top, left, bottom, right] or come from auto_pad: SAME_UPPER puts the odd pixel at
 * the end (TensorFlow's 'same'), SAME_LOWER at the start. Output size floor((in + pt + pb - ((k-1)d + 1)) / s)
 * + 1. Pooling with ceil_mode rounds up, dropping a last window that would start in the end padding
 * (PyTorch's rule, which ONNX adopted). We hand tfjs the exact padding that yields that size: a number where
 * the four sides agree, 'same' where they are TensorFlow's, else explicit per-side paddings (or a tf.pad).
 *
 * AveragePool divides each window's sum by the number of pixels it covers: inside the image only
 * (count_include_pad 0) or inside the image and its declared pads (1); never the extra ceil_mode rows. The
 * divisor is computed on the host once per input size, so every variant is one zero pad, one average pool
 * and one multiply.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostTensor, sizeOf, type HostTensor } from '../tensor';
import { constOperand, defaultPerm, hostTranspose, identityPerm, normAxis, relayout } from '../layout';
import { invalid, unsupported, type NodeDef, type OpCtx, type OpDef } from './types';
import { activation as gradActivation, conv as gradConv, taping, GradFilters, type ConvRun } from '../../../gradOps';

// ------------------------------------------------------------------------------------------------ geometry

/** Per spatial axis: pads before and after, and the output size. */
interface AxisGeometry {
  begin: number;
  end: number;
  out: number;
}

function axisGeometry(node: NodeDef, size: number, k: number, s: number, d: number, autoPad: string, begin: number, end: number, ceil: boolean): AxisGeometry {
  const eff = (k - 1) * d + 1;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const out = Math.ceil(size / s);
    const total = Math.max(0, (out - 1) * s + eff - size);
    const small = Math.floor(total / 2);
    return autoPad === 'SAME_UPPER' ? { begin: small, end: total - small, out } : { begin: total - small, end: small, out };
  }
  if (autoPad === 'VALID') {
    begin = 0;
    end = 0;
  } else if (autoPad !== 'NOTSET' && autoPad !== '') {
    throw unsupported(node, `auto_pad "${autoPad}" is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID`);
  }
  const span = size + begin + end - eff;
  if (span < 0) throw invalid(node, `a window of ${eff} does not fit an input of ${size} with pads ${begin}, ${end}`);
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= size + begin) out--;
  return { begin, end, out };
}

interface Window2D {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  h: AxisGeometry;
  w: AxisGeometry;
}

function window2d(ctx: OpCtx, inH: number, inW: number, kernel: number[], ceil: boolean): Window2D {
  const node = ctx.node;
  const strides = ctx.attrs.ints('strides', [1, 1]);
  const dilations = ctx.attrs.ints('dilations', [1, 1]);
  const pads = ctx.attrs.ints('pads', [0, 0, 0, 0]);
  if (kernel.length !== 2 || strides.length !== 2 || dilations.length !== 2 || pads.length !== 4) {
    throw unsupported(node, `only 2-D windows are supported (kernel_shape [${kernel.join(', ')}], strides [${strides.join(', ')}], pads [${pads.join(', ')}])`);
  }
  if ([...kernel, ...strides, ...dilations].some((v) => !(Number.isInteger(v) && v >= 1)) || pads.some((v) => !(Number.isInteger(v) && v >= 0))) {
    throw invalid(node, `has kernel [${kernel.join(', ')}], strides [${strides.join(', ')}], dilations [${dilations.join(', ')}], pads [${pads.join(', ')}]`);
  }
  const autoPad = ctx.attrs.string('auto_pad', 'NOTSET');
  const h = axisGeometry(node, inH, kernel[0], strides[0], dilations[0], autoPad, pads[0], pads[2], ceil);
  const w = axisGeometry(node, inW, kernel[1], strides[1], dilations[1], autoPad, pads[1], pads[3], ceil);
  return { kernel: [kernel[0], kernel[1]], strides: [strides[0], strides[1]], dilations: [dilations[0], dilations[1]], h, w };
}

/** Padding that makes tfjs produce exactly `g`'s output size (floor rounding), with the end pads grown for ceil_mode. */
function endPad(size: number, k: number, s: number, d: number, a: AxisGeometry): number {
  const need = (a.out - 1) * s + (k - 1) * d + 1 - (size + a.begin);
  return Math.max(need, 0) >= a.end ? Math.max(need, 0) : a.end;
}

type TfPad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];

/** The tfjs `pad` argument for a window over an [N, H, W, C] input. */
function tfPad(win: Window2D, inH: number, inW: number, allowExplicit: boolean): { pad: TfPad; prepad?: [[number, number], [number, number], [number, number], [number, number]] } {
  const [kh, kw] = win.kernel;
  const [sh, sw] = win.strides;
  const [dh, dw] = win.dilations;
  const pt = win.h.begin;
  const pl = win.w.begin;
  const pb = endPad(inH, kh, sh, dh, win.h);
  const pr = endPad(inW, kw, sw, dw, win.w);
  if (pt === 0 && pb === 0 && pl === 0 && pr === 0) return { pad: 'valid' };
  if (pt === pb && pl === pr && pt === pl) return { pad: pt };
  // TensorFlow's 'same': out = ceil(in / s), the odd pixel at the end.
  const tfSame = (size: number, k: number, s: number, d: number, b: number, e: number) => {
    const out = Math.ceil(size / s);
    const total = Math.max(0, (out - 1) * s + (k - 1) * d + 1 - size);
    return b === Math.floor(total / 2) && e === total - Math.floor(total / 2);
  };
  if (tfSame(inH, kh, sh, dh, pt, pb) && tfSame(inW, kw, sw, dw, pl, pr)) return { pad: 'same' };
  const explicit: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [pt, pb], [pl, pr], [0, 0]];
  return allowExplicit ? { pad: explicit } : { pad: 'valid', prepad: explicit };
}

// ------------------------------------------------------------------------------------------------ Conv

/** Everything a (fused) convolution needs, with host weights; shared with the graph's fusion pass. */
export interface ConvSpec {
  kind: 'conv2d' | 'depthwise' | 'grouped';
  groups: number;
  /** HWIO filters: one for conv2d/depthwise ([kh, kw, C, mult] for depthwise), one per group otherwise. */
  filters: HostTensor[];
  /** Per output channel (ONNX order), or undefined. */
  bias?: Float32Array;
  outChannels: number;
  strides: [number, number];
  dilations: [number, number];
  pad: TfPad;
  prepad?: [[number, number], [number, number], [number, number], [number, number]];
  /** Explicit [top, bottom, left, right] (for dilated convolutions, run as space-to-batch). */
  pads: [number, number, number, number];
}

function convSpec(ctx: OpCtx): ConvSpec {
  const node = ctx.node;
  const [x, wIn] = ctx.inputs;
  if (x.shape.length !== 4) throw unsupported(node, `only 2-D convolutions are supported (input of rank ${x.shape.length})`);
  if (!wIn.value) throw unsupported(node, 'the weights are computed at run time; CAM Lens needs constant convolution weights');
  const w = wIn.value;
  const [, c, h, wd] = x.shape;
  if (w.dims.length !== 4) throw invalid(node, `weight of shape [${w.dims.join(', ')}] is not [out, in/group, kh, kw]`);
  const [m, cg, kh, kw] = w.dims;
  const group = ctx.attrs.int('group', 1);
  if (!(group >= 1) || c % group !== 0 || m % group !== 0 || cg * group !== c) {
    throw invalid(node, `weight of shape [${w.dims.join(', ')}] with group ${group} does not fit an input with ${c} channels`);
  }
  const kernel = ctx.attrs.ints('kernel_shape', [kh, kw]);
  if (kernel.length !== 2 || kernel[0] !== kh || kernel[1] !== kw) throw invalid(node, `kernel_shape [${kernel.join(', ')}] disagrees with the weight [${w.dims.join(', ')}]`);
  const win = window2d(ctx, h, wd, kernel, false);
  if ((win.strides[0] > 1 || win.strides[1] > 1) && (win.dilations[0] > 1 || win.dilations[1] > 1)) {
    throw unsupported(node, `strides [${win.strides.join(', ')}] together with dilations [${win.dilations.join(', ')}] are not supported`);
  }
  let bias: Float32Array | undefined;
  if (ctx.inputs[2]?.present) {
    const b = ctx.constant(2, 'bias');
    if (b.data.length !== m) throw invalid(node, `bias of shape [${b.dims.join(', ')}] does not match ${m} output channels`);
    bias = Float32Array.from(b.data);
  }
  let kind: ConvSpec['kind'];
  let filters: HostTensor[];
  if (group === 1) {
    kind = 'conv2d';
    filters = [hostTranspose(w, [2, 3, 1, 0])];
  } else if (cg === 1 && group === c) {
    kind = 'depthwise';
    filters = [hostTranspose({ ...w, dims: [c, m / c, kh, kw] }, [2, 3, 0, 1])];
  } else {
    kind = 'grouped';
    const mg = m / group;
    const per = mg * cg * kh * kw;
    filters = Array.from({ length: group }, (_, g) =>
      hostTranspose({ dataType: w.dataType, dims: [mg, cg, kh, kw], data: w.data.subarray(g * per, (g + 1) * per) }, [2, 3, 1, 0]));
  }
  const { pad, prepad } = tfPad(win, h, wd, kind === 'conv2d' || (kind === 'grouped' && cg > MAX_GROUP_WIDTH_AS_DEPTHWISE));
  const pads: ConvSpec['pads'] = [win.h.begin, win.h.end, win.w.begin, win.w.end];
  return { kind, groups: group, filters, bias, outChannels: m, strides: win.strides, dilations: win.dilations, pad, prepad, pads };
}

/** Per-channel scale and shift applied after a convolution (a folded BatchNormalization). */
export interface ChannelAffine {
  scale: Float32Array;
  shift: Float32Array;
}

/** Grouped convolutions with at most this many input channels per group run as one depthwise convolution. */
const MAX_GROUP_WIDTH_AS_DEPTHWISE = 8;

const hostToTensor = (h: HostTensor): tf.Tensor4D => tf.tensor4d(Float32Array.from(h.data), h.dims as [number, number, number, number]);

/**
 * Builds the exec of a convolution [N, H, W, C] → [N, H', W', M], optionally with a BatchNormalization
 * folded in (W' = W * s per output channel, b' = b * s + t) and a ReLU/ReLU6 applied inside the kernel.
 * The convolutions run through gradOps.ts (under a gradient tape: dx only, with filters rotated once and kept
 * in `grads`, the graph's; without one, a GradFilters whose tensors go to `own`).
 */
export function buildConv(spec: ConvSpec, own: <T extends tf.Tensor>(t: T) => T, bn?: ChannelAffine, activation?: 'relu' | 'relu6',
  grads: GradFilters = ownedGradFilters(own)): (x: tf.Tensor) => tf.Tensor {
  const m = spec.outChannels;
  const bias = new Float32Array(m);
  if (spec.bias) bias.set(spec.bias);
  const scale = bn?.scale;
  if (bn) for (let o = 0; o < m; o++) bias[o] = bias[o] * bn.scale[o] + bn.shift[o];
  const scaled = (f: HostTensor, channelOf: (lastIndex: number) => number): HostTensor => {
    if (!scale) return f;
    const last = f.dims[3];
    const data = Float32Array.from(f.data, (v, i) => v * scale[channelOf(i % last)]);
    return { ...f, data };
  };
  const { strides, dilations: specDilations, pad: specPad, prepad } = spec;
  const atrous = specDilations[0] > 1 || specDilations[1] > 1;
  // Dilated: the convolution runs undilated and unpadded inside a space-to-batch rearrangement (below).
  const dilations: [number, number] = atrous ? [1, 1] : specDilations;
  const pad: TfPad = atrous ? 'valid' : specPad;
  const pre = (x: tf.Tensor): tf.Tensor4D => (prepad && !atrous ? tf.pad(x, prepad) : x) as tf.Tensor4D;
  const wrap = (f: (x: tf.Tensor) => tf.Tensor): ((x: tf.Tensor) => tf.Tensor) => (atrous ? (x) => spaceToBatchConv(x, specDilations, spec.pads, f) : f);
  if (spec.kind === 'conv2d') {
    const run = registered(grads, { kind: 'conv2d', filter: own(hostToTensor(scaled(spec.filters[0], (o) => o))), bias: own(tf.tensor1d(bias)), strides, pad, dilations, activation });
    return wrap((x) => gradConv(pre(x), run, grads));
  }
  if (spec.kind === 'depthwise') {
    const mult = spec.filters[0].dims[3];
    // Filter [kh, kw, C, mult]: flat index i has c = floor(i / mult) % C, m = i % mult → channel c*mult + m.
    const c = spec.filters[0].dims[2];
    const f = spec.filters[0];
    const filterHost = scale ? { ...f, data: Float32Array.from(f.data, (v, i) => v * scale[(Math.floor(i / mult) % c) * mult + (i % mult)]) } : f;
    const run = registered(grads, { kind: 'depthwise', filter: own(hostToTensor(filterHost)), bias: own(tf.tensor1d(bias)), strides, pad, dilations, activation });
    return wrap((x) => gradConv(pre(x), run, grads));
  }
  const g = spec.groups;
  const mg = m / g;
  const cg = spec.filters[0].dims[2];
  if (cg <= MAX_GROUP_WIDTH_AS_DEPTHWISE) {
    // Narrow groups (ResNeXt, RegNet: 4 or 8 channels each): one depthwise convolution with channel
    // multiplier Mg computes every (input channel, output of its group) product; summing each group's Cg
    // inputs gives the grouped convolution. Depthwise output channel c*Mg + m (c = gi*Cg + j) holds
    // sum_taps x_c * W[gi*Mg + m, j]; reshaped to [.., G, Cg, Mg] and summed over Cg it is output gi*Mg + m.
    const [kh, kw] = spec.filters[0].dims;
    const dw = new Float32Array(kh * kw * g * cg * mg);
    spec.filters.forEach((f, gi) => {
      // f: [kh, kw, Cg, Mg] (HWIO of group gi) → dw[kh, kw, gi*Cg + j, m]
      for (let t = 0; t < kh * kw; t++) {
        for (let j = 0; j < cg; j++) {
          for (let mm = 0; mm < mg; mm++) {
            const sc = scale ? scale[gi * mg + mm] : 1;
            dw[((t * g * cg) + gi * cg + j) * mg + mm] = f.data[(t * cg + j) * mg + mm] * sc;
          }
        }
      }
    });
    const run = registered(grads, { kind: 'depthwise', filter: own(tf.tensor4d(dw, [kh, kw, g * cg, mg])), strides, pad, dilations });
    const b = own(tf.tensor1d(bias));
    return wrap((x) => {
      const y = gradConv(pre(x), run, grads);
      const [n, h, w] = y.shape;
      const z = tf.add(tf.reshape(tf.sum(tf.reshape(y, [n, h, w, g, cg, mg]), 4), [n, h, w, m]), b);
      return activation ? gradActivation(z, activation) : z;
    });
  }
  const runs = spec.filters.map((f, gi): ConvRun => registered(grads, {
    kind: 'conv2d', filter: own(hostToTensor(scaled(f, (o) => gi * mg + o))), bias: own(tf.tensor1d(bias.subarray(gi * mg, (gi + 1) * mg))),
    strides, pad, dilations, activation,
  }));
  return wrap((x) => {
    const parts = tf.split(pre(x), g, 3);
    return tf.concat(parts.map((p, gi) => gradConv(p as tf.Tensor4D, runs[gi], grads)), 3);
  });
}

function registered(grads: GradFilters, run: ConvRun): ConvRun {
  grads.register(run);
  return run;
}

/** Gradient filters for a convolution built outside a graph (tests): made on first use, owned through `own`. */
const ownedGradFilters = (own: <T extends tf.Tensor>(t: T) => T): GradFilters => new GradFilters(own);

/**
 * A stride-1 convolution with dilation d, as TensorFlow runs atrous convolutions: tfjs has no gradient for
 * dilated convolutions, but it has one for this. Zero-pad by the convolution's pads (and up to a multiple of
 * d), move each of the d x d phases of the image into the batch (spaceToBatchND), convolve each phase
 * undilated and unpadded, and interleave the results back (batchToSpaceND), cropping the rows and columns
 * the rounding up added. Output row i is sum_j x[i + j*d] w[j] in padded coordinates either way: row i lies
 * in phase i mod d at position floor(i / d), whose taps are that phase's rows floor(i / d) + j.
 */
function spaceToBatchConv(x: tf.Tensor, d: [number, number], pads: [number, number, number, number], conv: (x: tf.Tensor) => tf.Tensor): tf.Tensor {
  const [, h, w] = x.shape;
  const [pt, pb, pl, pr] = pads;
  const eh = (d[0] - ((h + pt + pb) % d[0])) % d[0];
  const ew = (d[1] - ((w + pl + pr) % d[1])) % d[1];
  const phases = tf.spaceToBatchND(x, d, [[pt, pb + eh], [pl, pr + ew]]);
  return tf.batchToSpaceND(conv(phases), d, [[0, eh], [0, ew]]);
}

const NHWC = [0, 2, 3, 1];

const Conv: OpDef = {
  infer(ctx) {
    const spec = convSpec(ctx);
    const [n, , h, w] = ctx.inputs[0].shape;
    const win = window2d(ctx, h, w, ctx.attrs.ints('kernel_shape', ctx.inputs[1].shape.slice(2)), false);
    return [[n, spec.outChannels, win.h.out, win.w.out]];
  },
  compile(ctx) {
    const spec = convSpec(ctx);
    const x = ctx.data(0);
    const from = ctx.perms[0];
    const run = buildConv(spec, ctx.own, undefined, undefined, ctx.gradFilters);
    const params = spec.filters.reduce((a, f) => a + f.data.length, 0) + (spec.bias?.length ?? 0);
    return { perms: [NHWC], exec: (ins) => [run(relayout(x(ins), from, NHWC))], params, info: { conv: spec } };
  },
};

// ------------------------------------------------------------------------------------------------ BatchNormalization

function bnAffine(ctx: OpCtx): ChannelAffine {
  const node = ctx.node;
  if (ctx.attrs.int('training_mode', 0) !== 0) throw unsupported(node, 'training_mode 1 is not supported (export the model in eval mode)');
  if (ctx.opset < 9 && ctx.attrs.int('spatial', 1) !== 1) throw unsupported(node, 'spatial 0 is not supported');
  const c = ctx.inputs[0].shape[1];
  const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => {
    const v = ctx.constant(i, ['scale', 'bias', 'mean', 'variance'][i - 1]);
    if (v.data.length !== c) throw invalid(node, `${['scale', 'bias', 'mean', 'variance'][i - 1]} of shape [${v.dims.join(', ')}] does not match ${c} channels`);
    return v.data;
  });
  const eps = ctx.attrs.float('epsilon', 1e-5);
  const s = new Float32Array(c);
  const t = new Float32Array(c);
  for (let i = 0; i < c; i++) {
    s[i] = scale[i] / Math.sqrt(variance[i] + eps);
    t[i] = bias[i] - mean[i] * s[i];
  }
  return { scale: s, shift: t };
}

const BatchNormalization: OpDef = {
  infer(ctx) {
    if (ctx.inputs[0].shape.length < 2) throw invalid(ctx.node, `input of rank ${ctx.inputs[0].shape.length}`);
    return [ctx.inputs[0].shape.slice(), ...ctx.node.outputs.slice(1).map(() => [ctx.inputs[0].shape[1]])];
  },
  compile(ctx) {
    if (ctx.node.outputs.slice(1).some((o) => o !== '')) throw unsupported(ctx.node, 'running mean and variance outputs (training mode) are not supported');
    const aff = bnAffine(ctx);
    const rank = ctx.inputs[0].shape.length;
    const perm = ctx.perms[0];
    const c = aff.scale.length;
    const chanDims = [c, ...new Array<number>(rank - 2).fill(1)];
    const s = ctx.own(constOperand(hostTensor(1, chanDims, aff.scale), rank, perm));
    const t = ctx.own(constOperand(hostTensor(1, chanDims, aff.shift), rank, perm));
    const x = ctx.data(0);
    return { perms: [perm], exec: (ins) => [tf.add(tf.mul(x(ins), s), t)], params: 4 * c, info: { bn: aff } };
  },
};

// ------------------------------------------------------------------------------------------------ pooling

const LOWEST = -3.4028234663852886e38;

function poolOut(ctx: OpCtx): number[][] {
  const [n, c, h, w] = ctx.inputs[0].shape;
  if (ctx.inputs[0].shape.length !== 4) throw unsupported(ctx.node, `only 2-D pooling is supported (input of rank ${ctx.inputs[0].shape.length})`);
  const kernel = ctx.attrs.ints('kernel_shape');
  if (!kernel) throw invalid(ctx.node, 'has no kernel_shape');
  const win = window2d(ctx, h, w, kernel, ctx.attrs.int('ceil_mode', 0) === 1);
  return [[n, c, win.h.out, win.w.out]];
}

const MaxPool: OpDef = {
  infer: poolOut,
  compile(ctx) {
    const node = ctx.node;
    if (node.outputs.length > 1 && node.outputs[1] !== '') throw unsupported(node, 'the Indices output is not supported');
    const [, , h, w] = ctx.inputs[0].shape;
    const win = window2d(ctx, h, w, ctx.attrs.ints('kernel_shape') as number[], ctx.attrs.int('ceil_mode', 0) === 1);
    if (win.dilations[0] !== 1 || win.dilations[1] !== 1) throw unsupported(node, `dilations [${win.dilations.join(', ')}] are not supported`);
    const { pad } = tfPad(win, h, w, false);
    const explicit = tfPad(win, h, w, true).pad;
    const x = ctx.data(0);
    const from = ctx.perms[0];
    // An explicit asymmetric padding: pad with the lowest float (never a window's maximum: every window
    // holds at least one input pixel), then a 'valid' pool.
    const pre = typeof explicit === 'object' ? explicit : undefined;
    return {
      perms: [NHWC],
      exec: (ins) => {
        let t = relayout(x(ins), from, NHWC) as tf.Tensor4D;
        if (pre) t = tf.pad(t, pre, LOWEST);
        return [tf.maxPool(t, win.kernel, win.strides, pre ? 'valid' : pad)];
      },
    };
  },
};

/** Pixels each window of an average pool counts (see the file comment), as [1, oh, ow, 1]. */
function avgDivisor(win: Window2D, h: number, w: number, includePad: boolean): Float32Array {
  const axis = (size: number, k: number, s: number, a: AxisGeometry) => {
    const lo = includePad ? -a.begin : 0;
    const hi = includePad ? size + a.end : size;
    return Array.from({ length: a.out }, (_, i) => {
      const start = i * s - a.begin;
      return Math.max(0, Math.min(start + k, hi) - Math.max(start, lo));
    });
  };
  const rows = axis(h, win.kernel[0], win.strides[0], win.h);
  const cols = axis(w, win.kernel[1], win.strides[1], win.w);
  const out = new Float32Array(rows.length * cols.length);
  rows.forEach((r, i) => cols.forEach((c, j) => (out[i * cols.length + j] = r * c)));
  return out;
}

const AveragePool: OpDef = {
  infer: poolOut,
  compile(ctx) {
    const node = ctx.node;
    const [, , h, w] = ctx.inputs[0].shape;
    const win = window2d(ctx, h, w, ctx.attrs.ints('kernel_shape') as number[], ctx.attrs.int('ceil_mode', 0) === 1);
    if (win.dilations[0] !== 1 || win.dilations[1] !== 1) throw unsupported(node, `dilations [${win.dilations.join(', ')}] are not supported`);
    const includePad = ctx.attrs.int('count_include_pad', 0) === 1;
    const x = ctx.data(0);
    const from = ctx.perms[0];
    const explicit = tfPad(win, h, w, true).pad;
    if (explicit === 'valid') {
      return { perms: [NHWC], exec: (ins) => [tf.avgPool(relayout(x(ins), from, NHWC) as tf.Tensor4D, win.kernel, win.strides, 'valid')] };
    }
    const pads: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0],
      [win.h.begin, endPad(h, win.kernel[0], win.strides[0], 1, win.h)], [win.w.begin, endPad(w, win.kernel[1], win.strides[1], 1, win.w)], [0, 0]];
    const area = win.kernel[0] * win.kernel[1];
    const divisor = avgDivisor(win, h, w, includePad);
    const factor = ctx.own(tf.tensor4d(divisor.map((d) => area / d), [1, win.h.out, win.w.out, 1]));
    return {
      perms: [NHWC],
      exec: (ins) => {
        const t = tf.pad(relayout(x(ins), from, NHWC) as tf.Tensor4D, pads);
        return [tf.mul(tf.avgPool(t, win.kernel, win.strides, 'valid'), factor)];
      },
    };
  },
};

function globalPool(kind: 'mean' | 'max'): OpDef {
  return {
    infer(ctx) {
      const s = ctx.inputs[0].shape;
      if (s.length < 3) throw invalid(ctx.node, `input of rank ${s.length}`);
      return [s.map((d, i) => (i >= 2 ? 1 : d))];
    },
    compile(ctx) {
      const perm = ctx.perms[0];
      const axes = perm.map((a, i) => (a >= 2 ? i : -1)).filter((i) => i >= 0);
      const x = ctx.data(0);
      return { perms: [perm], exec: (ins) => [kind === 'mean' ? tf.mean(x(ins), axes, true) : tf.max(x(ins), axes, true)] };
    },
  };
}

// ------------------------------------------------------------------------------------------------ Reduce*

type ReduceKind = 'mean' | 'sum' | 'max' | 'min' | 'prod' | 'l2' | 'l1' | 'sumsquare' | 'logsumexp';

function reduceAxes(ctx: OpCtx, rank: number, kind: ReduceKind): number[] | undefined {
  // Axes moved from an attribute to an input: ReduceSum at opset 13, the others at 18.
  const asInput = ctx.opset >= (kind === 'sum' ? 13 : 18);
  let axes: number[] | undefined;
  // Lenient where a newer opset still carries the attribute.
  if (asInput && ctx.inputs[1]?.present) axes = Array.from(ctx.constant(1, 'axes').data);
  else axes = ctx.attrs.ints('axes');
  if (!axes || axes.length === 0) {
    if (asInput && ctx.attrs.int('noop_with_empty_axes', 0) === 1) return [];
    return identityPerm(rank);
  }
  const out = axes.map((a) => normAxis(a, rank));
  if (out.some((a) => !(a >= 0 && a < rank))) throw invalid(ctx.node, `axes [${axes.join(', ')}] are out of range for rank ${rank}`);
  return [...new Set(out)].sort((a, b) => a - b);
}

function reduceHost(v: HostTensor, axes: number[], keep: boolean, kind: ReduceKind): HostTensor {
  const dims = v.dims;
  const outDims = dims.map((d, i) => (axes.includes(i) ? 1 : d));
  const n = sizeOf(outDims);
  const acc = new Float64Array(n).fill(kind === 'max' ? -Infinity : kind === 'min' ? Infinity : kind === 'prod' ? 1 : 0);
  const count = sizeOf(axes.map((a) => dims[a]));
  const rank = dims.length;
  const idx = new Array<number>(rank).fill(0);
  const outStr: number[] = [];
  for (let i = rank - 1, s = 1; i >= 0; i--) {
    outStr[i] = s;
    s *= outDims[i];
  }
  const mx = kind === 'logsumexp' ? new Float64Array(n).fill(-Infinity) : undefined;
  if (mx) {
    for (let i = 0; i < v.data.length; i++) {
      let o = 0;
      let rem = i;
      for (let d = rank - 1; d >= 0; d--) {
        const id = rem % dims[d];
        rem = Math.floor(rem / dims[d]);
        if (!axes.includes(d)) o += id * outStr[d];
      }
      mx[o] = Math.max(mx[o], v.data[i]);
    }
  }
  for (let i = 0; i < v.data.length; i++) {
    let o = 0;
    for (let d = 0; d < rank; d++) if (!axes.includes(d)) o += idx[d] * outStr[d];
    const x = v.data[i];
    switch (kind) {
      case 'max': acc[o] = Math.max(acc[o], x); break;
      case 'min': acc[o] = Math.min(acc[o], x); break;
      case 'prod': acc[o] *= x; break;
      case 'l2': case 'sumsquare': acc[o] += x * x; break;
      case 'l1': acc[o] += Math.abs(x); break;
      case 'logsumexp': acc[o] += Math.exp(x - (mx as Float64Array)[o]); break;
      default: acc[o] += x;
    }
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < dims[d]) break;
      idx[d] = 0;
    }
  }
  const values = Array.from(acc, (a, o) => (kind === 'mean' ? a / count : kind === 'l2' ? Math.sqrt(a) : kind === 'logsumexp' ? Math.log(a) + (mx as Float64Array)[o] : a));
  return hostTensor(v.dataType, keep ? outDims : dims.filter((_, i) => !axes.includes(i)), values);
}

function reduce(kind: ReduceKind): OpDef {
  const shape = (ctx: OpCtx) => {
    const dims = ctx.inputs[0].shape;
    const axes = reduceAxes(ctx, dims.length, kind) as number[];
    const keep = ctx.attrs.int('keepdims', 1) === 1;
    return keep ? dims.map((d, i) => (axes.includes(i) ? 1 : d)) : dims.filter((_, i) => !axes.includes(i));
  };
  return {
    fold(ctx) {
      const v = ctx.inputs[0].value;
      if (!v) return undefined;
      const axes = reduceAxes(ctx, v.dims.length, kind) as number[];
      if (axes.length === 0) return [v];
      return [reduceHost(v, axes, ctx.attrs.int('keepdims', 1) === 1, kind)];
    },
    infer: (ctx) => [shape(ctx)],
    compile(ctx) {
      const perm = ctx.perms[0];
      const axes = reduceAxes(ctx, perm.length, kind) as number[];
      const keep = ctx.attrs.int('keepdims', 1) === 1;
      const x = ctx.data(0);
      if (axes.length === 0) return { perms: [perm], exec: (ins) => [x(ins)] };
      const phys = axes.map((a) => perm.indexOf(a)).sort((a, b) => a - b);
      const outPerm = keep ? perm : perm.filter((a) => !axes.includes(a)).map((a) => a - axes.filter((b) => b < a).length);
      const f = (t: tf.Tensor): tf.Tensor => {
        switch (kind) {
          case 'mean': return tf.mean(t, phys, keep);
          case 'sum': return tf.sum(t, phys, keep);
          case 'max': return tf.max(t, phys, keep);
          case 'min': return tf.min(t, phys, keep);
          case 'prod': return tf.prod(t, phys, keep);
          case 'l2': return tf.sqrt(tf.sum(tf.square(t), phys, keep));
          case 'l1': return tf.sum(tf.abs(t), phys, keep);
          case 'sumsquare': return tf.sum(tf.square(t), phys, keep);
          case 'logsumexp': return tf.logSumExp(t, phys, keep);
        }
      };
      return { perms: [outPerm], exec: (ins) => [f(x(ins))], info: { reduceAxes: axes } };
    },
  };
}

// ------------------------------------------------------------------------------------------------ Gemm, MatMul

/** A linear layer's weights as the CAM head needs them: W [K, N] and the bias. */
export interface LinearInfo {
  weights: HostTensor;
  bias?: Float32Array;
}

const Gemm: OpDef = {
  infer(ctx) {
    const [a, b] = ctx.inputs;
    if (a.shape.length !== 2 || b.shape.length !== 2) throw invalid(ctx.node, `inputs of shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] are not matrices`);
    const ta = ctx.attrs.int('transA', 0) === 1;
    const tb = ctx.attrs.int('transB', 0) === 1;
    const [m, k] = ta ? [a.shape[1], a.shape[0]] : a.shape;
    const [k2, n] = tb ? [b.shape[1], b.shape[0]] : b.shape;
    if (k !== k2) throw invalid(ctx.node, `cannot multiply [${a.shape.join(', ')}] by [${b.shape.join(', ')}] (transA ${Number(ta)}, transB ${Number(tb)})`);
    return [[m, n]];
  },
  compile(ctx) {
    const node = ctx.node;
    const bIn = ctx.inputs[1];
    const ta = ctx.attrs.int('transA', 0) === 1;
    const tb = ctx.attrs.int('transB', 0) === 1;
    const alpha = ctx.attrs.float('alpha', 1);
    const beta = ctx.attrs.float('beta', 1);
    const [, n] = ctx.outShapes[0];
    const a = ctx.data(0);
    const aPerm = ctx.perms[0];
    let cTerm: tf.Tensor | undefined;
    let bias1d: tf.Tensor1D | undefined;
    let biasHost: Float32Array | undefined;
    if (ctx.inputs[2]?.present) {
      const c = ctx.inputs[2].value;
      if (!c) throw unsupported(node, 'a bias computed at run time is not supported');
      if (c.data.length === n && (c.dims.length === 1 || (c.dims.length === 2 && c.dims[0] === 1))) {
        biasHost = Float32Array.from(c.data, (v) => v * beta);
        bias1d = ctx.own(tf.tensor1d(biasHost));
      } else {
        cTerm = ctx.own(tf.mul(tf.tensor(Float32Array.from(c.data), c.dims), beta));
      }
    }
    if (bIn.value) {
      let w = bIn.value;
      if (tb) w = hostTranspose(w, [1, 0]);
      if (alpha !== 1) w = { ...w, data: Float32Array.from(w.data, (v) => v * alpha) };
      const wt = ctx.own(tf.tensor2d(Float32Array.from(w.data), w.dims as [number, number]));
      const info: LinearInfo = { weights: w, bias: biasHost };
      return {
        perms: [identityPerm(2)],
        params: w.data.length + (biasHost?.length ?? 0),
        info: { linear: info },
        exec: (ins) => {
          const x = relayout(a(ins), aPerm, identityPerm(2)) as tf.Tensor2D;
          // Under a gradient tape: matMul + add, whose gradients are per input (the fused op's gradient also computes
          // the weights' and the bias's).
          const y = taping() ? (bias1d ? tf.add(tf.matMul(x, wt, ta), bias1d) : tf.matMul(x, wt, ta)) : tf.fused.matMul({ a: x, b: wt, transposeA: ta, bias: bias1d });
          return [cTerm ? tf.add(y, cTerm) : y];
        },
      };
    }
    const b = ctx.data(1);
    const bPerm = ctx.perms[1];
    return {
      perms: [identityPerm(2)],
      exec: (ins) => {
        let y = tf.matMul(relayout(a(ins), aPerm, identityPerm(2)) as tf.Tensor2D, relayout(b(ins), bPerm, identityPerm(2)) as tf.Tensor2D, ta, tb);
        if (alpha !== 1) y = tf.mul(y, alpha);
        if (bias1d) y = tf.add(y, bias1d);
        return [cTerm ? tf.add(y, cTerm) : y];
      },
    };
  },
};

function matmulShape(node: NodeDef, a: number[], b: number[]): number[] {
  if (a.length < 1 || b.length < 1) throw invalid(node, 'has a scalar operand');
  const a2 = a.length === 1 ? [1, a[0]] : a;
  const b2 = b.length === 1 ? [b[0], 1] : b;
  const k = a2[a2.length - 1];
  if (k !== b2[b2.length - 2]) throw invalid(node, `cannot multiply [${a.join(', ')}] by [${b.join(', ')}]`);
  const batchA = a2.slice(0, -2);
  const batchB = b2.slice(0, -2);
  const r = Math.max(batchA.length, batchB.length);
  const batch: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = batchA[batchA.length - r + i] ?? 1;
    const y = batchB[batchB.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw invalid(node, `batch dimensions of [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
    batch.push(Math.max(x, y));
  }
  const out = [...batch, a2[a2.length - 2], b2[b2.length - 1]];
  if (a.length === 1) out.splice(out.length - 2, 1);
  if (b.length === 1) out.splice(out.length - 1, 1);
  return out;
}

const MatMul: OpDef = {
  infer: (ctx) => [matmulShape(ctx.node, ctx.inputs[0].shape, ctx.inputs[1].shape)],
  compile(ctx) {
    const [aIn, bIn] = ctx.inputs;
    const a = ctx.data(0);
    const aPerm = ctx.perms[0];
    const r = aIn.shape.length;
    if (bIn.value && bIn.value.dims.length === 2 && r >= 2) {
      // x[..., K] @ W[K, N]: any layout whose last physical axis is the logical last axis works as a 2-D
      // product over all the other axes; the output keeps that layout.
      const w = bIn.value;
      const wt = ctx.own(tf.tensor2d(Float32Array.from(w.data), w.dims as [number, number]));
      const perm = aPerm[r - 1] === r - 1 ? aPerm : [...aPerm.filter((x) => x !== r - 1), r - 1];
      const n = w.dims[1];
      return {
        perms: [perm],
        params: w.data.length,
        info: { linear: { weights: w } as LinearInfo },
        exec: (ins) => {
          const t = relayout(a(ins), aPerm, perm);
          const k = t.shape[t.rank - 1];
          const y = tf.matMul(tf.reshape(t, [-1, k]) as tf.Tensor2D, wt);
          return [tf.reshape(y, [...t.shape.slice(0, -1), n])];
        },
      };
    }
    const b = ctx.data(1);
    const bPerm = ctx.perms[1];
    const outPerm = defaultPerm(ctx.outShapes[0].length);
    return {
      perms: [outPerm],
      exec: (ins) => {
        let x = relayout(a(ins), aPerm, identityPerm(aPerm.length));
        let y = relayout(b(ins), bPerm, identityPerm(bPerm.length));
        const squeezeA = x.rank === 1;
        const squeezeB = y.rank === 1;
        if (squeezeA) x = tf.reshape(x, [1, x.shape[0]]);
        if (squeezeB) y = tf.reshape(y, [y.shape[0], 1]);
        let z = tf.matMul(x, y);
        if (squeezeA || squeezeB) z = tf.reshape(z, ctx.outShapes[0].length ? [...z.shape.slice(0, -2), ...(squeezeA ? [] : [z.shape[z.rank - 2]]), ...(squeezeB ? [] : [z.shape[z.rank - 1]])] : []);
        return [relayout(z, identityPerm(z.rank), outPerm)];
      },
    };
  },
};

// ------------------------------------------------------------------------------------------------ Softmax, LayerNormalization

function softmaxOp(log: boolean): OpDef {
  return {
    infer: (ctx) => [ctx.inputs[0].shape.slice()],
    compile(ctx) {
      const perm = ctx.perms[0];
      const r = perm.length;
      const x = ctx.data(0);
      const sm = (t: tf.Tensor) => (log ? tf.logSoftmax(t) : tf.softmax(t));
      if (ctx.opset < 13) {
        // Softmax over the flattened axes [axis, r): the input coerced to 2-D.
        const axis = normAxis(ctx.attrs.int('axis', 1), r);
        const dims = ctx.inputs[0].shape;
        if (axis === r - 1) {
          const last = [...perm.filter((a) => a !== r - 1), r - 1];
          return { perms: [last], exec: (ins) => [sm(relayout(x(ins), perm, last))] };
        }
        const id = identityPerm(r);
        return {
          perms: [id],
          exec: (ins) => {
            const t = relayout(x(ins), perm, id);
            const inner = sizeOf(dims.slice(axis));
            return [tf.reshape(sm(tf.reshape(t, [-1, inner])), t.shape)];
          },
        };
      }
      const axis = normAxis(ctx.attrs.int('axis', -1), r);
      if (!(axis >= 0 && axis < r)) throw invalid(ctx.node, `axis ${ctx.attrs.int('axis', -1)} is out of range for rank ${r}`);
      // tfjs normalises over the last axis: lay the softmax axis out last (free where the rest is size 1).
      const last = [...perm.filter((a) => a !== axis), axis];
      return { perms: [last], exec: (ins) => [sm(relayout(x(ins), perm, last))] };
    },
  };
}

const LayerNormalization: OpDef = {
  infer(ctx) {
    return [ctx.inputs[0].shape.slice(), ...ctx.node.outputs.slice(1).map(() => ctx.inputs[0].shape.map(() => 1))];
  },
  compile(ctx) {
    const node = ctx.node;
    if (node.outputs.slice(1).some((o) => o !== '')) throw unsupported(node, 'the Mean and InvStdDev outputs are not supported');
    const dims = ctx.inputs[0].shape;
    const r = dims.length;
    const axis = normAxis(ctx.attrs.int('axis', -1), r);
    if (!(axis >= 0 && axis < r)) throw invalid(node, `axis ${ctx.attrs.int('axis', -1)} is out of range for rank ${r}`);
    const eps = ctx.attrs.float('epsilon', 1e-5);
    const perm = ctx.perms[0];
    const axes = perm.map((a, i) => (a >= axis ? i : -1)).filter((i) => i >= 0);
    const normShape = dims.slice(axis);
    const param = (i: number, what: string): tf.Tensor | undefined => {
      if (!ctx.inputs[i]?.present) return undefined;
      const v = ctx.staticConst(i, what);
      if (v.data.length !== sizeOf(normShape)) throw invalid(node, `${what} of shape [${v.dims.join(', ')}] does not match the normalised shape [${normShape.join(', ')}]`);
      return ctx.own(constOperand({ ...v, dims: normShape }, r, perm));
    };
    const scale = param(1, 'scale');
    const bias = param(2, 'bias');
    const x = ctx.data(0);
    return {
      perms: [perm],
      params: 2 * sizeOf(normShape),
      exec: (ins) => {
        const t = x(ins);
        const { mean, variance } = tf.moments(t, axes, true);
        let y = tf.mul(tf.sub(t, mean), tf.rsqrt(tf.add(variance, eps)));
        if (scale) y = tf.mul(y, scale);
        if (bias) y = tf.add(y, bias);
        return [y];
      },
    };
  },
};

// ------------------------------------------------------------------------------------------------ Pad

function padSpec(ctx: OpCtx, rank: number): { pads: number[]; mode: string; value: number } {
  const mode = ctx.attrs.string('mode', 'constant');
  let pads: number[];
  let value = 0;
  if (ctx.opset < 11) {
    pads = ctx.attrs.ints('pads') ?? ctx.attrs.ints('paddings') ?? [];
    value = ctx.attrs.float('value', 0);
  } else {
    pads = Array.from(ctx.constant(1, 'pads').data);
    if (ctx.inputs[2]?.present && ctx.inputs[2].name !== '') {
      const v = ctx.constant(2, 'constant_value');
      value = v.data[0] ?? 0;
    }
    if (ctx.inputs[3]?.present) {
      const axes = Array.from(ctx.constant(3, 'axes').data, (a) => normAxis(a, rank));
      const full = new Array<number>(2 * rank).fill(0);
      axes.forEach((a, i) => {
        full[a] = pads[i];
        full[a + rank] = pads[i + axes.length];
      });
      pads = full;
    }
  }
  if (pads.length !== 2 * rank) throw invalid(ctx.node, `has ${pads.length} pads for a tensor of rank ${rank}`);
  return { pads, mode, value };
}

const Pad: OpDef = {
  infer(ctx) {
    const dims = ctx.inputs[0].shape;
    const { pads } = padSpec(ctx, dims.length);
    const out = dims.map((d, i) => d + pads[i] + pads[i + dims.length]);
    if (out.some((d) => d < 0)) throw invalid(ctx.node, `pads [${pads.join(', ')}] crop more than [${dims.join(', ')}]`);
    return [out];
  },
  compile(ctx) {
    const node = ctx.node;
    const perm = ctx.perms[0];
    const r = perm.length;
    const { pads, mode, value } = padSpec(ctx, r);
    if (mode !== 'constant' && mode !== 'reflect') throw unsupported(node, `mode "${mode}" is not supported (constant or reflect)`);
    const pairs = perm.map((a) => [Math.max(pads[a], 0), Math.max(pads[a + r], 0)] as [number, number]);
    const crop = perm.map((a) => [Math.max(-pads[a], 0), Math.max(-pads[a + r], 0)] as [number, number]);
    const cropping = crop.some(([b, e]) => b > 0 || e > 0);
    const x = ctx.data(0);
    return {
      perms: [perm],
      exec: (ins) => {
        let t = x(ins);
        if (cropping) t = tf.slice(t, crop.map(([b]) => b), t.shape.map((d, i) => d - crop[i][0] - crop[i][1]));
        return [mode === 'reflect' ? tf.mirrorPad(t, pairs, 'reflect') : tf.pad(t, pairs, value)];
      },
    };
  },
};

export const NN_OPS: Record<string, OpDef> = {
  Conv, BatchNormalization, MaxPool, AveragePool,
  GlobalAveragePool: globalPool('mean'),
  GlobalMaxPool: globalPool('max'),
  ReduceMean: reduce('mean'), ReduceSum: reduce('sum'), ReduceMax: reduce('max'), ReduceMin: reduce('min'), ReduceProd: reduce('prod'),
  ReduceL2: reduce('l2'), ReduceL1: reduce('l1'), ReduceSumSquare: reduce('sumsquare'), ReduceLogSumExp: reduce('logsumexp'),
  Gemm, MatMul,
  Softmax: softmaxOp(false), LogSoftmax: softmaxOp(true),
  LayerNormalization, Pad,
};

