/**
 * Dataset scans on worker threads (engine/scan/scanPool.ts, src/extension/scanWorker.ts run from source through
 * tsx): the same results as in one thread (probabilities within 1e-6, the same order, failures and rankings) with
 * 1 and 3 workers, the work really spread over the workers, a worker that goes away mid-scan replaced by the
 * others, a cancel that keeps a prefix of the results, and no tensor left behind in either thread.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { readDataset, type Dataset } from '../../src/extension/engine/scan/dataset';
import { scanDataset, type ScanSummary } from '../../src/extension/engine/scan/scan';
import { ScanPool } from '../../src/extension/engine/scan/scanPool';
import { SCORE_KINDS, rankOrder } from '../../src/extension/engine/scan/ranking';
import { tempDir, writeModel } from '../helpers/modelFiles';
import { bnModel } from '../helpers/models';

const LABELS = ['apple', 'banana', 'cherry', 'date', 'elder'];

/** A PNG of deterministic pseudo-random pixels; sizes vary so that batches take unequal times. */
async function writePng(file: string, seed: number, size: number): Promise<void> {
  const px = Buffer.alloc(size * size * 3);
  let s = seed + 1;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = s >> 23;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toFile(file);
}

function assertSameScan(got: ScanSummary, want: ScanSummary, what: string): void {
  assert.deepStrictEqual(got.results.map((r) => r.relPath), want.results.map((r) => r.relPath), `${what}: results in dataset order`);
  assert.deepStrictEqual(got.failures.map((f) => [f.relPath, f.error]), want.failures.map((f) => [f.relPath, f.error]), `${what}: failures`);
  let worst = 0;
  got.results.forEach((r, i) => {
    const w = want.results[i];
    assert.strictEqual(r.probs.length, w.probs.length);
    for (let j = 0; j < r.probs.length; j++) worst = Math.max(worst, Math.abs(r.probs[j] - w.probs[j]));
    assert.deepStrictEqual([r.predictedIndex, r.top.map((t) => t.index)], [w.predictedIndex, w.top.map((t) => t.index)], `${what}: ${r.relPath}`);
  });
  assert.ok(worst <= 1e-6, `${what}: probabilities differ by up to ${worst}`);
  for (const kind of SCORE_KINDS) {
    assert.deepStrictEqual(rankOrder(got.results, kind), rankOrder(want.results, kind), `${what}: ranking by ${kind}`);
  }
}

describe('dataset scan on worker threads', function () {
  this.timeout(120000);
  let dir: string;
  let modelJson: string;
  let model: LoadedModel;
  let dataset: Dataset;
  let inThread: ScanSummary;
  const pools: ScanPool[] = [];
  const poolOf = (workers: number) => {
    const p = new ScanPool({ modelPath: modelJson, workers });
    pools.push(p);
    return p;
  };

  before(async () => {
    await initBackend('wasm', { threads: 1 });
    dir = tempDir('cam-lens-scanpool-');
    const m = bnModel({ bias: true });
    modelJson = (await writeModel(m, path.join(dir, 'model'), { labels: LABELS, inputSize: [16, 16], preprocess: '[0,1]' })).modelJson;
    m.dispose();
    const data = path.join(dir, 'data');
    let k = 0;
    for (const c of LABELS.slice(0, 4)) {
      // Large images first in each class, so that early batches finish late on a worker.
      for (let i = 0; i < 15; i++) await writePng(path.join(data, c, `${String(i).padStart(2, '0')}.png`), k++, i < 3 ? 320 : 12 + (i % 5) * 4);
    }
    fs.writeFileSync(path.join(data, 'banana', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\n not really'));
    model = await loadModel(modelJson);
    dataset = readDataset(data, model.metadata.labels);
    inThread = await scanDataset(model, dataset, { batchSize: 4 });
    assert.strictEqual(inThread.results.length, 60);
    assert.strictEqual(inThread.failures.length, 1);
  });

  after(async () => {
    await Promise.all(pools.map((p) => p.close()));
    model?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const workers of [1, 3]) {
    it(`gives the in-thread results, order, failures and rankings with ${workers} worker(s), the workers doing the work`, async () => {
      const pool = poolOf(workers);
      assert.strictEqual(await pool.whenReady(), workers, pool.failures().join('; '));
      const before = tf.memory().numTensors;
      const events: string[] = [];
      const got = await scanDataset(model, dataset, {
        batchSize: 4,
        pool,
        onResult: (r) => events.push(`r:${r.relPath}`),
        onFailure: (f) => events.push(`f:${f.relPath}`),
        onProgress: (p) => events.push(`p:${p.done}`),
      });
      assertSameScan(got, inThread, `${workers} worker(s)`);
      assert.strictEqual(got.cancelled, false);
      // The events in the in-thread scan's order: per batch its failures, its results, then progress.
      const want: string[] = [];
      await scanDataset(model, dataset, {
        batchSize: 4,
        onResult: (r) => want.push(`r:${r.relPath}`),
        onFailure: (f) => want.push(`f:${f.relPath}`),
        onProgress: (p) => want.push(`p:${p.done}`),
      });
      assert.deepStrictEqual(events, want);
      const scored = pool.workers.map((w) => w.scored);
      assert.ok(scored.reduce((a, b) => a + b, 0) >= 14, `the workers scored ${scored.join(' + ')} of 16 batches`);
      if (workers > 1) assert.ok(scored.filter((n) => n > 0).length >= 2, `one worker did everything: ${scored.join(', ')}`);
      assert.strictEqual(tf.memory().numTensors, before, 'tensors left in the calling thread');
      const counts = await pool.workerTensorCounts();
      await scanDataset(model, dataset, { batchSize: 4, pool });
      assert.deepStrictEqual(await pool.workerTensorCounts(), counts, 'tensors grew in the workers over a second scan');
    });
  }

  it('hands the batches of a worker that goes away to the others', async () => {
    const pool = poolOf(2);
    await pool.whenReady();
    const [gone] = pool.workers;
    let closing: Promise<void> | undefined;
    const got = await scanDataset(model, dataset, {
      batchSize: 4,
      pool,
      onProgress: (p) => {
        if (p.done >= 8) closing ??= gone.close();
      },
    });
    await closing;
    assert.strictEqual(gone.isAlive, false);
    assertSameScan(got, inThread, 'a worker lost mid-scan');
  });

  it('runs in the calling thread when no worker can start', async () => {
    const pool = new ScanPool({ modelPath: modelJson, workers: 2, workerScript: path.join(dir, 'no-such-worker.js') });
    pools.push(pool);
    assertSameScan(await scanDataset(model, dataset, { batchSize: 4, pool }), inThread, 'no worker');
    assert.strictEqual(pool.workers.filter((w) => w.isAlive).length, 0);
  });

  it('stops on cancel with a prefix of the results, in order', async () => {
    const pool = poolOf(2);
    await pool.whenReady();
    const ac = new AbortController();
    const got = await scanDataset(model, dataset, {
      batchSize: 4,
      pool,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.done >= 12) ac.abort();
      },
    });
    assert.strictEqual(got.cancelled, true);
    assert.ok(got.results.length >= 11 && got.results.length < 60, `kept ${got.results.length} results`);
    assert.deepStrictEqual(got.results.map((r) => r.relPath), inThread.results.slice(0, got.results.length).map((r) => r.relPath));
  });
});
