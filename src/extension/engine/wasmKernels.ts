/**
 * Gradient kernels that `@tensorflow/tfjs-backend-wasm` 4.22 does not ship: `Conv2DBackpropFilter`,
 * `DepthwiseConv2dNativeBackpropInput` and `DepthwiseConv2dNativeBackpropFilter`. Without them `tf.grad`
 * through a (depthwise) convolution fails on wasm with "Kernel ... not registered", which rules out
 * Grad-CAM on MobileNet-style models and training the demo model. Each kernel here is composed from ops
 * the wasm backend does have (pad, slice, reverse, depthwiseConv2d, matMul, mul, sum, transpose), so all the
 * arithmetic still runs in WebAssembly, most of it in XNNPACK. Kernels the backend does ship are replaced:
 * `Conv2DBackpropInput` (section 4: too slow), `MaxPoolGrad` (section 5: wrong where windows tie or have a
 * maximum <= 0; computed in JS), `Identity` and same-dtype `Cast` (section 6: a copy where none is needed) and
 * `AvgPoolGrad` (section 7: too slow).
 *
 * Notation (one spatial axis; the other is identical). Forward convolution, NHWC, with stride s,
 * dilation d, kernel size k, effective kernel size E = (k - 1)d + 1, top/left padding `pad` taken from
 * `computeConv2DInfo` (so 'same', 'valid', a number, explicit paddings and dimRoundingMode all mean
 * exactly what they mean in tfjs-core), and x read as 0 outside [0, H):
 *
 *     y[o] = sum_p  x[o*s - pad + p*d] * f[p]                         o in [0, Ho), p in [0, k)
 *
 * Depthwise convolution does this per input channel c with channel multiplier M: output channel
 * c*M + m uses filter f[:, :, c, m]. An ordinary convolution also sums over input channels.
 *
 * 1. DepthwiseConv2dNativeBackpropInput (dx from dy and f). Differentiating y gives
 *
 *     dx[i] = sum over (o, p) with o*s - pad + p*d = i  of  dy[o] * f[p].
 *
 *    Zero-dilate dy by the stride: u[o*s] = dy[o], u = 0 elsewhere (s - 1 zeros between samples). The
 *    constraint becomes u-index t = i + pad - p*d, so dx[i] = sum_p u[i + pad - p*d] f[p]. Rotating the
 *    filter 180 degrees, r[q] = f[k-1-q], and substituting p = k-1-q:
 *
 *     dx[i] = sum_q u[i + q*d - (E - 1 - pad)] * r[q] = sum_q U[i + q*d] * r[q],
 *     U[t]  = u[t - (E - 1 - pad)].
 *
 *    That is a stride-1, 'valid' convolution with dilation d of U (u shifted right by E-1-pad zeros, and
 *    zero-padded or cropped at the end to length H + E - 1, so that exactly H outputs come out) with the
 *    rotated filter. The shift is negative (a crop) only for paddings larger than E-1, and the crop at the
 *    end drops dy rows that only saw padding (e.g. dimRoundingMode 'ceil'). For M > 1, dx[c] sums the M
 *    output channels c*M..c*M+M-1: run the depthwise convolution with the filter reshaped to
 *    [k, k, C*M, 1] (one 2-D filter per dy channel), then reshape to [..., C, M] and sum over M.
 *
 * 2. The filter gradients need, for every output position o and filter tap p, the input value that tap
 *    read: the im2col matrix cols[o, c, p] = x[o*s - pad + p*d, c]. We pad (or crop) x ourselves to the
 *    (Ho-1)s + E rows the taps reach, and then one 'valid' depthwise convolution with stride s and
 *    dilation d, with a 0/1 "selector" filter of channel multiplier T = kh*kw whose output channel c*T + t
 *    copies tap t = p*kw + q (sel[p, q, c, t] = 1 iff t = p*kw + q), produces cols as [N, C, T], where
 *    n runs over the N = batch*Ho*Wo output positions. It runs in XNNPACK, and multiplying by exact zeros
 *    and ones copies finite values exactly. (Slicing each tap's window out with stridedSlice is just as
 *    exact, but the wasm StridedSlice kernel is a generic per-element loop, several times slower per tap
 *    than this whole convolution. The padding is ours rather than the convolution's because XNNPACK
 *    computes one output row fewer than tfjs allocates under dimRoundingMode 'ceil'.)
 *
 *    DepthwiseConv2dNativeBackpropFilter. Differentiating y by f[p, c, m]:
 *
 *     df[p, c, m] = sum over (batch, o) of  x[o*s - pad + p*d, c] * dy[o, c*M + m]
 *                 = sum_n cols[n, c, p] * dy[n, c, m],
 *
 *    an elementwise product broadcast over p and m, summed over n, giving [C, T, M], which is transposed
 *    to [T, C, M] = [kh, kw, C, M]. (Summing with a matMul by a row of ones instead was slower on wasm:
 *    its BatchMatMul repacks the large right operand on every call.)
 *
 * 3. Conv2DBackpropFilter, the same without the channel pairing:
 *
 *     df[p, ci, co] = sum_n cols[n, ci, p] * dy[n, co],
 *
 *    a single matMul of dy transposed, [Co, N], with cols seen as [N, Ci*T], giving [Co, Ci, T], which is
 *    transposed to [T, Ci, Co] = [kh, kw, Ci, Co]. tfjs-core only takes conv2d gradients with dilation 1,
 *    and this kernel has no dilations attribute.
 *
 *    cols holds N*C*T floats, T times x's size at stride 1, so both filter kernels work through the batch
 *    in chunks of at most COLS_BUDGET floats of cols (and of the depthwise product, N*C*T*M) and add the
 *    partial sums up; a single image is never split.
 *
 * Limits: NHWC only (Conv2DBackpropFilter with dataFormat 'NCHW' throws; the depthwise kernels have no
 * dataFormat), float32. Dilations are supported in both depthwise kernels, with or without stride,
 * although tfjs-core's own depthwise gradient refuses dilations > 1 before reaching them.
 *
 * Plumbing: a kernel receives TensorInfos. `adopt` wraps one in a Tensor sharing its data and takes an
 * extra reference on the backend, so disposing the wrapper at the end of the `tf.tidy` gives that reference
 * back and leaves the caller's tensor alive. The kernel returns the tidy's result Tensor, which the engine
 * accepts as the kernel output. Kernels run with the tape off, so the nested ops are not recorded.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from './errors';

type Shape4 = [number, number, number, number];
type Pad = tf.Conv2DBackpropFilterAttrs['pad'];
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;
type Pair = number | [number, number];

const BACKEND = 'wasm';

/** Wraps a kernel input as a Tensor that shares its data; see "Plumbing" above for the reference count. */
function adopt(info: tf.TensorInfo, backend: tf.KernelBackend): tf.Tensor {
  backend.incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend);
}

function asShape4(shape: readonly number[], what: string, kernel: string): Shape4 {
  if (shape.length !== 4) {
    throw new CamLensError('BAD_ARGUMENT', `${kernel}: ${what} must have rank 4, got shape [${shape.join(', ')}]`);
  }
  return [shape[0], shape[1], shape[2], shape[3]];
}

function input(inputs: tf.NamedTensorInfoMap, name: string, kernel: string): tf.TensorInfo {
  const info = inputs[name];
  if (info == null) throw new CamLensError('BAD_ARGUMENT', `${kernel}: input '${name}' is missing`);
  return info;
}

function expectShape(actual: readonly number[], expected: readonly number[], what: string, kernel: string): void {
  if (actual.length !== expected.length || actual.some((v, i) => v !== expected[i])) {
    throw new CamLensError('BAD_ARGUMENT',
      `${kernel}: ${what} has shape [${actual.join(', ')}], expected [${expected.join(', ')}]`);
  }
}

/**
 * Checks dy against the output geometry the attributes imply. tfjs-core's conv2d gradient does not pass
 * dimRoundingMode on, so after a forward pass with 'ceil' or 'round' dy can have one row or column more
 * than the attributes imply; the cpu kernels then read only the first outHeight x outWidth positions, and
 * `adoptDy` crops to the same, so that the backends agree.
 */
function checkDy(shape: readonly number[], info: tf.backend_util.Conv2DInfo, kernel: string): void {
  const [b, h, w, c] = info.outShape;
  if (shape.length !== 4 || shape[0] !== b || shape[3] !== c || shape[1] < h || shape[2] < w) {
    throw new CamLensError('BAD_ARGUMENT', `${kernel}: dy has shape [${shape.join(', ')}], expected [${info.outShape.join(', ')}]`);
  }
}

function adoptDy(dy: tf.TensorInfo, backend: tf.KernelBackend, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const t = adopt(dy, backend) as tf.Tensor4D;
  const [b, h, w, c] = info.outShape;
  return t.shape[1] === h && t.shape[2] === w ? t : tf.slice(t, 0, [b, h, w, c]);
}

/**
 * Rows [r0, r0 + rows) and columns [c0, c0 + cols) of an NHWC tensor, reading zeros outside it: a
 * negative start pads in front, a start inside crops, and the same at the far end.
 */
function frame(x: tf.Tensor4D, r0: number, rows: number, c0: number, cols: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const rLo = Math.max(r0, 0);
  const rHi = Math.min(r0 + rows, h);
  const cLo = Math.max(c0, 0);
  const cHi = Math.min(c0 + cols, w);
  if (rHi <= rLo || cHi <= cLo) return tf.zeros([b, rows, cols, c]);
  let y = x;
  if (rLo > 0 || cLo > 0 || rHi < h || cHi < w) y = tf.slice(y, [0, rLo, cLo, 0], [b, rHi - rLo, cHi - cLo, c]);
  const before = [rLo - r0, cLo - c0];
  const after = [r0 + rows - rHi, c0 + cols - cHi];
  if (before[0] > 0 || before[1] > 0 || after[0] > 0 || after[1] > 0) {
    y = tf.pad(y, [[0, 0], [before[0], after[0]], [before[1], after[1]], [0, 0]]);
  }
  return y;
}

/** Inserts s - 1 zero rows (columns) after every row (column); the trailing zeros are cropped by `frame`. */
function zeroDilate(x: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return x;
  const [b, h, w, c] = x.shape;
  const spread = tf.pad(tf.reshape(x, [b, h, 1, w, 1, c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
  return tf.reshape(spread, [b, h * sh, w * sw, c]);
}

/** The 0/1 filter [kh, kw, C, T] whose output channel c*T + t copies what filter tap t reads (section 2). */
function selector(kh: number, kw: number, c: number): tf.Tensor4D {
  const taps = kh * kw;
  const values = new Float32Array(taps * c * taps);
  // Filter element [p, q, ch, t] with t = p*kw + q sits at ((t*C + ch)*T + t) in row-major order.
  for (let t = 0; t < taps; t++) {
    for (let ch = 0; ch < c; ch++) values[(t * c + ch) * taps + t] = 1;
  }
  return tf.tensor4d(values, [kh, kw, c, taps]);
}

/**
 * im2col through the forward depthwise kernel: [B, Ho, Wo, C*T], channel c*T + t = tap t of channel c.
 * x is first padded (or cropped) by us to exactly the rows and columns the taps reach, so the convolution
 * is 'valid' and its geometry is computeConv2DInfo's, not XNNPACK's: the two differ for dimRoundingMode
 * 'ceil', where XNNPACK computes one output row or column fewer than tfjs allocates.
 */
function im2col(x: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const rows = (info.outHeight - 1) * info.strideHeight + info.effectiveFilterHeight;
  const cols = (info.outWidth - 1) * info.strideWidth + info.effectiveFilterWidth;
  const xp = frame(x, -info.padInfo.top, rows, -info.padInfo.left, cols);
  const filter = selector(info.filterHeight, info.filterWidth, x.shape[3]);
  // runKernel rather than tf.depthwiseConv2d: the op refuses stride > 1 together with dilation > 1,
  // which the kernel (and XNNPACK) handles.
  const attrs = { strides: [info.strideHeight, info.strideWidth], pad: 'valid', dilations: [info.dilationHeight, info.dilationWidth] };
  return tf.engine().runKernel(tf.DepthwiseConv2dNative, { x: xp, filter }, attrs) as tf.Tensor4D;
}

/** Largest number of floats of im2col (and of products over it) materialised at once: 64 MB. */
const COLS_BUDGET = 1 << 24;

/**
 * Sums filterGrad over chunks of whole images so that no chunk's im2col exceeds COLS_BUDGET floats
 * (perImage floats per image). The filter gradient is a sum over the batch, so the chunks simply add up.
 */
function overBatchChunks(x: tf.Tensor4D, dy: tf.Tensor4D, perImage: number,
  filterGrad: (x: tf.Tensor4D, dy: tf.Tensor4D) => tf.Tensor): tf.Tensor {
  const batch = x.shape[0];
  const chunk = Math.max(1, Math.floor(COLS_BUDGET / Math.max(1, perImage)));
  if (chunk >= batch) return filterGrad(x, dy);
  let total: tf.Tensor | undefined;
  for (let b0 = 0; b0 < batch; b0 += chunk) {
    const n = Math.min(chunk, batch - b0);
    // Slices along the batch axis are contiguous copies. Each chunk's intermediates are freed before the next.
    const part = tf.tidy(() => filterGrad(tf.slice(x, [b0, 0, 0, 0], [n, -1, -1, -1]), tf.slice(dy, [b0, 0, 0, 0], [n, -1, -1, -1])));
    if (total === undefined) {
      total = part;
    } else {
      const sum = tf.add(total, part);
      tf.dispose([total, part]);
      total = sum;
    }
  }
  return total as tf.Tensor;
}

function depthwiseConv2dNativeBackpropInput(args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const kernel = tf.DepthwiseConv2dNativeBackpropInput;
  const dy = input(args.inputs, 'dy', kernel);
  const filter = input(args.inputs, 'filter', kernel);
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  const backend = args.backend as tf.KernelBackend;
  const filterShape = asShape4(filter.shape, 'filter', kernel);
  const inputShape = asShape4(attrs.inputShape, 'inputShape', kernel);
  const info = tf.backend_util.computeConv2DInfo(inputShape, filterShape, attrs.strides as Pair,
    (attrs.dilations ?? 1) as Pair, attrs.pad, attrs.dimRoundingMode as RoundingMode, true);
  expectShape(filterShape.slice(2, 3), [inputShape[3]], 'filter in-channels', kernel);
  checkDy(dy.shape, info, kernel);
  const [kh, kw, c, m] = filterShape;
  return tf.tidy((): tf.Tensor => {
    const f = adopt(filter, backend) as tf.Tensor4D;
    const rotated = tf.reshape(tf.reverse(f, [0, 1]), [kh, kw, c * m, 1]) as tf.Tensor4D;
    return convInputGradient(adoptDy(dy, backend, info), rotated, info, true);
  });
}

function depthwiseConv2dNativeBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const kernel = tf.DepthwiseConv2dNativeBackpropFilter;
  const x = input(args.inputs, 'x', kernel);
  const dy = input(args.inputs, 'dy', kernel);
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  const backend = args.backend as tf.KernelBackend;
  const xShape = asShape4(x.shape, 'x', kernel);
  const filterShape = asShape4(attrs.filterShape, 'filterShape', kernel);
  const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, attrs.strides as Pair,
    (attrs.dilations ?? 1) as Pair, attrs.pad, attrs.dimRoundingMode as RoundingMode, true);
  expectShape(filterShape.slice(2, 3), [xShape[3]], 'filterShape in-channels', kernel);
  checkDy(dy.shape, info, kernel);
  const [kh, kw, c, m] = filterShape;
  const taps = kh * kw;
  return tf.tidy(() => overBatchChunks(adopt(x, backend) as tf.Tensor4D, adoptDy(dy, backend, info),
    info.outHeight * info.outWidth * c * taps * m, (xs, dys) => {
      const n = dys.shape[0] * info.outHeight * info.outWidth;
      const cols = tf.reshape(im2col(xs, info), [n, c, taps, 1]);
      const prod = tf.mul(cols, tf.reshape(dys, [n, c, 1, m]));
      return tf.reshape(tf.transpose(tf.sum(prod, 0), [1, 0, 2]), [kh, kw, c, m]);
    }));
}

/**
 * The geometry of an ordinary convolution for its gradient kernels (dilation 1, which is all tfjs-core takes
 * gradients of), after checking the layout and the shapes: NHWC only, the filter's in-channels, dy.
 */
function convGradInfo(kernel: string, attrs: { dataFormat?: string; strides: unknown; pad: unknown; dimRoundingMode?: unknown },
  xShape: Shape4, filterShape: Shape4, filterWhat: string, dyShape: readonly number[]): tf.backend_util.Conv2DInfo {
  const dataFormat = attrs.dataFormat ?? 'NHWC';
  if (dataFormat !== 'NHWC') {
    throw new CamLensError('UNSUPPORTED_MODEL',
      `${kernel} on the wasm backend supports dataFormat 'NHWC' only, got dataFormat '${dataFormat}'`,
      'use a channels-last model, or the cpu backend');
  }
  const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, attrs.strides as Pair, 1, attrs.pad as Pad,
    attrs.dimRoundingMode as RoundingMode, false, 'channelsLast');
  expectShape(filterShape.slice(2, 3), [xShape[3]], `${filterWhat} in-channels`, kernel);
  checkDy(dyShape, info, kernel);
  return info;
}

function conv2DBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const kernel = tf.Conv2DBackpropFilter;
  const x = input(args.inputs, 'x', kernel);
  const dy = input(args.inputs, 'dy', kernel);
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const backend = args.backend as tf.KernelBackend;
  const xShape = asShape4(x.shape, 'x', kernel);
  const filterShape = asShape4(attrs.filterShape, 'filterShape', kernel);
  const info = convGradInfo(kernel, attrs, xShape, filterShape, 'filterShape', dy.shape);
  const [kh, kw, ci, co] = filterShape;
  const taps = kh * kw;
  return tf.tidy(() => overBatchChunks(adopt(x, backend) as tf.Tensor4D, adoptDy(dy, backend, info),
    info.outHeight * info.outWidth * ci * taps, (xs, dys) => {
      const n = dys.shape[0] * info.outHeight * info.outWidth;
      const cols = tf.reshape(im2col(xs, info), [n, ci * taps]);
      const dyT = tf.transpose(tf.reshape(dys, [n, co]));
      const product = tf.reshape(tf.matMul(dyT, cols), [co, ci, taps]);
      return tf.reshape(tf.transpose(product, [2, 1, 0]), [kh, kw, ci, co]);
    }));
}

/**
 * 4. Conv2DBackpropInput (dx from dy and f). tfjs-backend-wasm has this one, but as a plain C++ loop: for
 *    Grad-CAM at MobileNet's first layer (14 calls: 13 pointwise convolutions and the classifier) it took
 *    37 of the 97 ms of kernel time. Section 1's derivation without the channel pairing gives
 *
 *     dx[i, ci] = sum_q sum_co U[i + q, co] * f[k-1-q, ci, co],
 *
 *    an ordinary stride-1 'valid' convolution of the same U (dy zero-dilated by the stride and framed) with
 *    the filter rotated 180 degrees and its two channel axes swapped, [kh, kw, co, ci]; for a pointwise
 *    convolution that is one XNNPACK matrix product. It replaces the backend's kernel (see
 *    registerWasmGradientKernels), except where dx has fewer than MIN_POSITIONS positions: there the filter's
 *    rotation and XNNPACK's packing of it, made anew on each call, cost more than the backend's loop (MobileNet's
 *    classifier, 1x1 positions and a [1, 1, 256, 1000] filter: 5 ms against 0.1). tfjs-core takes conv2d
 *    gradients with dilation 1 only.
 */
const MIN_POSITIONS = 16;

/** The backend's own kernels that ours replace (see REPLACEMENTS), kept for the cases they still run. */
const backendKernels = new Map<string, tf.KernelFunc>();
/** Their setup functions (they bind the kernels to a wasm module instance), kept on our replacements. */
const backendSetups = new Map<string, tf.KernelSetupFunc>();

function conv2DBackpropInput(args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const kernel = tf.Conv2DBackpropInput;
  const dy = input(args.inputs, 'dy', kernel);
  const filter = input(args.inputs, 'filter', kernel);
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const backend = args.backend as tf.KernelBackend;
  const filterShape = asShape4(filter.shape, 'filter', kernel);
  const inputShape = asShape4(attrs.inputShape, 'inputShape', kernel);
  const info = convGradInfo(kernel, attrs, inputShape, filterShape, 'filter', dy.shape);
  const [b, h, w] = inputShape;
  const own = backendKernels.get(kernel);
  if (b * h * w < MIN_POSITIONS && own) return own(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  return tf.tidy((): tf.Tensor => {
    const f = adopt(filter, backend) as tf.Tensor4D;
    // A 1x1 filter needs no rotation (and the wasm Reverse kernel is a slow generic loop).
    const rotated = tf.transpose(info.filterHeight * info.filterWidth === 1 ? f : tf.reverse(f, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
    return convInputGradient(adoptDy(dy, backend, info), rotated, info, false);
  });
}

/**
 * dx of a convolution (sections 1 and 4) from dy [B, >= Ho, >= Wo, Co] and the filter already rotated 180
 * degrees: for an ordinary convolution with its channel axes swapped, [kh, kw, Co, Ci]; for a depthwise one
 * reshaped to one 2-D filter per output channel, [kh, kw, C*M, 1]. Backend-independent (plain tfjs ops), so
 * the executors' input-only gradients (gradOps.ts) use it on every backend with filters rotated once.
 *
 * U, dy zero-dilated by the stride and framed as section 1 says (rows from padInfo.top - (E - 1), H + E - 1 of
 * them; columns alike), is convolved stride 1, 'valid', with the filter's dilation. Where the frame only adds
 * zeros the convolution pads by itself (no copy of dy; XNNPACK reads a zero row instead). A 1x1 filter with a
 * stride needs no zero-dilated copy of dy in the product: dx is the product at dy's resolution, spread out
 * afterwards (a stride s convolution then does s*s times less work).
 */
export function convInputGradient(dy: tf.Tensor4D, rotated: tf.Tensor4D, info: tf.backend_util.Conv2DInfo, depthwise: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = info.inShape;
    const [ho, wo] = [info.outHeight, info.outWidth];
    const dyT = dy.shape[1] === ho && dy.shape[2] === wo ? dy : tf.slice(dy, 0, [b, ho, wo, dy.shape[3]]);
    const [eh, ew] = [info.effectiveFilterHeight, info.effectiveFilterWidth];
    const dil: [number, number] = [info.dilationHeight, info.dilationWidth];
    const run = (v: tf.Tensor4D, pad: 'valid' | [[number, number], [number, number], [number, number], [number, number]]): tf.Tensor4D =>
      depthwise ? tf.depthwiseConv2d(v, rotated, 1, pad, 'NHWC', dil) : tf.conv2d(v, rotated, 1, pad, 'NHWC', dil);
    let z: tf.Tensor4D;
    if (eh === 1 && ew === 1 && (info.strideHeight > 1 || info.strideWidth > 1)) {
      z = frame(zeroDilate(run(dyT, 'valid'), info.strideHeight, info.strideWidth), info.padInfo.top, h, info.padInfo.left, w);
    } else {
      const u = zeroDilate(dyT, info.strideHeight, info.strideWidth);
      const top = eh - 1 - info.padInfo.top;
      const left = ew - 1 - info.padInfo.left;
      const bottom = h + eh - 1 - top - u.shape[1];
      const right = w + ew - 1 - left - u.shape[2];
      z = top >= 0 && left >= 0 && bottom >= 0 && right >= 0
        ? run(u, [[0, 0], [top, bottom], [left, right], [0, 0]])
        : run(frame(u, -top, h + eh - 1, -left, w + ew - 1), 'valid');
    }
    const m = depthwise ? rotated.shape[2] / c : 1;
    return m > 1 ? tf.sum(tf.reshape(z, [b, h, w, c, m]), 4) as tf.Tensor4D : z;
  });
}

/**
 * The same dx for a strided convolution without the zero-dilated copy of dy: by phases. Along one axis with stride
 * s, write i + pad = s*a + r (0 <= r < s): only the taps p = r + s*j (j = 0 .. J_r - 1, J_r = ceil((k - r) / s))
 * reach input i, from output o = a - j, so
 *
 *     dx[i] = sum_j dy[a - j] * f[r + s*j],
 *
 * a stride-1 'valid' convolution of dy (framed from row a0 - (J_r - 1)) with the phase's taps rotated. The inputs
 * i = t, t + s, t + 2s, ... all have r = (t + pad) mod s and a = floor((t + pad) / s) + m: one small convolution per
 * (row phase, column phase) gives them, and stacking the s*s results interleaves them into dx. Against the
 * zero-dilated form this skips the (s*s - 1) / (s*s) of the products that multiply inserted zeros: for Inception
 * v3's stride-2 3x3 convolutions 0.3 instead of 1.2 GMAC. `phase(ry, rx)` gives the rotated taps of tap phase (ry,
 * rx), [J_ry, J_rx, Co, Ci] (depthwise: [J_ry, J_rx, C*M, 1]), or null where no tap has that phase (then dx is
 * zero there); gradOps.GradFilters keeps them. Dilation 1 only.
 */
export function phasedInputGradient(dy: tf.Tensor4D, phase: (ry: number, rx: number) => tf.Tensor4D | null,
  info: tf.backend_util.Conv2DInfo, depthwise: boolean): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = info.inShape;
    const [ho, wo] = [info.outHeight, info.outWidth];
    const [sh, sw] = [info.strideHeight, info.strideWidth];
    const dyT = dy.shape[1] === ho && dy.shape[2] === wo ? dy : tf.slice(dy, 0, [b, ho, wo, dy.shape[3]]);
    const n = Math.ceil(h / sh);
    const m = Math.ceil(w / sw);
    const rows: tf.Tensor[] = [];
    for (let t = 0; t < sh; t++) {
      const ry = (t + info.padInfo.top) % sh;
      const a0 = Math.floor((t + info.padInfo.top) / sh);
      const cols: tf.Tensor[] = [];
      for (let u = 0; u < sw; u++) {
        const rx = (u + info.padInfo.left) % sw;
        const c0 = Math.floor((u + info.padInfo.left) / sw);
        const g = phase(ry, rx);
        if (!g) {
          cols.push(tf.zeros([b, n, m, c]));
          continue;
        }
        const [jy, jx] = g.shape;
        const r0 = a0 - (jy - 1);
        const q0 = c0 - (jx - 1);
        const pads: [number, number, number, number] = [-r0, r0 + n + jy - 1 - ho, -q0, q0 + m + jx - 1 - wo];
        const run = (v: tf.Tensor4D, pad: 'valid' | [[number, number], [number, number], [number, number], [number, number]]): tf.Tensor4D =>
          depthwise ? tf.depthwiseConv2d(v, g, 1, pad) : tf.conv2d(v, g, 1, pad);
        let z = pads.every((p) => p >= 0)
          ? run(dyT, [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]])
          : run(frame(dyT, r0, n + jy - 1, q0, m + jx - 1), 'valid');
        const mult = depthwise ? g.shape[2] / c : 1;
        if (mult > 1) z = tf.sum(tf.reshape(z, [b, n, m, c, mult]), 4) as tf.Tensor4D;
        cols.push(z);
      }
      rows.push(sw === 1 ? cols[0] : tf.reshape(tf.stack(cols, 3), [b, n, m * sw, c]));
    }
    const all = (sh === 1 ? rows[0] : tf.reshape(tf.stack(rows, 2), [b, n * sh, m * sw, c])) as tf.Tensor4D;
    return all.shape[1] === h && all.shape[2] === w ? all : tf.slice(all, 0, [b, h, w, c]);
  });
}

/**
 * 5. MaxPoolGrad (dx from dy and the pooled input x). The gradient of y[o] = max over window(o) of x goes to
 *    one input: the window's first maximum in row-major order (rows, then columns) of the positions inside the
 *    input, padding excluded, so a window that ties (flat regions, zeros after a ReLU) sends all of dy[o] to its
 *    top-left maximum. tfjs-cpu, TensorFlow and PyTorch do the same; a window with no value above -Infinity
 *    (only NaN and -Infinity) sends nothing, as on cpu. Windows overlap when the stride is smaller than the
 *    window, so
 *
 *     dx[i] = sum over o with argmax(o) = i  of  dy[o].
 *
 *    tfjs-backend-wasm 4.22 has this kernel, but it sends a tied window's gradient to its last maximum, and
 *    the gradient of a window whose maximum is zero or negative nowhere, or to an element that is not the
 *    maximum. Flat regions (backgrounds, padding, zeros after a ReLU) are full of such windows, so Grad-CAM at
 *    the layers before a max-pool depended on the backend. Ours replaces it and computes in JS on the values:
 *    the first maximum is a strict `>` scan, which no combination of the backend's kernels gives cheaply
 *    (comparing x with the upsampled maximum marks every tie), and one pass over x is quick. The scan goes
 *    channel by channel inside each window (the running maximum and its position in locals); the sums are taken
 *    in float64 in increasing o, as cpu takes them, so the two backends agree bit for bit.
 *    On a 112x112x64 input, 3x3 windows with stride 2 'same', it takes 16 ms where the backend's kernel took
 *    44 (2x2 stride 2 'valid': 11 against 27; 3x3 stride 1: 52 against 110).
 *
 *    Geometry is computePool2DInfo's with the attributes given. tfjs-core's maxPool gradient does not pass
 *    dimRoundingMode on, so after a forward pass with 'ceil' dy can have a row or column more than the
 *    attributes imply; as cpu does, only the first outHeight x outWidth positions of dy are read.
 */
function maxPoolGrad(args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const kernel = tf.MaxPoolGrad;
  const dy = input(args.inputs, 'dy', kernel);
  const x = input(args.inputs, 'input', kernel);
  const attrs = args.attrs as unknown as tf.MaxPoolGradAttrs;
  const backend = args.backend as tf.KernelBackend;
  const xShape = asShape4(x.shape, 'input', kernel);
  const info = tf.backend_util.computePool2DInfo(xShape, attrs.filterSize, attrs.strides, 1, attrs.pad,
    attrs.dimRoundingMode as RoundingMode);
  checkDy(dy.shape, info, kernel);
  const dx = maxPoolGradValues(backend.readSync(x.dataId) as tf.TypedArray, backend.readSync(dy.dataId) as tf.TypedArray,
    xShape, dy.shape, info);
  return tf.tensor4d(dx, xShape, 'float32');
}

/** Section 5's sum, on the values: x is [B, H, W, C], dy [B, >= outHeight, >= outWidth, C], both row-major. */
function maxPoolGradValues(x: tf.TypedArray, dy: tf.TypedArray, xShape: Shape4, dyShape: readonly number[],
  info: tf.backend_util.Conv2DInfo): Float32Array {
  const [batch, h, w, c] = xShape;
  const [dyH, dyW] = [dyShape[1], dyShape[2]];
  const { outHeight, outWidth, strideHeight, strideWidth, effectiveFilterHeight: kh, effectiveFilterWidth: kw } = info;
  const sums = new Float64Array(x.length);
  for (let b = 0; b < batch; b++) {
    for (let oy = 0; oy < outHeight; oy++) {
      const top = oy * strideHeight - info.padInfo.top;
      const r0 = Math.max(top, 0);
      const r1 = Math.min(top + kh, h);
      for (let ox = 0; ox < outWidth; ox++) {
        const left = ox * strideWidth - info.padInfo.left;
        const c0 = Math.max(left, 0);
        const c1 = Math.min(left + kw, w);
        const o = ((b * dyH + oy) * dyW + ox) * c;
        // Channel by channel, the window scanned with the running maximum in locals: twice as fast as keeping
        // every channel's maximum in arrays while scanning the window once.
        for (let ch = 0; ch < c; ch++) {
          let best = -Infinity;
          let where = -1;
          for (let r = r0; r < r1; r++) {
            for (let q = c0, at = ((b * h + r) * w + c0) * c + ch; q < c1; q++, at += c) {
              const v = x[at];
              // Strict: a later equal value does not move the maximum (first maximum wins).
              if (v > best) {
                best = v;
                where = at;
              }
            }
          }
          if (where >= 0) sums[where] += dy[o + ch];
        }
      }
    }
  }
  // The typed-array constructor converts natively (Float32Array.from iterates: 20 ms for 1.4 M values).
  return new Float32Array(sums);
}

/**
 * 6. Identity (a clone) and Cast to the same dtype. tfjs-backend-wasm 4.22 copies the values into a new buffer
 *    for both; tensors are immutable (no kernel writes into an input, a Variable's assign swaps its buffer), so
 *    ours share the buffer and count one more reference to it, as the cpu backend and wasm's own Reshape do. Every
 *    op on a gradient tape clones the tensors its gradient needs (tfjs-core's `save`), and a product's gradient
 *    casts the other factor to float32 even when it is one already: a tape over a whole network copied each of
 *    its activations once or more (2.5 ms of a 5.6 ms forward pass for Grad-CAM at MobileNet's first layer;
 *    EfficientNet's swish and squeeze-and-excitation products cast 200 times per gradient).
 */
function shareBuffer(x: tf.TensorInfo, backend: object): tf.TensorInfo {
  (backend as tf.KernelBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function identity(args: { inputs: tf.NamedTensorInfoMap; backend: object }): tf.TensorInfo {
  const x = input(args.inputs, 'x', tf.Identity);
  const own = backendKernels.get(tf.Identity);
  if (x.dtype === 'string' && own) return own(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  return shareBuffer(x, args.backend);
}

function cast(args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const x = input(args.inputs, 'x', tf.Cast);
  const dtype = (args.attrs as unknown as tf.CastAttrs).dtype;
  const own = backendKernels.get(tf.Cast);
  if ((x.dtype !== dtype || dtype === 'string') && own) return own(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  return shareBuffer(x, args.backend);
}

/**
 * 7. AvgPoolGrad. tfjs' gradient of an average pooling spreads dy[o] / (kh * kw) over window(o), the divisor
 *    the whole window's size even where the window hangs over the padding (the forward pass divides by the
 *    values inside; cpu's kernel and wasm's do the same, and so does this one):
 *
 *     dx[i] = sum over o with i in window(o)  of  dy[o] / (kh * kw),
 *
 *    a depthwise convolution's input gradient with a constant filter 1 / (kh * kw) (sections 1 and 4, through
 *    `convInputGradient`: one XNNPACK depthwise convolution at stride 1). tfjs-backend-wasm's kernel is a plain
 *    loop: 21 ms per 3x3 stride-1 pooling of Inception v3's 35x35x288 blocks, nine of them 189 ms of a 2.2 s
 *    gradient. As with MaxPoolGrad, dy rows and columns beyond the attributes' geometry are not read.
 */
function avgPoolGrad(args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const kernel = tf.AvgPoolGrad;
  const dy = input(args.inputs, 'dy', kernel);
  const x = input(args.inputs, 'input', kernel);
  const attrs = args.attrs as unknown as tf.AvgPoolGradAttrs;
  const backend = args.backend as tf.KernelBackend;
  const xShape = asShape4(x.shape, 'input', kernel);
  const info = tf.backend_util.computePool2DInfo(xShape, attrs.filterSize, attrs.strides, 1, attrs.pad);
  checkDy(dy.shape, info, kernel);
  return tf.tidy(() => {
    const average = tf.fill([info.filterHeight, info.filterWidth, xShape[3], 1], 1 / (info.filterHeight * info.filterWidth)) as tf.Tensor4D;
    return convInputGradient(adopt(dy, backend) as tf.Tensor4D, average, info, true);
  });
}

const KERNELS: ReadonlyArray<[string, tf.KernelFunc]> = [
  [tf.Conv2DBackpropFilter, conv2DBackpropFilter as unknown as tf.KernelFunc],
  [tf.DepthwiseConv2dNativeBackpropInput, depthwiseConv2dNativeBackpropInput as unknown as tf.KernelFunc],
  [tf.DepthwiseConv2dNativeBackpropFilter, depthwiseConv2dNativeBackpropFilter as unknown as tf.KernelFunc],
];

/** Kernels the backend has in a slower (Conv2DBackpropInput, Identity, Cast, AvgPoolGrad) or wrong (MaxPoolGrad) form: ours replace them. */
const REPLACEMENTS: ReadonlyArray<[string, tf.KernelFunc]> = [
  [tf.Conv2DBackpropInput, conv2DBackpropInput as unknown as tf.KernelFunc],
  [tf.MaxPoolGrad, maxPoolGrad as unknown as tf.KernelFunc],
  [tf.Identity, identity as unknown as tf.KernelFunc],
  [tf.Cast, cast as unknown as tf.KernelFunc],
  [tf.AvgPoolGrad, avgPoolGrad as unknown as tf.KernelFunc],
];

/**
 * Registers the missing kernels for the 'wasm' backend, and replaces the slow ones. Idempotent: a missing
 * kernel that is registered by now (by an earlier call, or by a future tfjs-backend-wasm that ships its own)
 * is left alone, because tf.registerKernel warns and overwrites on duplicates; a replacement is made once.
 */
export function registerWasmGradientKernels(): void {
  for (const [kernelName, kernelFunc] of KERNELS) {
    if (tf.getKernel(kernelName, BACKEND) == null) tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc });
  }
  for (const [kernelName, kernelFunc] of REPLACEMENTS) {
    const current = tf.getKernel(kernelName, BACKEND);
    if (current?.kernelFunc === kernelFunc) continue;
    if (current) {
      // The first kernel found is the backend's (or a wrapper that falls back to it). A later one may wrap ours:
      // keeping that would make ours call itself.
      if (!backendKernels.has(kernelName)) backendKernels.set(kernelName, current.kernelFunc);
      if (current.setupFunc && !backendSetups.has(kernelName)) backendSetups.set(kernelName, current.setupFunc);
      tf.unregisterKernel(kernelName, BACKEND);
    }
    // The backend's kernel binds its wasm function in its setupFunc, which tfjs calls for every registered kernel
    // each time a wasm backend instance starts (a new thread count starts a new one). Ours keeps that setupFunc,
    // so the backend's kernel, which ours still calls for small cases, is bound to the running instance and not
    // to a disposed one (there it aborted the wasm module).
    tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc, setupFunc: backendSetups.get(kernelName) });
  }
}
