/**
 * Issue #15 items 3-5 beyond the golden table of methods.test.ts: Ablation-CAM's budget and its weights against
 * an independently ablated model, eigenSmooth and augSmooth where they must leave a map unchanged, several
 * target layers averaged by hand, the contract table for every CAM method with each option, clear errors, and
 * the bundled demo model on cpu and wasm.
 */
import * as assert from 'assert';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession } from '../../src/extension/engine/session';
import { openImage } from '../../src/extension/engine/pipeline';
import { METHODS, methodParams } from '../../src/extension/engine/cam/registry';
import { CAM_OPTIONS, type CamContext } from '../../src/extension/engine/cam/base';
import { findClassHead } from '../../src/extension/engine/head';
import { ablationCamWeights } from '../../src/extension/engine/cam/ablationcam';
import { addMappedBack, augmentInput, explainCombined, type Augmentation } from '../../src/extension/engine/cam/combine';
import { CamLensError } from '../../src/extension/engine/errors';
import * as fs from 'fs';
import { SHARED, requireShared, tempDir, writeModel } from '../helpers/modelFiles';
import { bnModel } from '../helpers/models';

const ROOT = path.resolve(__dirname, '..', '..');
const CAM_METHODS = METHODS.filter((m) => m.group === 'cam');

async function load(m: tfl.LayersModel, labels?: string[]): Promise<LoadedModel> {
  const written = await writeModel(m, path.join(tempDir(), 'model'), labels ? { labels } : undefined);
  m.dispose();
  return loadModel(written.modelJson);
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.strictEqual(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

function normalize(m: ArrayLike<number>): number[] {
  const r = Array.from(m, (v) => Math.max(v, 0));
  const min = Math.min(...r);
  const max = Math.max(...r);
  return r.map((v) => (v - min) / (max - min + 1e-7));
}

function isCode(code: string, re?: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof CamLensError, `a CamLensError, got ${String(e)}`);
    assert.strictEqual(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  };
}

/**
 * 6x6x3 input → 'target' conv3x3 relu (4 ch) → 'branch' conv → add(target, branch) → tanh → GAP → dense(3),
 * linear: the model's output is the logits, so Ablation-CAM's scores can be read off model.predict.
 */
function branchModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [6, 6, 3], name: 'img' });
  const target = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'target', biasInitializer: 'ones' }).apply(input) as tfl.SymbolicTensor;
  const branch = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'branch' }).apply(target) as tfl.SymbolicTensor;
  const merged = tfl.layers.add({ name: 'merge' }).apply([target, branch]) as tfl.SymbolicTensor;
  const act = tfl.layers.activation({ activation: 'tanh', name: 'act' }).apply(merged) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(act) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, name: 'fc' }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

describe('Ablation-CAM', () => {
  before(async () => {
    await initBackend('cpu');
  });

  it('weights are the relative logit drops of the model with each channel zeroed (checked on the model itself, through a branch and merge)', async () => {
    const tm = branchModel();
    const x = tf.tensor4d(Float32Array.from({ length: 108 }, (_, i) => Math.sin(i * 0.41) * 0.9), [1, 6, 6, 3]);
    // The layers model with target channel k zeroed: its kernel and bias for k set to 0 (ReLU(0) = 0).
    // Copies: getWeights returns the variables' own tensors, which setWeights replaces.
    const [kernel, bias] = tm.getLayer('target').getWeights().map((t) => tf.clone(t));
    const logitsWith = (k: number | undefined): Float32Array => tf.tidy(() => {
      const mask = tf.tensor1d([0, 1, 2, 3].map((j) => (j === k ? 0 : 1)));
      tm.getLayer('target').setWeights([tf.mul(kernel, mask), tf.mul(bias, mask)]);
      return (tm.predict(x) as tf.Tensor).dataSync() as Float32Array;
    });
    const full = logitsWith(undefined);
    const ablated = [0, 1, 2, 3].map((k) => logitsWith(k));
    tm.getLayer('target').setWeights([kernel, bias]);
    const model = await load(tm);
    const session = new ImageSession(model, tf.clone(x));
    try {
      const activation = session.activation('target');
      const op = session.targetOp('target');
      for (const c of [0, 2]) {
        const ctx: CamContext = { activation, classIndex: c, scoreActivations: (a) => session.scoreActivations(op, a, c), options: { channels: 'all', batchSize: 3 } };
        const w = await ablationCamWeights(ctx);
        const expected = ablated.map((l) => (full[c] - l[c]) / Math.abs(full[c]));
        assertClose(w, expected, 1e-4, `weights class ${c}`);
        // The map: ReLU(sum_k w_k A_k), normalised.
        const a = await activation.data();
        const hand = normalize(Array.from({ length: 36 }, (_, p) => expected.reduce((s, wk, k) => s + wk * a[p * 4 + k], 0)));
        const r = await session.explain({ method: 'ablationcam', layer: 'target', classChoice: c, options: { channels: 'all' } });
        assertClose(r.heatmap.values, hand, 1e-4, `map class ${c}`);
        assert.match(r.heatmap.details?.note ?? '', /all 4 channels/);
      }
    } finally {
      session.dispose();
      model.dispose();
      x.dispose();
      kernel.dispose();
      bias.dispose();
    }
  });

  it('respects the channel budget (the top channels by mean, the others weight 0), and the budget equals the full method when K <= budget', async () => {
    const model = await load(bnModel(), ['a', 'b', 'c', 'd', 'e']);
    const x = Float32Array.from({ length: 16 * 16 * 3 }, (_, i) => ((i * 7919) % 255) / 255);
    const session = new ImageSession(model, tf.tensor4d(x, [1, 16, 16, 3]));
    try {
      const activation = session.activation('res');
      const op = session.targetOp('res');
      const ctx = (options: Record<string, unknown>, onProgress?: (d: number, t: number) => void): CamContext =>
        ({ activation, classIndex: 1, scoreActivations: (a) => session.scoreActivations(op, a, 1), options, onProgress });
      const all = await ablationCamWeights(ctx({ channels: 0 }));
      const progress: Array<[number, number]> = [];
      const c3 = ctx({ channels: 3, batchSize: 2 }, (d, t) => progress.push([d, t]));
      const top3 = await ablationCamWeights(c3);
      // The three channels of largest mean activation.
      const a = await activation.data();
      const means = Array.from({ length: 8 }, (_, k) => Array.from({ length: 64 }, (_, p) => a[p * 8 + k]).reduce((s, v) => s + v, 0) / 64);
      const chosen = [...means.keys()].sort((i, j) => means[j] - means[i]).slice(0, 3).sort((i, j) => i - j);
      for (let k = 0; k < 8; k++) {
        if (chosen.includes(k)) assert.ok(Math.abs(top3[k] - all[k]) < 1e-6, `channel ${k}: ${top3[k]} vs ${all[k]}`);
        else assert.strictEqual(top3[k], 0, `channel ${k} not scored`);
      }
      assert.deepStrictEqual(c3.details?.channels && { scored: c3.details.channels.scored, total: c3.details.channels.total, by: c3.details.channels.by }, { scored: 3, total: 8, by: 'mean' });
      assert.strictEqual(c3.details?.note, 'top 3 of 8 channels by mean activation');
      assert.deepStrictEqual(progress, [[0, 3], [2, 3], [3, 3]], 'progress per batch of 2');
      // 8 channels, default budget 32: the full method.
      const byDefault = await session.explain({ method: 'ablationcam', layer: 'res', classChoice: 1 });
      const full = await session.explain({ method: 'ablationcam', layer: 'res', classChoice: 1, options: { channels: 'all' } });
      assert.deepStrictEqual(Array.from(byDefault.heatmap.values), Array.from(full.heatmap.values));
      assert.strictEqual(byDefault.heatmap.details?.channels?.scored, full.heatmap.details?.channels?.scored);
      const budget = await session.explain({ method: 'ablationcam', layer: 'res', classChoice: 1, options: { channels: 3 } });
      assert.strictEqual(budget.heatmap.details?.channels?.scored, 3);
    } finally {
      session.dispose();
      model.dispose();
    }
  });

  it('on the reference MobileNet, where the layers after conv_pw_13_relu are linear (GAP, 1x1 conv), the weights are W[k, c] mean(A_k) / |y_c|', async function () {
    requireShared(this);
    this.timeout(300000);
    const labels = JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
    const model = await loadModel(path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json'), { overrides: { labels, preprocess: '[-1,1]' } });
    const { session } = await openImage(model, path.join(SHARED, 'images', 'pgc_both_cat_dog.png'));
    try {
      const layer = 'conv_pw_13_relu';
      const op = session.targetOp(layer);
      const activation = session.activation(layer);
      const [top] = await session.predictions(1);
      const c = top.index + model.metadata.labelOffset;
      const head = findClassHead(model, op);
      const wc = tf.tidy(() => tf.reshape(tf.gather(head.weights as tf.Tensor2D, [c], 1), [-1]).dataSync() as Float32Array);
      const mean = tf.tidy(() => tf.mean(activation, [0, 1, 2]).dataSync() as Float32Array);
      const y = (await session.logits())[c];
      const ctx: CamContext = { activation, classIndex: c, scoreActivations: (a) => session.scoreActivations(op, a, c), options: { channels: 'all', batchSize: 32 } };
      const w = await ablationCamWeights(ctx);
      const expected = Array.from(mean, (m, k) => (wc[k] * m) / Math.abs(y));
      const scale = Math.max(...expected.map(Math.abs));
      assertClose(w, expected, 1e-3 * scale, 'weights');
      assert.strictEqual(ctx.details?.channels?.scored, ctx.details?.channels?.usable);
    } finally {
      session.dispose();
      model.dispose();
    }
  });

  it('stops within a batch when cancelled, and refuses bad options clearly', async () => {
    const model = await load(bnModel(), ['a', 'b', 'c', 'd', 'e']);
    const session = new ImageSession(model, tf.tensor4d(Float32Array.from({ length: 768 }, (_, i) => (i % 17) / 17), [1, 16, 16, 3]));
    try {
      const ac = new AbortController();
      let calls = 0;
      await assert.rejects(session.explain({
        method: 'ablationcam', layer: 'res', signal: ac.signal, options: { batchSize: 1, channels: 'all' },
        onProgress: (done) => {
          calls++;
          if (done >= 1) ac.abort();
        },
      }), isCode('CANCELLED', /Ablation-CAM was cancelled/));
      assert.ok(calls <= 3, `${calls} progress calls`);
      for (const [options, re] of [
        [{ channels: -1 }, /Ablation-CAM option channels must be an integer from 0/],
        [{ channels: 'some' }, /option channels/],
        [{ batchSize: 0 }, /Ablation-CAM option batchSize must be an integer from 1 to 1024/],
        [{ rankChannelsBy: 'max' }, /rankChannelsBy must be one of mean, std/],
      ] as const) {
        await assert.rejects(session.explain({ method: 'ablationcam', layer: 'res', options }), isCode('BAD_ARGUMENT', re));
      }
    } finally {
      session.dispose();
      model.dispose();
    }
  });
});

/**
 * A horizontally symmetric model: input H x W x 3 → 'feat' 1x1 conv (A = x_0 * s, rank one: channel k is the
 * input's channel 0 times s_k) → optional square → GAP → dense. Every map is a function of the pixel alone, so
 * a horizontally symmetric image gives a symmetric map.
 */
const S = [0.5, 1.5, -0.25];
const FC = [[1.0, -0.5], [0.75, 1.25], [-0.5, 0.3]];
function rankOneModel(h: number, w: number, square: boolean): tfl.LayersModel {
  const input = tfl.input({ shape: [h, w, 3], name: 'img' });
  const kernel = tf.tensor4d([...S, 0, 0, 0, 0, 0, 0], [1, 1, 3, 3]);
  const feat = tfl.layers.conv2d({ filters: 3, kernelSize: 1, useBias: false, name: 'feat', weights: [kernel] }).apply(input) as tfl.SymbolicTensor;
  const body = square ? (tfl.layers.multiply({ name: 'square' }).apply([feat, feat]) as tfl.SymbolicTensor) : feat;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(body) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 2, activation: 'softmax', name: 'fc', weights: [tf.tensor2d(FC), tf.tensor1d([0.1, -0.1])] }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** An image whose channel 0 is `u` (row-major h x w) and the others noise the model ignores. */
function imageOf(u: number[], h: number, w: number): tf.Tensor4D {
  const x = new Float32Array(h * w * 3);
  for (let p = 0; p < h * w; p++) {
    x[p * 3] = u[p];
    x[p * 3 + 1] = Math.sin(p);
    x[p * 3 + 2] = Math.cos(p * 3);
  }
  return tf.tensor4d(x, [1, h, w, 3]);
}

describe('eigenSmooth', () => {
  before(async () => {
    await initBackend('cpu');
  });

  it('leaves the map unchanged where the weighted activations are rank one with two values (an object mask), for every method it applies to', async () => {
    const [h, w] = [5, 6];
    const u = Array.from({ length: h * w }, (_, p) => (Math.floor(p / w) >= 1 && Math.floor(p / w) <= 3 && p % w >= 2 ? 1.5 : 0.25));
    for (const square of [false, true]) {
      const model = await load(rankOneModel(h, w, square));
      const session = new ImageSession(model, imageOf(u, h, w));
      try {
        let checked = 0;
        for (const m of CAM_METHODS) {
          if (!m.weightedActivations || (m.id === 'cam' && square)) continue;
          for (const c of [0, 1]) {
            const plain = await session.explain({ method: m.id, layer: 'feat', classChoice: c });
            const smooth = await session.explain({ method: m.id, layer: 'feat', classChoice: c, options: { eigenSmooth: true } });
            assert.strictEqual(smooth.heatmap.width, w);
            assertClose(smooth.heatmap.values, plain.heatmap.values, 1e-4, `${m.id} class ${c}${square ? ' squared' : ''}`);
            assert.match(smooth.heatmap.details?.note ?? '', /eigen-smoothed/);
            checked++;
          }
        }
        assert.ok(checked >= 16, `${checked} maps checked`);
      } finally {
        session.dispose();
        model.dispose();
      }
    }
  });

  it('is the centred rank-one factor for a rank-one map of many values: ReLU(u - mean u), normalised (by hand)', async () => {
    const [h, w] = [4, 5];
    const u = Array.from({ length: h * w }, (_, p) => 0.2 + 0.1 * ((p * 7) % 11));
    const model = await load(rankOneModel(h, w, false));
    const session = new ImageSession(model, imageOf(u, h, w));
    try {
      // Grad-CAM's weighted activations w_k s_k u(p): rank one; the sign follows sum_k w_k s_k.
      for (const c of [0, 1]) {
        const ws = S.reduce((acc, s, k) => acc + s * FC[k][c], 0);
        const mean = u.reduce((a, b) => a + b, 0) / u.length;
        const expected = normalize(u.map((v) => (v - mean) * Math.sign(ws)));
        const r = await session.explain({ method: 'gradcam', layer: 'feat', classChoice: c, options: { eigenSmooth: true } });
        assertClose(r.heatmap.values, expected, 1e-4, `class ${c}`);
      }
    } finally {
      session.dispose();
      model.dispose();
    }
  });
});

describe('augSmooth', () => {
  before(async () => {
    await initBackend('cpu');
  });

  /** A horizontally symmetric u: a blob centred left-right. */
  const symmetric = (h: number, w: number) => Array.from({ length: h * w }, (_, p) => {
    const y = Math.floor(p / w);
    const x = p % w;
    return 0.2 + Math.exp(-((x - (w - 1) / 2) ** 2) / 4 - ((y - 2) ** 2) / 3);
  });

  it('a flip leaves the map of a horizontally symmetric model and image unchanged', async () => {
    const [h, w] = [6, 8];
    const model = await load(rankOneModel(h, w, true));
    const session = new ImageSession(model, imageOf(symmetric(h, w), h, w));
    const flips: Augmentation[] = [{ flip: false, scale: 1 }, { flip: true, scale: 1 }];
    try {
      for (const m of CAM_METHODS) {
        if (m.id === 'cam') continue;
        const plain = await session.explain({ method: m.id, layer: 'feat', classChoice: 1 });
        const smooth = await explainCombined(session, { method: m.id, layer: 'feat', classChoice: 1, options: { augSmooth: true } },
          (input) => new ImageSession(model, input), flips);
        assert.strictEqual(smooth.heatmap.width, w);
        assert.strictEqual(smooth.heatmap.height, h);
        // The layer is at the input's resolution: mapping back is the identity.
        assertClose(smooth.heatmap.values, plain.heatmap.values, 1e-4, m.id);
      }
    } finally {
      session.dispose();
      model.dispose();
    }
  });

  it('maps a zoomed copy back to the image frame: a field linear in y comes back where the copy covers it, and only there', async () => {
    const [H, W] = [10, 7];
    const field = Array.from({ length: H * W }, (_, p) => 3 + 0.5 * Math.floor(p / W));
    const input = tf.tensor4d(field, [1, H, W, 1]);
    try {
      for (const a of [{ flip: false, scale: 1.2 }, { flip: true, scale: 1.1 }]) {
        const copy = await augmentInput(input, a);
        const data = await copy.data();
        copy.dispose();
        // Zoomed about the centre: the centre row's value stays, the slope grows by the scale.
        const sum = new Float64Array(H * W);
        const count = new Float64Array(H * W);
        addMappedBack(data, W, H, a, W, H, sum, count);
        let covered = 0;
        for (let p = 0; p < H * W; p++) {
          const [y, x] = [Math.floor(p / W), p % W];
          const Y = (y + 0.5 - H / 2) * a.scale + H / 2 - 0.5;
          const X = (x + 0.5 - W / 2) * a.scale + W / 2 - 0.5;
          const inside = Y >= -0.5 && Y <= H - 0.5 && X >= -0.5 && X <= W - 0.5;
          assert.strictEqual(count[p], inside ? 1 : 0, `coverage of ${y}, ${x}`);
          if (!inside) continue;
          // Interior rows (no clamping on either side) come back exactly.
          if (Y >= 0 && Y <= H - 1) {
            assert.ok(Math.abs(sum[p] - field[p]) < 1e-4, `row ${y}: ${sum[p]} vs ${field[p]}`);
            covered++;
          }
        }
        assert.ok(covered >= 6 * (W - 2), `${covered} pixels checked`);
      }
    } finally {
      input.dispose();
    }
  });

  it('averages six copies at the input size; a horizontally symmetric map stays symmetric and close to the plain one', async () => {
    const [h, w] = [8, 8];
    const model = await load(rankOneModel(h, w, false));
    const session = new ImageSession(model, imageOf(symmetric(h, w), h, w));
    try {
      const plain = await session.explain({ method: 'gradcam', layer: 'feat', classChoice: 0 });
      const r = await session.explain({ method: 'gradcam', layer: 'feat', classChoice: 0, options: { augSmooth: true } });
      assert.match(r.heatmap.details?.note ?? '', /aug-smoothed: mean of 6 copies/);
      const v = r.heatmap.values;
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) assert.ok(Math.abs(v[y * w + x] - v[y * w + w - 1 - x]) < 1e-5, `symmetric at ${y},${x}`);
      let dot = 0;
      let na = 0;
      let nb = 0;
      for (let i = 0; i < v.length; i++) {
        dot += v[i] * plain.heatmap.values[i];
        na += v[i] ** 2;
        nb += plain.heatmap.values[i] ** 2;
      }
      assert.ok(dot / Math.sqrt(na * nb) > 0.95, `cosine ${dot / Math.sqrt(na * nb)}`);
    } finally {
      session.dispose();
      model.dispose();
    }
  });
});

/** 4x4 input → 'feat' 1x1 conv (2 ch) → 'pool' 2x2 average pooling → GAP → dense: two layers of two sizes. */
function twoScaleModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [4, 4, 3], name: 'img' });
  const feat = tfl.layers.conv2d({ filters: 2, kernelSize: 1, useBias: false, name: 'feat', weights: [tf.tensor4d([1, 0.5, 0, 1, 0, 0], [1, 1, 3, 2])] }).apply(input) as tfl.SymbolicTensor;
  const pool = tfl.layers.averagePooling2d({ poolSize: 2, name: 'pool' }).apply(feat) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(pool) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 2, activation: 'softmax', name: 'fc', weights: [tf.tensor2d([[1, -1], [-0.5, 2]]), tf.tensor1d([0, 0])] }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

describe('several target layers', () => {
  before(async () => {
    await initBackend('cpu');
  });

  it('averages the layers\' maps brought to the input size (by hand: 2x2 → 4x4 with half-pixel centres), then normalises', async () => {
    const model = await load(twoScaleModel());
    const x = Float32Array.from({ length: 48 }, (_, i) => ((i * 37) % 13) / 13);
    const session = new ImageSession(model, tf.tensor4d(x, [1, 4, 4, 3]));
    try {
      for (const method of ['gradcam', 'hirescam', 'ablationcam']) {
        const f = await session.explain({ method, layer: 'feat', classChoice: 1 });
        const p = await session.explain({ method, layer: 'pool', classChoice: 1 });
        assert.strictEqual(p.heatmap.width, 2);
        // Half-pixel centres, 2 → 4: output o reads source o/2 - 1/4, clamped: weights of (v0, v1) per o.
        const taps = [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]];
        const pv = p.heatmap.values;
        const up = Array.from({ length: 16 }, (_, i) => {
          const [ty, tx] = [taps[Math.floor(i / 4)], taps[i % 4]];
          let s = 0;
          for (let a = 0; a < 2; a++) for (let b = 0; b < 2; b++) s += ty[a] * tx[b] * pv[a * 2 + b];
          return s;
        });
        const expected = normalize(up.map((v, i) => (v + f.heatmap.values[i]) / 2));
        const r = await session.explain({ method, layers: ['feat', 'pool'], classChoice: 1 });
        assert.deepStrictEqual(r.layers, ['feat', 'pool']);
        assert.strictEqual(r.layer, 'feat');
        assert.strictEqual(r.heatmap.width, 4);
        assertClose(r.heatmap.values, expected, 1e-5, method);
        assert.match(r.heatmap.details?.note ?? (method === 'ablationcam' ? '' : 'mean of 2 layers'), /mean of 2 layers/);
        // One layer in the list is that layer.
        const one = await session.explain({ method, layers: ['pool'], classChoice: 1 });
        assert.deepStrictEqual(Array.from(one.heatmap.values), Array.from(pv));
        assert.strictEqual(one.layers, undefined);
      }
    } finally {
      session.dispose();
      model.dispose();
    }
  });

  it('refuses an empty list, a repeated or unknown layer, and several layers for pixel saliency', async () => {
    const model = await load(twoScaleModel());
    const session = new ImageSession(model, tf.zeros([1, 4, 4, 3]));
    try {
      await assert.rejects(session.explain({ method: 'gradcam', layers: [] }), isCode('BAD_ARGUMENT', /at least one layer/));
      await assert.rejects(session.explain({ method: 'gradcam', layers: ['feat', 'feat'] }), isCode('BAD_ARGUMENT', /"feat" is listed twice/));
      await assert.rejects(session.explain({ method: 'gradcam', layers: ['feat', 'nope'] }), isCode('UNKNOWN_LAYER'));
      const pixel = METHODS.find((m) => m.group === 'pixel');
      if (pixel) await assert.rejects(session.explain({ method: pixel.id, layers: ['feat', 'pool'] }), isCode('METHOD_NOT_APPLICABLE', /several target layers apply to class activation maps/));
    } finally {
      session.dispose();
      model.dispose();
    }
  });
});

describe('CAM options: declared params and errors', () => {
  before(async () => {
    await initBackend('cpu');
  });

  it('every CAM method offers augSmooth, and eigenSmooth where it applies, after its own params; Score-CAM and Ablation-CAM their budget', () => {
    for (const m of METHODS) {
      const ids = methodParams(m).map((p) => p.id);
      if (m.group !== 'cam') assert.ok(!ids.includes('augSmooth') && !ids.includes('eigenSmooth'), m.id);
      else if (m.weightedActivations) assert.deepStrictEqual(ids.slice(-2), ['augSmooth', 'eigenSmooth'], m.id);
      else assert.deepStrictEqual(ids.slice(-1), ['augSmooth'], m.id);
    }
    assert.deepStrictEqual(CAM_METHODS.filter((m) => !m.weightedActivations).map((m) => m.id), ['eigencam', 'eigengradcam']);
    assert.ok(CAM_OPTIONS.every((p) => p.common && p.kind === 'boolean' && p.default === false));
    for (const id of ['scorecam', 'ablationcam']) {
      const budget = METHODS.find((m) => m.id === id)?.params?.find((p) => p.id === 'channels');
      assert.strictEqual(budget?.default, 32, id);
      assert.strictEqual(budget?.min, 0, id);
    }
  });

  it('says clearly where eigenSmooth does not apply, and refuses options that are not flags', async () => {
    const model = await load(twoScaleModel());
    const session = new ImageSession(model, tf.ones([1, 4, 4, 3]));
    try {
      for (const id of ['eigencam', 'eigengradcam']) {
        await assert.rejects(session.explain({ method: id, layer: 'feat', options: { eigenSmooth: true } }),
          isCode('METHOD_NOT_APPLICABLE', /eigenSmooth does not apply to Eigen-(Grad-)?CAM.*already is their first principal component/));
      }
      await assert.rejects(session.explain({ method: 'gradcam', layer: 'feat', options: { augSmooth: 'yes' } }), isCode('BAD_ARGUMENT', /option augSmooth must be true or false/));
      await assert.rejects(session.explain({ method: 'gradcam', layer: 'feat', options: { eigenSmooth: 1 } }), isCode('BAD_ARGUMENT', /option eigenSmooth must be true or false/));
      const pixel = METHODS.find((m) => m.group === 'pixel');
      if (pixel) await assert.rejects(session.explain({ method: pixel.id, options: { augSmooth: true } }), isCode('METHOD_NOT_APPLICABLE', /augSmooth applies to class activation maps/));
    } finally {
      session.dispose();
      model.dispose();
    }
  });
});

for (const backend of ['cpu', 'wasm'] as const) describe(`CAM methods and options: contract table (${backend})`, () => {
  let model: LoadedModel;
  let input: Float32Array;
  before(async () => {
    await initBackend(backend);
    model = await load(bnModel(), ['a', 'b', 'c', 'd', 'e']);
    input = Float32Array.from({ length: 16 * 16 * 3 }, (_, i) => ((i * 7919) % 255) / 255);
  });
  after(async () => {
    model.dispose();
    await initBackend('cpu');
  });

  const cases: Array<{ name: string; layers?: string[]; options: Record<string, unknown>; side: number }> = [
    // The new methods' defaults on wasm (cpu: methods.test.ts' table).
    ...(backend === 'wasm' ? [{ name: 'defaults', options: {}, side: 8 }] : []),
    { name: 'eigenSmooth', options: { eigenSmooth: true }, side: 8 },
    { name: 'augSmooth', options: { augSmooth: true }, side: 16 },
    { name: 'layers r1+res', layers: ['r1', 'res'], options: {}, side: 16 },
    { name: 'layers + both smoothings', layers: ['r2', 'res'], options: { augSmooth: true, eigenSmooth: true }, side: 16 },
  ];
  for (const m of CAM_METHODS) {
    for (const c of cases) {
      const runs = c.options.augSmooth ? 4 : 20;
      it(`${backend}: ${m.id} with ${c.name}: shape, range [0,1], no NaN, input unchanged, no tensor growth over ${runs} runs`, async function () {
        if (c.options.augSmooth) this.timeout(240000);
        const x = tf.tensor4d(input, [1, 16, 16, 3]);
        const before = tf.memory().numTensors;
        for (let i = 0; i < runs; i++) {
          const s = new ImageSession(model, tf.clone(x));
          try {
            const req = { method: m.id, layer: c.layers ? undefined : 'res', layers: c.layers, classChoice: i % 5, options: c.options };
            if ((m.id === 'cam' && (c.layers?.includes('r1') || c.layers?.includes('r2'))) || (c.options.eigenSmooth && !m.weightedActivations)) {
              await assert.rejects(s.explain(req), (e: unknown) => e instanceof CamLensError && e.code === 'METHOD_NOT_APPLICABLE');
              continue;
            }
            const r = await s.explain(req);
            assert.strictEqual(r.heatmap.width, c.side);
            assert.strictEqual(r.heatmap.height, c.side);
            assert.strictEqual(r.heatmap.values.length, c.side * c.side);
            for (const v of r.heatmap.values) assert.ok(Number.isFinite(v) && v >= 0 && v <= 1, `value ${v}`);
            assert.ok(r.heatmap.rawMax >= r.heatmap.rawMin);
            if (c.layers) assert.deepStrictEqual(r.layers, c.layers);
          } finally {
            s.dispose();
          }
        }
        assert.deepStrictEqual(Array.from(await x.data()), Array.from(input), 'input unchanged');
        assert.strictEqual(tf.memory().numTensors, before, `tensor count after ${runs} runs`);
        x.dispose();
      });
    }
  }
});

describe('the new methods and options on the bundled demo model, cpu and wasm', () => {
  const requests: Array<{ method: string; options?: Record<string, unknown>; layers?: boolean }> = [
    { method: 'ablationcam' },
    { method: 'eigengradcam' },
    { method: 'gradcamelementwise' },
    { method: 'gradcam', options: { eigenSmooth: true } },
    { method: 'gradcam', options: { augSmooth: true } },
    { method: 'layercam', layers: true },
  ];
  const maps = new Map<string, Map<string, Float32Array>>();
  for (const backend of ['cpu', 'wasm']) {
    it(`${backend}: every new method and option gives a non-empty map in [0,1]`, async function () {
      this.timeout(300000);
      await initBackend(backend as 'cpu' | 'wasm');
      const model = await loadModel(path.join(ROOT, 'models', 'demo', 'model.json'));
      const { session } = await openImage(model, path.join(ROOT, 'samples', 'star', 'star_00.png'));
      const got = new Map<string, Float32Array>();
      try {
        const layerNames = model.graph.ops.filter((o) => o.outputShape.length === 4 && o.className !== 'InputLayer').map((o) => o.name);
        for (const r of requests) {
          const key = `${r.method} ${JSON.stringify(r.options ?? {})}${r.layers ? ' layers' : ''}`;
          const res = await session.explain({ method: r.method, classChoice: 'star', options: r.options, layers: r.layers ? layerNames.slice(-4).filter((n) => /relu/.test(n)) : undefined });
          for (const v of res.heatmap.values) assert.ok(Number.isFinite(v) && v >= 0 && v <= 1, `${key}: value ${v}`);
          assert.ok(res.heatmap.rawMax > 0, `${key}: an empty map`);
          got.set(key, res.heatmap.values);
        }
      } finally {
        session.dispose();
        model.dispose();
      }
      maps.set(backend, got);
    });
  }
  it('cpu and wasm agree', () => {
    const [cpu, wasm] = [maps.get('cpu'), maps.get('wasm')];
    assert.ok(cpu && wasm, 'both backends computed their maps (a test above failed where one did not)');
    for (const [key, a] of cpu as Map<string, Float32Array>) {
      const b = (wasm as Map<string, Float32Array>).get(key) as Float32Array;
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      assert.ok(worst < 2e-3, `${key}: cpu and wasm differ by ${worst}`);
    }
  });
  after(async () => {
    await initBackend('cpu');
  });
});
