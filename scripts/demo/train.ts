/**
 * Training library of the bundled demo model: the CAM-friendly CNN, the streaming training loop over the
 * generator, validation, and the deployable copy of the model. The CLI entry is scripts/trainDemo.ts.
 *
 * Architecture (input 96x96x3, pixels/255; shapes at 96x96; convolutions 3x3, 'same', no bias since BN follows):
 *
 *   conv1 16, stride 2 -> bn1 -> relu1             48x48x16
 *   conv2 32 -> bn2 -> relu2 -> pool2 (2x2 max)    24x24x32
 *   conv3 64 -> bn3 -> relu3 -> pool3 (2x2 max)    12x12x64
 *   conv4 64 -> bn4 -> relu4                       12x12x64
 *   conv5 128 -> bn5 -> relu5                      12x12x128   <- CAM target layer (receptive field 53 px)
 *   gap (GlobalAveragePooling2D)                   128
 *   predictions (Dense 6, softmax)                 6           (136k parameters in all)
 *
 * CAM (Zhou et al. 2016) applies directly: the class score is a linear function of the spatial mean of relu5,
 * so M_c(i,j) = sum_k w_{k,c} A_k(i,j) with w the Dense kernel. The last feature map is kept at 12x12 (an
 * 8 px grid on the 96 px input) so that maps localise objects of 18-48 px.
 *
 * Data: training images stream from the generator and are never stored. Images are numbered continuously
 * through the run (stream `seed`), so every step sees fresh images and the run is reproducible. Validation uses
 * the fixed first `valSize` images of a separate stream (validationSeed(seed)), always at 96x96.
 *
 * Schedule, and why: with a 96x96 canvas the object covers 3-20% of the image, and global average pooling
 * dilutes its evidence among 144 mostly-background positions; from scratch, that learns very slowly (a run of
 * 6000 images stayed at chance, even for circle-vs-square on plain backgrounds). So the network first learns
 * the shapes on 56x56 canvases (same objects, same pixel sizes, a third of the compute per image), with a flexible
 * [null, null, 3] input since every layer is size-agnostic, then adapts to 96x96. Background clutter also ramps
 * up over the first `curriculum` fraction of the steps. Adam, linear warm-up then cosine decay.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { IMAGE_SIZE, NUM_CLASSES, generateBatch, hashInts, type Batch, type ShortcutOptions } from './generator';

/** The layer the CAM methods should target by default (last spatial activation). */
export const DEMO_CAM_LAYER = 'relu5';

/**
 * The conv blocks. The first convolution has stride 2: a full-resolution 96x96 stage would dominate training
 * time on wasm (its batch-norm and pooling gradients run over 96*96 positions) for little gain on objects of
 * 18 px and more. Max pooling after blocks 2 and 3 brings the map to 12x12, where blocks 4 and 5 add context.
 */
export interface ConvBlock {
  filters: number;
  strides: 1 | 2;
  pool: boolean;
}

export const DEMO_BLOCKS: readonly ConvBlock[] = [
  { filters: 16, strides: 2, pool: false },
  { filters: 32, strides: 1, pool: true },
  { filters: 64, strides: 1, pool: true },
  { filters: 64, strides: 1, pool: false },
  { filters: 128, strides: 1, pool: false },
];

/**
 * Builds the demo CNN. Weight initialisation is seeded (a distinct seed per layer derived from `seed`) so that a
 * training run is reproducible end to end.
 */
export interface BuildOptions {
  /** Square input size; null for a flexible [null, null, 3] input (training on several sizes). */
  inputSize?: number | null;
  numClasses?: number;
  blocks?: readonly ConvBlock[];
}

export function buildDemoModel(seed = 1, opts: BuildOptions = {}): tfl.LayersModel {
  const inputSize = opts.inputSize === undefined ? IMAGE_SIZE : opts.inputSize;
  const blocks = opts.blocks ?? DEMO_BLOCKS;
  const numClasses = opts.numClasses ?? NUM_CLASSES;
  const model = tfl.sequential({ name: 'cam_lens_demo' });
  blocks.forEach((b, i) => {
    const n = i + 1;
    model.add(tfl.layers.conv2d({
      name: `conv${n}`,
      ...(i === 0 ? { inputShape: [inputSize, inputSize, 3] } : {}),
      filters: b.filters,
      kernelSize: 3,
      strides: b.strides,
      padding: 'same',
      useBias: false,
      kernelInitializer: tfl.initializers.heNormal({ seed: hashInts(seed, n) % 1_000_000 }),
    }));
    // Momentum 0.9 rather than tfjs's 0.99: with a few thousand steps the moving statistics used at
    // inference must follow the weights closely, or validation lags far behind training.
    model.add(tfl.layers.batchNormalization({ name: `bn${n}`, momentum: 0.9 }));
    model.add(tfl.layers.activation({ name: `relu${n}`, activation: 'relu' }));
    if (b.pool) model.add(tfl.layers.maxPooling2d({ name: `pool${n}`, poolSize: 2, strides: 2 }));
  });
  model.add(tfl.layers.globalAveragePooling2d({ name: 'gap' }));
  model.add(tfl.layers.dense({
    name: 'predictions',
    units: numClasses,
    activation: 'softmax',
    kernelInitializer: tfl.initializers.glorotUniform({ seed: hashInts(seed, 99) % 1_000_000 }),
  }));
  return model;
}

let fastKernelsInstalled = false;

/**
 * Tile of a per-channel vector [1, ..., 1, C] to [N, H, W, C] (reps [N, H, W, 1]): batch normalisation's
 * gradient does this for every BN layer at every step, and the wasm kernel takes ~50 ns per element. Here it
 * is a plain copy of the C values, doubling the filled prefix each time. Other tilings use the original.
 */
function fastTile(fallback: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const reps = (args.attrs as unknown as tf.TileAttrs).reps;
    const rank = x.shape.length;
    const c = x.shape[rank - 1];
    const broadcastRow = rank >= 1 && reps.length === rank && reps[rank - 1] === 1 && x.dtype === 'float32' &&
      x.shape.slice(0, -1).every((d) => d === 1);
    if (!broadcastRow) return fallback(args);
    const backend = args.backend as tf.KernelBackend;
    const row = backend.readSync(x.dataId) as Float32Array;
    const outShape = reps.map((r, i) => r * x.shape[i]);
    const out = new Float32Array(outShape.reduce((a, b) => a * b, 1));
    if (out.length > 0) {
      out.set(row.subarray(0, c));
      for (let filled = c; filled < out.length; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, out.length - filled));
    }
    return tf.tensor(out, outShape, 'float32');
  };
}

/**
 * Training speed-up on wasm, for this training process only: Tile in its broadcast form (fastTile above)
 * replaces the wasm kernel; other tilings fall back to it. (The other large cost of a step, Conv2DBackpropInput,
 * a plain loop in tfjs-backend-wasm 4.22, is replaced for every engine user by src/extension/engine/wasmKernels.ts,
 * with a forward convolution of dy with the rotated filter. Until then this file had its own copy for the
 * stride-1 'same' convolutions; the two give bit-identical results there, so models/demo still reproduces.)
 * Installed by trainDemoModel when the backend is wasm; idempotent. Returns whether the speed-up is active.
 */
export function installFastTrainingKernels(): boolean {
  if (fastKernelsInstalled) return true;
  if (tf.getBackend() !== 'wasm') return false;
  const replacements: [string, (fallback: tf.KernelFunc) => tf.KernelFunc][] = [
    [tf.Tile, fastTile],
  ];
  for (const [name, make] of replacements) {
    const original = tf.getKernel(name, 'wasm');
    if (!original) continue;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: make(original.kernelFunc) });
  }
  fastKernelsInstalled = true;
  return true;
}

/** Generator stream seed for validation images, distinct from the training stream `seed`. */
export function validationSeed(seed: number): number {
  return hashInts(seed, 0x7a1d);
}

/** Converts a generated batch to an input tensor in the model's '[0,1]' preprocessing and one-hot labels.
 *  The image size is inferred from the batch (square images). */
export function batchToTensors(batch: Batch, numClasses = NUM_CLASSES): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const count = batch.labels.length;
  const size = Math.round(Math.sqrt(batch.pixels.length / (3 * Math.max(1, count))));
  return tf.tidy(() => {
    const bytes = tf.tensor4d(batch.pixels, [count, size, size, 3], 'int32');
    const x = tf.div(tf.cast(bytes, 'float32'), 255) as tf.Tensor4D;
    const y = tf.cast(tf.oneHot(tf.tensor1d(batch.labels, 'int32'), numClasses), 'float32') as tf.Tensor2D;
    return { x, y };
  });
}

/** Top-1 predictions for a batch of generated images, in batches to bound memory. */
export function predictLabels(model: tfl.LayersModel, batch: Batch, batchSize = 64): Int32Array {
  const count = batch.labels.length;
  const per = IMAGE_SIZE * IMAGE_SIZE * 3;
  const out = new Int32Array(count);
  for (let start = 0; start < count; start += batchSize) {
    const end = Math.min(count, start + batchSize);
    const pred = tf.tidy(() => {
      const bytes = tf.tensor4d(batch.pixels.subarray(start * per, end * per), [end - start, IMAGE_SIZE, IMAGE_SIZE, 3], 'int32');
      const x = tf.div(tf.cast(bytes, 'float32'), 255);
      return tf.argMax(model.predict(x) as tf.Tensor, -1);
    });
    out.set(pred.dataSync() as Int32Array, start);
    pred.dispose();
  }
  return out;
}

export function accuracy(predicted: Int32Array, labels: Int32Array): number {
  let hits = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) hits++;
  return labels.length === 0 ? 0 : hits / labels.length;
}

/** A training stage: `epochs` epochs of `trainSize` fresh images each, generated at imageSize x imageSize. */
export interface TrainStage {
  imageSize: number;
  epochs: number;
  trainSize: number;
}

export interface TrainOptions {
  seed: number;
  /** Run in order. Images are numbered continuously across stages, so no image is ever seen twice. */
  stages: TrainStage[];
  /** Fixed validation images at IMAGE_SIZE (stream validationSeed(seed)). */
  valSize: number;
  batchSize: number;
  /** Peak learning rate of Adam; cosine-decayed to LR_FLOOR * peak over the whole run after a short warm-up. */
  learningRate: number;
  /** Fraction of the run over which background clutter ramps from CLUTTER_START up to 1 (0: no curriculum). */
  curriculum?: number;
  /** Called after each epoch with the model being trained (flexible input size; see toDeployModel). */
  onEpochEnd?: (stats: EpochStats, model: tfl.LayersModel) => Promise<void> | void;
  /** Progress lines (the CLI prints them; tests pass nothing to stay quiet). */
  log?: (line: string) => void;
  /** The planted watermark shortcut (train:demo --shortcut), in training and validation images alike. */
  shortcut?: ShortcutOptions;
}

export interface EpochStats {
  epoch: number;
  imageSize: number;
  trainLoss: number;
  trainAccuracy: number;
  valAccuracy: number;
  learningRate: number;
  seconds: number;
}

export interface TrainResult {
  /** The model as trained, with a flexible [null, null, 3] input. */
  model: tfl.LayersModel;
  history: EpochStats[];
  best: EpochStats | undefined;
  seconds: number;
}

const WARMUP_FRACTION = 0.03;
const LR_FLOOR = 0.02;

/** Learning rate at global step `step` of `total`: linear warm-up, then cosine decay to LR_FLOOR * peak. */
export function learningRateAt(step: number, total: number, peak: number): number {
  const warm = Math.max(1, Math.round(total * WARMUP_FRACTION));
  if (step < warm) return (peak * (step + 1)) / warm;
  const t = Math.min(1, (step - warm) / Math.max(1, total - warm));
  return peak * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + Math.cos(Math.PI * t)));
}

const CLUTTER_START = 0.1;

/** Curriculum: clutter of the training images at step `step`, linear from CLUTTER_START to 1 over the first
 *  `fraction` of the run. Easy images early let the network find the shapes before it must ignore clutter. */
export function clutterAt(step: number, total: number, fraction: number): number {
  if (fraction <= 0) return 1;
  const t = step / Math.max(1, fraction * total);
  return t >= 1 ? 1 : CLUTTER_START + (1 - CLUTTER_START) * t;
}

/**
 * Trains a fresh demo model (or `model` when given, which must accept every stage's image size) on streamed
 * generated data. Tensors are created and freed per batch; the number of live tensors is the same after every
 * epoch. Validation is always at IMAGE_SIZE, the deployed size.
 */
export async function trainDemoModel(opts: TrainOptions, model = buildDemoModel(opts.seed, { inputSize: null })): Promise<TrainResult> {
  const log = opts.log ?? (() => undefined);
  if (installFastTrainingKernels()) log('wasm: faster Tile kernel for training installed');
  const optimizer = tf.train.adam(opts.learningRate);
  model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const planted = opts.shortcut ? { shortcut: opts.shortcut } : {};
  const valBatch = generateBatch(validationSeed(opts.seed), 0, opts.valSize, planted);
  const stepsOf = (st: TrainStage): number => Math.ceil(st.trainSize / opts.batchSize);
  const totalSteps = opts.stages.reduce((sum, st) => sum + st.epochs * stepsOf(st), 0);
  const totalEpochs = opts.stages.reduce((sum, st) => sum + st.epochs, 0);
  const history: EpochStats[] = [];
  let best: EpochStats | undefined;
  const t0 = Date.now();
  let step = 0;
  let imageIndex = 0;
  for (const stage of opts.stages) {
    for (let e = 0; e < stage.epochs; e++) {
      const epoch = history.length + 1;
      const te = Date.now();
      let lossSum = 0;
      let hitSum = 0;
      let seen = 0;
      let lr = opts.learningRate;
      const steps = stepsOf(stage);
      for (let s = 0; s < steps; s++, step++) {
        const count = Math.min(opts.batchSize, stage.trainSize - s * opts.batchSize);
        const clutter = clutterAt(step, totalSteps, opts.curriculum ?? 0);
        const batch = generateBatch(opts.seed, imageIndex, count, { imageSize: stage.imageSize, clutter, ...planted });
        imageIndex += count;
        lr = learningRateAt(step, totalSteps, opts.learningRate);
        // The Adam optimizer in tfjs-core keeps its learning rate in a plain field read at every step.
        (optimizer as unknown as { learningRate: number }).learningRate = lr;
        const { x, y } = batchToTensors(batch);
        const [loss, acc] = (await model.trainOnBatch(x, y)) as number[];
        x.dispose();
        y.dispose();
        if (!Number.isFinite(loss)) throw new Error(`training diverged: loss ${loss} at epoch ${epoch}, step ${s + 1}`);
        lossSum += loss * count;
        hitSum += acc * count;
        seen += count;
        if ((s + 1) % 50 === 0) {
          log(`  epoch ${epoch} step ${s + 1}/${steps}  loss ${(lossSum / seen).toFixed(4)}  acc ${(hitSum / seen).toFixed(4)}  ` +
            `lr ${lr.toExponential(2)}  clutter ${clutter.toFixed(2)}  ${((Date.now() - te) / 1000).toFixed(0)}s`);
        }
      }
      const valAccuracy = accuracy(predictLabels(model, valBatch), valBatch.labels);
      const stats: EpochStats = {
        epoch, imageSize: stage.imageSize, trainLoss: lossSum / seen, trainAccuracy: hitSum / seen, valAccuracy, learningRate: lr,
        seconds: (Date.now() - te) / 1000,
      };
      history.push(stats);
      log(`epoch ${epoch}/${totalEpochs} (${stage.imageSize}px)  train loss ${stats.trainLoss.toFixed(4)}  train acc ${(100 * stats.trainAccuracy).toFixed(2)}%  ` +
        `val acc ${(100 * valAccuracy).toFixed(2)}%  (${stats.seconds.toFixed(0)}s, ${tf.memory().numTensors} tensors)`);
      if (!best || valAccuracy > best.valAccuracy) best = stats;
      await opts.onEpochEnd?.(stats, model);
    }
  }
  return { model, history, best, seconds: (Date.now() - t0) / 1000 };
}

/**
 * The deployable copy of a trained model: the same layers and weights with the fixed IMAGE_SIZE input that
 * cam-lens.json declares. (Training uses a flexible input so that early stages can run on smaller canvases.)
 */
export function toDeployModel(trained: tfl.LayersModel, seed = 1): tfl.LayersModel {
  const fixed = buildDemoModel(seed, { inputSize: IMAGE_SIZE });
  fixed.setWeights(trained.getWeights());
  return fixed;
}
