/**
 * HiResCAM — Draelos and Carin 2020, "Use HiResCAM instead of Grad-CAM for faithful explanations of
 * convolutional neural networks", https://arxiv.org/abs/2011.08891
 *
 * The gradient multiplies the activation element-wise instead of being averaged first:
 *
 *   L = ReLU( sum_k dY_c/dA^k ⊙ A^k )
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CamContext, CamMethod } from './base';

export const hirescam: CamMethod = {
  id: 'hirescam',
  label: 'HiResCAM',
  group: 'cam',
  paper: 'Draelos and Carin 2020',
  needsGradients: true,
  compute(ctx: CamContext): tf.Tensor2D {
    const [, h, w] = ctx.activation.shape;
    return tf.reshape(tf.sum(tf.mul(ctx.gradients as tf.Tensor4D, ctx.activation), 3), [h, w]) as tf.Tensor2D;
  },
  weightedActivations(ctx: CamContext): tf.Tensor4D {
    return tf.mul(ctx.gradients as tf.Tensor4D, ctx.activation);
  },
};
