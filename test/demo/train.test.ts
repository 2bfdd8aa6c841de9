import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES, generateBatch } from '../../scripts/demo/generator';
import { DEMO_CAM_LAYER, batchToTensors, buildDemoModel, clutterAt, learningRateAt, toDeployModel, trainDemoModel } from '../../scripts/demo/train';
import { saveLayersModel, type CamLensMetadata } from '../../scripts/demo/saveModel';

/** A minimal read-only IO handler: model.json plus the shards its manifest names, from one folder. */
function folderHandler(dir: string): tf.io.IOHandler {
  return {
    load: async () => {
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
      const weightSpecs: tf.io.WeightsManifestEntry[] = [];
      const buffers: ArrayBuffer[] = [];
      for (const group of json.weightsManifest as tf.io.WeightsManifestConfig) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) {
          const bytes = fs.readFileSync(path.join(dir, p));
          buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
        }
      }
      return { modelTopology: json.modelTopology, format: json.format, weightSpecs, weightData: tf.io.CompositeArrayBuffer.join(buffers) };
    },
  };
}

const metadata: CamLensMetadata = {
  name: 'test', labels: [...CLASS_NAMES], inputSize: [IMAGE_SIZE, IMAGE_SIZE], channels: 3, preprocess: '[0,1]', labelOffset: 0,
};

describe('demo training', () => {
  let tmp: string;
  before(async () => {
    // wasm, as in the training script: the plain-JS cpu backend takes minutes for even a tiny epoch of this
    // model. The convolution gradients wasm lacks come from src/extension/engine/wasmKernels.ts.
    await initBackend('wasm');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cam-lens-train-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('builds a GAP -> dense softmax model with a 12x12 CAM layer', () => {
    const model = buildDemoModel(1);
    try {
      assert.deepStrictEqual(model.inputs[0].shape, [null, IMAGE_SIZE, IMAGE_SIZE, 3]);
      assert.deepStrictEqual(model.getLayer(DEMO_CAM_LAYER).outputShape, [null, 12, 12, 128]);
      const last = model.layers[model.layers.length - 1];
      assert.strictEqual(model.layers[model.layers.length - 2].getClassName(), 'GlobalAveragePooling2D');
      assert.strictEqual(last.getClassName(), 'Dense');
      assert.strictEqual((last.getConfig() as { activation: string }).activation, 'softmax');
      assert.deepStrictEqual(model.outputs[0].shape, [null, NUM_CLASSES]);
    } finally {
      model.dispose();
    }
  });

  it('initialises weights reproducibly from the seed', () => {
    const a = buildDemoModel(3);
    const b = buildDemoModel(3);
    const c = buildDemoModel(4);
    try {
      const wa = a.getWeights()[0].dataSync();
      assert.deepStrictEqual(wa, b.getWeights()[0].dataSync());
      assert.notDeepStrictEqual(wa, c.getWeights()[0].dataSync());
    } finally {
      [a, b, c].forEach((m) => m.dispose());
    }
  });

  it('warms the learning rate up, then decays it', () => {
    assert.ok(learningRateAt(0, 1000, 1) < 0.1);
    assert.ok(Math.abs(learningRateAt(30, 1000, 1) - 1) < 0.01);
    assert.ok(learningRateAt(999, 1000, 1) < 0.05);
  });

  it('ramps background clutter up over the curriculum fraction, then keeps it at 1', () => {
    assert.ok(clutterAt(0, 1000, 0.3) < 0.2);
    assert.ok(clutterAt(150, 1000, 0.3) > 0.4 && clutterAt(150, 1000, 0.3) < 0.7);
    assert.strictEqual(clutterAt(300, 1000, 0.3), 1);
    assert.strictEqual(clutterAt(0, 1000, 0), 1);
  });

  it('trains one tiny epoch per stage, saves the model and reloads it with identical predictions', async () => {
    const model = buildDemoModel(5, { inputSize: null });
    const before = model.getWeights().map((w) => w.dataSync().slice());
    const tensorsBefore = tf.memory().numTensors;
    const stages = [{ imageSize: 56, epochs: 1, trainSize: 4 }, { imageSize: IMAGE_SIZE, epochs: 1, trainSize: 8 }];
    const result = await trainDemoModel({ seed: 5, stages, valSize: 4, batchSize: 4, learningRate: 0.01, curriculum: 0.5 }, model);
    assert.deepStrictEqual(result.history.map((h) => h.imageSize), [56, IMAGE_SIZE]);
    const stats = result.history[1];
    assert.ok(Number.isFinite(stats.trainLoss) && stats.trainLoss > 0, `loss ${stats.trainLoss}`);
    assert.ok(stats.valAccuracy >= 0 && stats.valAccuracy <= 1);
    const after = model.getWeights().map((w) => w.dataSync());
    const changed = after.filter((w, i) => w.some((v, j) => v !== before[i][j])).length;
    // Every trainable weight moves; only BN moving statistics are non-trainable, and those move too.
    assert.ok(changed >= model.trainableWeights.length, `only ${changed} of ${after.length} weight tensors changed`);
    // Only the optimizer's slots (two Adam moments per trainable weight plus its step counters) remain.
    assert.ok(tf.memory().numTensors - tensorsBefore <= 2 * model.trainableWeights.length + 4,
      `${tf.memory().numTensors - tensorsBefore} tensors left behind by training`);

    const dir = path.join(tmp, 'model');
    const deploy = toDeployModel(model);
    assert.deepStrictEqual(deploy.inputs[0].shape, [null, IMAGE_SIZE, IMAGE_SIZE, 3]);
    const files = await saveLayersModel(deploy, dir, metadata, { shardBytes: 300_000 });
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
    assert.strictEqual(json.format, 'layers-model');
    assert.ok(json.modelTopology && json.weightsManifest[0].paths.length > 1, 'expected several shards at 300 kB');
    for (const p of json.weightsManifest[0].paths as string[]) {
      assert.ok(!p.includes('/') && !p.includes('\\'), `shard path ${p} is not relative to the folder`);
      assert.ok(files.includes(path.join(dir, p)));
    }
    assert.deepStrictEqual(JSON.parse(fs.readFileSync(path.join(dir, 'cam-lens.json'), 'utf8')), metadata);

    const loaded = await tfl.loadLayersModel(folderHandler(dir));
    const { x, y } = batchToTensors(generateBatch(77, 0, 3));
    try {
      const p0 = model.predict(x) as tf.Tensor;
      const p1 = loaded.predict(x) as tf.Tensor;
      const diff = tf.max(tf.abs(tf.sub(p0, p1)));
      assert.ok(diff.dataSync()[0] < 1e-6, `reloaded predictions differ by ${diff.dataSync()[0]}`);
      assert.deepStrictEqual(loaded.layers.map((l) => l.name), model.layers.map((l) => l.name));
      assert.deepStrictEqual(loaded.inputs[0].shape, [null, IMAGE_SIZE, IMAGE_SIZE, 3]);
      tf.dispose([p0, p1, diff]);
    } finally {
      tf.dispose([x, y]);
      model.dispose();
      deploy.dispose();
      loaded.dispose();
    }
  });

  it('keeps the committed models/demo loadable, with the metadata the script writes', async function () {
    const dir = path.join(__dirname, '..', '..', 'models', 'demo');
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'cam-lens.json'), 'utf8'));
    assert.deepStrictEqual({ ...meta, trainedBy: undefined }, {
      name: 'CAM Lens demo shapes', labels: [...CLASS_NAMES], inputSize: [IMAGE_SIZE, IMAGE_SIZE], channels: 3, preprocess: '[0,1]',
      labelOffset: 0, trainedBy: undefined,
    });
    assert.match(meta.trainedBy, /^npm run train:demo -- --seed \d+ /);
    const model = await tfl.loadLayersModel(folderHandler(dir));
    try {
      assert.deepStrictEqual(model.inputs[0].shape, [null, IMAGE_SIZE, IMAGE_SIZE, 3]);
      assert.deepStrictEqual(model.getLayer(DEMO_CAM_LAYER).outputShape, [null, 12, 12, 128]);
    } finally {
      model.dispose();
    }
  });
});
