/**
 * Grad-CAM — Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
 * Localization", https://arxiv.org/abs/1610.02391
 *
 *   alpha_k = (1 / Z) * sum_ij dY_c / dA_ij^k          (global-average-pooled gradients)
 *   L       = ReLU( sum_k alpha_k * A^k )
 */
import * as tf from '@tensorflow/tfjs-core';
import { scaleChannels, spatialMean, weightedChannelSum, type CamContext, type CamMethod } from './base';

export const gradcam: CamMethod = {
  id: 'gradcam',
  label: 'Grad-CAM',
  group: 'cam',
  paper: 'Selvaraju et al. 2017',
  needsGradients: true,
  compute(ctx: CamContext): tf.Tensor2D {
    const g = ctx.gradients as tf.Tensor4D;
    return weightedChannelSum(ctx.activation, spatialMean(g));
  },
  weightedActivations(ctx: CamContext): tf.Tensor4D {
    return scaleChannels(ctx.activation, spatialMean(ctx.gradients as tf.Tensor4D));
  },
};
