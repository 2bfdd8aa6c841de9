/**
 * Eigen-CAM — Muhammad and Yeasin 2020, "Eigen-CAM: Class Activation Map using Principal Components",
 * IJCNN 2020, https://arxiv.org/abs/2008.00299
 *
 * Class-independent: the map is the same whichever class is chosen (it shows what the layer finds most salient,
 * not why one class won). No gradients, no extra forward pass.
 *
 * Let X be the target layer's activation as an (h*w) x K matrix (one row per position, one column per channel).
 * The paper factorises X = U S V^T and projects on the first right singular vector:
 *
 *   L = X v_1        (v_1: the first principal component, the top eigenvector of X^T X)
 *
 * Centering: pytorch-grad-cam, the implementation users compare with, first subtracts each channel's mean over
 * the positions (Xc = X - 1 mean(X)), so v_1 is the direction of largest variance and L = Xc v_1 has zero mean.
 * The paper factorises the activation matrix as it is (no centering step is described). We center by default,
 * to agree with pytorch-grad-cam (option `center: false` gives the paper's uncentred form);
 * for ReLU activations the uncentred v_1 is close to the mean-activation direction, so the centred map shows
 * more than "where the layer is active at all".
 *
 * Sign: a singular vector's sign is arbitrary (pytorch-grad-cam keeps whatever the SVD returns, so its maps
 * sometimes come out inverted and, after the ReLU, almost empty). We flip v_1 so that L correlates positively
 * with the mean activation map m = X 1 / K.
 *
 * TensorFlow.js has no SVD kernel. v_1 comes from power iteration on the smaller of the two symmetric matrices
 * Xc^T Xc (K x K, the channel covariance up to a factor) and Xc Xc^T (hw x hw, the Gram matrix): when hw < K the
 * top eigenvector u of the Gram matrix gives the same projection, Xc v_1 = sigma_1 u, sigma_1 = sqrt(lambda_1).
 * The matrix is formed on the backend; the iteration runs in float64 in JS from a fixed start vector, until the
 * direction moves by less than ~1.4e-7 rad in one step, or 2000 iterations.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CamLensError } from '../errors';
import type { CamContext, CamMethod } from './base';

export interface EigenPair {
  /** Unit eigenvector (float64). All zeros for the zero matrix. */
  vector: Float64Array;
  value: number;
  iterations: number;
  converged: boolean;
}

/** A fixed, generic start vector (a small LCG): deterministic, and almost surely not orthogonal to any eigenvector. */
function startVector(d: number): Float64Array {
  const v = new Float64Array(d);
  let s = 0x2545f491;
  for (let i = 0; i < d; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    v[i] = 0.5 + s / 0x100000000;
  }
  return v;
}

function normalizeInPlace(v: Float64Array): number {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n);
  if (n > 0) for (let i = 0; i < v.length; i++) v[i] /= n;
  return n;
}

/**
 * The top eigenpair of a symmetric positive semi-definite d x d matrix (row-major) by power iteration.
 * Converged when 1 - |<v_t, v_t+1>| < tol (default 1e-14: the direction moved less than ~1.4e-7 rad).
 */
export function topEigenpair(m: ArrayLike<number>, d: number, opts: { maxIterations?: number; tol?: number } = {}): EigenPair {
  if (m.length !== d * d) throw new CamLensError('BAD_ARGUMENT', `a ${d} x ${d} matrix needs ${d * d} values, got ${m.length}`);
  const maxIterations = opts.maxIterations ?? 2000;
  const tol = opts.tol ?? 1e-14;
  let v: Float64Array = startVector(d);
  normalizeInPlace(v);
  let w: Float64Array = new Float64Array(d);
  const mul = (x: Float64Array, out: Float64Array) => {
    for (let i = 0; i < d; i++) {
      let s = 0;
      const row = i * d;
      for (let j = 0; j < d; j++) s += m[row + j] * x[j];
      out[i] = s;
    }
  };
  for (let it = 1; it <= maxIterations; it++) {
    mul(v, w);
    if (normalizeInPlace(w) === 0) return { vector: new Float64Array(d), value: 0, iterations: it, converged: true };
    let dot = 0;
    for (let i = 0; i < d; i++) dot += v[i] * w[i];
    [v, w] = [w, v];
    if (1 - Math.abs(dot) < tol) return { vector: v, value: rayleigh(m, v, d), iterations: it, converged: true };
  }
  return { vector: v, value: rayleigh(m, v, d), iterations: maxIterations, converged: false };
}

function rayleigh(m: ArrayLike<number>, v: Float64Array, d: number): number {
  let s = 0;
  for (let i = 0; i < d; i++) {
    let r = 0;
    for (let j = 0; j < d; j++) r += m[i * d + j] * v[j];
    s += v[i] * r;
  }
  return s;
}

/**
 * The Eigen-CAM projection [h*w] of an activation given as an (h*w) x K row-major matrix. Pure JS maths on the
 * matrix products the caller computed: `gram` is Xc Xc^T (hw x hw) when hw <= K, else Xc^T Xc (K x K).
 */
function projection(x: Float32Array, n: number, k: number, centered: Float32Array, gram: Float32Array): Float64Array {
  const p = new Float64Array(n);
  if (n <= k) {
    const { vector, value } = topEigenpair(gram, n);
    const sigma = Math.sqrt(Math.max(0, value));
    for (let i = 0; i < n; i++) p[i] = sigma * vector[i];
  } else {
    const { vector } = topEigenpair(gram, k);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += centered[i * k + c] * vector[c];
      p[i] = s;
    }
  }
  // Sign: positive correlation with the mean activation map (p may have nonzero mean when uncentred).
  let pm = 0;
  let mm = 0;
  const mean = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let c = 0; c < k; c++) s += x[i * k + c];
    mean[i] = s / k;
    pm += p[i];
    mm += mean[i];
  }
  pm /= n;
  mm /= n;
  let cov = 0;
  for (let i = 0; i < n; i++) cov += (p[i] - pm) * (mean[i] - mm);
  if (cov < 0) for (let i = 0; i < n; i++) p[i] = -p[i];
  return p;
}

/**
 * The projection of a [1, h, w, K] tensor, as an (h*w) x K matrix, on its first principal component, as a map
 * [h, w]: Eigen-CAM's map of the activations, and the shared step of Eigen-Grad-CAM and the eigenSmooth option
 * (pytorch-grad-cam's get_2d_projection, which centres). Sign: positive correlation with the channel mean of x.
 * Non-finite values count as 0. Returns a tensor the caller disposes; disposes nothing it was given.
 */
export async function firstComponentMap(activation: tf.Tensor4D, center = true): Promise<tf.Tensor2D> {
  const [, h, w, k] = activation.shape;
  const n = h * w;
  // Non-finite activations count as 0 (as pytorch-grad-cam does with NaN).
  const [xT, cT, gT] = tf.tidy(() => {
    const raw = tf.reshape(activation, [n, k]);
    const x = tf.where(tf.isFinite(raw), raw, tf.zerosLike(raw)) as tf.Tensor2D;
    const c = center ? tf.sub(x, tf.mean(x, 0, true)) as tf.Tensor2D : x;
    const g = n <= k ? tf.matMul(c, c, false, true) : tf.matMul(c, c, true, false);
    return [x, c, g];
  });
  try {
    const [x, c, g] = await Promise.all([xT.data(), cT.data(), gT.data()]) as Float32Array[];
    return tf.tensor2d(Float32Array.from(projection(x, n, k, c, g)), [h, w]);
  } finally {
    xT.dispose();
    cT.dispose();
    gT.dispose();
  }
}

export const eigencam: CamMethod = {
  id: 'eigencam',
  label: 'Eigen-CAM',
  group: 'cam',
  params: [{
    id: 'center', label: 'Center channels', kind: 'boolean', default: true,
    description: "Subtract each channel's mean before the principal component, as pytorch-grad-cam; off: the paper's uncentred form",
  }],
  paper: 'Muhammad and Yeasin 2020',
  needsGradients: false,
  classIndependent: true,
  isAsync: true,
  async compute(ctx: CamContext): Promise<tf.Tensor2D> {
    const center = ctx.options?.center ?? true;
    if (typeof center !== 'boolean') throw new CamLensError('BAD_ARGUMENT', `Eigen-CAM option center must be true or false, got ${JSON.stringify(center)}`);
    return firstComponentMap(ctx.activation, center);
  },
};
