/**
 * Grad-CAM element-wise — the variant pytorch-grad-cam calls GradCAMElementWise (Jacob Gildenblat et al.,
 * pytorch-grad-cam, https://github.com/jacobgil/pytorch-grad-cam), a HiResCAM whose element-wise products are
 * rectified before the sum over the channels (Draelos and Carin 2020, https://arxiv.org/abs/2011.08891, is the
 * unrectified form):
 *
 *   L_ij = ReLU( sum_k ReLU( dY_c/dA_ij^k * A_ij^k ) )
 *
 * No spatial average of the gradients: each position keeps its own gradient, and a channel can only add to a
 * position, never take away (a negative product is dropped, not subtracted). The outer ReLU is the shared
 * finalisation (base.ts) and changes nothing here.
 *
 * eigenSmooth: the first principal component of the rectified products ReLU(dY/dA * A), as pytorch-grad-cam.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CamContext, CamMethod } from './base';

/** ReLU(dY/dA * A), [1, h, w, K]. */
function rectifiedProducts(ctx: CamContext): tf.Tensor4D {
  return tf.relu(tf.mul(ctx.gradients as tf.Tensor4D, ctx.activation)) as tf.Tensor4D;
}

export const gradcamElementwise: CamMethod = {
  id: 'gradcamelementwise',
  label: 'Grad-CAM element-wise',
  group: 'cam',
  paper: 'pytorch-grad-cam (Gildenblat et al.), after Draelos and Carin 2020',
  needsGradients: true,
  compute(ctx: CamContext): tf.Tensor2D {
    const [, h, w] = ctx.activation.shape;
    return tf.reshape(tf.sum(rectifiedProducts(ctx), 3), [h, w]) as tf.Tensor2D;
  },
  weightedActivations: rectifiedProducts,
};
