/**
 * GraphModels: hand-built graphs whose maps are computed by hand, the Keras MobileNet re-expressed as a
 * GraphDef (same weights in both formats, so the two executors must agree), and the reference TF-Hub
 * MobileNet v1 0.25 GraphModel from ../shared/reference.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/extension/engine/backend';
import { CamLensError } from '../../src/extension/engine/errors';
import { loadModel, labelOf, resolveClass, type LoadedGraphModel, type LoadedModel } from '../../src/extension/engine/model';
import { describeModel, openImage } from '../../src/extension/engine/pipeline';
import { ImageSession } from '../../src/extension/engine/session';
import { GraphDefBuilder } from '../helpers/graphDef';
import { SHARED, requireShared, tempDir } from '../helpers/modelFiles';

const GRAPH = path.join(SHARED, 'models', 'mobilenet_v1_025_224_graph', 'model.json');
const KERAS = path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json');
const IMAGES = path.join(SHARED, 'images');
const FEATURE = 'module_apply_default/MobilenetV1/MobilenetV1/Conv2d_13_pointwise/Relu6';
const DEEPER = 'module_apply_default/MobilenetV1/MobilenetV1/Conv2d_11_pointwise/Relu6';
const LOGITS_W = 'module/MobilenetV1/Logits/Conv2d_1c_1x1/weights';

function imagenetLabels(): string[] {
  return JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
}

async function referenceGraph(): Promise<LoadedGraphModel> {
  const m = await loadModel(GRAPH, { overrides: { labels: imagenetLabels(), labelOffset: 1, preprocess: '[0,1]' } });
  assert.strictEqual(m.format, 'graph-model');
  return m;
}

async function rejects(p: Promise<unknown> | (() => unknown), code: string, pattern: RegExp): Promise<CamLensError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof CamLensError, `expected a CamLensError, got ${e}`);
    assert.strictEqual(e.code, code, e.message);
    assert.match(e.message, pattern);
    return e;
  }
  return assert.fail(`expected ${code}`);
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.strictEqual(a.length, b.length);
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < a.length; i++) {
    ma += a[i];
    mb += b[i];
  }
  ma /= a.length;
  mb /= b.length;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

/** ReLU then min-max, as the CAM convention (base.ts) does. */
function normalise(raw: ArrayLike<number>): Float32Array {
  const r = Float32Array.from(raw, (v) => Math.max(0, v));
  let min = Infinity;
  let max = -Infinity;
  for (const v of r) {
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  return r.map((v) => (v - min) / (max - min + 1e-7));
}

function peakRow(values: Float32Array, w: number, h: number): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return (Math.floor(best / w) + 0.5) / h;
}

function centreRow(values: Float32Array, w: number, h: number): number {
  let m = 0;
  let r = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    m += values[y * w + x];
    r += values[y * w + x] * (y + 0.5);
  }
  return r / m / h;
}

/**
 * images [N,4,4,3] → 1x1 Conv2D to 2 channels "feat" → Relu "act" → (optional StridedSlice "sliced") →
 * Mean over H,W → MatMul W [2,3] → BiasAdd → Softmax "probs". Every weight is fixed, so the CAM is known.
 */
const K1 = [0.5, -1, 0.25, 1, 0.75, -0.5];
const W = [1, -2, 0.5, -1, 3, 0.25];
const B = [0.1, 0.2, -0.3];
function tinyGraph(dir: string, opts: { slice?: boolean; labels?: string[]; labelOffset?: number } = {}): string {
  const g = new GraphDefBuilder();
  g.placeholder('images', [-1, 4, 4, 3]);
  g.const('feat/kernel', [1, 1, 3, 2], K1);
  g.conv('feat', 'images', 'feat/kernel');
  let x = g.op('act', 'Relu', ['feat']);
  if (opts.slice) x = g.stridedSliceAll('sliced', x);
  g.mean('pool', x, [1, 2], false);
  g.const('fc/w', [2, 3], W);
  g.matMul('fc', 'pool', 'fc/w');
  g.const('fc/b', [3], B);
  g.op('fc/bias', 'BiasAdd', ['fc', 'fc/b'], { data_format: { s: Buffer.from('NHWC').toString('base64') } });
  g.op('probs', 'Softmax', ['fc/bias']);
  const file = g.write(dir);
  if (opts.labels || opts.labelOffset !== undefined) {
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ labels: opts.labels, labelOffset: opts.labelOffset, preprocess: '[0,1]' }));
  }
  return file;
}

const TINY_INPUT = Float32Array.from({ length: 48 }, (_, i) => Math.sin(i * 1.3) * 0.9 + 0.1);

describe('GraphModel: hand-built graphs', () => {
  before(async () => {
    await initBackend('cpu');
  });

  it('lists the graph nodes with their op and inferred shape, and recommends the node before the pooling', async () => {
    const m = await loadModel(tinyGraph(path.join(tempDir(), 'g')));
    try {
      const d = describeModel(m);
      assert.strictEqual(d.format, 'graph-model');
      const byName = new Map(d.layers.map((l) => [l.name, l]));
      // Weight constants are parameters of the nodes reading them, not nodes of their own.
      assert.deepStrictEqual(d.layers.map((l) => l.name), ['images', 'feat', 'act', 'pool', 'fc', 'fc/bias', 'probs']);
      assert.deepStrictEqual(byName.get('images')?.outputShape, [null, 4, 4, 3]);
      assert.deepStrictEqual(byName.get('feat')?.outputShape, [null, 4, 4, 2]);
      assert.strictEqual(byName.get('feat')?.className, 'Conv2D');
      assert.strictEqual(byName.get('feat')?.params, 6);
      assert.deepStrictEqual(byName.get('pool')?.outputShape, [null, 2]);
      assert.deepStrictEqual(byName.get('probs')?.inbound, ['fc/bias']);
      assert.deepStrictEqual(d.layers.filter((l) => l.spatial).map((l) => l.name), ['feat', 'act']);
      assert.strictEqual(d.recommendedLayer, 'act');
      assert.strictEqual(d.totalParams, 6 + 6 + 3, 'float weights only: the Mean axes are not parameters');
      assert.strictEqual(d.outputActivation, 'softmax');
      assert.strictEqual(d.classes, 3);
    } finally {
      m.dispose();
    }
  });

  it('computes logits (the softmax input), probabilities and the CAM map exactly as by hand', async () => {
    const m = await loadModel(tinyGraph(path.join(tempDir(), 'g')));
    const s = new ImageSession(m, tf.tensor4d(TINY_INPUT, [1, 4, 4, 3]));
    try {
      // By hand: A[p, k] = relu(sum_c x[p, c] K1[c, k]); logits_j = sum_k mean_p(A[p, k]) W[k, j] + B_j.
      const A: number[][] = [];
      for (let p = 0; p < 16; p++) {
        A.push([0, 1].map((k) => Math.max(0, [0, 1, 2].reduce((acc, c) => acc + TINY_INPUT[p * 3 + c] * K1[c * 2 + k], 0))));
      }
      const gap = [0, 1].map((k) => A.reduce((acc, a) => acc + a[k], 0) / 16);
      const logits = [0, 1, 2].map((j) => gap[0] * W[j] + gap[1] * W[3 + j] + B[j]);
      const got = await s.logits();
      logits.forEach((v, j) => assert.ok(Math.abs(got[j] - v) < 1e-5, `logit ${j}: ${got[j]} vs ${v}`));
      const p = await s.probabilities();
      const z = logits.reduce((acc, v) => acc + Math.exp(v), 0);
      logits.forEach((v, j) => assert.ok(Math.abs(p[j] - Math.exp(v) / z) < 1e-5));
      for (const c of [0, 1, 2]) {
        const expected = normalise(A.map((a) => a[0] * W[c] + a[1] * W[3 + c]));
        for (const method of ['cam', 'gradcam']) {
          const r = await s.explain({ method, classChoice: c });
          assert.strictEqual(r.layer, 'act');
          // Grad-CAM at the last layer before GAP→linear is CAM (alpha_k = W[k, c] / 16).
          expected.forEach((v, i) => assert.ok(Math.abs(r.heatmap.values[i] - v) < 1e-4, `${method} class ${c} cell ${i}: ${r.heatmap.values[i]} vs ${v}`));
        }
      }
      assert.strictEqual(m.supportsGradients, true);
      assert.strictEqual(m.gradientNote, undefined);
    } finally {
      s.dispose();
      m.dispose();
    }
  });

  it('says when gradients do not flow (an op without a tfjs gradient) and why, while CAM still works', async () => {
    const m = await loadModel(tinyGraph(path.join(tempDir(), 'g'), { slice: true }));
    const s = new ImageSession(m, tf.tensor4d(TINY_INPUT, [1, 4, 4, 3]));
    try {
      assert.strictEqual(m.supportsGradients, false);
      assert.match(m.gradientNote ?? '', /gradients do not flow .* cpu backend .*StridedSlice/);
      const d = describeModel(m);
      assert.strictEqual(d.supportsGradients, false);
      assert.match(d.gradientNote ?? '', /StridedSlice/);
      assert.strictEqual(d.recommendedLayer, 'sliced');
      const r = await s.explain({ method: 'cam', classChoice: 1 });
      assert.strictEqual(r.heatmap.width, 4);
      // Upstream of the StridedSlice the session reports the missing gradient as a method that does not apply.
      await rejects(s.explain({ method: 'gradcam', layer: 'act', classChoice: 1 }), 'METHOD_NOT_APPLICABLE', /StridedSlice/);
    } finally {
      s.dispose();
      m.dispose();
    }
  });

  it('refuses CAM where no global average pooling follows the target', async () => {
    const m = await loadModel(tinyGraph(path.join(tempDir(), 'g')));
    const s = new ImageSession(m, tf.tensor4d(TINY_INPUT, [1, 4, 4, 3]));
    try {
      await rejects(s.explain({ method: 'cam', layer: 'feat' }), 'METHOD_NOT_APPLICABLE', /"feat" is followed by Relu "act", not a global average pooling/);
    } finally {
      s.dispose();
      m.dispose();
    }
  });

  it('maps class i to output i + labelOffset, from cam-lens.json', async () => {
    const m = await loadModel(tinyGraph(path.join(tempDir(), 'g'), { labels: ['cat', 'dog'], labelOffset: 1 }));
    const s = new ImageSession(m, tf.tensor4d(TINY_INPUT, [1, 4, 4, 3]));
    try {
      assert.strictEqual(m.metadata.labelOffset, 1);
      assert.strictEqual(resolveClass(m, 'dog'), 2);
      assert.strictEqual(resolveClass(m, 0), 1);
      assert.strictEqual(labelOf(m, 0), 'background');
      const preds = await s.predictions(5);
      assert.deepStrictEqual(preds.map((p) => p.label).sort(), ['cat', 'dog'], 'background is never a prediction');
      const p = await s.probabilities();
      for (const pr of preds) assert.strictEqual(pr.probability, p[pr.index + 1]);
      const r = await s.explain({ method: 'cam', classChoice: 'dog' });
      assert.deepStrictEqual([r.target.index, r.target.label], [1, 'dog']);
    } finally {
      s.dispose();
      m.dispose();
    }
  });

  it('refuses labels that do not cover the outputs, with the labelOffset hint for one extra output', async () => {
    const dir = path.join(tempDir(), 'g');
    tinyGraph(dir, { labels: ['cat', 'dog'] });
    const e = await rejects(loadModel(path.join(dir, 'model.json')), 'METADATA_INVALID', /3 outputs but .* lists 2 labels/);
    assert.match(e.hint ?? '', /labelOffset/);
    await rejects(loadModel(path.join(dir, 'model.json'), { overrides: { labelOffset: 2 } }), 'METADATA_INVALID', /lists 2 labels with labelOffset 2/);
    await rejects(loadModel(path.join(dir, 'model.json'), { overrides: { labelOffset: -1 } }), 'METADATA_INVALID', /labelOffset must be a non-negative integer/);
  });

  it('does not grow the tensor count over repeated runs, and releases everything on dispose', async () => {
    const before = tf.memory().numTensors;
    const m = await loadModel(tinyGraph(path.join(tempDir(), 'g')));
    void m.supportsGradients;
    const loaded = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      const s = new ImageSession(m, tf.tensor4d(TINY_INPUT, [1, 4, 4, 3]));
      for (const method of ['cam', 'gradcam', 'gradcam++']) await s.explain({ method, classChoice: i % 3 });
      s.dispose();
      assert.strictEqual(tf.memory().numTensors, loaded, `after run ${i}`);
    }
    m.dispose();
    assert.strictEqual(tf.memory().numTensors, before);
  });
});

/**
 * The Keras MobileNet v1 0.25 from ../shared/reference re-expressed as a GraphDef with the same weights
 * (BatchNormalization as Mul+Add, ReLU6, a Mean, a 1x1 Conv2D classifier, a Softmax), so both formats must
 * give the same predictions and the same maps: an end-to-end check of the GraphModel path against the
 * LayersModel path. (The reference TF-Hub GraphModel is another training run: see below.)
 */
async function kerasAsGraph(keras: LoadedModel, dir: string): Promise<string> {
  if (keras.format !== 'layers-model') throw new Error('expected a LayersModel');
  const g = new GraphDefBuilder();
  g.placeholder('images', [-1, 224, 224, 3]);
  g.const('hub_input/Mul/y', [], [2]);
  g.op('hub_input/Mul', 'Mul', ['images', 'hub_input/Mul/y']);
  g.const('hub_input/Sub/y', [], [1]);
  let x = g.op('hub_input/Sub', 'Sub', ['hub_input/Mul', 'hub_input/Sub/y']);
  for (const layer of keras.tfModel.layers) {
    const cls = layer.getClassName();
    const cfg = layer.getConfig();
    const name = layer.name;
    if ((cls === 'Conv2D' || cls === 'DepthwiseConv2D') && name !== 'conv_preds') {
      const [k] = layer.getWeights();
      g.const(`${name}/kernel`, k.shape, k.dataSync());
      const stride = (cfg.strides as number[])[0];
      x = g.conv(name, x, `${name}/kernel`, stride, cls === 'Conv2D' ? 'Conv2D' : 'DepthwiseConv2dNative');
    } else if (cls === 'BatchNormalization') {
      const [gamma, beta, mean, variance] = layer.getWeights().map((w) => w.dataSync());
      const eps = cfg.epsilon as number;
      const scale = gamma.map((v, i) => v / Math.sqrt(variance[i] + eps));
      const offset = beta.map((v, i) => v - mean[i] * scale[i]);
      g.const(`${name}/scale`, [scale.length], scale);
      g.const(`${name}/offset`, [offset.length], offset);
      g.op(`${name}/mul`, 'Mul', [x, `${name}/scale`]);
      x = g.op(name, 'Add', [`${name}/mul`, `${name}/offset`]);
    } else if (cls === 'Activation' && cfg.activation === 'relu6') {
      x = g.op(name, 'Relu6', [x]);
    }
  }
  x = g.mean('global_pool', x, [1, 2], true);
  const [k, b] = keras.tfModel.getLayer('conv_preds').getWeights();
  g.const('conv_preds/kernel', k.shape, k.dataSync());
  g.const('conv_preds/bias', b.shape, b.dataSync());
  g.conv('conv_preds', x, 'conv_preds/kernel');
  g.op('conv_preds/BiasAdd', 'BiasAdd', ['conv_preds', 'conv_preds/bias']);
  g.squeeze('logits', 'conv_preds/BiasAdd', [1, 2]);
  g.op('probs', 'Softmax', ['logits']);
  return g.write(dir);
}

describe('GraphModel vs LayersModel on the same MobileNet weights', function () {
  let keras: LoadedModel;
  let graph: LoadedModel;
  before(async function () {
    requireShared(this);
    await initBackend('wasm');
    const labels = imagenetLabels();
    keras = await loadModel(KERAS, { overrides: { labels, preprocess: '[-1,1]' } });
    graph = await loadModel(await kerasAsGraph(keras, path.join(tempDir(), 'keras-graph')), { overrides: { labels, preprocess: '[0,1]' } });
  });
  after(() => {
    keras?.dispose();
    graph?.dispose();
  });

  it('predicts, and draws CAM and Grad-CAM maps, like the LayersModel (correlation >= 0.99)', async () => {
    assert.strictEqual(graph.graph.outputActivation, 'softmax');
    assert.strictEqual(graph.graph.recommendedTarget().name, 'conv_pw_13_relu');
    for (const file of ['pgc_both_cat_dog.png', 'tfjsex_owl.jpg']) {
      const a = await openImage(keras, path.join(IMAGES, file));
      const b = await openImage(graph, path.join(IMAGES, file));
      try {
        const la = await a.session.logits();
        const lb = await b.session.logits();
        let diff = 0;
        for (let i = 0; i < la.length; i++) diff = Math.max(diff, Math.abs(la[i] - lb[i]));
        assert.ok(diff < 1e-3, `${file}: logits differ by ${diff}`);
        const [top] = await a.session.predictions(1);
        assert.strictEqual((await b.session.predictions(1))[0].label, top.label);
        for (const [method, layer] of [['cam', 'conv_pw_13_relu'], ['gradcam', 'conv_pw_13_relu'], ['gradcam', 'conv_pw_11_relu'], ['gradcam++', 'conv_pw_12_relu']]) {
          const ra = await a.session.explain({ method, layer, classChoice: top.index });
          const rb = await b.session.explain({ method, layer, classChoice: top.index });
          const r = correlation(ra.heatmap.values, rb.heatmap.values);
          assert.ok(r >= 0.99, `${file} ${method} at ${layer}: correlation ${r}`);
        }
      } finally {
        a.session.dispose();
        b.session.dispose();
      }
    }
  });
});

/**
 * The TF-Hub GraphModel. Its weights are NOT those of the Keras MobileNet in ../shared/reference (another
 * training run of the same architecture: the first convolution's BN-folded kernels differ, and the two
 * classifier weight matrices correlate at 0.001), so its predictions differ from SOURCES.md's Keras table
 * where the Keras model is unsure; logits correlate at about 0.85 across the reference photos.
 */
describe('reference TF-Hub MobileNet v1 0.25 GraphModel', function () {
  let model: LoadedGraphModel;
  before(async function () {
    requireShared(this);
    await initBackend('wasm');
    model = await referenceGraph();
  });
  after(() => model?.dispose());

  it('lists its nodes with TensorFlow ops and shapes, and recommends the last pointwise ReLU6', () => {
    const d = describeModel(model);
    const byName = new Map(d.layers.map((l) => [l.name, l]));
    assert.deepStrictEqual([d.format, d.classes, d.labelOffset, d.outputActivation], ['graph-model', 1000, 1, 'none']);
    assert.deepStrictEqual([byName.get('images')?.className, byName.get('images')?.outputShape], ['Placeholder', [null, 224, 224, 3]]);
    assert.deepStrictEqual([byName.get(FEATURE)?.className, byName.get(FEATURE)?.outputShape, byName.get(FEATURE)?.spatial], ['Relu6', [null, 7, 7, 256], true]);
    assert.deepStrictEqual(byName.get('module_apply_default/MobilenetV1/Logits/global_pool')?.outputShape, [null, 1, 1, 256]);
    assert.deepStrictEqual(byName.get('module_apply_default/MobilenetV1/Logits/SpatialSqueeze')?.outputShape, [null, 1001]);
    assert.strictEqual(byName.get('module_apply_default/MobilenetV1/Logits/Conv2d_1c_1x1/Conv2D')?.params, 256 * 1001);
    assert.ok(d.layers.every((l) => l.className !== 'Const'), 'weights are not listed as nodes');
    // Every float weight counted once; the two int32 reduction indices of the Mean are not parameters.
    assert.strictEqual(d.totalParams, model.weightBytes / 4 - 2);
    assert.strictEqual(byName.get('module_apply_default/MobilenetV1/Logits/global_pool')?.params, 0);
    assert.strictEqual(d.recommendedLayer, FEATURE);
  });

  // Top-1 of this GraphModel as measured here (tfjs 4.22, wasm, tf.image.resizeBilinear-style resize to
  // 224x224), and the top-1 SOURCES.md lists for the Keras model. Same architecture and classes, other
  // weights: where the Keras model is confident the two agree; the two exceptions are flagged.
  const PHOTOS: Record<string, { graph: [string, number]; keras: string; kerasRank: number }> = {
    'pgc_both_cat_dog.png': { graph: ['tiger cat', 7.9], keras: 'boxer', kerasRank: 0 },
    'pgc_dogs.png': { graph: ['borzoi', 38.1], keras: 'borzoi', kerasRank: 1 },
    'pgc_horses.jpg': { graph: ['worm fence', 25.3], keras: 'worm fence', kerasRank: 1 },
    'pgc_puppies.jpg': { graph: ['golden retriever', 54.2], keras: 'Labrador retriever', kerasRank: 2 },
    'tfjsex_car.jpg': { graph: ['pickup', 35.9], keras: 'sports car', kerasRank: 2 },
    'tfjsex_cat.jpg': { graph: ['Egyptian cat', 42.1], keras: 'Egyptian cat', kerasRank: 1 },
    'tfjsex_dog.jpg': { graph: ['Walker hound', 32.0], keras: 'Walker hound', kerasRank: 1 },
    'tfjsex_elephants.jpg': { graph: ['African elephant', 65.3], keras: 'African elephant', kerasRank: 1 },
    'tfjsex_owl.jpg': { graph: ['great grey owl', 44.8], keras: 'great grey owl', kerasRank: 1 },
    'tfjsex_tiger.jpg': { graph: ['tiger', 54.8], keras: 'tiger', kerasRank: 1 },
    'tfjsmodels_beagles.jpg': { graph: ['English foxhound', 39.1], keras: 'basenji', kerasRank: 3 },
    'tfjsmodels_coffee.jpg': { graph: ['mortar', 29.5], keras: 'cup', kerasRank: 2 },
    'tfjsmodels_tabby_cat.jpg': { graph: ['tabby', 50.8], keras: 'tabby', kerasRank: 1 },
  };

  it('predicts the reference photos: the Keras top-1 is in its top 2 except where the Keras model hesitates', async () => {
    for (const [file, want] of Object.entries(PHOTOS)) {
      const opened = await openImage(model, path.join(IMAGES, file));
      try {
        const top = await opened.session.predictions(5);
        const names = top.map((p) => p.label.split(',')[0]);
        const got = top.map((p) => `${p.label.split(',')[0]} ${(p.probability * 100).toFixed(1)}%`).join(', ');
        // Its own top-1: first, or second within 5 points of a near-tie leader; probability within 5 points.
        const [label, pct] = want.graph;
        const own = top.find((p) => p.label.split(',')[0] === label);
        assert.ok(own && (own === top[0] || (own === top[1] && top[0].probability - own.probability < 0.05)), `${file}: expected ${label} on top, got ${got}`);
        assert.ok(Math.abs(own.probability * 100 - pct) < 5, `${file}: ${label} at ${got}, measured ${pct}%`);
        if (want.kerasRank > 0) {
          assert.strictEqual(names.indexOf(want.keras) + 1, want.kerasRank, `${file}: Keras' ${want.keras} at rank ${want.kerasRank} expected, got ${got}`);
          if (want.kerasRank > 2) assert.strictEqual(file, 'tfjsmodels_beagles.jpg', 'the only photo where the Keras top-1 is below rank 2');
        } else {
          // The cat-and-dog photo: the Keras model says boxer (34.6%) before bull mastiff; this one splits
          // between the cat and the dog, with a cat class and a dog class on top and no boxer in its top 5.
          assert.ok(top.slice(0, 3).some((p) => p.index >= 281 && p.index <= 285) && top.slice(0, 3).some((p) => p.index >= 151 && p.index <= 268), got);
          assert.ok(!names.includes('boxer'), got);
        }
      } finally {
        opened.session.dispose();
      }
    }
  });

  it('maps class i to output i + 1 (output 0 is "background") and explains the right output', async () => {
    const opened = await openImage(model, path.join(IMAGES, 'tfjsex_tiger.jpg'));
    try {
      const logits = await opened.session.logits();
      assert.strictEqual(logits.length, 1001);
      let best = 1;
      for (let i = 2; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
      const [top] = await opened.session.predictions(1);
      assert.deepStrictEqual([top.index, top.label], [best - 1, 'tiger, Panthera tigris']);
      assert.strictEqual(top.index, 292, 'ImageNet class 292 is tiger');
      assert.strictEqual(resolveClass(model, 'tiger'), 293);
      assert.strictEqual(labelOf(model, 293), 'tiger, Panthera tigris');
      assert.strictEqual(labelOf(model, 0), 'background');
      const r = await opened.session.explain({ method: 'cam', classChoice: 'tiger' });
      assert.deepStrictEqual([r.target.index, r.target.label], [292, 'tiger, Panthera tigris']);
      assert.ok(Math.abs(r.target.probability - top.probability) < 1e-7);
    } finally {
      opened.session.dispose();
    }
  });

  it('refuses the 1000 ImageNet labels without labelOffset (METADATA_INVALID, with the fix in the hint), leaking nothing', async () => {
    const before = tf.memory().numTensors;
    const e = await rejects(loadModel(GRAPH, { overrides: { labels: imagenetLabels(), preprocess: '[0,1]' } }), 'METADATA_INVALID', /1001 outputs but .* lists 1000 labels/);
    assert.match(e.hint ?? '', /"labelOffset": 1/);
    assert.strictEqual(tf.memory().numTensors, before);
  });

  it('lets gradients flow through GraphModel.execute: at the feature node dlogit_c/dA = W[:, c] / 49 exactly', async () => {
    assert.strictEqual(model.supportsGradients, true, model.gradientNote);
    const opened = await openImage(model, path.join(IMAGES, 'pgc_both_cat_dog.png'));
    try {
      const c = resolveClass(model, 'tiger cat');
      const g = await opened.session.gradient(FEATURE, c).data();
      const w = model.graphModel.weights[LOGITS_W][0].dataSync();
      let diff = 0;
      for (let p = 0; p < 49; p++) for (let k = 0; k < 256; k++) diff = Math.max(diff, Math.abs(g[p * 256 + k] - w[k * 1001 + c] / 49));
      assert.ok(diff < 1e-7, `max |grad - W/49| = ${diff}`);
    } finally {
      opened.session.dispose();
    }
  });

  it('agrees with finite differences through two depthwise-separable blocks', async () => {
    const opened = await openImage(model, path.join(IMAGES, 'tfjsex_tiger.jpg'));
    const g = model.graph;
    try {
      const c = resolveClass(model, 'tiger');
      const grad = await opened.session.gradient(DEEPER, c).data();
      const a = opened.session.activation(DEEPER);
      const logit = (t: tf.Tensor4D): number => {
        const res = g.run(new Map([[DEEPER, t]]), [g.outputIds[0]], { logits: true });
        const out = res.get(g.outputIds[0]) as tf.Tensor;
        const v = out.dataSync()[c];
        out.dispose();
        return v;
      };
      const order = Array.from(grad.keys()).sort((i, j) => Math.abs(grad[j]) - Math.abs(grad[i])).slice(0, 3);
      const eps = 1e-2;
      for (const i of order) {
        const bump = tf.tidy(() => tf.reshape(tf.oneHot(tf.tensor1d([i], 'int32'), a.size), a.shape)) as tf.Tensor4D;
        const plus = tf.add(a, tf.mul(bump, eps)) as tf.Tensor4D;
        const minus = tf.sub(a, tf.mul(bump, eps)) as tf.Tensor4D;
        const fd = (logit(plus) - logit(minus)) / (2 * eps);
        tf.dispose([bump, plus, minus]);
        assert.ok(Math.abs(fd - grad[i]) < 0.1 * Math.abs(grad[i]) + 2e-5, `element ${i}: tf.grad ${grad[i]}, finite differences ${fd}`);
      }
    } finally {
      opened.session.dispose();
    }
  });

  it('draws the CAM that a by-hand computation from GraphModel.execute and the Logits weights gives (independent reference)', async () => {
    const opened = await openImage(model, path.join(IMAGES, 'pgc_both_cat_dog.png'));
    try {
      // Independent of our executor and head finder: the feature node straight from the converter, the
      // classifier weights straight from the weight map, M_c = sum_k W[k, c] A_k in plain loops.
      const fed = opened.session.input;
      const feat = model.graphModel.execute({ images: fed }, FEATURE) as tf.Tensor;
      const A = feat.dataSync();
      feat.dispose();
      const w = model.graphModel.weights[LOGITS_W][0].dataSync();
      for (const label of ['tiger cat', 'malamute']) {
        const c = resolveClass(model, label);
        const raw = new Float32Array(49);
        for (let p = 0; p < 49; p++) for (let k = 0; k < 256; k++) raw[p] += A[p * 256 + k] * w[k * 1001 + c];
        const expected = normalise(raw);
        for (const method of ['cam', 'gradcam']) {
          const r = await opened.session.explain({ method, classChoice: label });
          assert.strictEqual(r.layer, FEATURE);
          const corr = correlation(r.heatmap.values, expected);
          assert.ok(corr >= 0.99, `${method} ${label}: correlation ${corr}`);
          expected.forEach((v, i) => assert.ok(Math.abs(r.heatmap.values[i] - v) < 1e-3, `${method} ${label} cell ${i}`));
        }
      }
    } finally {
      opened.session.dispose();
    }
  });

  it('on the cat-and-dog photo puts the top dog class on the dog (top) and the top cat class on the cat (bottom), with CAM and every gradient method', async () => {
    const opened = await openImage(model, path.join(IMAGES, 'pgc_both_cat_dog.png'));
    try {
      const preds = await opened.session.predictions(1000);
      const dog = preds.find((p) => p.index >= 151 && p.index <= 268);
      const cat = preds.find((p) => p.index >= 281 && p.index <= 285);
      assert.ok(dog && cat);
      for (const method of ['cam', 'gradcam', 'gradcam++', 'xgradcam', 'hirescam', 'layercam']) {
        const d = await opened.session.explain({ method, classChoice: dog.index });
        const c = await opened.session.explain({ method, classChoice: cat.index });
        const { width: w, height: h } = d.heatmap;
        assert.deepStrictEqual([w, h], [7, 7]);
        assert.ok(peakRow(d.heatmap.values, w, h) < 0.5, `${method}: ${dog.label} map peaks at row ${peakRow(d.heatmap.values, w, h)}`);
        assert.ok(peakRow(c.heatmap.values, w, h) > 0.5, `${method}: ${cat.label} map peaks at row ${peakRow(c.heatmap.values, w, h)}`);
        assert.ok(centreRow(d.heatmap.values, w, h) < centreRow(c.heatmap.values, w, h), `${method}: dog mass above cat mass`);
      }
    } finally {
      opened.session.dispose();
    }
  });

  it('does not grow the tensor count over repeated runs', async () => {
    const run = async () => {
      const opened = await openImage(model, path.join(IMAGES, 'tfjsex_cat.jpg'));
      await opened.session.predictions(5);
      await opened.session.explain({ method: 'cam' });
      await opened.session.explain({ method: 'gradcam', layer: DEEPER });
      opened.session.dispose();
    };
    await run();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 4; i++) await run();
    assert.strictEqual(tf.memory().numTensors, before);
  });
});

describe('reference TF-Hub GraphModel on the cpu backend', function () {
  before(async function () {
    requireShared(this);
    await initBackend('cpu');
  });
  after(async () => {
    await initBackend('wasm');
  });

  it('probes gradients as flowing and gives the analytic gradient at the feature node', async () => {
    const model = await referenceGraph();
    const x = tf.randomUniform([1, 224, 224, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
    const s = new ImageSession(model, x);
    try {
      assert.strictEqual(model.supportsGradients, true, model.gradientNote);
      const c = 5;
      const g = await s.gradient(FEATURE, c).data();
      const w = model.graphModel.weights[LOGITS_W][0].dataSync();
      let diff = 0;
      for (let p = 0; p < 49; p++) for (let k = 0; k < 256; k++) diff = Math.max(diff, Math.abs(g[p * 256 + k] - w[k * 1001 + c] / 49));
      assert.ok(diff < 1e-7, `max |grad - W/49| = ${diff}`);
    } finally {
      s.dispose();
      model.dispose();
    }
  });
});
