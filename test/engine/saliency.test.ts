/**
 * Pixel-level saliency (engine/saliency, issue #15 items 1-2): golden values by hand on tiny models, guided
 * backpropagation's ReLU rule on two-layer nets (every way a ReLU runs in the engine), Integrated Gradients'
 * completeness, SmoothGrad at noise 0, batching against one by one, the contract (shape at the input's size,
 * range, no NaN, no tensor growth over 20 runs) on cpu and wasm, option errors, and real models.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession } from '../../src/extension/engine/session';
import { openImage } from '../../src/extension/engine/pipeline';
import { METHODS, getMethod } from '../../src/extension/engine/cam/registry';
import { CamLensError } from '../../src/extension/engine/errors';
import { guided, inputGradient } from '../../src/extension/engine/saliency/inputGradients';
import { gaussianBlur } from '../../src/extension/engine/saliency/integratedGradients';
import { rgbImage } from '../../src/extension/engine/saliency/pixelMethod';
import { SHARED, requireShared, tempDir, writeModel } from '../helpers/modelFiles';
import { GraphDefBuilder } from '../helpers/graphDef';
import { FIXTURE_NAMES, inputTensor as onnxInput, modelPath as onnxModelPath } from '../formats/onnxFixtures';

const PIXEL_IDS = ['guidedbackprop', 'guidedgradcam', 'gradient', 'smoothgrad', 'integratedgradients'];
const DEMO = path.resolve(__dirname, '..', '..', 'models', 'demo', 'model.json');

async function load(m: tfl.LayersModel, labels = ['a', 'b']): Promise<LoadedModel> {
  const written = await writeModel(m, path.join(tempDir(), 'model'), { labels, preprocess: '[0,1]' });
  m.dispose();
  return loadModel(written.modelJson);
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.strictEqual(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** The two-layer net of the ReLU rule: x (1x2 pixels) -> 3 ReLU units -> 2 logits. */
const W1 = [
  [1, -1], // h0 = relu(x0 - x1)
  [1, 1], //  h1 = relu(x0 + x1)
  [-1, 0], // h2 = relu(-x0): negative input for x0 > 0
];
const W2 = [1, -1, 1]; // logit_0 = h0 - h1 + h2 (logit_1 = 0)
const X = [2, 1];

/**
 * By hand at x = (2, 1): pre-activations (1, 3, -2), so h2 is off. dlogit/dh = (1, -1, 1).
 * Vanilla: dx = W1^T [(1, -1, 1) * (1, 1, 0)] = (1 - 1, -1 - 1) = (0, -2).
 * Guided: ReLU(dlogit/dh) * [pre > 0] = (1, 0, 0) -> dx = (1, -1): the negative gradient through h1 and the
 * negative input of h2 are both blocked.
 */
const VANILLA = [0, -2];
const GUIDED = [1, -1];

type ReluForm = 'dense relu' | 'conv relu' | 'conv + ReLU layer' | 'conv + Activation relu6';

function twoLayerNet(form: ReluForm): tfl.LayersModel {
  const input = tfl.input({ shape: [1, 2, 1] });
  let h: tfl.SymbolicTensor;
  if (form === 'dense relu') {
    const flat = tfl.layers.flatten().apply(input) as tfl.SymbolicTensor;
    // Dense kernel [in, out]: W1 transposed.
    const k = tf.tensor2d([0, 1].map((i) => W1.map((row) => row[i])));
    h = tfl.layers.dense({ units: 3, activation: 'relu', weights: [k, tf.zeros([3])] }).apply(flat) as tfl.SymbolicTensor;
  } else {
    // A 1x2 'valid' convolution sees both pixels: kernel [1, 2, 1, 3], tap i of unit j = W1[j][i].
    const k = tf.tensor4d([0, 1].flatMap((i) => W1.map((row) => row[i])), [1, 2, 1, 3]);
    const act = form === 'conv relu' ? 'relu' : 'linear';
    let c = tfl.layers.conv2d({ filters: 3, kernelSize: [1, 2], activation: act, weights: [k, tf.zeros([3])] }).apply(input) as tfl.SymbolicTensor;
    if (form === 'conv + ReLU layer') c = tfl.layers.reLU().apply(c) as tfl.SymbolicTensor;
    if (form === 'conv + Activation relu6') c = tfl.layers.activation({ activation: 'relu6' }).apply(c) as tfl.SymbolicTensor;
    h = tfl.layers.flatten().apply(c) as tfl.SymbolicTensor;
  }
  const out = tfl.layers.dense({ units: 2, activation: 'softmax', weights: [tf.tensor2d(W2.map((w) => [w, 0])), tf.zeros([2])] }).apply(h) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** logit_0 = sum_p w_p x_p^2 (a square, then a dense layer): Integrated Gradients from 0 is w_p x_p^2 exactly. */
const WSQ = [0.5, -1.5, 2, 0.25];
const XSQ = [1, 2, -1, 3];
function squareNet(): tfl.LayersModel {
  const input = tfl.input({ shape: [2, 2, 1] });
  const sq = tfl.layers.multiply().apply([input, input]) as tfl.SymbolicTensor;
  const flat = tfl.layers.flatten().apply(sq) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 2, activation: 'softmax', weights: [tf.tensor2d(WSQ.map((w) => [w, -w])), tf.zeros([2])] }).apply(flat) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/**
 * Guided Grad-CAM by hand: 'feat' = relu(1x1 conv, weight 1) = relu(x) on a 2x2 gray input, GAP, dense with class 0
 * weight 2. Grad-CAM at feat: alpha = 2/4, map = relu(alpha A) min-max = A / max(A). Guided gradient at the input:
 * 2/4 where x > 0 (the guided ReLU), else 0.
 */
const XG = [1, 2, 3, -1];
function gapNet(): tfl.LayersModel {
  const input = tfl.input({ shape: [2, 2, 1] });
  const feat = tfl.layers.conv2d({ filters: 1, kernelSize: 1, activation: 'relu', name: 'feat', weights: [tf.ones([1, 1, 1, 1]), tf.zeros([1])] }).apply(input) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({}).apply(feat) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 2, activation: 'softmax', weights: [tf.tensor2d([[2, -2]]), tf.zeros([2])] }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** A small random convolutional classifier (seeded): conv-relu, conv-relu stride 2, GAP, dense 3. */
function smallConvNet(): tfl.LayersModel {
  const input = tfl.input({ shape: [12, 10, 3] });
  const init = (seed: number) => tfl.initializers.glorotNormal({ seed });
  let x = tfl.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1), biasInitializer: 'zeros' }).apply(input) as tfl.SymbolicTensor;
  x = tfl.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: init(2), name: 'last' }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.globalAveragePooling2d({}).apply(x) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(3) }).apply(x) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** A fixed smooth input for smallConvNet, in [0, 1]. */
function smallInput(): tf.Tensor4D {
  const v = new Float32Array(12 * 10 * 3);
  for (let i = 0; i < 12; i++) for (let j = 0; j < 10; j++) for (let c = 0; c < 3; c++) {
    v[(i * 10 + j) * 3 + c] = 0.5 + 0.4 * Math.sin(0.7 * i + 1.3 * j + 2.1 * c);
  }
  return tf.tensor4d(v, [1, 12, 10, 3]);
}

const FAST: Record<string, Record<string, unknown>> = { smoothgrad: { samples: 4 }, integratedgradients: { steps: 8 } };

function checkContract(id: string, r: Awaited<ReturnType<ImageSession['explain']>>, h: number, w: number): void {
  const m = r.heatmap;
  assert.deepStrictEqual([m.height, m.width, m.values.length], [h, w, h * w], `${id}: map at the input's size`);
  let maxAbs = 0;
  for (const v of m.values) {
    assert.ok(Number.isFinite(v), `${id}: finite values`);
    if (m.signed) assert.ok(v >= -1 && v <= 1, `${id}: signed value ${v} in [-1, 1]`);
    else assert.ok(v >= 0 && v <= 1, `${id}: value ${v} in [0, 1]`);
    maxAbs = Math.max(maxAbs, Math.abs(v));
  }
  assert.ok(Math.abs(maxAbs - 1) < 1e-6, `${id}: normalised to a largest |value| of 1, got ${maxAbs}`);
  assert.ok(Number.isFinite(m.rawMin) && Number.isFinite(m.rawMax), `${id}: raw range`);
  if (m.rgb) {
    assert.strictEqual(m.rgb.length, h * w * 3, `${id}: rgb length`);
    for (const v of m.rgb) assert.ok(v >= 0 && v <= 1, `${id}: rgb value ${v} in [0, 1]`);
  }
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`pixel saliency on ${backend}`, () => {
    before(async () => {
      await initBackend(backend);
    });

    it('every pixel method is in the registry as group "pixel" with its params', () => {
      const pixel = METHODS.filter((m) => m.group === 'pixel').map((m) => m.id);
      assert.deepStrictEqual(pixel, PIXEL_IDS);
      const params = (id: string) => Object.fromEntries((getMethod(id).params ?? []).map((p) => [p.id, p.default]));
      assert.deepStrictEqual(params('smoothgrad'), { samples: 25, noise: 0.15, batchSize: 0 });
      assert.deepStrictEqual(params('integratedgradients'), { steps: 64, baseline: 'black', batchSize: 0 });
      assert.deepStrictEqual(params('guidedbackprop'), { render: 'rgb' });
      const steps = getMethod('integratedgradients').params?.find((p) => p.id === 'steps');
      assert.deepStrictEqual([steps?.min, steps?.max], [8, 512]);
      assert.strictEqual(getMethod('guidedgradcam').usesLayer, true);
      assert.strictEqual(getMethod('gradient').usesLayer, false);
    });

    for (const form of ['dense relu', 'conv relu', 'conv + ReLU layer', 'conv + Activation relu6'] as const) {
      it(`guided backpropagation's ReLU rule on a two-layer net (${form})`, async () => {
        const model = await load(twoLayerNet(form));
        const x = tf.tensor4d(X, [1, 1, 2, 1]);
        try {
          const vanilla = tf.tidy(() => inputGradient(model, x, 0));
          const guidedG = tf.tidy(() => inputGradient(model, x, 0, true));
          assertClose(await vanilla.data(), VANILLA, 1e-5, 'vanilla gradient');
          assertClose(await guidedG.data(), GUIDED, 1e-5, 'guided gradient');
          tf.dispose([vanilla, guidedG]);
          // The rule holds only while it runs: the ordinary gradient afterwards.
          const again = tf.tidy(() => inputGradient(model, x, 0));
          assertClose(await again.data(), VANILLA, 1e-5, 'vanilla gradient after a guided one');
          again.dispose();
          // Through the session: magnitude |(1, -1)| / 1 and the signed vanilla map (0, -2) / 2.
          const s = new ImageSession(model, tf.clone(x));
          const gb = await s.explain({ method: 'guidedbackprop', classChoice: 0, options: { render: 'magnitude' } });
          assertClose(gb.heatmap.values, [1, 1], 1e-5, 'guided magnitude');
          assert.strictEqual(gb.heatmap.rgb, undefined);
          const v = await s.explain({ method: 'gradient', classChoice: 0 });
          assert.strictEqual(v.heatmap.signed, true);
          assertClose(v.heatmap.values, [0, -1], 1e-5, 'signed gradient');
          assertClose([v.heatmap.rawMin, v.heatmap.rawMax], [-2, 0], 1e-5, 'raw range');
          s.dispose();
        } finally {
          x.dispose();
          model.dispose();
        }
      });
    }

    it("guided backpropagation's ReLU rule on a GraphModel (tfjs-core's Relu kernel, the same two-layer net)", async () => {
      const g = new GraphDefBuilder();
      const x = g.placeholder('x', [1, 1, 2, 1]);
      const k = g.const('k', [1, 2, 1, 3], [0, 1].flatMap((i) => W1.map((row) => row[i])));
      const c = g.op('conv', 'Conv2D', [x, k], {
        strides: { list: { i: ['1', '1', '1', '1'] } }, padding: { s: Buffer.from('VALID').toString('base64') },
        data_format: { s: Buffer.from('NHWC').toString('base64') }, dilations: { list: { i: ['1', '1', '1', '1'] } },
      });
      const r = g.op('relu', 'Relu', [c]);
      const s = g.squeeze('flat', r, [1, 2]);
      const logits = g.matMul('logits', s, g.const('w2', [3, 2], W2.flatMap((w) => [w, 0])));
      g.op('probs', 'Softmax', [logits]);
      const model = await loadModel(g.write(path.join(tempDir(), 'graph')));
      const input = tf.tensor4d(X, [1, 1, 2, 1]);
      try {
        assert.strictEqual(model.graph.kind, 'graph');
        const vanilla = tf.tidy(() => inputGradient(model, input, 0));
        const guidedG = tf.tidy(() => inputGradient(model, input, 0, true));
        assertClose(await vanilla.data(), VANILLA, 1e-5, 'vanilla gradient');
        assertClose(await guidedG.data(), GUIDED, 1e-5, 'guided gradient');
        tf.dispose([vanilla, guidedG]);
      } finally {
        input.dispose();
        model.dispose();
      }
    });

    it("tfjs-core's Relu and Relu6 kernels follow the rule inside `guided`, and get their own gradients back", () => {
      const fake = { graph: { kind: 'layers' } } as unknown as LoadedModel;
      const x = tf.tensor1d([2, -1, 3, 7, 0.5]);
      const w = tf.tensor1d([1, 1, -1, 1, 2]);
      const f = (kind: 'relu' | 'relu6') => (v: tf.Tensor) => tf.sum(tf.mul(kind === 'relu' ? tf.relu(v) : tf.relu6(v), w));
      const read = (t: tf.Tensor) => Array.from(t.dataSync());
      const grads = (kind: 'relu' | 'relu6', isGuided: boolean) => tf.tidy(() => read(isGuided ? guided(fake, () => tf.grad(f(kind))(x)) : tf.grad(f(kind))(x)));
      assert.deepStrictEqual(grads('relu', false), [1, 0, -1, 1, 2]);
      assert.deepStrictEqual(grads('relu', true), [1, 0, 0, 1, 2]);
      assert.deepStrictEqual(grads('relu6', true), [1, 0, 0, 0, 2]);
      assert.deepStrictEqual(grads('relu6', false), [1, 0, -1, 0, 2]);
      tf.dispose([x, w]);
    });

    it('Integrated Gradients from a black baseline matches w x^2 exactly, completeness gap 0', async () => {
      const model = await load(squareNet());
      const s = new ImageSession(model, tf.tensor4d(XSQ, [1, 2, 2, 1]));
      try {
        const r = await s.explain({ method: 'integratedgradients', classChoice: 0, options: { steps: 8 } });
        const attr = XSQ.map((x, p) => WSQ[p] * x * x); // (0.5, -6, 2, 2.25)
        const scale = Math.max(...attr.map(Math.abs));
        assertClose(r.heatmap.values, attr.map((a) => a / scale), 1e-5, 'IG map');
        assert.strictEqual(r.heatmap.signed, true);
        const d = r.heatmap.details;
        assert.deepStrictEqual([d?.steps, d?.baseline], [8, 'black']);
        const c = d?.completeness;
        assert.ok(c, 'completeness reported');
        const sum = attr.reduce((a, b) => a + b, 0);
        assertClose([c.attributionSum, c.inputScore, c.baselineScore], [sum, sum, 0], 1e-4, 'completeness terms');
        assert.ok(Math.abs(c.relativeGap ?? 1) < 1e-5, `relative gap ${c.relativeGap}`);
        // The vanilla gradient 2 w x, and SmoothGrad at noise 0 the same.
        const g = XSQ.map((x, p) => 2 * WSQ[p] * x);
        const gs = Math.max(...g.map(Math.abs));
        const v = await s.explain({ method: 'gradient', classChoice: 0 });
        assertClose(v.heatmap.values, g.map((x) => x / gs), 1e-5, 'gradient map');
        const sg = await s.explain({ method: 'smoothgrad', classChoice: 0, options: { noise: 0, samples: 5 } });
        assertClose(sg.heatmap.values, v.heatmap.values, 1e-6, 'SmoothGrad at noise 0');
        assertClose([sg.heatmap.rawMin, sg.heatmap.rawMax], [v.heatmap.rawMin, v.heatmap.rawMax], 1e-5, 'SmoothGrad raw range at noise 0');
      } finally {
        s.dispose();
        model.dispose();
      }
    });

    it('Guided Grad-CAM is the guided gradient times the upsampled Grad-CAM map (by hand)', async () => {
      const model = await load(gapNet());
      const s = new ImageSession(model, tf.tensor4d(XG, [1, 2, 2, 1]));
      try {
        const r = await s.explain({ method: 'guidedgradcam', classChoice: 0, layer: 'feat', options: { render: 'magnitude' } });
        assert.strictEqual(r.layer, 'feat');
        // A = relu(x) = (1, 2, 3, 0); Grad-CAM A / 3; guided gradient 0.5 where x > 0: M = (1/3, 2/3, 1, 0) * 0.5.
        assertClose(r.heatmap.values, [1 / 3, 2 / 3, 1, 0], 1e-5, 'Guided Grad-CAM magnitude');
        assertClose([r.heatmap.rawMin, r.heatmap.rawMax], [0, 0.5], 1e-5, 'raw range');
        const gb = await s.explain({ method: 'guidedbackprop', classChoice: 0, options: { render: 'magnitude' } });
        assertClose(gb.heatmap.values, [1, 1, 1, 0], 1e-5, 'guided backpropagation magnitude');
        assert.strictEqual(gb.layer, '');
        // RGB: the gray gradient repeated in three channels, 0.5 + 0.1 (v - mean) / std.
        const rgb = await s.explain({ method: 'guidedgradcam', classChoice: 0, layer: 'feat' });
        const m = [1 / 6, 1 / 3, 0.5, 0];
        const mean = m.reduce((a, b) => a + b) / 4;
        const std = Math.sqrt(m.reduce((a, b) => a + (b - mean) ** 2, 0) / 4);
        const want = m.flatMap((v) => { const y = 0.5 + (0.1 * (v - mean)) / (std + 1e-5); return [y, y, y]; });
        assertClose(rgb.heatmap.rgb as Float32Array, want, 1e-5, 'RGB rendering');
      } finally {
        s.dispose();
        model.dispose();
      }
    });

    it('a caffe model gets its BGR gradient back in RGB order', async () => {
      const fake = { metadata: { preprocess: 'caffe' } } as unknown as LoadedModel;
      const g = tf.tensor4d([3, 0, -3], [1, 1, 1, 3]);
      const out = await rgbImage(g, fake);
      g.dispose();
      assert.ok(out[0] < 0.5 && out[2] > 0.5, `R from channel 2: ${Array.from(out)}`);
    });

    it('the blurred baseline keeps a constant image constant (borders included) and blurs an edge', () => {
      const c = tf.fill([1, 9, 7, 3], 0.25) as tf.Tensor4D;
      const b = gaussianBlur(c, 2);
      assertClose(b.dataSync(), c.dataSync(), 1e-5, 'blurred constant');
      const edge = tf.tensor4d(Array.from({ length: 16 }, (_, i) => (i % 8 < 4 ? 0 : 1)), [1, 2, 8, 1]);
      const e = gaussianBlur(edge, 1.5);
      const row = Array.from(e.dataSync()).slice(0, 8);
      assert.ok(row[3] > 0.05 && row[4] < 0.95 && row[0] < row[3] && row[4] < row[7], `blurred edge ${row}`);
      tf.dispose([c, b, edge, e]);
    });

    it('Integrated Gradients: completeness gap below 1% at 64 steps on a small conv net, both baselines', async () => {
      const model = await load(smallConvNet(), ['a', 'b', 'c']);
      const s = new ImageSession(model, smallInput());
      try {
        for (const baseline of ['black', 'blurred']) {
          const r = await s.explain({ method: 'integratedgradients', options: { steps: 64, baseline } });
          const c = r.heatmap.details?.completeness;
          assert.ok(c && c.relativeGap !== undefined, 'relative gap');
          assert.ok(Math.abs(c.relativeGap) < 0.01, `${baseline}: completeness gap ${(c.relativeGap * 100).toFixed(3)}% (sum ${c.attributionSum}, difference ${c.inputScore - c.baselineScore})`);
          // The map's raw values sum to the attributions' sum (the channel sum keeps completeness).
          assert.strictEqual(r.heatmap.details?.baseline, baseline);
        }
      } finally {
        s.dispose();
        model.dispose();
      }
    });

    it('batched SmoothGrad and Integrated Gradients equal one input at a time', async () => {
      const model = await load(smallConvNet(), ['a', 'b', 'c']);
      const s = new ImageSession(model, smallInput());
      try {
        for (const [id, opts] of [['smoothgrad', { samples: 6, noise: 0.2 }], ['integratedgradients', { steps: 10, baseline: 'blurred' }]] as const) {
          const one = await s.explain({ method: id, options: { ...opts, batchSize: 1 } });
          const batched = await s.explain({ method: id, options: { ...opts, batchSize: 4 } });
          const all = await s.explain({ method: id, options: opts });
          assert.deepStrictEqual([one.heatmap.details?.passes, batched.heatmap.details?.passes, all.heatmap.details?.passes], id === 'smoothgrad' ? [6, 2, 1] : [10, 3, 1]);
          assertClose(batched.heatmap.values, one.heatmap.values, 1e-4, `${id} batch 4 vs 1`);
          assertClose(all.heatmap.values, one.heatmap.values, 1e-4, `${id} one batch vs 1`);
        }
        // Noise actually changes SmoothGrad, and the same seed gives the same map.
        const v = await s.explain({ method: 'gradient' });
        const sg = await s.explain({ method: 'smoothgrad', options: { samples: 6, noise: 0.2 } });
        const sg2 = await s.explain({ method: 'smoothgrad', options: { samples: 6, noise: 0.2 } });
        assert.ok(sg.heatmap.values.some((x, i) => Math.abs(x - v.heatmap.values[i]) > 1e-3), 'noise changes the map');
        assert.deepStrictEqual(Array.from(sg2.heatmap.values), Array.from(sg.heatmap.values));
      } finally {
        s.dispose();
        model.dispose();
      }
    });

    it('the contract for each pixel method: input size, range, no NaN, no tensor growth over 20 runs', async function () {
      this.timeout(240000);
      const model = await load(smallConvNet(), ['a', 'b', 'c']);
      const s = new ImageSession(model, smallInput());
      try {
        for (const id of PIXEL_IDS) {
          const renders = id.startsWith('guided') ? ['rgb', 'magnitude'] : [undefined];
          for (const render of renders) {
            const options = { ...FAST[id], ...(render ? { render } : {}) };
            const first = await s.explain({ method: id, options, layer: id === 'guidedgradcam' ? 'last' : undefined });
            checkContract(id, first, 12, 10);
            assert.strictEqual(first.heatmap.signed === true, !id.startsWith('guided'), `${id}: signed`);
            assert.strictEqual(first.heatmap.rgb !== undefined, render === 'rgb', `${id}: rgb`);
            // Warm: the session caches the target layer's gradient per class (Guided Grad-CAM), a bounded cache.
            for (let c = 0; c < 3; c++) await s.explain({ method: id, options, classChoice: c });
            const before = tf.memory().numTensors;
            for (let i = 0; i < 20; i++) await s.explain({ method: id, options, classChoice: i % 3 });
            assert.strictEqual(tf.memory().numTensors, before, `${id}${render ? ` (${render})` : ''}: tensors after 20 runs`);
          }
        }
      } finally {
        s.dispose();
        model.dispose();
      }
    });

    it('bad options are specific BAD_ARGUMENT errors, and leave no tensor behind', async () => {
      const model = await load(smallConvNet(), ['a', 'b', 'c']);
      const s = new ImageSession(model, smallInput());
      try {
        await s.explain({ method: 'gradient' });
        const before = tf.memory().numTensors;
        const cases: [string, Record<string, unknown>, RegExp][] = [
          ['integratedgradients', { steps: 4 }, /steps must be an integer from 8 to 512/],
          ['integratedgradients', { steps: 20.5 }, /steps must be an integer/],
          ['integratedgradients', { baseline: 'white' }, /baseline must be one of black, blurred/],
          ['smoothgrad', { samples: 0 }, /samples must be an integer from 1 to 1000/],
          ['smoothgrad', { noise: -0.1 }, /noise must be a number from 0 to 1/],
          ['smoothgrad', { noise: 'lots' }, /noise must be a number/],
          ['smoothgrad', { batchSize: 0.5 }, /batchSize must be an integer/],
          ['guidedbackprop', { render: 'gray' }, /render must be one of rgb, magnitude/],
        ];
        for (const [method, options, re] of cases) {
          await assert.rejects(s.explain({ method, options }), (e: unknown) => e instanceof CamLensError && e.code === 'BAD_ARGUMENT' && re.test(e.message), `${method} ${JSON.stringify(options)}`);
        }
        assert.strictEqual(tf.memory().numTensors, before);
        // A cancelled SmoothGrad stops between batches with CANCELLED, leaving no tensor behind.
        const ac = new AbortController();
        const run = s.explain({ method: 'smoothgrad', options: { samples: 8, batchSize: 1 }, signal: ac.signal, onProgress: (done) => { if (done === 2) ac.abort(); } });
        await assert.rejects(run, (e: unknown) => e instanceof CamLensError && e.code === 'CANCELLED');
        assert.strictEqual(tf.memory().numTensors, before);
      } finally {
        s.dispose();
        model.dispose();
      }
    });

    // mobilenet_v2 (96x96) on wasm only: on cpu's plain-JS kernels it takes 40 s.
    for (const name of (backend === 'wasm' ? ['mobilenet_v2', 'clipnet_opset9'] : ['clipnet_opset9']).filter((n) => FIXTURE_NAMES.includes(n))) {
      it(`an ONNX model (${name} fixture): every pixel method, guided differs from vanilla, IG complete within 5%`, async function () {
        this.timeout(240000);
        const model = await loadModel(onnxModelPath(name));
        const s = new ImageSession(model, onnxInput(name));
        const [, h, w] = s.input.shape;
        try {
          assert.strictEqual(model.graph.kind, 'onnx');
          for (const id of PIXEL_IDS) {
            const r = await s.explain({ method: id, options: { ...FAST[id], ...(id === 'integratedgradients' ? { steps: 32 } : {}) } });
            checkContract(id, r, h, w);
            if (id === 'integratedgradients') {
              const gap = r.heatmap.details?.completeness?.relativeGap as number;
              assert.ok(Math.abs(gap) < 0.05, `${name}: completeness gap ${(gap * 100).toFixed(2)}% at 32 steps`);
            }
          }
          const c = await s.resolveTarget();
          const v = tf.tidy(() => inputGradient(model, s.input, c));
          const gb = tf.tidy(() => inputGradient(model, s.input, c, true));
          // Relative: the fixtures' random weights give small gradients (mobilenet_v2: |dS/dx| < 1e-6).
          const diff = tf.tidy(() => tf.div(tf.max(tf.abs(tf.sub(v, gb))), tf.max(tf.abs(v))));
          assert.ok((await diff.data())[0] > 0.01, 'the guided rule changes the gradient');
          tf.dispose([v, gb, diff]);
        } finally {
          s.dispose();
          model.dispose();
        }
      });
    }

    // On wasm only: the cpu backend's plain-JS kernels take over a minute for 64 steps at 96x96.
    if (backend === 'wasm') it('the bundled demo model: every pixel method on a sample, at 96x96', async function () {
      this.timeout(240000);
      const model = await loadModel(DEMO);
      const samples = path.resolve(__dirname, '..', '..', 'samples', 'star');
      const image = path.join(samples, fs.readdirSync(samples).find((f) => f.endsWith('.png')) as string);
      const opened = await openImage(model, image);
      try {
        for (const id of PIXEL_IDS) {
          const r = await opened.session.explain({ method: id, options: id === 'smoothgrad' ? { samples: 8 } : undefined });
          checkContract(id, r, 96, 96);
          if (id === 'integratedgradients') {
            const gap = r.heatmap.details?.completeness?.relativeGap as number;
            assert.ok(Math.abs(gap) < 0.01, `demo model completeness gap at 64 steps: ${(gap * 100).toFixed(3)}%`);
          }
        }
      } finally {
        opened.session.dispose();
        model.dispose();
      }
    });
  });
}

describe('pixel saliency on the reference models (../shared/reference)', function () {
  this.timeout(600000);
  before(async function () {
    requireShared(this);
    await initBackend('wasm');
  });

  it('MobileNet v1 0.25: every pixel method at 224x224, Integrated Gradients complete within 5% at 64 steps', async () => {
    const labels = JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
    const model = await loadModel(path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json'), { overrides: { labels, preprocess: '[-1,1]' } });
    const opened = await openImage(model, path.join(SHARED, 'images', 'pgc_both_cat_dog.png'));
    try {
      for (const id of PIXEL_IDS) {
        const r = await opened.session.explain({ method: id, options: id === 'smoothgrad' ? { samples: 8 } : undefined });
        checkContract(id, r, 224, 224);
        if (id === 'integratedgradients') {
          const gap = r.heatmap.details?.completeness?.relativeGap as number;
          console.log(`      MobileNet v1 0.25, black baseline, 64 steps: completeness gap ${(gap * 100).toFixed(2)}%`);
          assert.ok(Math.abs(gap) < 0.05, `completeness gap ${(gap * 100).toFixed(2)}%`);
        }
      }
    } finally {
      opened.session.dispose();
      model.dispose();
    }
  });
});
