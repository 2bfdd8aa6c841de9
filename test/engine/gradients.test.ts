/**
 * Input-only gradients (#13 item 2; src/extension/engine/gradOps.ts): under a gradient tape the executors run
 * convolutions, BatchNormalization, ReLU/ReLU6 and Dense layers in a form whose backward pass computes dx and
 * nothing else. Checked on cpu and wasm:
 * - the gradient at every spatial layer equals the one tfjs-layers' own layers give (the old path: every layer
 *   unfolded, called as Keras would, differentiated by tf.grad), on models covering BN folding with and without
 *   a conv bias, fused ReLU/ReLU6, a residual add, a conv's own activation, a strided 1x1 convolution, a dilated
 *   one, a depthwise multiplier, a standalone BatchNormalization, Activation('relu6') and a hidden Dense layer;
 * - it agrees with central finite differences of the untaped forward pass at early layers;
 * - no filter- or bias-gradient kernel runs (kernel invocations counted by name), while the old path runs them;
 * - a new image's first Grad-CAM runs each convolution once (no second forward pass after the layer);
 * - the same on the reference MobileNet (skipped where ../shared/reference is absent) and on ONNX fixtures;
 * - the shared dx helper against tfjs' own input-gradient kernels, and wasm's buffer-sharing Identity.
 */
import * as assert from 'assert';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession } from '../../src/extension/engine/session';
import type { LayerGraph, LayerOp } from '../../src/extension/engine/graph';
import { GradFilters, conv as gradConv, type ConvRun } from '../../src/extension/engine/gradOps';
import { convInputGradient } from '../../src/extension/engine/wasmKernels';
import { bnModel } from '../helpers/models';
import { SHARED, requireShared, tempDir, writeModel } from '../helpers/modelFiles';
import { FIXTURE_NAMES, inputTensor as onnxInput, modelPath as onnxModelPath } from '../formats/onnxFixtures';

type Backend = 'cpu' | 'wasm';
const BACKENDS: Backend[] = ['cpu', 'wasm'];
const MOBILENET = path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json');

/** Kernels that compute gradients of weights, or that only the old ReLU6/BatchNormalization gradients used. */
const WEIGHT_GRADIENT_KERNELS = ['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter'];
const OLD_PATH_KERNELS = [...WEIGHT_GRADIENT_KERNELS, 'LessEqual', 'Tile'];

/** Deterministic data in [-1, 1): mulberry32. */
function random(size: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return out;
}

/** Kernel invocations by name while `f` runs (nested ones included). */
function countKernels<R>(f: () => R): [R, Map<string, number>] {
  const eng = tf.engine() as unknown as { runKernel: (...a: unknown[]) => unknown };
  const orig = eng.runKernel;
  const counts = new Map<string, number>();
  eng.runKernel = function (this: unknown, name: unknown, ...rest: unknown[]) {
    counts.set(String(name), (counts.get(String(name)) ?? 0) + 1);
    return orig.call(this, name, ...rest);
  };
  try {
    return [f(), counts];
  } finally {
    eng.runKernel = orig;
  }
}

/** The same around an async `f` (nothing else runs meanwhile in these tests). */
async function countKernelsAsync(f: () => Promise<unknown>): Promise<Map<string, number>> {
  const eng = tf.engine() as unknown as { runKernel: (...a: unknown[]) => unknown };
  const orig = eng.runKernel;
  const counts = new Map<string, number>();
  eng.runKernel = function (this: unknown, name: unknown, ...rest: unknown[]) {
    counts.set(String(name), (counts.get(String(name)) ?? 0) + 1);
    return orig.call(this, name, ...rest);
  };
  try {
    await f();
    return counts;
  } finally {
    eng.runKernel = orig;
  }
}

const LINEAR = { apply: (x: tf.Tensor) => x, getClassName: () => 'linear' };

/**
 * The old path: every layer of the unfolded op list called as tfjs-layers calls it (fused convolutions that
 * also differentiate their filters, BatchNormalization, Keras' relu6), the target's output replaced by `a`;
 * returns the logits (a final softmax skipped).
 */
function referenceLogits(g: LayerGraph, x: tf.Tensor, target: string, a: tf.Tensor): tf.Tensor {
  const values = new Map<string, tf.Tensor>([[g.inputIds[0], x]]);
  for (const op of g.ops as LayerOp[]) {
    if (op.className === 'InputLayer') continue;
    const ins = op.inputs.map((id) => values.get(id) as tf.Tensor);
    let outs: tf.Tensor[];
    if (op.name === target) {
      outs = [a];
    } else if (op.softmax === 'identity') {
      outs = [ins[0]];
    } else {
      const layer = op.layer as unknown as { activation?: unknown };
      const saved = layer.activation;
      if (op.softmax === 'linear-activation') layer.activation = LINEAR;
      try {
        const y = op.layer.apply(ins.length === 1 ? ins[0] : ins, { training: false });
        outs = Array.isArray(y) ? y : [y];
      } finally {
        layer.activation = saved;
      }
    }
    op.outputs.forEach((id, i) => values.set(id, outs[i]));
  }
  return values.get(g.outputIds[0]) as tf.Tensor;
}

/** A value computed by the unfolded layers, as tfjs-layers calls them. */
function referenceLogitsUpTo(g: LayerGraph, x: tf.Tensor, id: string): tf.Tensor {
  const values = new Map<string, tf.Tensor>([[g.inputIds[0], x]]);
  for (const op of g.ops as LayerOp[]) {
    if (op.className === 'InputLayer') continue;
    const ins = op.inputs.map((v) => values.get(v) as tf.Tensor);
    const y = op.layer.apply(ins.length === 1 ? ins[0] : ins, { training: false });
    (Array.isArray(y) ? y : [y]).forEach((t, i) => values.set(op.outputs[i], t));
    if (values.has(id)) return values.get(id) as tf.Tensor;
  }
  throw new Error(`no value ${id}`);
}

/** dlogit_c/dA by the old path. */
function referenceGradient(model: LoadedModel, x: tf.Tensor4D, target: string, a: tf.Tensor4D, c: number): [tf.Tensor4D, Map<string, number>] {
  const g = model.graph as LayerGraph;
  return countKernels(() => tf.tidy(() =>
    tf.grad((v: tf.Tensor) => tf.sum(tf.slice(tf.reshape(referenceLogits(g, x, target, v), [-1]), [c], [1])))(a) as tf.Tensor4D));
}

/**
 * Checks d/de f(a + e*v) at 0 against <grad, v> by central differences, for sparse directions v (16 entries
 * of +-1). The networks are piecewise linear (ReLU, ReLU6) or smooth: a direction along which f is not linear
 * over [-eps, eps] crosses a kink and proves nothing, so it is skipped; at least 3 of 6 must be checked.
 */
function checkFiniteDifferences(f: (v: tf.Tensor) => number, a: tf.Tensor, grad: tf.Tensor, what: string, eps = 1e-3): void {
  const gv = grad.dataSync();
  let checked = 0;
  const f0 = f(a);
  // float32 rounding of the logit itself
  const noise = 1e-5 * (1 + Math.abs(f0));
  for (let k = 0; k < 6; k++) {
    const v = new Float32Array(a.size);
    const r = random(32, 100 + k);
    for (let j = 0; j < 16; j++) v[Math.floor(((r[j] + 1) / 2) * a.size) % a.size] = r[16 + j] < 0 ? -1 : 1;
    const dir = tf.tensor(v, a.shape);
    const up = f(tf.tidy(() => tf.add(a, tf.mul(dir, eps))));
    const down = f(tf.tidy(() => tf.sub(a, tf.mul(dir, eps))));
    dir.dispose();
    if (Math.abs((up - f0) - (f0 - down)) > noise + 0.02 * Math.abs(up - down)) continue;
    checked++;
    const fd = (up - down) / (2 * eps);
    let an = 0;
    for (let i = 0; i < v.length; i++) if (v[i] !== 0) an += v[i] * gv[i];
    assert.ok(Math.abs(fd - an) <= noise / eps + 2e-2 * Math.abs(an), `${what}: finite difference ${fd}, gradient ${an}`);
  }
  assert.ok(checked >= 3, `${what}: only ${checked} of 6 directions free of kinks`);
}

/** A filter [k, k, ..] dilated by d: (k - 1) * d + 1 taps a side, zeros between the original ones. */
function dilatedFilter(f: tf.Tensor4D, d: number): tf.Tensor4D {
  const [k, , c, m] = f.shape;
  const e = (k - 1) * d + 1;
  const src = f.dataSync();
  const out = new Float32Array(e * e * c * m);
  for (let p = 0; p < k; p++) for (let q = 0; q < k; q++) {
    out.set(src.subarray((p * k + q) * c * m, (p * k + q + 1) * c * m), (p * d * e + q * d) * c * m);
  }
  return tf.tensor4d(out, [e, e, c, m]);
}

/** The ops that consume `id`, directly or not. */
function downstream(g: LayerGraph, id: string): LayerOp[] {
  const seen = new Set<LayerOp>();
  const stack = [id];
  while (stack.length) {
    for (const op of g.consumersOf(stack.pop() as string)) {
      if (seen.has(op)) continue;
      seen.add(op);
      stack.push(...op.outputs);
    }
  }
  return [...seen];
}

/** max |a - b| / max |b|. */
function relError(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / Math.max(1e-12, tf.max(tf.abs(b)).dataSync()[0]));
}

/**
 * Covers what gradOps handles beyond bnModel: a conv with its own ReLU, a strided 1x1 convolution, a 5x5 one, a
 * depthwise multiplier with a 'valid' stride 2 after a ZeroPadding2D (folded into it), a standalone BatchNormalization after a merge, swish, an average
 * pooling (wasm: our AvgPoolGrad), squeeze-and-excitation convolutions with a swish and a sigmoid of their own,
 * Activation('relu6'), a hidden Dense layer with ReLU, and a softmax layer of its own. (No dilated convolution:
 * the old path cannot differentiate one; the building blocks below check those.)
 */
function coverageModel(): tfl.LayersModel {
  type T = tfl.SymbolicTensor;
  const init = (seed: number) => tfl.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed });
  const input = tfl.input({ shape: [20, 20, 3], name: 'img' });
  const a = tfl.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1), biasInitializer: init(2), name: 'own_relu' }).apply(input) as T;
  // A ZeroPadding2D folded into the next convolution, itself followed by BatchNormalization and ReLU.
  const p = tfl.layers.zeroPadding2d({ padding: 1, name: 'pad' }).apply(a) as T;
  const pc = tfl.layers.conv2d({ filters: 6, kernelSize: 3, padding: 'valid', useBias: false, kernelInitializer: init(13), name: 'pad_conv' }).apply(p) as T;
  const pb = tfl.layers.batchNormalization({ name: 'pad_bn' }).apply(pc) as T;
  const pr = tfl.layers.reLU({ name: 'pad_relu' }).apply(pb) as T;
  const b = tfl.layers.conv2d({ filters: 8, kernelSize: 1, strides: 2, padding: 'valid', kernelInitializer: init(3), biasInitializer: init(4), name: 'pw_s2' }).apply(pr) as T;
  const c = tfl.layers.conv2d({ filters: 8, kernelSize: 5, padding: 'same', useBias: false, kernelInitializer: init(5), name: 'dil' }).apply(b) as T;
  const cb = tfl.layers.batchNormalization({ name: 'dil_bn' }).apply(c) as T;
  const cr = tfl.layers.activation({ activation: 'relu6', name: 'dil_relu6' }).apply(cb) as T;
  const s = tfl.layers.add({ name: 'sum' }).apply([b, cr]) as T;
  const sb = tfl.layers.batchNormalization({ name: 'sum_bn' }).apply(s) as T;
  const sw = tfl.layers.activation({ activation: 'swish', name: 'swish' }).apply(sb) as T;
  const ap = tfl.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: 'avg' }).apply(sw) as T;
  // Squeeze and excitation: convolutions with a swish and a sigmoid of their own.
  let se = tfl.layers.globalAveragePooling2d({ name: 'se_squeeze' }).apply(ap) as T;
  se = tfl.layers.reshape({ targetShape: [1, 1, 8], name: 'se_reshape' }).apply(se) as T;
  se = tfl.layers.conv2d({ filters: 2, kernelSize: 1, activation: 'swish', kernelInitializer: init(11), name: 'se_reduce' }).apply(se) as T;
  se = tfl.layers.conv2d({ filters: 8, kernelSize: 1, activation: 'sigmoid', kernelInitializer: init(12), name: 'se_expand' }).apply(se) as T;
  const ex = tfl.layers.multiply({ name: 'se_excite' }).apply([ap, se]) as T;
  const zp = tfl.layers.zeroPadding2d({ padding: [[0, 1], [1, 1]], name: 'dw_pad' }).apply(ex) as T;
  const d = tfl.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, depthMultiplier: 2, padding: 'valid', depthwiseInitializer: init(6), biasInitializer: init(7), name: 'dw_m2' }).apply(zp) as T;
  const dr = tfl.layers.reLU({ maxValue: 6, name: 'dw_relu' }).apply(d) as T;
  const gp = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(dr) as T;
  const h = tfl.layers.dense({ units: 12, activation: 'relu', kernelInitializer: init(8), biasInitializer: init(9), name: 'hidden' }).apply(gp) as T;
  const z = tfl.layers.dense({ units: 4, kernelInitializer: init(10), name: 'logits' }).apply(h) as T;
  const out = tfl.layers.activation({ activation: 'softmax', name: 'softmax' }).apply(z) as T;
  const m = tfl.model({ inputs: input, outputs: out });
  for (const [i, name] of ['dil_bn', 'sum_bn', 'pad_bn'].entries()) {
    const l = m.getLayer(name);
    l.setWeights(l.getWeights().map((w, k) => tf.add(tf.mul(tf.randomUniform(w.shape, 0.3, 1.4, 'float32', 40 + 4 * i + k), 1), k === 1 || k === 2 ? -0.5 : 0)));
  }
  return m;
}

async function load(m: tfl.LayersModel): Promise<LoadedModel> {
  const written = await writeModel(m, path.join(tempDir(), 'model'));
  m.dispose();
  return loadModel(written.modelJson, { overrides: { preprocess: '[0,1]' } });
}

for (const backend of BACKENDS) {
  describe(`input-only gradients on ${backend}`, function () {
    this.timeout(300000);
    const models: Array<[string, () => tfl.LayersModel, [number, number, number]]> = [
      ['bnModel (conv bias)', () => bnModel({ bias: true }), [16, 16, 3]],
      ['bnModel (no conv bias)', () => bnModel(), [16, 16, 3]],
      ['coverage model', coverageModel, [20, 20, 3]],
    ];
    before(async () => {
      await initBackend(backend);
    });

    for (const [name, build, [h, w, ch]] of models) {
      describe(name, () => {
        let model: LoadedModel;
        let x: tf.Tensor4D;
        before(async () => {
          await initBackend(backend);
          model = await load(build());
          x = tf.tensor4d(random(h * w * ch, 5).map((v) => 0.5 + 0.5 * v), [1, h, w, ch]);
        });
        after(() => {
          x.dispose();
          model.dispose();
        });

        it('equals the old path\'s gradient at every spatial layer, without its weight-gradient kernels', () => {
          for (const op of model.graph.spatialOps()) {
            for (const c of [0, 2]) {
              const s = new ImageSession(model, tf.clone(x));
              try {
                const [ours, counts] = countKernels(() => s.gradient(op.name, c));
                const [ref, refCounts] = referenceGradient(model, x, op.name, s.activation(op.name), c);
                const err = relError(ours, ref);
                ref.dispose();
                assert.ok(err < 2e-5, `${op.name}, class ${c}: relative difference ${err}`);
                for (const k of OLD_PATH_KERNELS) assert.ok(!counts.has(k), `${op.name}: ${k} ran ${counts.get(k)} times`);
                // The counting works: where an ordinary convolution lies after the layer, the old path differentiated
                // its filter (tfjs-layers' Conv2D is a fused op; its DepthwiseConv2D is not).
                if (downstream(model.graph as LayerGraph, op.outputs[0]).some((o) => o.className === 'Conv2D')) {
                  assert.ok(refCounts.has('Conv2DBackpropFilter'), `${op.name}: the old path ran no filter gradient`);
                }
              } finally {
                s.dispose();
              }
            }
          }
        });

        it('runs folded ops and their parts alike (forward values within 1e-5 of the unfolded layers)', () => {
          const g = model.graph as LayerGraph;
          if (name === 'coverage model') {
            const folded = g.foldedOps.find((o) => o.name === 'pad_conv');
            assert.ok(folded?.fused && Array.isArray(folded.fused.pad), 'the ZeroPadding2D is folded into pad_conv');
            assert.ok(g.foldedOps.find((o) => o.name === 'dw_m2')?.parts?.some((p) => p.name === 'dw_pad'), 'and dw_pad into dw_m2');
          }
          for (const op of g.spatialOps()) {
            const fast = tf.tidy(() => g.run(new Map([[g.inputIds[0], x]]), [op.outputs[0]]).get(op.outputs[0]) as tf.Tensor);
            const ref = tf.tidy(() => referenceLogitsUpTo(g, x, op.outputs[0]));
            const err = relError(fast, ref);
            tf.dispose([fast, ref]);
            assert.ok(err < 1e-5, `${op.name}: relative difference ${err}`);
          }
        });

        it('agrees with central finite differences at the early layers', () => {
          const g = model.graph;
          const out = g.outputIds[0];
          const early = g.spatialOps().slice(0, 4);
          for (const op of early) {
            const s = new ImageSession(model, tf.clone(x));
            try {
              const a = s.activation(op.name);
              const grad = s.gradient(op.name, 1);
              const logit = (v: tf.Tensor) => tf.tidy(() => {
                const feeds = new Map<string, tf.Tensor>([[g.inputIds[0], x], [op.outputs[0], v]]);
                const r = g.run(feeds, [out], { logits: true }).get(out) as tf.Tensor;
                return tf.reshape(r, [-1]).dataSync()[1];
              });
              checkFiniteDifferences(logit, a, grad, op.name);
            } finally {
              s.dispose();
            }
          }
        });

        it('runs the layers after the target once for a new image\'s first Grad-CAM, and leaves no tensor behind', async () => {
          const convs = (m: Map<string, number>) => (m.get('FusedConv2D') ?? 0) + (m.get('FusedDepthwiseConv2D') ?? 0);
          const spatial = model.graph.spatialOps();
          for (const layer of [spatial[0].name, spatial[Math.floor(spatial.length / 2)].name]) {
            const warm = new ImageSession(model, tf.clone(x));
            await warm.explain({ method: 'gradcam', layer });
            warm.dispose();
            const before = tf.memory().numTensors;
            const s1 = new ImageSession(model, tf.clone(x));
            const fresh = await countKernelsAsync(() => s1.explain({ method: 'gradcam', layer }));
            s1.dispose();
            assert.strictEqual(tf.memory().numTensors, before, `${layer}: tensor count`);
            // Once the logits are known a map costs the part before the layer and the taped part after it; a new
            // image's first map must cost the same (before: a whole forward pass, then the part after the layer).
            const s2 = new ImageSession(model, tf.clone(x));
            const forward = await countKernelsAsync(() => s2.logits());
            const known = await countKernelsAsync(() => s2.explain({ method: 'gradcam', layer }));
            s2.dispose();
            assert.ok(convs(forward) > 0);
            assert.strictEqual(convs(fresh), convs(known), `${layer}: forward convolutions of a new image's map, against a map with the logits known`);
          }
        });
      });
    }
  });
}

describe('input-only gradients: the reference MobileNet', function () {
  this.timeout(600000);
  before(function () {
    requireShared(this);
  });
  for (const backend of BACKENDS) {
    it(`${backend}: the old path's gradient at conv1, conv1_bn, conv1_relu, conv_dw_2_relu and conv_pw_6_relu, no weight gradients, one forward pass`, async () => {
      await initBackend(backend);
      const model = await loadModel(MOBILENET, { overrides: { preprocess: '[-1,1]' } });
      const x = tf.tensor4d(random(224 * 224 * 3, 9).map((v) => 0.9 * v), [1, 224, 224, 3]);
      try {
        for (const layer of ['conv1', 'conv1_bn', 'conv1_relu', 'conv_dw_2_relu', 'conv_pw_6_relu']) {
          const s = new ImageSession(model, tf.clone(x));
          try {
            const [ours, counts] = countKernels(() => s.gradient(layer, 281));
            const [ref] = referenceGradient(model, x, layer, s.activation(layer), 281);
            const err = relError(ours, ref);
            ref.dispose();
            assert.ok(err < 1e-4, `${layer}: relative difference ${err}`);
            for (const k of OLD_PATH_KERNELS) assert.ok(!counts.has(k), `${layer}: ${k} ran ${counts.get(k)} times`);
          } finally {
            s.dispose();
          }
        }
        // A new image's first Grad-CAM at conv1_relu: 14 pointwise and 13 depthwise convolutions after it, each
        // run forward once (before: twice, a forward pass for the logits and again after the layer).
        const s = new ImageSession(model, tf.clone(x));
        const counts = await countKernelsAsync(() => s.explain({ method: 'gradcam', layer: 'conv1_relu' }));
        s.dispose();
        assert.strictEqual((counts.get('FusedConv2D') ?? 0) + (counts.get('FusedDepthwiseConv2D') ?? 0), 28, 'forward convolutions');
      } finally {
        x.dispose();
        model.dispose();
      }
    });
  }
});

describe('input-only gradients: ONNX fixtures', function () {
  this.timeout(300000);
  const names = ['mobilenet_v2', 'resnet_tiny'].filter((n) => FIXTURE_NAMES.includes(n));
  for (const backend of BACKENDS) {
    for (const name of names) {
      it(`${backend}, ${name}: finite differences at the first convolutions, no weight-gradient kernels`, async () => {
        await initBackend(backend);
        const model = await loadModel(onnxModelPath(name));
        const x = onnxInput(name);
        const g = model.graph;
        const out = g.outputIds[0];
        try {
          for (const op of g.spatialOps().slice(0, 3)) {
            const s = new ImageSession(model, tf.clone(x));
            try {
              const [grad, counts] = countKernels(() => s.gradient(op.name, 0));
              for (const k of WEIGHT_GRADIENT_KERNELS) assert.ok(!counts.has(k), `${op.name}: ${k} ran`);
              const a = s.activation(op.name);
              const logit = (v: tf.Tensor) => tf.tidy(() => {
                const r = g.run(new Map([[g.inputIds[0], x], [op.outputs[0], v]]), [out], { logits: true }).get(out) as tf.Tensor;
                return tf.reshape(r, [-1]).dataSync()[0];
              });
              checkFiniteDifferences(logit, a, grad, op.name);
            } finally {
              s.dispose();
            }
          }
        } finally {
          x.dispose();
          model.dispose();
        }
      });
    }
  }
});

describe('input-only gradients: the building blocks', function () {
  this.timeout(120000);
  const geometries: Array<{ name: string; x: [number, number, number, number]; k: number; c: number; m: number; stride: number; pad: 'same' | 'valid' | number; dilation: number; depthwise: boolean }> = [
    { name: '3x3 same', x: [2, 9, 8, 3], k: 3, c: 3, m: 5, stride: 1, pad: 'same', dilation: 1, depthwise: false },
    { name: '3x3 stride 2 valid, odd size', x: [1, 11, 10, 4], k: 3, c: 4, m: 6, stride: 2, pad: 'valid', dilation: 1, depthwise: false },
    { name: '1x1 stride 2 valid', x: [2, 10, 9, 5], k: 1, c: 5, m: 7, stride: 2, pad: 'valid', dilation: 1, depthwise: false },
    { name: '1x1 stride 2 same', x: [1, 7, 8, 3], k: 1, c: 3, m: 4, stride: 2, pad: 'same', dilation: 1, depthwise: false },
    { name: '5x5 dilation 2 same', x: [1, 12, 11, 3], k: 5, c: 3, m: 4, stride: 1, pad: 'same', dilation: 2, depthwise: false },
    { name: '3x3 explicit pad 2', x: [1, 8, 8, 2], k: 3, c: 2, m: 3, stride: 1, pad: 2, dilation: 1, depthwise: false },
    { name: 'depthwise 3x3 stride 2 same', x: [2, 12, 11, 4], k: 3, c: 4, m: 1, stride: 2, pad: 'same', dilation: 1, depthwise: true },
    { name: 'depthwise 5x5 multiplier 3', x: [1, 9, 10, 3], k: 5, c: 3, m: 3, stride: 1, pad: 'same', dilation: 1, depthwise: true },
    { name: 'depthwise 3x3 dilation 2 valid', x: [1, 12, 12, 2], k: 3, c: 2, m: 2, stride: 1, pad: 'valid', dilation: 2, depthwise: true },
    // Strided: dx by phases (wasmKernels.ts phasedInputGradient).
    { name: '3x3 stride 2 same, even size', x: [2, 10, 12, 3], k: 3, c: 3, m: 4, stride: 2, pad: 'same', dilation: 1, depthwise: false },
    { name: '5x5 stride 3 explicit pad 1', x: [1, 14, 13, 2], k: 5, c: 2, m: 3, stride: 3, pad: 1, dilation: 1, depthwise: false },
    { name: '2x2 stride 2 valid (a phase per tap)', x: [1, 9, 8, 3], k: 2, c: 3, m: 5, stride: 2, pad: 'valid', dilation: 1, depthwise: false },
    { name: 'depthwise 5x5 stride 2 valid multiplier 2', x: [1, 13, 12, 3], k: 5, c: 3, m: 2, stride: 2, pad: 'valid', dilation: 1, depthwise: true },
    { name: 'depthwise 3x3 stride 2 explicit pad 0', x: [2, 11, 11, 4], k: 3, c: 4, m: 1, stride: 2, pad: 0, dilation: 1, depthwise: true },
  ];
  for (const backend of BACKENDS) {
    for (const gm of geometries) {
      it(`${backend}: ${gm.name}: dx through gradOps.conv equals tf.grad of the plain convolution, with ReLU6`, async () => {
        await initBackend(backend);
        const filterShape: [number, number, number, number] = [gm.k, gm.k, gm.c, gm.m];
        const before = tf.memory().numTensors;
        const grads = new GradFilters();
        const filter = tf.tensor4d(random(gm.k * gm.k * gm.c * gm.m, 3), filterShape);
        const outC = gm.depthwise ? gm.c * gm.m : gm.m;
        const bias = tf.tensor1d(random(outC, 4));
        const x = tf.tensor4d(random(gm.x.reduce((a, b) => a * b, 1), 1).map((v) => 3 * v), gm.x);
        const run: ConvRun = { kind: gm.depthwise ? 'depthwise' : 'conv2d', filter, bias, strides: [gm.stride, gm.stride], pad: gm.pad, dilations: [gm.dilation, gm.dilation], activation: 'relu6' };
        try {
          const plain = (v: tf.Tensor4D) => {
            const y = gm.depthwise
              ? tf.depthwiseConv2d(v, filter, gm.stride, gm.pad, 'NHWC', gm.dilation)
              : tf.conv2d(v, filter, gm.stride, gm.pad, 'NHWC', gm.dilation);
            return tf.relu6(tf.add(y, bias));
          };
          const yShape = tf.tidy(() => plain(x).shape);
          const r = tf.tensor(random(yShape.reduce((a, b) => a * b, 1), 8), yShape);
          const [ours, counts] = countKernels(() => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(gradConv(v as tf.Tensor4D, run, grads), r)))(x));
          for (const k of OLD_PATH_KERNELS) assert.ok(!counts.has(k), `${k} ran`);
          // tfjs-core refuses gradients of dilated convolutions: the reference for those is the same convolution
          // undilated, with zeros between the filter's taps.
          const refFilter = gm.dilation === 1 ? filter : dilatedFilter(filter, gm.dilation);
          const undilated = (v: tf.Tensor4D) => tf.relu6(tf.add(gm.depthwise
            ? tf.depthwiseConv2d(v, refFilter, gm.stride, gm.pad, 'NHWC', 1)
            : tf.conv2d(v, refFilter, gm.stride, gm.pad, 'NHWC', 1), bias));
          const ref = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(undilated(v as tf.Tensor4D), r)))(x);
          const err = relError(ours, ref);
          tf.dispose(gm.dilation === 1 ? [ref] : [ref, refFilter]);
          assert.ok(err < 1e-5, `relative difference ${err}`);
          tf.dispose([ours, r]);
        } finally {
          tf.dispose([filter, bias, x]);
          grads.dispose();
        }
        assert.strictEqual(tf.memory().numTensors, before, 'tensor count');
      });
    }

    it(`${backend}: convInputGradient equals the backend's Conv2DBackpropInput with a rotated filter`, async () => {
      await initBackend(backend);
      tf.tidy(() => {
        const x: [number, number, number, number] = [1, 9, 7, 3];
        const f = tf.tensor4d(random(3 * 3 * 3 * 4, 2), [3, 3, 3, 4]);
        const info = tf.backend_util.computeConv2DInfo(x, [3, 3, 3, 4], 2, 1, 'same');
        const dy = tf.tensor4d(random(info.outShape.reduce((a, b) => a * b, 1), 3), info.outShape);
        const rotated = tf.transpose(tf.reverse(f, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
        const ours = convInputGradient(dy, rotated, info, false);
        const ref = tf.conv2dTranspose(dy, f, x, 2, 'same');
        assert.ok(relError(ours, ref) < 1e-5);
      });
    });

    it(`${backend}: GradFilters makes a filter once, prepares registered ones under a budget, and frees them`, async () => {
      await initBackend(backend);
      const before = tf.memory().numTensors;
      const grads = new GradFilters();
      const f = tf.tensor4d(random(2 * 2 * 3 * 5, 4), [2, 2, 3, 5]);
      const d = tf.tensor4d(random(3 * 3 * 4, 5), [3, 3, 4, 1]);
      const bnScale = tf.tensor4d(random(4, 6), [1, 1, 4, 1]);
      grads.register({ kind: 'conv2d', filter: f, strides: [1, 1], pad: 'same', dilations: [1, 1] });
      grads.register({ kind: 'depthwise', filter: d, strides: [1, 1], pad: 'same', dilations: [1, 1] });
      assert.strictEqual(grads.prepareIfSmall(10), false, 'over budget: nothing made');
      assert.strictEqual(tf.memory().numTensors, before + 3);
      assert.strictEqual(grads.prepareIfSmall(), true);
      assert.strictEqual(tf.memory().numTensors, before + 5);
      const g = grads.get(f, 'conv2d');
      assert.strictEqual(grads.get(f, 'conv2d'), g, 'made once');
      assert.deepStrictEqual(g.shape, [2, 2, 5, 3]);
      // Rotated 180 degrees, channels swapped: g[p, q, o, i] = f[1 - p, 1 - q, i, o].
      const fv = f.arraySync();
      const gv = g.arraySync();
      for (let p = 0; p < 2; p++) for (let q = 0; q < 2; q++) for (let i = 0; i < 3; i++) for (let o = 0; o < 5; o++) {
        assert.strictEqual(gv[p][q][o][i], fv[1 - p][1 - q][i][o]);
      }
      assert.strictEqual(grads.get(bnScale, 'depthwise'), bnScale, 'a 1x1 depthwise filter is its own rotation');
      grads.dispose();
      tf.dispose([f, d, bnScale]);
      assert.strictEqual(tf.memory().numTensors, before);
    });
  }

  it('wasm: a clone shares its buffer (no copy) and outlives its source', async () => {
    await initBackend('wasm');
    const a = tf.tensor1d([1, 2, 3]);
    const bytes = tf.memory().numBytes;
    const buffers = tf.memory().numDataBuffers;
    const b = tf.clone(a);
    assert.strictEqual(b.dataId, a.dataId, 'the same buffer');
    assert.strictEqual(tf.memory().numDataBuffers, buffers, 'no new buffer');
    assert.ok(tf.memory().numBytes >= bytes);
    a.dispose();
    assert.deepStrictEqual(Array.from(b.dataSync()), [1, 2, 3]);
    b.dispose();
  });
});
