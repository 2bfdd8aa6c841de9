/** Two models side by side (engine/analysis/compare.ts): map maths, class matching, one image, a dataset. */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import { initBackend } from '../../src/extension/engine/backend';
import { CamLensError } from '../../src/extension/engine/errors';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { readDataset } from '../../src/extension/engine/scan/dataset';
import {
  averageRanks, compareDataset, compareImage, compareMaps, matchClass, rankComparisons, resampleMap, spearman, type SampleComparison,
} from '../../src/extension/engine/analysis/compare';
import { bnModel } from '../helpers/models';
import { SHARED, requireShared, tempDir, writeModel } from '../helpers/modelFiles';

const LABELS = ['apple', 'banana', 'cherry', 'date', 'elder'];

/** A copy of `src`'s weights in a fresh bnModel, `edit` applied to the list of weights first. */
function copyModel(src: tfl.LayersModel, edit: (name: string, w: tf.Tensor) => tf.Tensor = (_n, w) => w): tfl.LayersModel {
  const m = bnModel();
  for (const layer of src.layers) {
    const ws = layer.getWeights();
    if (!ws.length) continue;
    const edited = ws.map((w, i) => tf.tidy(() => edit(`${layer.name}/${i}`, w)));
    m.getLayer(layer.name).setWeights(edited);
    edited.forEach((w, i) => w !== ws[i] && w.dispose());
  }
  return m;
}

describe('compare engine: two models side by side', () => {
  let dir: string;
  let a: LoadedModel;
  let twin: LoadedModel;
  let reordered: LoadedModel;
  let perturbed: LoadedModel;
  let missing: LoadedModel;
  let image: string;
  let root: string;

  before(async () => {
    await initBackend('cpu');
    dir = tempDir();
    // Seeded kernels (bnModel's are random): the same maps on every run.
    const seed = bnModel();
    const base = copyModel(seed, (name, w) => (/^(c1|dw|fc)\/0$/.test(name) ? tf.randomNormal(w.shape, 0, 0.4, 'float32', name.length * 7 + 1) : tf.clone(w)));
    seed.dispose();
    const meta = (labels: string[]) => ({ labels, inputSize: [16, 16], preprocess: '[0,1]' });
    a = await loadModel((await writeModel(base, path.join(dir, 'a'), meta(LABELS))).modelJson);
    twin = await loadModel((await writeModel(base, path.join(dir, 'twin'), meta(LABELS))).modelJson);
    // The same network with its classes in reverse order: output j of B is output 4 - j of A.
    const perm = [4, 3, 2, 1, 0];
    const rev = copyModel(base, (name, w) => (name === 'fc/0' ? tf.gather(w, perm, 1) : name === 'fc/1' ? tf.gather(w, perm) : tf.clone(w)));
    reordered = await loadModel((await writeModel(rev, path.join(dir, 'reordered'), meta([...LABELS].reverse()))).modelJson);
    rev.dispose();
    // Other weights in the first convolution: other features, other maps.
    const other = copyModel(base, (name, w) => (name === 'c1/0' ? tf.randomNormal(w.shape, 0, 0.5, 'float32', 99) : tf.clone(w)));
    perturbed = await loadModel((await writeModel(other, path.join(dir, 'perturbed'), meta(LABELS))).modelJson);
    other.dispose();
    missing = await loadModel((await writeModel(base, path.join(dir, 'missing'), meta(['apple', 'banana', 'fig', 'date', 'elder']))).modelJson);
    base.dispose();

    image = path.join(dir, 'photo.png');
    const px = Buffer.alloc(24 * 20 * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 256;
    await sharp(px, { raw: { width: 24, height: 20, channels: 3 } }).png().toFile(image);

    root = path.join(dir, 'data');
    let k = 0;
    for (const cls of ['apple', 'banana', 'cherry']) {
      fs.mkdirSync(path.join(root, cls), { recursive: true });
      for (let i = 0; i < 4; i++) {
        const p = Buffer.alloc(20 * 20 * 3);
        for (let j = 0; j < p.length; j++) p[j] = (j * (k + 3) * 13) % 256;
        k++;
        await sharp(p, { raw: { width: 20, height: 20, channels: 3 } }).png().toFile(path.join(root, cls, `${i}.png`));
      }
    }
    fs.writeFileSync(path.join(root, 'banana', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\n not really'));
  });

  after(() => {
    for (const m of [a, twin, reordered, perturbed, missing]) m?.dispose();
  });

  describe('map maths', () => {
    it('ranks ties by their average rank', () => {
      assert.deepStrictEqual(Array.from(averageRanks([0, 0, 3, 1, 0])), [2, 2, 5, 4, 2]);
    });

    it('gives Spearman 1 for any increasing transform, -1 for a reversal, and the textbook value with ties', () => {
      const x = [0.1, 0.5, 0.2, 0.9, 0.3];
      assert.strictEqual(spearman(x, x.map((v) => v * v * 10 + 1)), 1);
      assert.ok(Math.abs(spearman(x, x.map((v) => -v)) + 1) < 1e-12);
      // Ranks x: [1, 2.5, 2.5, 4], y: [1, 2, 3, 4] -> Pearson of the ranks = 4.5 / sqrt(4.5 * 5).
      assert.ok(Math.abs(spearman([1, 2, 2, 3], [1, 2, 3, 4]) - 4.5 / Math.sqrt(4.5 * 5)) < 1e-12);
      // A map without variance has no order: equal maps 1, otherwise 0 (never NaN).
      assert.strictEqual(spearman([0, 0, 0], [0, 0, 0]), 1);
      assert.strictEqual(spearman([0, 0, 0], [0, 1, 0]), 0);
    });

    it('resamples a map with half-pixel centres, keeping a constant map constant and its place over the image', () => {
      assert.deepStrictEqual(Array.from(resampleMap({ width: 2, height: 2, values: Float32Array.of(0.5, 0.5, 0.5, 0.5) }, 5, 3)), new Array(15).fill(0.5));
      // A hot left column stays on the left: 2 -> 4 wide gives 1, 0.75, 0.25, 0 per row.
      const up = resampleMap({ width: 2, height: 1, values: Float32Array.of(1, 0) }, 4, 1);
      assert.deepStrictEqual(Array.from(up), [1, 0.75, 0.25, 0]);
    });

    it('compares at the larger grid: the difference is A - B and its mean absolute value', () => {
      const c = compareMaps({ width: 2, height: 1, values: Float32Array.of(1, 0) }, { width: 4, height: 1, values: Float32Array.of(0, 0, 1, 1) });
      assert.deepStrictEqual([c.width, c.height], [4, 1]);
      assert.deepStrictEqual(Array.from(c.difference), [1, 0.75, -0.75, -1]);
      assert.strictEqual(c.meanAbsDifference, 0.875);
      // Ranks [4, 3, 2, 1] against [1.5, 1.5, 3.5, 3.5]: -4 / sqrt(5 * 4).
      assert.ok(Math.abs(c.correlation + 4 / Math.sqrt(20)) < 1e-12, `correlation ${c.correlation}`);
    });

    it('ranks top-1 disagreements first, then the lowest correlation, then the largest difference', () => {
      const row = (relPath: string, top1Differs: boolean, correlation: number, meanAbsDifference = 0): SampleComparison => ({
        path: relPath, relPath, givenLabel: 'x', explained: { label: 'x', probabilityA: 1, probabilityB: 1 },
        top1A: { index: 0, label: 'x', probability: 1 }, top1B: { index: 0, label: 'x', probability: 1 },
        top1Differs, correlation, meanAbsDifference, layerA: 'l', layerB: 'l',
      });
      const ranked = rankComparisons([row('a', false, 0.2), row('b', true, 0.9), row('c', false, -0.1), row('d', true, 0.5), row('e', false, 0.2, 0.3), row('f', false, 0.99)]);
      assert.deepStrictEqual(ranked.map((r) => r.relPath), ['d', 'b', 'c', 'e', 'a', 'f']);
    });
  });

  describe('classes across two models', () => {
    it('matches an index by label name where the label lists differ, and by index where they are equal', () => {
      assert.deepStrictEqual(matchClass(a, twin, 1), { label: 'banana', a: 1, b: 1 });
      assert.deepStrictEqual(matchClass(a, reordered, 1), { label: 'banana', a: 1, b: 3 });
      assert.deepStrictEqual(matchClass(a, reordered, 'Cherry'), { label: 'cherry', a: 2, b: 2 });
      assert.deepStrictEqual(matchClass(a, reordered, 'date'), { label: 'date', a: 3, b: 1 });
    });

    it('refuses a class one model lacks, naming that model', () => {
      assert.throws(() => matchClass(a, missing, 'cherry'), (e: CamLensError) => e.code === 'UNKNOWN_CLASS' && /model B \(missing\)/.test(e.message) && /cherry/.test(e.message));
      assert.throws(() => matchClass(a, missing, 2), (e: CamLensError) => e.code === 'UNKNOWN_CLASS' && /class "cherry" of model A \(a\) is not among the classes of model B \(missing\)/.test(e.message));
      assert.throws(() => matchClass(a, missing, 'fig'), (e: CamLensError) => e.code === 'UNKNOWN_CLASS' && /model A \(a\)/.test(e.message));
      assert.throws(() => matchClass(a, twin, 7), (e: CamLensError) => e.code === 'UNKNOWN_CLASS' && /out of range/.test(e.message));
    });
  });

  describe('one image', () => {
    it('gives correlation 1 and a zero difference for two copies of one model, and leaves no tensor behind', async () => {
      const before = tf.memory().numTensors;
      const c = await compareImage(a, twin, image, { method: 'gradcam', classChoice: 'banana' });
      assert.strictEqual(tf.memory().numTensors, before);
      assert.strictEqual(c.correlation, 1);
      assert.ok(c.difference.every((v) => v === 0));
      assert.strictEqual(c.meanAbsDifference, 0);
      assert.strictEqual(c.classLabel, 'banana');
      assert.strictEqual(c.a.target.label, 'banana');
      assert.strictEqual(c.top1Differs, false);
      assert.strictEqual(c.difference.length, c.width * c.height);
      assert.ok(c.a.heatmap.values.some((v) => v > 0), 'a map that is not empty, or the test proves nothing');
    });

    it('explains the same class by name in a model whose classes come in another order: the same maps', async () => {
      const c = await compareImage(a, reordered, image, { method: 'gradcam', classChoice: 1 });
      assert.deepStrictEqual([c.a.target.label, c.b.target.label, c.b.target.index], ['banana', 'banana', 3]);
      assert.ok(c.correlation > 0.9999, `correlation ${c.correlation}`);
      assert.ok(c.meanAbsDifference < 1e-4);
      assert.strictEqual(c.top1Differs, false);
      // Without a class: model A's top-1, found in B by its label.
      const d = await compareImage(a, reordered, image, { method: 'gradcam' });
      assert.strictEqual(d.classLabel, d.a.predictions[0].label);
      assert.strictEqual(d.b.target.label, d.classLabel);
    });

    it('gives a lower correlation and a difference for a differently weighted model', async () => {
      const before = tf.memory().numTensors;
      const c = await compareImage(a, perturbed, image, { method: 'gradcam', classChoice: 'banana' });
      assert.strictEqual(tf.memory().numTensors, before);
      assert.ok(c.correlation < 0.9, `correlation ${c.correlation}`);
      assert.ok(c.meanAbsDifference > 0.02, `mean |A - B| ${c.meanAbsDifference}`);
      assert.ok(c.difference.some((v) => v > 0) && c.difference.some((v) => v < 0));
    });
  });

  describe('a dataset', () => {
    it('finds no disagreement between two copies of one model', async () => {
      const ds = readDataset(root, LABELS);
      const r = await compareDataset(a, twin, ds, { method: 'gradcam' });
      assert.strictEqual(r.results.length, 12);
      assert.ok(r.results.every((s) => s.correlation === 1 && !s.top1Differs));
      assert.deepStrictEqual(r.failures.map((f) => f.relPath), ['banana/broken.png']);
    });

    it('streams every sample and ranks top-1 disagreements first, then the lowest map correlation', async () => {
      const ds = readDataset(root, LABELS);
      const streamed: string[] = [];
      const progress: number[] = [];
      const before = tf.memory().numTensors;
      const r = await compareDataset(a, perturbed, ds, { method: 'gradcam', onResult: (s) => streamed.push(s.relPath), onProgress: (p) => progress.push(p.done) });
      assert.strictEqual(tf.memory().numTensors, before);
      assert.strictEqual(r.cancelled, false);
      assert.strictEqual(r.results.length, 12);
      assert.deepStrictEqual([...streamed].sort(), r.results.map((s) => s.relPath).sort());
      assert.deepStrictEqual(progress, Array.from({ length: 13 }, (_, i) => i + 1));
      for (let i = 1; i < r.results.length; i++) {
        const p = r.results[i - 1];
        const q = r.results[i];
        assert.ok(Number(p.top1Differs) > Number(q.top1Differs) || (p.top1Differs === q.top1Differs && p.correlation <= q.correlation), `rank ${i}: ${p.relPath} before ${q.relPath}`);
      }
      assert.ok(r.results.some((s) => s.correlation < 0.9), 'some maps disagree');
      // Each map explains the given label.
      assert.ok(r.results.every((s) => s.explained.label === s.givenLabel));
    });

    it('stops when cancelled and keeps what it computed', async () => {
      const ds = readDataset(root, LABELS);
      const ctrl = new AbortController();
      const r = await compareDataset(a, perturbed, ds, { onProgress: (p) => p.done === 3 && ctrl.abort(), signal: ctrl.signal });
      assert.strictEqual(r.cancelled, true);
      assert.strictEqual(r.results.length + r.failures.length, 3);
    });

    it('compares one class for every sample, and reports samples whose class model B lacks', async () => {
      const ds = readDataset(root, LABELS);
      const one = await compareDataset(a, reordered, ds, { classChoice: 'date' });
      assert.ok(one.results.every((s) => s.explained.label === 'date' && s.correlation > 0.9999));
      const r = await compareDataset(a, missing, ds);
      assert.deepStrictEqual(r.failures.filter((f) => /not among the classes of model B/.test(f.error)).map((f) => f.relPath),
        ['cherry/0.png', 'cherry/1.png', 'cherry/2.png', 'cherry/3.png']);
      assert.strictEqual(r.results.length, 8);
    });
  });

  describe('two formats of one network (../shared/reference)', () => {
    let layers: LoadedModel;
    let graph: LoadedModel;
    before(async function () {
      requireShared(this);
      const labels = JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
      // The Keras MobileNet v1 0.25 as a LayersModel (1000 classes) and TF Hub's as a GraphModel (1001 outputs,
      // a "background" first): the same class sits one output further in B.
      layers = await loadModel(path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json'), { overrides: { labels, preprocess: '[-1,1]' } });
      graph = await loadModel(path.join(SHARED, 'models', 'mobilenet_v1_025_224_graph', 'model.json'), { overrides: { labels, labelOffset: 1, preprocess: '[0,1]' } });
    });
    after(() => {
      layers?.dispose();
      graph?.dispose();
    });

    it('finds the class in both by its label (output offset included) and gives similar maps', async () => {
      assert.deepStrictEqual(matchClass(layers, graph, 'tabby'), { label: 'tabby, tabby cat', a: 281, b: 282 });
      const before = tf.memory().numTensors;
      const c = await compareImage(layers, graph, path.join(SHARED, 'images', 'tfjsex_cat.jpg'), { method: 'gradcam' });
      assert.strictEqual(tf.memory().numTensors, before);
      assert.strictEqual(c.a.predictions[0].label, c.b.predictions[0].label, 'both formats agree on the top-1');
      assert.strictEqual(c.top1Differs, false);
      assert.deepStrictEqual([c.width, c.height], [7, 7]);
      // Measured 0.81 (Egyptian cat): two trainings of one architecture look at the same cat.
      assert.ok(c.correlation > 0.6, `correlation ${c.correlation}`);
    });
  });
});
