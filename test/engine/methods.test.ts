import * as assert from 'assert';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession } from '../../src/extension/engine/session';
import { METHODS } from '../../src/extension/engine/cam/registry';
import { CamLensError } from '../../src/extension/engine/errors';
import { tempDir, writeModel } from '../helpers/modelFiles';
import { bnModel } from '../helpers/models';

const H = 3;
const W = 4;
const K = 2;
const C = 3;
/** Hand-set classifier weights W[k][c] and an input with known channels. */
const FC = [
  [1.0, -0.5, 0.25],
  [-2.0, 1.5, 0.75],
];
const BIAS = [0.1, -0.2, 0.3];

/** The activation A of 'feat' (2 channels); the model input adds a third channel it ignores. */
function featValues(): Float32Array {
  const x = new Float32Array(H * W * K);
  for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) {
    x[(i * W + j) * K + 0] = (i + 1) * 0.5 + j * 0.1; // channel 0 grows downwards
    x[(i * W + j) * K + 1] = (j + 1) * 0.3 - i * 0.2; // channel 1 grows to the right
  }
  return x;
}

function inputTensor(): tf.Tensor4D {
  const a = featValues();
  const x = new Float32Array(H * W * 3);
  for (let p = 0; p < H * W; p++) {
    x[p * 3] = a[p * K];
    x[p * 3 + 1] = a[p * K + 1];
    x[p * 3 + 2] = 0.9;
  }
  return tf.tensor4d(x, [1, H, W, 3]);
}

/**
 * feat = identity 1x1 conv (A = x exactly) → [square?] → GAP → dense(softmax).
 * With square: logit_c = sum_k W[k,c] mean(A_k^2) + b, so dY/dA = 2 A W / HW varies over space.
 */
function goldenModel(square: boolean): tfl.LayersModel {
  const input = tfl.input({ shape: [H, W, 3], name: 'img' });
  // Picks input channels 0 and 1: A = x[..., :2] exactly.
  const pick = tf.tensor4d([1, 0, 0, 1, 0, 0], [1, 1, 3, K]);
  const feat = tfl.layers.conv2d({ filters: K, kernelSize: 1, useBias: false, name: 'feat', weights: [pick] }).apply(input) as tfl.SymbolicTensor;
  const body = square ? (tfl.layers.multiply({ name: 'square' }).apply([feat, feat]) as tfl.SymbolicTensor) : feat;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(body) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: C, activation: 'softmax', name: 'fc', weights: [tf.tensor2d(FC), tf.tensor1d(BIAS)] }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

function normalize(m: number[]): number[] {
  const r = m.map((v) => Math.max(v, 0));
  const min = Math.min(...r);
  const max = Math.max(...r);
  return r.map((v) => (v - min) / (max - min + 1e-7));
}

/**
 * Score-CAM by hand on the golden model: the input is H x W, like 'feat', so upsampling is the identity and the
 * mask of channel k is A_k min-max normalised. 'feat' picks input channels 0 and 1, so the masked input's
 * activation is A ∘ M_k, and the class probability follows from the hand-set classifier.
 */
function handScoreCamWeights(a: Float32Array, c: number, square: boolean): number[] {
  const n = H * W;
  return Array.from({ length: K }, (_, k) => {
    const ch = Array.from({ length: n }, (_, p) => a[p * K + k]);
    const lo = Math.min(...ch);
    const hi = Math.max(...ch);
    const mask = ch.map((v) => (v - lo) / (hi - lo));
    const logits = Array.from({ length: C }, (_, cc) => {
      let z = BIAS[cc];
      for (let j = 0; j < K; j++) {
        let mean = 0;
        for (let p = 0; p < n; p++) {
          const v = a[p * K + j] * mask[p];
          mean += (square ? v * v : v) / n;
        }
        z += FC[j][cc] * mean;
      }
      return z;
    });
    const e = logits.map((z) => Math.exp(z));
    return e[c] / e.reduce((x, y) => x + y, 0);
  });
}

/**
 * Eigen-CAM by hand: the channel covariance of the centred A is 2 x 2, [[s00, s01], [s01, s11]]; its top
 * eigenvector is (s01, lambda - s00) with lambda = (s00 + s11)/2 + sqrt(((s00 - s11)/2)^2 + s01^2).
 */
function handEigenCam(a: Float32Array): number[] {
  const n = H * W;
  const mean = [0, 1].map((k) => Array.from({ length: n }, (_, p) => a[p * K + k]).reduce((x, y) => x + y, 0) / n);
  const xc = Array.from({ length: n }, (_, p) => [a[p * K] - mean[0], a[p * K + 1] - mean[1]]);
  const s = (i: number, j: number) => xc.reduce((acc, r) => acc + r[i] * r[j], 0);
  const [s00, s01, s11] = [s(0, 0), s(0, 1), s(1, 1)];
  const lambda = (s00 + s11) / 2 + Math.sqrt(((s00 - s11) / 2) ** 2 + s01 ** 2);
  // A unit vector, as the engine's: the maps' min-max normalisation adds 1e-7 to the range, which matters for tiny maps.
  const len = Math.hypot(s01, lambda - s00);
  const v = [s01 / len, (lambda - s00) / len];
  const proj = xc.map((r) => r[0] * v[0] + r[1] * v[1]);
  // Sign: positive correlation with the mean activation map (proj has zero mean).
  const corr = proj.reduce((acc, q, p) => acc + q * (a[p * K] + a[p * K + 1]), 0);
  return corr < 0 ? proj.map((q) => -q) : proj;
}

/**
 * Ablation-CAM by hand: logit_c = b_c + sum_j W[j][c] mean(f(A_j)) with f the identity or the square, so
 * zeroing channel k drops the logit by W[k][c] mean(f(A_k)), and w_k = that drop / |logit_c|.
 */
function handAblationWeights(a: Float32Array, c: number, square: boolean): number[] {
  const n = H * W;
  const m = Array.from({ length: K }, (_, k) => Array.from({ length: n }, (_, p) => a[p * K + k]).reduce((acc, v) => acc + (square ? v * v : v), 0) / n);
  const logit = BIAS[c] + m.reduce((acc, v, k) => acc + FC[k][c] * v, 0);
  return m.map((v, k) => (FC[k][c] * v) / Math.abs(logit));
}

/** The maps of every method computed by hand with plain loops from A and G = dY_c/dA. */
function handMaps(a: Float32Array, g: Float32Array, c: number, square: boolean): Record<string, number[]> {
  const n = H * W;
  const at = (arr: Float32Array, p: number, k: number) => arr[p * K + k];
  const sumK = (f: (k: number) => number) => Array.from({ length: K }, (_, k) => f(k)).reduce((x, y) => x + y, 0);
  const sumP = (f: (p: number) => number) => Array.from({ length: n }, (_, p) => f(p)).reduce((x, y) => x + y, 0);
  const gradW = Array.from({ length: K }, (_, k) => sumP((p) => at(g, p, k)) / n);
  const sumA = Array.from({ length: K }, (_, k) => sumP((p) => at(a, p, k)));
  const ppW = Array.from({ length: K }, (_, k) => sumP((p) => {
    const gg = at(g, p, k);
    if (gg === 0) return 0;
    const alpha = (gg * gg) / (2 * gg * gg + sumA[k] * gg * gg * gg + 1e-7);
    return alpha * Math.max(gg, 0);
  }));
  const xW = Array.from({ length: K }, (_, k) => sumP((p) => at(g, p, k) * at(a, p, k)) / (sumA[k] + 1e-7));
  const maps: Record<string, number[]> = {};
  const per = (f: (p: number) => number) => normalize(Array.from({ length: n }, (_, p) => f(p)));
  maps.cam = per((p) => sumK((k) => FC[k][c] * at(a, p, k)));
  maps.gradcam = per((p) => sumK((k) => gradW[k] * at(a, p, k)));
  maps['gradcam++'] = per((p) => sumK((k) => ppW[k] * at(a, p, k)));
  maps.xgradcam = per((p) => sumK((k) => xW[k] * at(a, p, k)));
  maps.hirescam = per((p) => sumK((k) => at(g, p, k) * at(a, p, k)));
  maps.layercam = per((p) => sumK((k) => Math.max(at(g, p, k), 0) * at(a, p, k)));
  const scoreW = handScoreCamWeights(a, c, square);
  maps.scorecam = per((p) => sumK((k) => scoreW[k] * at(a, p, k)));
  const eig = handEigenCam(a);
  maps.eigencam = per((p) => eig[p]);
  maps.gradcamelementwise = per((p) => sumK((k) => Math.max(at(g, p, k) * at(a, p, k), 0)));
  const ablW = handAblationWeights(a, c, square);
  maps.ablationcam = per((p) => sumK((k) => ablW[k] * at(a, p, k)));
  // Eigen-Grad-CAM: Eigen-CAM's projection of G ∘ A (its sign from the correlation with sum_k G ∘ A).
  const eigGrad = handEigenCam(Float32Array.from(a, (v, i) => v * g[i]));
  maps.eigengradcam = per((p) => eigGrad[p]);
  return maps;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.strictEqual(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

async function load(m: tfl.LayersModel, labels?: string[]): Promise<LoadedModel> {
  const written = await writeModel(m, path.join(tempDir(), 'model'), labels ? { labels } : undefined);
  m.dispose();
  return loadModel(written.modelJson);
}

describe('CAM methods: golden maps on hand-set models', () => {
  before(async () => {
    await initBackend('cpu');
  });

  for (const square of [false, true]) {
    it(`every method matches its formula computed by hand (${square ? 'spatially varying' : 'constant'} gradients)`, async () => {
      const model = await load(goldenModel(square));
      const x = featValues();
      const session = new ImageSession(model, inputTensor());
      try {
        for (const c of [0, 1, 2]) {
          // Gradients by hand: constant W/HW, or 2 A W / HW with the square.
          const g = new Float32Array(H * W * K);
          for (let p = 0; p < H * W; p++) for (let k = 0; k < K; k++) g[p * K + k] = (square ? 2 * x[p * K + k] : 1) * FC[k][c] / (H * W);
          const maps = handMaps(x, g, c, square);
          const got = await session.gradient('feat', c).data();
          assertClose(got, g, 1e-5, `gradient class ${c}`);
          for (const m of METHODS) {
            if (m.group === 'pixel') continue; // input-resolution maps: test/engine/saliency.test.ts
            if (m.id === 'cam' && square) continue; // no GAP→linear right after 'feat'
            const r = await session.explain({ method: m.id, layer: 'feat', classChoice: c });
            assert.strictEqual(r.heatmap.width, W);
            assert.strictEqual(r.heatmap.height, H);
            assertClose(r.heatmap.values, maps[m.id], 1e-4, `${m.id} class ${c}`);
          }
        }
      } finally {
        session.dispose();
        model.dispose();
      }
    });
  }

  it('explains the logit, not the softmax output', async () => {
    const model = await load(goldenModel(false));
    const x = featValues();
    const session = new ImageSession(model, inputTensor());
    try {
      const logits = await session.logits();
      for (let c = 0; c < C; c++) {
        let expected = BIAS[c];
        for (let k = 0; k < K; k++) {
          let mean = 0;
          for (let p = 0; p < H * W; p++) mean += x[p * K + k] / (H * W);
          expected += FC[k][c] * mean;
        }
        assert.ok(Math.abs(logits[c] - expected) < 1e-5, `logit ${c}: ${logits[c]} vs ${expected}`);
      }
      const probs = await session.probabilities();
      assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    } finally {
      session.dispose();
      model.dispose();
    }
  });

  it('cam says clearly that it needs a GAP-then-linear head and suggests gradcam', async () => {
    const model = await load(goldenModel(true));
    const session = new ImageSession(model, inputTensor());
    try {
      await assert.rejects(session.explain({ method: 'cam', layer: 'feat' }), (e: unknown) => {
        assert.ok(e instanceof CamLensError);
        assert.strictEqual(e.code, 'METHOD_NOT_APPLICABLE');
        assert.match(e.message, /global average pooling then a linear classifier/);
        assert.match(e.hint ?? '', /gradcam/);
        return true;
      });
    } finally {
      session.dispose();
      model.dispose();
    }
  });
});

/**
 * target → conv3x3 → add(target, conv) → relu → conv1x1(5) → GAP → dense(4): the layers after the target
 * branch and merge. The function is written again below with plain tf ops from the layer weights, and
 * its finite differences must equal the engine's gradient.
 */
function skipModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [6, 6, 3], name: 'img' });
  const target = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'target' }).apply(input) as tfl.SymbolicTensor;
  const branch = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'branch' }).apply(target) as tfl.SymbolicTensor;
  const merged = tfl.layers.add({ name: 'merge' }).apply([target, branch]) as tfl.SymbolicTensor;
  const act = tfl.layers.activation({ activation: 'tanh', name: 'act' }).apply(merged) as tfl.SymbolicTensor;
  const proj = tfl.layers.conv2d({ filters: 5, kernelSize: 1, name: 'proj' }).apply(act) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(proj) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 4, activation: 'softmax', name: 'fc' }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

describe('gradient path', () => {
  before(async () => {
    await initBackend('cpu');
  });

  it('matches finite differences on a model whose layers after the target branch and merge', async () => {
    const model = await load(skipModel());
    const xData = Float32Array.from({ length: 6 * 6 * 3 }, (_, i) => Math.sin(i * 0.7) * 0.8);
    const session = new ImageSession(model, tf.tensor4d(xData, [1, 6, 6, 3]));
    try {
      const layer = (n: string) => model.tfModel.getLayer(n);
      const [bk, bb] = layer('branch').getWeights();
      const [pk, pb] = layer('proj').getWeights();
      const [fk, fb] = layer('fc').getWeights();
      const f = (a: tf.Tensor4D, c: number): number => tf.tidy(() => {
        const br = tf.add(tf.conv2d(a, bk as tf.Tensor4D, 1, 'same'), bb);
        const act = tf.tanh(tf.add(a, br));
        const pr = tf.add(tf.conv2d(act as tf.Tensor4D, pk as tf.Tensor4D, 1, 'same'), pb);
        const gap = tf.mean(pr, [1, 2]);
        const logits = tf.add(tf.matMul(gap as tf.Tensor2D, fk as tf.Tensor2D), fb);
        return (logits.arraySync() as number[][])[0][c];
      });
      const a = session.activation('target');
      const aData = await a.data();
      const logits = await session.logits();
      for (let c = 0; c < 4; c++) assert.ok(Math.abs(f(a, c) - logits[c]) < 1e-4, 'the hand-written network equals the model');
      const eps = 1e-2;
      for (const c of [0, 3]) {
        const g = await session.gradient('target', c).data();
        for (const idx of [0, 17, 40, 77, 143]) {
          const plus = Float32Array.from(aData);
          const minus = Float32Array.from(aData);
          plus[idx] += eps;
          minus[idx] -= eps;
          const tp = tf.tensor4d(plus, a.shape);
          const tm = tf.tensor4d(minus, a.shape);
          const fd = (f(tp, c) - f(tm, c)) / (2 * eps);
          tp.dispose();
          tm.dispose();
          assert.ok(Math.abs(fd - g[idx]) < 2e-3 + 1e-2 * Math.abs(fd), `class ${c} element ${idx}: finite difference ${fd} vs gradient ${g[idx]}`);
        }
      }
    } finally {
      session.dispose();
      model.dispose();
    }
  });

  it('explains a layer inside a nested base model (transfer learning)', async () => {
    const bin = tfl.input({ shape: [6, 6, 3] });
    const c1 = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1' }).apply(bin) as tfl.SymbolicTensor;
    const c2 = tfl.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2' }).apply(c1) as tfl.SymbolicTensor;
    const base = tfl.model({ inputs: bin, outputs: c2, name: 'base' });
    // Keras transfer learning: inputs → base(inputs) → GAP → Dense.
    const oin = tfl.input({ shape: [6, 6, 3] });
    const feats = base.apply(oin) as tfl.SymbolicTensor;
    const pooled = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(feats) as tfl.SymbolicTensor;
    const outer = tfl.model({ inputs: oin, outputs: tfl.layers.dense({ units: 3, activation: 'softmax', name: 'head' }).apply(pooled) as tfl.SymbolicTensor });
    // The same network, flat, with the same weights.
    const fin = tfl.input({ shape: [6, 6, 3] });
    const f1 = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c1', weights: base.getLayer('c1').getWeights() }).apply(fin) as tfl.SymbolicTensor;
    const f2 = tfl.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2', weights: base.getLayer('c2').getWeights() }).apply(f1) as tfl.SymbolicTensor;
    const fg = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(f2) as tfl.SymbolicTensor;
    const fo = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'head', weights: outer.getLayer('head').getWeights() }).apply(fg) as tfl.SymbolicTensor;
    const flat = tfl.model({ inputs: fin, outputs: fo });
    const nested = await load(outer);
    const plain = await load(flat);
    const x = Float32Array.from({ length: 108 }, (_, i) => Math.cos(i * 0.37));
    const s1 = new ImageSession(nested, tf.tensor4d(x, [1, 6, 6, 3]));
    const s2 = new ImageSession(plain, tf.tensor4d(x, [1, 6, 6, 3]));
    try {
      const names = nested.graph.ops.map((o) => o.name);
      assert.ok(names.includes('base/c1') && names.includes('base/c2'), names.join(','));
      assert.strictEqual(nested.graph.recommendedTarget().name, 'base/c2');
      for (const [ln, lf] of [['base/c1', 'c1'], ['base/c2', 'c2']]) {
        for (const m of ['gradcam', 'layercam']) {
          const a = await s1.explain({ method: m, layer: ln, classChoice: 1 });
          const b = await s2.explain({ method: m, layer: lf, classChoice: 1 });
          assertClose(a.heatmap.values, b.heatmap.values, 1e-4, `${m} at ${ln}`);
        }
      }
      const cam1 = await s1.explain({ method: 'cam', classChoice: 2 });
      const cam2 = await s2.explain({ method: 'cam', classChoice: 2 });
      assertClose(cam1.heatmap.values, cam2.heatmap.values, 1e-4, 'cam nested');
    } finally {
      s1.dispose();
      s2.dispose();
      nested.dispose();
      plain.dispose();
    }
  });
});

describe('CAM methods: contract table', () => {
  let model: LoadedModel;
  let input: Float32Array;
  before(async () => {
    await initBackend('cpu');
    model = await load(bnModel(), ['a', 'b', 'c', 'd', 'e']);
    input = Float32Array.from({ length: 16 * 16 * 3 }, (_, i) => ((i * 7919) % 255) / 255);
  });
  after(() => model.dispose());

  // Class activation maps; the pixel saliency methods' contract is in test/engine/saliency.test.ts.
  for (const m of METHODS.filter((x) => x.group !== 'pixel')) {
    for (const layer of ['r1', 'res']) {
      it(`${m.id} at ${layer}: shape, range [0,1], no NaN, input unchanged, no tensor growth over 20 runs`, async () => {
        const x = tf.tensor4d(input, [1, 16, 16, 3]);
        const before = tf.memory().numTensors;
        for (let i = 0; i < 20; i++) {
          const s = new ImageSession(model, tf.clone(x));
          try {
            if (m.id === 'cam' && layer === 'r1') {
              // CAM is defined only where GAP→linear follows the target: r1 is followed by a depthwise block.
              await assert.rejects(s.explain({ method: m.id, layer, classChoice: i % 5 }),
                (e: unknown) => e instanceof CamLensError && e.code === 'METHOD_NOT_APPLICABLE' && /global average pooling then a linear classifier/.test(e.message));
              continue;
            }
            const r = await s.explain({ method: m.id, layer, classChoice: i % 5 });
            // A layer's 8 x 8 map, or pixel saliency at the 16 x 16 input (RGB maps are checked in saliency.test.ts).
            const side = m.group === 'pixel' ? 16 : 8;
            assert.strictEqual(r.heatmap.width, side);
            assert.strictEqual(r.heatmap.height, side);
            assert.ok(r.heatmap.values.length === side * side || r.heatmap.values.length === side * side * 3, `${r.heatmap.values.length} values`);
            const lo = r.heatmap.signed ? -1 : 0; // signed pixel maps: [-1, 1], 0 = no attribution
            for (const v of r.heatmap.values) assert.ok(Number.isFinite(v) && v >= lo && v <= 1, `value ${v}`);
            assert.ok(r.heatmap.rawMax >= r.heatmap.rawMin);
          } finally {
            s.dispose();
          }
        }
        assert.deepStrictEqual(Array.from(await x.data()), Array.from(input), 'input unchanged');
        assert.strictEqual(tf.memory().numTensors, before, 'tensor count after 20 runs');
        x.dispose();
      });
    }
  }

  it('the BN-folded graph computes what the unfolded model computes', async () => {
    const written = await writeModel(model.tfModel, path.join(tempDir(), 'copy'));
    const unfolded = await loadModel(written.modelJson, { foldBatchNorm: false });
    try {
      assert.ok(model.graph.foldedOps.length < model.graph.ops.length, 'something was folded');
      assert.strictEqual(unfolded.graph.foldedOps.length, unfolded.graph.ops.length);
      const a = new ImageSession(model, tf.tensor4d(input, [1, 16, 16, 3]));
      const b = new ImageSession(unfolded, tf.tensor4d(input, [1, 16, 16, 3]));
      const pred = model.tfModel.predict(tf.tensor4d(input, [1, 16, 16, 3])) as tf.Tensor;
      assertClose(await a.probabilities(), await pred.data(), 1e-5, 'folded vs model.predict');
      pred.dispose();
      assertClose(await a.logits(), await b.logits(), 1e-4, 'folded vs unfolded logits');
      // ReLU and ReLU6 after the folded convolutions run inside the fused kernels.
      const fusedActs = model.graph.foldedOps.flatMap((op) => ('fused' in op && op.fused?.activation ? [`${op.fused.fusedActivation}:${op.fused.activation}`] : []));
      assert.deepStrictEqual(fusedActs, ['r1:relu', 'r2:relu6']);
      for (const layer of ['r1', 'r2', 'res', 'c1', 'bn1', 'bn2']) {
        const ra = await a.explain({ method: 'gradcam', layer, classChoice: 2 });
        const rb = await b.explain({ method: 'gradcam', layer, classChoice: 2 });
        assertClose(ra.heatmap.values, rb.heatmap.values, 1e-3, `gradcam at ${layer}`);
      }
      a.dispose();
      b.dispose();
    } finally {
      unfolded.dispose();
    }
  });

  it('folds BatchNormalization into convolutions that have biases of their own, as the unfolded model computes', async () => {
    const biased = await load(bnModel({ bias: true }), ['a', 'b', 'c', 'd', 'e']);
    const unfolded = await loadModel(biased.path, { foldBatchNorm: false });
    try {
      const folded = biased.graph.foldedOps.flatMap((op) => ('fused' in op && op.fused?.foldedBn ? [`${op.name}+${op.fused.foldedBn}`] : []));
      assert.deepStrictEqual(folded, ['c1+bn1', 'dw+bn2']);
      const x = tf.tensor4d(input, [1, 16, 16, 3]);
      const pred = biased.tfModel.predict(x) as tf.Tensor;
      const a = new ImageSession(biased, tf.clone(x));
      const b = new ImageSession(unfolded, tf.clone(x));
      try {
        assertClose(await a.probabilities(), await pred.data(), 1e-5, 'folded vs model.predict');
        assertClose(await a.logits(), await b.logits(), 1e-4, 'folded vs unfolded logits');
        for (const layer of ['r1', 'r2', 'res', 'bn1', 'bn2']) {
          const ra = await a.explain({ method: 'gradcam', layer, classChoice: 3 });
          const rb = await b.explain({ method: 'gradcam', layer, classChoice: 3 });
          assertClose(ra.heatmap.values, rb.heatmap.values, 1e-3, `gradcam at ${layer}`);
        }
      } finally {
        a.dispose();
        b.dispose();
        pred.dispose();
        x.dispose();
      }
    } finally {
      unfolded.dispose();
      biased.dispose();
    }
  });

  it('fuses a ReLU6 into a convolution without BatchNormalization, and keeps the pre-activation value reachable', async () => {
    const inp = tfl.input({ shape: [12, 12, 3] });
    const c = tfl.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', name: 'conv' }).apply(inp) as tfl.SymbolicTensor;
    const a = tfl.layers.activation({ activation: 'relu6', name: 'act' }).apply(c) as tfl.SymbolicTensor;
    const dw = tfl.layers.depthwiseConv2d({ kernelSize: 3, padding: 'valid', name: 'dw' }).apply(a) as tfl.SymbolicTensor;
    const r = tfl.layers.reLU({ maxValue: 3, name: 'clip3' }).apply(dw) as tfl.SymbolicTensor;
    const g = tfl.layers.globalAveragePooling2d({}).apply(r) as tfl.SymbolicTensor;
    const o = tfl.layers.dense({ units: 4, activation: 'softmax' }).apply(g) as tfl.SymbolicTensor;
    const built = tfl.model({ inputs: inp, outputs: o });
    // Large enough inputs and weights that the clamps at 0 and 6 both bite.
    tf.tidy(() => built.getLayer('conv').setWeights(built.getLayer('conv').getWeights().map((w) => tf.mul(w, 8))));
    const written = await writeModel(built, path.join(tempDir(), 'plain'), { labels: ['a', 'b', 'c', 'd'], inputSize: [12, 12] });
    const fast = await loadModel(written.modelJson);
    const slow = await loadModel(written.modelJson, { foldBatchNorm: false });
    const x = tf.tensor4d(Float32Array.from({ length: 432 }, (_, i) => Math.sin(i * 0.37) * 2), [1, 12, 12, 3]);
    try {
      const conv = fast.graph.foldedOps.find((op) => op.name === 'conv') as { fused?: { activation?: string; foldedBn?: string } };
      assert.strictEqual(conv.fused?.activation, 'relu6');
      assert.strictEqual(conv.fused?.foldedBn, undefined);
      // ReLU with max_value 3 has no fused kernel: it stays a layer of its own.
      assert.ok(fast.graph.foldedOps.some((op) => op.name === 'clip3'));
      const act = (built.getLayer('act').apply(built.getLayer('conv').apply(x)) as tf.Tensor).dataSync();
      assert.ok(act.some((v) => v === 6) && act.some((v) => v === 0), 'both clamps are exercised');
      const sf = new ImageSession(fast, tf.clone(x) as tf.Tensor4D);
      const ss = new ImageSession(slow, tf.clone(x) as tf.Tensor4D);
      try {
        assertClose(await sf.logits(), await ss.logits(), 1e-4, 'fused vs unfused logits');
        for (const layer of ['conv', 'act', 'dw', 'clip3']) {
          const rf = await sf.explain({ method: 'gradcam', layer, classChoice: 1 });
          const rs = await ss.explain({ method: 'gradcam', layer, classChoice: 1 });
          assertClose(rf.heatmap.values, rs.heatmap.values, 1e-3, `gradcam at ${layer}`);
        }
        assertClose(sf.activation('act').dataSync(), act, 1e-4, 'the fused op computes the activation layer');
      } finally {
        sf.dispose();
        ss.dispose();
      }
    } finally {
      x.dispose();
      fast.dispose();
      slow.dispose();
      built.dispose();
    }
  });

  it('names the layer and suggests another when the target is not spatial', async () => {
    const s = new ImageSession(model, tf.tensor4d(input, [1, 16, 16, 3]));
    try {
      await assert.rejects(s.explain({ method: 'gradcam', layer: 'gap' }), /layer "gap" \(GlobalAveragePooling2D\).*not a spatial feature map/);
      await assert.rejects(s.explain({ method: 'gradcam', layer: 'nope' }), /no layer named "nope"/);
      await assert.rejects(s.explain({ method: 'bogus' }), /unknown method "bogus"/);
    } finally {
      s.dispose();
    }
  });
});
