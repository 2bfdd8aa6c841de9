/** The `cam-lens` CLI as a user runs it: the built bundle in a child process. */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { initBackend } from '../src/extension/engine/backend';
import { bnModel } from './helpers/models';
import { tempDir, writeModel } from './helpers/modelFiles';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('cam-lens CLI', function () {
  let modelJson: string;
  let image: string;
  let dir: string;
  before(async function () {
    if (!fs.existsSync(CLI)) {
      const b = spawnSync(process.execPath, [path.join(ROOT, 'esbuild.js')], { cwd: ROOT, encoding: 'utf8' });
      assert.strictEqual(b.status, 0, b.stderr);
    }
    await initBackend('cpu');
    dir = tempDir();
    const m = bnModel();
    modelJson = (await writeModel(m, path.join(dir, 'model'), { labels: ['apple', 'banana', 'cherry', 'date', 'elder berry'], inputSize: [16, 16], preprocess: '[0,1]' })).modelJson;
    m.dispose();
    image = path.join(dir, 'photo.png');
    const px = Buffer.alloc(40 * 30 * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 256;
    await sharp(px, { raw: { width: 40, height: 30, channels: 3 } }).png().toFile(image);
    assert.ok(tf.getBackend());
  });

  it('cam --json - writes the contract object and --png an overlay at the image resolution', async () => {
    const png = path.join(dir, 'overlay.png');
    const r = run(['cam', '--model', modelJson, '--image', image, '--method', 'gradcam++', '--class', 'banana', '--json', '-', '--png', png, '--backend', 'cpu', '--top', '3']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepStrictEqual(Object.keys(j), ['model', 'image', 'backend', 'method', 'layer', 'target', 'predictions', 'heatmap', 'timingsMs']);
    assert.strictEqual(j.backend, 'cpu');
    assert.strictEqual(j.method, 'gradcam++');
    assert.strictEqual(j.layer, 'res');
    assert.deepStrictEqual([j.target.index, j.target.label], [1, 'banana']);
    assert.strictEqual(j.predictions.length, 3);
    assert.ok(j.predictions[0].probability >= j.predictions[1].probability);
    assert.strictEqual(j.heatmap.values.length, j.heatmap.width * j.heatmap.height);
    assert.ok(j.heatmap.values.every((v: number) => v >= 0 && v <= 1));
    assert.ok(typeof j.timingsMs.total === 'number');
    const meta = await sharp(png).metadata();
    assert.deepStrictEqual([meta.width, meta.height], [40, 30]);
  });

  it('explains the top-1 class without --class, and takes a class index and a multi-word label', () => {
    const top = JSON.parse(run(['predict', '--model', modelJson, '--image', image, '--json', '-']).stdout);
    const a = JSON.parse(run(['cam', '--model', modelJson, '--image', image, '--json', '-']).stdout);
    assert.strictEqual(a.target.index, top.predictions[0].index);
    assert.strictEqual(a.method, 'gradcam');
    const b = JSON.parse(run(['cam', '--model', modelJson, '--image', image, '--class', '4', '--json', '-']).stdout);
    assert.strictEqual(b.target.label, 'elder berry');
    const c = JSON.parse(run(['cam', '--model', modelJson, '--image', image, '--class', 'Elder Berry', '--json', '-']).stdout);
    assert.strictEqual(c.target.index, 4);
  });

  it('layers --json lists every layer and marks the recommended target', () => {
    const r = run(['layers', '--model', modelJson, '--json', '-']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.strictEqual(j.recommendedLayer, 'res');
    const names = j.layers.map((l: { name: string }) => l.name);
    assert.deepStrictEqual(names.slice(0, 4), ['img', 'c1', 'bn1', 'r1']);
    const c1 = j.layers.find((l: { name: string }) => l.name === 'c1');
    assert.deepStrictEqual([c1.className, c1.outputShape, c1.params, c1.foldedBatchNorm], ['Conv2D', [null, 8, 8, 8], 216, 'bn1']);
  });

  it('cam --method scorecam takes --batch-size, --top-channels and --workers and keeps the contract object', () => {
    const a = run(['cam', '--model', modelJson, '--image', image, '--method', 'scorecam', '--class', 'cherry', '--batch-size', '3', '--workers', '0', '--json', '-']);
    assert.strictEqual(a.code, 0, a.stderr);
    const j = JSON.parse(a.stdout);
    assert.deepStrictEqual(Object.keys(j), ['model', 'image', 'backend', 'method', 'layer', 'target', 'predictions', 'heatmap', 'timingsMs']);
    assert.strictEqual(j.method, 'scorecam');
    assert.ok(j.heatmap.values.every((v: number) => v >= 0 && v <= 1) && Math.max(...j.heatmap.values) > 0.999);
    // The same map with one worker thread (or in this thread where the worker bundle is absent).
    const b = JSON.parse(run(['cam', '--model', modelJson, '--image', image, '--method', 'scorecam', '--class', 'cherry', '--workers', '1', '--json', '-']).stdout);
    assert.deepStrictEqual(b.heatmap.values, j.heatmap.values);
    const c = JSON.parse(run(['cam', '--model', modelJson, '--image', image, '--method', 'scorecam', '--class', 'cherry', '--top-channels', '2', '--json', '-']).stdout);
    assert.notDeepStrictEqual(c.heatmap.values, j.heatmap.values, 'two of eight channels give another map');
  });

  it('cam --metrics adds the faithfulness scores of the map and of a random map, and prints them', () => {
    const r = run(['cam', '--model', modelJson, '--image', image, '--method', 'eigencam', '--metrics', '--workers', '0', '--json', '-']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepStrictEqual(Object.keys(j), ['model', 'image', 'backend', 'method', 'layer', 'target', 'predictions', 'heatmap', 'metrics', 'timingsMs']);
    assert.strictEqual(j.metrics.steps, 20);
    assert.strictEqual(j.metrics.baseline, 'blur');
    for (const which of ['map', 'random']) {
      const m = j.metrics[which];
      for (const k of ['deletionAuc', 'insertionAuc']) assert.ok(m[k] >= 0 && m[k] <= 1, `${which}.${k} = ${m[k]}`);
      assert.ok(m.averageDrop >= 0 && m.averageDrop <= 100);
      assert.strictEqual(typeof m.increaseInConfidence, 'boolean');
      assert.strictEqual(m.deletionCurve.length, 21);
      assert.strictEqual(m.deletionCurve[0], j.target.probability);
    }
    assert.ok(typeof j.timingsMs.metrics === 'number');
    const text = run(['cam', '--model', modelJson, '--image', image, '--metrics', '--workers', '0']);
    assert.strictEqual(text.code, 0, text.stderr);
    assert.match(text.stdout, /^faithfulness \(random map in brackets\): deletion AUC [\d.]+ \([\d.]+, lower is better\), insertion AUC .*average drop .*increase in confidence (yes|no)/m);
  });

  it('layers --recommend ranks the candidate layers by the deletion AUC of their Grad-CAM maps', () => {
    const r = run(['layers', '--model', modelJson, '--recommend', '--image', image, '--class', 'banana', '--workers', '0', '--json', '-']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.strictEqual(j.recommendedLayer, 'res', 'the layer list is unchanged');
    const rec = j.recommendation;
    assert.strictEqual(rec.method, 'gradcam');
    assert.strictEqual(rec.metric, 'deletionAuc');
    assert.deepStrictEqual(rec.target.label, 'banana');
    // conv → BN → ReLU chains count once, at the ReLU: r1, r2 and the residual sum.
    assert.deepStrictEqual(rec.ranking.map((l: { layer: string }) => l.layer).sort(), ['r1', 'r2', 'res']);
    const aucs = rec.ranking.map((l: { deletionAuc: number }) => l.deletionAuc);
    assert.deepStrictEqual(aucs, [...aucs].sort((x: number, y: number) => x - y));
    assert.deepStrictEqual(rec.ranking.map((l: { rank: number }) => l.rank), [1, 2, 3]);
    assert.strictEqual(rec.best, rec.ranking[0].layer);
    assert.strictEqual(rec.ranking[0].best, true);
    const text = run(['layers', '--model', modelJson, '--recommend', '--image', image, '--candidates', '2', '--workers', '0']);
    assert.strictEqual(text.code, 0, text.stderr);
    assert.match(text.stdout, /<- recommended target \(earned\)/);
    assert.match(text.stdout, /ranked by deletion AUC \(lower is better, 20 steps\):\n {2}\S+ +\[N, \d+, \d+, \d+\] +1\. [\d.]+ {2}best/);
  });

  it('writes human-readable output without --json', () => {
    const r = run(['predict', '--model', modelJson, '--image', image, '--top', '2']);
    assert.strictEqual(r.code, 0);
    assert.match(r.stdout, /photo\.png/);
    assert.strictEqual(r.stdout.trim().split('\n').length, 3);
  });

  it('scan writes the ranked report as JSON and CSV, counting what it could not use', async () => {
    const data = path.join(dir, 'data');
    for (const [cls, n] of [['apple', 4], ['banana', 3], ['kiwi', 2]] as const) {
      fs.mkdirSync(path.join(data, cls), { recursive: true });
      for (let i = 0; i < n; i++) {
        const px = Buffer.alloc(16 * 16 * 3, (i * 53 + cls.length * 31) % 256);
        await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(data, cls, `${i}.png`));
      }
    }
    fs.writeFileSync(path.join(data, 'apple', 'broken.png'), 'not a png');
    fs.writeFileSync(path.join(data, 'README.txt'), 'notes');
    const csv = path.join(dir, 'report.csv');
    const r = run(['scan', '--model', modelJson, '--data', data, '--json', '-', '--csv', csv, '--score', 'normalized_margin', '--batch-size', '3']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepStrictEqual(Object.keys(j).slice(0, 4), ['model', 'data', 'scoredBy', 'counts']);
    assert.ok('samples' in j);
    assert.deepStrictEqual([j.counts.images, j.counts.scanned, j.counts.failed, j.counts.unmatchedImages, j.counts.nonImageFiles], [10, 7, 1, 2, 1]);
    assert.deepStrictEqual(j.unmatchedClasses, [{ name: 'kiwi', images: 2 }]);
    assert.strictEqual(j.samples.length, 7);
    for (const s of j.samples) {
      for (const k of ['path', 'givenLabel', 'predictedLabel', 'probabilities', 'selfConfidence', 'normalizedMargin', 'flagged']) assert.ok(k in s, k);
    }
    for (let i = 1; i < j.samples.length; i++) assert.ok(j.samples[i - 1].normalizedMargin <= j.samples[i].normalizedMargin);
    assert.strictEqual(fs.readFileSync(csv, 'utf8').trim().split('\n').length, 8);
  });

  it('scan says what is wrong with a missing dataset and an unknown score', () => {
    const a = run(['scan', '--model', modelJson, '--data', path.join(dir, 'nowhere')]);
    assert.deepStrictEqual([a.code, /dataset not found/.test(a.stderr)], [1, true], a.stderr);
    const b = run(['scan', '--model', modelJson, '--data', dir, '--score', 'vibes']);
    assert.deepStrictEqual([b.code, /unknown score "vibes"/.test(b.stderr)], [2, true], b.stderr);
  });

  const failures: Array<[string, () => string[], number, RegExp]> = [
    ['a missing image file', () => ['cam', '--model', modelJson, '--image', path.join(dir, 'nope.png')], 1, /image not found: .*nope\.png/],
    ['a file that is not an image', () => ['cam', '--model', modelJson, '--image', modelJson], 1, /model\.json" is not a readable image/],
    ['an unknown method', () => ['cam', '--model', modelJson, '--image', image, '--method', 'magic'], 1, /unknown method "magic"/],
    ['an unknown class label', () => ['cam', '--model', modelJson, '--image', image, '--class', 'zebra'], 1, /no class labelled "zebra"/],
    ['a class index out of range', () => ['cam', '--model', modelJson, '--image', image, '--class', '9'], 1, /class index 9 is out of range/],
    ['an unknown layer', () => ['cam', '--model', modelJson, '--image', image, '--layer', 'conv99'], 1, /no layer named "conv99"/],
    ['a layer without spatial output', () => ['cam', '--model', modelJson, '--image', image, '--layer', 'gap'], 1, /not a spatial feature map/],
    ['a missing model', () => ['predict', '--model', path.join(dir, 'none', 'model.json'), '--image', image], 1, /model file not found/],
    ['an unknown option', () => ['cam', '--model', modelJson, '--image', image, '--colour', 'red'], 2, /Unknown option '--colour'/],
    ['an option of another command', () => ['layers', '--model', modelJson, '--png', 'x.png'], 2, /--png does not apply to "layers"/],
    ['an unknown command', () => ['explain'], 2, /unknown command "explain"/],
    ['an unknown backend', () => ['predict', '--model', modelJson, '--image', image, '--backend', 'gpu'], 2, /unknown backend "gpu"/],
    ['a missing --model', () => ['predict', '--image', image], 2, /missing --model/],
    ['--top-channels with a method other than scorecam', () => ['cam', '--model', modelJson, '--image', image, '--top-channels', '3'], 2, /--top-channels applies to --method scorecam only/],
    ['a batch size of 0', () => ['cam', '--model', modelJson, '--image', image, '--method', 'scorecam', '--batch-size', '0'], 2, /--batch-size must be an integer from 1 to 1024, got "0"/],
    ['a fractional number of workers', () => ['cam', '--model', modelJson, '--image', image, '--method', 'scorecam', '--workers', '1.5'], 2, /--workers must be an integer from 0 to 256, got "1.5"/],
    ['--recommend without --image', () => ['layers', '--model', modelJson, '--recommend'], 2, /missing --image/],
    ['--image on layers without --recommend', () => ['layers', '--model', modelJson, '--image', image], 2, /--image applies to "layers --recommend" only/],
    ['--candidates 0', () => ['layers', '--model', modelJson, '--recommend', '--image', image, '--candidates', '0'], 2, /--candidates must be an integer from 1/],
    ['cam on a model whose head is not GAP-then-linear', () => ['cam', '--model', modelJson, '--image', image, '--method', 'cam', '--layer', 'r1'], 1, /CAM needs global average pooling.*use gradcam/],
  ];
  for (const [what, args, code, pattern] of failures) {
    it(`exits ${code} with a one-line reason for ${what}`, () => {
      const r = run(args());
      assert.strictEqual(r.code, code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.strictEqual(lines.length, 1, r.stderr);
      assert.match(lines[0], /^cam-lens: /);
      assert.match(lines[0], pattern);
      assert.strictEqual(r.stdout, '');
    });
  }
});
