/**
 * Thread scaling of one forward pass on the wasm backend (#13 item 1): the median time of a forward pass (the
 * engine's own path: loadModel, ImageSession.logits on a fresh session) with 1, 2, … threads up to the cores
 * this process may use (at most 8), and each count's ratio to one thread. Target: at most 0.6 at 2 threads on an
 * Inception-v3-size model.
 *
 * Models: an Inception-v3-size network built here with tfjs-layers and seeded He-normal weights (nothing is
 * downloaded; about 23.9 M parameters, 299x299x3 input, Inception-v3's block structure: the stem, 3 blocks with
 * 5x5 and double-3x3 branches, a grid reduction, 4 blocks with factorised 7x1/1x7 convolutions, a second
 * reduction, 2 blocks with split 1x3/3x1 branches, global average pooling and a 1000-way softmax; every
 * convolution without bias, followed by batch normalisation and ReLU), and the reference MobileNet v1 0.25
 * (../shared/reference, skipped where absent). Timings on a shared machine are noisy: the load average is
 * printed before and after, and every count is measured in two rounds (the sweep is run twice) so that drift
 * in the load hits all counts alike.
 *
 * With --scorecam it also times a full Score-CAM on MobileNet (its 256-channel last layer, batch 8) with the cores
 * spent three ways: one thread in this thread and a pool of cores - 1 single-threaded workers (the old default);
 * all cores as threads of this thread and no pool (the new default); and both at once (oversubscribed). This is
 * the measurement behind how the engine and the CLI split the cores between threads and the Score-CAM pool.
 *
 *   node --import tsx bench/threads.ts [--reps <n per round>] [--no-inception] [--no-mobilenet] [--scorecam]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { MAX_WASM_THREADS, availableCores, initBackend } from '../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../src/extension/engine/model';
import { ImageSession } from '../src/extension/engine/session';
import { ScorePool } from '../src/extension/engine/scorePool';

const SHARED = path.resolve(__dirname, '..', '..', 'shared', 'reference');
const MOBILENET = path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json');

const args = process.argv.slice(2);
const repsAt = args.indexOf('--reps');
const REPS = repsAt >= 0 ? Math.max(1, Number(args[repsAt + 1]) || 5) : 5;
const ROUNDS = 2;

// ---------------------------------------------------------------------------------------------------------
// An Inception-v3-size network

type T = tfl.SymbolicTensor;
let layerSeed = 0;

/** Convolution (no bias) + batch normalisation + ReLU, as every convolution of Inception v3. */
function convBn(x: T, filters: number, kh: number, kw: number, strides = 1, padding: 'same' | 'valid' = 'same'): T {
  const seed = ++layerSeed;
  const c = tfl.layers.conv2d({
    filters, kernelSize: [kh, kw], strides, padding, useBias: false,
    kernelInitializer: tfl.initializers.heNormal({ seed }), name: `conv${seed}`,
  }).apply(x) as T;
  const b = tfl.layers.batchNormalization({ scale: false, epsilon: 1e-3, name: `bn${seed}` }).apply(c) as T;
  return tfl.layers.activation({ activation: 'relu', name: `relu${seed}` }).apply(b) as T;
}

const concat = (xs: T[], name: string): T => tfl.layers.concatenate({ axis: -1, name }).apply(xs) as T;
const avgPool3 = (x: T): T => tfl.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same' }).apply(x) as T;
const maxPool3s2 = (x: T): T => tfl.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid' }).apply(x) as T;

/** 35x35 blocks: 1x1, 5x5, double 3x3 and pooled branches. */
function blockA(x: T, poolFilters: number, name: string): T {
  const b1 = convBn(x, 64, 1, 1);
  const b5 = convBn(convBn(x, 48, 1, 1), 64, 5, 5);
  const b3 = convBn(convBn(convBn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3);
  const bp = convBn(avgPool3(x), poolFilters, 1, 1);
  return concat([b1, b5, b3, bp], name);
}

/** 35 -> 17 grid reduction. */
function reductionA(x: T): T {
  const b3 = convBn(x, 384, 3, 3, 2, 'valid');
  const bd = convBn(convBn(convBn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, 2, 'valid');
  return concat([b3, bd, maxPool3s2(x)], 'mixed3');
}

/** 17x17 blocks with factorised 7x7 convolutions (1x7 then 7x1). */
function blockC(x: T, mid: number, name: string): T {
  const b1 = convBn(x, 192, 1, 1);
  const b7 = convBn(convBn(convBn(x, mid, 1, 1), mid, 1, 7), 192, 7, 1);
  let bd = convBn(x, mid, 1, 1);
  bd = convBn(convBn(convBn(convBn(bd, mid, 7, 1), mid, 1, 7), mid, 7, 1), 192, 1, 7);
  const bp = convBn(avgPool3(x), 192, 1, 1);
  return concat([b1, b7, bd, bp], name);
}

/** 17 -> 8 grid reduction. */
function reductionB(x: T): T {
  const b3 = convBn(convBn(x, 192, 1, 1), 320, 3, 3, 2, 'valid');
  const b7 = convBn(convBn(convBn(convBn(x, 192, 1, 1), 192, 1, 7), 192, 7, 1), 192, 3, 3, 2, 'valid');
  return concat([b3, b7, maxPool3s2(x)], 'mixed8');
}

/** 8x8 blocks whose 3x3 branches split into parallel 1x3 and 3x1 convolutions. */
function blockE(x: T, name: string): T {
  const b1 = convBn(x, 320, 1, 1);
  const s = convBn(x, 384, 1, 1);
  const b3 = concat([convBn(s, 384, 1, 3), convBn(s, 384, 3, 1)], `${name}_a`);
  const d = convBn(convBn(x, 448, 1, 1), 384, 3, 3);
  const bd = concat([convBn(d, 384, 1, 3), convBn(d, 384, 3, 1)], `${name}_b`);
  const bp = convBn(avgPool3(x), 192, 1, 1);
  return concat([b1, b3, bd, bp], name);
}

function inceptionSized(): tfl.LayersModel {
  layerSeed = 0;
  const input = tfl.input({ shape: [299, 299, 3], name: 'input' });
  let x = convBn(input, 32, 3, 3, 2, 'valid');
  x = convBn(x, 32, 3, 3, 1, 'valid');
  x = convBn(x, 64, 3, 3);
  x = maxPool3s2(x);
  x = convBn(x, 80, 1, 1, 1, 'valid');
  x = convBn(x, 192, 3, 3, 1, 'valid');
  x = maxPool3s2(x);
  x = blockA(x, 32, 'mixed0');
  x = blockA(x, 64, 'mixed1');
  x = blockA(x, 64, 'mixed2');
  x = reductionA(x);
  x = blockC(x, 128, 'mixed4');
  x = blockC(x, 160, 'mixed5');
  x = blockC(x, 160, 'mixed6');
  x = blockC(x, 192, 'mixed7');
  x = reductionB(x);
  x = blockE(x, 'mixed9');
  x = blockE(x, 'mixed10');
  const g = tfl.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as T;
  const out = tfl.layers.dense({ units: 1000, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: 9999 }), name: 'predictions' }).apply(g) as T;
  return tfl.model({ inputs: input, outputs: out, name: 'inception_sized' });
}

/** Saves a layers model as model.json + one shard (the converter's layout) into `dir`. */
async function save(model: tfl.LayersModel, dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (a) => {
    fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(a.weightData as ArrayBuffer));
    const json = { format: 'layers-model', generatedBy: 'cam-lens bench', convertedBy: null, modelTopology: a.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }] };
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ preprocess: '[-1,1]' }));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  return path.join(dir, 'model.json');
}

// ---------------------------------------------------------------------------------------------------------
// Measuring

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A fixed input in the model's range: a smooth pattern, the same for every thread count. */
function inputFor(model: LoadedModel): tf.Tensor4D {
  const [h, w, c] = [model.inputHeight, model.inputWidth, model.inputChannels];
  const data = new Float32Array(h * w * c);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.0007) * 0.9;
  return tf.tensor4d(data, [1, h, w, c]);
}

/** Forward-pass times (ms) of `modelJson` with `threads` threads: 2 warm-up passes, then `REPS`. */
async function forwardTimes(modelJson: string, threads: number): Promise<{ times: number[]; used: number; top: number }> {
  const info = await initBackend('wasm', { threads });
  const model = await loadModel(modelJson);
  const input = inputFor(model);
  let top = -1;
  const once = async () => {
    const s = new ImageSession(model, tf.clone(input));
    const logits = await s.logits();
    top = logits.indexOf(Math.max(...logits));
    s.dispose();
  };
  try {
    await once();
    await once();
    const times: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const t = performance.now();
      await once();
      times.push(performance.now() - t);
    }
    return { times, used: info.threads, top };
  } finally {
    input.dispose();
    model.dispose();
  }
}

const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

async function curve(name: string, modelJson: string, counts: number[]): Promise<void> {
  const samples = new Map<number, number[]>(counts.map((n) => [n, []]));
  const tops = new Set<number>();
  console.log(`\n${name} (load average before: ${load()})`);
  for (let round = 0; round < ROUNDS; round++) {
    for (const n of counts) {
      const r = await forwardTimes(modelJson, n);
      if (r.used !== n) throw new Error(`${n} threads asked, ${r.used} started`);
      samples.get(n)!.push(...r.times);
      tops.add(r.top);
    }
  }
  const base = median(samples.get(1)!);
  console.log(`threads  median ms    min ms  ratio to 1 thread   (${ROUNDS} rounds x ${REPS} passes each)`);
  for (const n of counts) {
    const xs = samples.get(n)!;
    const m = median(xs);
    console.log(`${String(n).padStart(7)}  ${m.toFixed(1).padStart(9)}  ${Math.min(...xs).toFixed(1).padStart(8)}  ${(m / base).toFixed(3).padStart(17)}`);
  }
  console.log(`same top-1 class at every count: ${tops.size === 1 ? 'yes' : `NO (${[...tops].join(', ')})`}; load average after: ${load()}`);
  if (samples.has(2)) {
    const r2 = median(samples.get(2)!) / base;
    console.log(`2 threads / 1 thread = ${r2.toFixed(3)} (target <= 0.6: ${r2 <= 0.6 ? 'met' : 'NOT met'})`);
  }
}

/** Full Score-CAM on MobileNet with `threads` threads here and `workers` single-threaded pool workers: median ms. */
async function scoreCamTimes(threads: number, workers: number): Promise<number[]> {
  await initBackend('wasm', { threads });
  const overrides = { preprocess: '[-1,1]' as const };
  const model = await loadModel(MOBILENET, { overrides });
  const pool = workers > 0 ? new ScorePool({ modelPath: MOBILENET, overrides, workers }) : undefined;
  const input = inputFor(model);
  try {
    if (pool) await pool.whenReady();
    const once = async () => {
      const s = new ImageSession(model, tf.clone(input));
      await s.explain({ method: 'scorecam', layer: 'conv_pw_13_relu', classChoice: 0, pool });
      s.dispose();
    };
    await once();
    const times: number[] = [];
    for (let i = 0; i < Math.max(3, Math.ceil(REPS / 2)); i++) {
      const t = performance.now();
      await once();
      times.push(performance.now() - t);
    }
    return times;
  } finally {
    await pool?.close();
    input.dispose();
    model.dispose();
  }
}

async function scoreCamSplit(cores: number): Promise<void> {
  const all = Math.min(cores, MAX_WASM_THREADS);
  const configs: Array<[string, number, number]> = [
    [`1 thread + ${cores - 1} pool workers`, 1, cores - 1],
    [`${all} threads, no pool`, all, 0],
    [`${all} threads + ${cores - 1} pool workers`, all, cores - 1],
  ];
  const samples = configs.map(() => [] as number[]);
  console.log(`
Score-CAM, MobileNet v1 0.25, 256 channels at batch 8 (load average before: ${load()})`);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, [, t, w]] of configs.entries()) samples[i].push(...(await scoreCamTimes(t, w)));
  }
  for (const [i, [name]] of configs.entries()) {
    console.log(`${name.padEnd(34)} median ${median(samples[i]).toFixed(0).padStart(6)} ms, min ${Math.min(...samples[i]).toFixed(0).padStart(6)} ms`);
  }
  console.log(`load average after: ${load()}`);
}

async function main(): Promise<void> {
  const cores = availableCores();
  const top = Math.min(cores, MAX_WASM_THREADS);
  const counts = Array.from({ length: top }, (_, i) => i + 1);
  if (counts.length < 2) counts.push(2);
  console.log(`wasm forward pass by thread count: ${cores} core(s) available (${os.cpus()[0]?.model ?? 'unknown cpu'}), counts ${counts.join(', ')}`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-bench-threads-'));
  try {
    if (!args.includes('--no-inception')) {
      await initBackend('wasm', { threads: 1 });
      const m = inceptionSized();
      const params = m.countParams();
      const json = await save(m, path.join(dir, 'inception'));
      m.dispose();
      await curve(`Inception-v3-size network (${(params / 1e6).toFixed(1)} M parameters, 299x299, seeded random weights)`, json, counts);
    }
    if (!args.includes('--no-mobilenet')) {
      if (fs.existsSync(MOBILENET)) await curve('MobileNet v1 0.25 224 (../shared/reference)', MOBILENET, counts);
      else console.log(`\nMobileNet skipped: ${MOBILENET} is absent`);
    }
    if (args.includes('--scorecam') && fs.existsSync(MOBILENET)) await scoreCamSplit(cores);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
