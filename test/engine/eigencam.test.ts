/**
 * Eigen-CAM: the power iteration against eigen-decompositions known by hand, the projection on rank-1
 * activations whose answer is known, the sign rule, the Gram-matrix shortcut, and class independence.
 */
import * as assert from 'assert';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/extension/engine/backend';
import { runMethod } from '../../src/extension/engine/cam/base';
import { eigencam, topEigenpair } from '../../src/extension/engine/cam/eigencam';

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.strictEqual(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

/** v up to sign. */
function assertDirection(v: ArrayLike<number>, expected: number[], tol: number, what: string): void {
  const sign = Math.sign(Array.from(v).reduce((s, x, i) => s + x * expected[i], 0)) || 1;
  assertClose(Array.from(v, (x) => x * sign), expected, tol, what);
}

function normalize(m: number[]): number[] {
  const r = m.map((v) => Math.max(v, 0));
  const lo = Math.min(...r);
  const hi = Math.max(...r);
  return r.map((v) => (v - lo) / (hi - lo + 1e-7));
}

async function eigenMap(a: number[], shape: [number, number, number], options?: Record<string, unknown>) {
  const t = tf.tensor4d(a, [1, ...shape]);
  try {
    return await runMethod(eigencam, { activation: t, classIndex: 0, options });
  } finally {
    t.dispose();
  }
}

describe('Eigen-CAM', () => {
  before(async () => {
    await initBackend('cpu');
  });

  it('power iteration finds the top eigenpair of [[2,1],[1,2]]: 3 and (1,1)/sqrt 2', () => {
    const r = topEigenpair([2, 1, 1, 2], 2);
    assert.ok(r.converged);
    assert.ok(Math.abs(r.value - 3) < 1e-9, `${r.value}`);
    assertDirection(r.vector, [Math.SQRT1_2, Math.SQRT1_2], 1e-6, 'v1');
  });

  it('power iteration finds the top eigenpair of Q diag(6,3,1) Q^T for a known orthonormal Q', () => {
    const q = [[1, 2, 2], [2, 1, -2], [2, -2, 1]].map((r) => r.map((x) => x / 3));
    const lambda = [6, 3, 1];
    const m: number[] = [];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) m.push(q.reduce((s, qk, k) => s + lambda[k] * qk[i] * qk[j], 0));
    const r = topEigenpair(m, 3);
    assert.ok(r.converged, `${r.iterations} iterations`);
    assert.ok(Math.abs(r.value - 6) < 1e-9, `${r.value}`);
    assertDirection(r.vector, q[0], 1e-6, 'v1');
    assert.ok(r.iterations < 100, `${r.iterations} iterations for an eigengap of 2`);
    // Deterministic: the same start vector, the same answer.
    assert.deepStrictEqual(Array.from(topEigenpair(m, 3).vector), Array.from(r.vector));
  });

  it('power iteration returns the zero vector for the zero matrix, and a vector of the top eigenspace on a tie', () => {
    const z = topEigenpair([0, 0, 0, 0], 2);
    assert.deepStrictEqual(Array.from(z.vector), [0, 0]);
    assert.strictEqual(z.value, 0);
    // diag(1, 1, 0.5) rotated: any unit vector of the top 2-D eigenspace is an answer, and the value is still 1.
    const tie = topEigenpair([1, 0, 0, 0, 1, 0, 0, 0, 0.5], 3, { maxIterations: 50 });
    assert.ok(Math.abs(tie.value - 1) < 1e-9);
    assert.ok(Math.abs(tie.vector[2]) < 1e-6);
  });

  it('maps a rank-1 activation A = s c^T to the centred s (and to s itself uncentred)', async () => {
    const h = 3;
    const w = 4;
    const c = [0.5, 2, 1, 0.25, 3];
    const s = Array.from({ length: h * w }, (_, p) => 1 + Math.sin(p * 0.9) * 0.8);
    const a = s.flatMap((sp) => c.map((ck) => sp * ck));
    const mean = s.reduce((x, y) => x + y, 0) / s.length;
    const centred = await eigenMap(a, [h, w, c.length]);
    assertClose(centred.values, normalize(s.map((v) => v - mean)), 1e-4, 'centred');
    // The raw projection: (s - mean) |c|.
    const norm = Math.hypot(...c);
    assert.ok(Math.abs(centred.rawMax - Math.max(...s.map((v) => (v - mean) * norm))) < 1e-3, `rawMax ${centred.rawMax}`);
    const raw = await eigenMap(a, [h, w, c.length], { center: false });
    assertClose(raw.values, normalize(s), 1e-4, 'uncentred');
  });

  it('flips the sign so the map correlates positively with the mean activation', async () => {
    // c has a negative mean, so the mean activation map is -s up to scale: the map must highlight low s.
    const c = [-1, -2, 0.5];
    const s = [0.2, 1.5, 0.7, 2.0, 0.1, 1.1];
    const a = s.flatMap((sp) => c.map((ck) => sp * ck));
    const mean = s.reduce((x, y) => x + y, 0) / s.length;
    const r = await eigenMap(a, [2, 3, 3]);
    assertClose(r.values, normalize(s.map((v) => mean - v)), 1e-4, 'sign');
  });

  it('the Gram-matrix shortcut (h*w < K) gives the projection of the covariance route computed in float64 by hand', async () => {
    const h = 2;
    const w = 2;
    const k = 6;
    const a = Array.from({ length: h * w * k }, (_, i) => Math.abs(Math.sin(i * 1.7)) + (i % 3) * 0.2);
    // By hand: centre, K x K covariance, its top eigenvector, projection, sign.
    const n = h * w;
    const mu = Array.from({ length: k }, (_, j) => Array.from({ length: n }, (_, p) => a[p * k + j]).reduce((x, y) => x + y, 0) / n);
    const xc = Array.from({ length: n }, (_, p) => Array.from({ length: k }, (_, j) => a[p * k + j] - mu[j]));
    const cov: number[] = [];
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) cov.push(xc.reduce((s, r) => s + r[i] * r[j], 0));
    const v = topEigenpair(cov, k).vector;
    let proj = xc.map((r) => r.reduce((s, x, j) => s + x * v[j], 0));
    const meanMap = Array.from({ length: n }, (_, p) => a.slice(p * k, (p + 1) * k).reduce((x, y) => x + y, 0) / k);
    if (proj.reduce((s, q, p) => s + q * meanMap[p], 0) < 0) proj = proj.map((q) => -q);
    const r = await eigenMap(a, [h, w, k]);
    assertClose(r.values, normalize(proj), 1e-4, 'gram vs covariance');
  });

  it('is class-independent and leaves no tensor behind', async () => {
    const a = tf.tensor4d(Array.from({ length: 5 * 5 * 4 }, (_, i) => Math.cos(i) ** 2), [1, 5, 5, 4]);
    const before = tf.memory().numTensors;
    try {
      const m0 = await runMethod(eigencam, { activation: a, classIndex: 0 });
      const m7 = await runMethod(eigencam, { activation: a, classIndex: 7 });
      assert.deepStrictEqual(Array.from(m0.values), Array.from(m7.values));
      assert.strictEqual(tf.memory().numTensors, before);
      await assert.rejects(runMethod(eigencam, { activation: a, classIndex: 0, options: { center: 'yes' } }), /center must be true or false/);
    } finally {
      a.dispose();
    }
  });
});
