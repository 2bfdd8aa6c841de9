/**
 * Grad-CAM++ — Chattopadhyay et al. 2018, "Grad-CAM++: Improved Visual Explanations for Deep
 * Convolutional Networks", https://arxiv.org/abs/1710.11063
 *
 * With the exponential-output closed form of the paper (eq. 19), the higher derivatives of exp(Y_c) reduce
 * to powers of the first gradient g = dY_c/dA:
 *
 *   a_ij^k  = g^2 / ( 2 g^2 + sum_ab A_ab^k * g^3 )      (0 where g = 0, eps in the denominator)
 *   w_k     = sum_ij a_ij^k * ReLU(g_ij^k)
 *   L       = ReLU( sum_k w_k A^k )
 */
import * as tf from '@tensorflow/tfjs-core';
import { NORMALIZE_EPS, scaleChannels, spatialSum, weightedChannelSum, type CamContext, type CamMethod } from './base';

/** The Grad-CAM++ channel weights [K]. */
function weights(ctx: CamContext): tf.Tensor1D {
  const a = ctx.activation;
  const g = ctx.gradients as tf.Tensor4D;
  const g2 = tf.square(g);
  const g3 = tf.mul(g2, g);
  const sumA = tf.reshape(spatialSum(a), [1, 1, 1, -1]);
  const denom = tf.add(tf.add(tf.mul(g2, 2), tf.mul(sumA, g3)), NORMALIZE_EPS);
  const alpha = tf.where(tf.notEqual(g, 0), tf.div(g2, denom), tf.zerosLike(g));
  return spatialSum(tf.mul(alpha, tf.relu(g)) as tf.Tensor4D);
}

export const gradcamPlusPlus: CamMethod = {
  id: 'gradcam++',
  label: 'Grad-CAM++',
  group: 'cam',
  paper: 'Chattopadhyay et al. 2018',
  needsGradients: true,
  compute(ctx: CamContext): tf.Tensor2D {
    return weightedChannelSum(ctx.activation, weights(ctx));
  },
  weightedActivations(ctx: CamContext): tf.Tensor4D {
    return scaleChannels(ctx.activation, weights(ctx));
  },
};
