/** `cam-lens cam` with the CAM family of issue #15: ablationcam, eigengradcam, gradcamelementwise, --aug-smooth, --eigen-smooth, several --layer. */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
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

function newestSource(dir: string): number {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestSource(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}

describe('cam-lens cam: the CAM family (Ablation-CAM, Eigen-Grad-CAM, element-wise Grad-CAM, smoothing, several layers)', function () {
  let modelJson: string;
  let image: string;
  let dir: string;
  before(async function () {
    if (!fs.existsSync(CLI) || newestSource(path.join(ROOT, 'src')) > fs.statSync(CLI).mtimeMs) {
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
  });

  const base = () => ['cam', '--model', modelJson, '--image', image, '--backend', 'cpu', '--class', 'banana', '--json', '-'];

  it('runs each new method with the contract object; ablationcam takes --channels and --batch-size and says which channels', () => {
    for (const method of ['ablationcam', 'eigengradcam', 'gradcamelementwise']) {
      const r = run([...base(), '--method', method]);
      assert.strictEqual(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.strictEqual(j.method, method);
      assert.strictEqual(j.layer, 'res');
      assert.deepStrictEqual([j.heatmap.width, j.heatmap.height], [8, 8]);
      assert.ok(j.heatmap.values.every((v: number) => v >= 0 && v <= 1));
    }
    const r = run([...base(), '--method', 'ablationcam', '--channels', '3', '--batch-size', '2']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.strictEqual(j.details.note, 'top 3 of 8 channels by mean activation');
    assert.strictEqual(j.details.channels.scored, 3);
    const all = JSON.parse(run([...base(), '--method', 'ablationcam', '--channels', 'all']).stdout);
    assert.strictEqual(all.details.channels.scored, all.details.channels.usable);
  });

  it('--aug-smooth and --eigen-smooth change the map and say so; the JSON names them', () => {
    const plain = JSON.parse(run([...base(), '--method', 'gradcam']).stdout);
    const eig = run([...base(), '--method', 'gradcam', '--eigen-smooth']);
    assert.strictEqual(eig.code, 0, eig.stderr);
    const je = JSON.parse(eig.stdout);
    assert.strictEqual(je.eigenSmooth, true);
    assert.match(je.details.note, /eigen-smoothed/);
    assert.deepStrictEqual([je.heatmap.width, je.heatmap.height], [8, 8]);
    const aug = run([...base(), '--method', 'layercam', '--aug-smooth']);
    assert.strictEqual(aug.code, 0, aug.stderr);
    const ja = JSON.parse(aug.stdout);
    assert.strictEqual(ja.augSmooth, true);
    assert.deepStrictEqual([ja.heatmap.width, ja.heatmap.height], [16, 16], 'at the input size');
    assert.match(ja.details.note, /aug-smoothed: mean of 6 copies/);
    assert.notDeepStrictEqual(je.heatmap.values, plain.heatmap.values);
  });

  it('--layer a,b and repeated --layer average the layers at the input size, the same either way; the text line names them', () => {
    const a = run([...base(), '--method', 'gradcam', '--layer', 'r1,res']);
    assert.strictEqual(a.code, 0, a.stderr);
    const ja = JSON.parse(a.stdout);
    assert.deepStrictEqual(ja.layers, ['r1', 'res']);
    assert.strictEqual(ja.layer, 'r1');
    assert.deepStrictEqual([ja.heatmap.width, ja.heatmap.height], [16, 16]);
    const b = JSON.parse(run([...base(), '--method', 'gradcam', '--layer', 'r1', '--layer', 'res']).stdout);
    assert.deepStrictEqual(b.heatmap.values, ja.heatmap.values);
    const one = JSON.parse(run([...base(), '--method', 'gradcam', '--layer', 'r1']).stdout);
    assert.strictEqual(one.layers, undefined);
    assert.deepStrictEqual([one.heatmap.width, one.heatmap.height], [8, 8]);
    const text = run(['cam', '--model', modelJson, '--image', image, '--backend', 'cpu', '--method', 'ablationcam', '--layer', 'r1,res', '--eigen-smooth', '--aug-smooth', '--quiet']);
    assert.strictEqual(text.code, 0, text.stderr);
    assert.match(text.stdout, /Ablation-CAM for ".*" \(.*%\) at r1 \+ res, aug-smoothed.*16x16 map/);
  });

  it('usage errors exit 2 before any file is read', () => {
    const missing = path.join(dir, 'nope.json');
    const cases: Array<[string[], RegExp]> = [
      [['--method', 'eigencam', '--eigen-smooth'], /--eigen-smooth does not apply to --method eigencam: its map already is the first principal component/],
      [['--method', 'eigengradcam', '--eigen-smooth'], /--eigen-smooth does not apply to --method eigengradcam/],
      [['--method', 'gradcam', '--channels', '4'], /--channels applies to --method scorecam and ablationcam only/],
      [['--method', 'gradcam', '--batch-size', '4'], /--batch-size applies to --method scorecam, ablationcam/],
      [['--method', 'ablationcam', '--channels', 'many'], /--channels must be all or an integer/],
      [['--method', 'gradcam', '--layer', 'r1,,res'], /--layer needs layer names/],
      [['--method', 'gradcam', '--layer', 'r1', '--layer', 'r1'], /--layer lists "r1" twice/],
      [['--method', 'gradcam', '--aug-smooth=yes'], /--aug-smooth takes no value/],
    ];
    if (['gradient', 'smoothgrad'].some((m) => run(['cam', '--help']).stdout.includes(m))) {
      cases.push([['--method', 'gradient', '--aug-smooth'], /--aug-smooth applies to class activation maps, not to --method gradient/]);
      cases.push([['--method', 'gradient', '--layer', 'r1,res'], /several layers .* apply to class activation maps/]);
    }
    for (const [args, re] of cases) {
      const r = run(['cam', '--model', missing, '--image', missing, '--backend', 'cpu', ...args]);
      assert.strictEqual(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
    }
    // A layer the model does not have is bad input (the model decides): exit 1, named.
    const r = run([...base(), '--method', 'gradcam', '--layer', 'r1,nope']);
    assert.strictEqual(r.code, 1);
    assert.match(r.stderr, /nope/);
  });

  it('--help lists the options', () => {
    const r = run(['--help']);
    assert.match(r.stdout, /--aug-smooth/);
    assert.match(r.stdout, /--eigen-smooth/);
    assert.match(r.stdout, /--layer <a,b>/);
    assert.match(r.stdout, /ablationcam \| eigencam \| eigengradcam/);
  });
});
