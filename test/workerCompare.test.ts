/**
 * Two models side by side through the real engine worker (dist/worker.js, rebuilt when older than its sources):
 * compare/image loads the second model beside the first (both stay cached; a second class reuses both sessions),
 * compare/run streams rows and replies with the ranking, a cancel keeps what was computed, and nothing grows the
 * worker's tensor count.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { ensureBuilt } from './helpers/build';
import { initBackend } from '../src/extension/engine/backend';
import { EngineClient, EngineError } from '../src/extension/engineClient';
import type { CompareEvent } from '../src/extension/workerProtocol';
import { tempDir, writeModel } from './helpers/modelFiles';
import { bnModel } from './helpers/models';

const ROOT = path.resolve(__dirname, '..');
const LABELS = ['apple', 'banana', 'cherry', 'date', 'elder'];

async function writePng(file: string, seed: number): Promise<void> {
  const px = Buffer.alloc(16 * 16 * 3);
  let s = seed + 1;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = s >> 23;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(file);
}

describe('engine worker: two models side by side', function () {
  this.timeout(120000);
  let client: EngineClient;
  let a: string;
  let b: string;
  let image: string;
  let data: string;

  before(async () => {
    ensureBuilt(['worker.js'], ['src/extension', 'src/shared']);
    await initBackend('cpu');
    const dir = tempDir();
    const m = bnModel();
    a = (await writeModel(m, path.join(dir, 'a'), { labels: LABELS, inputSize: [16, 16], preprocess: '[0,1]' })).modelJson;
    const c1 = m.getLayer('c1');
    const w = c1.getWeights();
    c1.setWeights([tf.randomNormal(w[0].shape, 0, 0.5, 'float32', 99), ...w.slice(1)]);
    b = (await writeModel(m, path.join(dir, 'b'), { labels: LABELS, inputSize: [16, 16], preprocess: '[0,1]' })).modelJson;
    m.dispose();
    image = path.join(dir, 'one.png');
    await writePng(image, 7);
    data = path.join(dir, 'data');
    let k = 0;
    for (const c of ['apple', 'banana', 'cherry']) for (let i = 0; i < 4; i++) await writePng(path.join(data, c, `${i}.png`), k++);
    client = new EngineClient({ workerPath: path.join(ROOT, 'dist', 'worker.js'), backend: 'cpu' });
  });

  after(async () => {
    await client?.dispose();
  });

  it('loads the second model beside the first and compares one image; a second class reuses both models and sessions', async () => {
    const r = await client.compareImage({ modelA: { path: a }, modelB: { path: b }, image: { path: image }, method: 'gradcam', classLabel: 'banana' });
    assert.strictEqual(r.classLabel, 'banana');
    assert.deepStrictEqual([r.a.target.label, r.b.target.label], ['banana', 'banana']);
    assert.strictEqual(r.difference.values.length, r.difference.width * r.difference.height);
    assert.ok(r.difference.values instanceof Float32Array);
    assert.ok(r.correlation >= -1 && r.correlation <= 1);
    assert.strictEqual(r.methodLabel, 'Grad-CAM');
    const mem = await client.memory();
    assert.strictEqual(mem.models, 2, 'both models cached');
    assert.strictEqual(mem.sessions, 2, 'one session per model');
    const again = await client.compareImage({ modelA: { path: a }, modelB: { path: b }, image: { path: image }, method: 'gradcam', classLabel: '2' });
    assert.strictEqual(again.classLabel, 'cherry');
    const after = await client.memory();
    assert.deepStrictEqual([after.models, after.sessions], [2, 2]);
    // The same pair once more: no tensor growth.
    await client.compareImage({ modelA: { path: a }, modelB: { path: b }, image: { path: image }, method: 'gradcam', classLabel: '2' });
    assert.strictEqual((await client.memory()).numTensors, after.numTensors);
  });

  it('refuses a class one model lacks with the engine error', async () => {
    await assert.rejects(client.compareImage({ modelA: { path: a }, modelB: { path: b }, image: { path: image }, method: 'gradcam', classLabel: 'kiwi' }),
      (e: EngineError) => e.code === 'UNKNOWN_CLASS' && /model A/.test(e.message));
  });

  it('compares a folder in the scan lane: rows streamed, the reply ranked, no tensor left behind', async () => {
    const before = await client.memory();
    const events: CompareEvent[] = [];
    const r = await client.compareRun({ modelA: { path: a }, modelB: { path: b }, data, method: 'gradcam', eventIntervalMs: 0 }, { onEvent: (e) => events.push(e) });
    assert.strictEqual(r.cancelled, false);
    assert.strictEqual(r.rows.length, 12);
    assert.strictEqual(r.root, fs.realpathSync(data));
    assert.deepStrictEqual(events.flatMap((e) => e.rows.map((x) => x.path)).sort(), r.rows.map((x) => x.path).sort());
    assert.strictEqual(events[events.length - 1].done, 12);
    for (let i = 1; i < r.rows.length; i++) {
      const p = r.rows[i - 1];
      const q = r.rows[i];
      assert.ok(Number(p.top1Differs) > Number(q.top1Differs) || (p.top1Differs === q.top1Differs && p.correlation <= q.correlation));
    }
    assert.strictEqual((await client.memory()).numTensors, before.numTensors);
  });

  it('stops a folder comparison on cancel and replies with what it computed', async () => {
    const abort = new AbortController();
    const r = await client.compareRun({ modelA: { path: a }, modelB: { path: b }, data, method: 'gradcam', eventIntervalMs: 0 }, {
      signal: abort.signal,
      onEvent: (e) => e.done >= 2 && abort.abort(),
    });
    assert.strictEqual(r.cancelled, true);
    assert.ok(r.rows.length >= 2 && r.rows.length < 12, `${r.rows.length} rows`);
  });
});
