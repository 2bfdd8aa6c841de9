/**
 * `npm run bench` (ONNX Runtime part, #13 item 7): the forward-only work on ONNX models on ONNX Runtime
 * (onnxruntime-node; formats/onnx/ortRuntime.ts) against our tfjs executor on wasm, with 1 and 2 threads (both
 * runtimes get the same count). Per model and thread count, medians over interleaved runs (tfjs, ORT, tfjs, …, so
 * that drift in the machine's load hits both alike):
 *   forward    ImageSession.logits on a fresh session (what predictions cost)
 *   score-cam  the default Score-CAM (32 channels by mean activation, batches of 8, in this thread): the
 *              activation on tfjs, the masked batches on the runtime compared
 *   scan       predictBatch on 16 images (the scan's batch), as images per second
 * and the speed-up (tfjs time / ORT time; for the scan ORT images/s / tfjs images/s). The first ORT request of a
 * model builds its session: that cost is printed apart ("session").
 *
 * Models: the ONNX fixtures (test/fixtures/onnx: small widths), the model zoo's MNIST from ../shared/reference
 * where present, and any .onnx given with --model (docs/onnxruntime.md measured torchvision's MobileNetV2,
 * EfficientNet-B0 and ResNet-50 at 224x224 this way, exported with random weights: the command is there).
 *
 *   node --expose-gc --import tsx bench/ort.ts [--reps N] [--threads 1,2] [--model file.onnx ...] [--no-fixtures]
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../src/extension/engine/model';
import { ImageSession } from '../src/extension/engine/session';
import { predictBatch } from '../src/extension/engine/scan/scan';
import { loadOrt, nativeLogits, setOnnxRuntime } from '../src/extension/engine/formats/onnx/ortRuntime';
import type { LoadedOnnxModel } from '../src/extension/engine/formats/onnx/load';
import { FIXTURES, modelPath } from '../test/formats/onnxFixtures';

const SHARED = path.resolve(__dirname, '..', '..', 'shared', 'reference');
const MNIST = path.join(SHARED, 'models', 'onnx_mnist8', 'opt-mnist.onnx');
const args = process.argv.slice(2);
const value = (flag: string) => (args.indexOf(flag) >= 0 ? args[args.indexOf(flag) + 1] : undefined);
const REPS = Number(value('--reps')) || 9;
const THREADS = (value('--threads') ?? '1,2').split(',').map(Number).filter((n) => n >= 1);
const SCAN_BATCH = 16;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Median times of `f` under each runtime, the runs interleaved; two warm-up runs each. */
async function interleaved(reps: number, f: () => Promise<void>): Promise<{ tfjs: number; ort: number }> {
  const xs: Record<'off' | 'auto', number[]> = { off: [], auto: [] };
  for (let i = -2; i < reps; i++) {
    for (const r of ['off', 'auto'] as const) {
      setOnnxRuntime(r);
      const t = performance.now();
      await f();
      if (i >= 0) xs[r].push(performance.now() - t);
    }
  }
  setOnnxRuntime('auto');
  return { tfjs: median(xs.off), ort: median(xs.auto) };
}

const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const pad = (cells: string[], widths: number[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');

async function benchModel(name: string, file: string, threads: number): Promise<string[] | undefined> {
  await initBackend('wasm', { threads });
  const model = (await loadModel(file)) as LoadedModel;
  const { inputHeight: h, inputWidth: w, inputChannels: c } = model;
  const x = tf.randomUniform([1, h, w, c], 0, 1, 'float32', 1) as tf.Tensor4D;
  const batch = tf.randomUniform([SCAN_BATCH, h, w, c], 0, 1, 'float32', 2) as tf.Tensor4D;
  const rows = Array.from({ length: SCAN_BATCH }, (_, i) => (batch.dataSync() as Float32Array).slice(i * h * w * c, (i + 1) * h * w * c));
  batch.dispose();
  try {
    setOnnxRuntime('auto');
    const t0 = performance.now();
    const native = await nativeLogits(model as LoadedOnnxModel);
    const session = performance.now() - t0;
    if (!native) {
      console.log(`${name}: ONNX Runtime does not serve this model`);
      return undefined;
    }
    const forward = await interleaved(REPS, async () => {
      const s = new ImageSession(model, tf.clone(x));
      await s.logits();
      s.dispose();
    });
    const scoreReps = Math.max(3, Math.floor(REPS / 3));
    const scorecam = await interleaved(scoreReps, async () => {
      const s = new ImageSession(model, tf.clone(x));
      await s.explain({ method: 'scorecam' });
      s.dispose();
    });
    const scan = await interleaved(Math.max(3, Math.floor(REPS / 2)), async () => {
      await predictBatch(model, rows);
    });
    const ips = (ms: number) => (SCAN_BATCH * 1000) / ms;
    return [name, `${h}x${w}`, String(threads), fmt(session),
      fmt(forward.tfjs), fmt(forward.ort), `${(forward.tfjs / forward.ort).toFixed(2)}x`,
      fmt(scorecam.tfjs), fmt(scorecam.ort), `${(scorecam.tfjs / scorecam.ort).toFixed(2)}x`,
      ips(scan.tfjs).toFixed(1), ips(scan.ort).toFixed(1), `${(scan.tfjs / scan.ort).toFixed(2)}x`];
  } finally {
    x.dispose();
    model.dispose();
  }
}

async function main(): Promise<void> {
  const { reason } = loadOrt();
  if (reason) {
    console.log(`\nONNX Runtime: not measured (${reason})`);
    return;
  }
  const models: [string, string][] = [];
  if (!args.includes('--no-fixtures') && fs.existsSync(FIXTURES)) {
    for (const n of ['mobilenet_v2', 'mobilenet_v3', 'resnet_tiny', 'convnext_mini', 'densenet_tiny']) models.push([n, modelPath(n)]);
    if (fs.existsSync(MNIST)) models.push(['mnist8 (model zoo)', MNIST]);
  }
  args.forEach((a, i) => {
    if (a === '--model' && args[i + 1]) models.push([path.basename(args[i + 1], '.onnx'), args[i + 1]]);
  });
  console.log(`\nONNX Runtime vs tfjs (wasm) on ONNX models: median ms over ${REPS} interleaved runs (Score-CAM ${Math.max(3, Math.floor(REPS / 3))}), ` +
    `scan batches of ${SCAN_BATCH}; speed-up = tfjs / ORT`);
  const widths = [20, 8, 3, 8, 9, 8, 7, 9, 8, 7, 9, 8, 7];
  console.log(pad(['model', 'input', 'thr', 'session', 'fwd tfjs', 'fwd ort', 'x', 'scam tfjs', 'scam ort', 'x', 'scan img/s', 'ort img/s', 'x'], widths));
  for (const threads of THREADS) {
    for (const [name, file] of models) {
      const row = await benchModel(name, file, threads);
      if (row) console.log(pad(row, widths));
    }
  }
}

void main();
