/**
 * The triage panel's relabelling helpers (panels/triageRelabel.ts), in plain Node: the "Move to class…" picker's
 * entries, class folder names, names that overwrite nothing, label-file edits checked by reading the edited file
 * back with the dataset reader, and a moved row's scores and flag for its new label.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readLabelFileDataset } from '../../src/extension/engine/scan/dataset';
import {
  classFolderFor,
  csvLabelEdits,
  freeName,
  jsonLabelEdits,
  moveChoices,
  movePlaceholder,
  namesSample,
  probabilityVector,
  reflagMoved,
  safeFolderName,
  scoresFor,
  thresholdVector,
  type TextEdit,
} from '../../src/extension/panels/triageRelabel';
import type { TriageRow } from '../../src/shared/protocol';
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

  it('offers every other class in the picker with its probability, formatted as in the panels, most likely first', () => {
    const labels = ['circle', 'square', 'triangle', 'star', 'cross', 'ring'];
    const probs = Float32Array.from([0.0003, 0, 0.1, 0.0000004, 0.2, 0.6997]);
    const items = moveChoices(labels, probs, 5, 5);
    assert.deepEqual(items.map((i) => i.label), ['cross', 'triangle', 'circle', 'star', 'square'], 'all but the given class, most likely first');
    assert.deepEqual(items.map((i) => i.description), ['20.0%', '10.0%', '<0.1%', '<0.1%', '0.0%']);
    for (const it of items) assert.match(it.description, /^(<0\.1|\d+\.\d)%/, `"${it.description}" is a probability, not an index`);
    // The predicted class says so.
    assert.equal(moveChoices(labels, probs, 0, 4)[0].description, '70.0%', 'ring, most likely, given elsewhere');
    assert.equal(moveChoices(labels, probs, 0, 4).find((i) => i.index === 4)?.description, '20.0% · predicted');
  });

  it('tells how to undo a move with what undoes it (U, the notification), not Ctrl+Z', () => {
    for (const text of [movePlaceholder('folder', '/data'), movePlaceholder('csv', '/data/labels.csv')]) {
      assert.doesNotMatch(text, /Ctrl\+Z/i);
      assert.match(text, /\bU\b.*panel/);
      assert.match(text, /Undo in the notification/);
    }
    assert.match(movePlaceholder('csv', '/data/labels.csv'), /rewrite its label in labels\.csv/);
    assert.match(movePlaceholder('folder', '/data'), /move the image to that class folder/);
  });

  it('scores a sample for its new label: self-confidence, margin, score and the confident-learning flag', () => {
    // Given "cat" (0) at 5%, predicted "dog" (1) at 90%: flagged for cat (dog's threshold 0.8 is met), not for dog.
    const probs = Float32Array.from([0.05, 0.9, 0.05]);
    const thresholds = Float64Array.from([0.7, 0.8, Infinity]);
    assert.deepEqual(scoresFor(probs, 0, 'self_confidence', thresholds), { selfConfidence: 0.05000000074505806, normalizedMargin: 0.05000000074505806 - 0.8999999761581421, score: 0.05000000074505806, flagged: true });
    const asDog = scoresFor(probs, 1, 'self_confidence', thresholds);
    assert.equal(asDog.flagged, false);
    assert.ok(Math.abs(asDog.selfConfidence - 0.9) < 1e-6 && Math.abs(asDog.normalizedMargin - 0.85) < 1e-6 && asDog.score === asDog.selfConfidence);
    assert.equal(scoresFor(probs, 1, 'normalized_margin', thresholds).score, asDog.normalizedMargin);
    assert.equal(scoresFor(probs, 0, 'self_confidence', undefined).flagged, false, 'no thresholds yet: nothing flagged');
  });

  it('builds the probability and threshold vectors by label index', () => {
    const v = probabilityVector([{ index: 2, probability: 0.3 }, { index: 0, probability: 0.5 }, { index: 1, probability: 0.1 }, { index: 7, probability: 0.1 }], 3);
    assert.deepEqual(Array.from(v).map((x) => Number(x.toFixed(4))), [0.5556, 0.1111, 0.3333], 'renormalised over the labelled classes, as the scan does');
    assert.deepEqual(Array.from(thresholdVector(['a', 'b', 'c'], { a: 0.5, b: null })), [0.5, Infinity, Infinity]);
  });

  it('re-judges only moved rows with new thresholds, and reports the flags that changed', () => {
    const base = { path: 'x', imageUri: '', givenLabel: '', predictedIndex: 1, predictedLabel: '', top: [], selfConfidence: 0, normalizedMargin: 0, entropy: 0, score: 0 };
    const rows: TriageRow[] = [
      { ...base, seq: 0, givenIndex: 1, flagged: true, movedFrom: 'cat' },
      { ...base, seq: 1, givenIndex: 0, flagged: false, movedFrom: 'dog' },
      { ...base, seq: 2, givenIndex: 0, flagged: false },
    ];
    const probs = new Map([[0, Float32Array.from([0.1, 0.9])], [1, Float32Array.from([0.1, 0.9])], [2, Float32Array.from([0.1, 0.9])]]);
    const changed = reflagMoved(rows, (s) => probs.get(s), Float64Array.from([0.5, 0.8]));
    assert.deepEqual(changed, { on: [1], off: [0] });
    assert.deepEqual(rows.map((r) => r.flagged), [false, true, false], 'the unmoved row keeps the worker\'s verdict');
  });
});
