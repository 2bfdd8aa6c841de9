/**
 * `npm run bench` (ONNX part): for each ONNX fixture (test/fixtures/onnx, written by
 * scripts/fixtures/make_onnx.py) and the model-zoo MNIST from ../shared/reference where present, the median
 * time of a forward pass, of Grad-CAM end to end on a fresh image (forward + gradient + map) and of Score-CAM
 * over the 32 channels that vary most (topChannels 32, in-thread batches of 8), on wasm (and cpu with
 * `--cpu`).
 *
 * ONNX vs tfjs: the ResNet fixture is rebuilt as a tfjs LayersModel with the very same weights (same
 * architecture: padding, ceil-mode max-pool as an explicit zero pad after the ReLU, residual adds), checked to
 * give the same logits, and the ratio of the two Grad-CAM times is printed: what the ONNX executor costs over
 * the LayerGraph executor on the same network.
 *
 * Run alone: node --expose-gc --import tsx bench/onnx.ts [--cpu] [--reps N]
 */
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend, type BackendChoice } from '../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../src/extension/engine/model';
import { ImageSession } from '../src/extension/engine/session';
import { readModelProto } from '../src/extension/engine/formats/onnx/proto';
import { buildIr } from '../src/extension/engine/formats/onnx/analyze';
import type { HostTensor } from '../src/extension/engine/formats/onnx/tensor';
import { FIXTURE_NAMES, expectedOf, inputTensor, modelPath, FIXTURES } from '../test/formats/onnxFixtures';
import { tempDir, writeModel } from '../test/helpers/modelFiles';

const SHARED = path.resolve(__dirname, '..', '..', 'shared', 'reference');
const MNIST = path.join(SHARED, 'models', 'onnx_mnist8', 'opt-mnist.onnx');
const args = process.argv.slice(2);
const REPS = Number(args[args.indexOf('--reps') + 1]) || 15;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function time(n: number, f: () => Promise<void>): Promise<number> {
  await f();
  await f();
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await f();
    xs.push(performance.now() - t);
  }
  return median(xs);
}

const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(2));
const pad = (cells: string[], widths: number[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');

interface Timings {
  forward: number;
  gradcam: number;
  scorecam: number;
}

async function bench(model: LoadedModel, input: tf.Tensor4D, layer: string | undefined, reps: number): Promise<Timings> {
  const fresh = () => new ImageSession(model, tf.clone(input));
  const forward = await time(reps, async () => {
    const s = fresh();
    await s.logits();
    s.dispose();
  });
  const gradcam = await time(reps, async () => {
    const s = fresh();
    await s.explain({ method: 'gradcam', layer });
    s.dispose();
  });
  const scorecam = await time(Math.max(3, Math.floor(reps / 3)), async () => {
    const s = fresh();
    await s.explain({ method: 'scorecam', layer, options: { topChannels: 32 } });
    s.dispose();
  });
  return { forward, gradcam, scorecam };
}

/** The ResNet fixture's network as a tfjs LayersModel with the ONNX file's weights. */
function resnetAsLayers(): tfl.LayersModel {
  const file = modelPath('resnet_tiny');
  const ir = buildIr(readModelProto(fs.readFileSync(file), path.basename(file)), file, { file, dir: path.dirname(file) });
  const w = (n: string): HostTensor => {
    const t = ir.initializers.get(n);
    if (!t) throw new Error(`no initializer ${n}`);
    return t;
  };
  const hwio = (n: string) => {
    const t = w(n);
    const [o, i, kh, kw] = t.dims;
    return tf.tidy(() => tf.transpose(tf.tensor4d(Float32Array.from(t.data), [o, i, kh, kw]), [2, 3, 1, 0]));
  };
  const vec = (n: string) => tf.tensor1d(Float32Array.from(w(n).data));
  const conv = (x: tfl.SymbolicTensor, n: string, filters: number, k: number, s: number, padding: 'same' | 'valid') => {
    const layer = tfl.layers.conv2d({ filters, kernelSize: k, strides: s, padding, useBias: false });
    const y = layer.apply(x) as tfl.SymbolicTensor;
    layer.setWeights([hwio(n)]);
    return y;
  };
  const bn = (x: tfl.SymbolicTensor, n: string) => {
    const layer = tfl.layers.batchNormalization({ epsilon: 1e-5 });
    const y = layer.apply(x) as tfl.SymbolicTensor;
    layer.setWeights([vec(`${n}.weight`), vec(`${n}.bias`), vec(`${n}.running_mean`), vec(`${n}.running_var`)]);
    return y;
  };
  const relu = (x: tfl.SymbolicTensor) => tfl.layers.reLU().apply(x) as tfl.SymbolicTensor;
  const block = (x: tfl.SymbolicTensor, n: string, filters: number, stride: number, down: boolean) => {
    let y = relu(bn(conv(x, `${n}.conv1.weight`, filters, 3, stride, 'same'), `${n}.bn1`));
    y = bn(conv(y, `${n}.conv2.weight`, filters, 3, 1, 'same'), `${n}.bn2`);
    const idt = down ? bn(conv(x, `${n}.down.0.weight`, filters, 1, stride, 'valid'), `${n}.down.1`) : x;
    return relu(tfl.layers.add().apply([y, idt]) as tfl.SymbolicTensor);
  };
  const input = tfl.input({ shape: [64, 64, 3] });
  let x = tfl.layers.zeroPadding2d({ padding: 2 }).apply(input) as tfl.SymbolicTensor;
  x = relu(bn(conv(x, 'stem.0.weight', 8, 5, 2, 'valid'), 'stem.1'));
  // PyTorch's MaxPool2d(3, 2, padding=1, ceil_mode=True) on 32x32: 17x17. After a ReLU, zeros pad like -inf.
  x = tfl.layers.zeroPadding2d({ padding: [[1, 2], [1, 2]] }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid' }).apply(x) as tfl.SymbolicTensor;
  x = block(x, 'layer1', 8, 1, false);
  x = block(x, 'layer2', 16, 2, true);
  x = tfl.layers.globalAveragePooling2d({}).apply(x) as tfl.SymbolicTensor;
  const fc = tfl.layers.dense({ units: 10 });
  const out = fc.apply(x) as tfl.SymbolicTensor;
  const fw = w('fc.weight');
  fc.setWeights([tf.transpose(tf.tensor2d(Float32Array.from(fw.data), fw.dims as [number, number])), vec('fc.bias')]);
  return tfl.model({ inputs: input, outputs: out });
}

async function benchBackend(choice: BackendChoice): Promise<void> {
  try {
    await initBackend(choice);
  } catch (e) {
    console.log(`\n${choice}: not available (${(e as Error).message})`);
    return;
  }
  console.log(`\nONNX models on ${tf.getBackend()} (median ms over ${REPS} runs; Score-CAM over ${Math.max(3, Math.floor(REPS / 3))})`);
  const widths = [22, 8, 9, 10, 10, 8, 12];
  console.log(pad(['model', 'input', 'forward', 'grad-cam', 'score-cam', 'gc/fw', 'layer'], widths));
  const results = new Map<string, Timings>();
  const models: [string, string, () => tf.Tensor4D, string | undefined][] = FIXTURE_NAMES.map((n) => [n, modelPath(n), () => inputTensor(n), undefined]);
  if (fs.existsSync(MNIST)) models.push(['mnist8 (model zoo)', MNIST, () => tf.randomUniform([1, 28, 28, 1], 0, 1, 'float32', 1) as tf.Tensor4D, undefined]);
  for (const [name, file, input, layer] of models) {
    const model = await loadModel(file);
    const x = input();
    try {
      const t = await bench(model, x, layer, REPS);
      results.set(name, t);
      const target = layer ?? model.graph.recommendedTarget().name;
      console.log(pad([name, `${model.inputHeight}x${model.inputWidth}`, fmt(t.forward), fmt(t.gradcam), fmt(t.scorecam), (t.gradcam / t.forward).toFixed(2), target.length > 28 ? `…${target.slice(-27)}` : target], widths));
    } finally {
      x.dispose();
      model.dispose();
    }
  }

  // The same ResNet as a tfjs LayersModel.
  const dir = tempDir('cam-lens-bench-onnx-');
  const layers = resnetAsLayers();
  await writeModel(layers, dir);
  layers.dispose();
  const tfjs = await loadModel(path.join(dir, 'model.json'), { overrides: { preprocess: 'imagenet' } });
  const onnx = await loadModel(modelPath('resnet_tiny'));
  const x = inputTensor('resnet_tiny');
  try {
    const a = new ImageSession(tfjs, tf.clone(x));
    const b = new ImageSession(onnx, tf.clone(x));
    const la = await a.logits();
    const lb = await b.logits();
    a.dispose();
    b.dispose();
    const diff = Math.max(...Array.from(la, (v, i) => Math.abs(v - lb[i])));
    const want = expectedOf('resnet_tiny').logits;
    const diffTorch = Math.max(...Array.from(la, (v, i) => Math.abs(v - want[i])));
    const tt = await bench(tfjs, x, undefined, REPS);
    const to = results.get('resnet_tiny') ?? await bench(onnx, x, undefined, REPS);
    console.log(`\nresnet_tiny as a tfjs LayersModel (same weights; logits differ from the ONNX model's by ${diff.toExponential(1)}, from PyTorch's by ${diffTorch.toExponential(1)}):`);
    console.log(pad(['', 'forward', 'grad-cam', 'score-cam'], [22, 9, 10, 10]));
    console.log(pad(['tfjs LayersModel', fmt(tt.forward), fmt(tt.gradcam), fmt(tt.scorecam)], [22, 9, 10, 10]));
    console.log(pad(['ONNX', fmt(to.forward), fmt(to.gradcam), fmt(to.scorecam)], [22, 9, 10, 10]));
    console.log(pad(['ONNX / tfjs', (to.forward / tt.forward).toFixed(2), (to.gradcam / tt.gradcam).toFixed(2), (to.scorecam / tt.scorecam).toFixed(2)], [22, 9, 10, 10]));
  } finally {
    x.dispose();
    tfjs.dispose();
    onnx.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!fs.existsSync(FIXTURES)) {
    console.log(`no ONNX fixtures at ${FIXTURES}: run scripts/fixtures/make_onnx.py`);
    return;
  }
  await benchBackend('wasm');
  if (args.includes('--cpu')) await benchBackend('cpu');
}

void main();
