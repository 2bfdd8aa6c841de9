import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { CamLensError } from '../../src/extension/engine/errors';
import { readModelJson } from '../../src/extension/engine/loader';
import { labelOf, loadModel, resolveClass } from '../../src/extension/engine/model';
import { readMetadata } from '../../src/extension/engine/metadata';
import { GraphDefBuilder } from '../helpers/graphDef';
import { tempDir, writeModel } from '../helpers/modelFiles';

function tinyModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [8, 8, 3] });
  const conv = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv' }).apply(input) as tfl.SymbolicTensor;
  const gap = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(conv) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'fc' }).apply(gap) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

async function rejects(p: Promise<unknown> | (() => unknown), code: string, pattern: RegExp): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof CamLensError, `expected a CamLensError, got ${e}`);
    assert.strictEqual(e.code, code, e.message);
    assert.match(e.message, pattern);
    return;
  }
  assert.fail(`expected ${code}`);
}

describe('model loader', () => {
  let good: string;
  before(async () => {
    await initBackend('cpu');
    const m = tinyModel();
    good = (await writeModel(m, path.join(tempDir(), 'good'), { labels: ['a', 'b', 'c'], inputSize: [8, 8], preprocess: '[0,1]' })).dir;
    m.dispose();
  });

  function copyGood(): string {
    const dir = path.join(tempDir(), 'm');
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(good)) fs.copyFileSync(path.join(good, f), path.join(dir, f));
    return dir;
  }
  function editJson(dir: string, edit: (j: any) => void): void {
    const f = path.join(dir, 'model.json');
    const j = JSON.parse(fs.readFileSync(f, 'utf8'));
    edit(j);
    fs.writeFileSync(f, JSON.stringify(j));
  }

  it('loads a model written to disk and reads its cam-lens.json', async () => {
    const m = await loadModel(path.join(good, 'model.json'));
    try {
      assert.deepStrictEqual(m.metadata.labels, ['a', 'b', 'c']);
      assert.strictEqual(m.metadata.source, 'cam-lens.json');
      assert.strictEqual(m.inputHeight, 8);
      assert.strictEqual(m.numOutputs, 3);
      assert.strictEqual(resolveClass(m, 'B'), 1);
      assert.strictEqual(resolveClass(m, '2'), 2);
      await rejects(() => resolveClass(m, 'zebra'), 'UNKNOWN_CLASS', /zebra/);
      await rejects(() => resolveClass(m, 7), 'UNKNOWN_CLASS', /out of range.*3 classes/);
    } finally {
      m.dispose();
    }
  });

  it('refuses a weight path outside the model folder', async () => {
    const dir = copyGood();
    editJson(dir, (j) => { j.weightsManifest[0].paths = ['../../etc/passwd']; });
    await rejects(() => readModelJson(path.join(dir, 'model.json')), 'WEIGHT_PATH_ESCAPE', /outside the model folder/);
    editJson(dir, (j) => { j.weightsManifest[0].paths = ['/etc/passwd']; });
    await rejects(() => readModelJson(path.join(dir, 'model.json')), 'WEIGHT_PATH_ESCAPE', /relative to the model folder/);
  });

  it('refuses a weight file that is a symlink leading out of the model folder', async () => {
    const dir = copyGood();
    const outside = path.join(tempDir(), 'secret.bin');
    fs.copyFileSync(path.join(dir, 'weights.bin'), outside);
    fs.unlinkSync(path.join(dir, 'weights.bin'));
    fs.symlinkSync(outside, path.join(dir, 'weights.bin'));
    await rejects(() => readModelJson(path.join(dir, 'model.json')), 'WEIGHT_PATH_ESCAPE', /links to/);
  });

  it('reports a missing shard by name', async () => {
    const dir = copyGood();
    fs.unlinkSync(path.join(dir, 'weights.bin'));
    await rejects(loadModel(path.join(dir, 'model.json')), 'SHARD_MISSING', /weights\.bin.*missing/);
  });

  it('reports a truncated shard with the byte counts', async () => {
    const dir = copyGood();
    const f = path.join(dir, 'weights.bin');
    const buf = fs.readFileSync(f);
    fs.writeFileSync(f, buf.subarray(0, buf.length - 10));
    await rejects(loadModel(path.join(dir, 'model.json')), 'SHARD_SIZE_MISMATCH', new RegExp(`holds ${buf.length - 10} bytes but .* need ${buf.length}.*truncated`));
  });

  it('reports a manifest that does not match the topology', async () => {
    const dir = copyGood();
    editJson(dir, (j) => {
      const w = j.weightsManifest[0].weights;
      const i = w.findIndex((x: any) => x.name.startsWith('fc/kernel'));
      w[i].name = 'fc/not_a_kernel';
    });
    await rejects(loadModel(path.join(dir, 'model.json')), 'MANIFEST_MISMATCH', /do not match its layers/);
  });

  it('reports a file that is not JSON', async () => {
    const dir = copyGood();
    fs.writeFileSync(path.join(dir, 'model.json'), 'PK\u0003\u0004 this is a zip, not JSON');
    await rejects(loadModel(path.join(dir, 'model.json')), 'MODEL_INVALID', /not valid JSON/);
  });

  it('reports JSON that is not a model', async () => {
    const dir = copyGood();
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ hello: 'world' }));
    await rejects(loadModel(path.join(dir, 'model.json')), 'MODEL_INVALID', /no "modelTopology"/);
  });

  it('reports a missing model.json', async () => {
    await rejects(loadModel(path.join(tempDir(), 'nope', 'model.json')), 'FILE_NOT_FOUND', /model file not found/);
  });

  it('reports labels that do not match the number of outputs', async () => {
    const dir = copyGood();
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ labels: ['a', 'b'] }));
    await rejects(loadModel(path.join(dir, 'model.json')), 'METADATA_INVALID', /3 outputs but .* lists 2 labels/);
  });

  it('reads Teachable Machine metadata.json and labels.txt', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify({ labels: ['x', 'y'], imageSize: 224, modelName: 'tm' }));
    const tm = readMetadata(dir);
    assert.deepStrictEqual([tm.labels, tm.inputSize, tm.preprocess, tm.source], [['x', 'y'], [224, 224], '[-1,1]', 'metadata.json']);
    const dir2 = tempDir();
    fs.writeFileSync(path.join(dir2, 'labels.txt'), 'cat\ndog\n');
    const lt = readMetadata(dir2);
    assert.deepStrictEqual([lt.labels, lt.source, lt.preprocessAssumed], [['cat', 'dog'], 'labels.txt', true]);
  });

  it('rejects a cam-lens.json with an unknown preprocessing preset', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ preprocess: 'whatever' }));
    await rejects(() => readMetadata(dir), 'METADATA_INVALID', /"preprocess" is "whatever"/);
  });

  it('reads labelOffset from cam-lens.json: class i is output i + labelOffset', async () => {
    const dir = copyGood();
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ labels: ['b', 'c'], labelOffset: 1 }));
    const m = await loadModel(path.join(dir, 'model.json'));
    try {
      assert.strictEqual(m.metadata.labelOffset, 1);
      assert.strictEqual(resolveClass(m, 'b'), 1);
      assert.strictEqual(resolveClass(m, 1), 2);
      assert.deepStrictEqual([labelOf(m, 0), labelOf(m, 2)], ['background', 'c']);
      await rejects(() => resolveClass(m, 2), 'UNKNOWN_CLASS', /out of range.*2 classes/);
    } finally {
      m.dispose();
    }
  });

  it('rejects a labelOffset that is not a non-negative integer, in cam-lens.json and as an override', async () => {
    const dir = copyGood();
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ labelOffset: '1' }));
    await rejects(loadModel(path.join(dir, 'model.json')), 'METADATA_INVALID', /"labelOffset" must be a non-negative integer, got "1"/);
    await rejects(() => readMetadata(good, { labelOffset: 0.5 }), 'METADATA_INVALID', /labelOffset must be a non-negative integer, got 0.5/);
    await rejects(loadModel(path.join(good, 'model.json'), { overrides: { labelOffset: 3 } }), 'METADATA_INVALID', /labelOffset 3 leaves no classes/);
  });

  describe('GraphModels go through the same IO handler', () => {
    function graphDir(edit?: (g: GraphDefBuilder) => void): string {
      const g = new GraphDefBuilder();
      g.placeholder('images', [-1, 4, 4, 3]);
      g.const('k', [1, 1, 3, 2], [1, 0, 0, 1, 1, 1]);
      g.conv('conv', 'images', 'k');
      g.mean('pool', 'conv', [1, 2], false);
      edit?.(g);
      const dir = path.join(tempDir(), 'graph');
      g.write(dir);
      return dir;
    }

    it('loads a GraphModel written to disk', async () => {
      const m = await loadModel(path.join(graphDir(), 'model.json'));
      try {
        assert.deepStrictEqual([m.format, m.numOutputs, m.inputHeight, m.inputChannels], ['graph-model', 2, 4, 3]);
      } finally {
        m.dispose();
      }
    });

    it('refuses a GraphModel weight path outside the model folder, and a truncated shard', async () => {
      const dir = graphDir();
      editJson(dir, (j) => { j.weightsManifest[0].paths = ['../outside.bin']; });
      await rejects(loadModel(path.join(dir, 'model.json')), 'WEIGHT_PATH_ESCAPE', /outside the model folder/);
      const dir2 = graphDir();
      fs.writeFileSync(path.join(dir2, 'group1-shard1of1.bin'), Buffer.alloc(8));
      await rejects(loadModel(path.join(dir2, 'model.json')), 'SHARD_SIZE_MISMATCH', /holds 8 bytes/);
    });

    it('refuses a GraphModel whose nodes read undefined nodes, or that is not an image classifier', async () => {
      const dir = graphDir();
      editJson(dir, (j) => { j.modelTopology.node.find((n: any) => n.name === 'pool').input[0] = 'nowhere'; });
      await rejects(loadModel(path.join(dir, 'model.json')), 'MODEL_INVALID', /node "pool" reads "nowhere", which the topology does not define/);
      const two = graphDir((g) => g.op('extra', 'Relu', ['images']));
      await rejects(loadModel(path.join(two, 'model.json')), 'UNSUPPORTED_MODEL', /1 inputs and 2 outputs/);
      const odd = graphDir((g) => g.op('odd', 'NoSuchOp', ['pool']));
      await rejects(loadModel(path.join(odd, 'model.json')), 'UNSUPPORTED_MODEL', /cannot run this GraphModel: Unknown op 'NoSuchOp'/);
    });
  });

  it('leaks no tensors when a load fails', async () => {
    const dir = copyGood();
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ labels: ['a'] }));
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await loadModel(path.join(dir, 'model.json')).catch(() => undefined);
    assert.strictEqual(tf.memory().numTensors, before);
  });
});
