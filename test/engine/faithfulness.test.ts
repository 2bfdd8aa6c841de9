/**
 * Faithfulness scores on a synthetic model whose answer is known: the class logit is a weighted sum of the
 * pixels of one square "object", so a map on the object must beat its inverse on every score, and points of
 * the curves and the Average Drop can be computed by hand.
 */
import * as assert from 'assert';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession } from '../../src/extension/engine/session';
import { CancelledError } from '../../src/extension/engine/errors';
import { defaultBlur, deletionScores, faithfulness, gaussianBlur, pixelRanks, randomMap, trapezoidAuc, type MapLike } from '../../src/extension/engine/faithfulness';
import { ScorePool } from '../../src/extension/engine/scorePool';
import { upsampleBilinear } from '../../src/shared/heatmap';
import { tempDir, writeModel } from '../helpers/modelFiles';

const S = 24;
/** The object: rows and columns 4..11. */
const inObject = (p: number) => {
  const y = Math.floor(p / S);
  const x = p % S;
  return y >= 4 && y < 12 && x >= 4 && x < 12;
};
const ALPHA = 12;
const BETA = 6;
const BLUR = { kernel: 15, sigma: 6 };

/** logit_0 = ALPHA * mean over the object's pixels and channels - BETA; logit_1 = 0. */
function objectModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [S, S, 3], name: 'img' });
  const flat = tfl.layers.flatten({ name: 'flat' }).apply(input) as tfl.SymbolicTensor;
  const w = new Float32Array(S * S * 3 * 2);
  for (let p = 0; p < S * S; p++) if (inObject(p)) for (let c = 0; c < 3; c++) w[(p * 3 + c) * 2] = ALPHA / (64 * 3);
  const out = tfl.layers.dense({ units: 2, activation: 'softmax', name: 'fc', weights: [tf.tensor2d(w, [S * S * 3, 2]), tf.tensor1d([-BETA, 0])] }).apply(flat) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

const IMAGE = Float32Array.from({ length: S * S * 3 }, (_, i) => (inObject(Math.floor(i / 3)) ? 1 : 0));

/** Class-0 probability by hand for an input [S*S*3]. */
function prob0(x: ArrayLike<number>): number {
  let m = 0;
  for (let p = 0; p < S * S; p++) if (inObject(p)) for (let c = 0; c < 3; c++) m += x[p * 3 + c] / (64 * 3);
  return 1 / (1 + Math.exp(-(ALPHA * m - BETA)));
}

/** A 6x6 map, 1 on the object's cells (4x4-pixel cells 1..2). */
const OBJECT_CELLS = Float32Array.from({ length: 36 }, (_, i) => (Math.floor(i / 6) >= 1 && Math.floor(i / 6) <= 2 && i % 6 >= 1 && i % 6 <= 2 ? 1 : 0));
const OBJECT_MAP: MapLike = { width: 6, height: 6, values: OBJECT_CELLS };
const INVERSE_MAP: MapLike = { width: 6, height: 6, values: OBJECT_CELLS.map((v) => 1 - v) };

describe('faithfulness scores', () => {
  let model: LoadedModel;
  let modelJson: string;
  before(async () => {
    await initBackend('cpu');
    const m = objectModel();
    modelJson = (await writeModel(m, path.join(tempDir(), 'object'))).modelJson;
    m.dispose();
    model = await loadModel(modelJson);
  });
  after(() => model?.dispose());
  const session = () => new ImageSession(model, tf.tensor4d(IMAGE, [1, S, S, 3]));

  it('trapezoid AUC over [0, 1]', () => {
    assert.strictEqual(trapezoidAuc([1, 0]), 0.5);
    assert.strictEqual(trapezoidAuc([1, 1, 1]), 1);
    assert.strictEqual(trapezoidAuc([0, 0.5, 1]), 0.5);
    assert.ok(Math.abs(trapezoidAuc([1, 0.2, 0, 0]) - (0.6 + 0.1 + 0) / 3) < 1e-12);
  });

  it('ranks pixels by the upsampled map, most salient first, ties in raster order', () => {
    assert.deepStrictEqual(Array.from(pixelRanks({ width: 2, height: 2, values: [0.1, 0.9, 0.5, 0.9] }, 2, 2)), [3, 0, 2, 1]);
    const up = upsampleBilinear(OBJECT_MAP.values, 6, 6, S, S);
    const r = pixelRanks(OBJECT_MAP, S, S);
    let top = 0;
    for (let p = 0; p < S * S; p++) if (r[p] === 0) top = p;
    assert.strictEqual(up[top], Math.max(...up));
  });

  it('blurs with a normalised Gaussian, mirrored at the borders', () => {
    const flat = tf.fill([1, 9, 9, 3], 0.7) as tf.Tensor4D;
    const b = gaussianBlur(flat, 5, 1.5);
    const v = b.dataSync();
    assert.ok(Array.from(v).every((x) => Math.abs(x - 0.7) < 1e-6), 'a constant image is unchanged');
    const imp = new Float32Array(9 * 9 * 3);
    imp[(4 * 9 + 4) * 3 + 1] = 1;
    const ti = tf.tensor4d(imp, [1, 9, 9, 3]);
    const bi = gaussianBlur(ti, 5, 1.5);
    const g = [-2, -1, 0, 1, 2].map((i) => Math.exp(-(i * i) / (2 * 1.5 * 1.5)));
    const g0 = g[2] / g.reduce((x, y) => x + y, 0);
    const out = bi.dataSync();
    assert.ok(Math.abs(out[(4 * 9 + 4) * 3 + 1] - g0 * g0) < 1e-6, 'centre tap squared');
    assert.strictEqual(out[(4 * 9 + 4) * 3], 0, 'channels are blurred separately');
    assert.ok(Math.abs(Array.from(out).reduce((x, y) => x + y, 0) - 1) < 1e-5, 'mass preserved');
    for (const t of [flat, b, ti, bi]) t.dispose();
    assert.deepStrictEqual(defaultBlur(224), { kernel: 11, sigma: 5 }, "RISE's blur at 224 pixels");
  });

  it('a seeded random map is reproducible and differs between seeds', () => {
    const a = randomMap(7, 5, 3);
    assert.deepStrictEqual(Array.from(randomMap(7, 5, 3).values), Array.from(a.values));
    assert.notDeepStrictEqual(Array.from(randomMap(7, 5, 4).values), Array.from(a.values));
    assert.ok(Array.from(a.values).every((v) => v >= 0 && v < 1));
  });

  it('a map on the object beats its inverse: lower deletion AUC, higher insertion AUC, lower Average Drop', async () => {
    const s = session();
    try {
      const on = await faithfulness(s, OBJECT_MAP, 0, { blur: BLUR });
      const off = await faithfulness(s, INVERSE_MAP, 0, { blur: BLUR });
      assert.ok(on.map.deletion.auc < off.map.deletion.auc - 0.3, `deletion ${on.map.deletion.auc} vs ${off.map.deletion.auc}`);
      assert.ok(on.map.insertion.auc > off.map.insertion.auc + 0.3, `insertion ${on.map.insertion.auc} vs ${off.map.insertion.auc}`);
      assert.ok(on.map.averageDrop < off.map.averageDrop, `average drop ${on.map.averageDrop} vs ${off.map.averageDrop}`);
      assert.ok(on.map.deletion.auc < on.random.deletion.auc, 'the object map beats chance');
      assert.ok(off.map.deletion.auc > on.random.deletion.auc, 'the inverse map is worse than chance');
      assert.strictEqual(on.steps, 20);
      assert.strictEqual(on.map.deletion.curve.length, 21);
      // The curves run between the image and its blur.
      const p = (await s.probabilities())[0];
      assert.ok(Math.abs(on.map.deletion.curve[0] - p) < 1e-6 && Math.abs(on.map.insertion.curve[20] - p) < 1e-6);
      assert.strictEqual(on.map.deletion.curve[20], on.map.insertion.curve[0]);
      assert.strictEqual(on.random.deletion.curve[20], on.map.deletion.curve[20]);
    } finally {
      s.dispose();
    }
  });

  it('curve points and Average Drop equal the probabilities computed by hand', async () => {
    const s = session();
    try {
      const steps = 4;
      const r = await faithfulness(s, OBJECT_MAP, 0, { blur: BLUR, steps });
      const blurredT = gaussianBlur(s.input, BLUR.kernel, BLUR.sigma);
      const blurred = blurredT.dataSync();
      blurredT.dispose();
      const rank = pixelRanks(OBJECT_MAP, S, S);
      for (let i = 0; i <= steps; i++) {
        const count = Math.round((i * S * S) / steps);
        const del = IMAGE.map((v, j) => (rank[Math.floor(j / 3)] < count ? blurred[j] : v));
        const ins = IMAGE.map((v, j) => (rank[Math.floor(j / 3)] < count ? v : blurred[j]));
        assert.ok(Math.abs(r.map.deletion.curve[i] - prob0(del)) < 1e-5, `deletion ${i}: ${r.map.deletion.curve[i]} vs ${prob0(del)}`);
        assert.ok(Math.abs(r.map.insertion.curve[i] - prob0(ins)) < 1e-5, `insertion ${i}`);
      }
      // Average Drop: the image times the upsampled, min-max normalised map.
      const up = upsampleBilinear(OBJECT_MAP.values, 6, 6, S, S);
      const lo = Math.min(...up);
      const hi = Math.max(...up);
      const y = prob0(IMAGE);
      const o = prob0(IMAGE.map((v, j) => v * ((up[Math.floor(j / 3)] - lo) / (hi - lo))));
      assert.ok(Math.abs(r.map.originalScore - y) < 1e-6 && Math.abs(r.map.maskedScore - o) < 1e-5, `O_c ${r.map.maskedScore} vs ${o}`);
      assert.ok(Math.abs(r.map.averageDrop - (100 * Math.max(0, y - o)) / y) < 1e-3);
      assert.strictEqual(r.map.increaseInConfidence, o > y);
    } finally {
      s.dispose();
    }
  });

  it('batches whatever the batch size, reports progress, cancels, and leaves no tensor behind', async () => {
    const s = session();
    try {
      await s.probabilities();
      const before = tf.memory().numTensors;
      const a = await faithfulness(s, OBJECT_MAP, 0, { batchSize: 5, steps: 6 });
      const calls: number[][] = [];
      const b = await faithfulness(s, OBJECT_MAP, 0, { batchSize: 64, steps: 6, onProgress: (d, t) => calls.push([d, t]) });
      assert.deepStrictEqual(a, b);
      // Image + blur, then per map (object, random) 5 + 5 inner curve points and the soft mask.
      assert.deepStrictEqual(calls, [[0, 24], [24, 24]]);
      const ac = new AbortController();
      await assert.rejects(faithfulness(s, OBJECT_MAP, 0, { batchSize: 2, signal: ac.signal, onProgress: (d) => d > 0 && ac.abort() }), CancelledError);
      const d = await deletionScores(s, [OBJECT_MAP, INVERSE_MAP], 0, { steps: 6 });
      assert.deepStrictEqual(d[0], a.map.deletion);
      assert.strictEqual(tf.memory().numTensors, before);
    } finally {
      s.dispose();
    }
  });

  it('gives the same scores through a worker pool', async function () {
    this.timeout(120000);
    const pool = new ScorePool({ modelPath: modelJson, workers: 1, useCallerThread: false, backend: 'cpu' });
    const s = session();
    try {
      assert.strictEqual(await pool.whenReady(), 1, pool.failures().join('; '));
      const local = await faithfulness(s, OBJECT_MAP, 0, { blur: BLUR, steps: 5 });
      const pooled = await faithfulness(s, OBJECT_MAP, 0, { blur: BLUR, steps: 5, pool });
      assert.ok(Math.abs(local.map.deletion.auc - pooled.map.deletion.auc) < 1e-6);
      assert.ok(Math.abs(local.random.insertion.auc - pooled.random.insertion.auc) < 1e-6);
      assert.ok(Math.abs(local.map.averageDrop - pooled.map.averageDrop) < 1e-4);
    } finally {
      s.dispose();
      await pool.close();
    }
  });
});
