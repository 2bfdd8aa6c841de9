/**
 * The ONNX convolution's execution paths against one plain reference, tf.conv2d with a dense filter (the
 * grouped filter spread block-diagonally): ordinary, depthwise, grouped as one depthwise convolution (narrow
 * groups), grouped one group at a time (wide groups), dilated as space-to-batch, each with a folded
 * BatchNormalization and a ReLU6, on cpu and wasm; and gradients through the dilated path equal the
 * gradient of the reference (which tfjs computes on cpu for dilation 1 only, so by finite differences).
 */
import * as assert from 'assert';
import * as tf from '@tensorflow/tfjs-core';
// Registers the gradient functions (as loading any model does through model.ts).
import '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { buildConv, type ConvSpec } from '../../src/extension/engine/formats/onnx/ops/nn';
import { hostTranspose } from '../../src/extension/engine/formats/onnx/layout';
import type { HostTensor } from '../../src/extension/engine/formats/onnx/tensor';

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1);
}

interface Case {
  name: string;
  c: number;
  m: number;
  groups: number;
  k: number;
  stride: number;
  dilation: number;
  pad: number;
}

const CASES: Case[] = [
  { name: 'ordinary, stride 2', c: 5, m: 7, groups: 1, k: 3, stride: 2, dilation: 1, pad: 1 },
  { name: 'depthwise, multiplier 2', c: 6, m: 12, groups: 6, k: 3, stride: 1, dilation: 1, pad: 1 },
  { name: 'grouped, 4 channels a group (one depthwise convolution)', c: 8, m: 6, groups: 2, k: 3, stride: 2, dilation: 1, pad: 1 },
  { name: 'grouped, 12 channels a group (group by group)', c: 24, m: 10, groups: 2, k: 3, stride: 1, dilation: 1, pad: 1 },
  { name: 'dilated 2, pad 2', c: 4, m: 5, groups: 1, k: 3, stride: 1, dilation: 2, pad: 2 },
  { name: 'dilated 3 depthwise, pad 1', c: 4, m: 4, groups: 4, k: 3, stride: 1, dilation: 3, pad: 1 },
];

/** ONNX weight [M, C/g, k, k] as the ConvSpec the importer builds, and as a dense HWIO reference filter. */
function specOf(cs: Case, w: Float32Array): { spec: ConvSpec; dense: tf.Tensor4D } {
  const cg = cs.c / cs.groups;
  const mg = cs.m / cs.groups;
  const W: HostTensor = { dataType: 1, dims: [cs.m, cg, cs.k, cs.k], data: w };
  let kind: ConvSpec['kind'];
  let filters: HostTensor[];
  if (cs.groups === 1) {
    kind = 'conv2d';
    filters = [hostTranspose(W, [2, 3, 1, 0])];
  } else if (cg === 1) {
    kind = 'depthwise';
    filters = [hostTranspose({ ...W, dims: [cs.c, cs.m / cs.c, cs.k, cs.k] }, [2, 3, 0, 1])];
  } else {
    kind = 'grouped';
    const per = mg * cg * cs.k * cs.k;
    filters = Array.from({ length: cs.groups }, (_, g) => hostTranspose({ dataType: 1, dims: [mg, cg, cs.k, cs.k], data: w.subarray(g * per, (g + 1) * per) }, [2, 3, 1, 0]));
  }
  const dense = new Float32Array(cs.k * cs.k * cs.c * cs.m);
  for (let o = 0; o < cs.m; o++) {
    const g = Math.floor(o / mg);
    for (let j = 0; j < cg; j++) {
      for (let t = 0; t < cs.k * cs.k; t++) dense[(t * cs.c + g * cg + j) * cs.m + o] = w[((o * cg + j) * cs.k * cs.k) + t];
    }
  }
  const p = cs.pad;
  const spec: ConvSpec = {
    kind, groups: cs.groups, filters, bias: random(cs.m, 5), outChannels: cs.m, strides: [cs.stride, cs.stride], dilations: [cs.dilation, cs.dilation],
    pad: cs.dilation > 1 ? 'valid' : p, pads: [p, p, p, p],
  };
  return { spec, dense: tf.tensor4d(dense, [cs.k, cs.k, cs.c, cs.m]) };
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`ONNX convolution paths on ${backend}`, () => {
    before(async () => {
      await initBackend(backend);
    });
    after(async () => {
      await initBackend('cpu');
    });

    for (const cs of CASES) {
      it(`${cs.name}: equals tf.conv2d with the dense filter, BatchNormalization folded and ReLU6 applied`, () => {
        const owned: tf.Tensor[] = [];
        const own = <T extends tf.Tensor>(t: T): T => {
          owned.push(t);
          return t;
        };
        const { spec, dense } = specOf(cs, random(cs.m * (cs.c / cs.groups) * cs.k * cs.k, 3));
        const bn = { scale: random(cs.m, 7).map((v) => 1 + 0.5 * v), shift: random(cs.m, 11) };
        const x = tf.tensor4d(random(2 * 11 * 13 * cs.c, 1), [2, 11, 13, cs.c]);
        try {
          const got = buildConv(spec, own, bn, 'relu6')(x);
          const want = tf.tidy(() => {
            // Reference: dense conv on cpu semantics (forward dilation is supported), bias, BN, ReLU6.
            const y = tf.conv2d(tf.pad(x, [[0, 0], [cs.pad, cs.pad], [cs.pad, cs.pad], [0, 0]]), dense, cs.stride, 'valid', 'NHWC', cs.dilation);
            const b = tf.tensor1d(spec.bias as Float32Array);
            return tf.relu6(tf.add(tf.mul(tf.add(y, b), tf.tensor1d(bn.scale)), tf.tensor1d(bn.shift)));
          });
          assert.deepStrictEqual(got.shape, want.shape);
          const d = tf.max(tf.abs(tf.sub(got, want))).dataSync()[0];
          assert.ok(d < 1e-4, `differs by ${d}`);
          tf.dispose([got, want]);
          if (cs.dilation > 1 && cs.stride === 1) {
            // Gradient of sum(conv(x) * r) with respect to x: through space-to-batch, against finite differences.
            const r = tf.tensor(random(want.size, 13), want.shape);
            const f = (v: tf.Tensor) => tf.sum(tf.mul(buildConv(spec, own)(v), r)) as tf.Scalar;
            const g = tf.grad(f)(x);
            const gd = g.dataSync();
            for (const i of [0, 17, 101, 333]) {
              const h = 1e-2;
              const bump = new Float32Array(x.size);
              bump[i] = h;
              const up = tf.tidy(() => f(tf.add(x, tf.tensor(bump, x.shape))).dataSync()[0]);
              const down = tf.tidy(() => f(tf.sub(x, tf.tensor(bump, x.shape))).dataSync()[0]);
              const num = (up - down) / (2 * h);
              assert.ok(Math.abs(num - gd[i]) < 2e-3 + 1e-2 * Math.abs(gd[i]), `element ${i}: ${gd[i]} vs ${num}`);
            }
            tf.dispose([r, g]);
          }
        } finally {
          tf.dispose([x, dense, ...owned]);
        }
      });
    }
  });
}
