/**
 * Score-CAM: weights computed by hand on a model with hand-set weights where upsampling matters, the options
 * (top channels, ranking, batch sizes, pytorch-grad-cam's channel softmax), constant channels, cancellation,
 * and the worker pool (same numbers as in-thread, no tensor growth in the workers, threads shut down).
 */
import * as assert from 'assert';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession } from '../../src/extension/engine/session';
import { CamLensError, CancelledError } from '../../src/extension/engine/errors';
import { batchPlan, channelStats, maskedInputs, scorecam, selectChannels, upsampledRanges } from '../../src/extension/engine/cam/scorecam';
import { runMethod } from '../../src/extension/engine/cam/base';
import { ScorePool } from '../../src/extension/engine/scorePool';
import { upsampleBilinear } from '../../src/shared/heatmap';
import { tempDir, writeModel } from '../helpers/modelFiles';
import { bnModel } from '../helpers/models';

/** input [4,4,3] → 1x1 conv (hand-set, linear) → 2x2 average pool = 'feat' [2,2,KC] → GAP → dense(3, softmax). */
const S = 4;
const CIN = 3;
const CONV_W = [
  [1.0, 0.5, 0],
  [-0.3, 1.0, 0],
  [0.2, -0.4, 0],
];
const CONV_B = [0.1, 0.2, 0.3]; // channel 2 (when present) is the constant 0.3: a dead channel
const FC = [
  [1.5, -1.0, 0.2],
  [-0.5, 2.0, 0.1],
  [3.0, -2.0, 1.0],
];
const FB = [0.05, -0.1, 0.2];

function scoreModel(kc: 2 | 3): tfl.LayersModel {
  const input = tfl.input({ shape: [S, S, CIN], name: 'img' });
  const w = tf.tensor4d(CONV_W.map((r) => r.slice(0, kc)).flat(), [1, 1, CIN, kc]);
  const conv = tfl.layers.conv2d({ filters: kc, kernelSize: 1, name: 'conv', weights: [w, tf.tensor1d(CONV_B.slice(0, kc))] }).apply(input) as tfl.SymbolicTensor;
  const feat = tfl.layers.averagePooling2d({ poolSize: 2, strides: 2, name: 'feat' }).apply(conv) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(feat) as tfl.SymbolicTensor;
  const fc = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'fc', weights: [tf.tensor2d(FC.slice(0, kc)), tf.tensor1d(FB)] }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: fc });
}

const X = Float32Array.from({ length: S * S * CIN }, (_, i) => Math.sin(i * 1.3) * 0.9 + (i % 5) * 0.15);

/** conv then 2x2 average pool of an input [S, S, CIN], by hand: [2, 2, kc] channels last. */
function featOf(x: ArrayLike<number>, kc: number): Float64Array {
  const a = new Float64Array(2 * 2 * kc);
  for (let r = 0; r < 2; r++) for (let s = 0; s < 2; s++) for (let j = 0; j < kc; j++) {
    let sum = 0;
    for (let dy = 0; dy < 2; dy++) for (let dx = 0; dx < 2; dx++) {
      const p = (2 * r + dy) * S + (2 * s + dx);
      let y = CONV_B[j];
      for (let i = 0; i < CIN; i++) y += x[p * CIN + i] * CONV_W[i][j];
      sum += y;
    }
    a[(r * 2 + s) * kc + j] = sum / 4;
  }
  return a;
}

function softmax(z: number[]): number[] {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const t = e.reduce((x, y) => x + y, 0);
  return e.map((v) => v / t);
}

function logitsOf(a: Float64Array, kc: number): number[] {
  return [0, 1, 2].map((c) => {
    let z = FB[c];
    for (let j = 0; j < kc; j++) z += FC[j][c] * ((a[j] + a[kc + j] + a[2 * kc + j] + a[3 * kc + j]) / 4);
    return z;
  });
}

/**
 * Score-CAM by hand: upsample each channel of A (2x2) to 4x4 with half-pixel centres, min-max normalise,
 * mask the input, run the hand-written network, take the class probability (or logit).
 */
function handScores(kc: number, c: number): { prob: number[]; logit: number[]; a: Float64Array } {
  const a = featOf(X, kc);
  const prob: number[] = [];
  const logit: number[] = [];
  for (let k = 0; k < kc; k++) {
    const ch = [0, 1, 2, 3].map((p) => a[p * kc + k]);
    const up = upsampleBilinear(ch, 2, 2, S, S);
    const lo = Math.min(...up);
    const hi = Math.max(...up);
    if (hi - lo < 1e-9) {
      prob.push(NaN);
      logit.push(NaN);
      continue;
    }
    const masked = Array.from(X, (v, i) => v * ((up[Math.floor(i / CIN)] - lo) / (hi - lo)));
    const z = logitsOf(featOf(masked, kc), kc);
    prob.push(softmax(z)[c]);
    logit.push(z[c]);
  }
  return { prob, logit, a };
}

function handMap(a: Float64Array, kc: number, w: number[]): number[] {
  const raw = [0, 1, 2, 3].map((p) => Math.max(0, w.reduce((s, wk, k) => s + wk * a[p * kc + k], 0)));
  const lo = Math.min(...raw);
  const hi = Math.max(...raw);
  return raw.map((v) => (v - lo) / (hi - lo + 1e-7));
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.strictEqual(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

async function load(m: tfl.LayersModel): Promise<LoadedModel> {
  const written = await writeModel(m, path.join(tempDir(), 'model'));
  m.dispose();
  return loadModel(written.modelJson);
}

describe('Score-CAM', () => {
  let model2: LoadedModel;
  let model3: LoadedModel;
  before(async () => {
    await initBackend('cpu');
    model2 = await load(scoreModel(2));
    model3 = await load(scoreModel(3));
  });
  after(() => {
    model2?.dispose();
    model3?.dispose();
  });
  const session = (m: LoadedModel) => new ImageSession(m, tf.tensor4d(X, [1, S, S, CIN]));

  it('weights each channel by the class probability of the input masked by its upsampled, normalised map (by hand)', async () => {
    const s = session(model2);
    try {
      for (const c of [0, 1, 2]) {
        const { prob, a } = handScores(2, c);
        const r = await s.explain({ method: 'scorecam', layer: 'feat', classChoice: c });
        assert.deepStrictEqual([r.heatmap.width, r.heatmap.height], [2, 2]);
        assertClose(r.heatmap.values, handMap(a, 2, prob), 1e-4, `class ${c}`);
        // rawMax is the un-normalised map's maximum: sum_k w_k A_k at its peak.
        const peak = Math.max(...[0, 1, 2, 3].map((p) => prob[0] * a[p * 2] + prob[1] * a[p * 2 + 1]));
        assert.ok(Math.abs(r.heatmap.rawMax - peak) < 1e-4, `rawMax ${r.heatmap.rawMax} vs ${peak}`);
      }
    } finally {
      s.dispose();
    }
  });

  it('builds the masked inputs as upsample, then min-max normalise, then multiply, at any size ratio', () => {
    // [h, w] → [H, W]: MobileNet's 7 → 224, odd ratios, shrinking, a 1-pixel-high map, and more channels.
    const cases: Array<[number, number, number, number, number, number]> = [[7, 7, 224, 224, 3, 3], [3, 4, 10, 13, 5, 2], [5, 5, 17, 9, 2, 1], [1, 6, 4, 20, 3, 3], [6, 6, 4, 4, 4, 3]];
    for (const [h, w, H, W, n, C] of cases) {
      const maps = Float32Array.from({ length: h * w * n }, (_, i) => Math.sin(i * 2.1) * 3 + Math.cos(i * 0.7));
      const input = Float32Array.from({ length: H * W * C }, (_, i) => Math.cos(i * 0.37) * 2);
      const x = tf.tensor4d(input, [1, H, W, C]);
      const out = maskedInputs(x, maps, [h, w, n]);
      const got = out.dataSync();
      assert.deepStrictEqual(out.shape, [n, H, W, C]);
      out.dispose();
      x.dispose();
      const { lo, hi } = upsampledRanges(maps, h, w, n, H, W);
      for (let j = 0; j < n; j++) {
        const ch = Array.from({ length: h * w }, (_, p) => maps[p * n + j]);
        const up = upsampleBilinear(ch, w, h, W, H);
        const min = Math.min(...up);
        const max = Math.max(...up);
        const what = `[${h},${w}]→[${H},${W}] channel ${j}`;
        assert.ok(Math.abs(lo[j] - min) < 1e-5 && Math.abs(hi[j] - max) < 1e-5, `${what}: range ${lo[j]}..${hi[j]} vs ${min}..${max}`);
        for (let p = 0; p < H * W; p++) {
          for (let c = 0; c < C; c++) {
            const want = input[p * C + c] * ((up[p] - min) / (max - min));
            const v = got[(j * H * W + p) * C + c];
            assert.ok(Math.abs(v - want) < 1e-4, `${what} pixel ${p} channel ${c}: ${v} vs ${want}`);
          }
        }
      }
    }
  });

  it('cuts the masked inputs into equal batches, small enough over a pool that every thread gets two', () => {
    assert.deepStrictEqual(batchPlan(40, 16, 1), [[0, 16], [16, 16], [32, 8]]);
    assert.deepStrictEqual(batchPlan(32, 16, 2), [[0, 8], [8, 8], [16, 8], [24, 8]]);
    assert.deepStrictEqual(batchPlan(243, 16, 2).map(([, n]) => n), [...Array(15).fill(16), 3]);
    for (const [n, b, t] of [[243, 16, 2], [256, 32, 4], [7, 16, 2], [1, 16, 3], [100, 2, 2]]) {
      const plan = batchPlan(n, b, t);
      let next = 0;
      for (const [start, size] of plan) {
        assert.strictEqual(start, next, `${n}/${b}/${t}: contiguous`);
        assert.ok(size >= 1 && size <= b, `${n}/${b}/${t}: size ${size}`);
        next += size;
      }
      assert.strictEqual(next, n, `${n}/${b}/${t}: covers every input once`);
      // One batch size throughout but for the remainder at the end.
      assert.ok(plan.slice(0, -1).every(([, size]) => size === plan[0][1]), `${n}/${b}/${t}: equal batches`);
      if (n >= 2 * t) assert.ok(plan.length >= 2 * t, `${n}/${b}/${t}: every thread can take two batches`);
    }
  });

  it("reproduces pytorch-grad-cam's weights (softmax over channels of the class logits) on request", async () => {
    const s = session(model2);
    try {
      const { logit, a } = handScores(2, 1);
      const r = await s.explain({ method: 'scorecam', layer: 'feat', classChoice: 1, options: { weighting: 'channel-softmax' } });
      assertClose(r.heatmap.values, handMap(a, 2, softmax(logit)), 1e-4, 'channel-softmax');
    } finally {
      s.dispose();
    }
  });

  it('skips a constant channel with weight 0, without a forward pass and without NaN', async () => {
    const s = session(model3);
    const totals: number[] = [];
    try {
      const { prob, a } = handScores(3, 2);
      assert.ok(Number.isNaN(prob[2]), 'channel 2 is constant');
      const r = await s.explain({ method: 'scorecam', layer: 'feat', classChoice: 2, onProgress: (_d, t) => totals.push(t) });
      assert.deepStrictEqual([...new Set(totals)], [2], 'two masked inputs scored, not three');
      for (const v of r.heatmap.values) assert.ok(Number.isFinite(v));
      assertClose(r.heatmap.values, handMap(a, 3, [prob[0], prob[1], 0]), 1e-4, 'constant channel weight 0');
    } finally {
      s.dispose();
    }
  });

  it('gives an all-zero map, not NaN, when every channel is constant', async () => {
    const flat = tf.fill([1, S, S, CIN], 0.25) as tf.Tensor4D;
    const s = new ImageSession(model3, flat);
    try {
      // A constant input makes every channel of 'feat' constant.
      const r = await s.explain({ method: 'scorecam', layer: 'feat', classChoice: 0 });
      assert.deepStrictEqual(Array.from(r.heatmap.values), [0, 0, 0, 0]);
    } finally {
      s.dispose();
    }
  });

  it('top-N keeps the N channels of largest spatial standard deviation (tf-keras-vis), or of largest mean on request', async () => {
    const a = Float32Array.from([
      // 4 positions x 4 channels: std order 3 > 0 > 1 > 2(constant); mean order 2 > 1 > 3 > 0
      0, 1.0, 5, -3,
      1, 1.2, 5, 3,
      0, 1.0, 5, -3,
      1, 1.2, 5, 4,
    ]);
    const stats = channelStats(a, 4, 4);
    assert.deepStrictEqual(stats.usable, [true, true, false, true]);
    assert.deepStrictEqual(selectChannels(stats, { topChannels: 2, rankChannelsBy: 'std' }), [0, 3]);
    assert.deepStrictEqual(selectChannels(stats, { topChannels: 1, rankChannelsBy: 'mean' }), [1], 'the constant channel is never picked');
    assert.deepStrictEqual(selectChannels(stats, { topChannels: undefined, rankChannelsBy: 'std' }), [0, 1, 3]);

    const s = session(model2);
    try {
      const { prob, a: feat } = handScores(2, 0);
      const std = [0, 1].map((k) => {
        const v = [0, 1, 2, 3].map((p) => feat[p * 2 + k]);
        const m = v.reduce((x, y) => x + y, 0) / 4;
        return Math.sqrt(v.reduce((x, y) => x + (y - m) ** 2, 0) / 4);
      });
      const keep = std[0] >= std[1] ? 0 : 1;
      const r = await s.explain({ method: 'scorecam', layer: 'feat', classChoice: 0, options: { topChannels: 1, rankChannelsBy: 'std' } });
      assertClose(r.heatmap.values, handMap(feat, 2, [keep === 0 ? prob[0] : 0, keep === 1 ? prob[1] : 0]), 1e-4, 'top-1 by std');
    } finally {
      s.dispose();
    }
  });

  it('gives the same map for every batch size, with progress per batch', async () => {
    const m = await load(bnModel());
    const x = Float32Array.from({ length: 16 * 16 * 3 }, (_, i) => ((i * 7919) % 255) / 255);
    let reference: Float32Array | undefined;
    try {
      for (const batchSize of [1, 3, 8, 16]) {
        const s = new ImageSession(m, tf.tensor4d(x, [1, 16, 16, 3]));
        const calls: [number, number][] = [];
        try {
          const r = await s.explain({ method: 'scorecam', layer: 'r1', classChoice: 3, options: { batchSize }, onProgress: (d, t) => calls.push([d, t]) });
          const total = calls[0][1];
          assert.deepStrictEqual(calls[0], [0, total]);
          assert.strictEqual(calls.length, 1 + Math.ceil(total / batchSize), `progress calls for batch ${batchSize}`);
          assert.deepStrictEqual(calls[calls.length - 1], [total, total]);
          if (reference) assertClose(r.heatmap.values, reference, 1e-5, `batch ${batchSize}`);
          else reference = r.heatmap.values;
        } finally {
          s.dispose();
        }
      }
    } finally {
      m.dispose();
    }
  });

  it('refuses bad options with the value in the message', async () => {
    const s = session(model2);
    try {
      await assert.rejects(s.explain({ method: 'scorecam', layer: 'feat', options: { batchSize: 0 } }), /batchSize must be an integer from 1 to 1024, got 0/);
      await assert.rejects(s.explain({ method: 'scorecam', layer: 'feat', options: { topChannels: 2.5 } }), /topChannels must be an integer/);
      await assert.rejects(s.explain({ method: 'scorecam', layer: 'feat', options: { weighting: 'max' } }), /weighting must be one of probability, channel-softmax, got "max"/);
    } finally {
      s.dispose();
    }
  });

  it('stops within one batch when cancelled, with CancelledError and no tensor left behind', async () => {
    const m = await load(bnModel());
    const s = new ImageSession(m, tf.tensor4d(Float32Array.from({ length: 768 }, (_, i) => (i % 13) / 13), [1, 16, 16, 3]));
    try {
      await s.logits();
      s.activation('r1');
      const before = tf.memory().numTensors;
      const ac = new AbortController();
      let batches = 0;
      let afterAbort = 0;
      const orig = s.scoreBatch.bind(s);
      s.scoreBatch = async (inputs, outputIndex) => {
        batches++;
        if (ac.signal.aborted) afterAbort++;
        return orig(inputs, outputIndex);
      };
      await assert.rejects(
        s.explain({ method: 'scorecam', layer: 'r1', options: { batchSize: 2 }, signal: ac.signal, onProgress: (done) => done === 2 && ac.abort() }),
        (e: unknown) => e instanceof CancelledError && e.code === 'CANCELLED' && /Score-CAM was cancelled/.test(e.message),
      );
      assert.strictEqual(batches, 1, 'the batch that was running when the abort came is the last one');
      assert.strictEqual(afterAbort, 0);
      assert.strictEqual(tf.memory().numTensors, before, 'no tensor left behind');
    } finally {
      s.dispose();
      m.dispose();
    }
  });

  describe('worker pool', function () {
    // Worker threads load TypeScript through tsx here: allow for a slow start on a busy machine.
    this.timeout(120000);
    let written: string;
    let model: LoadedModel;
    const x = Float32Array.from({ length: 16 * 16 * 3 }, (_, i) => ((i * 31) % 97) / 97);
    before(async () => {
      const m = bnModel();
      written = (await writeModel(m, path.join(tempDir(), 'pooled'), { labels: ['a', 'b', 'c', 'd', 'e'] })).modelJson;
      m.dispose();
      model = await loadModel(written);
    });
    after(() => model.dispose());

    it('computes the same map in the workers as in this thread, leaks no tensors there, and shuts the threads down', async () => {
      const pool = new ScorePool({ modelPath: written, workers: 1, useCallerThread: false, backend: 'cpu' });
      try {
        assert.strictEqual(await pool.whenReady(), 1, pool.failures().join('; '));
        const s = new ImageSession(model, tf.tensor4d(x, [1, 16, 16, 3]));
        try {
          const local = await s.explain({ method: 'scorecam', layer: 'r1', classChoice: 2, options: { batchSize: 3 } });
          s.activation('res'); // cached by the session: counted before, not as growth
          const mainBefore = tf.memory().numTensors;
          const first = await s.explain({ method: 'scorecam', layer: 'r1', classChoice: 2, options: { batchSize: 3 }, pool });
          assertClose(first.heatmap.values, local.heatmap.values, 1e-6, 'worker vs this thread');
          const [afterOne] = await pool.workerTensorCounts();
          for (let i = 0; i < 3; i++) await s.explain({ method: 'scorecam', layer: 'res', classChoice: i, options: { batchSize: 4 }, pool });
          assert.deepStrictEqual(await pool.workerTensorCounts(), [afterOne], 'worker tensor count after 4 jobs');
          assert.strictEqual(tf.memory().numTensors, mainBefore, 'main-thread tensor count');
        } finally {
          s.dispose();
        }
        assert.strictEqual(pool.liveWorkers, 1);
      } finally {
        await pool.close();
      }
      assert.strictEqual(pool.liveWorkers, 0, 'workers exited');
      assert.ok(!pool.serves(written), 'a closed pool serves nothing');
    });

    it('sends a worker each image once per Score-CAM run, and the next run its own image', async () => {
      // Worker-only pool, batches of 2: every run posts several batches, only the first with the image in it.
      const pool = new ScorePool({ modelPath: written, workers: 1, useCallerThread: false, backend: 'cpu' });
      const images = [x, x.map((v, i) => (v * 7 + (i % 5) * 0.3) % 1), x.map((v) => 1 - v)];
      try {
        assert.strictEqual(await pool.whenReady(), 1, pool.failures().join('; '));
        for (const [i, data] of [...images, images[0]].entries()) {
          const s = new ImageSession(model, tf.tensor4d(data, [1, 16, 16, 3]));
          try {
            const local = await s.explain({ method: 'scorecam', layer: 'r1', classChoice: 1, options: { batchSize: 2 } });
            const pooled = await s.explain({ method: 'scorecam', layer: 'r1', classChoice: 1, options: { batchSize: 2 }, pool });
            assertClose(pooled.heatmap.values, local.heatmap.values, 1e-6, `image ${i}: worker vs this thread`);
          } finally {
            s.dispose();
          }
        }
        // Two runs at once (two panels): their batches interleave in the worker's queue, each with its own image.
        const sessions = images.slice(0, 2).map((d) => new ImageSession(model, tf.tensor4d(d, [1, 16, 16, 3])));
        try {
          const opts = { method: 'scorecam' as const, layer: 'r1', classChoice: 1, options: { batchSize: 1 } };
          const alone: Array<Awaited<ReturnType<ImageSession['explain']>>> = [];
          for (const s of sessions) alone.push(await s.explain(opts));
          const together = await Promise.all(sessions.map((s) => s.explain({ ...opts, pool })));
          together.forEach((r, i) => assertClose(r.heatmap.values, alone[i].heatmap.values, 1e-6, `concurrent run ${i}`));
        } finally {
          sessions.forEach((s) => s.dispose());
        }
      } finally {
        await pool.close();
      }
    });

    it('shares batches between the workers and this thread; a pool for another model is not used', async () => {
      const pool = new ScorePool({ modelPath: written, workers: 1, backend: 'cpu' });
      const other = new ScorePool({ modelPath: path.join(tempDir(), 'elsewhere', 'model.json'), workers: 1 });
      const s = new ImageSession(model, tf.tensor4d(x, [1, 16, 16, 3]));
      try {
        await pool.whenReady();
        const local = await s.explain({ method: 'scorecam', layer: 'res', classChoice: 4, options: { batchSize: 1 } });
        const shared = await s.explain({ method: 'scorecam', layer: 'res', classChoice: 4, options: { batchSize: 1 }, pool });
        assertClose(shared.heatmap.values, local.heatmap.values, 1e-6, 'shared');
        const unused = await s.explain({ method: 'scorecam', layer: 'res', classChoice: 4, options: { batchSize: 1 }, pool: other });
        assertClose(unused.heatmap.values, local.heatmap.values, 1e-6, 'other pool');
        assert.strictEqual(other.liveWorkers, 0, 'the pool for another model never started');
      } finally {
        s.dispose();
        await pool.close();
        await other.close();
      }
    });

    it('keeps feeding the workers while this thread computes batches of its own', async () => {
      const pool = new ScorePool({ modelPath: written, workers: 1, backend: 'cpu' });
      try {
        assert.strictEqual(await pool.whenReady(), 1);
        let toWorker = 0;
        const data = new Float32Array(16 * 16 * 3).fill(0.5);
        const tasks = Array.from({ length: 12 }, () => ({
          size: 1,
          request: () => {
            toWorker++;
            return { kind: 'inputs' as const, outputIndex: 0, data, shape: [1, 16, 16, 3] as [number, number, number, number] };
          },
          // A synchronous stretch of work that resolves without a turn of the event loop, as a wasm batch does.
          local: async () => {
            const end = performance.now() + 25;
            while (performance.now() < end) { /* busy */ }
            return { probabilities: Float32Array.of(1), logits: Float32Array.of(0) };
          },
        }));
        const scores = await pool.run(tasks);
        assert.strictEqual(scores.length, 12);
        assert.ok(toWorker >= 2, `the worker got ${toWorker} batch(es) of 12`);
      } finally {
        await pool.close();
      }
    });

    it('queues two batches on each worker before this thread starts a batch of its own', async () => {
      const pool = new ScorePool({ modelPath: written, workers: 1, backend: 'cpu' });
      try {
        assert.strictEqual(await pool.whenReady(), 1);
        const events: string[] = [];
        const data = new Float32Array(16 * 16 * 3).fill(0.5);
        const tasks = Array.from({ length: 6 }, (_, i) => ({
          size: 1,
          request: () => {
            events.push(`worker ${i}`);
            return { kind: 'inputs' as const, outputIndex: 0, data, shape: [1, 16, 16, 3] as [number, number, number, number] };
          },
          local: async () => {
            events.push(`local ${i}`);
            const end = performance.now() + 20;
            while (performance.now() < end) { /* busy, as a wasm batch is */ }
            return { probabilities: Float32Array.of(1), logits: Float32Array.of(0) };
          },
        }));
        assert.strictEqual((await pool.run(tasks)).length, 6);
        // The worker's two batches are posted before this thread blocks in its first one: it never waits for them.
        assert.deepStrictEqual(events.slice(0, 3).map((e) => e.split(' ')[0]), ['worker', 'worker', 'local'], events.join(', '));
      } finally {
        await pool.close();
      }
    });

    it('takes back a batch still queued in a busy worker when this thread runs out of work', async () => {
      const pool = new ScorePool({ modelPath: written, workers: 1, backend: 'cpu' });
      try {
        assert.strictEqual(await pool.whenReady(), 1);
        const sent = new Set<number>();
        const local = new Set<number>();
        // The worker's batches are slow (2048 images each), this thread's take 20 ms: the worker gets two at the
        // start and is busy with the first when this thread has done the rest; the second still waits in its queue.
        const data = new Float32Array(2048 * 16 * 16 * 3).fill(0.5);
        const tasks = Array.from({ length: 6 }, (_, i) => ({
          size: 1,
          request: () => {
            sent.add(i);
            return { kind: 'inputs' as const, outputIndex: 0, data, shape: [2048, 16, 16, 3] as [number, number, number, number] };
          },
          local: async () => {
            local.add(i);
            const end = performance.now() + 20;
            while (performance.now() < end) { /* busy, as a wasm batch is */ }
            return { probabilities: Float32Array.of(i), logits: Float32Array.of(0) };
          },
        }));
        const scores = await pool.run(tasks);
        const takenBack = [...sent].filter((i) => local.has(i));
        assert.strictEqual(sent.size, 2, `posted to the worker: ${[...sent]}`);
        assert.strictEqual(takenBack.length, 1, `taken back: ${takenBack}`);
        // The taken-back batch has this thread's result (i), the one the worker ran has 2048 probabilities.
        assert.deepStrictEqual(Array.from(scores[takenBack[0]].probabilities), [takenBack[0]]);
        const ranByWorker = [...sent].filter((i) => !local.has(i));
        assert.strictEqual(scores[ranByWorker[0]].probabilities.length, 2048);
      } finally {
        await pool.close();
      }
    });

    it('falls back to this thread when no worker can load the model', async () => {
      const broken = path.join(tempDir(), 'broken');
      const pool = new ScorePool({ modelPath: path.join(broken, 'model.json'), workers: 1, backend: 'cpu' });
      try {
        assert.strictEqual(await pool.whenReady(), 0);
        assert.match(pool.failures()[0], /model\.json|not found|no such/i);
        const scores = await pool.run([{ size: 1, request: () => { throw new Error('not for workers'); }, local: async () => ({ probabilities: Float32Array.of(0.5), logits: Float32Array.of(0) }) }]);
        assert.deepStrictEqual(Array.from(scores[0].probabilities), [0.5]);
      } finally {
        await pool.close();
      }
    });

    it('cancels within one batch per thread', async () => {
      const pool = new ScorePool({ modelPath: written, workers: 1, backend: 'cpu' });
      const s = new ImageSession(model, tf.tensor4d(x, [1, 16, 16, 3]));
      try {
        assert.strictEqual(await pool.whenReady(), 1);
        const ac = new AbortController();
        let afterAbort = 0;
        await assert.rejects(
          s.explain({
            method: 'scorecam', layer: 'r1', classChoice: 0, options: { batchSize: 1 }, pool, signal: ac.signal,
            onProgress: (done) => {
              if (ac.signal.aborted) afterAbort++;
              else if (done >= 2) ac.abort();
            },
          }),
          CancelledError,
        );
        // Two executors: the one whose batch triggered the abort stops at once, the other finishes the batch it holds.
        assert.ok(afterAbort <= 1, `${afterAbort} batches finished after the abort`);
      } finally {
        s.dispose();
        await pool.close();
      }
    });
  });

  it('says what is missing when called without an image session', async () => {
    const a = tf.ones([1, 2, 2, 2]) as tf.Tensor4D;
    try {
      await assert.rejects(runMethod(scorecam, { activation: a, classIndex: 0 }), (e: unknown) => e instanceof CamLensError && e.code === 'METHOD_NOT_APPLICABLE');
    } finally {
      a.dispose();
    }
  });
});
