/**
 * Vanilla gradient (saliency map) — Simonyan, Vedaldi and Zisserman 2014, "Deep Inside Convolutional Networks:
 * Visualising Image Classification Models and Saliency Maps", https://arxiv.org/abs/1312.6034
 *
 *   G(p, c) = d S_c / d x(p, c)         S_c: the class logit (before softmax), x: the preprocessed input
 *   map(p)  = sum_c G(p, c) / max_p' |sum_c G(p', c)|          signed, in [-1, 1] (pixelMethod.ts)
 *
 * The paper shows max_c |G(p, c)|; the signed channel sum keeps which way a pixel pushes the score, and its
 * absolute value is the magnitude view. One forward and one backward pass at the model input's resolution.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MapResult } from '../cam/base';
import { inputGradient } from './inputGradients';
import { checkInput, pixelOnly, signedMap, type PixelContext, type PixelMethod } from './pixelMethod';

export const gradient: PixelMethod = {
  id: 'gradient',
  label: 'Gradient (vanilla saliency)',
  group: 'pixel',
  usesLayer: false,
  params: [],
  paper: 'Simonyan et al. 2014: the gradient of the class logit with respect to the input pixels (signed)',
  needsGradients: true,
  compute: pixelOnly('Gradient'),
  async explainPixels(ctx: PixelContext): Promise<MapResult> {
    checkInput('Gradient', ctx.input);
    const g = tf.tidy(() => inputGradient(ctx.model, ctx.input, ctx.classIndex));
    try {
      return await signedMap(g, { note: 'signed, summed over the input channels' });
    } finally {
      g.dispose();
    }
  },
};
