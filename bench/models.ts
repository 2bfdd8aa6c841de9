/**
 * `npm run bench` (models): the benchmark table of #13, on four image classifiers run by the engine on the wasm
 * backend. Nothing is downloaded: ResNet-50, EfficientNet-B0 and Inception-v3 topologies are built here with
 * tfjs-layers and seeded random weights (see "Models"), next to the reference MobileNet v1 0.25
 * (../shared/reference, skipped where absent). Per model it prints:
 *
 *   forward      one forward pass (ImageSession.logits on a fresh session), median ms, with 1 and N threads
 *                (N: one per core, at most 8);
 *   methods      every method of cam/registry.ts (Score-CAM with its default options) on a fresh image, as a
 *                ratio to the forward pass measured in the same rounds (median / median), at the model's last
 *                layer (the recommended one) and at an early, a middle and a late layer, with 1 and N threads.
 *                CAM exists only where global pooling and a linear classifier follow the layer (n/a elsewhere).
 *                On the large models Score-CAM is timed in full at the last layer only; at the other layers its
 *                time is estimated from its first batches (per masked pass x passes), marked "~";
 *   Score-CAM    full (every non-constant channel of the last layer): timed on the smallest model, estimated from
 *                its per-pass time on the others;
 *   first map    cold: a new process (dist/cli.js cam: Node start, backend, model read and build, the first
 *                Grad-CAM), wall time; warm: Grad-CAM of an image the loaded model has not seen;
 *   scan         images/s of the engine's dataset scan over generated PNGs, in this thread with one wasm thread,
 *                and with N pool workers where scan/scanPool.ts exists (else in this thread with N threads);
 *   peak RSS     of this process after the model's section (wasm's heap never shrinks, so models run smallest
 *                first), and of the cold-start process.
 *
 * With --profile, the kernels' own time by name (nested kernels excluded) for Grad-CAM at the early layer, one
 * thread: where a gradient's time goes. With --sweep, Grad-CAM's ratio at every spatial layer of MobileNet.
 *
 * Models (weights: He-normal convolutions, Glorot dense layers, all seeded). BatchNormalization gets random
 * gamma in [0.7, 1.3] and beta in [-0.2, 0.2], and moving statistics measured on a smooth test image through the
 * network itself (one training-mode pass, where each normalisation uses its input's own mean and variance), so
 * that every normalised activation has mean beta and standard deviation gamma, as in a trained network: nothing
 * explodes, vanishes or turns subnormal across 50-100 layers. The files are written once into the temp folder.
 *   ResNet-50        Keras' ResNet50 (v1): 7x7 stem, max pool, bottleneck stages [3, 4, 6, 3] with the stride
 *                    on the first 1x1 convolution, identity and projection shortcuts; 25.6 M parameters, 224x224.
 *   EfficientNet-B0  Keras' EfficientNetB0 without its rescaling layers: swish, MBConv blocks (expansion 1/6,
 *                    3x3/5x5 depthwise, squeeze-and-excitation 0.25) with zero padding before strided depthwise
 *                    convolutions, 1280-channel head; 5.3 M parameters, 224x224.
 *   Inception-v3     test/helpers/inceptionSized.ts (Inception v3's blocks, 23.9 M parameters, 299x299).
 *
 * Timings on a shared machine are noisy: the load average is printed before and after each model.
 *   node --import tsx bench/models.ts [--quick] [--models mobilenet,efficientnet,resnet,inception] [--reps n]
 *                                     [--profile] [--sweep] [--no-cold] [--no-scan]
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { MAX_WASM_THREADS, availableCores, initBackend } from '../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../src/extension/engine/model';
import { ImageSession } from '../src/extension/engine/session';
import { METHODS } from '../src/extension/engine/cam/registry';
import { readDataset } from '../src/extension/engine/scan/dataset';
import { scanDataset } from '../src/extension/engine/scan/scan';
import { CamLensError } from '../src/extension/engine/errors';
import { inceptionSized } from '../test/helpers/inceptionSized';

const ROOT = path.resolve(__dirname, '..');
const SHARED = path.resolve(ROOT, '..', 'shared', 'reference');
const MOBILENET = path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json');
/** Bump when a builder changes: the model files are cached in the temp folder under this name. */
const CACHE = path.join(os.tmpdir(), 'cam-lens-bench-models-v1');

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const QUICK = flag('--quick');
/** Rounds per method and layer: more on the small models, whose passes take milliseconds and vary most with load. */
const REPS_ASKED = option('--reps');
const repsFor = (big: boolean) => Math.max(1, Number(REPS_ASKED ?? (QUICK ? 1 : big ? 3 : 9)) || 1);
const FORWARD_REPS = QUICK ? 3 : 5;
/** Masked passes of a Score-CAM timed in full on the large models; beyond, it is estimated from its first batches. */
const SCORE_PASSES_TIMED = 48;

// ---------------------------------------------------------------------------------------------------------
// Models

type T = tfl.SymbolicTensor;

function resnet50(): tfl.LayersModel {
  let seed = 100;
  const he = () => tfl.initializers.heNormal({ seed: seed++ });
  const conv = (x: T, filters: number, k: number, strides: number, name: string, padding: 'same' | 'valid' = 'same') =>
    tfl.layers.conv2d({ filters, kernelSize: k, strides, padding, kernelInitializer: he(), name: `${name}_conv` }).apply(x) as T;
  const bn = (x: T, name: string) => tfl.layers.batchNormalization({ epsilon: 1.001e-5, name: `${name}_bn` }).apply(x) as T;
  const relu = (x: T, name: string) => tfl.layers.activation({ activation: 'relu', name }).apply(x) as T;
  const block = (x: T, filters: number, stride: number, project: boolean, name: string): T => {
    let shortcut = x;
    if (project) shortcut = bn(conv(x, 4 * filters, 1, stride, `${name}_0`), `${name}_0`);
    let y = relu(bn(conv(x, filters, 1, stride, `${name}_1`), `${name}_1`), `${name}_1_relu`);
    y = relu(bn(conv(y, filters, 3, 1, `${name}_2`), `${name}_2`), `${name}_2_relu`);
    y = bn(conv(y, 4 * filters, 1, 1, `${name}_3`), `${name}_3`);
    return relu(tfl.layers.add({ name: `${name}_add` }).apply([shortcut, y]) as T, `${name}_out`);
  };
  const input = tfl.input({ shape: [224, 224, 3], name: 'input_1' });
  let x = tfl.layers.zeroPadding2d({ padding: 3, name: 'conv1_pad' }).apply(input) as T;
  x = relu(bn(conv(x, 64, 7, 2, 'conv1', 'valid'), 'conv1'), 'conv1_relu');
  x = tfl.layers.zeroPadding2d({ padding: 1, name: 'pool1_pad' }).apply(x) as T;
  x = tfl.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }).apply(x) as T;
  const stages: Array<[number, number, number]> = [[64, 3, 1], [128, 4, 2], [256, 6, 2], [512, 3, 2]];
  stages.forEach(([filters, blocks, stride], s) => {
    for (let b = 0; b < blocks; b++) x = block(x, filters, b === 0 ? stride : 1, b === 0, `conv${s + 2}_block${b + 1}`);
  });
  x = tfl.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as T;
  const out = tfl.layers.dense({ units: 1000, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: seed++ }), name: 'predictions' }).apply(x) as T;
  return tfl.model({ inputs: input, outputs: out, name: 'resnet50' });
}

function efficientNetB0(): tfl.LayersModel {
  let seed = 500;
  const he = () => tfl.initializers.heNormal({ seed: seed++ });
  const bn = (x: T, name: string) => tfl.layers.batchNormalization({ epsilon: 1e-3, name: `${name}_bn` }).apply(x) as T;
  const swish = (x: T, name: string) => tfl.layers.activation({ activation: 'swish', name }).apply(x) as T;
  const conv1 = (x: T, filters: number, name: string, activation?: 'swish' | 'sigmoid') =>
    tfl.layers.conv2d({ filters, kernelSize: 1, padding: 'same', useBias: activation !== undefined, activation, kernelInitializer: he(), name }).apply(x) as T;
  /** Keras' correct_pad: the zero padding before a strided 'valid' depthwise convolution on an even input. */
  const pad = (x: T, k: number, name: string) => {
    const p = Math.floor(k / 2);
    return tfl.layers.zeroPadding2d({ padding: [[p - 1, p], [p - 1, p]], name }).apply(x) as T;
  };
  const mbconv = (x: T, cin: number, cout: number, expand: number, k: number, stride: number, name: string): T => {
    let y = x;
    const mid = cin * expand;
    if (expand !== 1) y = swish(bn(conv1(y, mid, `${name}expand_conv`), `${name}expand`), `${name}expand_activation`);
    if (stride === 2) y = pad(y, k, `${name}dwconv_pad`);
    y = tfl.layers.depthwiseConv2d({ kernelSize: k, strides: stride, padding: stride === 2 ? 'valid' : 'same', useBias: false, depthwiseInitializer: he(), name: `${name}dwconv` }).apply(y) as T;
    y = swish(bn(y, name), `${name}activation`);
    // Squeeze and excitation on a quarter of the block's input channels.
    let se = tfl.layers.globalAveragePooling2d({ name: `${name}se_squeeze` }).apply(y) as T;
    se = tfl.layers.reshape({ targetShape: [1, 1, mid], name: `${name}se_reshape` }).apply(se) as T;
    se = conv1(se, Math.max(1, Math.floor(cin / 4)), `${name}se_reduce`, 'swish');
    se = conv1(se, mid, `${name}se_expand`, 'sigmoid');
    y = tfl.layers.multiply({ name: `${name}se_excite` }).apply([y, se]) as T;
    y = bn(conv1(y, cout, `${name}project_conv`), `${name}project`);
    return stride === 1 && cin === cout ? tfl.layers.add({ name: `${name}add` }).apply([y, x]) as T : y;
  };
  const input = tfl.input({ shape: [224, 224, 3], name: 'input_1' });
  let x = tfl.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name: 'stem_conv_pad' }).apply(input) as T;
  x = tfl.layers.conv2d({ filters: 32, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, kernelInitializer: he(), name: 'stem_conv' }).apply(x) as T;
  x = swish(bn(x, 'stem'), 'stem_activation');
  // (expansion, kernel, stride, in, out, repeats) per stage, as Keras' DEFAULT_BLOCKS_ARGS.
  const stages: Array<[number, number, number, number, number, number]> = [
    [1, 3, 1, 32, 16, 1], [6, 3, 2, 16, 24, 2], [6, 5, 2, 24, 40, 2], [6, 3, 2, 40, 80, 3],
    [6, 5, 1, 80, 112, 3], [6, 5, 2, 112, 192, 4], [6, 3, 1, 192, 320, 1],
  ];
  stages.forEach(([expand, k, stride, cin, cout, repeats], s) => {
    for (let r = 0; r < repeats; r++) {
      x = mbconv(x, r === 0 ? cin : cout, cout, expand, k, r === 0 ? stride : 1, `block${s + 1}${String.fromCharCode(97 + r)}_`);
    }
  });
  x = swish(bn(conv1(x, 1280, 'top_conv'), 'top'), 'top_activation');
  x = tfl.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as T;
  const out = tfl.layers.dense({ units: 1000, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: seed++ }), name: 'predictions' }).apply(x) as T;
  return tfl.model({ inputs: input, outputs: out, name: 'efficientnetb0' });
}

/** A smooth test image in [-1, 1] (the models' preprocessing), the same on every run. */
function pattern(h: number, w: number, phase: number): Float32Array {
  const data = new Float32Array(h * w * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        data[(y * w + x) * 3 + c] = 0.8 * Math.sin((x * (0.05 + 0.01 * c) + phase) + Math.cos(y * 0.07 + c + phase));
      }
    }
  }
  return data;
}

/** Small deterministic numbers for the BatchNormalization parameters. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * Random gamma and beta, then moving statistics measured on the test image (see "Models" above): one pass through
 * the layers in order, in which each normalisation's moving statistics are set to its input's mean and variance
 * just before it runs. (tfjs-layers' training mode would do the same, but fails on a normalisation without
 * gamma, as Inception's are.)
 */
function calibrateBatchNorm(model: tfl.LayersModel, seed: number): void {
  const rand = seeded(seed);
  const bns = model.layers.filter((l) => l.getClassName() === 'BatchNormalization');
  // Weights in Keras' order: gamma (when `scale`), beta (when `center`), moving mean, moving variance.
  const affine = (l: tfl.layers.Layer) => {
    const cfg = l.getConfig();
    return [cfg.scale !== false, cfg.center !== false];
  };
  for (const l of bns) {
    const ws = l.getWeights();
    const c = ws[0].shape[0];
    const [scale, center] = affine(l);
    const made = [
      ...(scale ? [tf.tensor1d(Array.from({ length: c }, () => 0.7 + 0.6 * rand()))] : []),
      ...(center ? [tf.tensor1d(Array.from({ length: c }, () => 0.4 * rand() - 0.2))] : []),
    ];
    l.setWeights([...made, ...ws.slice(-2)]);
    tf.dispose(made);
  }
  const [h, w] = model.inputs[0].shape.slice(1, 3) as number[];
  tf.tidy(() => {
    const values = new Map<number, tf.Tensor>([[model.inputs[0].id, tf.tensor4d(pattern(h, w, 0.3), [1, h, w, 3])]]);
    for (const l of model.layers) {
      if (l.getClassName() === 'InputLayer') continue;
      const node = l.inboundNodes[0];
      const ins = node.inputTensors.map((t) => values.get(t.id) as tf.Tensor);
      if (l.getClassName() === 'BatchNormalization') {
        const { mean, variance } = tf.moments(ins[0], [0, 1, 2]);
        l.setWeights([...l.getWeights().slice(0, -2), mean, variance]);
      }
      const out = l.apply(ins.length === 1 ? ins[0] : ins, { training: false });
      (Array.isArray(out) ? out : [out]).forEach((t, i) => values.set(node.outputTensors[i].id, t as tf.Tensor));
    }
  });
}

/** Saves a layers model as model.json + one shard + cam-lens.json (labels and preset). */
async function save(model: tfl.LayersModel, dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const labels = Array.from({ length: 1000 }, (_, i) => `class_${String(i).padStart(3, '0')}`);
  await model.save(tf.io.withSaveHandler(async (a) => {
    fs.writeFileSync(path.join(dir, 'weights.bin'), Buffer.from(a.weightData as ArrayBuffer));
    const json = { format: 'layers-model', generatedBy: 'cam-lens bench/models.ts', convertedBy: null, modelTopology: a.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }] };
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ preprocess: '[-1,1]', labels }));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
}

interface Case {
  key: string;
  name: string;
  json: string;
  /** Early, middle and late layers (the last is the recommended one). */
  layers: [string, string, string];
}

async function buildCases(keys: string[]): Promise<Case[]> {
  const cases: Case[] = [];
  const built: Array<[string, string, () => tfl.LayersModel, [string, string, string], number]> = [
    ['efficientnet', 'EfficientNet-B0', efficientNetB0, ['stem_activation', 'block4c_add', 'block6d_add'], 11],
    ['resnet', 'ResNet-50', resnet50, ['conv1_relu', 'conv3_block4_out', 'conv4_block6_out'], 12],
    ['inception', 'Inception-v3', () => inceptionSized(1000), ['relu1', 'mixed4', 'mixed8'], 13],
  ];
  if (keys.includes('mobilenet')) {
    if (fs.existsSync(MOBILENET)) cases.push({ key: 'mobilenet', name: 'MobileNet v1 0.25', json: MOBILENET, layers: ['conv1_relu', 'conv_pw_6_relu', 'conv_pw_11_relu'] });
    else console.log(`MobileNet skipped: ${MOBILENET} is absent`);
  }
  for (const [key, name, build, layers, seed] of built) {
    if (!keys.includes(key)) continue;
    const dir = path.join(CACHE, key);
    const json = path.join(dir, 'model.json');
    if (!fs.existsSync(json)) {
      const t = performance.now();
      await initBackend('wasm', { threads: Math.min(availableCores(), MAX_WASM_THREADS) });
      const m = build();
      calibrateBatchNorm(m, seed);
      await save(m, dir);
      m.dispose();
      console.log(`built ${name} (${((performance.now() - t) / 1000).toFixed(1)} s) into ${dir}`);
    }
    cases.push({ key, name, json, layers });
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------------------
// Measuring

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 20);
sampler.unref();

interface MethodCell {
  ratio: number;
  ms: number;
  estimated?: boolean;
  note?: string;
}

interface ThreadResult {
  threads: number;
  forward: number;
  cells: Map<string, Map<string, MethodCell | 'n/a'>>;
  warm: number;
  scoreFull?: { ms: number; passes: number; estimated: boolean };
  scoreDefault?: { passes: number; channels: number };
}

async function time<R>(f: () => Promise<R>): Promise<[number, R]> {
  const t = performance.now();
  const r = await f();
  return [performance.now() - t, r];
}

/** A Score-CAM run with its progress: total masked passes, and the time of each batch. */
async function scoreCam(model: LoadedModel, input: tf.Tensor4D, layer: string, options: Record<string, unknown>, maxPasses: number):
  Promise<{ ms: number; passes: number; estimated: boolean }> {
  const s = new ImageSession(model, tf.clone(input));
  const ac = new AbortController();
  const marks: Array<[number, number]> = [];
  let total = 0;
  const t0 = performance.now();
  try {
    await s.explain({
      method: 'scorecam', layer, options, signal: ac.signal,
      onProgress: (done, all) => {
        total = all;
        marks.push([performance.now(), done]);
        if (all > maxPasses && marks.length >= 3) ac.abort();
      },
    });
    return { ms: performance.now() - t0, passes: total, estimated: false };
  } catch (e) {
    if (!(e instanceof CamLensError && e.code === 'CANCELLED')) throw e;
    // Per masked pass over the batches after the first (which also ranks the channels and builds the masks).
    const [t1, d1] = marks[0];
    const [t2, d2] = marks[marks.length - 1];
    const perPass = (t2 - t1) / Math.max(1, d2 - d1);
    return { ms: t1 - t0 + perPass * (total - d1), passes: total, estimated: true };
  } finally {
    s.dispose();
  }
}

async function measureThreads(c: Case, threads: number, big: boolean, smallest: boolean): Promise<ThreadResult> {
  await initBackend('wasm', { threads });
  const model = await loadModel(c.json, { overrides: { preprocess: '[-1,1]' } });
  const [h, w] = [model.inputHeight, model.inputWidth];
  const input = tf.tensor4d(pattern(h, w, 0), [1, h, w, 3]);
  const other = tf.tensor4d(pattern(h, w, 1.7), [1, h, w, 3]);
  const last = model.graph.recommendedTarget().name;
  const layers = [last, ...c.layers.slice().reverse()];
  const forwardOnce = async () => {
    const s = new ImageSession(model, tf.clone(input));
    await s.logits();
    s.dispose();
  };
  const explainOnce = async (method: string, layer: string) => {
    const s = new ImageSession(model, tf.clone(input));
    try {
      await s.explain({ method, layer });
    } finally {
      s.dispose();
    }
  };
  // Pixel saliency has no target layer (bench/methods.ts times it).
  const methods = METHODS.filter((m) => m.group !== 'pixel').map((m) => m.id).filter((id) => id !== 'scorecam' && (!QUICK || id === 'gradcam' || id === 'cam'));
  const result: ThreadResult = { threads, forward: 0, cells: new Map(), warm: 0 };
  try {
    // Warm-up: kernels set up, gradient filters made (large models make them on first use).
    await forwardOnce();
    for (const layer of layers) await explainOnce('gradcam', layer).catch(() => undefined);
    const forwards: number[] = [];
    for (let i = 0; i < FORWARD_REPS; i++) forwards.push((await time(forwardOnce))[0]);
    for (const layer of layers) {
      const row = new Map<string, MethodCell | 'n/a'>();
      result.cells.set(layer, row);
      const samples = new Map<string, number[]>(methods.map((m) => [m, []]));
      const fw: number[] = [];
      for (let r = 0; r < repsFor(big); r++) {
        // Each round: a forward pass, then every method once, so that drift in the load hits both alike.
        fw.push((await time(forwardOnce))[0]);
        for (const m of methods) {
          if (row.get(m) === 'n/a') continue;
          try {
            samples.get(m)?.push((await time(() => explainOnce(m, layer)))[0]);
          } catch (e) {
            if (e instanceof CamLensError && e.code === 'METHOD_NOT_APPLICABLE') row.set(m, 'n/a');
            else throw e;
          }
        }
      }
      forwards.push(...fw);
      const f = median(fw);
      for (const m of methods) {
        const xs = samples.get(m) as number[];
        if (row.get(m) !== 'n/a' && xs.length) row.set(m, { ms: median(xs), ratio: median(xs) / f });
      }
      // Score-CAM, default options: timed where it is affordable, else estimated from its first batches.
      if (!QUICK || layer === last) {
        const timed = !big || (layer === last && threads > 1);
        const r = await scoreCam(model, input, layer, {}, timed ? Infinity : SCORE_PASSES_TIMED);
        row.set('scorecam', { ms: r.ms, ratio: r.ms / f, estimated: r.estimated });
        if (layer === last) result.scoreDefault = { passes: r.passes, channels: model.graph.op(last).outputShape[3] as number };
      }
    }
    result.forward = median(forwards);
    // Full Score-CAM at the last layer (every non-constant channel), N threads only.
    if (threads > 1 && !QUICK) result.scoreFull = await scoreCam(model, input, last, { topChannels: 1 << 20 }, smallest ? Infinity : SCORE_PASSES_TIMED);
    // Warm first map: Grad-CAM of an image the loaded model has not seen.
    const warm: number[] = [];
    for (let r = 0; r < Math.max(repsFor(big), 3); r++) {
      const [ms] = await time(async () => {
        const s = new ImageSession(model, tf.clone(r % 2 ? input : other));
        await s.explain({ method: 'gradcam' });
        s.dispose();
      });
      warm.push(ms);
    }
    result.warm = median(warm);
  } finally {
    tf.dispose([input, other]);
    model.dispose();
  }
  return result;
}

/** Kernel time by name (each kernel's own, nested kernels excluded) over `runs` of `f`, ms per run. */
async function profileKernels(f: () => Promise<void>, runs: number): Promise<Array<[string, number, number]>> {
  const eng = tf.engine() as unknown as { runKernel: (...a: unknown[]) => unknown };
  const orig = eng.runKernel;
  const own = new Map<string, number>();
  const calls = new Map<string, number>();
  const stack: number[] = [];
  eng.runKernel = function (this: unknown, name: unknown, ...rest: unknown[]) {
    const t = performance.now();
    stack.push(0);
    try {
      return orig.call(this, name, ...rest);
    } finally {
      const inner = stack.pop() as number;
      const dt = performance.now() - t;
      own.set(String(name), (own.get(String(name)) ?? 0) + dt - inner);
      calls.set(String(name), (calls.get(String(name)) ?? 0) + 1);
      if (stack.length) stack[stack.length - 1] += dt;
    }
  };
  try {
    for (let i = 0; i < runs; i++) await f();
  } finally {
    eng.runKernel = orig;
  }
  return [...own.entries()].map(([k, v]): [string, number, number] => [k, v / runs, (calls.get(k) ?? 0) / runs]).sort((a, b) => b[1] - a[1]);
}

async function profile(c: Case): Promise<void> {
  await initBackend('wasm', { threads: 1 });
  const model = await loadModel(c.json, { overrides: { preprocess: '[-1,1]' } });
  const [h, w] = [model.inputHeight, model.inputWidth];
  const input = tf.tensor4d(pattern(h, w, 0), [1, h, w, 3]);
  try {
    for (const layer of [c.layers[0], c.layers[1]]) {
      const run = async () => {
        const s = new ImageSession(model, tf.clone(input));
        await s.explain({ method: 'gradcam', layer });
        s.dispose();
      };
      await run();
      await run();
      const fw = await profileKernels(async () => {
        const s = new ImageSession(model, tf.clone(input));
        await s.logits();
        s.dispose();
      }, 3);
      const rows = await profileKernels(run, 3);
      const total = rows.reduce((a, r) => a + r[1], 0);
      const fTotal = fw.reduce((a, r) => a + r[1], 0);
      console.log(`\nprofile: Grad-CAM at ${layer}, 1 thread: kernels ${total.toFixed(1)} ms per map (forward pass's kernels ${fTotal.toFixed(1)} ms)`);
      for (const [name, ms, n] of rows.slice(0, 12)) console.log(`  ${name.padEnd(34)} ${ms.toFixed(2).padStart(8)} ms  ${n.toFixed(0).padStart(4)} calls`);
    }
  } finally {
    input.dispose();
    model.dispose();
  }
}

/** Grad-CAM's ratio to a forward pass at every spatial layer (one thread and N). */
async function sweep(c: Case, threads: number): Promise<void> {
  await initBackend('wasm', { threads });
  const model = await loadModel(c.json, { overrides: { preprocess: '[-1,1]' } });
  const [h, w] = [model.inputHeight, model.inputWidth];
  const input = tf.tensor4d(pattern(h, w, 0), [1, h, w, 3]);
  const once = async (layer?: string) => {
    const s = new ImageSession(model, tf.clone(input));
    if (layer) await s.explain({ method: 'gradcam', layer });
    else await s.logits();
    s.dispose();
  };
  const worst: Array<[string, number]> = [];
  try {
    for (const op of model.graph.spatialOps()) {
      await once(op.name);
      const fw: number[] = [];
      const gc: number[] = [];
      for (let r = 0; r < Math.max(5, repsFor(false)); r++) {
        fw.push((await time(() => once()))[0]);
        gc.push((await time(() => once(op.name)))[0]);
      }
      worst.push([op.name, median(gc) / median(fw)]);
    }
  } finally {
    input.dispose();
    model.dispose();
  }
  worst.sort((a, b) => b[1] - a[1]);
  const over = worst.filter(([, r]) => r > 2.5);
  console.log(`\nGrad-CAM at every spatial layer of ${c.name}, ${threads} thread(s): ${worst.length} layers, ratio ${worst[worst.length - 1][1].toFixed(2)}-${worst[0][1].toFixed(2)}; ` +
    `over 2.5: ${over.length ? over.map(([n, r]) => `${n} ${r.toFixed(2)}`).join(', ') : 'none'}; highest: ${worst.slice(0, 4).map(([n, r]) => `${n} ${r.toFixed(2)}`).join(', ')}`);
}

/** Cold first map: a new `dist/cli.js cam` process, wall ms and its peak RSS (/usr/bin/time where present). */
function cold(c: Case, image: string, threads: number): { ms: number; rss?: number } | string {
  const cli = path.join(ROOT, 'dist', 'cli.js');
  if (!fs.existsSync(cli)) return 'dist/cli.js is absent (node esbuild.js)';
  const timeBin = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
  const argv = [cli, 'cam', '--model', c.json, '--image', image, '--method', 'gradcam', '--backend', 'wasm', '--threads', String(threads), '--preprocess', '[-1,1]', '--json', '-'];
  const t = performance.now();
  const r = timeBin ? spawnSync(timeBin, ['-f', 'maxrss %M', process.execPath, ...argv], { encoding: 'utf8' }) : spawnSync(process.execPath, argv, { encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) return `cli failed: ${(r.stderr || r.stdout).split('\n').filter(Boolean).slice(-1)[0]}`;
  const m = /maxrss (\d+)/.exec(r.stderr ?? '');
  return { ms, rss: m ? Number(m[1]) * 1024 : undefined };
}

interface ScanPoolLike {
  whenReady(): Promise<number>;
  close(): Promise<void>;
}

/** The scan pool's constructor where scan/scanPool.ts exists (another change adds it), else undefined. */
async function scanPoolClass(): Promise<(new (o: { modelPath: string; overrides?: unknown; workers: number }) => ScanPoolLike) | undefined> {
  const spec = '../src/extension/engine/scan/scanPool';
  try {
    const mod = (await import(spec)) as { ScanPool?: new (o: { modelPath: string; overrides?: unknown; workers: number }) => ScanPoolLike };
    return mod.ScanPool;
  } catch {
    return undefined;
  }
}

/** Scan throughput over `n` generated PNGs: in this thread with one wasm thread, and with `workers` (pool or threads). */
async function scanRates(c: Case, n: number, workers: number): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-bench-scan-'));
  try {
    await initBackend('wasm', { threads: 1 });
    let overrides: { preprocess: '[-1,1]'; labels?: string[] } = { preprocess: '[-1,1]' };
    let model = await loadModel(c.json, { overrides });
    if (model.metadata.labels.length < 2) {
      // The scan files images by class folder: a model without class names gets class_<i>.
      overrides = { ...overrides, labels: Array.from({ length: model.numOutputs }, (_, i) => `class_${i}`) };
      model.dispose();
      model = await loadModel(c.json, { overrides });
    }
    const [h, w] = [model.inputHeight, model.inputWidth];
    const names = model.metadata.labels.slice(0, 2);
    for (let i = 0; i < n; i++) {
      const px = Buffer.from(Uint8Array.from(pattern(h, w, i * 0.37), (v) => Math.round((v + 1) * 127.5)));
      fs.mkdirSync(path.join(dir, names[i % 2]), { recursive: true });
      await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path.join(dir, names[i % 2], `${i}.png`));
    }
    const ds = readDataset(dir, model.metadata.labels);
    const rate = async (opts: Record<string, unknown>) => {
      const r = await scanDataset(model, ds, { batchSize: 8, ...opts });
      return r.results.length / r.seconds;
    };
    await rate({});
    const one = await rate({});
    let many: string;
    const Pool = await scanPoolClass();
    if (Pool) {
      const pool = new Pool({ modelPath: c.json, overrides, workers });
      try {
        const ready = await pool.whenReady();
        many = `${ready} workers ${(await rate({ pool })).toFixed(1)}`;
      } finally {
        await pool.close();
      }
    } else {
      model.dispose();
      await initBackend('wasm', { threads: workers });
      const m2 = await loadModel(c.json, { overrides });
      try {
        const r = await scanDataset(m2, ds, { batchSize: 8 });
        many = `${workers} threads (no scan pool here) ${(r.results.length / r.seconds).toFixed(1)}`;
      } finally {
        m2.dispose();
      }
      return `1 thread ${one.toFixed(1)}, ${many} images/s`;
    }
    model.dispose();
    return `1 thread ${one.toFixed(1)}, ${many} images/s`;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The table

function cell(x: MethodCell | 'n/a' | undefined): string {
  if (x === undefined) return '-';
  if (x === 'n/a') return 'n/a';
  return `${x.estimated ? '~' : ''}${x.ratio.toFixed(x.ratio >= 100 ? 0 : 2)}`;
}

function printModel(c: Case, params: number, results: ThreadResult[], extra: string[]): void {
  const [one, many] = results;
  console.log(`\n### ${c.name} (${(params / 1e6).toFixed(1)} M parameters)`);
  console.log(`forward pass: ${results.map((r) => `${r.threads} thread${r.threads > 1 ? 's' : ''} ${r.forward.toFixed(1)} ms`).join(', ')}` +
    (many ? ` (${(many.forward / one.forward).toFixed(2)} of 1 thread)` : ''));
  const layers = [...one.cells.keys()];
  const roles = ['last', 'late', 'middle', 'early'];
  console.log(`\nratio to a forward pass, ${results.map((r) => `${r.threads} thread${r.threads > 1 ? 's' : ''}`).join(' / ')} ("~": estimated from the first batches)`);
  console.log(`| method | ${layers.map((l, i) => `${roles[i]}: ${l}`).join(' | ')} |`);
  console.log(`|---|${layers.map(() => '---:').join('|')}|`);
  const ids = [...new Set(results.flatMap((r) => [...r.cells.values()].flatMap((row) => [...row.keys()])))];
  const order = METHODS.map((m) => m.id).filter((id) => ids.includes(id));
  for (const id of order) {
    const label = id === 'scorecam' && one.scoreDefault ? `scorecam (default: ${one.scoreDefault.passes} passes at the last layer)` : id;
    console.log(`| ${label} | ${layers.map((l) => results.map((r) => cell(r.cells.get(l)?.get(id))).join(' / ')).join(' | ')} |`);
  }
  const full = many?.scoreFull;
  if (full) console.log(`full Score-CAM at the last layer (${full.passes} masked passes), ${many.threads} threads: ${full.estimated ? '~' : ''}${(full.ms / 1000).toFixed(1)} s = ${full.estimated ? '~' : ''}${(full.ms / many.forward).toFixed(0)} forward passes`);
  console.log(`warm first map (Grad-CAM of a new image, model loaded): ${results.map((r) => `${r.threads} thread${r.threads > 1 ? 's' : ''} ${r.warm.toFixed(0)} ms`).join(', ')}`);
  for (const e of extra) console.log(e);
}

async function main(): Promise<void> {
  const cores = availableCores();
  const n = Math.max(2, Math.min(cores, MAX_WASM_THREADS));
  const keys = (option('--models') ?? 'mobilenet,efficientnet,resnet,inception').split(',');
  const started = performance.now();
  console.log(`CAM Lens model benchmark${QUICK ? ' (--quick)' : ''}: wasm backend, 1 and ${n} threads, ${repsFor(false)} round(s) per method (${repsFor(true)} on ResNet-50 and Inception-v3), Node ${process.version}, ` +
    `${cores} core(s) (${os.cpus()[0]?.model ?? 'unknown cpu'}); load average ${load()}`);
  const cases = await buildCases(keys);
  const dist = path.join(ROOT, 'dist', 'cli.js');
  if (fs.existsSync(dist)) console.log(`cold start runs dist/cli.js, built ${fs.statSync(dist).mtime.toISOString()}`);
  for (const c of cases) {
    console.log(`\n${c.name}: load average before ${load()}`);
    const big = c.key === 'resnet' || c.key === 'inception';
    if (flag('--profile')) await profile(c);
    if (flag('--sweep') && c.key === 'mobilenet') {
      await sweep(c, 1);
      await sweep(c, n);
    }
    const results: ThreadResult[] = [];
    for (const t of [1, n]) results.push(await measureThreads(c, t, big, c === cases[0]));
    const extra: string[] = [];
    const image = path.join(os.tmpdir(), `cam-lens-bench-${c.key}.png`);
    await initBackend('wasm', { threads: 1 });
    const m = await loadModel(c.json, { overrides: { preprocess: '[-1,1]' } });
    const params = m.graph.ops.reduce((a, op) => a + op.params, 0);
    await sharp(Buffer.from(Uint8Array.from(pattern(m.inputHeight, m.inputWidth, 0.9), (v) => Math.round((v + 1) * 127.5))),
      { raw: { width: m.inputWidth, height: m.inputHeight, channels: 3 } }).png().toFile(image);
    m.dispose();
    if (!flag('--no-cold')) {
      const parts: string[] = [];
      for (const t of QUICK ? [n] : [1, n]) {
        const runs = Array.from({ length: QUICK ? 1 : 2 }, () => cold(c, image, t));
        const bad = runs.find((r): r is string => typeof r === 'string');
        if (bad) {
          parts.push(`${t} thread(s): ${bad}`);
          continue;
        }
        const ok = runs as Array<{ ms: number; rss?: number }>;
        const rss = Math.max(...ok.map((r) => r.rss ?? 0));
        parts.push(`${t} thread${t > 1 ? 's' : ''} ${(median(ok.map((r) => r.ms)) / 1000).toFixed(2)} s${rss ? ` (peak RSS ${mib(rss)})` : ''}`);
      }
      extra.push(`cold first map (new process: dist/cli.js cam, Grad-CAM): ${parts.join(', ')}`);
    }
    fs.rmSync(image, { force: true });
    if (!flag('--no-scan')) extra.push(`scan: ${await scanRates(c, big ? 24 : 64, n)} (${big ? 24 : 64} generated PNGs, batch 8)`);
    extra.push(`peak RSS of this process so far: ${mib(peakRss)}; load average after: ${load()}`);
    printModel(c, params, results, extra);
  }
  console.log(`\nbenchmark took ${((performance.now() - started) / 60000).toFixed(1)} min; load average ${load()}`);
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
