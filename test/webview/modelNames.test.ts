/**
 * One model, one name, one picker entry (panels/modelNames.ts), in plain Node: the name every panel, the status
 * bar and the picker show, and the picker's entries keyed by the model's resolved path.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { modelDisplayName, modelKey, modelPickEntries } from '../../src/extension/panels/modelNames';
import { tempDir } from '../helpers/modelFiles';
import { ROOT } from '../helpers/build';

const DEMO = path.join(ROOT, 'models', 'demo', 'model.json');

/** A folder `name` holding a model.json and the given metadata files. */
function modelDir(root: string, name: string, files: Record<string, string> = {}): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'model.json'), '{}');
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  return path.join(dir, 'model.json');
}

describe('model names and the model picker', () => {
  it('names a model after its metadata, else after its folder', () => {
    assert.equal(modelDisplayName(DEMO), 'CAM Lens demo shapes', 'the bundled demo model, by the name in its cam-lens.json');
    const root = tempDir('cam-lens-names-');
    assert.equal(modelDisplayName(modelDir(root, 'plain')), 'plain');
    assert.equal(modelDisplayName(modelDir(root, 'ours', { 'cam-lens.json': '{"name": "  Pets v2 ", "labels": ["cat", "dog"]}' })), 'Pets v2');
    assert.equal(modelDisplayName(modelDir(root, 'tm', { 'metadata.json': '{"modelName": "my-tm-model", "labels": ["a", "b"]}' })), 'my-tm-model');
    assert.equal(modelDisplayName(modelDir(root, 'broken', { 'cam-lens.json': '{"name": ' })), 'broken', 'unreadable metadata: the folder name');
    assert.equal(modelDisplayName(modelDir(root, 'unnamed', { 'cam-lens.json': '{"name": ""}' })), 'unnamed');
  });

  it('names a single-file model (ONNX, Keras) after its own metadata file, else after the file, not the folder', () => {
    const root = tempDir('cam-lens-names-');
    const dir = path.join(root, 'exports');
    fs.mkdirSync(dir);
    for (const f of ['resnet18.onnx', 'gender.hdf5', 'cnn.keras']) fs.writeFileSync(path.join(dir, f), 'x');
    assert.equal(modelDisplayName(path.join(dir, 'resnet18.onnx')), 'resnet18');
    assert.equal(modelDisplayName(path.join(dir, 'cnn.keras')), 'cnn');
    fs.writeFileSync(path.join(dir, 'gender.hdf5.cam-lens.json'), '{"name": "Gender mini-Xception"}');
    assert.equal(modelDisplayName(path.join(dir, 'gender.hdf5')), 'Gender mini-Xception', '<file>.cam-lens.json names its file');
    assert.equal(modelDisplayName(path.join(dir, 'resnet18.onnx')), 'resnet18', "another file's metadata does not name it");
  });

  it('lists the bundled demo model once, under its one name, when the workspace holds it too (directly or through a link)', () => {
    const root = tempDir('cam-lens-picker-');
    const other = modelDir(root, 'pets', { 'cam-lens.json': '{"name": "Pets v2"}' });
    const link = path.join(root, 'linked-demo');
    fs.symlinkSync(path.dirname(DEMO), link, 'dir');
    const found = [DEMO, path.join(link, 'model.json'), other, path.join(root, 'pets', '..', 'pets', 'model.json')];
    const entries = modelPickEntries(found, DEMO, other, (p) => path.relative(root, p));
    assert.deepEqual(entries.map((e) => [e.label, e.description, e.detail]), [
      ['CAM Lens demo shapes', 'bundled demo model', undefined],
      ['Pets v2', path.join('pets', 'model.json'), 'active'],
    ]);
    // Not in the workspace: still offered, at the end.
    assert.deepEqual(modelPickEntries([other], DEMO, undefined, (p) => p).map((e) => e.label), ['Pets v2', 'CAM Lens demo shapes']);
  });

  it('keys models by their real path, case-folded where the file system ignores case', () => {
    assert.equal(modelKey('/No/Such/Model.json', 'linux'), '/No/Such/Model.json');
    assert.equal(modelKey('/No/Such/Model.json', 'darwin'), '/no/such/model.json');
    assert.equal(modelKey(path.join(path.dirname(DEMO), '.', 'model.json')), modelKey(DEMO));
  });
});
