/**
 * The wasm gradient kernels of src/extension/engine/wasmKernels.ts against the cpu backend's own kernels.
 * Every comparison builds fresh tensors on each backend from the same Float32Array data, takes the gradient
 * there, and compares the numbers. Dilated depthwise gradients are not reachable through tf.grad (tfjs-core
 * refuses them) and the cpu kernels ignore dilations, so those are checked by running the kernels directly
 * against the gradient of the equivalent undilated convolution whose filter has zeros between the taps.
 *
 * Pooling: our MaxPoolGrad replaces the backend's, which routed the gradient of windows with ties or a
 * maximum <= 0 wrongly; it is checked against cpu (exactly) on inputs built to have many such windows, and the
 * backend's AvgPoolGrad, which we keep, is checked against cpu the same way.
 */
import * as assert from 'assert';
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core alone registers no gradients; the engine gets them through tfjs-layers.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { initBackend } from '../../src/extension/engine/backend';
import { registerWasmGradientKernels } from '../../src/extension/engine/wasmKernels';

type Shape4 = [number, number, number, number];
type Pair = number | [number, number];
type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;
type Backend = 'wasm' | 'cpu';

/** Deterministic data in [-1, 1): mulberry32. */
function random(size: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Elementwise |a - b| <= 1e-4 * (|b| + max|b|): relative, with a floor for values near zero. */
function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.strictEqual(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < expected.length; i++) {
    const tol = 1e-4 * (Math.abs(expected[i]) + scale);
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]} (tolerance ${tol})`);
    }
  }
}

/** Runs fn on a backend inside a tidy and returns the values of the tensors it returns. */
async function on(backend: Backend, fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  assert.ok(await tf.setBackend(backend), `could not switch to ${backend}`);
  return tf.tidy(fn).map((t) => {
    const values = t.dataSync() as Float32Array;
    t.dispose();
    return values;
  });
}

interface ConvCase {
  depthwise: boolean;
  xShape: Shape4;
  filterShape: Shape4;
  strides: Pair;
  pad: Pad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function describeCase(c: ConvCase): string {
  const [b, h, w, ch] = c.xShape;
  const [kh, kw, , last] = c.filterShape;
  return `${c.depthwise ? 'depthwise' : 'conv2d'} x ${b}x${h}x${w}x${ch} k ${kh}x${kw} ` +
    `${c.depthwise ? `multiplier ${last}` : `out ${last}`} strides ${JSON.stringify(c.strides)} ` +
    `pad ${JSON.stringify(c.pad)}${c.dimRoundingMode ? ` ${c.dimRoundingMode}` : ''}`;
}

/** tf.grads of the convolution w.r.t. input and filter, for a random upstream gradient dy. */
function convGrads(c: ConvCase, seed: number): () => tf.Tensor[] {
  const info = tf.backend_util.computeConv2DInfo(c.xShape, c.filterShape, c.strides, 1, c.pad, c.dimRoundingMode,
    c.depthwise);
  const xData = random(size(c.xShape), seed);
  const fData = random(size(c.filterShape), seed + 1);
  const dyData = random(size(info.outShape), seed + 2);
  return () => {
    const x = tf.tensor4d(xData, c.xShape);
    const f = tf.tensor4d(fData, c.filterShape);
    const dy = tf.tensor4d(dyData, info.outShape);
    const forward = (xx: tf.Tensor, ff: tf.Tensor): tf.Tensor => c.depthwise
      ? tf.depthwiseConv2d(xx as tf.Tensor4D, ff as tf.Tensor4D, c.strides, c.pad, 'NHWC', 1, c.dimRoundingMode)
      : tf.conv2d(xx as tf.Tensor4D, ff as tf.Tensor4D, c.strides, c.pad, 'NHWC', 1, c.dimRoundingMode);
    return tf.grads(forward)([x, f], dy);
  };
}

async function assertMatchesCpu(c: ConvCase, seed: number): Promise<void> {
  const grads = convGrads(c, seed);
  const [dxCpu, dfCpu] = await on('cpu', grads);
  const [dxWasm, dfWasm] = await on('wasm', grads);
  assertClose(dxWasm, dxCpu, `${describeCase(c)}: d/dx`);
  assertClose(dfWasm, dfCpu, `${describeCase(c)}: d/dfilter`);
}

const INPUTS: Array<[number, number]> = [[8, 8], [7, 7], [9, 6]];
const KERNEL_SIZES = [1, 3, 5];
const STRIDES: Pair[] = [1, 2, [1, 2]];
const PADS: Array<'same' | 'valid'> = ['same', 'valid'];

describe('wasm gradient kernels', function () {
  before(async function () {
    await initBackend('wasm');
  });

  after(async function () {
    await tf.setBackend('wasm');
  });

  it('registers the three missing kernels, the faster Conv2DBackpropInput and the first-maximum MaxPoolGrad for wasm once, however often it is called', function () {
    const names = [tf.Conv2DBackpropFilter, tf.DepthwiseConv2dNativeBackpropInput, tf.DepthwiseConv2dNativeBackpropFilter, tf.Conv2DBackpropInput,
      tf.MaxPoolGrad];
    const first = names.map((n) => tf.getKernel(n, 'wasm'));
    first.forEach((k, i) => assert.ok(k, `${names[i]} is not registered for wasm`));
    registerWasmGradientKernels();
    registerWasmGradientKernels();
    names.forEach((n, i) => assert.strictEqual(tf.getKernel(n, 'wasm'), first[i], `${n} was re-registered`));
  });

  for (const depthwise of [true, false]) {
    for (const pad of PADS) {
      for (const strides of STRIDES) {
        const label = depthwise ? 'depthwise convolution' : 'convolution';
        it(`matches cpu for ${label} gradients w.r.t. input and filter, strides ${JSON.stringify(strides)}, ` +
          `pad '${pad}' (kernel 1/3/5, even and odd inputs, batch 2, ${depthwise ? 'multiplier 1 and 2' : '1 and 4 out channels'})`,
        async function () {
          let seed = 1;
          for (const [h, w] of INPUTS) {
            for (const k of KERNEL_SIZES) {
              if (pad === 'valid' && (k > h || k > w)) continue;
              for (const last of depthwise ? [1, 2] : [1, 4]) {
                await assertMatchesCpu({ depthwise, xShape: [2, h, w, 3], filterShape: [k, k, 3, last], strides, pad }, seed);
                seed += 10;
              }
            }
          }
        });
      }
    }
  }

  it('matches cpu for convolution input gradients of fewer than 16 positions (the backend kernel runs those)', async function () {
    let seed = 500;
    for (const c of [
      { depthwise: false, xShape: [1, 1, 1, 6], filterShape: [1, 1, 6, 9], strides: 1, pad: 'valid' },
      { depthwise: false, xShape: [1, 3, 3, 4], filterShape: [3, 3, 4, 5], strides: 1, pad: 'same' },
      { depthwise: false, xShape: [1, 3, 5, 2], filterShape: [2, 2, 2, 3], strides: 2, pad: 'valid' },
    ] as ConvCase[]) {
      await assertMatchesCpu(c, seed);
      seed += 10;
    }
  });

  it('still runs the backend kernel it falls back to after the wasm backend restarts (a new thread count)', async function () {
    // Ours replaces Conv2DBackpropInput but calls the backend's for small cases; the backend's kernel is bound to a
    // wasm instance by its setupFunc, which tfjs re-runs for the registered kernels when an instance starts.
    try {
      await initBackend('wasm', { threads: 2 });
      await initBackend('wasm', { threads: 1 });
      await assertMatchesCpu({ depthwise: false, xShape: [1, 3, 3, 4], filterShape: [3, 3, 4, 5], strides: 1, pad: 'same' }, 900);
    } finally {
      await initBackend('wasm', { threads: 1 });
    }
  });

  it('matches cpu for non-square kernels, numeric padding with dimRoundingMode and explicit padding', async function () {
    const cases: ConvCase[] = [];
    for (const depthwise of [true, false]) {
      const last = depthwise ? 2 : 5;
      cases.push(
        { depthwise, xShape: [2, 9, 8, 4], filterShape: [3, 2, 4, last], strides: 2, pad: 'same' },
        { depthwise, xShape: [2, 9, 8, 4], filterShape: [2, 5, 4, last], strides: [2, 1], pad: 'valid' },
        { depthwise, xShape: [2, 8, 7, 4], filterShape: [3, 3, 4, last], strides: 2, pad: 1, dimRoundingMode: 'ceil' },
        { depthwise, xShape: [2, 8, 7, 4], filterShape: [3, 3, 4, last], strides: 2, pad: 1, dimRoundingMode: 'floor' },
        { depthwise, xShape: [2, 6, 6, 4], filterShape: [3, 3, 4, last], strides: 1, pad: 4 },
      );
    }
    // tfjs-core accepts explicit padding for conv2d only.
    cases.push({ depthwise: false, xShape: [2, 7, 8, 3], filterShape: [3, 3, 3, 4], strides: 2,
      pad: [[0, 0], [0, 2], [1, 0], [0, 0]] });
    let seed = 5000;
    for (const c of cases) await assertMatchesCpu(c, (seed += 10));
  });

  for (const [strides, dilations, pad] of [[1, 2, 'same'], [1, [2, 3], 'valid'], [2, 2, 'same'], [[2, 1], [1, 2], 'valid']] as Array<[Pair, Pair, 'same' | 'valid']>) {
    it(`computes dilated depthwise gradients (dilations ${JSON.stringify(dilations)}, strides ${JSON.stringify(strides)}, ` +
      `pad '${pad}') like an undilated convolution with zeros between the filter taps`, async function () {
      const [dh, dw] = typeof dilations === 'number' ? [dilations, dilations] : dilations;
      const xShape: Shape4 = [2, 11, 10, 3];
      for (const multiplier of [1, 2]) {
        const filterShape: Shape4 = [3, 3, 3, multiplier];
        const expanded: Shape4 = [2 * dh + 1, 2 * dw + 1, 3, multiplier];
        const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, strides, dilations, pad, undefined, true);
        const xData = random(size(xShape), 77 + multiplier);
        const fData = random(size(filterShape), 78 + multiplier);
        const dyData = random(size(info.outShape), 79 + multiplier);

        // Reference on cpu: the filter with dh - 1 (dw - 1) zero rows (columns) between taps, no dilation.
        const [dxRef, dfRef] = await on('cpu', () => {
          const f = tf.tensor4d(fData, filterShape);
          const spread = tf.pad(tf.reshape(f, [3, 1, 3, 1, 3, multiplier]), [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]]);
          const fExp = tf.slice(tf.reshape(spread, [3 * dh, 3 * dw, 3, multiplier]), 0, expanded) as tf.Tensor4D;
          const [dx, dfExp] = tf.grads((x: tf.Tensor, ff: tf.Tensor) =>
            tf.depthwiseConv2d(x as tf.Tensor4D, ff as tf.Tensor4D, strides, pad))([tf.tensor4d(xData, xShape), fExp],
            tf.tensor4d(dyData, info.outShape));
          return [dx, tf.stridedSlice(dfExp, [0, 0, 0, 0], expanded, [dh, dw, 1, 1])];
        });
        const [dx, df] = await on('wasm', () => {
          const dy = tf.tensor4d(dyData, info.outShape);
          const common = { strides, pad, dilations };
          return [
            tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy, filter: tf.tensor4d(fData, filterShape) },
              { ...common, inputShape: xShape }) as tf.Tensor,
            tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x: tf.tensor4d(xData, xShape), dy },
              { ...common, filterShape }) as tf.Tensor,
          ];
        });
        assertClose(dx, dxRef, `multiplier ${multiplier}: d/dx`);
        assertClose(df, dfRef, `multiplier ${multiplier}: d/dfilter`);
      }
    });
  }

  it('works through a batch whose im2col exceeds 64 MB in two chunks and still matches a direct summation', async function () {
    // 7 images of 48x48x128 with 3x3 taps: 7 * 2.65M floats of im2col > 2^24, so chunks of 6 and 1. The cpu
    // kernels take seconds at this size, so the reference is the defining sum written out in plain loops.
    const xShape: Shape4 = [7, 48, 48, 128];
    const [batch, h, w, c] = xShape;
    const xData = random(size(xShape), 4242);
    const dyData = random(batch * h * w * c, 4343);
    // Stride 1, 'same', 3x3, one output channel (conv2d) or multiplier 1 (depthwise): pad 1 on every side.
    const expected = { conv: new Float32Array(9 * c), depthwise: new Float32Array(9 * c) };
    const conv = new Float64Array(9 * c);
    const depthwise = new Float64Array(9 * c);
    for (let b = 0; b < batch; b++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const o = ((b * h + y) * w + x) * c;
          const dyConv = dyData[o]; // conv2d has one output channel: reuse the first dy value of the position
          for (let p = 0; p < 3; p++) {
            const yy = y + p - 1;
            if (yy < 0 || yy >= h) continue;
            for (let q = 0; q < 3; q++) {
              const xx = x + q - 1;
              if (xx < 0 || xx >= w) continue;
              const i = ((b * h + yy) * w + xx) * c;
              const t = (p * 3 + q) * c;
              for (let ch = 0; ch < c; ch++) {
                conv[t + ch] += xData[i + ch] * dyConv;
                depthwise[t + ch] += xData[i + ch] * dyData[o + ch];
              }
            }
          }
        }
      }
    }
    expected.conv.set(conv);
    expected.depthwise.set(depthwise);

    await tf.setBackend('wasm');
    for (const [kernel, filterShape, dyShape, want] of [
      [tf.Conv2DBackpropFilter, [3, 3, c, 1], [batch, h, w, 1], expected.conv],
      [tf.DepthwiseConv2dNativeBackpropFilter, [3, 3, c, 1], [batch, h, w, c], expected.depthwise],
    ] as Array<[string, Shape4, Shape4, Float32Array]>) {
      // conv2d's dy has one channel: the first value of each dyData position, as in the sums above.
      const dyValues = dyShape[3] === 1 ? dyData.filter((_, i) => i % c === 0) : dyData;
      let actual: Float32Array = new Float32Array(0);
      const profile = await tf.profile(() => {
        const t = tf.engine().runKernel(kernel, { x: tf.tensor4d(xData, xShape), dy: tf.tensor4d(dyValues, dyShape) },
          { strides: 1, pad: 'same', dilations: 1, dataFormat: 'NHWC', filterShape }) as tf.Tensor;
        actual = t.dataSync() as Float32Array;
        return t;
      });
      const im2colRuns = profile.kernels.filter((k) => k.name === tf.DepthwiseConv2dNative).length;
      assert.strictEqual(im2colRuns, 2, `${kernel}: im2col convolutions`);
      assertClose(actual, want, kernel);
    }
  });

  it('refuses Conv2DBackpropFilter with dataFormat NCHW, naming the value', async function () {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    const x = tf.zeros([1, 3, 5, 5]);
    const dy = tf.zeros([1, 2, 5, 5]);
    assert.throws(
      () => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy },
        { strides: 1, pad: 'same', dataFormat: 'NCHW', filterShape: [3, 3, 3, 2] }),
      /dataFormat 'NCHW'/);
    tf.dispose([x, dy]);
    assert.strictEqual(tf.memory().numTensors, before);
  });

  describe('pooling gradients', function () {
    type PoolKind = 'max' | 'avg';

    interface PoolCase {
      xShape: Shape4;
      filterSize: Pair;
      strides: Pair;
      pad: 'same' | 'valid' | number;
      dimRoundingMode?: 'floor' | 'round' | 'ceil';
    }

    const describePool = (c: PoolCase): string => `x ${c.xShape.join('x')} window ${JSON.stringify(c.filterSize)} ` +
      `strides ${JSON.stringify(c.strides)} pad ${JSON.stringify(c.pad)}${c.dimRoundingMode ? ` ${c.dimRoundingMode}` : ''}`;

    /**
     * Values on a grid of 4 levels in [-1, 0.5], so that most windows tie and many have a maximum <= 0, and in
     * every image a constant negative patch (top left) and a constant zero patch (bottom right): flat regions.
     */
    function flatAndTied(shape: Shape4, seed: number): Float32Array {
      const [b, h, w, c] = shape;
      const out = random(size(shape), seed).map((v) => Math.floor((v + 1) * 2) / 2 - 1);
      for (let n = 0; n < b; n++) {
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            const flat = y < h / 2 && x < w / 2 ? -0.25 : y >= h / 2 && x >= w / 2 ? 0 : undefined;
            if (flat === undefined) continue;
            for (let ch = 0; ch < c; ch++) out[((n * h + y) * w + x) * c + ch] = flat;
          }
        }
      }
      return out;
    }

    /** How many pooling windows tie for their maximum, and how many have a maximum <= 0: the cases that broke. */
    function windowKinds(values: Float32Array, shape: Shape4, info: tf.backend_util.Conv2DInfo): { tied: number; notPositive: number } {
      const [b, h, w, c] = shape;
      let tied = 0;
      let notPositive = 0;
      for (let n = 0; n < b; n++) {
        for (let oy = 0; oy < info.outHeight; oy++) {
          for (let ox = 0; ox < info.outWidth; ox++) {
            for (let ch = 0; ch < c; ch++) {
              const window: number[] = [];
              for (let r = 0; r < info.filterHeight; r++) {
                const y = oy * info.strideHeight - info.padInfo.top + r;
                for (let q = 0; q < info.filterWidth; q++) {
                  const x = ox * info.strideWidth - info.padInfo.left + q;
                  if (y >= 0 && y < h && x >= 0 && x < w) window.push(values[((n * h + y) * w + x) * c + ch]);
                }
              }
              const max = Math.max(...window);
              if (window.filter((v) => v === max).length > 1) tied++;
              if (max <= 0) notPositive++;
            }
          }
        }
      }
      return { tied, notPositive };
    }

    /** tf.grad of the pooling for a random dy, through the ops (so the gradient sees what a model's backward pass sees). */
    function poolGrad(kind: PoolKind, c: PoolCase, xData: Float32Array, seed: number): () => tf.Tensor[] {
      const info = tf.backend_util.computePool2DInfo(c.xShape, c.filterSize, c.strides, 1, c.pad, c.dimRoundingMode);
      const dyData = random(size(info.outShape), seed);
      return () => {
        const pool = (x: tf.Tensor): tf.Tensor => kind === 'max'
          ? tf.maxPool(x as tf.Tensor4D, c.filterSize, c.strides, c.pad, c.dimRoundingMode)
          : tf.avgPool(x as tf.Tensor4D, c.filterSize, c.strides, c.pad, c.dimRoundingMode);
        return [tf.grad(pool)(tf.tensor4d(xData, c.xShape), tf.tensor4d(dyData, info.outShape))];
      };
    }

    const CASES: PoolCase[] = [];
    for (const [h, w] of [[8, 8], [7, 9]]) {
      for (const filterSize of [2, 3, [3, 2]] as Pair[]) {
        for (const strides of [1, 2, [1, 2], [2, 1]] as Pair[]) {
          for (const pad of ['same', 'valid'] as const) CASES.push({ xShape: [2, h, w, 3], filterSize, strides, pad });
        }
      }
    }

    it('routes each max-pool window\'s gradient to its first maximum, exactly as cpu, on windows that tie or have a maximum <= 0 ' +
      '(windows 2x2, 3x3, 3x2; strides 1, 2, [1, 2], [2, 1]; \'same\' and \'valid\'; even and odd inputs, batch 2)', async function () {
      let seed = 7000;
      let tied = 0;
      let notPositive = 0;
      for (const c of CASES) {
        const xData = flatAndTied(c.xShape, (seed += 10));
        const kinds = windowKinds(xData, c.xShape, tf.backend_util.computePool2DInfo(c.xShape, c.filterSize, c.strides, 1, c.pad));
        tied += kinds.tied;
        notPositive += kinds.notPositive;
        const [expected] = await on('cpu', poolGrad('max', c, xData, seed + 1));
        const [actual] = await on('wasm', poolGrad('max', c, xData, seed + 1));
        assert.deepStrictEqual(Array.from(actual), Array.from(expected), describePool(c));
      }
      // The inputs really are the hard cases (otherwise the backend's own kernel would pass too).
      assert.ok(tied > 1000 && notPositive > 1000, `${tied} tied windows, ${notPositive} windows with a maximum <= 0`);
    });

    it('matches cpu for max-pool gradients with numeric padding and dimRoundingMode, through tf.grad and with the kernel called directly', async function () {
      const cases: PoolCase[] = [
        { xShape: [2, 8, 7, 3], filterSize: 3, strides: 2, pad: 1, dimRoundingMode: 'ceil' },
        { xShape: [2, 8, 7, 3], filterSize: 3, strides: 2, pad: 1, dimRoundingMode: 'floor' },
        { xShape: [1, 9, 9, 2], filterSize: 2, strides: 2, pad: 0, dimRoundingMode: 'ceil' },
        { xShape: [1, 6, 6, 2], filterSize: 3, strides: 1, pad: 2 },
      ];
      let seed = 8000;
      for (const c of cases) {
        const xData = flatAndTied(c.xShape, (seed += 10));
        // Through tf.grad, which does not pass dimRoundingMode on: dy may be a row and column larger (see section 5).
        const [expected] = await on('cpu', poolGrad('max', c, xData, seed + 1));
        const [actual] = await on('wasm', poolGrad('max', c, xData, seed + 1));
        assert.deepStrictEqual(Array.from(actual), Array.from(expected), `${describePool(c)}, tf.grad`);
        // Directly, with dimRoundingMode given: every window of the rounded geometry, the last row and column too.
        const info = tf.backend_util.computePool2DInfo(c.xShape, c.filterSize, c.strides, 1, c.pad, c.dimRoundingMode);
        const dyData = random(size(info.outShape), seed + 2);
        const direct = (): tf.Tensor[] => {
          const x = tf.tensor4d(xData, c.xShape);
          const dy = tf.tensor4d(dyData, info.outShape);
          // `output` (the forward result) is read by neither kernel; dy has its shape.
          return [tf.engine().runKernel(tf.MaxPoolGrad, { dy, input: x, output: dy },
            { filterSize: c.filterSize, strides: c.strides, pad: c.pad, ...(c.dimRoundingMode ? { dimRoundingMode: c.dimRoundingMode } : {}) }) as tf.Tensor];
        };
        const [cpuDirect] = await on('cpu', direct);
        const [wasmDirect] = await on('wasm', direct);
        assert.deepStrictEqual(Array.from(wasmDirect), Array.from(cpuDirect), `${describePool(c)}, kernel`);
      }
    });

    it('sends nothing from a max-pool window of only NaN and -Infinity, like cpu, and the rest of the image as usual', async function () {
      const xShape: Shape4 = [1, 4, 4, 2];
      const xData = random(size(xShape), 9100);
      // The top-left 2x2 window of both channels: NaN and -Infinity only.
      for (const i of [0, 1, 4, 5]) {
        xData[2 * i] = Number.NaN;
        xData[2 * i + 1] = i % 2 ? -Infinity : Number.NaN;
      }
      const c: PoolCase = { xShape, filterSize: 2, strides: 2, pad: 'valid' };
      const [expected] = await on('cpu', poolGrad('max', c, xData, 9101));
      const [actual] = await on('wasm', poolGrad('max', c, xData, 9101));
      assert.deepStrictEqual(Array.from(actual), Array.from(expected));
      assert.deepStrictEqual([0, 1, 4, 5].flatMap((i) => [actual[2 * i], actual[2 * i + 1]]), new Array(8).fill(0));
    });

    it('computes a 112x112x64 max-pool gradient (3x3, stride 2, \'same\') as cpu does, with 64 channels in a row', async function () {
      const c: PoolCase = { xShape: [1, 112, 112, 64], filterSize: 3, strides: 2, pad: 'same' };
      const xData = flatAndTied(c.xShape, 9200);
      const [expected] = await on('cpu', poolGrad('max', c, xData, 9201));
      const [actual] = await on('wasm', poolGrad('max', c, xData, 9201));
      let differing = 0;
      for (let i = 0; i < expected.length; i++) if (actual[i] !== expected[i]) differing++;
      assert.strictEqual(differing, 0, `${differing} of ${expected.length} elements differ`);
    });

    it('keeps the backend\'s AvgPoolGrad, which matches cpu on the same windows, strides and paddings', async function () {
      let seed = 9300;
      for (const c of CASES) {
        const xData = flatAndTied(c.xShape, (seed += 10));
        const [expected] = await on('cpu', poolGrad('avg', c, xData, seed + 1));
        const [actual] = await on('wasm', poolGrad('avg', c, xData, seed + 1));
        assertClose(actual, expected, `avgPool ${describePool(c)}`);
      }
    });

    it('leaves tensor count and wasm data ids unchanged over 20 max-pool gradient runs', async function () {
      await tf.setBackend('wasm');
      const x = tf.tensor4d(flatAndTied([2, 9, 8, 4], 9400), [2, 9, 8, 4]);
      const grad = tf.grad((a: tf.Tensor) => tf.sum(tf.maxPool(a as tf.Tensor4D, 3, 2, 'same')));
      tf.dispose(grad(x));
      const backend = tf.backend();
      const before = { ...tf.memory(), dataIds: backend.numDataIds() };
      for (let i = 0; i < 20; i++) tf.dispose(grad(x));
      const after = { ...tf.memory(), dataIds: backend.numDataIds() };
      assert.strictEqual(after.numTensors, before.numTensors, 'numTensors');
      assert.strictEqual(after.numBytes, before.numBytes, 'numBytes');
      assert.strictEqual(after.dataIds, before.dataIds, 'wasm backend data ids');
      x.dispose();
    });
  });

  describe('the other gradient kernels tfjs-backend-wasm ships, as Keras layers reach them', function () {
    it('EluGrad (ELU) and LRNGrad (LocalResponseNormalization) match cpu', async function () {
      const xShape: Shape4 = [1, 7, 6, 5];
      const xData = random(size(xShape), 9500).map((v) => 3 * v);
      const dyData = random(size(xShape), 9501);
      const grads = (): tf.Tensor[] => {
        const x = tf.tensor4d(xData, xShape);
        const dy = tf.tensor4d(dyData, xShape);
        return [
          tf.grad((a: tf.Tensor) => tf.elu(a))(x, dy),
          tf.grad((a: tf.Tensor) => tf.localResponseNormalization(a as tf.Tensor4D, 2, 1, 1, 0.5))(x, dy),
        ];
      };
      const [eluCpu, lrnCpu] = await on('cpu', grads);
      const [eluWasm, lrnWasm] = await on('wasm', grads);
      assertClose(eluWasm, eluCpu, 'ELU');
      assertClose(lrnWasm, lrnCpu, 'LRN');
    });

    it('ResizeNearestNeighborGrad and ResizeBilinearGrad (UpSampling2D: integer factors, no half-pixel centres) equal the transposed resize', async function () {
      // The resize is linear, y = R x, so its gradient is R^T dy; R's columns come from resizing one-hot images.
      // (The reference is R^T rather than cpu: cpu's ResizeBilinearGrad fails on non-square images in tfjs 4.22.)
      await tf.setBackend('wasm');
      for (const [kind, xShape, outSize] of [
        ['nearest', [1, 5, 4, 2], [10, 8]], ['nearest', [1, 3, 5, 3], [9, 10]],
        ['bilinear', [1, 5, 4, 2], [10, 8]], ['bilinear', [1, 3, 5, 3], [9, 10]],
      ] as Array<['nearest' | 'bilinear', Shape4, [number, number]]>) {
        const resize = (x: tf.Tensor): tf.Tensor => kind === 'nearest'
          ? tf.image.resizeNearestNeighbor(x as tf.Tensor4D, outSize) : tf.image.resizeBilinear(x as tf.Tensor4D, outSize);
        const n = size(xShape);
        const dyData = random(xShape[0] * outSize[0] * outSize[1] * xShape[3], 9600);
        const expected = new Float32Array(n);
        for (let i = 0; i < n; i++) {
          const unit = new Float32Array(n);
          unit[i] = 1;
          const column = tf.tidy(() => resize(tf.tensor4d(unit, xShape)).dataSync());
          let sum = 0;
          for (let o = 0; o < column.length; o++) sum += column[o] * dyData[o];
          expected[i] = sum;
        }
        const [actual] = await on('wasm', () => [tf.grad(resize)(tf.tensor4d(random(n, 9601), xShape),
          tf.tensor4d(dyData, [xShape[0], outSize[0], outSize[1], xShape[3]]))]);
        assertClose(actual, expected, `${kind} ${xShape.join('x')} -> ${outSize.join('x')}`);
      }
    });
  });

  describe('a MobileNet-like chain conv -> depthwise -> conv -> relu -> mean', function () {
    const xShape: Shape4 = [2, 17, 16, 3];
    const shapes: Record<string, Shape4> = {
      conv1: [3, 3, 3, 8], dw1: [3, 3, 8, 1], pw1: [1, 1, 8, 12], dw2: [3, 3, 12, 1], pw2: [1, 1, 12, 16],
    };
    const data = Object.fromEntries(Object.entries(shapes).map(([k, s], i) => [k, random(size(s), 900 + i)]));
    const xData = random(size(xShape), 999);

    /** Builds the weights on the current backend; returns a function of (x, ...weights) and the tensors. */
    function chain(): { f: (...t: tf.Tensor[]) => tf.Tensor; x: tf.Tensor4D; weights: tf.Tensor4D[] } {
      const weights = Object.keys(shapes).map((k) => tf.tensor4d(data[k], shapes[k]));
      const f = (x: tf.Tensor, conv1: tf.Tensor, dw1: tf.Tensor, pw1: tf.Tensor, dw2: tf.Tensor, pw2: tf.Tensor): tf.Tensor => {
        let h = tf.relu6(tf.conv2d(x as tf.Tensor4D, conv1 as tf.Tensor4D, 2, 'same'));
        h = tf.relu6(tf.depthwiseConv2d(h, dw1 as tf.Tensor4D, 1, 'same'));
        h = tf.relu6(tf.conv2d(h, pw1 as tf.Tensor4D, 1, 'same'));
        h = tf.relu6(tf.depthwiseConv2d(h, dw2 as tf.Tensor4D, 2, 'valid'));
        h = tf.relu(tf.conv2d(h, pw2 as tf.Tensor4D, 1, 'same'));
        return tf.mean(h);
      };
      return { f: f as (...t: tf.Tensor[]) => tf.Tensor, x: tf.tensor4d(xData, xShape), weights };
    }

    it('gives the same tf.grad w.r.t. the input and every weight on wasm as on cpu', async function () {
      const run = (): tf.Tensor[] => {
        const { f, x, weights } = chain();
        return tf.grads(f)([x, ...weights]);
      };
      const cpu = await on('cpu', run);
      const wasm = await on('wasm', run);
      const names = ['input', ...Object.keys(shapes)];
      cpu.forEach((expected, i) => assertClose(wasm[i], expected, `d/d${names[i]}`));
    });

    it('leaves tensor count, bytes and wasm data ids unchanged over 20 gradient runs, inputs still readable', async function () {
      await tf.setBackend('wasm');
      const { f, x, weights } = chain();
      const gradOfInput = tf.grad((xx: tf.Tensor) => f(xx, ...weights));
      const gradOfAll = tf.grads(f);
      tf.dispose([gradOfInput(x), gradOfAll([x, ...weights])]); // warm-up: kernel setup allocations
      const backend = tf.backend();
      const before = { ...tf.memory(), dataIds: backend.numDataIds() };
      const refCounts = [x, ...weights].map((t) => backend.refCount(t.dataId));
      for (let i = 0; i < 20; i++) {
        tf.dispose(gradOfInput(x));
        tf.dispose(gradOfAll([x, ...weights]));
      }
      const after = { ...tf.memory(), dataIds: backend.numDataIds() };
      assert.strictEqual(after.numTensors, before.numTensors, 'numTensors');
      assert.strictEqual(after.numBytes, before.numBytes, 'numBytes');
      assert.strictEqual(after.numDataBuffers, before.numDataBuffers, 'numDataBuffers');
      assert.strictEqual(after.dataIds, before.dataIds, 'wasm backend data ids');
      assert.deepStrictEqual([x, ...weights].map((t) => backend.refCount(t.dataId)), refCounts, 'input ref counts');
      assertClose(x.dataSync() as Float32Array, xData, 'input after the runs');
      tf.dispose([x, ...weights]);
    });
  });
});
