/**
 * Integrated Gradients — Sundararajan, Taly and Yan 2017, "Axiomatic Attribution for Deep Networks",
 * https://arxiv.org/abs/1703.01365
 *
 *   IG(p, c) = (x - x')(p, c) * integral_0^1 dS/dx(x' + a (x - x'))(p, c) da
 *            ~ (x - x')(p, c) * (1 / m) * sum_{k=0..m-1} dS/dx(x' + a_k (x - x'))(p, c),   a_k = (k + 1/2) / m
 *
 * S the class logit, x the preprocessed input, x' the baseline, m the steps (default 64; the midpoint rule, whose
 * error falls as 1/m^2). Completeness: sum_{p,c} IG(p, c) = S(x) - S(x') for the exact integral; the result
 * reports the gap, sum IG - (S(x) - S(x')), absolute and relative to |S(x) - S(x')| (MapDetails.completeness), the
 * paper's check that there are steps enough (it suggests within 5%).
 *
 * Baselines: 'black', the preprocessed value of a black image (pixel value 0 through the model's preprocessing,
 * per channel); 'blurred', the input under a Gaussian blur of sigma = max(H, W) / 16 pixels (Sturmfels, Lundberg
 * and Lee 2020, "Visualizing the Impact of Feature Attribution Baselines"), normalised at the borders. The map is
 * the signed channel sum of IG (pixelMethod.ts), so its values sum to the attributions' sum. The m path points go
 * through the model in batches (inputGradients.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MapResult, MethodParam } from '../cam/base';
import type { LoadedModel } from '../model';
import { applyPreprocess } from '../preprocess';
import { sumInputGradients } from './inputGradients';
import { BATCH_PARAM, batchOption, checkInput, pixelOnly, readParams, signedMap, type PixelContext, type PixelMethod } from './pixelMethod';

const PARAMS: MethodParam[] = [
  {
    id: 'steps', label: 'Steps', kind: 'number', default: 64, min: 8, max: 512, step: 1,
    description: 'Points on the path from the baseline to the image: one forward and backward pass each, run in batches',
  },
  {
    id: 'baseline', label: 'Baseline', kind: 'choice', default: 'black',
    choices: [{ value: 'black', label: 'Black image' }, { value: 'blurred', label: 'Blurred image' }],
    description: 'Where the path starts: a black image, or this image blurred (sigma = 1/16 of its size)',
  },
];

/** The preprocessed value of a black pixel, per channel (0 where the preprocessing cannot tell). */
function blackPixel(model: LoadedModel, channels: number): number[] {
  try {
    return Array.from(applyPreprocess(new Float32Array(channels), channels, model.metadata.preprocess));
  } catch {
    return new Array<number>(channels).fill(0);
  }
}

/** Sigma of the blurred baseline, in pixels. */
export function blurSigma(height: number, width: number): number {
  return Math.max(height, width) / 16;
}

/**
 * `x` [1, H, W, C] under a separable Gaussian blur of `sigma` pixels (taps to 3 sigma), each output divided by the
 * weight of the taps inside the image, so that the borders do not darken towards the zero padding.
 */
export function gaussianBlur(x: tf.Tensor4D, sigma: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w, c] = x.shape;
    const r = Math.max(1, Math.ceil(3 * sigma));
    const taps = Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
    const total = taps.reduce((a, b) => a + b, 0);
    const k = taps.map((t) => t / total);
    const blur = (v: tf.Tensor4D, ch: number): tf.Tensor4D => {
      const kx = tf.tile(tf.reshape(tf.tensor1d(k), [1, 2 * r + 1, 1, 1]), [1, 1, ch, 1]) as tf.Tensor4D;
      const ky = tf.tile(tf.reshape(tf.tensor1d(k), [2 * r + 1, 1, 1, 1]), [1, 1, ch, 1]) as tf.Tensor4D;
      return tf.depthwiseConv2d(tf.depthwiseConv2d(v, kx, 1, 'same'), ky, 1, 'same');
    };
    const weight = blur(tf.ones([1, h, w, 1]) as tf.Tensor4D, 1);
    return tf.div(blur(x, c), weight) as tf.Tensor4D;
  });
}

/** The baseline x' of `kind` for the input [1, H, W, C]. */
export function baselineOf(model: LoadedModel, input: tf.Tensor4D, kind: string): tf.Tensor4D {
  const [, h, w, c] = input.shape;
  if (kind === 'blurred') return gaussianBlur(input, blurSigma(h, w));
  return tf.tidy(() => tf.mul(tf.ones([1, h, w, c]), tf.tensor1d(blackPixel(model, c))) as tf.Tensor4D);
}

export const integratedGradients: PixelMethod = {
  id: 'integratedgradients',
  label: 'Integrated Gradients',
  group: 'pixel',
  usesLayer: false,
  params: [...PARAMS, BATCH_PARAM],
  paper: 'Sundararajan et al. 2017: input minus baseline times the gradient averaged along the path between them',
  needsGradients: true,
  compute: pixelOnly('Integrated Gradients'),
  async explainPixels(ctx: PixelContext): Promise<MapResult> {
    checkInput('Integrated Gradients', ctx.input);
    const o = readParams('Integrated Gradients', PARAMS, ctx.options);
    const steps = o.steps as number;
    const baselineKind = o.baseline as 'black' | 'blurred';
    const x = ctx.input;
    const base = baselineOf(ctx.model, x, baselineKind);
    const diff = tf.sub(x, base) as tf.Tensor4D;
    let attr: tf.Tensor4D | undefined;
    try {
      const path = (start: number, n: number): tf.Tensor4D => tf.tidy(() => {
        const a = tf.tensor4d(Array.from({ length: n }, (_, k) => (start + k + 0.5) / steps), [n, 1, 1, 1]);
        return tf.add(base, tf.mul(a, diff)) as tf.Tensor4D;
      });
      const { sum, passes, batchSize } = await sumInputGradients(ctx.model, steps, path, ctx.classIndex, {
        batchSize: batchOption('Integrated Gradients', ctx.options), signal: ctx.signal, onProgress: ctx.onProgress, what: 'Integrated Gradients',
      });
      attr = tf.tidy(() => tf.mul(diff, tf.div(sum, steps)) as tf.Tensor4D);
      sum.dispose();
      const ends = tf.concat([x, base], 0) as tf.Tensor4D;
      const scores = await ctx.scoreBatch(ends).finally(() => ends.dispose());
      const total = tf.sum(attr);
      const attributionSum = (await total.data())[0];
      total.dispose();
      const [inputScore, baselineScore] = [scores.logits[0], scores.logits[1]];
      const difference = inputScore - baselineScore;
      const gap = attributionSum - difference;
      const relativeGap = Math.abs(difference) > 0 ? gap / Math.abs(difference) : undefined;
      const gapText = relativeGap === undefined ? `gap ${gap.toPrecision(3)}` : `completeness gap ${(relativeGap * 100).toFixed(2)}%`;
      return await signedMap(attr, {
        note: `${steps} steps from a ${baselineKind} baseline, ${gapText}`,
        steps, baseline: baselineKind, batchSize, passes,
        completeness: { attributionSum, inputScore, baselineScore, gap, ...(relativeGap !== undefined ? { relativeGap } : {}) },
      });
    } finally {
      attr?.dispose();
      diff.dispose();
      base.dispose();
    }
  },
};
