import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { initBackend } from '../../src/extension/engine/backend';
import { CamLensError } from '../../src/extension/engine/errors';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { readDataset } from '../../src/extension/engine/scan/dataset';
import { scanDataset } from '../../src/extension/engine/scan/scan';
import { buildReport, markReviewed, readReviewed, reportToCsv } from '../../src/extension/engine/scan/report';
import { openImage } from '../../src/extension/engine/pipeline';
import { bnModel } from '../helpers/models';
import { tempDir, writeModel } from '../helpers/modelFiles';

const LABELS = ['apple', 'banana', 'cherry', 'date', 'elder'];

describe('scan engine', () => {
  let model: LoadedModel;
  let root: string;
  before(async () => {
    await initBackend('cpu');
    const dir = tempDir();
    const m = bnModel();
    model = await loadModel((await writeModel(m, path.join(dir, 'model'), { labels: LABELS, inputSize: [16, 16], preprocess: '[0,1]' })).modelJson);
    m.dispose();
    root = path.join(dir, 'data');
    let k = 0;
    for (const cls of ['apple', 'banana', 'cherry']) {
      fs.mkdirSync(path.join(root, cls), { recursive: true });
      for (let i = 0; i < 7; i++) {
        const px = Buffer.alloc(20 * 20 * 3);
        for (let j = 0; j < px.length; j++) px[j] = (j * (k + 3) * 13) % 256;
        k++;
        await sharp(px, { raw: { width: 20, height: 20, channels: 3 } }).png().toFile(path.join(root, cls, `${i}.png`));
      }
    }
    fs.writeFileSync(path.join(root, 'banana', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\n not really'));
    fs.writeFileSync(path.join(root, 'banana', 'notes.txt'), 'hi');
  });
  after(() => model.dispose());

  it('scores every readable image exactly like a single-image prediction, streaming results and counting failures', async () => {
    const ds = readDataset(root, LABELS);
    assert.strictEqual(ds.samples.length, 22);
    const streamed: string[] = [];
    const progress: number[] = [];
    const before = tf.memory().numTensors;
    const scan = await scanDataset(model, ds, { batchSize: 5, onResult: (r) => streamed.push(r.relPath), onProgress: (p) => progress.push(p.done) });
    assert.strictEqual(tf.memory().numTensors, before, 'no tensor left behind');
    assert.strictEqual(scan.results.length, 21);
    assert.deepStrictEqual(scan.failures.map((f) => f.relPath), ['banana/broken.png']);
    assert.match(scan.failures[0].error, /not a readable image/);
    assert.deepStrictEqual(streamed, scan.results.map((r) => r.relPath));
    assert.deepStrictEqual(progress, [5, 10, 15, 20, 22]);
    // Batched probabilities equal one-at-a-time predictions.
    for (const r of scan.results.slice(0, 4)) {
      const opened = await openImage(model, r.path);
      const p = await opened.session.probabilities();
      opened.session.dispose();
      for (let j = 0; j < LABELS.length; j++) assert.ok(Math.abs(p[j] - r.probs[j]) < 1e-5, `${r.relPath} class ${j}`);
      assert.ok(Math.abs(r.selfConfidence - p[r.givenIndex]) < 1e-5);
    }
    const report = buildReport(model.path, LABELS, ds, scan, 'normalized_margin');
    assert.strictEqual(report.samples.length, 21);
    for (let i = 1; i < report.samples.length; i++) assert.ok(report.samples[i - 1].score <= report.samples[i].score, 'rank order');
    assert.deepStrictEqual(Object.keys(report.samples[0]).slice(0, 9), ['path', 'relPath', 'givenLabel', 'predictedLabel', 'probabilities', 'selfConfidence', 'normalizedMargin', 'entropy', 'flagged']);
    assert.strictEqual(Object.keys(report.samples[0].probabilities).length, 5);
    assert.deepStrictEqual([report.counts.images, report.counts.scanned, report.counts.failed, report.counts.nonImageFiles], [22, 21, 1, 1]);
    const csv = reportToCsv(report).trim().split('\n');
    assert.strictEqual(csv.length, 22);
    assert.match(csv[0], /^rank,path,givenLabel,predictedLabel,selfConfidence/);
  });

  it('refuses a folder whose images are outside class folders or in folders named after no label, instead of scanning nothing', () => {
    const flat = tempDir();
    for (const f of ['a.png', 'b.png']) fs.copyFileSync(path.join(root, 'apple', '0.png'), path.join(flat, f));
    assert.throws(() => readDataset(flat, LABELS), (e: unknown) => {
      assert.ok(e instanceof CamLensError);
      assert.strictEqual(e.code, 'BAD_ARGUMENT');
      assert.strictEqual(e.message, `no image under ${flat} has a class: of its 2 images, 2 directly in it, outside any class folder`);
      assert.match(e.hint ?? '', /^expected <folder>\/<class name>\/<image> with class names among the model's labels \("apple", "banana", "cherry", … 5 in all\), or a CSV\/JSON label file$/);
      return true;
    });
    fs.mkdirSync(path.join(flat, 'kiwi'));
    fs.copyFileSync(path.join(root, 'apple', '0.png'), path.join(flat, 'kiwi', 'k.png'));
    assert.throws(() => readDataset(flat, LABELS), /of its 3 images, 2 directly in it, outside any class folder; 1 in folders named after no model label: kiwi \(1\)$/);
    // One image in a class folder is enough: the rest is counted, not refused.
    fs.mkdirSync(path.join(flat, 'apple'));
    fs.copyFileSync(path.join(root, 'apple', '0.png'), path.join(flat, 'apple', 'x.png'));
    assert.strictEqual(readDataset(flat, LABELS).samples.length, 1);
  });

  it('refuses a label file that gives no sample, saying why', () => {
    const dir = tempDir();
    fs.copyFileSync(path.join(root, 'apple', '0.png'), path.join(dir, 'a.png'));
    fs.writeFileSync(path.join(dir, 'labels.csv'), 'path,label\na.png,kiwi\nmissing.png,apple\n');
    assert.throws(() => readDataset(path.join(dir, 'labels.csv'), LABELS),
      /^CamLensError: labels\.csv gives no sample to scan: of the 2 images it names, 1 does not exist; 1 has a label matching no model label: kiwi \(1\)$/);
    fs.writeFileSync(path.join(dir, 'labels.csv'), 'notes.txt,apple\n');
    assert.throws(() => readDataset(path.join(dir, 'labels.csv'), LABELS), /labels\.csv gives no sample to scan: none of its 1 rows names an image file/);
  });

  it('refuses a label file row into a sibling folder whose name starts with the data folder\'s (paths.test.ts has every escape)', () => {
    const base = tempDir();
    fs.mkdirSync(path.join(base, 'd'));
    fs.mkdirSync(path.join(base, 'd-secret'));
    fs.copyFileSync(path.join(root, 'apple', '0.png'), path.join(base, 'd', 'ok.png'));
    fs.copyFileSync(path.join(root, 'apple', '0.png'), path.join(base, 'd-secret', 'x.png'));
    fs.writeFileSync(path.join(base, 'd', 'labels.csv'), 'ok.png,apple\n../d-secret/x.png,apple\n');
    assert.throws(() => readDataset(path.join(base, 'd', 'labels.csv'), LABELS), (e: unknown) =>
      e instanceof CamLensError && e.code === 'BAD_ARGUMENT' && /^refusing labels\.csv row "\.\.\/d-secret\/x\.png": it resolves to .*d-secret.x\.png, outside the label file's folder/.test(e.message));
    // A missing file outside is refused too, not counted as missing.
    fs.writeFileSync(path.join(base, 'd', 'labels.csv'), 'ok.png,apple\n../d-secret/none.png,apple\n');
    assert.throws(() => readDataset(path.join(base, 'd', 'labels.csv'), LABELS), /outside the label file's folder/);
  });

  it('keeps the results computed before a cancellation', async () => {
    const ds = readDataset(root, LABELS);
    const ac = new AbortController();
    let seen = 0;
    const scan = await scanDataset(model, ds, { batchSize: 4, signal: ac.signal, onResult: () => { if (++seen === 8) ac.abort(); } });
    assert.strictEqual(scan.cancelled, true);
    assert.strictEqual(scan.results.length, 8);
  });

  it('hides samples marked "label is correct" in the next report, until their label changes', async () => {
    const dir = tempDir();
    fs.cpSync(root, dir, { recursive: true });
    const ds = readDataset(dir, LABELS);
    const scan = await scanDataset(model, ds, { batchSize: 8 });
    const first = buildReport(model.path, LABELS, ds, scan);
    const top = first.samples[0];
    markReviewed(dir, top.relPath, top.givenLabel);
    assert.ok(fs.existsSync(path.join(dir, '.cam-lens', 'reviewed.json')));
    const second = buildReport(model.path, LABELS, readDataset(dir, LABELS), scan, 'self_confidence', readReviewed(dir));
    assert.strictEqual(second.counts.reviewedHidden, 1);
    assert.ok(!second.samples.some((s) => s.relPath === top.relPath));
    // The dataset reader skips the .cam-lens folder.
    assert.ok(!readDataset(dir, LABELS).samples.some((s) => s.relPath.startsWith('.cam-lens')));
  });
});
