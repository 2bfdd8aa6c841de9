import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initBackend } from '../../src/extension/engine/backend';
import { CamLensError } from '../../src/extension/engine/errors';
import { readModelJson } from '../../src/extension/engine/loader';
import { labelOf, loadModel, resolveClass } from '../../src/extension/engine/model';
import { closestLabels, editDistance, readMetadata } from '../../src/extension/engine/metadata';
import { sniffModelFile } from '../../src/extension/engine/modelFormat';
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
    await rejects(() => readModelJson(path.join(dir, 'model.json')), 'WEIGHT_PATH_ESCAPE', /an absolute path, outside the model folder/);
  });

  it('refuses a weight path into a sibling folder whose name starts with the model folder\'s (paths.test.ts has every escape)', async () => {
    const dir = copyGood(); // <tmp>/m
    const secret = `${dir}-secret`;
    fs.mkdirSync(secret);
    fs.copyFileSync(path.join(dir, 'weights.bin'), path.join(secret, 'w.bin'));
    editJson(dir, (j) => { j.weightsManifest[0].paths = ['../m-secret/w.bin']; });
    await rejects(() => readModelJson(path.join(dir, 'model.json')), 'WEIGHT_PATH_ESCAPE', /refusing weight file "\.\.\/m-secret\/w\.bin": it resolves to .*m-secret.w\.bin, outside the model folder/);
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

  it('reports a file that is not JSON on one line, without the file\'s bytes', async () => {
    const dir = copyGood();
    fs.writeFileSync(path.join(dir, 'model.json'), '{"modelTopology":\n\u0001\u0002\n garbage');
    await rejects(loadModel(path.join(dir, 'model.json')), 'MODEL_INVALID', /^model\.json is not valid JSON \(.*\)$/);
    const e = await loadModel(path.join(dir, 'model.json')).catch((x: Error) => x);
    assert.ok(e instanceof Error && [...e.message].every((c) => c.charCodeAt(0) >= 0x20), `no control characters: ${JSON.stringify((e as Error).message)}`);
    fs.writeFileSync(path.join(dir, 'model.json'), Buffer.from([0x12, 0x00, 0xff, 0xfe, 0x0a, 0x41, 0x42, 0x43, 0x0a]));
    await rejects(loadModel(path.join(dir, 'model.json')), 'MODEL_INVALID', /^model\.json is a binary file of unknown format \(it starts with 12 00 ff fe 0a 41 42 43\), not a TensorFlow\.js model\.json$/);
  });

  describe('names the format of a model file CAM Lens does not read', () => {
    const zipEntry = (name: string) => {
      const h = Buffer.alloc(30 + name.length + 16);
      h.write('PK\u0003\u0004', 0, 'latin1');
      h.writeUInt16LE(name.length, 26);
      h.write(name, 30, 'latin1');
      return h;
    };
    const cases: Array<[string, string, Buffer, RegExp]> = [
      ['ONNX', 'model.onnx', Buffer.from([0x08, 0x07, 0x12, 0x07, 0x70, 0x79, 0x74, 0x6f, 0x72, 0x63, 0x68, 0x00, 0x01]), /^model\.onnx is not a readable ONNX model/],
      ['Keras HDF5', 'model.h5', Buffer.concat([Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(64, 0)]), /^model\.h5 is a Keras HDF5 model;/],
      ['Keras HDF5 under another name', 'weights.hdf5', Buffer.concat([Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(8, 0)]), /^weights\.hdf5 is a Keras HDF5 model;/],
      ['Keras 3', 'model.keras', zipEntry('metadata.json'), /^model\.keras is a Keras 3 model \(\.keras zip\);/],
      ['a SavedModel graph', 'saved_model.pb', Buffer.from([0x08, 0x01, 0x12, 0x80, 0x01, 0x0a, 0x00]), /^saved_model\.pb is a TensorFlow protobuf graph \(SavedModel or frozen graph\), which CAM Lens cannot open$/],
      ['TFLite', 'model.tflite', Buffer.from('\u001c\u0000\u0000\u0000TFL3\u0000\u0000\u0000\u0000', 'latin1'), /^model\.tflite is a TensorFlow Lite model, which CAM Lens cannot open$/],
      ['TFLite by its identifier alone', 'model.bin', Buffer.from('\u001c\u0000\u0000\u0000TFL3\u0000\u0000', 'latin1'), /^model\.bin is a TensorFlow Lite model, which CAM Lens cannot open$/],
      ['a PyTorch zip checkpoint', 'model.pt', zipEntry('model/data.pkl'), /^model\.pt is a PyTorch checkpoint \(a pickle, which CAM Lens never unpickles\), which CAM Lens cannot open$/],
      ['a PyTorch zip checkpoint named .json', 'model.json', zipEntry('archive/data.pkl'), /^model\.json is a PyTorch checkpoint/],
      ['a legacy PyTorch pickle', 'model.pth', Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20]), /^model\.pth is a PyTorch checkpoint/],
      ['a zipped download', 'model.json', zipEntry('model.json'), /^model\.json is a zip archive, which CAM Lens cannot open$/],
    ];
    // Keras and ONNX files are read directly since #12: their damaged forms are tested in test/formats/.
    for (const [what, name, bytes, pattern] of cases.filter(([, n]) => !/\.(h5|hdf5|keras)$/.test(n))) {
      it(`${what} (${name})`, async () => {
        const file = path.join(tempDir(), name);
        fs.writeFileSync(file, bytes);
        try {
          await loadModel(file);
          assert.fail('expected a refusal');
        } catch (e) {
          assert.ok(e instanceof CamLensError, String(e));
          assert.match(e.message, pattern);
          assert.ok(!/[\n\r]/.test(e.message + (e.hint ?? '')), 'one line');
          if (name.endsWith('.onnx')) return; // read as ONNX: a damaged one (test/formats/onnx.test.ts)
          assert.strictEqual(e.code, 'UNSUPPORTED_MODEL', e.message);
          assert.ok(e.hint && e.hint.length > 10, 'says what to do');
        }
      });
    }

    it('sniffModelFile gives the id the format readers dispatch on', () => {
      const dir = tempDir();
      const ids = cases.map(([, name, bytes]) => {
        const f = path.join(dir, name);
        fs.writeFileSync(f, bytes);
        return sniffModelFile(f).id;
      });
      assert.deepStrictEqual(ids, ['onnx', 'keras-h5', 'keras-h5', 'keras-v3', 'tf-protobuf', 'tflite', 'tflite', 'pytorch', 'pytorch', 'pytorch', 'zip']);
      assert.strictEqual(sniffModelFile(path.join(good, 'model.json')).id, 'json');
      fs.writeFileSync(path.join(dir, 'bom.json'), '\ufeff  \n [1]');
      assert.strictEqual(sniffModelFile(path.join(dir, 'bom.json')).id, 'json');
    });
  });

  describe('a folder given for the model file', () => {
    it('names the model.json in it', async () => {
      await rejects(loadModel(good), 'MODEL_INVALID', new RegExp(`^${good.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is a folder, not a model file; it holds the model file model\\.json$`));
      try {
        await loadModel(good);
      } catch (e) {
        assert.strictEqual((e as CamLensError).hint, `choose ${path.join(good, 'model.json')}`);
      }
    });

    it('names the model files in it and its subfolders, with their formats, and not the metadata', async () => {
      const dir = tempDir();
      fs.mkdirSync(path.join(dir, 'tfjs'));
      for (const f of fs.readdirSync(good)) fs.copyFileSync(path.join(good, f), path.join(dir, 'tfjs', f));
      fs.writeFileSync(path.join(dir, 'best.onnx'), Buffer.from([0x08, 0x07]));
      fs.writeFileSync(path.join(dir, 'labels.json'), '["a","b"]');
      fs.writeFileSync(path.join(dir, 'notes.txt'), 'hi');
      await rejects(loadModel(dir), 'MODEL_INVALID', /is a folder, not a model file; it holds the model files tfjs\/model\.json, best\.onnx \(an ONNX model\)$/);
    });

    it('says where a folder holds no model file', async () => {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, 'cat.png'), 'x');
      await rejects(loadModel(dir), 'MODEL_INVALID', /is a folder, and no model file is in it or in its subfolders$/);
    });

    it('names a SavedModel folder as such', async () => {
      const dir = tempDir();
      fs.writeFileSync(path.join(dir, 'saved_model.pb'), Buffer.from([0x08, 0x01]));
      fs.mkdirSync(path.join(dir, 'variables'));
      await rejects(loadModel(dir), 'UNSUPPORTED_MODEL', /is a TensorFlow SavedModel folder, which CAM Lens cannot open$/);
    });
  });

  it('reports JSON that is not a model', async () => {
    const dir = copyGood();
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({ hello: 'world' }));
    await rejects(loadModel(path.join(dir, 'model.json')), 'MODEL_INVALID', /no "modelTopology"/);
  });

  it('reports a missing model.json', async () => {
    await rejects(loadModel(path.join(tempDir(), 'nope', 'model.json')), 'FILE_NOT_FOUND', /model file not found/);
  });

  it('reports labels that do not match the number of outputs, naming the file they came from', async () => {
    const dir = copyGood();
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ labels: ['a', 'b'] }));
    await rejects(loadModel(path.join(dir, 'model.json')), 'METADATA_INVALID', new RegExp(`3 outputs but ${path.join(dir, 'cam-lens.json')} lists 2 labels`));
    // A labels file given by the caller (CLI --class-names) over a model without metadata.
    fs.unlinkSync(path.join(dir, 'cam-lens.json'));
    const names = path.join(tempDir(), 'names.txt');
    fs.writeFileSync(names, 'a\nb\nc\nd\ne\nf\ng\n');
    await rejects(loadModel(path.join(dir, 'model.json'), { overrides: { labelsFile: names } }), 'METADATA_INVALID',
      new RegExp(`^the model has 3 outputs but ${names} lists 7 labels$`));
    assert.strictEqual(readMetadata(dir, { labelsFile: names }).labelsFile, names);
    assert.strictEqual(readMetadata(dir, { labels: ['x'] }).labelsFile, undefined);
  });

  it('answers an unknown class label with the closest labels, ImageNet synonyms included', async () => {
    const dir = copyGood();
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ labels: ['tabby, tabby cat', 'golden retriever', 'tiger cat'] }));
    const m = await loadModel(path.join(dir, 'model.json'));
    try {
      await rejects(() => resolveClass(m, 'golden retriver'), 'UNKNOWN_CLASS', /^no class labelled "golden retriver" among the model's 3 classes; closest: "golden retriever" \(1\)$/);
      await rejects(() => resolveClass(m, 'cat'), 'UNKNOWN_CLASS', /closest: "tabby, tabby cat" \(0\), "tiger cat" \(2\)$/);
      await rejects(() => resolveClass(m, 'tabby_cat'), 'UNKNOWN_CLASS', /closest: "tabby, tabby cat" \(0\)$/);
      // Nothing close among few classes: all of them.
      await rejects(() => resolveClass(m, 'xylophone'), 'UNKNOWN_CLASS', /; they are "tabby, tabby cat" \(0\), "golden retriever" \(1\), "tiger cat" \(2\)$/);
    } finally {
      m.dispose();
    }
  });

  it('closestLabels ranks typos, then labels holding the name as a word, then a few edits, and stops at five', () => {
    const labels = ['cock', 'hen', 'tabby, tabby cat', 'polecat', 'tiger cat', 'cab, taxi', 'Egyptian cat', 'Persian cat', 'Siamese cat', 'zebra'];
    assert.deepStrictEqual(closestLabels(labels, 'zebar').map((x) => x.label), ['zebra']);
    assert.deepStrictEqual(closestLabels(labels, 'cat').map((x) => x.index), [2, 4, 7, 8, 6]);
    assert.deepStrictEqual(closestLabels(labels, 'Polecat!').map((x) => x.label)[0], 'polecat');
    assert.deepStrictEqual(closestLabels(labels, 'qqqqqqqq'), []);
    assert.deepStrictEqual(closestLabels(['cam', 'gradcam', 'gradcam++'], 'Grad-CAM', 1).map((x) => x.label), ['gradcam']);
    assert.strictEqual(editDistance('bananna', 'banana'), 1);
    assert.strictEqual(editDistance('tigre', 'tiger'), 1);
    assert.strictEqual(editDistance('', 'abc'), 3);
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
      // A second output that is no classifier (an image-shaped Relu) is listed, and the classifier explained (#12 item 4).
      const two = graphDir((g) => g.op('extra', 'Relu', ['images']));
      const m = await loadModel(path.join(two, 'model.json'));
      try {
        assert.strictEqual(m.outputs.length, 2);
        assert.notStrictEqual(m.output, 'extra');
      } finally {
        m.dispose();
      }
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
