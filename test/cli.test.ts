/** The `cam-lens` CLI as a user runs it: the built bundle in a child process. */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import { initBackend } from '../src/extension/engine/backend';
import { bnModel } from './helpers/models';
import { tempDir, writeModel } from './helpers/modelFiles';
import { METHOD_IDS } from '../src/extension/engine/cam/registry';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function newestSource(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestSource(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

/** Two heads on one trunk: "kind" (3 classes, softmax) and "sick" (one sigmoid unit, a binary classifier). */
function headsModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [16, 16, 3], name: 'img' });
  const c = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }).apply(input) as tfl.SymbolicTensor;
  const g = tfl.layers.globalAveragePooling2d({ name: 'gap' }).apply(c) as tfl.SymbolicTensor;
  const kind = tfl.layers.dense({ units: 3, activation: 'softmax', name: 'kind', kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }) }).apply(g) as tfl.SymbolicTensor;
  const sick = tfl.layers.dense({ units: 1, activation: 'sigmoid', name: 'sick', kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }), biasInitializer: tfl.initializers.constant({ value: 0.3 }) }).apply(g) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: [kind, sick] });
}

describe('cam-lens CLI', function () {
  let headsJson: string;
  let modelJson: string;
  let image: string;
  let dir: string;
  before(async function () {
    // Build where the bundle is missing or older than the sources, so that the tests run what the code says.
    if (!fs.existsSync(CLI) || newestSource(path.join(ROOT, 'src')) > fs.statSync(CLI).mtimeMs) {
      const b = spawnSync(process.execPath, [path.join(ROOT, 'esbuild.js')], { cwd: ROOT, encoding: 'utf8' });
      assert.strictEqual(b.status, 0, b.stderr);
    }
    await initBackend('cpu');
    dir = tempDir();
    const m = bnModel();
    modelJson = (await writeModel(m, path.join(dir, 'model'), { labels: ['apple', 'banana', 'cherry', 'date', 'elder berry'], inputSize: [16, 16], preprocess: '[0,1]' })).modelJson;
    m.dispose();
    const heads = headsModel();
    headsJson = (await writeModel(heads, path.join(dir, 'heads'), { labels: { kind: ['cat', 'dog', 'fox'], sick: ['healthy', 'sick'] }, preprocess: '[0,1]' })).modelJson;
    heads.dispose();
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
    assert.deepStrictEqual(Object.keys(j), ['model', 'image', 'backend', 'threads', 'method', 'layer', 'target', 'predictions', 'heatmap', 'timingsMs']);
    assert.strictEqual(j.backend, 'cpu');
    assert.strictEqual(j.threads, 1, 'the cpu backend runs on one thread');
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
    // Score-CAM's map says which channels it scored (`details`, #13 item 3).
    assert.deepStrictEqual(Object.keys(j), ['model', 'image', 'backend', 'threads', 'method', 'layer', 'target', 'predictions', 'heatmap', 'details', 'timingsMs']);
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
    assert.deepStrictEqual(Object.keys(j), ['model', 'image', 'backend', 'threads', 'method', 'layer', 'target', 'predictions', 'heatmap', 'metrics', 'timingsMs']);
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

  it('labels lists the classes by index, and --json writes them', () => {
    const r = run(['labels', '--model', modelJson]);
    assert.strictEqual(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /: 5 classes, labels from .*cam-lens\.json$/);
    assert.deepStrictEqual(lines.slice(1), ['  0  apple', '  1  banana', '  2  cherry', '  3  date', '  4  elder berry']);
    const j = JSON.parse(run(['labels', '--model', modelJson, '--json', '-']).stdout);
    assert.deepStrictEqual([j.classes, j.labelOffset, j.labels], [5, 0, ['apple', 'banana', 'cherry', 'date', 'elder berry']]);
    assert.strictEqual(j.labelsFrom, path.join(path.dirname(modelJson), 'cam-lens.json'));
    const off = JSON.parse(run(['labels', '--model', modelJson, '--class-names', namesFile(['b', 'c', 'd', 'e']), '--label-offset', '1', '--json', '-']).stdout);
    assert.deepStrictEqual([off.classes, off.labels], [4, ['b', 'c', 'd', 'e']]);
  });

  it('takes --output for predict, cam, layers, scan and labels, and says which output was explained and how to choose another', () => {
    // Without --output: the first classifier, "kind"; the text says so and names the others.
    const p = run(['predict', '--model', headsJson, '--image', image]);
    assert.strictEqual(p.code, 0, p.stderr);
    assert.match(p.stdout, /\(2\)\n.*output "kind" explained, of kind \(0\), sick \(1\); choose another with --output <name\|index>\n$/);
    const pj = JSON.parse(run(['predict', '--model', headsJson, '--image', image, '--json', '-']).stdout);
    assert.deepStrictEqual([pj.output, pj.binary, pj.predictions.length], ['kind', undefined, 3]);
    // The binary head by name and by index: two classes, the 0 side then the 1 side, probabilities summing to 1.
    for (const choice of ['sick', '1']) {
      const c = run(['cam', '--model', headsJson, '--image', image, '--output', choice, '--class', 'healthy', '--json', '-']);
      assert.strictEqual(c.code, 0, c.stderr);
      const j = JSON.parse(c.stdout);
      assert.deepStrictEqual([j.output, j.binary, j.target.index, j.target.label], ['sick', true, 0, 'healthy']);
      assert.deepStrictEqual(j.predictions.map((x: { label: string }) => x.label).sort(), ['healthy', 'sick']);
      assert.ok(Math.abs(j.predictions[0].probability + j.predictions[1].probability - 1) < 1e-5);
    }
    // Score-CAM in worker threads, which must load the same output.
    const sc = run(['cam', '--model', headsJson, '--image', image, '--output', 'sick', '--method', 'scorecam', '--workers', '1', '--class', '1', '--json', '-']);
    const local = run(['cam', '--model', headsJson, '--image', image, '--output', 'sick', '--method', 'scorecam', '--workers', '0', '--class', '1', '--json', '-']);
    assert.strictEqual(sc.code, 0, sc.stderr);
    assert.deepStrictEqual(JSON.parse(sc.stdout).heatmap.values, JSON.parse(local.stdout).heatmap.values);
    const l = JSON.parse(run(['layers', '--model', headsJson, '--output', 'sick', '--json', '-']).stdout);
    assert.deepStrictEqual([l.output, l.binary, l.classes, l.outputs.map((o: { name: string }) => o.name)], ['sick', true, 2, ['kind', 'sick']]);
    assert.ok(!l.layers.some((x: { name: string }) => x.name === 'kind'), 'only the layers of the output explained');
    const lt = run(['layers', '--model', headsJson]);
    assert.match(lt.stdout, /outputs \(choose with --output <name\|index>; the layers below are those of "kind"\):\n {2}0 {2}kind {2}3 units, softmax {2}<- explained\n {2}1 {2}sick {2}1 unit, sigmoid\n/);
    const labels = run(['labels', '--model', headsJson, '--output', 'sick']);
    assert.match(labels.stdout, /: 2 classes, labels from \S+cam-lens\.json\n {2}0 {2}healthy\n {2}1 {2}sick\noutput "sick" explained/);
    const lj = JSON.parse(run(['labels', '--model', headsJson, '--output', 'sick', '--json', '-']).stdout);
    assert.deepStrictEqual([lj.output, lj.classes, lj.labels, lj.outputs.length], ['sick', 2, ['healthy', 'sick'], 2]);
    // A single-sigmoid model of its own: classes named "not positive" and "positive" without labels.
    const data = path.join(dir, 'sick-data');
    for (const cls of ['healthy', 'sick']) {
      fs.mkdirSync(path.join(data, cls), { recursive: true });
      fs.copyFileSync(image, path.join(data, cls, 'a.png'));
    }
    const scan = run(['scan', '--model', headsJson, '--output', 'sick', '--data', data, '--json', '-']);
    assert.strictEqual(scan.code, 0, scan.stderr);
    const sj = JSON.parse(scan.stdout);
    assert.deepStrictEqual([sj.output, sj.counts.scanned, sj.samples.length], ['sick', 2, 2]);
    const probs = sj.samples[0].probabilities;
    assert.ok(Math.abs(probs.healthy + probs.sick - 1) < 1e-5, JSON.stringify(probs));
  });

  it('scan spreads its batches over --workers threads with the same report as one thread', () => {
    const demo = path.join(__dirname, '..', 'models', 'demo', 'model.json');
    const samples = path.join(__dirname, '..', 'samples');
    const one = run(['scan', '--model', demo, '--data', samples, '--workers', '0', '--batch-size', '8', '--json', '-']);
    const two = run(['scan', '--model', demo, '--data', samples, '--workers', '2', '--batch-size', '8', '--json', '-']);
    assert.strictEqual(one.code, 0, one.stderr);
    assert.strictEqual(two.code, 0, two.stderr);
    const a = JSON.parse(one.stdout);
    const b = JSON.parse(two.stdout);
    assert.ok(a.samples.length >= 40);
    assert.deepStrictEqual(b.samples.map((x: { relPath: string }) => x.relPath), a.samples.map((x: { relPath: string }) => x.relPath));
    for (let i = 0; i < a.samples.length; i++) {
      assert.ok(Math.abs(a.samples[i].selfConfidence - b.samples[i].selfConfidence) < 1e-5, a.samples[i].relPath);
    }
    assert.deepStrictEqual(b.counts, a.counts);
    assert.deepStrictEqual([a.workers, b.workers], [0, 2]);
  });

  it('scan writes its report and exits 1 where no image could be read', async () => {
    const data = path.join(dir, 'unreadable');
    fs.mkdirSync(path.join(data, 'apple'), { recursive: true });
    fs.writeFileSync(path.join(data, 'apple', 'a.png'), 'not a png');
    const json = path.join(dir, 'unreadable.json');
    const r = run(['scan', '--model', modelJson, '--data', data, '--json', json]);
    assert.strictEqual(r.code, 1, r.stderr);
    assert.match(r.stderr, /^cam-lens: none of the 1 images with a class could be read \(a\.png: .*not a readable image.*\)\n$/);
    assert.strictEqual(JSON.parse(fs.readFileSync(json, 'utf8')).counts.failed, 1);
  });

  it('scan says what is wrong with a missing dataset and an unknown score', () => {
    const a = run(['scan', '--model', modelJson, '--data', path.join(dir, 'nowhere')]);
    assert.deepStrictEqual([a.code, /dataset not found/.test(a.stderr)], [1, true], a.stderr);
    const b = run(['scan', '--model', modelJson, '--data', dir, '--score', 'vibes']);
    assert.deepStrictEqual([b.code, /unknown score "vibes"/.test(b.stderr)], [2, true], b.stderr);
  });

  function namesFile(labels: string[]): string {
    const f = path.join(tempDir(), 'names.txt');
    fs.writeFileSync(f, labels.join('\n') + '\n');
    return f;
  }
  function fileWith(name: string, bytes: Buffer): string {
    const f = path.join(tempDir(), name);
    fs.writeFileSync(f, bytes);
    return f;
  }
  function flatDataset(): string {
    const d = tempDir();
    for (const f of ['a.png', 'b.png']) fs.copyFileSync(image, path.join(d, f));
    return d;
  }

  // Bad usage: what the command line alone shows to be wrong. Exit 2, before any file is read: the model and
  // image below do not exist, and a usage error must still be what is reported.
  const NO_MODEL = path.join('/nonexistent', 'model.json');
  const NO_IMAGE = path.join('/nonexistent', 'photo.png');
  const cam = (...extra: string[]) => ['cam', '--model', NO_MODEL, '--image', NO_IMAGE, ...extra];
  const usage: Array<[string, string[], RegExp]> = [
    ['no command', [], /missing command: expected predict, cam, layers, scan, labels/],
    ['an unknown command', ['explain'], /unknown command "explain": expected predict, cam, layers, scan, labels, compare, strategies$/],
    ['a misspelt command', ['lables', '--model', NO_MODEL], /unknown command "lables".*; did you mean labels\?$/],
    ['an unknown option', cam('--colour', 'red'), /unknown option --colour$/],
    ['a misspelt option', cam('--batchsize', '3'), /unknown option --batchsize; did you mean --batch-size\?$/],
    ['an unknown short option', cam('-x'), /unknown option -x$/],
    ['an option without its value', ['cam', '--image', NO_IMAGE, '--model'], /--model needs a value$/],
    ['an option with an empty value', ['cam', '--image', NO_IMAGE, '--model='], /--model needs a value$/],
    ['an option followed by another option', ['cam', '--model', '--image', NO_IMAGE], /--model needs a value, and the next argument "--image" starts with a dash \(write --model=--image if that is the value\)$/],
    ['a value for a flag', cam('--metrics=yes'), /--metrics takes no value$/],
    ['a stray argument', cam('extra.png'), /unexpected argument "extra\.png": every value follows its option/],
    ['an option of another command', ['layers', '--model', NO_MODEL, '--png', 'x.png'], /option --png does not apply to "layers" \(it is for cam\)$/],
    ['an option labels does not take', ['labels', '--model', NO_MODEL, '--preprocess', '[0,1]'], /option --preprocess does not apply to "labels" \(it is for predict, cam, layers, scan\)$/],
    ['a missing --model', ['predict', '--image', NO_IMAGE], /missing --model$/],
    ['a missing --image for predict', ['predict', '--model', NO_MODEL], /missing --image$/],
    ['a missing --image for cam', ['cam', '--model', NO_MODEL], /missing --image$/],
    ['a missing --data for scan', ['scan', '--model', NO_MODEL], /missing --data$/],
    ['--recommend without --image', ['layers', '--model', NO_MODEL, '--recommend'], /missing --image$/],
    ['an unknown method', cam('--method', 'magic'), new RegExp(`unknown method "magic": expected ${METHOD_IDS.join(', ').replace(/\+/g, '\\+')}$`)],
    ['a misspelt method', cam('--method', 'Grad-CAM'), /unknown method "grad-cam": .*; did you mean gradcam\?$/],
    ['an unknown backend', cam('--backend', 'gpu'), /unknown backend "gpu": expected auto, node, wasm, cpu/],
    ['an unknown preprocessing', cam('--preprocess', 'zscore'), /unknown preprocessing "zscore": expected \[0,1\], /],
    ['an unknown colormap', cam('--png', 'x.png', '--colormap', 'rainbow'), /unknown colormap "rainbow": expected /],
    ['an unknown score', ['scan', '--model', NO_MODEL, '--data', '/nonexistent', '--score', 'vibes'], /unknown score "vibes": expected self_confidence, normalized_margin$/],
    ['--top 0', cam('--top', '0'), /--top must be an integer from 1 to 100000, got "0"$/],
    ['--top in exponent notation', ['predict', '--model', NO_MODEL, '--image', NO_IMAGE, '--top', '1e3'], /--top must be an integer from 1 to 100000, got "1e3"$/],
    ['a batch size of 0', cam('--method', 'scorecam', '--batch-size', '0'), /--batch-size must be an integer from 1 to 1024, got "0"$/],
    ['a fractional number of workers', cam('--method', 'scorecam', '--workers', '1.5'), /--workers must be an integer from 0 to 256, got "1\.5"$/],
    ['--top-channels with a method other than scorecam', cam('--top-channels', '3'), /--top-channels applies to --method scorecam and ablationcam only$/],
    ['--batch-size without scorecam or --metrics', cam('--batch-size', '3'), /--batch-size applies to --method scorecam, ablationcam, smoothgrad, integratedgradients and to --metrics only$/],
    ['--workers without scorecam or --metrics', cam('--method', 'gradcam', '--workers', '2'), /--workers applies to --method scorecam and to --metrics only$/],
    ['--colormap without --png', cam('--colormap', 'jet'), /--colormap applies to --png only$/],
    ['--opacity without --png', cam('--opacity', '0.3'), /--opacity applies to --png only$/],
    ['an opacity above 1', cam('--png', 'x.png', '--opacity', '2'), /--opacity must be a number from 0 to 1, got "2"$/],
    ['an opacity that is no number', cam('--png', 'x.png', '--opacity', 'half'), /--opacity must be a number from 0 to 1, got "half"$/],
    ['--png to stdout', cam('--png', '-'), /--png writes a file: give it a file name/],
    ['--csv to stdout', ['scan', '--model', NO_MODEL, '--data', '/nonexistent', '--csv', '-'], /--csv writes a file: give it a file name/],
    ['a label offset that is no number', cam('--label-offset', 'one'), /--label-offset must be a non-negative integer, got "one"$/],
    ['a negative label offset', cam('--label-offset=-1'), /--label-offset must be a non-negative integer, got "-1"$/],
    ['a max-pixels of 0', cam('--max-pixels', '0'), /--max-pixels must be an integer from 1 to /],
    ['--image on layers without --recommend', ['layers', '--model', NO_MODEL, '--image', NO_IMAGE], /--image applies to "layers --recommend" only$/],
    ['--candidates 0', ['layers', '--model', NO_MODEL, '--recommend', '--image', NO_IMAGE, '--candidates', '0'], /--candidates must be an integer from 1/],
    ['a negative --show', ['scan', '--model', NO_MODEL, '--data', '/nonexistent', '--show=-1'], /--show must be an integer from 0 to 1000000, got "-1"$/],
    ['a blank --output', cam('--output', ' '), /--output needs an output name or index, got " "$/],
    ['--output without a value', ['labels', '--model', NO_MODEL, '--output'], /--output needs a value$/],
  ];

  // Bad input: what needs a file to judge (the model decides which classes and layers exist). Exit 1.
  const badInput: Array<[string, () => string[], RegExp]> = [
    ['a missing image file', () => ['cam', '--model', modelJson, '--image', path.join(dir, 'nope.png')], /image not found: .*nope\.png$/],
    ['a file that is not an image', () => ['cam', '--model', modelJson, '--image', modelJson], /model\.json" is not a readable image/],
    ['an unknown class label: the closest labels and how to list them all',
      () => ['cam', '--model', modelJson, '--image', image, '--class', 'bananna'],
      /no class labelled "bananna" among the model's 5 classes; closest: "banana" \(1\); `cam-lens labels --model \S+model\.json` lists them all$/],
    ['an unknown class label with --class-names: the labels command takes them too',
      () => ['cam', '--model', modelJson, '--image', image, '--class', 'elderberry', '--class-names', namesFile(['a1', 'a2', 'a3', 'elder-berry', 'a5']), '--label-offset', '0'],
      /; closest: "elder-berry" \(3\); `cam-lens labels --model \S+model\.json --class-names \S+names\.txt --label-offset 0` lists them all$/],
    ['an unknown class label among few classes: all of them', () => ['cam', '--model', modelJson, '--image', image, '--class', 'zebra'],
      /no class labelled "zebra" among the model's 5 classes; they are "apple" \(0\), "banana" \(1\), "cherry" \(2\), "date" \(3\), "elder berry" \(4\)$/],
    ['a class index out of range', () => ['cam', '--model', modelJson, '--image', image, '--class', '9'], /class index 9 is out of range/],
    ['an unknown output: the outputs there are', () => ['cam', '--model', headsJson, '--image', image, '--output', 'age'],
      /^cam-lens: the model has no output named "age"; its outputs are "kind" \(0: 3 units, softmax\), "sick" \(1: 1 unit, sigmoid\) \(choose an output by name or index\)$/],
    ['an output index out of range', () => ['labels', '--model', headsJson, '--output', '2'], /output index 2 is out of range: the model has 2 outputs, "kind" \(0: 3 units, softmax\), "sick"/],
    ['an unknown layer', () => ['cam', '--model', modelJson, '--image', image, '--layer', 'conv99'], /no layer named "conv99"/],
    ['a layer without spatial output', () => ['cam', '--model', modelJson, '--image', image, '--layer', 'gap'], /not a spatial feature map/],
    ['a missing model', () => ['predict', '--model', path.join(dir, 'none', 'model.json'), '--image', image], /model file not found/],
    ['an output folder that does not exist, before any work', () => ['cam', '--model', path.join(dir, 'none', 'model.json'), '--image', image, '--png', path.join(dir, 'none', 'x.png')],
      /^cam-lens: cannot write \S+x\.png: folder \S+none does not exist$/],
    ['cam on a model whose head is not GAP-then-linear', () => ['cam', '--model', modelJson, '--image', image, '--method', 'cam', '--layer', 'r1'], /CAM needs global average pooling.*use gradcam/],
    ['a model folder: the model file in it', () => ['predict', '--model', path.dirname(modelJson), '--image', image],
      /is a folder, not a model file; it holds the model file model\.json \(choose \S+model\.json\)$/],
    ['an ONNX model', () => ['predict', '--model', fileWith('resnet.onnx', Buffer.from([0x08, 0x07, 0x12, 0x07, 0x70, 0x79, 0x0a, 0x00, 0xff])), '--image', image],
      /^cam-lens: resnet\.onnx is not a readable ONNX model: /],
    ['a Keras .h5 model', () => ['predict', '--model', fileWith('model.h5', Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x0a, 0x0a])), '--image', image],
      /^cam-lens: model\.h5 is not a readable HDF5 file: reading its superblock failed /],
    ['a Keras 3 .keras model', () => ['predict', '--model', fileWith('model.keras', Buffer.from('PK\u0003\u0004\n\n\n', 'latin1')), '--image', image],
      /^cam-lens: model\.keras is not a readable Keras archive: End of central directory record signature not found/],
    ['a SavedModel .pb', () => ['predict', '--model', fileWith('saved_model.pb', Buffer.from([0x08, 0x01, 0x12, 0x0a, 0x0a, 0x00])), '--image', image],
      /^cam-lens: saved_model\.pb is a TensorFlow protobuf graph \(SavedModel or frozen graph\), which CAM Lens cannot open \(export the SavedModel folder to ONNX .*tf2onnx.*\)$/],
    ['a PyTorch checkpoint, never unpickled', () => ['predict', '--model', fileWith('model.pth', Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20])), '--image', image],
      /^cam-lens: model\.pth is a PyTorch checkpoint \(a pickle, which CAM Lens never unpickles\), which CAM Lens cannot open \(export the model to ONNX: torch\.onnx\.export\(.*\), and open model\.onnx\)$/],
    ['a --class-names file of the wrong length: the file is named', () => ['predict', '--model', modelJson, '--image', image, '--class-names', namesFile(['a', 'b', 'c', 'd', 'e', 'f', 'g'])],
      /the model has 5 outputs but \S+names\.txt lists 7 labels/],
    ['scan of a folder without class folders', () => ['scan', '--model', modelJson, '--data', flatDataset()],
      /no image under \S+ has a class: of its 2 images, 2 directly in it, outside any class folder \(expected <folder>\/<class name>\/<image> with class names among the model's labels \("apple", "banana", "cherry", … 5 in all\), or a CSV\/JSON label file\)$/],
  ];

  function oneLineFailure(args: string[], code: number, pattern: RegExp): void {
    const r = run(args);
    assert.strictEqual(r.code, code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`);
    const lines = r.stderr.split('\n');
    assert.deepStrictEqual([lines.length, lines[1]], [2, ''], `one line ending in a newline: ${JSON.stringify(r.stderr)}`);
    assert.match(lines[0], /^cam-lens: /);
    // Usage errors end in a pointer to the help, which the patterns leave out.
    const suffix = ' (see cam-lens --help)';
    assert.strictEqual(lines[0].endsWith(suffix), code === 2, lines[0]);
    assert.match(code === 2 ? lines[0].slice(0, -suffix.length) : lines[0], pattern);
    assert.strictEqual(r.stdout, '');
  }
  for (const [what, args, pattern] of usage) {
    it(`exits 2 with a one-line reason for ${what}`, () => oneLineFailure(args, 2, pattern));
  }
  for (const [what, args, pattern] of badInput) {
    it(`exits 1 with a one-line reason for ${what}`, () => oneLineFailure(args(), 1, pattern));
  }
});
