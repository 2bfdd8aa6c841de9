/**
 * Guided Backpropagation — Springenberg, Dosovitskiy, Brox and Riedmiller 2015, "Striving for Simplicity: The All
 * Convolutional Net", https://arxiv.org/abs/1412.6806 (section 3.4)
 *
 * The gradient of the class logit S_c with respect to the input, with every ReLU-family activation of the
 * backward pass passing only positive gradients to positive inputs:
 *
 *   R_in = [x > 0] * [R_out > 0] * R_out        (at each ReLU y = max(0, x); ReLU6: [0 < x < 6])
 *   G    = R at the input, [H, W, C]
 *
 * (inputGradients.ts says where the rule applies). Rendered as an RGB image (0.5 + 0.1 * standardised G, as
 * pytorch-grad-cam's deprocess_image) or as the magnitude max_c |G| (pixelMethod.ts); `values` always hold the
 * magnitude. Not class-discriminative on its own (Selvaraju et al. 2017): Guided Grad-CAM is.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MapResult } from '../cam/base';
import { inputGradient } from './inputGradients';
import { RENDER_PARAM, checkInput, pixelOnly, readParams, renderedMap, type PixelContext, type PixelMethod } from './pixelMethod';

export const guidedBackprop: PixelMethod = {
  id: 'guidedbackprop',
  label: 'Guided Backpropagation',
  group: 'pixel',
  usesLayer: false,
  params: [RENDER_PARAM],
  paper: 'Springenberg et al. 2015: the input gradient with only positive gradients passed back through every ReLU',
  needsGradients: true,
  compute: pixelOnly('Guided Backpropagation'),
  async explainPixels(ctx: PixelContext): Promise<MapResult> {
    checkInput('Guided Backpropagation', ctx.input);
    const { render } = readParams('Guided Backpropagation', [RENDER_PARAM], ctx.options);
    const g = tf.tidy(() => inputGradient(ctx.model, ctx.input, ctx.classIndex, true));
    try {
      return await renderedMap(g, ctx.model, render as string, { note: `guided backpropagation, ${render}`, render: render as 'rgb' | 'magnitude' });
    } finally {
      g.dispose();
    }
  },
};
