/**
 * Score-CAM speed on the reference MobileNet v1 0.25 (../shared/reference; its last spatial layer,
 * conv_pw_13_relu, has 256 channels) on the wasm backend: the time of a full explanation on a fresh image
 * (forward pass + every masked pass + map) against the batch size and the thread pool, as a ratio to one
 * batch-1 forward pass, plus the 32-channel "Faster Score-CAM".
 *
 * Targets (issue 4): each masked pass at most half a batch-1 forward pass; the full Score-CAM under 130
 * forward-pass equivalents, the 32-channel variant under 20.
 *
 * The pool is started and warmed before timing (the extension keeps one per model); its cold start is
 * reported on its own. Forward passes and Score-CAM runs alternate, so that drift in machine load hits both
 * alike; the ratios use the fastest run of each (the median run is listed too, over the same fastest forward pass).
 * Run: `node --expose-gc --import tsx bench/scorecam.ts [reps]` (default 5 reps; the 32-channel rows 3x as many).
 *
 * With --agreement it measures instead how close the budgeted Score-CAM (the default: 32 channels) is to the
 * full method: per model and image, every non-constant channel is scored once (the full map), and the map of
 * the top N channels by each criterion is made from those same scores (a channel's weight p_c(X o M_k) does not
 * depend on which other channels are scored, so this is exactly what `channels: N` computes). Pearson r of
 * the two maps at the layer's resolution (the min-max normalisation is affine: r is that of the displayed
 * maps), mean and minimum over the images, for N = 16, 32, 40, 64, by mean activation (the default), by
 * spatial std, and for a random choice of N (the floor). Models: the reference MobileNet v1 0.25 with the
 * ImageNet photos, the demo model with two samples per class, a wide seeded network (1,024 channels at 5x5,
 * 7.9 M parameters; its untrained softmax is nearly flat, so every channel gets about the same weight and the
 * full map is close to the plain channel sum), and with --darknet DarkNet-tiny at its 1,000-channel class
 * layer (20 minutes on two cores).
 *   node --import tsx bench/scorecam.ts --agreement [--darknet]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../src/extension/engine/backend';
import { loadModel } from '../src/extension/engine/model';
import { openImage } from '../src/extension/engine/pipeline';
import type { CamContext } from '../src/extension/engine/cam/base';
import { ImageSession } from '../src/extension/engine/session';
import { decodeImage } from '../src/extension/engine/image';
import { prepareInput } from '../src/extension/engine/pipeline';
import { ScorePool } from '../src/extension/engine/scorePool';
import {
  CHANNEL_CRITERIA, SCORECAM_DEFAULT_BATCH, SCORECAM_DEFAULT_CHANNELS, SCORECAM_DEFAULT_CRITERION, channelStats, channelWeights, scoreCamOptions, scoreChannels, selectChannels,
  type ChannelCriterion,
} from '../src/extension/engine/cam/scorecam';

const SHARED = path.resolve(__dirname, '..', '..', 'shared', 'reference');
const MODEL = path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json');
const IMAGE = path.join(SHARED, 'images', 'pgc_both_cat_dog.png');
const LAYER = 'conv_pw_13_relu';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function cell(c: string | number, w: number): string {
  return (typeof c === 'number' ? c.toFixed(c >= 100 ? 0 : 2) : c).padStart(w);
}

async function main(): Promise<void> {
  if (!fs.existsSync(MODEL)) {
    console.log(`skipped: ${MODEL} is absent (the benchmark needs ../shared/reference next to the clone)`);
    return;
  }
  const reps = Math.max(1, Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 5));
  const info = await initBackend('wasm');
  const labels = JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
  const overrides = { labels, preprocess: '[-1,1]' as const };
  const model = await loadModel(MODEL, { overrides });
  const input = await prepareInput(model, await decodeImage(IMAGE));
  const fresh = () => new ImageSession(model, tf.clone(input));

  // How many channels are really scored (constant channels cost nothing).
  const probe = fresh();
  const a = probe.activation(LAYER);
  const stats = channelStats(await a.data(), a.shape[1] * a.shape[2], a.shape[3]);
  const scored = selectChannels(stats, { rankChannelsBy: SCORECAM_DEFAULT_CRITERION }).length;
  probe.dispose();

  /** Wall ms and CPU ms (all threads of the process: getrusage) of f. */
  const timed = async (f: () => Promise<void>): Promise<[number, number]> => {
    const c = process.cpuUsage();
    const t = performance.now();
    await f();
    const wall = performance.now() - t;
    const cpu = process.cpuUsage(c);
    return [wall, (cpu.user + cpu.system) / 1000];
  };
  const forwardOnce = async () => {
    const s = fresh();
    const r = await timed(() => s.logits().then(() => undefined));
    s.dispose();
    return r;
  };
  for (let i = 0; i < 5; i++) await forwardOnce();

  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const t0 = performance.now();
  const pool = new ScorePool({ modelPath: MODEL, overrides, workers: Math.max(1, cores - 1) });
  const ready = await pool.whenReady();
  const coldMs = performance.now() - t0;
  if (ready === 0) console.log(`note: no worker started (${pool.failures().join('; ') || 'no worker entry found'}): pool rows run in this thread only`);

  const run = async (options: Record<string, unknown>, usePool: boolean) => {
    const s = fresh();
    const r = await timed(async () => {
      await s.explain({ method: 'scorecam', layer: LAYER, classChoice: 'boxer', options, pool: usePool ? pool : undefined });
    });
    s.dispose();
    return r;
  };
  const paired = async (options: Record<string, unknown>, usePool: boolean, n = reps) => {
    await run(options, usePool); // warm-up: kernels for this batch shape
    const fw: [number, number][] = [];
    const me: [number, number][] = [];
    for (let i = 0; i < n; i++) {
      fw.push(await forwardOnce());
      me.push(await run(options, usePool));
    }
    const min = (xs: number[]) => Math.min(...xs);
    return {
      fw: min(fw.map((x) => x[0])),
      ms: min(me.map((x) => x[0])),
      medianMs: median(me.map((x) => x[0])),
      fwCpu: median(fw.map((x) => x[1])),
      cpu: median(me.map((x) => x[1])),
    };
  };

  console.log(`Score-CAM on MobileNet v1 0.25 at ${LAYER} (256 channels, ${scored} non-constant), backend ${info.name} (simd ${info.simd}, threads ${info.threads}),`);
  console.log(`${cores} cores, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}; ${reps} runs, fastest run. Pool: ${ready} worker thread(s) + this thread, cold start ${coldMs.toFixed(0)} ms.`);
  // pass/fwd: wall time of one masked pass (the run minus its forward pass, per scored channel) over a forward
  // pass. cpu pass/fwd: the same in CPU time of all threads, which machine load distorts less; on an idle machine
  // the wall figure with t threads approaches cpu/t.
  // Wall-clock figures use the fastest of the runs (noise from other processes only ever adds time); x fwd med
  // is the median run over the same forward pass.
  const w = [8, 7, 5, 7, 7, 7, 8, 9, 9];
  const header = ['channels', 'threads', 'batch', 'ms', 'fwd ms', 'x fwd', 'pass/fwd', 'x fwd med', 'cpu pass'];
  console.log(header.map((h, i) => cell(h, w[i])).join('  ') + '  target');
  const rows: Array<[string, number | undefined, number, boolean]> = [];
  for (const batch of [1, 8, 16, 32]) for (const usePool of [false, true]) rows.push(['all', undefined, batch, usePool]);
  for (const usePool of [false, true]) rows.push(['top 32', 32, SCORECAM_DEFAULT_BATCH, usePool]);
  // The forward pass every ratio divides by: the fastest one seen in the whole run (the rows' own forward passes
  // included). A forward pass measured right after a pool run was at times 50% slower than the others, which
  // would flatter that row's ratios; the fastest overall can only make the ratios larger.
  let fwBest = Infinity;
  for (let i = 0; i < 20; i++) fwBest = Math.min(fwBest, (await forwardOnce())[0]);
  const measured: Array<{ label: string; top?: number; batch: number; usePool: boolean } & Awaited<ReturnType<typeof paired>>> = [];
  for (const [label, top, batch, usePool] of rows) {
    // The 32-channel runs take a tenth of the time of a full one: three times the runs, for a steadier minimum.
    const r = await paired({ batchSize: batch, channels: top ?? 'all' }, usePool, top ? reps * 3 : reps);
    fwBest = Math.min(fwBest, r.fw);
    measured.push({ label, top, batch, usePool, ...r });
  }
  // Cost of one masked pass: everything but the forward pass that gives the activations, per masked input.
  const passOf = (m: (typeof measured)[number]) => (m.ms - fwBest) / (m.top ?? scored) / fwBest;
  for (const m of measured) {
    const { label, top, batch, usePool, ms, medianMs, fwCpu, cpu } = m;
    const fw = fwBest;
    const n = top ?? scored;
    const ratio = ms / fw;
    const perPass = passOf(m);
    const cpuPass = (cpu - fwCpu) / n / fwCpu;
    const limit = top ? 20 : 130;
    const ok = ratio < limit && perPass <= 0.5;
    // The targets are for what a user gets: the pool at the default batch size; the other rows show why.
    const judged = usePool && batch === SCORECAM_DEFAULT_BATCH;
    const verdict = judged ? `  ${ok ? 'ok' : 'MISS'} <${limit}x, pass ≤0.5` : '';
    const threads = usePool ? `${ready + 1}` : '1';
    // The median run over the same forward pass: a median forward pass is inflated by the pool runs next to it.
    const medianRatio = medianMs / fw;
    console.log([label, threads, batch === SCORECAM_DEFAULT_BATCH ? `${batch}*` : String(batch), ms, fw, ratio, perPass, medianRatio, cpuPass].map((c, i) => cell(c, w[i])).join('  ') + verdict);
  }
  // What the pool can reach at best: a masked pass costs what it costs in one thread, shared over every thread.
  const single = measured.find((m) => !m.top && !m.usePool && m.batch === SCORECAM_DEFAULT_BATCH);
  const pooled = measured.find((m) => !m.top && m.usePool && m.batch === SCORECAM_DEFAULT_BATCH);
  if (single && pooled && ready > 0) {
    const one = passOf(single);
    const ceiling = one / (ready + 1);
    const got = passOf(pooled);
    console.log(`ceiling of ${ready + 1} threads at batch ${SCORECAM_DEFAULT_BATCH}: a masked pass costs ${one.toFixed(2)} of a forward pass in one thread, so at best ${ceiling.toFixed(3)} with ${ready + 1}; the pool reached ${got.toFixed(3)} (${((ceiling / got) * 100).toFixed(0)}% of the ceiling).`);
  }
  await pool.close();
  console.log(`* the default batch size (with ${ready + 1} threads, batchPlan may cut smaller batches so that every thread gets two).`);
  console.log(`tensors after: ${tf.memory().numTensors} (model weights and the input)`);
  input.dispose();
  model.dispose();
}

// ---------------------------------------------------------------------------------------------------------
// --agreement: the budgeted map against the full one

const BUDGETS = [16, SCORECAM_DEFAULT_CHANNELS, 40, 64];

function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i] / n;
    mb += b[i] / n;
  }
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  // A map that is flat (all zero after the ReLU) has no direction: it agrees with nothing.
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
}

/** ReLU(sum_k w_k A^k) at the layer's resolution, as Score-CAM's map before its normalisation. */
function weightedMap(a: Float32Array, positions: number, k: number, w: Float32Array): Float64Array {
  const m = new Float64Array(positions);
  for (let p = 0; p < positions; p++) {
    let s = 0;
    for (let c = 0; c < k; c++) if (w[c] !== 0) s += a[p * k + c] * w[c];
    m[p] = Math.max(0, s);
  }
  return m;
}

/** A fixed pseudo-random order (LCG), so that the random rows are the same from run to run. */
function shuffled<T>(xs: T[], seed: number): T[] {
  let s = seed >>> 0;
  const key = xs.map(() => ((s = (s * 1664525 + 1013904223) >>> 0), s));
  return xs.map((x, i) => [key[i], x] as const).sort((p, q) => p[0] - q[0]).map((p) => p[1]);
}

interface AgreementModel {
  name: string;
  modelPath: string;
  overrides: Record<string, unknown>;
  images: string[];
}

async function agreementOf(m: AgreementModel): Promise<void> {
  const model = await loadModel(m.modelPath, { overrides: m.overrides });
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const pool = new ScorePool({ modelPath: m.modelPath, overrides: m.overrides, workers: Math.max(1, cores - 1) });
  await pool.whenReady();
  const rows = new Map<string, number[]>();
  const push = (key: string, r: number) => rows.set(key, [...(rows.get(key) ?? []), r]);
  let layer = '';
  let shape = '';
  const t0 = performance.now();
  try {
    for (const image of m.images) {
      const { session } = await openImage(model, image);
      try {
        const op = session.targetOp();
        layer = op.name;
        const classIndex = await session.resolveTarget();
        const a = session.activation(layer);
        const [, h, w, k] = a.shape;
        const data = (await a.data()) as Float32Array;
        const stats = channelStats(data, h * w, k);
        const all = selectChannels(stats, { rankChannelsBy: SCORECAM_DEFAULT_CRITERION });
        shape = `${k} channels at ${h}x${w}`;
        const ctx: CamContext = { activation: a, classIndex, input: session.input, scoreBatch: (x) => session.scoreBatch(x, classIndex), scorePool: pool };
        const opts = scoreCamOptions({ channels: 'all' });
        const scores = await scoreChannels(ctx, data, all, opts);
        const full = channelWeights(k, all, scores, opts.weighting);
        const fullMap = weightedMap(data, h * w, k, full);
        const budgeted = (chosen: number[]) => {
          const wb = new Float32Array(k);
          for (const c of chosen) wb[c] = full[c];
          return pearson(fullMap, weightedMap(data, h * w, k, wb));
        };
        for (const n of BUDGETS) {
          for (const by of CHANNEL_CRITERIA) push(`${by} ${n}`, budgeted(selectChannels(stats, { channels: n, rankChannelsBy: by as ChannelCriterion })));
          const rs = [1, 2, 3, 4, 5].map((seed) => budgeted(shuffled(all, seed).slice(0, n)));
          push(`random ${n}`, rs.reduce((x, y) => x + y, 0) / rs.length);
        }
      } finally {
        session.dispose();
      }
    }
  } finally {
    await pool.close();
    model.dispose();
  }
  console.log(`\n${m.name} at ${layer} (${shape}), ${m.images.length} images, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  console.log(`  ${'channels'.padEnd(9)}${[...CHANNEL_CRITERIA.map((c) => `by ${c}`), 'random'].map((c) => `${c}: r mean / min`.padStart(24)).join('')}`);
  for (const n of BUDGETS) {
    const cells = [...CHANNEL_CRITERIA, 'random'].map((c) => {
      const rs = rows.get(`${c} ${n}`) ?? [];
      const mean = rs.reduce((x, y) => x + y, 0) / Math.max(1, rs.length);
      return `${mean.toFixed(3)} / ${Math.min(...rs).toFixed(3)}`.padStart(24);
    });
    console.log(`  ${String(n).padEnd(9)}${cells.join('')}${n === SCORECAM_DEFAULT_CHANNELS ? '   <- default' : ''}`);
  }
}

/** A wide convolutional network with seeded weights: 160x160 input, 7 conv-BN-ReLU blocks to 1,024 channels at 5x5. */
async function wideSeededModel(dir: string): Promise<string> {
  let seed = 100;
  const input = tfl.input({ shape: [160, 160, 3] });
  let x = input;
  for (const [filters, strides] of [[32, 2], [64, 2], [128, 2], [256, 1], [256, 2], [512, 1], [1024, 2]] as const) {
    x = tfl.layers.conv2d({ filters, kernelSize: 3, strides, padding: 'same', useBias: false, kernelInitializer: tfl.initializers.heNormal({ seed: ++seed }) }).apply(x) as tfl.SymbolicTensor;
    // A negative mean shift leaves part of each map at zero after the ReLU, as in trained networks.
    x = tfl.layers.batchNormalization({ betaInitializer: tfl.initializers.randomNormal({ mean: -0.3, stddev: 0.5, seed: ++seed }) }).apply(x) as tfl.SymbolicTensor;
    x = tfl.layers.activation({ activation: 'relu' }).apply(x) as tfl.SymbolicTensor;
  }
  const g = tfl.layers.globalAveragePooling2d({}).apply(x) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 1000, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 9 }) }).apply(g) as tfl.SymbolicTensor;
  const m = tfl.model({ inputs: input, outputs: out });
  await m.save(tf.io.withSaveHandler(async (art) => {
    fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(art.weightData as ArrayBuffer));
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ format: 'layers-model', modelTopology: art.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: art.weightSpecs }] }));
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ preprocess: '[-1,1]' }));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  m.dispose();
  return path.join(dir, 'model.json');
}

async function agreement(): Promise<void> {
  await initBackend('wasm', { threads: 1 });
  console.log(`Score-CAM with a channel budget against the full method: Pearson r of the maps (mean / min over the images); the default is ${SCORECAM_DEFAULT_CHANNELS} channels by ${SCORECAM_DEFAULT_CRITERION}.`);
  const images = path.join(SHARED, 'images');
  const photos = fs.existsSync(images) ? fs.readdirSync(images).filter((f) => !f.startsWith('mnist')).map((f) => path.join(images, f)) : [];
  const root = path.resolve(__dirname, '..');
  const demo = ['circle', 'cross', 'ring', 'square', 'star', 'triangle'].flatMap((c) => fs.readdirSync(path.join(root, 'samples', c)).sort().slice(0, 2).map((f) => path.join(root, 'samples', c, f)));
  if (fs.existsSync(MODEL)) {
    const labels = JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
    await agreementOf({ name: 'MobileNet v1 0.25 (../shared/reference)', modelPath: MODEL, overrides: { labels, preprocess: '[-1,1]' }, images: photos });
  } else {
    console.log(`\nMobileNet skipped: ${MODEL} is absent`);
  }
  await agreementOf({ name: 'demo model (models/demo)', modelPath: path.join(root, 'models', 'demo', 'model.json'), overrides: {}, images: demo });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-bench-wide-'));
  try {
    await agreementOf({ name: 'wide seeded network (7.9 M parameters, 160x160)', modelPath: await wideSeededModel(dir), overrides: {}, images: photos.slice(0, 4) });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const darknet = path.join(SHARED, 'models', 'darknet_tiny', 'model.json');
  if (process.argv.includes('--darknet') && fs.existsSync(darknet)) {
    await agreementOf({ name: 'DarkNet-tiny (../shared/reference)', modelPath: darknet, overrides: { labelsFile: path.join(SHARED, 'imagenet_classes_darknet.json'), preprocess: '[0,1]' }, images: photos });
  }
}

(process.argv.includes('--agreement') ? agreement() : main()).catch((e) => {
  console.error(e);
  process.exit(1);
});
