/**
 * The compare panel's UI (two models side by side, #14 item 4) in headless Chromium against a fake host (see
 * harness.ts): the real page from panels/html.ts with its CSP (served for kind 'compare' by a route on the suite's
 * page), the real bundle dist/webview-compare.js and the real stylesheets. One result comes from the real engine
 * (two small models compared on an image), so the payload is exactly what the worker sends.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import sharp from 'sharp';
import { buildPanelHtml, createNonce } from '../../src/extension/panels/html';
import type { CompareHostMessage, ComparePayload, CompareRow, CompareViewState } from '../../src/shared/compareProtocol';
import { initBackend } from '../../src/extension/engine/backend';
import { loadModel } from '../../src/extension/engine/model';
import { compareImage } from '../../src/extension/engine/analysis/compare';
import { bnModel } from '../helpers/models';
import { tempDir, writeModel } from '../helpers/modelFiles';
import { ensureBuilt } from '../helpers/build';
import { createPanelHost, requireChromium, screenshot, sharedBrowser, startServer, type PanelHost, type PanelPage, type Server } from './harness';

const LABELS = ['cat', 'dog', 'fox'];

function viewState(over: Partial<CompareViewState> = {}): CompareViewState {
  return { version: 1, modelA: '/models/a/model.json', modelB: '/models/b/model.json', mode: 'image', source: '/data/pet.png', method: 'gradcam', classLabel: '', opacity: 0.5, ...over };
}

function didInit(state = viewState()): CompareHostMessage {
  return {
    type: 'panel/didInit', mode: state.mode, modelA: { path: state.modelA, name: 'pets_v1' }, modelB: { path: state.modelB, name: 'pets_v2' },
    sourceName: path.basename(state.source), methods: [{ id: 'gradcam', label: 'Grad-CAM' }, { id: 'eigencam', label: 'Eigen-CAM' }], classes: LABELS, state,
  };
}

/** 4x4 maps: A hot in the left half, B in the right half, so A - B is positive on the left and negative on the right. */
function halves(): ComparePayload {
  const left = new Float32Array(16).map((_, i) => (i % 4 < 2 ? 1 : 0));
  const right = new Float32Array(16).map((_, i) => (i % 4 < 2 ? 0 : 1));
  const pred = (label: string, index: number, probability: number) => ({ index, label, probability });
  return {
    method: 'gradcam', methodLabel: 'Grad-CAM', classLabel: 'dog',
    a: { name: 'pets_v1', predictions: [pred('dog', 1, 0.9), pred('cat', 0, 0.1)], layer: 'conv', target: pred('dog', 1, 0.9), heatmap: { width: 4, height: 4, values: left, rawMin: 0, rawMax: 1 } },
    b: { name: 'pets_v2', predictions: [pred('cat', 0, 0.6), pred('dog', 1, 0.4)], layer: 'conv', target: pred('dog', 1, 0.4), heatmap: { width: 4, height: 4, values: right, rawMin: 0, rawMax: 1 } },
    difference: { width: 4, height: 4, values: left.map((v, i) => v - right[i]) },
    correlation: -1, meanAbsDifference: 1, top1Differs: true, imageSize: [64, 32],
  };
}

function row(p: string, top1Differs: boolean, correlation: number): CompareRow {
  return { path: p, givenLabel: 'dog', top1A: { index: 1, label: 'dog', probability: 0.9 }, top1B: { index: top1Differs ? 0 : 1, label: top1Differs ? 'cat' : 'dog', probability: 0.7 }, top1Differs, correlation, meanAbsDifference: 1 - correlation };
}

/** RGBA of the canvas `id` at a fraction (fx, fy) of its size. */
async function pixel(p: PanelPage, id: string, fx: number, fy: number): Promise<number[]> {
  return p.page.evaluate(([cid, x, y]) => {
    const c = document.getElementById(cid as string) as HTMLCanvasElement;
    const ctx = c.getContext('2d') as CanvasRenderingContext2D;
    return Array.from(ctx.getImageData(Math.floor(c.width * (x as number)), Math.floor(c.height * (y as number)), 1, 1).data);
  }, [id, fx, fy] as const);
}

describe('compare panel (headless Chromium, fake host)', function () {
  this.timeout(60000);
  this.slow(5000);
  let server: Server;
  let host: PanelHost;
  let imageUri: string;

  before(async function () {
    requireChromium(this);
    ensureBuilt(['webview-compare.js'], ['src/webview', 'src/shared']);
    server = await startServer();
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#557799"/><circle cx="32" cy="32" r="14" fill="#dd9944"/></svg>';
    server.assets.set('/assets/pet.png', await sharp(Buffer.from(svg)).png().toBuffer());
    imageUri = `${server.origin}/assets/pet.png`;
    host = await createPanelHost(await sharedBrowser(), server);
    await host.page.route(/\/compare\.html(\?.*)?$/, (route) => route.fulfill({
      contentType: 'text/html; charset=utf-8',
      body: buildPanelHtml({
        cspSource: server.origin, nonce: createNonce(), scriptUri: `${server.origin}/dist/webview-compare.js`,
        styleUris: [`${server.origin}/media/common.css`, `${server.origin}/media/compare.css`, `${server.origin}/theme/theme-dark.css`],
        title: 'Compare models', kind: 'compare',
      }),
    }));
  });

  after(async () => {
    await host?.close();
    await server?.close();
  });

  it('speaks first, asks for the comparison after didInit and shows both maps, the signed difference and the correlation', async () => {
    const p = await host.open('compare');
    await p.waitForSent('panel/ready');
    await p.page.waitForTimeout(100);
    assert.deepEqual((await p.recorded()).sent.map((m) => m.type), ['panel/ready']);
    await p.send(didInit());
    const req = await p.waitForSent('compare/compute');
    assert.deepEqual([req.method, req.classLabel, req.path], ['gradcam', '', undefined]);
    assert.equal(await p.page.textContent('#model-a'), 'pets_v1');
    assert.equal(await p.page.textContent('#model-b'), 'pets_v2');
    assert.equal(await p.page.isHidden('#folder'), true);
    await p.send({ type: 'compare/didCompute', requestId: req.requestId, path: '/data/pet.png', imageName: 'pet.png', imageUri, result: halves() });
    await p.page.waitForFunction(() => /rank correlation -1\.000/.test(document.getElementById('summary')?.textContent ?? ''));
    assert.match(await p.page.textContent('#summary') ?? '', /top-1 differs: A "dog", B "cat"/);
    assert.match(await p.page.textContent('#caption-a') ?? '', /pets_v1 · "dog" 90\.0%/);
    await p.page.waitForTimeout(200);
    // A's map is hot on the left, B's on the right; the difference red (A more) on the left, blue (B more) on the right.
    const [aLeft, aRight] = [await pixel(p, 'canvas-a', 0.1, 0.5), await pixel(p, 'canvas-a', 0.9, 0.5)];
    assert.ok(aLeft[3] > 0 && aLeft[0] > aRight[0], `A left ${aLeft} right ${aRight}`);
    const [dLeft, dRight] = [await pixel(p, 'canvas-diff', 0.1, 0.5), await pixel(p, 'canvas-diff', 0.9, 0.5)];
    assert.ok(dLeft[0] > dLeft[2] + 60, `difference left is red: ${dLeft}`);
    assert.ok(dRight[2] > dRight[0] + 60, `difference right is blue: ${dRight}`);
    assert.equal(await p.page.getAttribute('#image-a', 'src'), imageUri);
    // The stages take the image's shape (64 x 32 here).
    const box = await p.page.locator('#stage-b').boundingBox();
    assert.ok(box && Math.abs(box.width / box.height - 2) < 0.05, `stage ${box?.width}x${box?.height}`);
    const rec = await p.recorded();
    assert.deepEqual(rec.violations, []);
    assert.deepEqual(p.errors, []);
    await screenshot(p.page, 'compare-image.png');
  });

  it('asks again with the class and method the user picks, and ignores the reply of a superseded request', async () => {
    const p = await host.open('compare');
    await p.waitForSent('panel/ready');
    await p.send(didInit());
    const first = await p.waitForSent('compare/compute');
    await p.page.evaluate(() => {
      const sel = document.getElementById('class') as HTMLElement & { value: string };
      sel.value = 'fox';
      sel.dispatchEvent(new Event('change'));
    });
    const second = await p.waitForSent('compare/compute', 2);
    assert.deepEqual([second.method, second.classLabel], ['gradcam', 'fox']);
    assert.equal(((await p.recorded()).state as CompareViewState).classLabel, 'fox');
    // The first reply comes late: it must not paint.
    await p.send({ type: 'compare/didCompute', requestId: first.requestId, path: '/data/pet.png', imageName: 'pet.png', imageUri, result: halves() });
    await p.page.waitForTimeout(150);
    assert.equal(await p.page.textContent('#summary'), '');
    await p.send({ type: 'request/didFail', requestId: second.requestId, error: { name: 'CamLensError', message: 'class "fox" of model A (pets_v1) is not among the classes of model B (pets_v2)', code: 'UNKNOWN_CLASS' } });
    await p.page.waitForSelector('#error:not([hidden])');
    assert.match(await p.page.textContent('#error') ?? '', /not among the classes of model B/);
  });

  it('lists a folder most disagreeing first and opens a sample side by side with the keyboard', async () => {
    const p = await host.open('compare');
    await p.waitForSent('panel/ready');
    await p.send(didInit(viewState({ mode: 'folder', source: '/data/pets' })));
    assert.equal(await p.page.isVisible('#folder'), true);
    await p.send({ type: 'folder/didStart', runId: 3, total: 3 });
    await p.send({ type: 'folder/didProgress', runId: 3, done: 2, total: 3, failed: 0, rows: [row('dog/b.png', false, 0.9), row('dog/a.png', true, 0.5)] });
    await p.page.waitForFunction(() => document.querySelectorAll('#rows [role="option"]').length === 2);
    assert.equal((await p.sentOfType('compare/compute')).length, 0, 'nothing to compare before a sample is chosen');
    const ranked = [row('dog/a.png', true, 0.5), row('dog/c.png', false, 0.1), row('dog/b.png', false, 0.9)];
    await p.send({ type: 'folder/didFinish', runId: 3, rows: ranked, failed: 0, cancelled: false, seconds: 1.5 });
    await p.page.waitForFunction(() => document.querySelectorAll('#rows [role="option"]').length === 3);
    const items = await p.page.$$eval('#rows [role="option"]', (els) => els.map((e) => (e as HTMLElement).dataset.path));
    assert.deepEqual(items, ['dog/a.png', 'dog/c.png', 'dog/b.png']);
    assert.match(await p.page.textContent('#folder-status') ?? '', /3 samples compared .* 1 top-1 disagreement/);
    // The most disagreeing sample is shown at once.
    const shown = await p.waitForSent('compare/compute');
    assert.equal(shown.path, 'dog/a.png');
    // Keyboard: the list is one Tab stop; Down then Enter opens the next sample.
    await p.page.focus('#rows [role="option"][tabindex="0"]');
    await p.page.keyboard.press('ArrowDown');
    await p.page.keyboard.press('Enter');
    const next = await p.waitForSent('compare/compute', 2);
    assert.equal(next.path, 'dog/c.png');
    assert.equal(((await p.recorded()).state as CompareViewState).selected, 'dog/c.png');
    assert.equal(await p.page.getAttribute('#rows [data-path="dog/c.png"]', 'aria-selected'), 'true');
    // A new method reruns the folder.
    await p.page.evaluate(() => {
      const sel = document.getElementById('method') as HTMLElement & { value: string };
      sel.value = 'eigencam';
      sel.dispatchEvent(new Event('change'));
    });
    const rerun = await p.waitForSent('folder/run');
    assert.equal(rerun.method, 'eigencam');
    assert.deepEqual((await p.recorded()).violations, []);
    assert.deepEqual(p.errors, []);
    await screenshot(p.page, 'compare-folder.png');
  });

  it('draws a comparison the real engine made (identical models: correlation 1, a neutral difference)', async () => {
    await initBackend('cpu');
    const dir = tempDir();
    const m = bnModel();
    const a = await loadModel((await writeModel(m, path.join(dir, 'a'), { labels: ['apple', 'banana', 'cherry', 'date', 'elder'], inputSize: [16, 16], preprocess: '[0,1]' })).modelJson);
    const b = await loadModel((await writeModel(m, path.join(dir, 'b'), { labels: ['apple', 'banana', 'cherry', 'date', 'elder'], inputSize: [16, 16], preprocess: '[0,1]' })).modelJson);
    m.dispose();
    const img = path.join(dir, 'pet.png');
    await sharp(server.assets.get('/assets/pet.png') as Buffer).toFile(img);
    const c = await compareImage(a, b, img, { method: 'gradcam' });
    a.dispose();
    b.dispose();
    const side = (s: typeof c.a) => ({ name: s.name, predictions: s.predictions, layer: s.layer, target: s.target, heatmap: { width: s.heatmap.width, height: s.heatmap.height, values: s.heatmap.values, rawMin: s.heatmap.rawMin, rawMax: s.heatmap.rawMax } });
    const result: ComparePayload = {
      method: c.method, methodLabel: 'Grad-CAM', classLabel: c.classLabel, a: side(c.a), b: side(c.b),
      difference: { width: c.width, height: c.height, values: c.difference }, correlation: c.correlation, meanAbsDifference: c.meanAbsDifference,
      top1Differs: c.top1Differs, imageSize: [c.image.width, c.image.height],
    };
    const p = await host.open('compare');
    await p.waitForSent('panel/ready');
    await p.send(didInit());
    const req = await p.waitForSent('compare/compute');
    await p.send({ type: 'compare/didCompute', requestId: req.requestId, path: img, imageName: 'pet.png', imageUri, result });
    await p.page.waitForFunction(() => /rank correlation 1\.000 · mean \|A − B\| 0\.000 · top-1 agrees/.test(document.getElementById('summary')?.textContent ?? ''));
    await p.page.waitForTimeout(200);
    const d = await pixel(p, 'canvas-diff', 0.5, 0.5);
    // The neutral colour of the diverging map (#f7f7f7) at the chosen opacity: grey, neither red nor blue.
    assert.ok(Math.abs(d[0] - d[2]) < 8, `neutral difference: ${d}`);
    assert.deepEqual(p.errors, []);
  });
});
