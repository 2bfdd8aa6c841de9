/**
 * The explain panel's requests for the method family (#15 item 6) through the real engine worker thread: several
 * target layers averaged, the Options area's values reaching the method, pixel saliency's signed and RGB maps in
 * the reply, the request guard, and the PNG export of pixel maps in their own colours (engine/overlay.ts).
 *
 * The worker is bundled as test/worker.test.ts bundles it (same entry, format and externals).
 */
import * as assert from 'assert';
import * as path from 'path';
import * as esbuild from 'esbuild';
import sharp from 'sharp';
import { initBackend } from '../src/extension/engine/backend';
import { renderOverlayPng } from '../src/extension/engine/overlay';
import type { DecodedImage } from '../src/extension/engine/image';
import { divergingLut } from '../src/shared/colormaps';
import { upsampleBilinear } from '../src/shared/heatmap';
import { EngineClient, EngineError } from '../src/extension/engineClient';
import type { ModelRef } from '../src/extension/workerProtocol';
import { tempDir, writeModel } from './helpers/modelFiles';
import { bnModel } from './helpers/models';

const ROOT = path.resolve(__dirname, '..');

async function buildWorker(): Promise<string> {
  const outfile = path.join(ROOT, 'node_modules', '.cache', 'cam-lens-test', 'worker-methods.js');
  await esbuild.build({
    entryPoints: [path.join(ROOT, 'src', 'extension', 'worker.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node18',
    outfile,
    external: ['vscode', 'sharp', '@tensorflow/*', 'onnxruntime-node'],
    logLevel: 'error',
  });
  return outfile;
}

async function writePng(file: string, w: number, h: number, seed: number): Promise<string> {
  const px = Buffer.alloc(w * h * 3);
  let s = seed;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = s >> 23;
  }
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(file);
  return file;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

describe('engine worker: the explain panel\'s layers and options (#15)', function () {
  this.timeout(120000);
  let client: EngineClient;
  let model: ModelRef;
  let image: { path: string };

  before(async () => {
    await initBackend('cpu');
    const workerPath = await buildWorker();
    const dir = tempDir('cam-lens-worker-methods-');
    const written = await writeModel(bnModel(), path.join(dir, 'bn'), { labels: ['ant', 'bee', 'cat', 'dog', 'eel'], preprocess: '[0,1]' });
    model = { path: written.modelJson };
    image = { path: await writePng(path.join(dir, 'img.png'), 24, 20, 5) };
    client = new EngineClient({ workerPath, backend: 'cpu' });
  });
  after(async () => {
    await client?.dispose();
  });

  it('lists each method\'s kind, layer use and params (the common CAM options on CAM methods only)', async () => {
    const d = await client.describeModel(model);
    const by = new Map(d.methods.map((m) => [m.id, m]));
    assert.strictEqual(by.get('gradcam')?.group, 'cam');
    assert.ok(by.get('gradcam')?.params?.some((p) => p.id === 'augSmooth' && p.common === true));
    assert.strictEqual(by.get('smoothgrad')?.group, 'pixel');
    assert.strictEqual(by.get('smoothgrad')?.usesLayer, false);
    assert.ok(!by.get('smoothgrad')?.params?.some((p) => p.common), 'no CAM option on a pixel method');
    assert.strictEqual(by.get('guidedgradcam')?.usesLayer, true);
  });

  it('averages several layers: the reply names them and the map differs from either layer\'s', async () => {
    const one = await client.computeCam({ model, image, method: 'gradcam', layer: 'c1' });
    const other = await client.computeCam({ model, image, method: 'gradcam', layer: 'res' });
    const both = await client.computeCam({ model, image, method: 'gradcam', layers: ['c1', 'res'] });
    assert.strictEqual(one.layers, undefined);
    assert.deepStrictEqual(both.layers, ['c1', 'res']);
    assert.strictEqual(both.layer, 'c1');
    assert.deepStrictEqual([both.heatmap.width, both.heatmap.height], [16, 16], 'averaged at the model input size');
    assert.ok(both.heatmap.values.every((v) => Number.isFinite(v) && v >= 0 && v <= 1));
    // Each layer's map brought to the input size differs from the average (the layers disagree on this model).
    const at16 = (r: typeof one) => upsampleBilinear(r.heatmap.values, r.heatmap.width, r.heatmap.height, 16, 16);
    assert.ok(maxAbsDiff(at16(one), at16(other)) > 1e-2, 'the two layers give different maps');
    for (const single of [one, other]) assert.ok(maxAbsDiff(at16(single), both.heatmap.values) > 1e-3, `${single.layer} alone is not the average`);
  });

  it('passes the Options area\'s values to the method (Score-CAM\'s budget, SmoothGrad\'s samples) and refuses bad ones', async () => {
    const two = await client.computeCam({ model, image, method: 'scorecam', options: { channels: 2 } });
    assert.strictEqual(two.details?.channels?.scored, 2);
    const four = await client.computeCam({ model, image, method: 'scorecam', options: { channels: 4 } });
    assert.strictEqual(four.details?.channels?.scored, 4);
    const a = await client.computeCam({ model, image, method: 'smoothgrad', options: { samples: 2, noise: 0.3 } });
    const b = await client.computeCam({ model, image, method: 'smoothgrad', options: { samples: 3, noise: 0.3 } });
    assert.ok(maxAbsDiff(a.heatmap.values, b.heatmap.values) > 1e-4, 'another sample count, another map');
    await assert.rejects(client.computeCam({ model, image, method: 'smoothgrad', options: { samples: -1 } }), (e: unknown) => e instanceof EngineError && e.code === 'BAD_ARGUMENT');
  });

  it('replies with a pixel map at input resolution: signed for gradients, RGB for guided backpropagation', async () => {
    const g = await client.computeCam({ model, image, method: 'gradient' });
    assert.deepStrictEqual([g.heatmap.width, g.heatmap.height], [16, 16]);
    assert.strictEqual(g.heatmap.signed, true);
    assert.ok(g.heatmap.values.some((v) => v < 0) && g.heatmap.values.every((v) => v >= -1 && v <= 1));
    const gb = await client.computeCam({ model, image, method: 'guidedbackprop' });
    assert.strictEqual(gb.heatmap.rgb?.length, 16 * 16 * 3);
    // Export PNG through the worker keeps the colouring: a signed map is not painted with the colormap.
    const png = await client.renderOverlay({ image, heatmap: g.heatmap, colormap: 'turbo', opacity: 1 });
    const { data } = await sharp(Buffer.from(png.png)).raw().toBuffer({ resolveWithObject: true });
    const lut = divergingLut();
    const palette = new Set<string>();
    for (let i = 0; i < 256; i++) palette.add(`${lut[3 * i]},${lut[3 * i + 1]},${lut[3 * i + 2]}`);
    let inPalette = 0;
    for (let i = 0; i < data.length; i += 3) if (palette.has(`${data[i]},${data[i + 1]},${data[i + 2]}`)) inPalette++;
    assert.strictEqual(inPalette, data.length / 3, 'every pixel of an opaque signed overlay is a diverging colour');
  });

  it('refuses a layers list that is not 1 to 32 names', async () => {
    for (const layers of [[], [''], new Array(33).fill('c1')]) {
      await assert.rejects(client.computeCam({ model, image, method: 'gradcam', layers }), (e: unknown) => e instanceof EngineError && e.code === 'BAD_REQUEST', JSON.stringify(layers).slice(0, 40));
    }
  });
});

describe('renderOverlayPng: pixel maps in their own colours', () => {
  const image: DecodedImage = { width: 4, height: 2, channels: 3, data: new Uint8Array(4 * 2 * 3).fill(100), originalChannels: 3, format: 'png' } as DecodedImage;

  it('paints a signed map with the diverging colormap: -1 blue end, +1 red end, 0 neutral', async () => {
    const values = new Float32Array([-1, -1, 1, 1, 0, 0, 0, 0]);
    const png = await renderOverlayPng(image, { width: 4, height: 2, values, signed: true }, { colormap: 'gray', opacity: 1 });
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    const lut = divergingLut();
    assert.deepStrictEqual([...data.subarray(0, 3)], [lut[0], lut[1], lut[2]]);
    assert.deepStrictEqual([...data.subarray(9, 12)], [lut[765], lut[766], lut[767]]);
    assert.deepStrictEqual([...data.subarray(21, 24)], [lut[381], lut[382], lut[383]]);
  });

  it('paints an RGB map as its colours, blended with the opacity', async () => {
    const rgb = new Float32Array(8 * 3);
    for (let i = 0; i < 8; i++) rgb.set([1, 0, 0.5], 3 * i);
    const png = await renderOverlayPng(image, { width: 4, height: 2, values: new Float32Array(8), rgb }, { opacity: 0.5 });
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.deepStrictEqual([...data.subarray(0, 3)], [178, 50, 114]);
  });
});
