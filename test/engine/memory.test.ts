/**
 * Memory of the engine worker (#13 item 6), through EngineClient and dist/worker.js (rebuilt by `node esbuild.js`
 * when older than its sources):
 * - a model whose last panel let go (EngineClient.holdModel → `model/release`) is freed once it has gone unused for
 *   WorkerOptions.modelIdleMs: no model, no session, and the tensor count of before it loaded; not before that
 *   time, not while another holder shows it, and not when it is used again in between;
 * - weights read from the shard files into tensors one by one (engine/weights.ts) equal tfjs' own decoding;
 * - an Inception-v3-size model (23.9 M parameters, 91 MiB of float32 weights; test/helpers/inceptionSized.ts) on
 *   wasm: the worker's resident memory after loading it, and after its first Grad-CAM, against its weight bytes.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as v8 from 'v8';
import * as vm from 'vm';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { ensureBuilt } from '../helpers/build';
import { initBackend } from '../../src/extension/engine/backend';
import { EngineClient } from '../../src/extension/engineClient';
import type { ModelRef } from '../../src/extension/workerProtocol';
import { tempDir, writeModel } from '../helpers/modelFiles';
import { bnModel } from '../helpers/models';
import { inceptionSizedFiles, type SizedModelFiles } from '../helpers/inceptionSized';
import { readWeightTensors } from '../../src/extension/engine/weights';
import type { WeightShards } from '../../src/extension/engine/loader';

const ROOT = path.resolve(__dirname, '..', '..');
const LABELS = ['apple', 'banana', 'cherry', 'date', 'elder'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** IEEE half-precision bits of a value exactly representable in it. */
function float16Bits(v: number): number {
  if (v === 0) return 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

function ensureWorker(): string {
  ensureBuilt(['worker.js'], ['src/extension', 'src/shared']);
  return path.join(ROOT, 'dist', 'worker.js');
}

/** Collects this thread's garbage, so that the worker's memory is what RSS changes by. */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

async function writeImage(file: string, size: number): Promise<void> {
  const px = Buffer.alloc(size * size * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 251;
  await sharp(px, { raw: { width: size, height: size, channels: 3 } }).png().toFile(file);
}

describe('engine worker memory', function () {
  this.timeout(300000);
  let workerPath: string;
  let dir: string;
  let small: ModelRef;
  let image: string;

  before(async () => {
    await initBackend('cpu');
    workerPath = ensureWorker();
    dir = tempDir('cam-lens-memory-');
    const m = bnModel();
    small = { path: (await writeModel(m, path.join(dir, 'model'), { labels: LABELS, inputSize: [16, 16], preprocess: '[0,1]' })).modelJson };
    m.dispose();
    image = path.join(dir, 'photo.png');
    await writeImage(image, 64);
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('a model no panel shows any more', () => {
    const IDLE_MS = 400;
    let client: EngineClient;

    beforeEach(() => {
      client = new EngineClient({ workerPath, backend: 'cpu', modelIdleMs: IDLE_MS });
    });

    afterEach(async () => {
      await client.dispose();
    });

    it('is freed after modelIdleMs without use: no model, no session, the tensor count of before it loaded', async () => {
      const before = await client.memory();
      assert.deepStrictEqual([before.models, before.sessions], [0, 0]);
      const release = client.holdModel(small.path);
      await client.computeCam({ model: small, image: { path: image }, method: 'gradcam' });
      const loaded = await client.memory();
      assert.deepStrictEqual([loaded.models, loaded.sessions], [1, 1]);
      assert.ok(loaded.numTensors > before.numTensors, 'the model holds tensors');
      release();
      release(); // a second call does nothing
      await sleep(IDLE_MS / 3);
      assert.strictEqual((await client.memory()).models, 1, 'freed before the idle time passed');
      await sleep(IDLE_MS + 300);
      const after = await client.memory();
      assert.deepStrictEqual([after.models, after.sessions, after.numTensors], [0, 0, before.numTensors]);
      // It loads again on demand.
      const again = await client.computeCam({ model: small, image: { path: image }, method: 'gradcam' });
      assert.strictEqual(again.cached, false);
    });

    it('stays while another holder shows it, and when it is used again after the release', async () => {
      const a = client.holdModel(small.path);
      const b = client.holdModel(path.join(path.dirname(small.path), '.', 'model.json'));
      await client.computeCam({ model: small, image: { path: image }, method: 'gradcam' });
      a();
      await sleep(IDLE_MS + 300);
      assert.strictEqual((await client.memory()).models, 1, 'freed while another panel shows it');
      b();
      await client.computeCam({ model: small, image: { path: image }, method: 'gradcam', classIndex: 2 });
      await sleep(IDLE_MS + 300);
      assert.strictEqual((await client.memory()).models, 1, 'freed although it was used after the release');
    });

    it('answers a release of a model it never loaded, and keeps serving', async () => {
      assert.deepStrictEqual(await client.request('model/release', { model: { path: path.join(dir, 'nothing', 'model.json') } }), { released: 0 });
      const r = await client.computeCam({ model: small, image: { path: image }, method: 'gradcam' });
      assert.strictEqual(r.heatmap.values.length, r.heatmap.width * r.heatmap.height);
    });
  });

  describe('weights read from the shard files', () => {
    /** Specs of every kind a manifest may hold, and their bytes as tfjs lays them out, split over 3 shards. */
    function shardsOf(bytes: Uint8Array, cuts: number[]): WeightShards {
      const shards: WeightShards['shards'] = [];
      let from = 0;
      for (const [i, to] of [...cuts, bytes.length].entries()) {
        const file = path.join(dir, `w-${i}.bin`);
        fs.writeFileSync(file, bytes.subarray(from, to));
        shards.push({ file, bytes: to - from });
        from = to;
      }
      return { shards, total: bytes.length };
    }

    for (const backend of ['cpu', 'wasm'] as const) {
      it(`gives the tensors tf.io.decodeWeights gives, for every weight kind and across shard boundaries (${backend})`, async () => {
        await initBackend(backend, { threads: 1 });
        const specs: tf.io.WeightsManifestEntry[] = [
          { name: 'a', shape: [3, 5], dtype: 'float32' },
          { name: 'q8', shape: [7], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.5, min: -1 } },
          { name: 'b', shape: [2, 3], dtype: 'float32' }, // after 7 bytes: not 4-byte aligned
          { name: 'flag', shape: [3], dtype: 'bool' },
          { name: 'i', shape: [4], dtype: 'int32' },
          { name: 'q16', shape: [2, 2], dtype: 'float32', quantization: { dtype: 'float16' } },
          { name: 'big', shape: [64, 9], dtype: 'float32' },
        ];
        const tensors = [
          tf.tensor(Array.from({ length: 15 }, (_, k) => k / 3 - 2), [3, 5]),
          tf.tensor([0, 1, 2, 3, 4, 5, 6], [7]),
          tf.tensor([1.5, -2, 3.25, 4, -5.5, 6], [2, 3]),
          tf.tensor([true, false, true], [3], 'bool'),
          tf.tensor([7, -8, 9, 2 ** 30], [4], 'int32'),
          tf.tensor([0.5, -1.25, 2, 1024], [2, 2]),
          tf.tensor(Array.from({ length: 576 }, (_, k) => Math.sin(k)), [64, 9]),
        ];
        const encoded = await tf.io.encodeWeights(tensors.map((t, k) => ({ name: specs[k].name, tensor: t })));
        tf.dispose(tensors);
        // encodeWeights writes plain values; the quantized entries are encoded as tfjs' converter stores them.
        const parts: Uint8Array[] = [];
        for (const spec of specs) {
          const one = tf.io.decodeWeights(encoded.data, encoded.specs)[spec.name];
          const values = Float32Array.from(await one.data() as ArrayLike<number>);
          one.dispose();
          if (spec.quantization?.dtype === 'uint8') parts.push(Uint8Array.from(values, (v) => (v - (spec.quantization?.min ?? 0)) / (spec.quantization?.scale ?? 1)));
          else if (spec.quantization?.dtype === 'float16') parts.push(new Uint8Array(Uint16Array.from(values, float16Bits).buffer));
          else if (spec.dtype === 'bool') parts.push(Uint8Array.from(values));
          else parts.push(new Uint8Array((spec.dtype === 'int32' ? Int32Array.from(values) : values).buffer));
        }
        const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        parts.reduce((at, p) => (all.set(p, at), at + p.length), 0);
        const src = shardsOf(all, [30, 61, 150]);
        const before = tf.memory().numTensors;
        const want = tf.io.decodeWeights(all.slice().buffer, specs);
        const got = readWeightTensors(src, specs);
        assert.deepStrictEqual(Object.keys(got), specs.map((x) => x.name));
        for (const spec of specs) {
          assert.deepStrictEqual([got[spec.name].dtype, got[spec.name].shape], [want[spec.name].dtype, want[spec.name].shape], spec.name);
          assert.deepStrictEqual(Array.from(await got[spec.name].data()), Array.from(await want[spec.name].data()), spec.name);
        }
        tf.dispose([...Object.values(got), ...Object.values(want)]);
        assert.strictEqual(tf.memory().numTensors, before);
      });
    }

    it('refuses shards that got shorter since they were checked, leaving no tensor behind', async () => {
      await initBackend('cpu');
      const file = path.join(dir, 'short.bin');
      fs.writeFileSync(file, new Uint8Array(8));
      const before = tf.memory().numTensors;
      assert.throws(() => readWeightTensors({ shards: [{ file, bytes: 16 }], total: 16 }, [
        { name: 'a', shape: [2], dtype: 'float32' },
        { name: 'b', shape: [2], dtype: 'float32' },
      ]), (e: Error & { code?: string }) => e.code === 'SHARD_SIZE_MISMATCH' && /shorter/.test(e.message));
      assert.strictEqual(tf.memory().numTensors, before);
    });
  });

  describe('an Inception-v3-size model on wasm', () => {
    let files: SizedModelFiles;
    let photo: string;

    before(async () => {
      files = await inceptionSizedFiles();
      photo = path.join(dir, 'photo299.png');
      await writeImage(photo, 320);
      collectGarbage();
    });

    it('costs the worker at most 3x its weight bytes once loaded, and is freed with every tensor after its release', async () => {
      const client = new EngineClient({ workerPath, backend: 'wasm', threads: 1, modelIdleMs: 300 });
      try {
        const base = await client.memory();
        const release = client.holdModel(files.modelJson);
        await client.describeModel({ path: files.modelJson });
        const loaded = await client.memory();
        await client.computeCam({ model: { path: files.modelJson }, image: { path: photo }, method: 'gradcam' });
        const mapped = await client.memory();
        const rss = (m: typeof base) => m.rss as number;
        const ratio = (m: typeof base) => (rss(m) - rss(base)) / files.weightBytes;
        console.log(`      RSS ${(rss(base) / 2 ** 20).toFixed(0)} MiB before, +${((rss(loaded) - rss(base)) / 2 ** 20).toFixed(0)} MiB loaded ` +
          `(${ratio(loaded).toFixed(2)}x the ${(files.weightBytes / 2 ** 20).toFixed(0)} MiB of weights), +${((rss(mapped) - rss(base)) / 2 ** 20).toFixed(0)} MiB ` +
          `after the first map (${ratio(mapped).toFixed(2)}x); wasm heap ${((mapped.wasmHeapBytes ?? 0) / 2 ** 20).toFixed(0)} MiB`);
        assert.ok(ratio(loaded) <= 3, `loading the model cost ${ratio(loaded).toFixed(2)}x its weight bytes`);
        release();
        await sleep(900);
        const after = await client.memory();
        assert.deepStrictEqual([after.models, after.sessions, after.numTensors], [0, 0, base.numTensors]);
      } finally {
        await client.dispose();
      }
    });
  });
});
