/**
 * The earned layer recommendation: which layers are candidates, that the ranking follows the deletion AUC
 * of each layer's Grad-CAM map, that a layer whose map points at the object wins over one whose map is empty,
 * and that layers where Grad-CAM cannot run are listed with the reason.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession } from '../../src/extension/engine/session';
import { CancelledError } from '../../src/extension/engine/errors';
import { describeModel, openImage, type LayerInfo } from '../../src/extension/engine/pipeline';
import { deletionScores } from '../../src/extension/engine/faithfulness';
import { candidatesOf, recommendLayer } from '../../src/extension/engine/recommend';
import { SHARED, requireShared, tempDir, writeModel } from '../helpers/modelFiles';
import { bnModel } from '../helpers/models';

async function load(m: tfl.LayersModel): Promise<LoadedModel> {
  const written = await writeModel(m, path.join(tempDir(), 'model'));
  m.dispose();
  return loadModel(written.modelJson);
}

const S = 24;
const inObject = (p: number) => {
  const y = Math.floor(p / S);
  const x = p % S;
  return y >= 4 && y < 12 && x >= 4 && x < 12;
};

/**
 * img → 'copy' (1x1 conv, identity: A = x) → 'invert' (1x1 conv: B = 1 - A) → flatten → dense(2, softmax) with
 * logit_0 = -12 * mean over the object's pixels of B + 6 = 12 * mean_object(x) - 6. Grad-CAM at 'copy' has
 * positive weights and maps the bright object; at 'invert' its weights are negative, so the map is empty.
 */
function twoLayerModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [S, S, 3], name: 'img' });
  const eye = tf.tensor4d([1, 0, 0, 0, 1, 0, 0, 0, 1], [1, 1, 3, 3]);
  const copy = tfl.layers.conv2d({ filters: 3, kernelSize: 1, name: 'copy', weights: [eye, tf.zeros([3])] }).apply(input) as tfl.SymbolicTensor;
  const inv = tfl.layers.conv2d({ filters: 3, kernelSize: 1, name: 'invert', weights: [tf.neg(eye), tf.ones([3])] }).apply(copy) as tfl.SymbolicTensor;
  const flat = tfl.layers.flatten({ name: 'flat' }).apply(inv) as tfl.SymbolicTensor;
  const w = new Float32Array(S * S * 3 * 2);
  for (let p = 0; p < S * S; p++) if (inObject(p)) for (let c = 0; c < 3; c++) w[(p * 3 + c) * 2] = -12 / (64 * 3);
  const out = tfl.layers.dense({ units: 2, activation: 'softmax', name: 'fc', weights: [tf.tensor2d(w, [S * S * 3, 2]), tf.tensor1d([6, 0])] }).apply(flat) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

describe('layer recommendation', () => {
  before(async () => {
    await initBackend('cpu');
  });

  it('takes block outputs as candidates: the last of a conv → BN → ReLU chain, no padding, the last N', async () => {
    const m = await load(bnModel());
    try {
      const layers = describeModel(m).layers;
      assert.deepStrictEqual(candidatesOf(layers), ['r1', 'r2', 'res']);
      assert.deepStrictEqual(candidatesOf(layers, 2), ['r2', 'res']);
      assert.throws(() => candidatesOf(layers, 0), /at least 1/);
    } finally {
      m.dispose();
    }
    // GraphModel-style op names and padding.
    const op = (name: string, className: string, inbound: string[], shape = [null, 8, 8, 4]): LayerInfo =>
      ({ name, className, inbound, outputShape: shape, params: 0, spatial: shape.length === 4 });
    const graphLike = [
      op('pad', 'Pad', []),
      op('conv', 'Conv2D', ['pad']),
      op('bias', 'BiasAdd', ['conv']),
      op('relu', 'Relu6', ['bias']),
      op('dw', 'DepthwiseConv2dNative', ['relu']),
      op('bn/mul', 'Mul', ['dw']),
      op('bn/add', 'Add', ['bn/mul']),
      op('relu2', 'Relu6', ['bn/add']),
      op('sum', 'AddV2', ['relu2', 'relu']),
      op('conv2', '_FusedConv2D', ['sum']),
      op('mean', 'Mean', ['conv2'], [null, 4]),
    ];
    assert.deepStrictEqual(candidatesOf(graphLike, Infinity), ['relu', 'relu2', 'sum', 'conv2']);
  });

  it('ranks the layer whose map covers the object first, and marks an empty map', async () => {
    const m = await load(twoLayerModel());
    const x = Float32Array.from({ length: S * S * 3 }, (_, i) => (inObject(Math.floor(i / 3)) ? 1 : 0));
    const s = new ImageSession(m, tf.tensor4d(x, [1, S, S, 3]));
    try {
      assert.deepStrictEqual(candidatesOf(describeModel(m).layers), ['copy', 'invert']);
      const r = await recommendLayer(s, { classChoice: 0 });
      assert.strictEqual(r.best, 'copy');
      assert.deepStrictEqual(r.ranking.map((l) => [l.layer, l.rank, l.best, Boolean(l.emptyMap)]), [['copy', 1, true, false], ['invert', 2, false, true]]);
      assert.ok((r.ranking[0].deletionAuc as number) < (r.ranking[1].deletionAuc as number));
      assert.strictEqual(r.target.index, 0);
      assert.strictEqual(r.conventional, 'invert');
    } finally {
      s.dispose();
      m.dispose();
    }
  });

  it("scores each layer by the deletion AUC of its Grad-CAM map, lists the layers that fail with the reason, and reports progress", async () => {
    const m = await load(bnModel());
    const s = new ImageSession(m, tf.tensor4d(Float32Array.from({ length: 768 }, (_, i) => ((i * 7919) % 255) / 255), [1, 16, 16, 3]));
    try {
      const progress: [number, number][] = [];
      const r = await recommendLayer(s, { classChoice: 3, layers: ['r1', 'gap', 'res', 'nope', 'r2'], steps: 5, onProgress: (d, t) => progress.push([d, t]) });
      const maps = [];
      for (const layer of ['r1', 'res', 'r2']) maps.push((await s.explain({ method: 'gradcam', layer, classChoice: 3 })).heatmap);
      const expected = (await deletionScores(s, maps, 3, { steps: 5 })).map((c) => c.auc);
      const byLayer = new Map(r.ranking.map((l) => [l.layer, l]));
      ['r1', 'res', 'r2'].forEach((l, i) => assert.ok(Math.abs((byLayer.get(l)?.deletionAuc as number) - expected[i]) < 1e-6, l));
      assert.deepStrictEqual(r.ranking.slice(3).map((l) => [l.layer, l.error?.code]), [['gap', 'LAYER_NOT_SPATIAL'], ['nope', 'UNKNOWN_LAYER']]);
      assert.match(byLayer.get('gap')?.error?.message ?? '', /not a spatial feature map/);
      const aucs = r.ranking.slice(0, 3).map((l) => l.deletionAuc as number);
      assert.deepStrictEqual(aucs, [...aucs].sort((a, b) => a - b));
      // Progress: 5 layer maps, then 2 + 3 x 4 forward passes.
      assert.deepStrictEqual(progress[0], [0, 5 + 2 + 5 * 4]);
      assert.deepStrictEqual(progress[progress.length - 1], [5 + 2 + 3 * 4, 5 + 2 + 3 * 4]);
      for (let i = 1; i < progress.length; i++) assert.ok(progress[i][0] >= progress[i - 1][0]);

      const before = tf.memory().numTensors;
      await recommendLayer(s, { classChoice: 3, layers: ['r1', 'res', 'r2'], steps: 5 });
      assert.strictEqual(tf.memory().numTensors, before, 'no tensor growth on a repeated run');
      const ac = new AbortController();
      await assert.rejects(recommendLayer(s, { signal: ac.signal, onProgress: (d) => d === 1 && ac.abort() }), CancelledError);
    } finally {
      s.dispose();
      m.dispose();
    }
  });

  it('says for every layer that Grad-CAM cannot run where gradients do not reach the layers; Score-CAM still runs', async () => {
    const m = await load(bnModel());
    // A model whose gradient probe failed (as a GraphModel's can): the same model with the flag down.
    const noGrad = Object.create(m, { supportsGradients: { value: false }, gradientNote: { value: 'the probe found no gradient' } }) as LoadedModel;
    const s = new ImageSession(noGrad, tf.tensor4d(Float32Array.from({ length: 768 }, (_, i) => (i % 11) / 11), [1, 16, 16, 3]));
    try {
      const r = await recommendLayer(s, { classChoice: 1 });
      assert.strictEqual(r.best, null);
      assert.deepStrictEqual(r.ranking.map((l) => [l.layer, l.error?.code]), [['r1', 'METHOD_NOT_APPLICABLE'], ['r2', 'METHOD_NOT_APPLICABLE'], ['res', 'METHOD_NOT_APPLICABLE']]);
      assert.match(r.ranking[0].error?.message ?? '', /Grad-CAM needs gradients, and they do not reach this model's layers: the probe found no gradient/);
      const sc = await s.explain({ method: 'scorecam', layer: 'res', classChoice: 1 });
      assert.strictEqual(sc.heatmap.values.length, 64);
    } finally {
      s.dispose();
      m.dispose();
    }
  });

  describe('on the reference MobileNet', function () {
    let model: LoadedModel;
    before(async function () {
      requireShared(this);
      await initBackend('wasm');
      const labels = JSON.parse(fs.readFileSync(path.join(SHARED, 'imagenet_classes.json'), 'utf8')) as string[];
      model = await loadModel(path.join(SHARED, 'models', 'mobilenet_v1_0.25_224', 'model.json'), { overrides: { labels, preprocess: '[-1,1]' } });
    });
    after(async () => {
      model?.dispose();
      await initBackend('cpu');
    });

    it('has the 7x7 and 14x14 block outputs as its last 8 candidates, and ranks three of them on a photo', async () => {
      const c = candidatesOf(describeModel(model).layers);
      assert.deepStrictEqual(c, ['conv_dw_10_relu', 'conv_pw_10_relu', 'conv_dw_11_relu', 'conv_pw_11_relu', 'conv_dw_12_relu', 'conv_pw_12_relu', 'conv_dw_13_relu', 'conv_pw_13_relu']);
      const opened = await openImage(model, path.join(SHARED, 'images', 'pgc_both_cat_dog.png'));
      try {
        const r = await recommendLayer(opened.session, { classChoice: 'boxer', lastN: 3 });
        assert.strictEqual(r.ranking.length, 3);
        assert.ok(r.ranking.every((l) => l.deletionAuc !== undefined && l.deletionAuc >= 0 && l.deletionAuc <= 1));
        assert.strictEqual(r.conventional, 'conv_pw_13_relu');
        assert.ok(c.slice(-3).includes(r.best as string));
      } finally {
        opened.session.dispose();
      }
    });
  });
});
