/**
 * `cam-lens compare` as a user runs it: the built bundle in a child process. Two small models built here, and the
 * issue's acceptance run: models/demo against models/demo-shortcut over samples-shortcut/ (the watermarked
 * samples among the most disagreeing).
 */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { initBackend } from '../src/extension/engine/backend';
import { bnModel } from './helpers/models';
import { tempDir, writeModel } from './helpers/modelFiles';
import { ensureBuilt } from './helpers/build';

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const LABELS = ['apple', 'banana', 'cherry', 'date', 'elder'];

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 300000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('cam-lens compare', function () {
  this.timeout(300000);
  let dir: string;
  let a: string;
  let twin: string;
  let other: string;
  let fewer: string;
  let image: string;
  let data: string;

  before(async () => {
    ensureBuilt(['cli.js'], ['src/extension', 'src/shared']);
    await initBackend('cpu');
    dir = tempDir();
    const meta = (labels: string[]) => ({ labels, inputSize: [16, 16], preprocess: '[0,1]' });
    const m = bnModel();
    // Seeded kernels: the same maps on every run.
    for (const name of ['c1', 'dw', 'fc']) {
      const layer = m.getLayer(name);
      const ws = layer.getWeights();
      layer.setWeights([tf.randomNormal(ws[0].shape, 0, 0.4, 'float32', name.length * 7 + 1), ...ws.slice(1)]);
    }
    a = (await writeModel(m, path.join(dir, 'a'), meta(LABELS))).modelJson;
    twin = (await writeModel(m, path.join(dir, 'twin'), meta(LABELS))).modelJson;
    fewer = (await writeModel(m, path.join(dir, 'fewer'), meta(['apple', 'banana', 'fig', 'date', 'elder']))).modelJson;
    const c1 = m.getLayer('c1');
    const w = c1.getWeights();
    c1.setWeights([tf.randomNormal(w[0].shape, 0, 0.5, 'float32', 99), ...w.slice(1)]);
    other = (await writeModel(m, path.join(dir, 'other'), meta(LABELS))).modelJson;
    m.dispose();
    image = path.join(dir, 'photo.png');
    const px = Buffer.alloc(24 * 20 * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 256;
    await sharp(px, { raw: { width: 24, height: 20, channels: 3 } }).png().toFile(image);
    data = path.join(dir, 'data');
    let k = 0;
    for (const cls of ['apple', 'banana', 'cherry']) {
      fs.mkdirSync(path.join(data, cls), { recursive: true });
      for (let i = 0; i < 3; i++) {
        const p = Buffer.alloc(20 * 20 * 3);
        for (let j = 0; j < p.length; j++) p[j] = (j * (k + 3) * 13) % 256;
        k++;
        await sharp(p, { raw: { width: 20, height: 20, channels: 3 } }).png().toFile(path.join(data, cls, `${i}.png`));
      }
    }
  });

  it('refuses bad usage with exit 2 and one line, before reading any file', () => {
    const nowhere = path.join(dir, 'no-such-model.json');
    const cases: [string[], RegExp][] = [
      [['compare', '--model', nowhere, '--image', image], /missing --model-b/],
      [['compare', '--model', nowhere, '--model-b', nowhere], /missing --image <file> or --data/],
      [['compare', '--model', nowhere, '--model-b', nowhere, '--image', image, '--data', data], /--image \(one image\) or --data \(a dataset\), not both/],
      [['compare', '--model', nowhere, '--model-b', nowhere, '--data', data, '--png', 'x.png'], /--png applies to --image only/],
      [['compare', '--model', nowhere, '--model-b', nowhere, '--image', image, '--show', '3'], /--show applies to --data only/],
      [['compare', '--model', nowhere, '--model-b', nowhere, '--image', image, '--method', 'gradcan'], /unknown method "gradcan".*did you mean gradcam/],
      [['compare', '--model', nowhere, '--model-b', nowhere, '--image', image, '--modelb', 'x'], /unknown option --modelb.*did you mean --model-b/],
      [['compare', '--model', nowhere, '--model-b', nowhere, '--data', data, '--show', '-1'], /--show/],
    ];
    for (const [args, re] of cases) {
      const r = run(args);
      assert.strictEqual(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.strictEqual(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.strictEqual(r.stdout, '');
    }
    assert.match(run(['--help']).stdout, /cam-lens compare --model <A> --model-b <B>/);
    assert.match(run(['compare', '--help']).stdout, /Ranking \(--data\): samples whose top-1 differs first/);
  });

  it('says what is wrong with the input in one line, exit 1', () => {
    const missing = run(['compare', '--model', a, '--model-b', path.join(dir, 'nope', 'model.json'), '--image', image]);
    assert.strictEqual(missing.code, 1);
    assert.match(missing.stderr, /^cam-lens: model not found: .*nope\/model\.json\n$/);
    const cls = run(['compare', '--model', a, '--model-b', fewer, '--image', image, '--class', 'cherry']);
    assert.strictEqual(cls.code, 1);
    assert.match(cls.stderr, /^cam-lens: model B \(fewer\): no class labelled "cherry"/);
    assert.strictEqual(cls.stderr.trim().split('\n').length, 1);
  });

  it('compares one image: --json - with both sides, correlation 1 for two copies, and --png with the three panels', async () => {
    const png = path.join(dir, 'pair.png');
    const r = run(['compare', '--model', a, '--model-b', twin, '--image', image, '--class', 'banana', '--json', '-', '--png', png, '--backend', 'cpu']);
    assert.strictEqual(r.code, 0, r.stderr);
    assert.strictEqual(r.stderr, '', 'no progress with --json -');
    const j = JSON.parse(r.stdout);
    assert.deepStrictEqual(Object.keys(j), ['image', 'method', 'class', 'backend', 'a', 'b', 'top1Differs', 'correlation', 'meanAbsDifference', 'difference', 'seconds']);
    assert.deepStrictEqual([j.method, j.class, j.a.target.label, j.b.target.label], ['gradcam', 'banana', 'banana', 'banana']);
    assert.strictEqual(j.correlation, 1);
    assert.strictEqual(j.meanAbsDifference, 0);
    assert.strictEqual(j.difference.values.length, j.difference.width * j.difference.height);
    const meta = await sharp(png).metadata();
    assert.deepStrictEqual([meta.width, meta.height], [3 * 24 + 8, 20]);

    const o = run(['compare', '--model', a, '--model-b', other, '--image', image, '--class', '1', '--backend', 'cpu']);
    assert.strictEqual(o.code, 0, o.stderr);
    const corr = Number(/rank correlation of the maps (-?[\d.]+)/.exec(o.stdout)?.[1]);
    assert.ok(corr < 0.9, o.stdout);
    assert.match(o.stdout, /Grad-CAM maps for "banana"/);
  });

  it('compares a folder, ranked top-1 disagreements first and then by lowest correlation', () => {
    const file = path.join(dir, 'cmp.json');
    const r = run(['compare', '--model', a, '--model-b', other, '--data', data, '--json', file, '--backend', 'cpu', '--show', '4']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepStrictEqual(j.counts, { samples: 9, compared: 9, failed: 0, top1Differs: j.samples.filter((s: { top1Differs: boolean }) => s.top1Differs).length });
    assert.deepStrictEqual(j.samples.map((s: { rank: number }) => s.rank), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (let i = 1; i < j.samples.length; i++) {
      const p = j.samples[i - 1];
      const q = j.samples[i];
      assert.ok(p.top1Differs > q.top1Differs || (p.top1Differs === q.top1Differs && p.correlation <= q.correlation), `${p.relPath} before ${q.relPath}`);
    }
    assert.ok(j.samples.every((s: { explained: { label: string }; givenLabel: string }) => s.explained.label === s.givenLabel));
    const listed = r.stdout.split('\n').filter((l) => /^\s+\d+\. /.test(l));
    assert.strictEqual(listed.length, 4, r.stdout);
    assert.ok(listed[0].includes(j.samples[0].relPath));
  });

  describe('acceptance (#14): models/demo against models/demo-shortcut on samples-shortcut/', () => {
    const demo = path.join(ROOT, 'models', 'demo', 'model.json');
    const shortcut = path.join(ROOT, 'models', 'demo-shortcut', 'model.json');
    const samples = path.join(ROOT, 'samples-shortcut');

    it('lists the watermark-bearing samples among the most disagreeing', () => {
      const boxes = JSON.parse(fs.readFileSync(path.join(samples, 'boxes.json'), 'utf8')) as Record<string, { watermark: unknown }>;
      const marked = new Set(Object.entries(boxes).filter(([, b]) => b.watermark).map(([k]) => k.replace(/^samples-shortcut\//, '')));
      assert.ok(marked.size >= 5, `${marked.size} watermarked samples`);
      const file = path.join(dir, 'acceptance.json');
      const r = run(['compare', '--model', demo, '--model-b', shortcut, '--data', samples, '--method', 'eigencam', '--json', file, '--quiet']);
      assert.strictEqual(r.code, 0, r.stderr);
      const j = JSON.parse(fs.readFileSync(file, 'utf8'));
      const ranked: string[] = j.samples.map((s: { relPath: string }) => s.relPath);
      const n = marked.size;
      const top = ranked.slice(0, n);
      const hits = top.filter((p) => marked.has(p)).length;
      const ranks = ranked.map((p, i) => (marked.has(p) ? i + 1 : 0)).filter(Boolean);
      console.log(`      top-${n}: ${hits} watermarked; ranks of the ${n} watermarked samples among ${ranked.length}: ${ranks.join(', ')}`);
      // Most of the top N are watermarked (N = the number of watermarked samples), and chance would give N * N / total.
      assert.ok(hits > n / 2, `only ${hits} of the ${n} most disagreeing samples carry the watermark: ${top.join(', ')}`);
    });
  });
});
