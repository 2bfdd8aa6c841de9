/**
 * The triage panel's relabelling helpers (panels/triageRelabel.ts), in plain Node: class folder names, names that
 * overwrite nothing, and label-file edits checked by reading the edited file back with the dataset reader.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readLabelFileDataset } from '../../src/extension/engine/scan/dataset';
import { classFolderFor, csvLabelEdits, freeName, jsonLabelEdits, namesSample, safeFolderName, type TextEdit } from '../../src/extension/panels/triageRelabel';
import { tempDir } from '../helpers/modelFiles';

const LABELS = ['tabby, tabby cat', 'golden retriever', 'red fox', 'owl'];

function apply(text: string, edits: TextEdit[]): string {
  let out = text;
  for (const e of [...edits].sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

/** A folder with empty .png files (the label-file reader checks that files exist, it does not decode them). */
function dataset(files: string[]): string {
  const root = tempDir('cam-lens-relabel-');
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), '');
  }
  return root;
}

const givenOf = (file: string, rel: string) => readLabelFileDataset(file, LABELS).samples.find((s) => s.relPath === rel)?.givenIndex;

describe('triage relabel helpers', () => {
  it('makes label text a folder name that every filesystem accepts', () => {
    assert.equal(safeFolderName('tabby, tabby cat', 0), 'tabby, tabby cat');
    assert.equal(safeFolderName('AC/DC: live?', 1), 'AC_DC_ live_');
    assert.equal(safeFolderName('con', 2), 'con_');
    assert.equal(safeFolderName('  ... ', 3), 'class_3');
    assert.equal(safeFolderName('fox.', 4), 'fox');
  });

  it('moves into an existing folder the class matcher maps to the class, else a new folder named after the label', () => {
    assert.equal(classFolderFor(['Golden_Retriever', 'owl', '.cam-lens'], LABELS, 1), 'Golden_Retriever');
    assert.equal(classFolderFor(['tabby'], LABELS, 0), 'tabby', 'an ImageNet synonym names the class too');
    assert.equal(classFolderFor(['owl'], LABELS, 2), 'red fox');
  });

  it('never picks a taken name', () => {
    const taken = new Set(['cat.png', 'cat-1.png']);
    assert.equal(freeName('dog.png', (n) => taken.has(n)), 'dog.png');
    assert.equal(freeName('cat.png', (n) => taken.has(n)), 'cat-2.png');
    assert.equal(freeName('README', (n) => n === 'README'), 'README-1');
  });

  it('rewrites the label cell of the sample\'s CSV rows only, keeping quoting, other columns and CRLF', () => {
    const root = dataset(['a/1.png', 'a/2.png', 'b/3.png']);
    const file = path.join(root, 'labels.csv');
    const text = 'path,label,source\r\n./a/1.png,owl,cam1\r\n"a/2.png", "red fox" ,cam2\r\nb/3.png,owl\r\n';
    fs.writeFileSync(file, text);
    const edits = csvLabelEdits(text, (w) => namesSample(root, w, 'a/2.png'), 'tabby, tabby cat');
    assert.equal(edits.length, 1);
    const out = apply(text, edits);
    assert.equal(out, 'path,label,source\r\n./a/1.png,owl,cam1\r\n"a/2.png","tabby, tabby cat",cam2\r\nb/3.png,owl\r\n');
    fs.writeFileSync(file, out);
    assert.deepEqual([givenOf(file, 'a/1.png'), givenOf(file, 'a/2.png'), givenOf(file, 'b/3.png')], [3, 0, 3]);
    // "./a/1.png" names a/1.png as well.
    assert.equal(apply(out, csvLabelEdits(out, (w) => namesSample(root, w, 'a/1.png'), 'golden retriever')).split('\r\n')[1], './a/1.png,golden retriever,cam1');
  });

  it('rewrites the label of the sample in both JSON forms, and refuses text that is no longer JSON', () => {
    const root = dataset(['x/1.png', 'x/2.png']);
    const file = path.join(root, 'labels.json');
    const list = '[\n  { "label": "owl", "path": "x/1.png" },\n  {"path": "x\\/2.png", "label": "red fox", "note": "a \\"quote\\""}\n]\n';
    const out = apply(list, jsonLabelEdits(list, (w) => namesSample(root, w, 'x/2.png'), 'golden retriever'));
    assert.deepEqual(JSON.parse(out), [{ label: 'owl', path: 'x/1.png' }, { path: 'x/2.png', label: 'golden retriever', note: 'a "quote"' }]);
    fs.writeFileSync(file, out);
    assert.equal(givenOf(file, 'x/2.png'), 1);

    const map = '{"x/1.png": "owl", "x/2.png": "owl"}';
    const out2 = apply(map, jsonLabelEdits(map, (w) => namesSample(root, w, 'x/1.png'), 'tabby, tabby cat'));
    assert.equal(out2, '{"x/1.png": "tabby, tabby cat", "x/2.png": "owl"}');
    assert.throws(() => jsonLabelEdits('{"x/1.png": "owl",', () => true, 'owl'), SyntaxError);
    assert.deepEqual(jsonLabelEdits(map, () => false, 'owl'), []);
  });
});
