/**
 * SmoothGrad — Smilkov, Thorat, Kim, Viégas and Wattenberg 2017, "SmoothGrad: removing noise by adding noise",
 * https://arxiv.org/abs/1706.03825
 *
 *   M(x) = (1 / n) * sum_{i=1..n} G(x + e_i),     e_i ~ N(0, sigma^2),   sigma = noise * (max(x) - min(x))
 *
 * with G the gradient of the class logit with respect to the input (gradient.ts), `noise` the noise level as a
 * fraction of the input's range (the paper finds 10-20% best; default 15%) and n the samples (default 25; the
 * paper sees little change past 50). The map is the signed channel sum of M, as the vanilla gradient's
 * (pixelMethod.ts), so noise 0 gives exactly the vanilla gradient. The n noisy copies go through the model in
 * batches (one forward and one backward pass per batch, inputGradients.ts); sample i's noise is drawn with its own
 * seed (SMOOTHGRAD_SEED + i), so a map is reproducible and the same whatever the batch size.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MapResult, MethodParam } from '../cam/base';
import { sumInputGradients } from './inputGradients';
import { BATCH_PARAM, batchOption, checkInput, pixelOnly, readParams, signedMap, type PixelContext, type PixelMethod } from './pixelMethod';

export const SMOOTHGRAD_SEED = 1017;

const PARAMS: MethodParam[] = [
  {
    id: 'samples', label: 'Samples', kind: 'number', default: 25, min: 1, max: 1000, step: 1,
    description: 'Noisy copies of the image averaged: one forward and backward pass each, run in batches',
  },
  {
    id: 'noise', label: 'Noise level', kind: 'number', default: 0.15, min: 0, max: 1, step: 0.01,
    description: "Standard deviation of the Gaussian noise as a fraction of the input's range (max - min); 0 gives the plain gradient",
  },
];

export const smoothGrad: PixelMethod = {
  id: 'smoothgrad',
  label: 'SmoothGrad',
  group: 'pixel',
  usesLayer: false,
  params: [...PARAMS, BATCH_PARAM],
  paper: 'Smilkov et al. 2017: the input gradient averaged over noisy copies of the image',
  needsGradients: true,
  compute: pixelOnly('SmoothGrad'),
  async explainPixels(ctx: PixelContext): Promise<MapResult> {
    checkInput('SmoothGrad', ctx.input);
    const o = readParams('SmoothGrad', PARAMS, ctx.options);
    const samples = o.samples as number;
    const noise = o.noise as number;
    const x = ctx.input;
    const [, h, w, c] = x.shape;
    const range = tf.tidy(() => tf.sub(tf.max(x), tf.min(x)));
    const sigma = noise * (await range.data())[0];
    range.dispose();
    const noisy = (start: number, n: number): tf.Tensor4D => tf.tidy(() => {
      if (sigma === 0) return tf.tile(x, [n, 1, 1, 1]) as tf.Tensor4D;
      const copies = Array.from({ length: n }, (_, k) => tf.add(x, tf.randomNormal([1, h, w, c], 0, sigma, 'float32', SMOOTHGRAD_SEED + start + k)));
      return tf.concat(copies, 0) as tf.Tensor4D;
    });
    const { sum, passes, batchSize } = await sumInputGradients(ctx.model, samples, noisy, ctx.classIndex, {
      batchSize: batchOption('SmoothGrad', ctx.options), signal: ctx.signal, onProgress: ctx.onProgress, what: 'SmoothGrad',
    });
    const mean = tf.tidy(() => tf.div(sum, samples) as tf.Tensor4D);
    sum.dispose();
    try {
      return await signedMap(mean, {
        note: `${samples} noisy copies, noise ${Math.round(noise * 1000) / 10}% of the input range`, samples, noise, batchSize, passes,
      });
    } finally {
      mean.dispose();
    }
  },
};
