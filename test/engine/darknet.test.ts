/**
 * Classifiers whose last convolution maps to the classes before the pooling: a 1x1 convolution to one
 * channel per class, then global average pooling straight into the logits (ml5's DarkNet-tiny from
 * ../shared/reference). CAM reads the class channel of that convolution directly (the 'identity' head).
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { findLinearHead } from '../../src/extension/engine/head';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { describeModel, openImage } from '../../src/extension/engine/pipeline';
import { ImageSession } from '../../src/extension/engine/session';
import { SHARED, requireShared, tempDir, writeModel } from '../helpers/modelFiles';

const DARKNET = path.join(SHARED, 'models', 'darknet_tiny', 'model.json');
const IMAGES = path.join(SHARED, 'images');

function softmax(z: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < z.length; i++) max = Math.max(max, z[i]);
  const e = Float64Array.from({ length: z.length }, (_, i) => Math.exp(z[i] - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
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

describe('classifier before the pooling: a hand-built model', () => {
  before(async () => {
    await initBackend('cpu');
  });

  it('draws class c as the ReLU of channel c of the class convolution, normalised, with CAM and Grad-CAM alike', async () => {
    // conv 3x3 → 1x1 conv to 3 class channels "classes" → GAP → output (logits, no softmax).
    const input = tfl.input({ shape: [5, 5, 3] });
    const f = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'features' }).apply(input) as tfl.SymbolicTensor;
    const c = tfl.layers.conv2d({ filters: 3, kernelSize: 1, name: 'classes' }).apply(f) as tfl.SymbolicTensor;
    const out = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(c) as tfl.SymbolicTensor;
    const built = tfl.model({ inputs: input, outputs: out });
    // Fixed weights (not the random initialisation) so that every class channel spans a range of order 1: the
    // maps are normalised with (max - min + 1e-7) as in pytorch-grad-cam, an epsilon that only vanishes then.
    for (const name of ['features', 'classes']) {
      const layer = built.getLayer(name);
      tf.tidy(() => layer.setWeights(layer.getWeights().map((w) => tf.tensor(Float32Array.from({ length: w.size }, (_, i) => Math.sin(i * 1.7 + w.rank)), w.shape))));
    }
    const written = await writeModel(built, path.join(tempDir(), 'dn'), { labels: ['a', 'b', 'c'], inputSize: [5, 5] });
    const model = await loadModel(written.modelJson);
    const x = tf.tensor4d(Float32Array.from({ length: 75 }, (_, i) => Math.cos(i * 0.9)), [1, 5, 5, 3]);
    const session = new ImageSession(model, tf.clone(x) as tf.Tensor4D);
    try {
      assert.strictEqual(model.graph.recommendedTarget().name, 'classes');
      assert.strictEqual(model.graph.outputActivation, 'none');
      const head = findLinearHead(model.graph, model.graph.op('classes'));
      assert.deepStrictEqual(head, { kind: 'identity' });
      const classMaps = (built.getLayer('classes').apply(built.getLayer('features').apply(x)) as tf.Tensor).dataSync();
      for (const cls of [0, 1, 2]) {
        const raw = Array.from({ length: 25 }, (_, p) => Math.max(0, classMaps[p * 3 + cls]));
        const min = Math.min(...raw);
        const max = Math.max(...raw);
        assert.ok(max - min > 0.1, `class ${cls} channel range ${max - min}`);
        for (const method of ['cam', 'gradcam', 'hirescam']) {
          const r = await session.explain({ method, classChoice: cls });
          raw.forEach((v, i) => assert.ok(Math.abs(r.heatmap.values[i] - (v - min) / (max - min + 1e-7)) < 1e-4, `${method} class ${cls} cell ${i}: ${r.heatmap.values[i]}`));
        }
      }
      // Probabilities are the softmax of the logits the model outputs (the pooled class channels).
      const logits = await session.logits();
      const predicted = (model.format === 'layers-model' ? model.tfModel.predict(x) : undefined) as tf.Tensor;
      const raw = predicted.dataSync();
      predicted.dispose();
      logits.forEach((v, i) => assert.ok(Math.abs(v - raw[i]) < 1e-5));
      const p = await session.probabilities();
      softmax(logits).forEach((v, i) => assert.ok(Math.abs(p[i] - v) < 1e-6));
    } finally {
      session.dispose();
      x.dispose();
      model.dispose();
      built.dispose();
    }
  });
});

describe('reference DarkNet-tiny (1x1 conv to 1000 classes, then GAP)', function () {
  let model: LoadedModel;
  before(async function () {
    requireShared(this);
    await initBackend('wasm');
    const labels = JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes_darknet.json'), 'utf8')) as string[];
    model = await loadModel(DARKNET, { overrides: { labels, preprocess: '[0,1]' } });
  });
  after(() => model?.dispose());

  it('recommends conv2d_16, the class-map convolution, and finds the identity head there', () => {
    const d = describeModel(model);
    assert.strictEqual(d.recommendedLayer, 'conv2d_16');
    assert.deepStrictEqual(d.layers.find((l) => l.name === 'conv2d_16')?.outputShape, [null, 14, 14, 1000]);
    assert.strictEqual(d.outputActivation, 'none');
    assert.strictEqual(d.classes, 1000);
    assert.deepStrictEqual(findLinearHead(model.graph, model.graph.op('conv2d_16')), { kind: 'identity' });
  });

  it('reports probabilities that are the softmax of its logits, and predicts the reference photos sensibly', async () => {
    for (const [file, label] of [['tfjsex_tiger.jpg', 'tiger'], ['tfjsex_elephants.jpg', 'African elephant'], ['tfjsex_cat.jpg', 'Egyptian cat'], ['tfjsmodels_tabby_cat.jpg', 'tabby']]) {
      const opened = await openImage(model, path.join(IMAGES, file));
      try {
        const logits = await opened.session.logits();
        const p = await opened.session.probabilities();
        // The model outputs logits: they are not probabilities themselves (some are negative), and the
        // reported probabilities are exactly their softmax.
        assert.ok(logits.some((v) => v < 0), `${file}: the outputs look like probabilities already`);
        softmax(logits).forEach((v, i) => assert.ok(Math.abs(p[i] - v) < 1e-6, `${file}: output ${i}`));
        const [top] = await opened.session.predictions(1);
        assert.strictEqual(top.label, label, `${file}: ${top.label} ${(top.probability * 100).toFixed(1)}%`);
        assert.ok(top.probability > 0.4, `${file}: ${label} at ${top.probability}`);
      } finally {
        opened.session.dispose();
      }
    }
  });

  it('on the cat-and-dog photo, CAM on the class channels puts the top dog class on the dog (top) and the top cat class on the cat (bottom)', async () => {
    const opened = await openImage(model, path.join(IMAGES, 'pgc_both_cat_dog.png'));
    try {
      // Darknet's class order is not Keras': pick the classes by name.
      const dogs = new Set(['bull mastiff', 'boxer', 'French bulldog', 'Staffordshire bullterrier', 'American Staffordshire terrier', 'Great Dane', 'pug']);
      const cats = new Set(['tiger cat', 'tabby', 'Egyptian cat', 'Persian cat', 'Siamese cat']);
      const preds = await opened.session.predictions(20);
      const dog = preds.find((p) => dogs.has(p.label));
      const cat = preds.find((p) => cats.has(p.label));
      assert.ok(dog && cat, preds.map((p) => p.label).join(', '));
      assert.ok(preds.indexOf(dog) < 3 && preds.indexOf(cat) < 3, 'both animals among the top 3');
      const before = tf.memory().numTensors;
      for (const method of ['cam', 'gradcam']) {
        const d = await opened.session.explain({ method, classChoice: dog.index });
        const c = await opened.session.explain({ method, classChoice: cat.index });
        assert.strictEqual(d.layer, 'conv2d_16');
        const { width: w, height: h } = d.heatmap;
        assert.deepStrictEqual([w, h], [14, 14]);
        assert.ok(peakRow(d.heatmap.values, w, h) < 0.5, `${method}: ${dog.label} map peaks at row ${peakRow(d.heatmap.values, w, h)}`);
        assert.ok(peakRow(c.heatmap.values, w, h) > 0.5, `${method}: ${cat.label} map peaks at row ${peakRow(c.heatmap.values, w, h)}`);
        assert.ok(centreRow(d.heatmap.values, w, h) < centreRow(c.heatmap.values, w, h), `${method}: dog mass above cat mass`);
      }
      // The class map is the activation's channel itself: CAM == the channel, ReLU'd and normalised.
      const a = opened.session.activation('conv2d_16');
      const ch = tf.tidy(() => tf.reshape(tf.slice(a, [0, 0, 0, dog.index], [1, 14, 14, 1]), [196]).dataSync());
      const r = await opened.session.explain({ method: 'cam', classChoice: dog.index });
      const relu = Array.from(ch, (v) => Math.max(0, v));
      const min = Math.min(...relu);
      const max = Math.max(...relu);
      relu.forEach((v, i) => assert.ok(Math.abs(r.heatmap.values[i] - (v - min) / (max - min + 1e-7)) < 1e-4));
      assert.strictEqual(tf.memory().numTensors, before + 3, 'only the cached activation and the gradients of the two classes remain');
    } finally {
      opened.session.dispose();
    }
  });
});
