/**
 * Threads for one forward pass on the wasm backend (#13 item 1): the count asked for is the count that runs (and
 * really is that many OS threads), results do not depend on it, nothing leaks, and neither the CLI nor the engine
 * worker is kept alive or left with threads behind.
 */
import * as assert from 'assert';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import sharp from 'sharp';
import { MAX_WASM_THREADS, defaultThreads, initBackend, resolveThreads } from '../../src/extension/engine/backend';
import { loadModel } from '../../src/extension/engine/model';
import { openImage } from '../../src/extension/engine/pipeline';
import { EngineClient } from '../../src/extension/engineClient';
import { ROOT, ensureBuilt } from '../helpers/build';
import { tempDir, writeModel } from '../helpers/modelFiles';
import { skipBecause } from '../helpers/skip';

const DEMO = path.join(ROOT, 'models', 'demo', 'model.json');
const COUNTS = [1, 2, 4];
const TOLERANCE = 1e-5;

/** OS threads of this process (Linux); undefined elsewhere. */
function osThreads(): number | undefined {
  try {
    return fs.readdirSync('/proc/self/task').length;
  } catch {
    return undefined;
  }
}

/** Waits until `f()` holds or `ms` pass (worker threads end asynchronously); returns the last value seen. */
async function settle(f: () => number | undefined, ok: (n: number) => boolean, ms = 5000): Promise<number | undefined> {
  const end = Date.now() + ms;
  let n = f();
  while (n !== undefined && !ok(n) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    n = f();
  }
  return n;
}

/** The OS thread count once it has not changed for 300 ms (threads of a disposed backend end asynchronously). */
async function stableThreads(): Promise<number | undefined> {
  let n = osThreads();
  let since = Date.now();
  const end = Date.now() + 5000;
  while (n !== undefined && Date.now() - since < 300 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 50));
    const m = osThreads();
    if (m !== n) {
      n = m;
      since = Date.now();
    }
  }
  return n;
}

/**
 * A network with convolutions wide enough that XNNPACK splits them over its threads (a tiny one might run on one
 * thread whatever the pool size, and then agreement across counts would prove nothing): 64x64 input, 32-64
 * channels, a depthwise convolution and batch normalisation, seeded weights, a 10-class softmax head.
 */
function wideModel(): tfl.LayersModel {
  const init = (seed: number) => tfl.initializers.glorotNormal({ seed });
  const input = tfl.input({ shape: [64, 64, 3], name: 'img' });
  let x = tfl.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1), name: 'c1' }).apply(input) as tfl.SymbolicTensor;
  x = tfl.layers.conv2d({ filters: 64, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(2), name: 'c2' }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.batchNormalization({ name: 'bn' }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.reLU({ name: 'r2' }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', depthwiseInitializer: init(3), name: 'dw' }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.conv2d({ filters: 64, kernelSize: 1, activation: 'relu', kernelInitializer: init(4), name: 'last' }).apply(x) as tfl.SymbolicTensor;
  const g = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(5), name: 'fc' }).apply(g) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

async function writeImage(file: string, w: number, h: number): Promise<string> {
  const px = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      px[i] = (x * 7 + y * 3) % 256;
      px[i + 1] = Math.hypot(x - w / 3, y - h / 2) < w / 5 ? 230 : 20;
      px[i + 2] = (x * y) % 256;
    }
  }
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
  return file;
}

interface Outcome {
  threads: number;
  logits: Float32Array;
  map: Float32Array;
  rawMax: number;
}

/** Logits and a Grad-CAM map of `modelJson` on `image` with `threads` wasm threads (the model loaded afresh). */
async function outcome(modelJson: string, image: string, threads: number, layer: string, classChoice: number): Promise<Outcome> {
  const info = await initBackend('wasm', { threads });
  const model = await loadModel(modelJson);
  const opened = await openImage(model, image);
  try {
    const logits = (await opened.session.logits()).slice();
    const r = await opened.session.explain({ method: 'gradcam', layer, classChoice });
    return { threads: info.threads, logits, map: r.heatmap.values.slice(), rawMax: r.heatmap.rawMax };
  } finally {
    opened.session.dispose();
    model.dispose();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.strictEqual(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function assertSame(results: Outcome[], what: string): void {
  const [base, ...rest] = results;
  assert.ok(base.map.length > 1 && base.rawMax > 0, `${what}: the map is flat (rawMax ${base.rawMax}), which would compare nothing`);
  for (const r of rest) {
    const dl = maxAbsDiff(base.logits, r.logits);
    const dm = maxAbsDiff(base.map, r.map);
    assert.ok(dl <= TOLERANCE, `${what}: logits with ${r.threads} threads differ from 1 thread by ${dl}`);
    assert.ok(dm <= TOLERANCE, `${what}: Grad-CAM map with ${r.threads} threads differs from 1 thread by ${dm}`);
    assert.ok(Math.abs(base.rawMax - r.rawMax) <= TOLERANCE * Math.max(1, base.rawMax), `${what}: raw map maximum ${r.rawMax} vs ${base.rawMax}`);
  }
}

describe('wasm threads for one image', function () {
  let dir: string;
  let wideJson: string;
  let wideImage: string;
  let demoImage: string;

  before(async () => {
    await initBackend('cpu');
    dir = tempDir('cam-lens-threads-');
    const m = wideModel();
    wideJson = (await writeModel(m, path.join(dir, 'wide'), { preprocess: '[0,1]' })).modelJson;
    m.dispose();
    wideImage = await writeImage(path.join(dir, 'wide.png'), 80, 72);
    demoImage = await writeImage(path.join(dir, 'demo.png'), 120, 100);
  });
  after(async () => {
    await initBackend('wasm', { threads: 1 });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('resolves 0 to one thread per core, at most MAX_WASM_THREADS, and caps larger counts', () => {
    assert.strictEqual(resolveThreads(0), defaultThreads());
    assert.ok(defaultThreads() >= 1 && defaultThreads() <= MAX_WASM_THREADS);
    assert.strictEqual(resolveThreads(3), 3);
    assert.strictEqual(resolveThreads(1000), MAX_WASM_THREADS);
    assert.throws(() => resolveThreads(-1), /threads must be a whole number/);
    assert.throws(() => resolveThreads(1.5), /threads must be a whole number/);
  });

  for (const n of [1, 2, 4, 20]) {
    const want = Math.min(n, MAX_WASM_THREADS);
    it(`runs ${n} thread${n === 1 ? '' : 's'} when asked for ${n}: reported, in XNNPACK's pool, and as OS threads`, async () => {
      await initBackend('wasm', { threads: 1 });
      const before = await stableThreads();
      const info = await initBackend('wasm', { threads: n });
      assert.strictEqual(info.name, 'wasm');
      assert.strictEqual(info.threads, want, `reported ${info.threads} (notes: ${info.notes.join('; ')})`);
      assert.strictEqual(getThreadsCount(), want);
      if (n > MAX_WASM_THREADS) assert.ok(info.notes.some((s) => s.includes(`at most ${MAX_WASM_THREADS}`)), `notes: ${info.notes.join('; ')}`);
      // The pool's threads beyond the calling one are pthread workers: that many more OS threads, no more
      // (the workers Emscripten starts beyond the pool's are ended).
      if (before !== undefined) {
        const now = await settle(osThreads, (t) => t === before + want - 1);
        assert.strictEqual(now, before + want - 1, `OS threads ${before} -> ${now} for ${want} wasm threads`);
      }
    });
  }

  it('keeps the running thread count when asked without one', async () => {
    const a = await initBackend('wasm', { threads: 2 });
    const b = await initBackend('wasm');
    assert.strictEqual(b, a);
    assert.strictEqual(b.threads, 2);
  });

  it(`gives the same logits and Grad-CAM map with ${COUNTS.join(', ')} threads (max abs diff ${TOLERANCE}) on a small wide model`, async () => {
    const results: Outcome[] = [];
    for (const n of COUNTS) results.push(await outcome(wideJson, wideImage, n, 'last', 3));
    assert.deepStrictEqual(results.map((r) => r.threads), COUNTS);
    assertSame(results, 'small model');
  });

  it(`gives the same logits and Grad-CAM map with ${COUNTS.join(', ')} threads on the bundled demo model`, async () => {
    const results: Outcome[] = [];
    for (const n of COUNTS) results.push(await outcome(DEMO, demoImage, n, 'relu5', 0));
    assert.deepStrictEqual(results.map((r) => r.threads), COUNTS);
    assertSame(results, 'demo model');
  });

  it('leaves the tensor count unchanged over repeated runs with 2 threads', async () => {
    await initBackend('wasm', { threads: 2 });
    const model = await loadModel(wideJson);
    try {
      const once = async () => {
        const opened = await openImage(model, wideImage);
        try {
          await opened.session.logits();
          await opened.session.explain({ method: 'gradcam', layer: 'last', classChoice: 1 });
          await opened.session.explain({ method: 'layercam', layer: 'c2' });
        } finally {
          opened.session.dispose();
        }
      };
      await once();
      const start = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) await once();
      assert.strictEqual(tf.memory().numTensors, start);
    } finally {
      model.dispose();
    }
  });

  /** Runs a node script; resolves with its exit code, output and the ms from its last output to its exit. */
  function runNode(args: string[], timeoutMs: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; tailMs: number }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, args, { cwd: ROOT });
      let stdout = '';
      let stderr = '';
      let last = Date.now();
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        last = Date.now();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        last = Date.now();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout, stderr, tailMs: Date.now() - last });
      });
    });
  }

  const cliArgs = (threads: number) => ['cam', '--model', DEMO, '--image', demoImage, '--backend', 'wasm', '--threads', String(threads), '--json', '-'];

  it('the CLI from source (threaded build from node_modules) exits promptly with 2 threads', async () => {
    const r = await runNode(['--import', 'tsx', path.join(ROOT, 'src', 'extension', 'cli.ts'), ...cliArgs(2)], 90000);
    assert.strictEqual(r.signal, null, `killed after 90 s: it hung (stderr: ${r.stderr})`);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.strictEqual(j.backend, 'wasm');
    assert.strictEqual(j.threads, 2);
    assert.ok(r.tailMs < 3000, `exited ${r.tailMs} ms after its last output`);
  });

  describe('bundled (dist/)', () => {
    before(function () {
      this.timeout(300000);
      ensureBuilt(['cli.js', 'worker.js', 'tfjs-backend-wasm-threaded-simd.js', 'tfjs-backend-wasm-threaded-simd.worker.js'], ['src']);
    });

    it('dist/cli.js runs the threaded build from dist/ and exits promptly with 4 threads', async () => {
      const r = await runNode([path.join(ROOT, 'dist', 'cli.js'), ...cliArgs(4)], 60000);
      assert.strictEqual(r.signal, null, `killed after 60 s: it hung (stderr: ${r.stderr})`);
      assert.strictEqual(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.strictEqual(j.threads, 4);
      assert.ok(r.tailMs < 3000, `exited ${r.tailMs} ms after its last output`);
    });

    it('falls back to one thread, and lives, when the pthread worker script is broken', async () => {
      // A copy of the bundle whose pthread script throws; node_modules is found through NODE_PATH.
      const copy = tempDir('cam-lens-threads-dist-');
      try {
        for (const f of fs.readdirSync(path.join(ROOT, 'dist'))) {
          if (f === 'cli.js' || f.endsWith('.wasm') || f === 'tfjs-backend-wasm-threaded-simd.js') fs.copyFileSync(path.join(ROOT, 'dist', f), path.join(copy, f));
        }
        fs.writeFileSync(path.join(copy, 'tfjs-backend-wasm-threaded-simd.worker.js'), 'throw new Error("broken pthread script");\n');
        const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, [path.join(copy, 'cli.js'), ...cliArgs(2)], { env: { ...process.env, NODE_PATH: path.join(ROOT, 'node_modules') } });
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
          child.on('close', (code) => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr });
          });
        });
        assert.strictEqual(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout);
        assert.strictEqual(j.backend, 'wasm');
        assert.strictEqual(j.threads, 1);
      } finally {
        fs.rmSync(copy, { recursive: true, force: true });
      }
    });

    it('the engine worker runs its pthreads as nested workers, switches counts, and leaves no thread behind', async function () {
      const baseline = await stableThreads();
      const client = new EngineClient({ workerPath: path.join(ROOT, 'dist', 'worker.js'), backend: 'wasm', threads: 2 });
      try {
        const model = { path: DEMO };
        const d = await client.describeModel(model);
        assert.strictEqual(d.backend.name, 'wasm');
        assert.strictEqual(d.backend.threads, 2);
        const a = await client.computeCam({ model, image: { path: demoImage }, method: 'gradcam', classIndex: 0 });
        const s = await client.setBackend('wasm', undefined, 3);
        assert.strictEqual(s.threads, 3);
        const b = await client.computeCam({ model, image: { path: demoImage }, method: 'gradcam', classIndex: 0 });
        assert.ok(maxAbsDiff(a.heatmap.values, b.heatmap.values) <= TOLERANCE, 'the map changed with the thread count');
        if (baseline !== undefined) {
          // The engine worker itself, its 2 pool threads (of 3), perhaps a helper thread of its own.
          const during = await settle(osThreads, (t) => t <= baseline + 4);
          assert.ok(during !== undefined && during >= baseline + 3 && during <= baseline + 4, `OS threads ${baseline} -> ${during} with 3 wasm threads in the worker`);
        }
      } finally {
        await client.dispose();
      }
      if (baseline === undefined) skipBecause(this, 'other-os', 'thread counts are read from /proc/self/task (Linux)');
      const after = await settle(osThreads, (t) => t <= baseline);
      assert.ok(after !== undefined && after <= baseline, `OS threads ${baseline} before the worker, ${after} after it ended`);
    });
  });
});
