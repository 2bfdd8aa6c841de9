import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { finiteRange, heatAt, makeHeatmap, minMaxNormalize, upsampleBilinear } from '../../src/shared/heatmap';

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6, what = ''): void {
  assert.equal(actual.length, expected.length, `${what} length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: got ${actual[i]}, expected ${expected[i]}`);
  }
}

/** Deterministic pseudo-random values (LCG), so failures reproduce. */
function seeded(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = s / 2 ** 32;
  }
  return out;
}

describe('upsampleBilinear', () => {
  it('2x2 -> 4x4 matches the hand-computed half-pixel-centre values', () => {
    // Map [[0,1],[2,3]]. Output column x samples source s = (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
    // clamped to [0,1]: 0, 0.25, 0.75, 1. Same for rows, and the map is v = s_x + 2 s_y.
    const out = upsampleBilinear(new Float32Array([0, 1, 2, 3]), 2, 2, 4, 4);
    // prettier-ignore
    assertClose(out, [
      0.0, 0.25, 0.75, 1.0,
      0.5, 0.75, 1.25, 1.5,
      1.5, 1.75, 2.25, 2.5,
      2.0, 2.25, 2.75, 3.0,
    ]);
  });

  it('keeps a constant map constant at any size', () => {
    for (const [w, h, ow, oh] of [[1, 1, 5, 3], [3, 2, 7, 11], [7, 7, 224, 224], [4, 3, 2, 2]]) {
      const out = upsampleBilinear(new Float32Array(w * h).fill(0.375), w, h, ow, oh);
      assert.equal(out.length, ow * oh);
      for (const v of out) assert.equal(v, 0.375);
    }
  });

  it('is the identity at the same size and does not modify its input', () => {
    const map = seeded(12);
    const copy = map.slice();
    assertClose(upsampleBilinear(map, 4, 3, 4, 3), map, 0);
    assert.deepEqual(map, copy);
  });

  it('agrees with tf.image.resizeBilinear(halfPixelCenters=true)', () => {
    tf.setBackend('cpu');
    for (const [w, h, ow, oh] of [[7, 5, 23, 17], [14, 14, 224, 224], [3, 8, 10, 9]]) {
      const map = seeded(w * h, w * 31 + h);
      const ref = tf.tidy(() =>
        tf.image.resizeBilinear(tf.tensor3d(map, [h, w, 1]), [oh, ow], false, true).dataSync(),
      ) as Float32Array;
      assertClose(upsampleBilinear(map, w, h, ow, oh), ref, 1e-5, `${w}x${h}->${ow}x${oh}`);
    }
  });

  it('refuses sizes that do not match the data', () => {
    assert.throws(() => upsampleBilinear(new Float32Array(5), 2, 2, 4, 4), /5 values do not fill 2x2/);
    assert.throws(() => upsampleBilinear(new Float32Array(4), 2, 2, 0, 4), /positive integers, got 0x4/);
    assert.throws(() => upsampleBilinear(new Float32Array(4), 2, 2, 2.5, 4), /got 2.5x4/);
  });
});

describe('heatAt', () => {
  it('returns exactly the upsampled value at every integer pixel', () => {
    const map = seeded(6 * 4, 7);
    const W = 50;
    const H = 31;
    const up = upsampleBilinear(map, 6, 4, W, H);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        assert.ok(Math.abs(heatAt(map, 6, 4, x, y, W, H) - up[y * W + x]) < 1e-6, `(${x},${y})`);
      }
    }
  });

  it('interpolates between pixels and is NaN outside the image', () => {
    const map = new Float32Array([0, 1, 2, 3]);
    // Image 4x4: pixel centres map to source 0.25 and 0.75 at x = 1 and 2; x = 1.5 maps to 0.5.
    assert.ok(Math.abs(heatAt(map, 2, 2, 1.5, 0, 4, 4) - 0.5) < 1e-9);
    assert.ok(Number.isNaN(heatAt(map, 2, 2, -0.1, 0, 4, 4)));
    assert.ok(Number.isNaN(heatAt(map, 2, 2, 4, 0, 4, 4)));
    assert.ok(Number.isNaN(heatAt(map, 2, 2, 0, 4, 4, 4)));
    assert.ok(Number.isNaN(heatAt(map, 2, 2, NaN, 0, 4, 4)));
    assert.equal(heatAt(map, 2, 2, 3.99, 3.99, 4, 4), 3);
  });
});

describe('minMaxNormalize / makeHeatmap', () => {
  it('maps min to 0 and max to (almost) 1, linearly', () => {
    const out = minMaxNormalize(new Float32Array([2, 4, 6]));
    assertClose(out, [0, 0.5, 1], 1e-6);
    assert.ok(out[2] <= 1);
  });

  it('turns a constant map into zeros instead of dividing by zero', () => {
    assert.deepEqual(Array.from(minMaxNormalize(new Float32Array([5, 5, 5]))), [0, 0, 0]);
    assert.deepEqual(Array.from(minMaxNormalize(new Float32Array([0, 0]))), [0, 0]);
  });

  it('uses the epsilon as (v - min) / (max - min + eps)', () => {
    const out = minMaxNormalize([0, 1], 1);
    assertClose(out, [0, 0.5]);
  });

  it('ignores non-finite values for the range and paints them 0', () => {
    const out = minMaxNormalize(new Float32Array([NaN, 1, 3, Infinity, -Infinity]));
    assertClose(out, [0, 0, 1, 0, 0], 1e-6);
    assert.deepEqual(finiteRange([NaN, NaN]), { min: 0, max: 0 });
    assert.deepEqual(finiteRange([]), { min: 0, max: 0 });
    assert.deepEqual(finiteRange([Infinity, -2, 5]), { min: -2, max: 5 });
  });

  it('does not modify its input', () => {
    const raw = new Float32Array([3, 1, 2]);
    minMaxNormalize(raw);
    assert.deepEqual(Array.from(raw), [3, 1, 2]);
  });

  it('makeHeatmap keeps the raw range next to the normalised values', () => {
    const hm = makeHeatmap(new Float32Array([-1, 0, 1, 3]), 2, 2);
    assert.equal(hm.width, 2);
    assert.equal(hm.height, 2);
    assert.equal(hm.rawMin, -1);
    assert.equal(hm.rawMax, 3);
    assertClose(hm.values, [0, 0.25, 0.5, 1], 1e-6);
    assert.throws(() => makeHeatmap(new Float32Array(3), 2, 2), /3 values do not fill 2x2/);
  });
});
