/**
 * Benchmark of the engine worker as the extension host sees it (issue 5, "Benchmark"): everything goes
 * through EngineClient and a real `worker_threads` worker, on the reference MobileNet v1 0.25 at 224x224
 * with ../shared/reference/images/pgc_both_cat_dog.png.
 *
 *   uncached image   request → map for an image the worker has never seen (decode, preprocess, forward,
 *                    gradients, map), Grad-CAM
 *   new method       request → map for another method on an image already explained (cached forward and
 *                    gradients: only the method's own maths)
 *   class switch     Grad-CAM for a new class on a cached image (one partial backward pass); target < 50 ms
 *   event-loop lag   p99 of the host's event-loop delay (perf_hooks.monitorEventLoopDelay) while the worker
 *                    runs a long computation: Score-CAM when the registry has it, else Grad-CAM on every
 *                    spatial layer; target < 20 ms. For context: the noise floor (host idle), a control (a bare
 *                    JS busy loop in another thread: what CPU contention alone costs), and the same work run on
 *                    the host's own thread (what the worker saves).
 *
 * Run: node --import tsx bench/worker.ts   (BENCH_REPS, BENCH_BACKEND=auto|wasm|cpu|node)
 * The worker is bundled first with esbuild, as esbuild.js bundles dist/worker.js.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'perf_hooks';
import { Worker } from 'worker_threads';
import * as esbuild from 'esbuild';
import { EngineClient } from '../src/extension/engineClient';
import type { BackendChoice, ModelRef } from '../src/extension/workerProtocol';
import type { CamMethodId } from '../src/shared/protocol';
import { METHODS } from '../src/extension/engine/cam/registry';
import { initBackend } from '../src/extension/engine/backend';
import { loadModel } from '../src/extension/engine/model';
import { openImage } from '../src/extension/engine/pipeline';

const ROOT = path.resolve(__dirname, '..');
const SHARED = path.resolve(ROOT, '..', 'shared', 'reference');
const MODEL = path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json');
const LABELS = path.join(SHARED, 'imagenet_classes.json');
const IMAGE = path.join(SHARED, 'images', 'pgc_both_cat_dog.png');
/** monitorEventLoopDelay samples with a timer of this period; a sample is the time between two ticks. */
const RESOLUTION_MS = 10;

async function buildWorker(): Promise<string> {
  const outfile = path.join(ROOT, 'node_modules', '.cache', 'cam-lens-bench', 'worker.js');
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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed<T>(f: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const r = await f();
  return [performance.now() - t, r];
}

interface Lag {
  p50: number;
  p99: number;
  max: number;
  samples: number;
}

/** Event-loop delay while `work` runs: percentiles of (tick interval − timer period), in ms. */
async function lagDuring(work: () => Promise<void>): Promise<Lag & { ms: number }> {
  const h: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  // The histogram's timer needs a first tick before a blocked loop can be measured against it.
  await new Promise((r) => setTimeout(r, 3 * RESOLUTION_MS));
  const t = performance.now();
  await work();
  const ms = performance.now() - t;
  // Let the sampling timer fire once more, so that a loop blocked until the very end is recorded too.
  await new Promise((r) => setTimeout(r, 3 * RESOLUTION_MS));
  h.disable();
  const excess = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  return { p50: excess(h.percentile(50)), p99: excess(h.percentile(99)), max: excess(h.max), samples: h.count, ms };
}

const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

function row(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
}

async function main(): Promise<void> {
  if (!fs.existsSync(MODEL)) {
    console.log(`bench/worker: ${MODEL} is absent; the benchmark needs ../shared/reference`);
    return;
  }
  const reps = Number(process.env.BENCH_REPS ?? 9);
  const backend = (process.env.BENCH_BACKEND ?? 'auto') as BackendChoice;
  const workerPath = await buildWorker();
  const labels = JSON.parse(fs.readFileSync(LABELS, 'utf8')) as string[];
  const model: ModelRef = { path: MODEL, overrides: { labels, preprocess: '[-1,1]' } };
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-bench-'));
  const copy = (i: number) => {
    const f = path.join(tmp, `photo${i}.png`);
    fs.copyFileSync(IMAGE, f);
    return { path: f };
  };
  const client = new EngineClient({ workerPath, backend });
  try {
    const [startMs, desc] = await timed(() => client.describeModel(model));
    const b = desc.backend;
    console.log(`\nengine worker — MobileNet v1 0.25 at 224x224, ${path.basename(IMAGE)}, backend ${b.name}` +
      `${b.simd !== undefined ? ` (simd ${b.simd}, threads ${b.threads})` : ''}, Node ${process.version}, ${reps} runs, median ms`);
    console.log(`worker start + model load: ${fmt(startMs)} ms; layer ${desc.info.recommendedLayer}`);
    // Warm-up: every method once (first calls set kernels up), on an image not used below.
    const warm = copy(-1);
    for (const m of desc.methods.filter((x) => x.available)) await client.computeCam({ model, image: warm, method: m.id });

    const uncached: number[] = [];
    const newMethod: number[] = [];
    const classSwitch: number[] = [];
    const gradMethods = desc.methods.filter((m) => m.available && m.id !== 'gradcam').map((m) => m.id);
    let cls = 0;
    for (let i = 0; i < reps; i++) {
      const image = copy(i);
      const [t0, first] = await timed(() => client.computeCam({ model, image, method: 'gradcam' }));
      if (first.cached) throw new Error('an uncached image reported a cached forward pass');
      uncached.push(t0);
      const method = gradMethods[i % gradMethods.length] as CamMethodId;
      const [t1, second] = await timed(() => client.computeCam({ model, image, method, classIndex: first.target.index }));
      if (!second.cached) throw new Error('a new method on the same image did not reuse the forward pass');
      newMethod.push(t1);
      // A class nobody asked for yet on this image: new gradients, cached activations.
      cls = (cls + 97) % 1000;
      const [t2, third] = await timed(() => client.computeCam({ model, image, method: 'gradcam', classIndex: cls }));
      if (!third.cached || third.cachedGradients) throw new Error('a class switch should reuse activations and compute new gradients');
      classSwitch.push(t2);
    }

    const hasScoreCam = METHODS.some((m) => m.id === 'scorecam');
    const layers = desc.info.spatialLayers;
    const image = copy(1000);
    const longWork = hasScoreCam
      ? async () => {
        for (let i = 0; i < 3; i++) await client.computeCam({ model, image, method: 'scorecam', classIndex: 281 + i });
      }
      : async () => {
        for (const layer of layers) await client.computeCam({ model, image, method: 'gradcam', layer, classIndex: 281 });
      };
    const longName = hasScoreCam ? 'Score-CAM x3' : `Grad-CAM on all ${layers.length} spatial layers`;
    // The machine's own noise floor (other processes, timer jitter), measured just before.
    const idle = await lagDuring(() => new Promise((r) => setTimeout(r, 3000)));
    // Control: any thread that keeps a core busy (a bare JS loop, no engine, no messages) for 5 s.
    const busy = await lagDuring(() => new Promise<void>((resolve, reject) => {
      const w = new Worker('const t = Date.now(); let x = 0; while (Date.now() - t < 5000) x++;', { eval: true });
      w.on('exit', () => resolve());
      w.on('error', reject);
    }));
    const load = os.loadavg()[0];
    const inWorker = await lagDuring(longWork);

    // The same work on the host's own thread, as it would run without the worker (contrast only).
    await initBackend(b.requested);
    const local = await loadModel(MODEL, { overrides: { labels, preprocess: '[-1,1]' } });
    const opened = await openImage(local, image.path);
    const inHost = await lagDuring(async () => {
      if (hasScoreCam) {
        await opened.session.explain({ method: 'scorecam', classChoice: 281 });
      } else {
        for (const layer of layers) await opened.session.explain({ method: 'gradcam', layer, classChoice: 281 });
      }
    });
    opened.session.dispose();
    local.dispose();

    const w = [44, 9, 10, 8];
    console.log(row(['measure', 'ms', 'target', ''], w));
    const target = (v: number, t: number) => (v < t ? 'ok' : 'MISS');
    console.log(row(['request → map, uncached image (Grad-CAM)', fmt(median(uncached)), '', ''], w));
    console.log(row(['request → map, cached image, new method', fmt(median(newMethod)), '', ''], w));
    console.log(row(['class switch, cached image (Grad-CAM)', fmt(median(classSwitch)), '< 50', target(median(classSwitch), 50)], w));
    console.log(row([`host event-loop lag p99, idle (noise floor)`, fmt(idle.p99), '', ''], w));
    console.log(row([`host event-loop lag p99, bare busy thread`, fmt(busy.p99), '', ''], w));
    console.log(row([`host event-loop lag p99, worker busy`, fmt(inWorker.p99), '< 20', target(inWorker.p99, 20)], w));
    console.log(row([`  (max ${fmt(inWorker.max)} ms over ${inWorker.samples} samples, ${fmt(inWorker.ms)} ms of work)`, '', '', ''], w));
    console.log(row([`host event-loop lag p99, same work in-host`, fmt(inHost.p99), '', ''], w));
    console.log(row([`  (max ${fmt(inHost.max)} ms, ${fmt(inHost.ms)} ms of work)`, '', '', ''], w));
    console.log(`long computation: ${longName} (in-host contrast: ${hasScoreCam ? 'one Score-CAM' : 'the same loop'}); lag = event-loop ` +
      `delay beyond the ${RESOLUTION_MS} ms sampling timer; load average ${load.toFixed(1)} on ${os.availableParallelism?.() ?? os.cpus().length} cores`);
    const mem = await client.memory();
    console.log(`worker: ${mem.numTensors} tensors, ${(mem.numBytes / 2 ** 20).toFixed(1)} MiB, ${mem.models} model(s), ${mem.sessions} session(s)`);
  } finally {
    await client.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
