/**
 * XGrad-CAM — Fu et al. 2020, "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of
 * CNNs", https://arxiv.org/abs/2008.02312
 *
 *   w_k = sum_ij ( A_ij^k / sum_ab A_ab^k ) * dY_c / dA_ij^k
 *   L   = ReLU( sum_k w_k A^k )
 */
import * as tf from '@tensorflow/tfjs-core';
import { NORMALIZE_EPS, scaleChannels, spatialSum, weightedChannelSum, type CamContext, type CamMethod } from './base';

/** The XGrad-CAM channel weights [K]. */
function weights(ctx: CamContext): tf.Tensor1D {
  const a = ctx.activation;
  const g = ctx.gradients as tf.Tensor4D;
  return tf.div(spatialSum(tf.mul(g, a) as tf.Tensor4D), tf.add(spatialSum(a), NORMALIZE_EPS)) as tf.Tensor1D;
}

export const xgradcam: CamMethod = {
  id: 'xgradcam',
  label: 'XGrad-CAM',
  group: 'cam',
  paper: 'Fu et al. 2020',
  needsGradients: true,
  compute(ctx: CamContext): tf.Tensor2D {
    return weightedChannelSum(ctx.activation, weights(ctx));
  },
  weightedActivations(ctx: CamContext): tf.Tensor4D {
    return scaleChannels(ctx.activation, weights(ctx));
  },
};
