/**
 * Eigen-Grad-CAM — the class-discriminative Eigen-CAM of pytorch-grad-cam (Jacob Gildenblat et al.,
 * https://github.com/jacobgil/pytorch-grad-cam, EigenGradCAM), after Muhammad and Yeasin 2020, "Eigen-CAM:
 * Class Activation Map using Principal Components", https://arxiv.org/abs/2008.00299
 *
 * Let X be the gradient-weighted activations, dY_c/dA ∘ A (element-wise, HiResCAM's terms), as an (h*w) x K
 * matrix. The map is its projection on the first principal component:
 *
 *   Xc = X - 1 mean(X)          (each channel's mean over the positions removed, as pytorch-grad-cam)
 *   L  = Xc v_1                 (v_1: the top eigenvector of Xc^T Xc, the first right singular vector)
 *
 * Unlike Eigen-CAM it depends on the class, through the gradients. Sign: as Eigen-CAM (eigencam.ts), v_1 is
 * oriented so that L correlates positively with the channel mean of X, i.e. with HiResCAM's map sum_k X_k
 * (pytorch-grad-cam keeps the SVD's arbitrary sign). Option `center` (default true) as Eigen-CAM's.
 *
 * eigenSmooth does not apply: the map already is the first principal component.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import type { CamContext, CamMethod } from './base';
import { firstComponentMap } from './eigencam';

export const eigengradcam: CamMethod = {
  id: 'eigengradcam',
  label: 'Eigen-Grad-CAM',
  group: 'cam',
  params: [{
    id: 'center', label: 'Center channels', kind: 'boolean', default: true,
    description: "Subtract each channel's mean before the principal component, as pytorch-grad-cam; off: uncentred",
  }],
  paper: 'pytorch-grad-cam (Gildenblat et al.), after Muhammad and Yeasin 2020',
  needsGradients: true,
  isAsync: true,
  async compute(ctx: CamContext): Promise<tf.Tensor2D> {
    const center = ctx.options?.center ?? true;
    if (typeof center !== 'boolean') throw new CamLensError('BAD_ARGUMENT', `Eigen-Grad-CAM option center must be true or false, got ${JSON.stringify(center)}`);
    const weighted = tf.mul(ctx.gradients as tf.Tensor4D, ctx.activation) as tf.Tensor4D;
    try {
      return await firstComponentMap(weighted, center);
    } finally {
      weighted.dispose();
    }
  },
};
