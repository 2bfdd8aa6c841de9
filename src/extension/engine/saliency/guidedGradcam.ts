/**
 * Guided Grad-CAM — Selvaraju, Cogswell, Das, Vedantam, Parikh and Batra 2017, "Grad-CAM: Visual Explanations from
 * Deep Networks via Gradient-based Localization", https://arxiv.org/abs/1610.02391 (section 3, "Guided Grad-CAM")
 *
 *   L      = Grad-CAM map of class c at the target layer, ReLU, min-max normalised to [0, 1] (cam/gradcam.ts)
 *   U      = L upsampled bilinearly (half-pixel centres) to the input's H x W
 *   G      = guided backpropagation of class c (guidedBackprop.ts), [H, W, C]
 *   M(p,c) = U(p) * G(p, c)
 *
 * high-resolution and class-discriminative: the pixels guided backpropagation finds, where Grad-CAM localises the
 * class. Rendered like guided backpropagation (RGB, or the magnitude max_c |M|), as pytorch-grad-cam does
 * (deprocess_image(cam_mask * gb)).
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import type { MapResult } from '../cam/base';
import { upsampleBilinear } from '../../../shared/heatmap';
import { inputGradient } from './inputGradients';
import { RENDER_PARAM, checkInput, pixelOnly, readParams, renderedMap, type PixelContext, type PixelMethod } from './pixelMethod';

export const guidedGradcam: PixelMethod = {
  id: 'guidedgradcam',
  label: 'Guided Grad-CAM',
  group: 'pixel',
  usesLayer: true,
  params: [RENDER_PARAM],
  paper: 'Selvaraju et al. 2017: guided backpropagation times the Grad-CAM map upsampled to the input',
  needsGradients: true,
  compute: pixelOnly('Guided Grad-CAM'),
  async explainPixels(ctx: PixelContext): Promise<MapResult> {
    checkInput('Guided Grad-CAM', ctx.input);
    const { render } = readParams('Guided Grad-CAM', [RENDER_PARAM], ctx.options);
    if (!ctx.camMap) throw new CamLensError('METHOD_NOT_APPLICABLE', 'Guided Grad-CAM needs the Grad-CAM map of a target layer, and none was given');
    const cam = await ctx.camMap();
    const [, height, width] = ctx.input.shape;
    const up = upsampleBilinear(cam.values, cam.width, cam.height, width, height);
    const m = tf.tidy(() => {
      const g = inputGradient(ctx.model, ctx.input, ctx.classIndex, true);
      return tf.mul(g, tf.tensor4d(up, [1, height, width, 1])) as tf.Tensor4D;
    });
    try {
      return await renderedMap(m, ctx.model, render as string, {
        note: `guided backpropagation x Grad-CAM (${cam.width}x${cam.height} upsampled), ${render}`, render: render as 'rgb' | 'magnitude',
      });
    } finally {
      m.dispose();
    }
  },
};
