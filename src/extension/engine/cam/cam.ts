/**
 * CAM — Zhou et al. 2016, "Learning Deep Features for Discriminative Localization",
 * https://arxiv.org/abs/1512.04150
 *
 * For a network that ends in global average pooling followed by a linear classifier (Dense, or a 1x1
 * convolution on the pooled vector) with weights W [K, C]:
 *
 *   M_c = ReLU( sum_k W[k, c] * A^k )
 *
 * When the target layer already has one channel per class and is pooled straight into the output (a 1x1
 * convolution to C channels, then GAP, as in DarkNet), the class map is that channel: M_c = ReLU(A^c).
 * No gradients: one forward pass.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import { scaleChannels, weightedChannelSum, type CamContext, type CamMethod } from './base';

/** The class's weights [K] over the target's channels: its column of the dense head, or one-hot for a class map. */
function weights(ctx: CamContext): tf.Tensor1D {
  if (!ctx.linearHead) {
    throw new CamLensError('METHOD_NOT_APPLICABLE', 'CAM needs a global-average-pooling then linear head after the target layer', 'use gradcam');
  }
  const head = ctx.linearHead();
  const k = ctx.activation.shape[3];
  if (head.kind === 'identity') {
    if (ctx.classIndex >= k) {
      throw new CamLensError('BAD_ARGUMENT', `class ${ctx.classIndex} has no channel in a ${k}-channel class map`);
    }
    return tf.cast(tf.reshape(tf.oneHot(tf.tensor1d([ctx.classIndex], 'int32'), k), [k]), 'float32') as tf.Tensor1D;
  }
  // gather, not slice: on wasm a strided one-column slice of a [K, classes] kernel costs about as much as
  // the whole forward pass of a small model (3 ms for MobileNet's [256, 1000]); gather takes 0.08 ms.
  return tf.reshape(tf.gather(head.weights as tf.Tensor2D, [ctx.classIndex], 1), [k]) as tf.Tensor1D;
}

export const cam: CamMethod = {
  id: 'cam',
  label: 'CAM',
  group: 'cam',
  paper: 'Zhou et al. 2016',
  needsGradients: false,
  compute(ctx: CamContext): tf.Tensor2D {
    if (!ctx.linearHead) {
      throw new CamLensError('METHOD_NOT_APPLICABLE', 'CAM needs a global-average-pooling then linear head after the target layer', 'use gradcam');
    }
    const head = ctx.linearHead();
    const [, h, w, k] = ctx.activation.shape;
    if (head.kind === 'identity') {
      if (ctx.classIndex >= k) {
        throw new CamLensError('BAD_ARGUMENT', `class ${ctx.classIndex} has no channel in a ${k}-channel class map`);
      }
      return tf.reshape(tf.gather(ctx.activation, [ctx.classIndex], 3), [h, w]) as tf.Tensor2D;
    }
    const W = head.weights as tf.Tensor2D;
    // gather, not slice: on wasm a strided one-column slice of a [K, classes] kernel costs about as much as
    // the whole forward pass of a small model (3 ms for MobileNet's [256, 1000]); gather takes 0.08 ms.
    const column = tf.reshape(tf.gather(W, [ctx.classIndex], 1), [k]) as tf.Tensor1D;
    return weightedChannelSum(ctx.activation, column);
  },
  weightedActivations(ctx: CamContext): tf.Tensor4D {
    return scaleChannels(ctx.activation, weights(ctx));
  },
};
