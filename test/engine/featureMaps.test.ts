import * as assert from 'assert';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { ImageSession } from '../../src/extension/engine/session';
import { computeFeatureMaps } from '../../src/extension/engine/featureMaps';
import { CamLensError } from '../../src/extension/engine/errors';
import { tempDir, writeModel } from '../helpers/modelFiles';
import { bnModel } from '../helpers/models';

/** A deterministic input for bnModel's [16, 16, 3]. */
function input(): tf.Tensor4D {
  const x = new Float32Array(16 * 16 * 3);
  for (let i = 0; i < x.length; i++) x[i] = ((i * 37) % 101) / 100;
  return tf.tensor4d(x, [1, 16, 16, 3]);
}

describe('feature maps', () => {
  let model: LoadedModel;
  let session: ImageSession;

  before(async () => {
    await initBackend('cpu');
    const dir = path.join(tempDir(), 'bn');
    const { modelJson } = await writeModel(bnModel(), dir, { labels: ['a', 'b', 'c', 'd', 'e'], preprocess: '[0,1]' });
    model = await loadModel(modelJson);
  });
  beforeEach(() => {
    session = new ImageSession(model, input());
  });
  afterEach(() => session.dispose());
  after(() => model.dispose());

  it('lays the activation out channel-major, with the values the session computed', async () => {
    const fm = await computeFeatureMaps(session, { layer: 'r1' });
    const act = session.activation('r1');
    const [, h, w, k] = act.shape;
    assert.deepStrictEqual([fm.layer, fm.height, fm.width, fm.channels, fm.totalChannels, fm.truncated], ['r1', h, w, k, k, false]);
    assert.strictEqual(fm.values.length, k * h * w);
    const hwc = act.dataSync();
    let checked = 0;
    for (let c = 0; c < k; c++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          assert.strictEqual(fm.values[c * h * w + y * w + x], hwc[(y * w + x) * k + c], `channel ${c} at (${x}, ${y})`);
          checked++;
        }
      }
    }
    assert.strictEqual(checked, 8 * 8 * 8);
    assert.deepStrictEqual([...fm.channelIndex], [0, 1, 2, 3, 4, 5, 6, 7]);
    assert.strictEqual(fm.weights, undefined);
  });

  it('reports each channel\'s min, max and mean', async () => {
    const fm = await computeFeatureMaps(session, { layer: 'res' });
    const hw = fm.width * fm.height;
    let varied = 0;
    for (let c = 0; c < fm.channels; c++) {
      const ch = Array.from(fm.values.subarray(c * hw, (c + 1) * hw));
      const mean = ch.reduce((a, b) => a + b, 0) / hw;
      assert.strictEqual(fm.min[c], Math.min(...ch));
      assert.strictEqual(fm.max[c], Math.max(...ch));
      assert.ok(Math.abs(fm.mean[c] - mean) < 1e-5, `mean of channel ${c}: ${fm.mean[c]} vs ${mean}`);
      if (fm.max[c] > fm.min[c]) varied++;
    }
    assert.ok(varied > 0, 'the test input should give channels that vary over space');
  });

  it('gives each channel its Grad-CAM weight: the spatial mean of the class logit\'s gradient', async () => {
    const fm = await computeFeatureMaps(session, { layer: 'res', classIndex: 2 });
    assert.strictEqual(fm.classIndex, 2);
    const grad = session.gradient('res', 2);
    const [, h, w, k] = grad.shape;
    const g = grad.dataSync();
    assert.ok(fm.weights);
    const weights = fm.weights as Float32Array;
    assert.strictEqual(weights.length, k);
    let nonZero = 0;
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let p = 0; p < h * w; p++) s += g[p * k + c];
      assert.ok(Math.abs(weights[c] - s / (h * w)) < 1e-6, `alpha_${c}: ${weights[c]} vs ${s / (h * w)}`);
      if (Math.abs(weights[c]) > 1e-6) nonZero++;
    }
    assert.ok(nonZero > 0, 'weights should not all be zero');
    // Another class, other weights.
    const other = await computeFeatureMaps(session, { layer: 'res', classIndex: 4 });
    assert.notDeepStrictEqual([...(other.weights as Float32Array)], [...weights]);
  });

  it('caps the channels, keeping those with the largest |weight|, in channel order, and says so', async () => {
    const full = await computeFeatureMaps(session, { layer: 'res', classIndex: 1 });
    const fm = await computeFeatureMaps(session, { layer: 'res', classIndex: 1, maxChannels: 3 });
    assert.deepStrictEqual([fm.channels, fm.totalChannels, fm.truncated, fm.selectedBy], [3, 8, true, 'weight']);
    const alpha = full.weights as Float32Array;
    const expected = [...alpha.keys()].sort((a, b) => Math.abs(alpha[b]) - Math.abs(alpha[a])).slice(0, 3).sort((a, b) => a - b);
    assert.deepStrictEqual([...fm.channelIndex], expected);
    const hw = fm.width * fm.height;
    fm.channelIndex.forEach((c, i) => {
      assert.deepStrictEqual([...fm.values.subarray(i * hw, (i + 1) * hw)], [...full.values.subarray(c * hw, (c + 1) * hw)]);
      assert.strictEqual(fm.weights?.[i], alpha[c]);
      assert.strictEqual(fm.mean[i], full.mean[c]);
    });
    // Without a class the strongest mean activations are kept; a value budget caps channels too.
    const byMean = await computeFeatureMaps(session, { layer: 'res', maxValues: 2 * hw });
    assert.deepStrictEqual([byMean.channels, byMean.selectedBy], [2, 'mean']);
    const top = [...full.mean.keys()].sort((a, b) => full.mean[b] - full.mean[a]).slice(0, 2).sort((a, b) => a - b);
    assert.deepStrictEqual([...byMean.channelIndex], top);
  });

  it('uses the recommended layer by default', async () => {
    const fm = await computeFeatureMaps(session);
    assert.strictEqual(fm.layer, model.graph.recommendedTarget().name);
  });

  it('refuses a layer without a spatial output and a class out of range, with the engine\'s codes', async () => {
    await assert.rejects(computeFeatureMaps(session, { layer: 'gap' }), (e: unknown) => e instanceof CamLensError && e.code === 'LAYER_NOT_SPATIAL');
    await assert.rejects(computeFeatureMaps(session, { layer: 'nope' }), (e: unknown) => e instanceof CamLensError && e.code === 'UNKNOWN_LAYER');
    await assert.rejects(computeFeatureMaps(session, { layer: 'res', classIndex: 5 }), (e: unknown) => e instanceof CamLensError && e.code === 'UNKNOWN_CLASS');
    await assert.rejects(computeFeatureMaps(session, { layer: 'res', maxChannels: 0 }), (e: unknown) => e instanceof CamLensError && e.code === 'BAD_ARGUMENT');
  });

  it('stops when its signal is aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(computeFeatureMaps(session, { layer: 'res', classIndex: 0, signal: ac.signal }), (e: unknown) => e instanceof CamLensError && e.code === 'CANCELLED');
  });

  it('leaves no tensor behind beyond what the session caches', async () => {
    await computeFeatureMaps(session, { layer: 'res', classIndex: 3 });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await computeFeatureMaps(session, { layer: 'res', classIndex: 3, maxChannels: 4 });
    assert.strictEqual(tf.memory().numTensors, before);
    const s2 = new ImageSession(model, input());
    const base = tf.memory().numTensors;
    await computeFeatureMaps(s2, { layer: 'dw', classIndex: 0 });
    s2.dispose();
    assert.strictEqual(tf.memory().numTensors, base - 1, 'disposing the session frees everything, its input included');
  });
});
