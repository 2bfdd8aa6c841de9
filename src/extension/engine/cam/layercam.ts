/**
 * LayerCAM — Jiang et al. 2021, "LayerCAM: Exploring Hierarchical Class Activation Maps for
 * Localization", IEEE TIP, https://doi.org/10.1109/TIP.2021.3089943
 *
 * Each location gets its own weight, the positive gradient there:
 *
 *   L = ReLU( sum_k ReLU(dY_c/dA^k) ⊙ A^k )
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CamContext, CamMethod } from './base';

export const layercam: CamMethod = {
  id: 'layercam',
  label: 'LayerCAM',
  group: 'cam',
  paper: 'Jiang et al. 2021',
  needsGradients: true,
  compute(ctx: CamContext): tf.Tensor2D {
    const [, h, w] = ctx.activation.shape;
    return tf.reshape(tf.sum(tf.mul(tf.relu(ctx.gradients as tf.Tensor4D), ctx.activation), 3), [h, w]) as tf.Tensor2D;
  },
  weightedActivations(ctx: CamContext): tf.Tensor4D {
    return tf.mul(tf.relu(ctx.gradients as tf.Tensor4D), ctx.activation);
  },
};
