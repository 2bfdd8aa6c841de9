import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { classThresholds, confidentClass, entropy, isFlagged, normalizedMargin, rankOrder, selfConfidence } from '../../src/extension/engine/scan/ranking';
import { makeClassMatcher, readDataset } from '../../src/extension/engine/scan/dataset';
import { tempDir } from '../helpers/modelFiles';

const p = (...xs: number[]) => Float32Array.from(xs);

describe('label-quality scores', () => {
  it('computes self-confidence, normalized margin and entropy', () => {
    const probs = p(0.1, 0.7, 0.2);
    assert.ok(Math.abs(selfConfidence(probs, 2) - 0.2) < 1e-7);
    assert.ok(Math.abs(normalizedMargin(probs, 2) - (0.2 - 0.7)) < 1e-7);
    assert.ok(Math.abs(normalizedMargin(probs, 1) - (0.7 - 0.2)) < 1e-7);
    const h = -(0.1 * Math.log(0.1) + 0.7 * Math.log(0.7) + 0.2 * Math.log(0.2));
    assert.ok(Math.abs(entropy(probs) - h) < 1e-6);
  });

  it('sets each class threshold to the average self-confidence of the samples given that class', () => {
    const samples = [
      { givenIndex: 0, probs: p(0.9, 0.1, 0) },
      { givenIndex: 0, probs: p(0.5, 0.5, 0) },
      { givenIndex: 1, probs: p(0.2, 0.8, 0) },
    ];
    const t = classThresholds(samples, 3);
    assert.ok(Math.abs(t[0] - 0.7) < 1e-7);
    assert.ok(Math.abs(t[1] - 0.8) < 1e-7);
    assert.strictEqual(t[2], Infinity);
  });

  it('caps a saturated threshold at 0.95, so a 99.5% vote for a class whose samples average 99.6% still counts', () => {
    const crosses = [0.999, 0.998, 0.999, 0.99, 0.997, 0.995, 0.999, 0.991].map((c) => ({ givenIndex: 1, probs: p(1 - c, c) }));
    const t = classThresholds([...crosses, { givenIndex: 0, probs: p(0.9, 0.1) }], 2);
    assert.strictEqual(t[1], 0.95, 'mean 0.996, capped');
    assert.ok(Math.abs(t[0] - 0.9) < 1e-7, 'below the cap a class keeps its own mean');
    // Given "star" (0), the model says "cross" (1) with 0.995: flagged; the paper's uncapped 0.996 would miss it.
    assert.strictEqual(isFlagged({ givenIndex: 0, probs: p(0.005, 0.995) }, t), true);
    assert.strictEqual(isFlagged({ givenIndex: 0, probs: p(0.005, 0.995) }, Float64Array.from([0.9, 0.996])), false);
    // A weaker vote for the other class stays unflagged.
    assert.strictEqual(isFlagged({ givenIndex: 0, probs: p(0.07, 0.93) }, t), false);
  });

  it('flags a sample when another class is above its threshold and the argmax of those', () => {
    const t = Float64Array.from([0.7, 0.6, 0.5]);
    // class 1 above its threshold and the only one: flagged when given 0
    assert.strictEqual(confidentClass(p(0.3, 0.65, 0.05), t), 1);
    assert.strictEqual(isFlagged({ givenIndex: 0, probs: p(0.3, 0.65, 0.05) }, t), true);
    // given class above threshold and larger: not flagged
    assert.strictEqual(isFlagged({ givenIndex: 0, probs: p(0.75, 0.2, 0.05) }, t), false);
    // two above threshold: the larger of them is the confident class; flagged only when it is not the given one
    assert.strictEqual(isFlagged({ givenIndex: 2, probs: p(0.0, 0.45, 0.55) }, Float64Array.from([0.7, 0.4, 0.5])), false);
    assert.strictEqual(isFlagged({ givenIndex: 1, probs: p(0.0, 0.45, 0.55) }, Float64Array.from([0.7, 0.4, 0.5])), true);
    // nothing above any threshold: not flagged (the model is unsure, not confident of another label)
    assert.strictEqual(isFlagged({ givenIndex: 0, probs: p(0.4, 0.35, 0.25) }, t), false);
  });

  it('counts a probability exactly at its class threshold as confident (p_j >= t_j, as the paper)', () => {
    // 0.75 and 0.25 are exact in float32 and float64, so the comparison meets the boundary itself.
    const t = Float64Array.from([0.9, 0.75]);
    assert.strictEqual(confidentClass(p(0.25, 0.75), t), 1);
    assert.strictEqual(isFlagged({ givenIndex: 0, probs: p(0.25, 0.75) }, t), true);
    // Just below the threshold it is not.
    assert.strictEqual(isFlagged({ givenIndex: 0, probs: p(0.25, 0.75) }, Float64Array.from([0.9, 0.75 + 1e-9])), false);
    // A threshold met by the mean itself: the class's own sample at the mean is confident of its label.
    const thresholds = classThresholds([{ givenIndex: 1, probs: p(0.25, 0.75) }, { givenIndex: 1, probs: p(0.25, 0.75) }], 2);
    assert.strictEqual(thresholds[1], 0.75);
    assert.strictEqual(confidentClass(p(0.25, 0.75), thresholds), 1);
  });

  it('ranks the most doubtful sample first', () => {
    const s = [
      { givenIndex: 0, probs: p(0.9, 0.1) },
      { givenIndex: 0, probs: p(0.2, 0.8) },
      { givenIndex: 1, probs: p(0.6, 0.4) },
    ];
    assert.deepStrictEqual(rankOrder(s, 'self_confidence'), [1, 2, 0]);
    assert.deepStrictEqual(rankOrder(s, 'normalized_margin'), [1, 2, 0]);
  });
});

describe('datasets', () => {
  const labels = ['tabby, tabby cat', 'Golden Retriever', 'traffic_light'];

  it('matches class names exactly, then ignoring case and separators, then by synonym', () => {
    const m = makeClassMatcher(labels);
    assert.strictEqual(m('Golden Retriever'), 1);
    assert.strictEqual(m('golden-retriever'), 1);
    assert.strictEqual(m('Traffic Light'), 2);
    assert.strictEqual(m('tabby'), 0);
    assert.strictEqual(m('zebra'), -1);
  });

  it('reads a folder layout, counting non-images, nested folders and unmatched classes', () => {
    const root = tempDir();
    const put = (rel: string) => {
      fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), 'x');
    };
    put('golden_retriever/a.png');
    put('golden_retriever/nested/b.jpg');
    put('tabby/c.PNG');
    put('tabby/notes.txt');
    put('zebra/d.png');
    put('loose.png');
    put('.cam-lens/reviewed.json');
    const ds = readDataset(root, labels);
    assert.deepStrictEqual(ds.samples.map((s) => [s.relPath, s.givenIndex]), [['golden_retriever/a.png', 1], ['golden_retriever/nested/b.jpg', 1], ['tabby/c.PNG', 0]]);
    assert.deepStrictEqual(ds.counts, { images: 5, nonImageFiles: 1, unmatchedImages: 2, missingFiles: 0 });
    assert.deepStrictEqual(ds.unmatchedClasses.sort((a, b) => a.name.localeCompare(b.name)), [{ name: '(root folder)', images: 1 }, { name: 'zebra', images: 1 }]);
    assert.deepStrictEqual(ds.perClass, [1, 2, 0]);
  });

  it('reads CSV and JSON label files with paths relative to them', () => {
    const root = tempDir();
    fs.mkdirSync(path.join(root, 'img'));
    for (const f of ['1.png', '2.png', '3.png']) fs.writeFileSync(path.join(root, 'img', f), 'x');
    fs.writeFileSync(path.join(root, 'labels.csv'), 'path,label\nimg/1.png,tabby\n"img/2.png","Golden Retriever"\nimg/3.png,unicorn\nimg/4.png,tabby\nreadme.md,tabby\n');
    const csv = readDataset(path.join(root, 'labels.csv'), labels);
    assert.strictEqual(csv.kind, 'csv');
    assert.deepStrictEqual(csv.samples.map((s) => [s.relPath, s.givenIndex]), [['img/1.png', 0], ['img/2.png', 1]]);
    assert.deepStrictEqual(csv.counts, { images: 4, nonImageFiles: 1, unmatchedImages: 1, missingFiles: 1 });
    fs.writeFileSync(path.join(root, 'labels.json'), JSON.stringify([{ path: 'img/3.png', label: 'traffic light' }]));
    const json = readDataset(root, labels, path.join(root, 'labels.json'));
    assert.deepStrictEqual(json.samples.map((s) => [s.relPath, s.givenIndex]), [['img/3.png', 2]]);
  });

  it('refuses a label file row that points outside its folder', () => {
    const root = tempDir();
    const inner = path.join(root, 'inner');
    fs.mkdirSync(inner);
    fs.writeFileSync(path.join(root, 'secret.png'), 'x');
    fs.writeFileSync(path.join(inner, 'labels.csv'), '../secret.png,tabby\n');
    assert.throws(() => readDataset(path.join(inner, 'labels.csv'), labels), /outside the label file's folder/);
  });
});
