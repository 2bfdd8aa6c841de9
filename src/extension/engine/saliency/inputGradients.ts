/**
 * The one computation every pixel-level saliency method here is made of: the gradient of a class logit with
 * respect to the model input, d logit_c / d x, for a batch of inputs [n, H, W, C] at once.
 *
 *   f(X) = sum_i logit_c(X_i)        =>   d f / d X_i = d logit_c(X_i) / d X_i
 *
 * because in inference mode (batch normalisation on its moving statistics, no dropout) each input's logits depend
 * on that input alone: one taped forward pass and one backward pass give the gradients of a whole batch. The
 * graph runs from its input (ExecGraph.run in logits mode), so convolutions, ReLUs and Dense layers take the
 * input-only gradients of gradOps.ts, as the session's layer gradients do.
 *
 * Guided backpropagation (Springenberg et al. 2015): in the backward pass every ReLU-family activation passes
 * only positive gradients, and only to positive inputs:
 *
 *   R_in = [x > 0] * [R_out > 0] * R_out          (ReLU6: [0 < x < 6] instead of [x > 0])
 *
 * The engine's own ReLU/ReLU6 gradients (convolutions and Dense layers with a fused activation, ReLU and
 * Activation layers, ONNX Relu and Clip(0, 6)) follow it inside gradOps.withGuidedActivations; tfjs-core's Relu
 * and Relu6 kernels (GraphModels, and layers that run as themselves) get the same rule by swapping their
 * registered gradients for the duration of the (synchronous) tf.grad call, then putting the originals back. Not
 * for ONNX graphs: there tfjs' Relu also serves inside other ops (PRelu, Elu, HardSwish), which must keep their
 * true derivatives. Other activations (sigmoid, swish, leaky ReLU) keep their ordinary gradients.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError, throwIfAborted } from '../errors';
import { withGuidedActivations } from '../gradOps';
import type { LoadedModel } from '../model';
import { classLogits } from '../outputs';

/** tfjs-core's Relu and Relu6 gradients under the guided rule (inputs saved as their own gradients save them). */
const GUIDED_KERNEL_GRADIENTS: tf.GradConfig[] = [
  {
    kernelName: tf.Relu,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => tf.mul(tf.relu(dy as tf.Tensor), tf.step(saved[0])) }),
  },
  {
    kernelName: tf.Relu6,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => tf.mul(tf.relu(dy as tf.Tensor), tf.step(tf.mul(saved[0], tf.sub(6, saved[0])))) }),
  },
];

/** Runs `f` with tfjs-core's Relu/Relu6 gradients guided (see the module comment); the originals are restored. */
function withGuidedKernels<T>(f: () => T): T {
  const originals = GUIDED_KERNEL_GRADIENTS.map((g) => tf.getGradient(g.kernelName) as tf.GradConfig | undefined);
  for (const g of GUIDED_KERNEL_GRADIENTS) tf.registerGradient(g);
  try {
    return f();
  } finally {
    originals.forEach((g, i) => {
      if (g) tf.registerGradient(g);
      else tf.unregisterGradient(GUIDED_KERNEL_GRADIENTS[i].kernelName);
    });
  }
}

/** Runs a whole tf.grad call under the guided rule, for this model's kind of graph. */
export function guided<T>(model: LoadedModel, f: () => T): T {
  return model.graph.kind === 'onnx' ? withGuidedActivations(f) : withGuidedActivations(() => withGuidedKernels(f));
}

/**
 * d logit_c / d x for each input of `inputs` [n, H, W, C] (preprocessed), [n, H, W, C]; guided backpropagation
 * where `isGuided`. The caller keeps `inputs` and owns the result.
 */
export function inputGradient(model: LoadedModel, inputs: tf.Tensor4D, outputIndex: number, isGuided = false): tf.Tensor4D {
  const g = model.graph;
  const n = inputs.shape[0];
  const m = model.numOutputs;
  if (outputIndex < 0 || outputIndex >= m) throw new CamLensError('BAD_ARGUMENT', `output index ${outputIndex} is out of range 0..${m - 1}`);
  const score = (x: tf.Tensor): tf.Scalar => {
    const res = g.run(new Map([[g.inputIds[0], x]]), [g.outputIds[0]], { logits: true, keepIntermediates: true });
    const z = classLogits(model, res.get(g.outputIds[0]) as tf.Tensor);
    if (z.shape[0] !== n || z.shape[1] !== m) {
      throw new CamLensError('UNSUPPORTED_MODEL', `expected ${n} x ${m} logits for a batch of ${n}, got [${z.shape.join(', ')}]`);
    }
    return tf.sum(tf.slice(z, [0, outputIndex], [n, 1])) as tf.Scalar;
  };
  const run = (): tf.Tensor4D => tf.grad(score)(inputs) as tf.Tensor4D;
  try {
    return isGuided ? guided(model, run) : run();
  } catch (e) {
    const msg = (e as Error).message;
    if (/not registered|Gradient for|Cannot compute gradient|gradient function not found/i.test(msg)) {
      throw new CamLensError('METHOD_NOT_APPLICABLE', `the ${tf.getBackend()} backend cannot differentiate this model from its input: ${msg.split('\n')[0]}`,
        'use a class activation map method (gradcam, scorecam)');
    }
    throw e;
  }
}

/**
 * Values one input brings to a taped pass: the outputs of every op (the tape keeps them for the backward pass),
 * at least the input itself. Unknown dimensions count as 1.
 */
export function valuesPerInput(model: LoadedModel): number {
  let n = model.inputHeight * model.inputWidth * model.inputChannels;
  for (const op of model.graph.foldedOps) {
    n += op.outputShape.slice(1).reduce<number>((p, d) => p * (typeof d === 'number' && d > 0 ? d : 1), 1);
  }
  return n;
}

/** Values (float32) a batch of gradients may hold: the forward values and about as many gradients, 384 MB. */
export const GRADIENT_BATCH_BUDGET = 48 * 2 ** 20;
export const MAX_GRADIENT_BATCH = 32;

/** The default inputs per forward-and-backward pass: what fits GRADIENT_BATCH_BUDGET, 1..32, at most `count`. */
export function defaultGradientBatch(model: LoadedModel, count: number): number {
  const fit = Math.floor(GRADIENT_BATCH_BUDGET / (2 * valuesPerInput(model)));
  return Math.max(1, Math.min(MAX_GRADIENT_BATCH, fit, count));
}

export interface GradientSumOptions {
  guided?: boolean;
  /** Inputs per pass; default `defaultGradientBatch`. */
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Names the work in a cancellation ("SmoothGrad"). */
  what?: string;
}

/**
 * sum_i d logit_c / d x at the inputs `makeInputs` gives, [1, H, W, C]: `count` inputs in batches of `batchSize`,
 * `makeInputs(start, n)` making inputs start .. start + n - 1 (a batch it returns is disposed here; it must not
 * depend on the batch size, so that any batching gives the same inputs). Returns the sum and the passes run.
 */
export async function sumInputGradients(model: LoadedModel, count: number, makeInputs: (start: number, n: number) => tf.Tensor4D,
  outputIndex: number, opts: GradientSumOptions = {}): Promise<{ sum: tf.Tensor4D; passes: number; batchSize: number }> {
  if (!Number.isInteger(count) || count < 1) throw new CamLensError('BAD_ARGUMENT', `the number of inputs must be a positive integer, got ${count}`);
  const batchSize = opts.batchSize ?? defaultGradientBatch(model, count);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new CamLensError('BAD_ARGUMENT', `batch size must be a positive integer, got ${batchSize}`);
  let acc: tf.Tensor4D | undefined;
  let passes = 0;
  try {
    for (let start = 0; start < count; start += batchSize) {
      throwIfAborted(opts.signal, opts.what ?? 'the saliency map');
      const n = Math.min(batchSize, count - start);
      const part = tf.tidy(() => {
        const xs = makeInputs(start, n);
        if (xs.shape[0] !== n) throw new CamLensError('BAD_ARGUMENT', `expected a batch of ${n} inputs, got ${xs.shape[0]}`);
        return tf.sum(inputGradient(model, xs, outputIndex, opts.guided), 0, true) as tf.Tensor4D;
      });
      if (acc) {
        const next = tf.add(acc, part) as tf.Tensor4D;
        acc.dispose();
        part.dispose();
        acc = next;
      } else {
        acc = part;
      }
      passes++;
      opts.onProgress?.(start + n, count);
      // Lets a cancellation (the panel's Cancel) and progress messages through between passes.
      if (start + n < count) await new Promise((r) => setImmediate(r));
    }
  } catch (e) {
    acc?.dispose();
    throw e;
  }
  return { sum: acc as tf.Tensor4D, passes, batchSize };
}
