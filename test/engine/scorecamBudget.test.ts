/**
 * Score-CAM's channel budget (#13 item 3): by default at most 32 channels are scored, one masked pass each, the
 * ones of largest mean activation; `channels: 'all'` (or 0) scores every channel that is not constant; the map's
 * details name the criterion and the counts. Which channels were scored is read off the masked inputs themselves:
 * each one is the input times one channel's upsampled, normalised map, so it matches exactly one channel.
 */
import * as assert from 'assert';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession } from '../../src/extension/engine/session';
import {
  SCORECAM_DEFAULT_CHANNELS, SCORECAM_DEFAULT_CRITERION, estimateScoreCamMs, maskedInputs, planScoreCam, scoreCamOptions, selectionNote,
} from '../../src/extension/engine/cam/scorecam';
import { ScorePool, type ScoreTask } from '../../src/extension/engine/scorePool';
import type { BatchScores } from '../../src/extension/engine/cam/base';
import { tempDir, writeModel } from '../helpers/modelFiles';

const S = 8;
const CIN = 3;
/** Channels of the target layer; the first DEAD are constant (zero after the ReLU). */
const K = 44;
const DEAD = 4;

/** A fixed pseudo-random sequence in [-1, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 31) - 1;
}

/**
 * input [8,8,3] → conv 3x3 'same' (K filters, seeded; the first DEAD with bias -100, so zero everywhere after the
 * ReLU) → ReLU 'feat' [8,8,K] → GAP → dense(4, softmax). Each live filter is scaled by a different factor, so
 * that the channels' means (and spreads) differ widely.
 */
function budgetModel(): tfl.LayersModel {
  const r = lcg(7);
  const kernel = new Float32Array(3 * 3 * CIN * K);
  for (let i = 0; i < kernel.length; i++) {
    const k = i % K;
    kernel[i] = r() * (0.2 + ((k * 37) % K) / 10);
  }
  const bias = Float32Array.from({ length: K }, (_, k) => (k < DEAD ? -100 : 1 + 0.1 * r()));
  const input = tfl.input({ shape: [S, S, CIN], name: 'img' });
  const conv = tfl.layers.conv2d({ filters: K, kernelSize: 3, padding: 'same', name: 'conv', weights: [tf.tensor4d(kernel, [3, 3, CIN, K]), tf.tensor1d(bias)] }).apply(input) as tfl.SymbolicTensor;
  const feat = tfl.layers.activation({ activation: 'relu', name: 'feat' }).apply(conv) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(feat) as tfl.SymbolicTensor;
  const fc = Float32Array.from({ length: K * 4 }, () => 0.3 * r());
  const out = tfl.layers.dense({ units: 4, activation: 'softmax', name: 'fc', weights: [tf.tensor2d(fc, [K, 4]), tf.zeros([4])] }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

const X = (() => {
  const r = lcg(11);
  return Float32Array.from({ length: S * S * CIN }, () => 0.5 + 0.5 * r());
})();

/** Per-channel mean and spatial std of a [positions, K] activation, and whether the channel varies at all. */
function channelFacts(a: Float32Array): { mean: number[]; std: number[]; varies: boolean[] } {
  const n = a.length / K;
  const mean: number[] = [];
  const std: number[] = [];
  const varies: boolean[] = [];
  for (let k = 0; k < K; k++) {
    const v = Array.from({ length: n }, (_, p) => a[p * K + k]);
    const m = v.reduce((x, y) => x + y, 0) / n;
    mean.push(m);
    std.push(Math.sqrt(v.reduce((x, y) => x + (y - m) ** 2, 0) / n));
    varies.push(Math.max(...v) > Math.min(...v));
  }
  return { mean, std, varies };
}

/** The n varying channels with the largest `key`, in index order. */
function topBy(key: number[], varies: boolean[], n: number): number[] {
  const live = key.map((_, k) => k).filter((k) => varies[k]);
  return live.sort((x, y) => key[y] - key[x] || x - y).slice(0, n).sort((x, y) => x - y);
}

/**
 * Records every masked input the session scores (its scoreBatch, the in-thread path) and says which channel each
 * one is: the channel whose own masked input (maskedInputs for that channel alone) it equals.
 */
class MaskSpy {
  readonly batches: number[] = [];
  private readonly inputs: Float32Array[] = [];

  constructor(private readonly session: ImageSession) {
    const original = session.scoreBatch.bind(session);
    (session as unknown as { scoreBatch: (x: tf.Tensor4D, i: number) => Promise<BatchScores> }).scoreBatch = async (x, i) => {
      this.batches.push(x.shape[0]);
      const data = (await x.data()) as Float32Array;
      const per = S * S * CIN;
      for (let b = 0; b < x.shape[0]; b++) this.inputs.push(data.slice(b * per, (b + 1) * per));
      return original(x, i);
    };
  }

  get passes(): number {
    return this.batches.reduce((x, y) => x + y, 0);
  }

  /** The channel of each recorded masked input, sorted; throws if one matches no channel. */
  channels(activation: Float32Array): number[] {
    const input = tf.tensor4d(X, [1, S, S, CIN]);
    const own: Float32Array[] = [];
    for (let k = 0; k < K; k++) {
      const map = Float32Array.from({ length: S * S }, (_, p) => activation[p * K + k]);
      const m = maskedInputs(input, map, [S, S, 1]);
      own.push(m.dataSync() as Float32Array);
      m.dispose();
    }
    input.dispose();
    return this.inputs.map((x, i) => {
      const k = own.findIndex((o) => o.every((v, j) => Math.abs(v - x[j]) < 1e-5));
      if (k < 0) throw new Error(`masked input ${i} matches no channel`);
      return k;
    }).sort((x, y) => x - y);
  }
}

describe('Score-CAM channel budget', () => {
  let model: LoadedModel;
  let activation: Float32Array;
  let facts: ReturnType<typeof channelFacts>;

  before(async () => {
    await initBackend('cpu');
    const built = budgetModel();
    const written = await writeModel(built, path.join(tempDir(), 'budget'));
    built.dispose();
    model = await loadModel(written.modelJson);
    const s = new ImageSession(model, tf.tensor4d(X, [1, S, S, CIN]));
    activation = Float32Array.from(await s.activation('feat').data());
    s.dispose();
    facts = channelFacts(activation);
  });
  after(() => model?.dispose());

  const session = () => new ImageSession(model, tf.tensor4d(X, [1, S, S, CIN]));

  it('the test model has more varying channels than the default budget, and dead ones', () => {
    const live = facts.varies.filter(Boolean).length;
    assert.strictEqual(live, K - DEAD);
    assert.ok(live > SCORECAM_DEFAULT_CHANNELS, `${live} live channels`);
    // The two criteria disagree on this model, so the criterion tests below can tell them apart.
    assert.notDeepStrictEqual(topBy(facts.mean, facts.varies, SCORECAM_DEFAULT_CHANNELS), topBy(facts.std, facts.varies, SCORECAM_DEFAULT_CHANNELS));
  });

  it(`by default scores ${SCORECAM_DEFAULT_CHANNELS} channels, the ones of largest mean activation, one masked pass each`, async () => {
    assert.strictEqual(SCORECAM_DEFAULT_CRITERION, 'mean');
    const s = session();
    const spy = new MaskSpy(s);
    const progress: [number, number][] = [];
    try {
      const r = await s.explain({ method: 'scorecam', layer: 'feat', classChoice: 1, onProgress: (d, t) => progress.push([d, t]) });
      assert.strictEqual(spy.passes, SCORECAM_DEFAULT_CHANNELS, 'masked passes');
      assert.deepStrictEqual(spy.channels(activation), topBy(facts.mean, facts.varies, SCORECAM_DEFAULT_CHANNELS), 'the channels scored');
      assert.deepStrictEqual(progress[progress.length - 1], [SCORECAM_DEFAULT_CHANNELS, SCORECAM_DEFAULT_CHANNELS]);
      const d = r.heatmap.details;
      assert.ok(d?.channels, 'the map carries its details');
      assert.strictEqual(d.note, `top ${SCORECAM_DEFAULT_CHANNELS} of ${K} channels by mean activation`);
      assert.deepStrictEqual({ ...d.channels, ms: 0, allMs: 0 }, { scored: SCORECAM_DEFAULT_CHANNELS, usable: K - DEAD, total: K, by: 'mean', ms: 0, allMs: 0 });
      assert.ok(d.channels.ms > 0, 'the scoring time is measured');
      // The full method's estimate is this run's rate times every varying channel.
      assert.ok(Math.abs(d.channels.allMs - (d.channels.ms / SCORECAM_DEFAULT_CHANNELS) * (K - DEAD)) < 1e-6, `allMs ${d.channels.allMs}`);
    } finally {
      s.dispose();
    }
  });

  it('scores the n channels of largest spatial std with rankChannelsBy std, and n of them with channels: n', async () => {
    for (const [options, expected, note] of [
      [{ channels: 10, rankChannelsBy: 'std' }, topBy(facts.std, facts.varies, 10), `top 10 of ${K} channels by spatial std`],
      [{ channels: 5 }, topBy(facts.mean, facts.varies, 5), `top 5 of ${K} channels by mean activation`],
      [{ topChannels: 7 }, topBy(facts.mean, facts.varies, 7), `top 7 of ${K} channels by mean activation`],
    ] as const) {
      const s = session();
      const spy = new MaskSpy(s);
      try {
        const r = await s.explain({ method: 'scorecam', layer: 'feat', classChoice: 0, options });
        assert.deepStrictEqual(spy.channels(activation), expected, JSON.stringify(options));
        assert.strictEqual(r.heatmap.details?.note, note);
      } finally {
        s.dispose();
      }
    }
  });

  it('scores every channel that varies, and none that is constant, with channels all or 0', async () => {
    const live = facts.varies.flatMap((v, k) => (v ? [k] : []));
    for (const channels of ['all', 0] as const) {
      const s = session();
      const spy = new MaskSpy(s);
      try {
        const r = await s.explain({ method: 'scorecam', layer: 'feat', classChoice: 2, options: { channels } });
        assert.strictEqual(spy.passes, K - DEAD, `passes with channels ${channels}`);
        assert.deepStrictEqual(spy.channels(activation), live);
        assert.strictEqual(r.heatmap.details?.note, `all ${K - DEAD} channels (${DEAD} constant skipped)`);
        assert.strictEqual(r.heatmap.details?.channels?.by, 'all');
      } finally {
        s.dispose();
      }
    }
  });

  it('a budget as large as the layer scores every varying channel, and says "all"', async () => {
    const s = session();
    const spy = new MaskSpy(s);
    try {
      const r = await s.explain({ method: 'scorecam', layer: 'feat', options: { channels: 1000 } });
      assert.strictEqual(spy.passes, K - DEAD);
      assert.strictEqual(r.heatmap.details?.channels?.by, 'all');
    } finally {
      s.dispose();
    }
  });

  it('plans the same channels it scores, without scoring any; estimates from a forward pass and the threads', async () => {
    const s = session();
    const spy = new MaskSpy(s);
    try {
      const plan = await planScoreCam(s.activation('feat'));
      assert.deepStrictEqual(plan, { total: K, usable: K - DEAD, scored: SCORECAM_DEFAULT_CHANNELS, by: 'mean', note: `top ${SCORECAM_DEFAULT_CHANNELS} of ${K} channels by mean activation` });
      const all = await planScoreCam(s.activation('feat'), { channels: 'all' });
      assert.strictEqual(all.scored, K - DEAD);
      assert.strictEqual(spy.passes, 0);
      assert.ok(Math.abs(estimateScoreCamMs(100, 10, 2) - 490) < 1e-9, 'a masked pass costs 0.98 of a forward pass, shared by the threads');
      assert.strictEqual(estimateScoreCamMs(100, 10, 0), estimateScoreCamMs(100, 10, 1));
    } finally {
      s.dispose();
    }
  });

  it('reads the budget options: all, 0, n, the older topChannels, and refuses contradictions', () => {
    assert.strictEqual(scoreCamOptions({}).channels, SCORECAM_DEFAULT_CHANNELS);
    assert.strictEqual(scoreCamOptions({ channels: 'all' }).channels, Infinity);
    assert.strictEqual(scoreCamOptions({ channels: 0 }).channels, Infinity);
    assert.strictEqual(scoreCamOptions({ channels: 12 }).channels, 12);
    assert.strictEqual(scoreCamOptions({ topChannels: 12 }).channels, 12);
    assert.strictEqual(scoreCamOptions({ channels: 12, topChannels: 12 }).channels, 12);
    assert.throws(() => scoreCamOptions({ channels: 12, topChannels: 5 }), /channels \(12\) and topChannels \(5\) disagree/);
    assert.throws(() => scoreCamOptions({ channels: 'some' }), /channels must be an integer or "all", got "some"/);
    assert.throws(() => scoreCamOptions({ channels: -1 }), /channels must be an integer from 0/);
    assert.throws(() => scoreCamOptions({ rankChannelsBy: 'max' }), /rankChannelsBy must be one of mean, std/);
    assert.strictEqual(selectionNote(32, 250, 256, 'std'), 'top 32 of 256 channels by spatial std');
    assert.strictEqual(selectionNote(256, 256, 256, 'all'), 'all 256 channels');
  });

  it('spreads the budgeted passes over a worker pool: still the budget, the same map as in this thread', async function () {
    this.timeout(120000);
    const pool = new ScorePool({ modelPath: model.path, workers: 1 });
    const sizes: number[] = [];
    const run = pool.run.bind(pool);
    pool.run = (tasks: ScoreTask[], opts) => {
      sizes.push(...tasks.map((t) => t.size));
      return run(tasks, opts);
    };
    const local = session();
    const pooled = session();
    try {
      assert.ok((await pool.whenReady()) >= 1, `the worker started: ${pool.failures().join('; ')}`);
      const a = await local.explain({ method: 'scorecam', layer: 'feat', classChoice: 3 });
      const b = await pooled.explain({ method: 'scorecam', layer: 'feat', classChoice: 3, pool });
      assert.strictEqual(sizes.reduce((x, y) => x + y, 0), SCORECAM_DEFAULT_CHANNELS, 'masked passes given to the pool');
      assert.deepStrictEqual(b.heatmap.details?.note, a.heatmap.details?.note);
      for (let i = 0; i < a.heatmap.values.length; i++) assert.ok(Math.abs(a.heatmap.values[i] - b.heatmap.values[i]) < 1e-4, `value ${i}`);
    } finally {
      local.dispose();
      pooled.dispose();
      await pool.close();
    }
  });

  it('leaves no tensor behind', async () => {
    const s = session();
    try {
      s.activation('feat');
      await s.explain({ method: 'scorecam', layer: 'feat' });
      const before = tf.memory().numTensors;
      await s.explain({ method: 'scorecam', layer: 'feat', classChoice: 1 });
      await s.explain({ method: 'scorecam', layer: 'feat', classChoice: 1, options: { channels: 'all' } });
      assert.strictEqual(tf.memory().numTensors, before);
    } finally {
      s.dispose();
    }
  });
});
