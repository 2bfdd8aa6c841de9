/**
 * The engine worker through its real thread: the EngineClient's typed calls, caching (the `cached` flags,
 * not wall time), cancellation and supersession, errors with the engine's codes, crash recovery, model
 * reloads on file changes, feature maps, overlay export and tensor counts inside the worker.
 *
 * The worker is bundled here with esbuild exactly as esbuild.js bundles dist/worker.js (same entry, format and
 * externals), into node_modules/.cache so that it resolves TensorFlow.js and sharp from this clone.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import * as esbuild from 'esbuild';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../src/extension/engine/backend';
import { loadModel } from '../src/extension/engine/model';
import { openImage } from '../src/extension/engine/pipeline';
import { METHODS } from '../src/extension/engine/cam/registry';
import {
  EngineClient,
  EngineCancelledError,
  EngineCrashedError,
  EngineError,
  isCancellation,
  type EngineLogEvent,
} from '../src/extension/engineClient';
import type { ModelRef, WorkerToHost } from '../src/extension/workerProtocol';
import { tempDir, writeModel } from './helpers/modelFiles';
import { skipBecause } from './helpers/skip';
import { bnModel } from './helpers/models';

const ROOT = path.resolve(__dirname, '..');
const LABELS = ['ant', 'bee', 'cat', 'dog', 'eel'];

async function buildWorker(): Promise<string> {
  const outfile = path.join(ROOT, 'node_modules', '.cache', 'cam-lens-test', 'worker.js');
  await esbuild.build({
    entryPoints: [path.join(ROOT, 'src', 'extension', 'worker.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node18',
    outfile,
    external: ['vscode', 'sharp', '@tensorflow/*', 'onnxruntime-node'],
    logLevel: 'warning',
  });
  return outfile;
}

/** A PNG of deterministic pseudo-random pixels. */
async function writePng(file: string, w: number, h: number, seed: number): Promise<string> {
  const px = Buffer.alloc(w * h * 3);
  let s = seed;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = s >> 23;
  }
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
  return file;
}

/** conv → flatten → dense: spatial, but no global-average-pooling head, so CAM does not apply. */
function flattenModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [8, 8, 3], name: 'img' });
  const c = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv' }).apply(input) as tfl.SymbolicTensor;
  const f = tfl.layers.flatten({ name: 'flat' }).apply(c) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'fc' }).apply(f) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** Slow on the cpu backend (~0.2 s a pass): Score-CAM over its 48 channels one by one takes seconds. */
function heavyModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [48, 48, 3], name: 'img' });
  const a = tfl.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', name: 'a' }).apply(input) as tfl.SymbolicTensor;
  const b = tfl.layers.conv2d({ filters: 48, kernelSize: 3, padding: 'same', activation: 'relu', name: 'b' }).apply(a) as tfl.SymbolicTensor;
  const g = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(b) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'fc' }).apply(g) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

const isCode = (code: string) => (e: unknown) => e instanceof EngineError && e.code === code;

describe('engine worker', function () {
  let workerPath: string;
  let dir: string;
  let model: ModelRef;
  let client: EngineClient;
  const logs: EngineLogEvent[] = [];
  let imageSeq = 0;
  /** A fresh image path (so no session is cached for it). */
  const freshImage = async () => writePng(path.join(dir, `img${++imageSeq}.png`), 24, 20, imageSeq);

  before(async () => {
    await initBackend('cpu');
    workerPath = await buildWorker();
    dir = tempDir('cam-lens-worker-');
    const written = await writeModel(bnModel(), path.join(dir, 'bn'), { labels: LABELS, preprocess: '[0,1]' });
    model = { path: written.modelJson };
    client = new EngineClient({ workerPath, backend: 'cpu', log: (e) => logs.push(e) });
  });
  after(async () => {
    await client?.dispose();
  });

  describe('round trip', () => {
    it('describes a model: labels, layers, recommended layer, and only the registry\'s methods with availability', async () => {
      const d = await client.describeModel(model);
      assert.deepStrictEqual(d.info.labels, LABELS);
      assert.deepStrictEqual(d.info.inputSize, [16, 16, 3]);
      assert.strictEqual(d.info.preprocess, '[0,1]');
      assert.strictEqual(d.info.recommendedLayer, 'res');
      assert.strictEqual(d.info.backend, 'cpu');
      assert.strictEqual(d.backend.name, 'cpu');
      assert.ok(d.info.spatialLayers.includes('c1') && d.info.spatialLayers.includes('res'));
      assert.ok(!d.info.spatialLayers.includes('gap') && !d.info.spatialLayers.includes('fc'));
      assert.deepStrictEqual(d.layers.map((l) => l.name).slice(-3), ['gap', 'drop', 'fc']);
      assert.ok(d.totalParams > 0);
      assert.deepStrictEqual(d.methods.map((m) => m.id), METHODS.map((m) => m.id));
      assert.ok(d.methods.every((m) => m.available), JSON.stringify(d.methods));
      const gc = d.methods.find((m) => m.id === 'gradcam');
      assert.deepStrictEqual([gc?.needsGradients, d.methods.find((m) => m.id === 'cam')?.needsGradients], [true, false]);
      assert.deepStrictEqual(d.methods.filter((m) => m.classIndependent).map((m) => m.id), METHODS.filter((m) => m.classIndependent).map((m) => m.id));
      assert.deepStrictEqual(d.methods.map((m) => m.label), METHODS.map((m) => m.label));

      const flat = await writeModel(flattenModel(), path.join(dir, 'flat'));
      const f = await client.describeModel({ path: flat.modelJson });
      const cam = f.methods.find((m) => m.id === 'cam');
      assert.strictEqual(cam?.available, false);
      assert.match(cam?.reason ?? '', /global average pooling/);
      assert.ok(f.methods.filter((m) => m.id !== 'cam').every((m) => m.available));
    });

    it('predicts and explains as the engine does in-process', async () => {
      const image = await freshImage();
      const pred = await client.predict({ model, image: { path: image }, topK: 3 });
      const cam = await client.computeCam({ model, image: { path: image }, method: 'gradcam' });

      const local = await loadModel(model.path);
      const opened = await openImage(local, image);
      try {
        const expected = await opened.session.predictions(3);
        assert.deepStrictEqual(pred.predictions.map((p) => [p.index, p.label]), expected.map((p) => [p.index, p.label]));
        pred.predictions.forEach((p, i) => assert.ok(Math.abs(p.probability - expected[i].probability) < 1e-6));
        assert.deepStrictEqual(pred.imageSize, [24, 20]);

        const ex = await opened.session.explain({ method: 'gradcam' });
        assert.ok(cam.heatmap.values instanceof Float32Array);
        assert.deepStrictEqual([cam.heatmap.width, cam.heatmap.height, cam.layer, cam.method], [ex.heatmap.width, ex.heatmap.height, 'res', 'gradcam']);
        assert.deepStrictEqual(cam.target.index, ex.target.index);
        let maxDiff = 0;
        ex.heatmap.values.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - cam.heatmap.values[i]))));
        assert.ok(maxDiff < 1e-5, `heatmaps differ by ${maxDiff}`);
        assert.ok(cam.heatmap.values.every((v) => v >= 0 && v <= 1));
      } finally {
        opened.session.dispose();
        local.dispose();
      }
    });

    it('reuses the forward pass for a second map of the same image, and the gradients for a repeated class', async () => {
      const image = { path: await freshImage() };
      const first = await client.computeCam({ model, image, method: 'gradcam', classIndex: 1 });
      assert.deepStrictEqual([first.cached, first.cachedGradients], [false, false]);
      const method = await client.computeCam({ model, image, method: 'cam', classIndex: 1 });
      assert.strictEqual(method.cached, true, 'a new method on the same image reuses the activations');
      const cls = await client.computeCam({ model, image, method: 'gradcam', classIndex: 3 });
      assert.deepStrictEqual([cls.cached, cls.cachedGradients, cls.target.index, cls.target.label], [true, false, 3, 'dog']);
      const again = await client.computeCam({ model, image, method: 'layercam', classIndex: 3 });
      assert.deepStrictEqual([again.cached, again.cachedGradients], [true, true]);
      // The log entries the host writes to its output channel say the same.
      const camLogs = logs.filter((e) => e.kind === 'computation' && e.entry.type === 'cam/compute' && e.entry.image === image.path);
      assert.deepStrictEqual(camLogs.map((e) => e.kind === 'computation' && [e.entry.method, e.entry.cached, e.entry.layer, e.entry.backend]), [
        ['gradcam', false, 'res', 'cpu'], ['cam', true, 'res', 'cpu'], ['gradcam', true, 'res', 'cpu'], ['layercam', true, 'res', 'cpu'],
      ]);
      assert.ok(camLogs.every((e) => e.kind === 'computation' && e.entry.ms >= 0 && e.entry.model === model.path));
    });

    it('computes the first map from the forward pass a prediction already ran', async () => {
      const image = { path: await freshImage() };
      await client.predict({ model, image });
      const cam = await client.computeCam({ model, image, method: 'gradcam' });
      assert.strictEqual(cam.cached, true);
    });

    it('sends feature maps with weights, and renders the last map as a PNG', async () => {
      const image = { path: await freshImage() };
      const fm = await client.featureMaps({ model, image, layer: 'res', classIndex: 2 });
      assert.deepStrictEqual([fm.layer, fm.width, fm.height, fm.channels, fm.truncated, fm.classIndex], ['res', 8, 8, 8, false, 2]);
      assert.ok(fm.values instanceof Float32Array && fm.values.length === 8 * 8 * 8);
      assert.ok(fm.weights instanceof Float32Array && fm.weights.length === 8);
      assert.ok(fm.channelIndex instanceof Int32Array);

      const cam = await client.computeCam({ model, image, method: 'gradcam', classIndex: 2 });
      const png = await client.renderOverlay({ image, colormap: 'jet', opacity: 1 });
      const meta = await sharp(Buffer.from(png.png)).metadata();
      assert.deepStrictEqual([meta.format, meta.width, meta.height, png.width, png.height], ['png', 24, 20, 24, 20]);
      // An explicit map works too, and gives another picture than the last one (a normalised map is 0 at its
      // minimum, so it is never 1 everywhere).
      const flat = await client.renderOverlay({ image, colormap: 'jet', opacity: 1, heatmap: { width: 1, height: 1, values: new Float32Array([1]) } });
      assert.notDeepStrictEqual(Buffer.from(flat.png), Buffer.from(png.png));
      assert.ok(cam.heatmap.values.length === 64);
      await assert.rejects(client.renderOverlay({ image: { path: await freshImage() }, colormap: 'jet', opacity: 0.5 }), isCode('BAD_ARGUMENT'));
    });
  });

  describe('errors', () => {
    it('rejects a missing image and an unknown layer with the engine\'s code and message, and keeps serving', async () => {
      const thread = client.workerThreadId;
      const missing = path.join(dir, 'nope.png');
      const local = await loadModel(model.path);
      let expectedMissing = '';
      let expectedLayer = '';
      try {
        await openImage(local, missing).catch((e: Error) => (expectedMissing = e.message));
        const opened = await openImage(local, await freshImage());
        await opened.session.explain({ method: 'gradcam', layer: 'conv9' }).catch((e: Error) => (expectedLayer = e.message));
        opened.session.dispose();
      } finally {
        local.dispose();
      }
      assert.ok(expectedMissing && expectedLayer);
      await assert.rejects(client.computeCam({ model, image: { path: missing }, method: 'gradcam' }),
        (e: unknown) => e instanceof EngineError && e.code === 'FILE_NOT_FOUND' && e.message === expectedMissing && e.name === 'CamLensError');
      await assert.rejects(client.computeCam({ model, image: { path: await freshImage() }, method: 'gradcam', layer: 'conv9' }),
        (e: unknown) => e instanceof EngineError && e.code === 'UNKNOWN_LAYER' && e.message === expectedLayer && typeof e.hint === 'string');
      await assert.rejects(client.computeCam({ model, image: { path: await freshImage() }, method: 'gradcam', layer: 'gap' }), isCode('LAYER_NOT_SPATIAL'));
      await assert.rejects(client.computeCam({ model, image: { path: await freshImage() }, method: 'gradcam', classIndex: 9 }), isCode('UNKNOWN_CLASS'));
      await assert.rejects(client.describeModel({ path: path.join(dir, 'missing', 'model.json') }), (e: unknown) => e instanceof EngineError && !!e.code);
      // A malformed request is answered too (BAD_REQUEST), not dropped.
      await assert.rejects(client.request('cam/compute', { model } as never), isCode('BAD_REQUEST'));
      await assert.rejects(client.request('debug/crash', { how: 'exit' }), isCode('BAD_ARGUMENT'), 'test hooks are off by default');
      const ok = await client.computeCam({ model, image: { path: await freshImage() }, method: 'gradcam' });
      assert.strictEqual(ok.layer, 'res');
      assert.strictEqual(client.workerThreadId, thread, 'the same worker still serves');
      const errLog = logs.find((e) => e.kind === 'computation' && e.error?.code === 'UNKNOWN_LAYER');
      assert.ok(errLog, 'failed computations are logged with their error');
    });
  });

  describe('cancellation', () => {
    it('rejects a request whose signal aborts with the cancel error, and the worker goes on', async () => {
      const ac = new AbortController();
      const p = client.computeCam({ model, image: { path: await freshImage() }, method: 'gradcam' }, { signal: ac.signal });
      ac.abort();
      await assert.rejects(p, (e: unknown) => e instanceof EngineCancelledError && e.code === 'CANCELLED' && e.name === 'CancelledError' && isCancellation(e));
      const pre = new AbortController();
      pre.abort();
      await assert.rejects(client.predict({ model, image: { path: await freshImage() } }, { signal: pre.signal }), isCode('CANCELLED'));
      const ok = await client.computeCam({ model, image: { path: await freshImage() }, method: 'gradcam' });
      assert.strictEqual(ok.method, 'gradcam');
      assert.strictEqual(client.pendingCount, 0);
    });

    it('cancels an older request with the same supersede key', async () => {
      const image = { path: await freshImage() };
      const older = client.computeCam({ model, image, method: 'gradcam', classIndex: 0 }, { supersedeKey: 'panel-1' });
      const other = client.computeCam({ model, image, method: 'gradcam', classIndex: 1 }, { supersedeKey: 'panel-2' });
      const newer = client.computeCam({ model, image, method: 'gradcam', classIndex: 4 }, { supersedeKey: 'panel-1' });
      await assert.rejects(older, (e: unknown) => e instanceof EngineCancelledError && e.code === 'SUPERSEDED' && e.reason === 'superseded' && /superseded/.test(e.message));
      const [o, n] = await Promise.all([other, newer]);
      assert.deepStrictEqual([o.target.index, n.target.index], [1, 4]);
    });

    it('forwards progress events of a long method, and its cancel stops the worker between two batches', async () => {
      const image = { path: await freshImage() };
      const progress: [number, number][] = [];
      const sc = await client.computeCam({ model, image, method: 'scorecam', options: { batchSize: 2 } }, { onProgress: (d, t) => progress.push([d, t]) });
      assert.strictEqual(sc.method, 'scorecam');
      assert.ok(progress.length >= 2, JSON.stringify(progress));
      const total = progress[0][1];
      assert.ok(total > 0 && progress.every(([, t]) => t === total));
      assert.deepStrictEqual(progress[progress.length - 1], [total, total]);

      // Score-CAM never yields to the worker's event loop: the cancel reaches it through the shared board.
      const heavy = await writeModel(heavyModel(), path.join(dir, 'heavy'), { labels: ['x', 'y', 'z'] });
      const big = { path: await writePng(path.join(dir, 'big.png'), 48, 48, 5) };
      const ac = new AbortController();
      const seen: number[] = [];
      const t0 = performance.now();
      const p = client.computeCam({ model: { path: heavy.modelJson }, image: big, method: 'scorecam', options: { batchSize: 1 } }, {
        signal: ac.signal,
        onProgress: (d) => {
          seen.push(d);
          ac.abort();
        },
      });
      await assert.rejects(p, isCode('CANCELLED'));
      // The worker's own answer (in the log) says it stopped, not that it finished.
      const next = await client.predict({ model, image });
      const elapsed = performance.now() - t0;
      assert.strictEqual(next.predictions.length, 5);
      const entry = logs.filter((e) => e.kind === 'computation' && e.entry.type === 'cam/compute' && e.entry.method === 'scorecam').pop();
      assert.ok(entry && entry.kind === 'computation' && entry.error?.code === 'CANCELLED', JSON.stringify(entry));
      assert.ok(elapsed < 8000, `the worker was free again after ${elapsed.toFixed(0)} ms`);
    });

    it('answers a cancelled request from the worker itself, queued or running (raw protocol)', async () => {
      const w = new Worker(workerPath, { workerData: { backend: 'cpu' } });
      try {
        const replies: WorkerToHost[] = [];
        const done = new Promise<void>((resolve, reject) => {
          w.on('message', (m: WorkerToHost) => {
            replies.push(m);
            if (replies.filter((r) => !('type' in r)).length === 3) resolve();
          });
          w.on('error', reject);
        });
        const image = { path: await freshImage() };
        // 1 runs (it yields after loading the model), 2 and 3 wait behind it and are cancelled in the queue.
        w.postMessage({ id: 1, type: 'model/describe', model });
        w.postMessage({ id: 2, type: 'cam/compute', model, image, method: 'gradcam' });
        w.postMessage({ type: 'cancel', id: 2 });
        w.postMessage({ id: 3, type: 'cam/compute', model, image, method: 'gradcam' });
        w.postMessage({ type: 'cancel', id: 3 });
        await done;
        const byId = new Map(replies.filter((r) => !('type' in r)).map((r) => [r.id, r]));
        const r1 = byId.get(1);
        assert.ok(r1 && 'ok' in r1 && r1.ok);
        for (const id of [2, 3]) {
          const r = byId.get(id);
          assert.ok(r && 'ok' in r && !r.ok && r.error.code === 'CANCELLED', JSON.stringify(r));
        }
        const order = replies.filter((r) => !('type' in r)).map((r) => r.id);
        assert.deepStrictEqual(order, [2, 3, 1], 'queued requests are answered as soon as they are cancelled');
        // And a running one stops at its next step: 4 starts alone, the cancel arrives while it runs.
        const r4 = new Promise<WorkerToHost>((resolve) => w.on('message', (m: WorkerToHost) => m.id === 4 && !('type' in m) && resolve(m)));
        w.postMessage({ id: 4, type: 'cam/compute', model, image, method: 'gradcam' });
        setImmediate(() => w.postMessage({ type: 'cancel', id: 4 }));
        const reply = await r4;
        assert.ok('ok' in reply && !reply.ok && reply.error.code === 'CANCELLED', JSON.stringify(reply));
      } finally {
        await w.terminate();
      }
    });
  });

  describe('worker life', () => {
    it('rejects pending requests when the worker dies, and the next request gets a fresh worker', async () => {
      const events: EngineLogEvent[] = [];
      const c = new EngineClient({ workerPath, backend: 'cpu', testHooks: true, log: (e) => events.push(e) });
      try {
        const image = { path: await freshImage() };
        await c.predict({ model, image });
        const first = c.workerThreadId;
        const crash = c.request('debug/crash', { how: 'exit' });
        const queued = c.computeCam({ model, image, method: 'gradcam' });
        const [crashed, dropped] = await Promise.allSettled([crash, queued]);
        assert.ok(crashed.status === 'rejected' && crashed.reason instanceof EngineCrashedError && crashed.reason.code === 'WORKER_EXITED' &&
          /exited with code 70/.test(crashed.reason.message), String(crashed.status === 'rejected' && crashed.reason));
        assert.ok(dropped.status === 'rejected' && dropped.reason instanceof EngineCrashedError && /cam\/compute/.test(dropped.reason.message));
        assert.strictEqual(c.pendingCount, 0);
        const after = await c.computeCam({ model, image, method: 'gradcam' });
        assert.strictEqual(after.cached, false, 'a new worker starts with empty caches');
        assert.notStrictEqual(c.workerThreadId, first);

        // An uncaught error kills the worker too.
        const second = c.workerThreadId;
        await assert.rejects(c.request('debug/crash', { how: 'throw' }), (e: unknown) => e instanceof EngineCrashedError && /test crash/.test(e.message));
        const again = await c.predict({ model, image });
        assert.strictEqual(again.predictions.length, 5);
        assert.notStrictEqual(c.workerThreadId, second);
        assert.ok(events.some((e) => e.kind === 'worker' && /exited with code 70/.test(e.message)));
      } finally {
        await c.dispose();
      }
    });

    it('runs the worker thread below normal priority, the host thread unchanged (Linux)', async function () {
      // Thread priorities are read from /proc/thread-self, which only Linux has: skip elsewhere, not here.
      if (!fs.existsSync('/proc/thread-self')) skipBecause(this, 'other-os', '/proc/thread-self is absent; thread priorities can only be read on Linux');
      await client.memory();
      const nice = (task: string) => {
        const stat = fs.readFileSync(`/proc/${process.pid}/task/${task}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      };
      const tasks = fs.readdirSync(`/proc/${process.pid}/task`);
      assert.strictEqual(nice(String(process.pid)), 0);
      assert.ok(tasks.some((t) => nice(t) === 10), 'one thread (the engine worker) runs at nice 10');
    });

    it('rejects rather than hangs when the worker cannot start, and after dispose', async () => {
      const c = new EngineClient({ workerPath: path.join(dir, 'no-such-worker.js') });
      await assert.rejects(c.describeModel(model), (e: unknown) => e instanceof EngineCrashedError);
      await c.dispose();
      await assert.rejects(c.describeModel(model), isCode('DISPOSED'));

      const d = new EngineClient({ workerPath, backend: 'cpu' });
      const pending = assert.rejects(d.describeModel(model), isCode('DISPOSED'));
      await d.dispose();
      await pending;
    });
  });

  describe('caches', () => {
    it('reloads a model whose files changed, and re-reads an image that changed', async () => {
      const mdir = path.join(dir, 'reload');
      const w1 = await writeModel(bnModel(), mdir, { labels: LABELS, preprocess: '[0,1]' });
      const ref = { path: w1.modelJson };
      const image = { path: await freshImage() };
      const modelLogs = () => logs.filter((e) => e.kind === 'computation' && e.entry.type === 'model/describe' && e.entry.model === w1.modelJson)
        .map((e) => e.kind === 'computation' && e.entry.cached);
      await client.describeModel(ref);
      const before = await client.predict({ model: ref, image });
      await client.describeModel(ref);
      assert.deepStrictEqual(modelLogs(), [false, true]);

      // New weights (a new random init), same file names; the mtime moves on.
      const m2 = bnModel();
      m2.getLayer('fc').setWeights(m2.getLayer('fc').getWeights().map((t) => tf.mul(t, -3)));
      await writeModel(m2, mdir, { labels: LABELS, preprocess: '[0,1]' });
      const future = new Date(Date.now() + 10_000);
      for (const f of ['model.json', 'weights.bin']) fs.utimesSync(path.join(mdir, f), future, future);
      await client.describeModel(ref);
      assert.deepStrictEqual(modelLogs(), [false, true, false]);
      const after = await client.predict({ model: ref, image });
      assert.notDeepStrictEqual(after.predictions.map((p) => p.probability), before.predictions.map((p) => p.probability));
      const local = await loadModel(ref.path);
      const opened = await openImage(local, image.path);
      const expected = await opened.session.predictions(5);
      opened.session.dispose();
      local.dispose();
      after.predictions.forEach((p, i) => assert.ok(Math.abs(p.probability - expected[i].probability) < 1e-6));

      // The image: same path, other pixels.
      const c1 = await client.computeCam({ model: ref, image, method: 'gradcam' });
      assert.strictEqual(c1.cached, true);
      await writePng(image.path, 24, 20, 999);
      fs.utimesSync(image.path, future, future);
      const c2 = await client.computeCam({ model: ref, image, method: 'gradcam' });
      assert.strictEqual(c2.cached, false);
    });

    it('keeps separate sessions per preprocessing and per metadata override', async () => {
      const image = { path: await freshImage() };
      const a = await client.computeCam({ model, image, method: 'gradcam' });
      const b = await client.computeCam({ model, image: { ...image, preprocess: '[-1,1]' }, method: 'gradcam' });
      assert.deepStrictEqual([a.cached, b.cached], [false, false]);
      const c = await client.predict({ model: { ...model, overrides: { labels: ['v', 'w', 'x', 'y', 'z'] } }, image });
      assert.ok(c.predictions.every((p) => ['v', 'w', 'x', 'y', 'z'].includes(p.label)));
      const again = await client.computeCam({ model, image: { ...image, preprocess: '[-1,1]' }, method: 'cam' });
      assert.strictEqual(again.cached, true);
    });

    it('lists a model\'s outputs and explains the one a ModelRef names, each output a model of its own in the cache', async () => {
      // Two heads on one trunk: a 3-class softmax (the default) and a single-sigmoid binary head.
      const input = tfl.input({ shape: [8, 8, 3], name: 'img' });
      const c = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv' }).apply(input) as tfl.SymbolicTensor;
      const g = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(c) as tfl.SymbolicTensor;
      const kind = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'kind' }).apply(g) as tfl.SymbolicTensor;
      const sick = tfl.layers.dense({ units: 1, activation: 'sigmoid', name: 'sick' }).apply(g) as tfl.SymbolicTensor;
      const heads = await writeModel(tfl.model({ inputs: input, outputs: [kind, sick] }), path.join(dir, 'heads'), { labels: { kind: ['a', 'b', 'c'], sick: ['healthy', 'sick'] } });
      const image = { path: await freshImage() };
      const d = await client.describeModel({ path: heads.modelJson });
      assert.deepStrictEqual([d.info.output, d.info.outputs, d.info.labels], ['kind', [{ name: 'kind', units: 3, activation: 'softmax' }, { name: 'sick', units: 1, activation: 'sigmoid' }], ['a', 'b', 'c']]);
      assert.strictEqual(d.info.binary, undefined);
      const ref = { path: heads.modelJson, overrides: { output: 'sick' } };
      const s = await client.describeModel(ref);
      assert.deepStrictEqual([s.info.output, s.info.binary, s.info.labels], ['sick', true, ['healthy', 'sick']]);
      const pred = await client.predict({ model: ref, image, topK: 5 });
      assert.deepStrictEqual(pred.predictions.map((p) => p.label).sort(), ['healthy', 'sick']);
      assert.ok(Math.abs(pred.predictions[0].probability + pred.predictions[1].probability - 1) < 1e-6);
      const zero = await client.computeCam({ model: ref, image, method: 'gradcam', classIndex: 0 });
      const one = await client.computeCam({ model: ref, image, method: 'gradcam', classIndex: 1 });
      assert.deepStrictEqual([zero.target.label, one.target.label], ['healthy', 'sick']);
      // The default output's model is another cache entry: its classes are the softmax head's.
      const other = await client.computeCam({ model: { path: heads.modelJson }, image, method: 'gradcam', classIndex: 2 });
      assert.strictEqual(other.target.label, 'c');
      await assert.rejects(client.describeModel({ path: heads.modelJson, overrides: { output: 'age' } }), (e) => isCode('UNKNOWN_OUTPUT')(e) && /"kind" \(0: 3 units, softmax\), "sick" \(1: 1 unit, sigmoid\)/.test((e as Error).message));
    });

    it('grows no tensors in the worker over repeated requests', async () => {
      const image = { path: await freshImage() };
      const round = async () => {
        await client.predict({ model, image });
        for (const m of METHODS) await client.computeCam({ model, image, method: m.id as 'gradcam', classIndex: 2 });
        await client.computeCam({ model, image, method: 'gradcam', classIndex: 0, layer: 'r1' });
        await client.featureMaps({ model, image, layer: 'dw', classIndex: 1 });
        await client.renderOverlay({ image, colormap: 'viridis', opacity: 0.4 });
        await client.computeCam({ model, image, method: 'gradcam', layer: 'nope' }).catch(() => undefined);
      };
      await round();
      const before = await client.memory();
      for (let i = 0; i < 3; i++) await round();
      const after = await client.memory();
      assert.deepStrictEqual([after.numTensors, after.sessions], [before.numTensors, before.sessions]);
      assert.ok(before.numTensors > 0);
    });

    it('frees every cached tensor when the backend changes, and computes on the new one', async () => {
      const status = await client.setBackend('wasm');
      assert.strictEqual(status.name, 'wasm');
      const mem = await client.memory();
      assert.deepStrictEqual([mem.models, mem.sessions, mem.numTensors], [0, 0, 0]);
      const cam = await client.computeCam({ model, image: { path: await freshImage() }, method: 'gradcam' });
      assert.strictEqual(cam.backend, 'wasm');
      assert.strictEqual(cam.heatmap.values.length, 64);
      assert.ok(cam.heatmap.values.every((v) => v >= 0 && v <= 1));
    });
  });
});
