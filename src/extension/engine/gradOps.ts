/**
 * Convolutions and ReLU/ReLU6 for the executors (graph.ts for LayersModels, the ONNX executor) that, while a
 * gradient tape records (`tf.grad` of f(A) = logit_c in session.ts), give the gradient of their input and
 * nothing else. Without a tape they run exactly what the executors ran before (tf.fused.conv2d /
 * depthwiseConv2d, tf.relu / tf.relu6), so forward passes do not change at all.
 *
 * Why. A CAM method needs dlogit_c/dA, and tf.grad already restricts the backward pass to the inputs on a path
 * from A for ordinary ops (their gradients are lazy per input). tfjs-core's fused ops are the exception: they
 * are custom-gradient ops whose gradient function computes dx, dFilter and dBias together, whether or not the
 * filter needs one, and tfjs-layers' Conv2D, DepthwiseConv2D and Dense call them. Worse, while a tape records
 * tfjs-core does not fuse a ReLU/ReLU6 at all: conv, a broadcasting bias add and the activation become three
 * tape nodes, and ReLU6's derivative is built from LessEqual, Step, Cast and two products, with wasm's
 * comparison kernels (a generic broadcasting loop with a bool output) at 25-35x the cost of a multiply.
 * Profile of Grad-CAM at MobileNet v1 0.25's conv1_relu on wasm, one thread, before this module (ms per map):
 * LessEqual 13.8, Conv2D 8.9 (forward convolutions unfused, and the input gradients), DepthwiseConv2dNative 4.6,
 * the forward pass itself 5.8, bias adds 1.8, casts 1.4, filter rotations (Reverse, Transpose) 1.9 — 9.5x a
 * forward pass. With the target inside a folded group (a raw convolution or BatchNormalization output) the
 * executor fell back to the unfolded layers for the whole graph, and then tfjs-layers' fused convolutions
 * computed every filter gradient (Conv2DBackpropFilter), BatchNormalization's gradient tiled its variance to
 * the activation's size (Tile: 263 of 545 ms at conv1), and Keras' relu6 (minimum(6, relu(x))) added Minimum's
 * comparison-based derivative: 40x a forward pass.
 *
 * What runs under a tape instead (`conv`, `activation`):
 * - forward: the very kernel that runs without a tape (FusedConv2D / FusedDepthwiseConv2D with the bias and the
 *   activation inside; Relu / Relu6), inside tf.customGrad with x as the only input, so that the tape holds one
 *   node per convolution and no gradient is asked of the filter or the bias;
 * - backward: dy times the activation's derivative, read off the output y (saved on the tape; wasm's clone of it
 *   no longer copies, wasmKernels.ts section 6): relu'(x) = 1 where y > 0, relu6'(x) = 1 where 0 < y < 6, computed
 *   as step(y * (6 - y)) (Step, Sub and Mul are fast on wasm; comparisons are not). tfjs-core's own ReLU6
 *   derivative is 1 on 0 < x <= 6, so the two differ where a pre-activation is exactly 6.0 (PyTorch's hardtanh
 *   uses the open interval, as here). Then dx of the convolution (wasmKernels.ts
 *   `convInputGradient`, sections 1 and 4 there): a stride-1 convolution of dy, zero-dilated by the stride,
 *   with the filter rotated 180 degrees (ordinary convolutions: and its channel axes swapped). The rotated
 *   filter is made once per filter and kept (`GradFilters`): rotating per call cost more than the convolution
 *   for large filters (wasm's Reverse and Transpose are generic loops: 50 ms for a 3x3x256x256 filter), and a
 *   new filter tensor per call also makes XNNPACK repack its weights, which it caches per filter tensor.
 *
 * Limits: NHWC; 2-D convolutions as tf.fused takes them (strides or dilations 1, any tfjs padding). Anything
 * else (other activations, pooling, merges) keeps tfjs-core's own gradients, which are already lazy per input.
 */
import * as tf from '@tensorflow/tfjs-core';
import { convInputGradient, phasedInputGradient } from './wasmKernels';

export type TfPad = 'valid' | 'same' | number | [[number, number], [number, number], [number, number], [number, number]];
export type FusableActivation = 'relu' | 'relu6';
/** Activations with an input-only gradient of their own here (swish has no fused kernel: it runs as its own op). */
export type TapedActivation = FusableActivation | 'swish';

/** A convolution as the executors run it: what tf.fused.conv2d / depthwiseConv2d take. */
export interface ConvRun {
  kind: 'conv2d' | 'depthwise';
  filter: tf.Tensor4D;
  bias?: tf.Tensor1D;
  strides: [number, number];
  pad: TfPad;
  dilations: [number, number];
  activation?: FusableActivation;
}

interface EngineState {
  state: { gradientDepth: number; kernelDepth: number };
}

/** True while a gradient tape records ops (inside tf.grad's function, outside kernels). */
export function taping(): boolean {
  const s = (tf.engine() as unknown as EngineState).state;
  return s.gradientDepth > 0 && s.kernelDepth === 0;
}

/** Models whose convolutions hold at most this many filter values get their gradient filters at load (16 MB). */
export const EAGER_GRAD_FILTERS = 1 << 22;

/**
 * The filters input gradients are computed with, one per forward filter, kept until `dispose`: conv2d
 * [kh, kw, Ci, Co] → rotated 180 degrees with the channel axes swapped, [kh, kw, Co, Ci]; depthwise
 * [kh, kw, C, M] → rotated, one 2-D filter per output channel, [kh, kw, C*M, 1]. Owned by the graph that owns the
 * forward filters. An executor registers every convolution a gradient may run through and calls
 * `prepareIfSmall` once built: a small model gets all of them at load (a few ms), so that its gradients then
 * allocate no lasting tensors; a large one gets each on its first gradient (load time and memory: a second copy
 * of every filter).
 */
export class GradFilters {
  private readonly made = new Map<tf.Tensor4D, tf.Tensor4D>();
  private readonly phased = new Map<tf.Tensor4D, (tf.Tensor4D | null)[]>();
  private readonly known = new Map<tf.Tensor4D, { kind: ConvRun['kind']; strides: [number, number] }>();

  /** `own`: hands each filter made to an owner that disposes it (then `dispose` leaves them alone). */
  constructor(private readonly own?: (t: tf.Tensor) => void) {}

  /** Notes a convolution whose input gradient may be asked for. */
  register(run: ConvRun): void {
    this.known.set(run.filter, { kind: run.kind, strides: run.strides });
  }

  /** Makes every registered convolution's gradient filter now if together they hold at most `budget` values. */
  prepareIfSmall(budget = EAGER_GRAD_FILTERS): boolean {
    let n = 0;
    for (const f of this.known.keys()) n += f.size;
    if (n > budget) return false;
    for (const [f, { kind, strides }] of this.known) {
      if (usesPhases(kind, f, strides, [1, 1])) this.phases(f, kind, strides);
      else this.get(f, kind);
    }
    return true;
  }

  get(filter: tf.Tensor4D, kind: ConvRun['kind']): tf.Tensor4D {
    const [kh, kw, , m] = filter.shape;
    // A 1x1 depthwise filter with one output per channel (a BatchNormalization's scale) is its own rotation.
    if (kind === 'depthwise' && kh === 1 && kw === 1 && m === 1) return filter;
    let g = this.made.get(filter);
    if (!g) {
      g = tf.keep(rotatedFilter(filter, kind));
      this.made.set(filter, g);
      this.own?.(g);
    }
    return g;
  }

  /**
   * A strided convolution's taps by phase (wasmKernels.ts phasedInputGradient): for tap phase (ry, rx), the taps
   * f[ry + s*j, rx + s*l] rotated 180 degrees (ordinary convolutions: channels swapped), at index ry * sw + rx.
   */
  phases(filter: tf.Tensor4D, kind: ConvRun['kind'], strides: [number, number]): (tf.Tensor4D | null)[] {
    let list = this.phased.get(filter);
    if (!list) {
      list = phaseFilters(filter, kind, strides).map((g) => (g ? tf.keep(g) : null));
      this.phased.set(filter, list);
      for (const g of list) if (g) this.own?.(g);
    }
    return list;
  }

  dispose(): void {
    if (!this.own) for (const g of [...this.made.values(), ...[...this.phased.values()].flat()]) g?.dispose();
    this.made.clear();
    this.phased.clear();
    this.known.clear();
  }
}

/** Section 1/4's filter, permuted in JS: one pass, where wasm's Reverse + Transpose are slow generic loops. */
function rotatedFilter(filter: tf.Tensor4D, kind: ConvRun['kind']): tf.Tensor4D {
  const [kh, kw, ci, co] = filter.shape;
  const taps = kh * kw;
  const src = filter.dataSync() as Float32Array;
  const out = new Float32Array(src.length);
  const per = ci * co;
  if (kind === 'depthwise') {
    // Tap t moves to taps - 1 - t; the (channel, multiplier) pairs stay in order.
    for (let t = 0; t < taps; t++) out.set(src.subarray(t * per, (t + 1) * per), (taps - 1 - t) * per);
    return tf.tensor4d(out, [kh, kw, per, 1]);
  }
  for (let t = 0; t < taps; t++) {
    const from = t * per;
    const to = (taps - 1 - t) * per;
    for (let i = 0; i < ci; i++) {
      for (let o = 0; o < co; o++) out[to + o * ci + i] = src[from + i * co + o];
    }
  }
  return tf.tensor4d(out, [kh, kw, co, ci]);
}

/**
 * Whether dx goes by phases: an ordinary convolution with a stride above 1 and a filter wider than 1 along it, no
 * dilation. Not a depthwise one: there the convolutions are memory-bound, and four small ones plus stacking them
 * cost three times the one over a zero-dilated dy (MobileNet's 112x112x16 3x3 stride 2: 3.0 against 0.9 ms),
 * where for an ordinary one phases cost a third (Inception's 35x35x288 -> 384: 31 against 106 ms).
 */
function usesPhases(kind: ConvRun['kind'], filter: tf.Tensor4D, strides: [number, number], dilations: [number, number]): boolean {
  const [kh, kw] = filter.shape;
  return kind === 'conv2d' && dilations[0] === 1 && dilations[1] === 1 && ((strides[0] > 1 && kh > 1) || (strides[1] > 1 && kw > 1));
}

/** `GradFilters.phases`' filters, permuted in JS; null for a phase no tap has. */
function phaseFilters(filter: tf.Tensor4D, kind: ConvRun['kind'], [sh, sw]: [number, number]): (tf.Tensor4D | null)[] {
  const [kh, kw, ci, co] = filter.shape;
  const src = filter.dataSync() as Float32Array;
  const per = ci * co;
  const out: (tf.Tensor4D | null)[] = [];
  for (let ry = 0; ry < sh; ry++) {
    for (let rx = 0; rx < sw; rx++) {
      const jy = Math.ceil((kh - ry) / sh);
      const jx = Math.ceil((kw - rx) / sw);
      if (jy <= 0 || jx <= 0) {
        out.push(null);
        continue;
      }
      const data = new Float32Array(jy * jx * per);
      for (let q1 = 0; q1 < jy; q1++) {
        for (let q2 = 0; q2 < jx; q2++) {
          // Rotated: position (q1, q2) holds tap (ry + sh*(jy-1-q1), rx + sw*(jx-1-q2)).
          const from = ((ry + sh * (jy - 1 - q1)) * kw + (rx + sw * (jx - 1 - q2))) * per;
          const to = (q1 * jx + q2) * per;
          if (kind === 'depthwise') {
            data.set(src.subarray(from, from + per), to);
          } else {
            for (let i = 0; i < ci; i++) for (let o = 0; o < co; o++) data[to + o * ci + i] = src[from + i * co + o];
          }
        }
      }
      out.push(kind === 'depthwise' ? tf.tensor4d(data, [jy, jx, per, 1]) : tf.tensor4d(data, [jy, jx, co, ci]));
    }
  }
  return out;
}

let guidedDepth = 0;

/**
 * Runs `f` (a whole tf.grad call: the backward pass runs inside it) with the guided backpropagation rule of
 * Springenberg et al. 2015 on the ReLU/ReLU6 activations here (fused into convolutions or on their own): they
 * pass a gradient only where both the input is positive and the incoming gradient is, dx = dy * [x > 0] * [dy > 0]
 * (ReLU6: [0 < y < 6]). engine/saliency/guided.ts adds the same rule for tfjs-core's Relu and Relu6 kernels.
 */
export function withGuidedActivations<T>(f: () => T): T {
  guidedDepth++;
  try {
    return f();
  } finally {
    guidedDepth--;
  }
}

/** dy times the derivative of the activation, read off its output y (see the module comment). */
function maskByActivation(dy: tf.Tensor, y: tf.Tensor, activation: FusableActivation | undefined): tf.Tensor {
  if (!activation) return dy;
  // Guided backpropagation: negative incoming gradients stop here too (dy * step(dy) = ReLU(dy)).
  const g = guidedDepth > 0 ? tf.relu(dy) : dy;
  if (activation === 'relu') return tf.mul(g, tf.step(y));
  // y in [0, 6]: y * (6 - y) > 0 exactly where 0 < y < 6 (no underflow to 0: wasm does not flush subnormals).
  return tf.mul(g, tf.step(tf.mul(y, tf.sub(6, y))));
}

/** conv(x) with the run's bias and activation; under a tape, with the input-only gradient above. */
export function conv(x: tf.Tensor4D, c: ConvRun, grads: GradFilters): tf.Tensor4D {
  const activation = c.activation ?? 'linear';
  if (!taping()) {
    return c.kind === 'conv2d'
      ? tf.fused.conv2d({ x, filter: c.filter, strides: c.strides, pad: c.pad, dilations: c.dilations, bias: c.bias, activation })
      : tf.fused.depthwiseConv2d({ x, filter: c.filter, strides: c.strides, pad: c.pad as 'valid' | 'same' | number, dilations: c.dilations, bias: c.bias, activation });
  }
  const xShape = x.shape;
  // The gradient filters are looked up (made, the first time) now, while the forward filter surely exists: a
  // filter made inside the taped function itself is gone by the backward pass.
  const phases = usesPhases(c.kind, c.filter, c.strides, c.dilations) ? grads.phases(c.filter, c.kind, c.strides) : undefined;
  const rotated = phases ? undefined : grads.get(c.filter, c.kind);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xx, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const y = tf.engine().runKernel(c.kind === 'conv2d' ? tf.FusedConv2D : tf.FusedDepthwiseConv2D,
      { x: xx, filter: c.filter, bias: c.bias } as unknown as tf.NamedTensorMap,
      { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: c.dilations, activation } as unknown as tf.NamedAttrMap) as tf.Tensor4D;
    // Saved (a copy-free clone: wasmKernels.ts section 6) because tf.grad disposes the forward pass's intermediates
    // before it runs the backward pass.
    if (c.activation) save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const info = tf.backend_util.computeConv2DInfo(xShape, c.filter.shape, c.strides, c.dilations, c.pad, undefined, c.kind === 'depthwise');
        const masked = maskByActivation(dy, saved[0], c.activation) as tf.Tensor4D;
        if (phases) return phasedInputGradient(masked, (ry, rx) => phases[ry * c.strides[1] + rx], info, c.kind === 'depthwise');
        return convInputGradient(masked, rotated as tf.Tensor4D, info, c.kind === 'depthwise');
      },
    };
  });
  return op(x) as tf.Tensor4D;
}

/**
 * relu / relu6 / swish of x; under a tape, one node whose derivative is read off the output: relu and relu6 as
 * above; swish y = x * sigmoid(x) (Keras' and tfjs-layers' swish, computed as they do: sigmoid, then s * x) has
 * dy/dx = s + x * s * (1 - s) = s * (1 + x - y), four elementwise kernels, where tfjs differentiates its three ops
 * (a product by 1, the sigmoid, the product) with nine and two casts (EfficientNet-B0: 436 Multiply calls in
 * one gradient at its first layer).
 */
export function activation(x: tf.Tensor, kind: TapedActivation): tf.Tensor {
  if (!taping()) return kind === 'relu' ? tf.relu(x) : kind === 'relu6' ? tf.relu6(x) : tf.mul(tf.sigmoid(x), x);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xx, save] = args as [tf.Tensor, tf.GradSaveFunc];
    if (kind === 'swish') {
      const s = tf.engine().runKernel(tf.Sigmoid, { x: xx }) as tf.Tensor;
      const y = tf.engine().runKernel(tf.Multiply, { a: s, b: xx }) as tf.Tensor;
      save([xx, s, y]);
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [x0, s0, y0] = saved;
          return tf.mul(dy, tf.mul(s0, tf.add(tf.sub(x0, y0), 1)));
        },
      };
    }
    const y = tf.engine().runKernel(kind === 'relu' ? tf.Relu : tf.Relu6, { x: xx }) as tf.Tensor;
    save([y]);
    return { value: y, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => maskByActivation(dy, saved[0], kind) };
  });
  return op(x);
}
