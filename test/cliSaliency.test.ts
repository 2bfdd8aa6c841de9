/** `cam-lens cam` with the pixel saliency methods (#15): their options, usage errors, JSON and PNG, the built bundle in a child process. */
import * as assert from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import { initBackend } from '../src/extension/engine/backend';
import { divergingIndex, divergingLut } from '../src/shared/colormaps';
import { upsampleBilinear } from '../src/shared/heatmap';
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

function convNet(): tfl.LayersModel {
  const input = tfl.input({ shape: [16, 16, 3] });
  const init = (seed: number) => tfl.initializers.glorotNormal({ seed });
  let x = tfl.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }).apply(input) as tfl.SymbolicTensor;
  x = tfl.layers.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: init(2), name: 'last' }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.globalAveragePooling2d({}).apply(x) as tfl.SymbolicTensor;
  const out = tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(3) }).apply(x) as tfl.SymbolicTensor;
  return tfl.model({ inputs: input, outputs: out });
}

/** The share of pixels of a PNG (RGB) within `tol` of the expected colours on every channel. */
async function matching(png: string, expected: Uint8Array, tol: number): Promise<number> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.strictEqual(data.length, expected.length, `PNG ${info.width}x${info.height}`);
  let ok = 0;
  for (let i = 0; i < data.length; i += 3) {
    if (Math.abs(data[i] - expected[i]) <= tol && Math.abs(data[i + 1] - expected[i + 1]) <= tol && Math.abs(data[i + 2] - expected[i + 2]) <= tol) ok++;
  }
  return ok / (data.length / 3);
}

describe('cam-lens cam: pixel saliency methods', function () {
  this.timeout(180000);
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
    const m = convNet();
    modelJson = (await writeModel(m, path.join(dir, 'model'), { labels: ['apple', 'banana', 'cherry'], preprocess: '[0,1]' })).modelJson;
    m.dispose();
    image = path.join(dir, 'photo.png');
    const px = Buffer.alloc(40 * 30 * 3);
    for (let i = 0; i < px.length; i++) px[i] = Math.round(127 + 120 * Math.sin(i * 0.013));
    await sharp(px, { raw: { width: 40, height: 30, channels: 3 } }).png().toFile(image);
  });

  it('integratedgradients --steps --baseline: a signed map at the input size, completeness in the JSON, a diverging PNG', async () => {
    const png = path.join(dir, 'ig.png');
    const r = run(['cam', '--model', modelJson, '--image', image, '--method', 'integratedgradients', '--steps', '16', '--baseline', 'blurred',
      '--class', 'banana', '--json', '-', '--png', png, '--opacity', '1', '--backend', 'cpu']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.strictEqual(j.method, 'integratedgradients');
    assert.strictEqual(j.layer, '');
    assert.deepStrictEqual([j.heatmap.width, j.heatmap.height, j.heatmap.values.length, j.heatmap.signed], [16, 16, 256, true]);
    assert.ok(j.heatmap.values.every((v: number) => v >= -1 && v <= 1) && j.heatmap.values.some((v: number) => v < 0), 'signed values');
    assert.deepStrictEqual([j.details.steps, j.details.baseline, j.details.passes], [16, 'blurred', 1]);
    const c = j.details.completeness;
    assert.ok(Math.abs(c.gap - (c.attributionSum - (c.inputScore - c.baselineScore))) < 1e-4, JSON.stringify(c));
    assert.ok(typeof c.relativeGap === 'number');
    assert.match(j.details.note, /16 steps from a blurred baseline, completeness gap/);
    // --opacity 1: the diverging colours of the upsampled map, at the image's resolution.
    const up = upsampleBilinear(Float32Array.from(j.heatmap.values), 16, 16, 40, 30);
    const lut = divergingLut();
    const want = new Uint8Array(40 * 30 * 3);
    up.forEach((v, i) => want.set(lut.subarray(3 * divergingIndex(v), 3 * divergingIndex(v) + 3), 3 * i));
    assert.ok(await matching(png, want, 3) > 0.98, 'diverging colours');
  });

  it('guidedbackprop --render rgb: the RGB image in the JSON and as the PNG; --render magnitude has none', async () => {
    const png = path.join(dir, 'gb.png');
    const r = run(['cam', '--model', modelJson, '--image', image, '--method', 'guidedbackprop', '--json', '-', '--png', png, '--opacity', '1', '--backend', 'cpu']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.strictEqual(j.heatmap.rgb.length, 16 * 16 * 3);
    assert.strictEqual(j.heatmap.signed, undefined);
    assert.strictEqual(j.details.render, 'rgb');
    const rgb = Float32Array.from(j.heatmap.rgb as number[]);
    const want = new Uint8Array(40 * 30 * 3);
    for (let ch = 0; ch < 3; ch++) {
      const plane = Float32Array.from({ length: 256 }, (_, i) => rgb[3 * i + ch]);
      upsampleBilinear(plane, 16, 16, 40, 30).forEach((v, i) => { want[3 * i + ch] = Math.round(Math.min(1, Math.max(0, v)) * 255); });
    }
    assert.ok(await matching(png, want, 2) > 0.98, 'RGB colours');
    const m = run(['cam', '--model', modelJson, '--image', image, '--method', 'guidedgradcam', '--render', 'magnitude', '--layer', 'last', '--json', '-', '--backend', 'cpu']);
    assert.strictEqual(m.code, 0, m.stderr);
    const jm = JSON.parse(m.stdout);
    assert.deepStrictEqual([jm.layer, jm.heatmap.rgb, jm.details.render, jm.heatmap.width], ['last', undefined, 'magnitude', 16]);
  });

  it('smoothgrad --samples --noise --batch-size, and the text line says the map is at the input', () => {
    const r = run(['cam', '--model', modelJson, '--image', image, '--method', 'smoothgrad', '--samples', '3', '--noise', '0.1', '--batch-size', '2', '--json', '-', '--backend', 'cpu']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepStrictEqual([j.details.samples, j.details.noise, j.details.batchSize, j.details.passes], [3, 0.1, 2, 2]);
    const t = run(['cam', '--model', modelJson, '--image', image, '--method', 'gradient', '--backend', 'cpu']);
    assert.strictEqual(t.code, 0, t.stderr);
    assert.match(t.stdout, /^Gradient \(vanilla saliency\) for "\w+" \([\d.]+%\) at the input, .*16x16 map/);
  });

  it('--metrics scores a signed map by its magnitude', () => {
    const r = run(['cam', '--model', modelJson, '--image', image, '--method', 'integratedgradients', '--steps', '8', '--metrics', '--batch-size', '4', '--json', '-', '--backend', 'cpu']);
    assert.strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.strictEqual(j.details.batchSize, 4, '--batch-size sets the path batches too');
    for (const k of ['deletionAuc', 'insertionAuc', 'averageDrop']) assert.ok(Number.isFinite(j.metrics.map[k]), k);
    assert.ok(j.metrics.map.averageDrop >= 0 && j.metrics.map.averageDrop <= 100, `average drop ${j.metrics.map.averageDrop}`);
  });

  it('usage errors exit 2 before any file is read', () => {
    const missing = path.join(dir, 'no-such-model', 'model.json');
    const cases: [string[], RegExp][] = [
      [['--method', 'gradcam', '--samples', '5'], /--samples applies to --method smoothgrad only/],
      [['--method', 'smoothgrad', '--steps', '16'], /--steps applies to --method integratedgradients only/],
      [['--method', 'integratedgradients', '--render', 'rgb'], /--render applies to --method guidedbackprop and guidedgradcam only/],
      [['--method', 'integratedgradients', '--steps', '4'], /--steps must be an integer from 8 to 512, got "4"/],
      [['--method', 'integratedgradients', '--steps', '1e3'], /--steps must be an integer from 8 to 512/],
      [['--method', 'integratedgradients', '--baseline', 'white'], /--baseline must be black or blurred, got "white"/],
      [['--method', 'smoothgrad', '--noise', '1.5'], /--noise must be a number from 0 to 1, got "1.5"/],
      [['--method', 'smoothgrad', '--noise', 'lots'], /--noise must be a number/],
      [['--method', 'smoothgrad', '--samples', '0'], /--samples must be an integer from 1 to 1000/],
      [['--method', 'guidedbackprop', '--render', 'gray'], /--render must be rgb or magnitude, got "gray"/],
      [['--method', 'gradient', '--batch-size', '4'], /--batch-size applies to --method scorecam/],
      [['--method', 'smoothgrad', '--batch-size', '0'], /--batch-size must be/],
    ];
    for (const [args, re] of cases) {
      const r = run(['cam', '--model', missing, '--image', path.join(dir, 'missing.png'), ...args]);
      assert.strictEqual(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr.trim(), re, args.join(' '));
      assert.strictEqual(r.stderr.trim().split('\n').length, 1, 'one line');
    }
  });
});
