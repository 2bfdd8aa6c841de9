/**
 * Models and inputs for the backend-parity test (test/engine/backendParity.test.ts): the architectures the
 * other tests build in code, again here because those tests keep theirs private, plus the pattern that exposed
 * tfjs-backend-wasm's MaxPoolGrad (issue #11), and inputs with flat regions. Weights are set from a seeded
 * generator, so a failure reproduces.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { bnModel } from './models';

type Sym = tfl.SymbolicTensor;

/** Deterministic values in [-1, 1): mulberry32. */
export function seeded(size: number, seed: number): Float32Array {
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

/**
 * Replaces every weight of the model with seeded values of a sensible scale: kernels uniform with variance
 * 1/fan-in (so activations neither vanish nor explode through a few layers), biases and BN shifts small, BN
 * scales and variances around 1 (variances positive).
 */
export function setSeededWeights(model: tfl.LayersModel, seed: number): void {
  let s = seed;
  for (const layer of model.layers) {
    const specs = layer.weights;
    if (specs.length === 0) continue;
    if (layer instanceof tfl.LayersModel) {
      setSeededWeights(layer, (s += 1000));
      continue;
    }
    const values = specs.map((w) => {
      const shape = w.shape.map((d) => d ?? 1);
      const u = seeded(shape.reduce((a, b) => a * b, 1), (s += 1));
      const name = w.name.split('/').pop() ?? w.name;
      let v: Float32Array;
      if (/kernel/.test(name)) {
        const fanIn = shape.slice(0, -1).reduce((a, b) => a * b, 1) / (/depthwise/.test(name) ? shape[2] : 1);
        const scale = Math.sqrt(3 / Math.max(1, fanIn));
        v = u.map((x) => x * scale);
      } else if (/gamma|moving_variance/.test(name)) {
        v = u.map((x) => 1 + 0.4 * x);
      } else {
        v = u.map((x) => 0.2 * x);
      }
      return tf.tensor(v, shape);
    });
    layer.setWeights(values);
    tf.dispose(values);
  }
}

export interface ParityModel {
  name: string;
  /** Builds the model with seeded weights (on the current backend). */
  build: () => tfl.LayersModel;
}

const conv = (filters: number, kernelSize: number, name: string, more: Record<string, unknown> = {}) =>
  tfl.layers.conv2d({ filters, kernelSize, padding: 'same', name, ...more });

/**
 * Issue #11's pattern: a residual Add, a ReLU, then two downsampling branches side by side (a strided convolution
 * and a 3x3/2 max-pool, as in Inception and ResNet stems) concatenated; then a max-pool over signed values (no
 * activation before it, so windows with a negative maximum) and an average pool, before GAP and the classifier.
 * Fed an image with flat regions, the pools' windows tie (zeros after the ReLU, constants) and some are negative,
 * which is where tfjs-backend-wasm's own MaxPoolGrad went wrong.
 */
export function residualPoolModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [32, 32, 3], name: 'img' });
  const stem = conv(8, 3, 'stem', { activation: 'relu' }).apply(input) as Sym;
  const branch = conv(8, 3, 'branch').apply(stem) as Sym;
  const res = tfl.layers.add({ name: 'res' }).apply([stem, branch]) as Sym;
  const act = tfl.layers.reLU({ name: 'res_relu' }).apply(res) as Sym;
  const down = conv(8, 3, 'down', { strides: 2 }).apply(act) as Sym;
  const pool = tfl.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'pool' }).apply(act) as Sym;
  const cat = tfl.layers.concatenate({ name: 'cat' }).apply([down, pool]) as Sym;
  const mid = conv(12, 3, 'mid').apply(cat) as Sym;
  const pool2 = tfl.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'valid', name: 'pool2' }).apply(mid) as Sym;
  const avg = tfl.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: 'avg' }).apply(pool2) as Sym;
  const top = conv(16, 3, 'top', { activation: 'relu' }).apply(avg) as Sym;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(top) as Sym;
  const out = tfl.layers.dense({ units: 5, activation: 'softmax', name: 'fc' }).apply(gap) as Sym;
  return tfl.model({ inputs: input, outputs: out });
}

/** methods.test's golden model with the squaring layer: identity 1x1 conv → multiply(A, A) → GAP → dense. */
function squareModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [3, 4, 3], name: 'img' });
  const feat = conv(2, 1, 'feat', { useBias: false }).apply(input) as Sym;
  const sq = tfl.layers.multiply({ name: 'square' }).apply([feat, feat]) as Sym;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(sq) as Sym;
  const out = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'fc' }).apply(gap) as Sym;
  return tfl.model({ inputs: input, outputs: out });
}

/** methods.test's skip model: conv → conv → add → tanh → 1x1 conv → GAP → dense. */
function skipModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [6, 6, 3], name: 'img' });
  const target = conv(4, 3, 'target', { activation: 'relu' }).apply(input) as Sym;
  const branch = conv(4, 3, 'branch').apply(target) as Sym;
  const merged = tfl.layers.add({ name: 'merge' }).apply([target, branch]) as Sym;
  const act = tfl.layers.activation({ activation: 'tanh', name: 'act' }).apply(merged) as Sym;
  const proj = conv(5, 1, 'proj').apply(act) as Sym;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(proj) as Sym;
  const out = tfl.layers.dense({ units: 4, activation: 'softmax', name: 'fc' }).apply(gap) as Sym;
  return tfl.model({ inputs: input, outputs: out });
}

/** methods.test's transfer-learning model: a base model nested in the outer one, then GAP → dense. */
function nestedModel(): tfl.LayersModel {
  const bin = tfl.input({ shape: [6, 6, 3] });
  const c1 = conv(4, 3, 'c1', { activation: 'relu' }).apply(bin) as Sym;
  const c2 = conv(6, 3, 'c2', { activation: 'relu' }).apply(c1) as Sym;
  const base = tfl.model({ inputs: bin, outputs: c2, name: 'base' });
  const oin = tfl.input({ shape: [6, 6, 3] });
  const pooled = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(base.apply(oin) as Sym) as Sym;
  return tfl.model({ inputs: oin, outputs: tfl.layers.dense({ units: 3, activation: 'softmax', name: 'head' }).apply(pooled) as Sym });
}

/** methods.test's fusion model: conv → relu6 → depthwise 'valid' → ReLU capped at 3 → GAP → dense. */
function clampModel(): tfl.LayersModel {
  const inp = tfl.input({ shape: [12, 12, 3] });
  const c = tfl.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', name: 'conv' }).apply(inp) as Sym;
  const a = tfl.layers.activation({ activation: 'relu6', name: 'act' }).apply(c) as Sym;
  const dw = tfl.layers.depthwiseConv2d({ kernelSize: 3, padding: 'valid', name: 'dw' }).apply(a) as Sym;
  const r = tfl.layers.reLU({ maxValue: 3, name: 'clip3' }).apply(dw) as Sym;
  const g = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(r) as Sym;
  return tfl.model({ inputs: inp, outputs: tfl.layers.dense({ units: 4, activation: 'softmax', name: 'fc' }).apply(g) as Sym });
}

/** darknet.test's classifier-before-pooling model: conv → 1x1 conv to the classes → GAP (logits out). */
function classesFirstModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [5, 5, 3] });
  const f = conv(4, 3, 'features', { activation: 'relu' }).apply(input) as Sym;
  const c = conv(3, 1, 'classes').apply(f) as Sym;
  return tfl.model({ inputs: input, outputs: tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(c) as Sym });
}

/** scorecam.test's model: 1x1 conv → 2x2/2 average pool → GAP → dense. */
function avgPoolModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [8, 8, 3], name: 'img' });
  const c = conv(3, 1, 'conv').apply(input) as Sym;
  const feat = tfl.layers.averagePooling2d({ poolSize: 2, strides: 2, name: 'feat' }).apply(c) as Sym;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(feat) as Sym;
  return tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 3, activation: 'softmax', name: 'fc' }).apply(gap) as Sym });
}

/** worker.test's and recommend.test's flatten head: conv → flatten → dense (no GAP). */
function flattenModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [8, 8, 3], name: 'img' });
  const c = conv(4, 3, 'conv', { activation: 'relu' }).apply(input) as Sym;
  const f = tfl.layers.flatten({ name: 'flat' }).apply(c) as Sym;
  return tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 3, activation: 'softmax', name: 'fc' }).apply(f) as Sym });
}

/** The models built in code, weights seeded; the first is issue #11's pattern. */
export function parityModels(): ParityModel[] {
  const makers: Array<[string, () => tfl.LayersModel]> = [
    ['residual-pool (issue #11)', residualPoolModel],
    ['conv-BN-ReLU residual (helpers/models bnModel)', bnModel],
    ['square (methods golden)', squareModel],
    ['skip-and-merge (methods)', skipModel],
    ['nested base model (methods)', nestedModel],
    ['relu6 and capped ReLU (methods)', clampModel],
    ['classes before pooling (darknet)', classesFirstModel],
    ['average pool (scorecam)', avgPoolModel],
    ['flatten head (worker, recommend)', flattenModel],
  ];
  return makers.map(([name, make], i) => ({
    name,
    build: () => {
      const model = make();
      setSeededWeights(model, 100 * (i + 1));
      return model;
    },
  }));
}

/**
 * An input [h, w, c] with flat regions, like a photo's background or padding: a constant background, a
 * constant bright rectangle, and a textured disc; values in [-1, 1]. After a convolution the flat parts give
 * equal activations, so pooling windows there tie; with negative weights some windows are negative.
 */
export function flatRegionsImage(h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(h * w * c);
  const noise = seeded(h * w * c, 4242);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const inRect = y >= Math.floor(h * 0.15) && y < Math.ceil(h * 0.45) && x >= Math.floor(w * 0.1) && x < Math.ceil(w * 0.5);
      const dy = (y + 0.5) / h - 0.68;
      const dx = (x + 0.5) / w - 0.66;
      const inDisc = dx * dx + dy * dy < 0.07;
      for (let ch = 0; ch < c; ch++) {
        const i = (y * w + x) * c + ch;
        if (inDisc) out[i] = 0.5 * Math.sin(1.3 * x + 0.7 * y + ch) + 0.3 * noise[i];
        else out[i] = inRect ? 0.8 - 0.1 * ch : -0.6;
      }
    }
  }
  return out;
}
