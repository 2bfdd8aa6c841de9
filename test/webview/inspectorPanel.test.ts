/**
 * The model inspector's UI in headless Chromium against a fake host (see harness.ts).
 */
import * as assert from 'node:assert/strict';
import sharp from 'sharp';
import type { FeatureMapsPayload } from '../../src/shared/protocol';
import { featureMaps, inspectorInit, LAYERS, testImagePng } from './fixtures';
import { createPanelHost, ensureBundles, sharedBrowser, requireChromium, screenshot, startServer, themeReport, type PanelHost, type PanelPage, type Server } from './harness';

describe('model inspector panel (headless Chromium, fake host)', function () {
  this.timeout(30000);
  let server: Server;
  let host: PanelHost;
  let imageUri: string;

  before(async function () {
    requireChromium(this);
    ensureBundles();
    server = await startServer();
    server.assets.set('/assets/cat_dog.png', await testImagePng());
    imageUri = `${server.origin}/assets/cat_dog.png`;
    host = await createPanelHost(await sharedBrowser(), server);
  });

  after(async () => {
    await host?.close();
    await server?.close();
  });

  async function initialised(): Promise<PanelPage> {
    const p = await host.open('inspector');
    await p.waitForSent('panel/ready');
    await p.send(inspectorInit());
    await p.page.waitForSelector('tr[data-layer]');
    return p;
  }

  /** Initialised, an image chosen: returns the features/compute the panel sent for the recommended layer. */
  async function withImage(p: PanelPage) {
    await p.page.click('#choose-image');
    const choose = await p.waitForSent('image/choose');
    await p.send({
      type: 'image/didChoose',
      requestId: choose.requestId,
      imageName: 'cat_dog.png',
      imageUri,
      predictions: [{ index: 1, label: 'boxer', probability: 0.35 }, { index: 0, label: 'tabby cat', probability: 0.21 }],
    });
    return p.waitForSent('features/compute');
  }

  /** Channel indices of the grid's canvases in display order. */
  function gridOrder(p: PanelPage): Promise<number[]> {
    return p.page.$$eval('#feature-grid canvas[data-channel]', (els) => els.map((e) => Number((e as HTMLElement).dataset.channel)));
  }

  it('posts panel/ready first, then lists every layer with its details', async () => {
    const p = await host.open('inspector');
    await p.waitForSent('panel/ready');
    assert.deepEqual((await p.recorded()).sent.map((m) => m.type), ['panel/ready']);
    await p.send(inspectorInit());
    await p.page.waitForSelector('tr[data-layer]');
    const rows = await p.page.$$eval('tr[data-layer]', (trs) => trs.map((tr) => ({
      layer: (tr as HTMLElement).dataset.layer,
      spatial: tr.classList.contains('spatial'),
      cells: Array.from(tr.querySelectorAll('td')).map((td) => td.textContent?.trim()),
    })));
    assert.deepEqual(rows.map((r) => r.layer), LAYERS.map((l) => l.name));
    assert.deepEqual(rows.map((r) => r.spatial), LAYERS.map((l) => l.spatial));
    const dense = rows.find((r) => r.layer === 'dense')!;
    assert.deepEqual(dense.cells, ['dense', 'Dense', '[?, 10]', '5,130', 'global_average_pooling2d_1']);
    assert.match(rows.find((r) => r.layer === 'conv_pw_13_relu')!.cells[0] ?? '', /spatial.*recommended/);
    assert.equal((await p.page.textContent('#title'))?.trim(), 'Layers of mobilenet_v1_0.25_224');
    assert.match((await p.page.textContent('#model-summary')) ?? '', /6 layers \(4 spatial\) · 5,346 parameters/);
  });

  it('asks for the feature maps of the recommended layer once an image is chosen, with the top class', async () => {
    const p = await initialised();
    const req = await withImage(p);
    assert.deepEqual([req.layer, req.classIndex], ['conv_pw_13_relu', 1]);
    assert.equal(await p.page.getAttribute('tr[data-layer="conv_pw_13_relu"]', 'aria-selected'), 'true');
    assert.equal(await p.page.isVisible('#progress'), true);
    // Keyboard: move to another spatial row and select it with Enter.
    await p.page.focus('tr[data-layer="conv_pw_13_relu"]');
    await p.page.keyboard.press('ArrowUp');
    await p.page.keyboard.press('Enter');
    const next = await p.waitForSent('features/compute', 2);
    assert.equal(next.layer, 'conv_pw_12_relu');
  });

  it('explains why a non-spatial layer has no feature maps, without asking the host', async () => {
    const p = await initialised();
    await withImage(p);
    await p.page.click('tr[data-layer="dense"]');
    assert.match((await p.page.textContent('#feature-status')) ?? '', /dense has no spatial output.*\[\?, 10\]/);
    assert.equal((await p.sentOfType('features/compute')).length, 1);
  });

  it('draws one canvas per channel, lazily, and keeps 512 channels smooth', async () => {
    const p = await initialised();
    const req = await withImage(p);
    const t0 = Date.now();
    await p.send(featureMaps(req.requestId as number, 512));
    await p.page.waitForSelector('#feature-grid canvas[data-painted]');
    const counts = await p.page.evaluate(() => ({
      canvases: document.querySelectorAll('#feature-grid canvas[data-channel]').length,
      painted: document.querySelectorAll('#feature-grid canvas[data-painted]').length,
    }));
    assert.equal(counts.canvases, 512);
    assert.ok(counts.painted > 0 && counts.painted < 512, `only the visible channels are painted at first (${counts.painted})`);
    assert.ok(Date.now() - t0 < 5000);
    // Scrolling to the end paints the last channels.
    await p.page.$eval('#feature-grid', (g) => g.scrollTo(0, g.scrollHeight));
    await p.page.waitForSelector('#feature-grid canvas[data-channel="511"][data-painted]');
    // A painted channel shows its blob: the hottest pixel is white in gray, the coldest black.
    const px = await p.page.$eval('#feature-grid canvas[data-channel="511"]', (c) => {
      const d = (c as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, 4, 4).data;
      const lum = Array.from({ length: 16 }, (_, i) => d[4 * i]);
      return { max: Math.max(...lum), min: Math.min(...lum) };
    });
    assert.deepEqual(px, { max: 255, min: 0 });
  });

  it('sorts the channels by mean activation and by weight for the class', async () => {
    const p = await initialised();
    const req = await withImage(p);
    const msg = featureMaps(req.requestId as number, 64) as FeatureMapsPayload & { type: string };
    await p.send(msg);
    await p.page.waitForSelector('#feature-grid canvas[data-channel]');
    assert.deepEqual(await gridOrder(p), Array.from({ length: 64 }, (_, i) => i));
    const sortBy = (v: string) => p.page.evaluate((value) => {
      const el = document.getElementById('sort') as unknown as HTMLElement & { value: string };
      el.value = value;
      el.dispatchEvent(new Event('change'));
    }, v);
    await sortBy('mean');
    const byMean = await gridOrder(p);
    const means = byMean.map((c) => msg.mean[c]);
    assert.deepEqual(means, [...means].sort((a, b) => b - a), 'descending mean');
    assert.notDeepEqual(byMean, Array.from({ length: 64 }, (_, i) => i));
    assert.match((await p.page.textContent('#feature-grid [data-cell="0"] .caption')) ?? '', /#0 · μ 0/);
    await sortBy('weight');
    assert.deepEqual(await gridOrder(p), Array.from({ length: 64 }, (_, i) => i), 'weights are -index: index order');
    assert.equal((await p.sentOfType('features/compute')).length, 1, 'sorting is local');
  });

  it('enlarges a clicked channel with its value range, and by keyboard', async () => {
    const p = await initialised();
    const req = await withImage(p);
    const msg = featureMaps(req.requestId as number, 64) as FeatureMapsPayload & { type: string };
    await p.send(msg);
    await p.page.waitForSelector('#feature-grid canvas[data-channel="5"]');
    await p.page.click('#feature-grid canvas[data-channel="5"]');
    await p.page.waitForSelector('#channel-detail', { state: 'visible' });
    assert.equal(await p.page.getAttribute('#channel-detail', 'data-channel'), '5');
    const stats = (await p.page.textContent('#channel-stats')) ?? '';
    assert.match(stats, /Channel 5 of 64 \(conv_pw_13_relu\) · min 0 · max [\d.]+ · mean 57 · weight -5/);
    // Shown 256 px wide, drawn at the channel's own 4x4 resolution.
    const size = await p.page.$eval('#channel-canvas', (c) => [(c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height, Math.round(c.getBoundingClientRect().width)]);
    assert.deepEqual(size, [4, 4, 256]);
    // Keyboard: Escape closes, arrows move, Enter opens.
    await p.page.keyboard.press('Escape');
    await p.page.waitForSelector('#channel-detail', { state: 'hidden' });
    await p.page.focus('#feature-grid [data-cell="5"]');
    await p.page.keyboard.press('ArrowRight');
    await p.page.keyboard.press('Enter');
    await p.page.waitForSelector('#channel-detail[data-channel="6"]');
  });

  it('draws the enlarged channel like its thumbnail: nearest-neighbour, one flat square per activation', async () => {
    const p = await initialised();
    const req = await withImage(p);
    await p.send(featureMaps(req.requestId as number, 64));
    await p.page.waitForSelector('#feature-grid canvas[data-channel="5"][data-painted]');
    await p.page.click('#feature-grid canvas[data-channel="5"]');
    await p.page.waitForSelector('#channel-detail[data-channel="5"]');
    const rendering = await p.page.evaluate(() => [
      getComputedStyle(document.getElementById('channel-canvas')!).imageRendering,
      getComputedStyle(document.querySelector('#feature-grid canvas[data-channel="5"]')!).imageRendering,
    ]);
    assert.deepEqual(rendering, ['pixelated', 'pixelated'], 'one rendering for the thumbnails and the enlarged view');
    // On screen: every 64 px square of the 256 px view (one activation of the 4x4 map) is a single colour,
    // from its centre to 3 px inside its edges. Bilinear smoothing would blend neighbouring squares there.
    const png = await p.page.locator('#channel-canvas').screenshot();
    const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
    const cell = info.width / 4;
    let distinct = 0;
    const centres = new Set<string>();
    for (let j = 0; j < 4; j++) {
      for (let i = 0; i < 4; i++) {
        const cx = Math.floor((i + 0.5) * cell);
        const cy = Math.floor((j + 0.5) * cell);
        const centre = at(cx, cy);
        centres.add(centre.join(','));
        for (const [x, y] of [[i * cell + 3, j * cell + 3], [(i + 1) * cell - 4, (j + 1) * cell - 4], [i * cell + 3, (j + 1) * cell - 4]]) {
          const v = at(Math.floor(x), Math.floor(y));
          const d = Math.max(...v.map((c, k) => Math.abs(c - centre[k])));
          if (d > 2) distinct++;
          assert.ok(d <= 2, `activation (${i}, ${j}): pixel (${Math.floor(x)}, ${Math.floor(y)}) is rgb(${v.join(', ')}), its centre rgb(${centre.join(', ')})`);
        }
      }
    }
    assert.equal(distinct, 0);
    assert.ok(centres.size >= 3, 'the channel is not flat (the check would be empty)');
  });

  it('re-requests with the chosen class, uses the model, and shows failures in #error', async () => {
    const p = await initialised();
    await withImage(p);
    await p.page.evaluate(() => {
      const el = document.getElementById('class') as unknown as HTMLElement & { value: string };
      el.value = '0';
      el.dispatchEvent(new Event('change'));
    });
    const req = await p.waitForSent('features/compute', 2);
    assert.equal(req.classIndex, 0);
    await p.send({ type: 'request/didFail', requestId: req.requestId, error: { name: 'CamLensError', message: 'Out of memory', hint: 'pick a smaller layer' } });
    await p.page.waitForSelector('#error', { state: 'visible' });
    assert.match((await p.page.textContent('#error')) ?? '', /Out of memory.*Next step: pick a smaller layer/s);
    assert.equal(await p.page.isVisible('#progress'), false);
    await p.page.click('#use-model');
    const use = await p.waitForSent('model/use');
    await p.send({ type: 'model/didUse', requestId: use.requestId, path: '/models/mobilenet/model.json' });
    await p.page.waitForFunction(() => /now the active model/.test(document.getElementById('notice')!.textContent ?? ''));
  });

  it('runs under its CSP without violations and looks right in the dark theme: theme colours, readable text, channels drawn (screenshot)', async () => {
    const p = await initialised();
    const req = await withImage(p);
    await p.send(featureMaps(req.requestId as number, 64));
    await p.page.waitForSelector('#feature-grid canvas[data-painted]');
    await p.page.evaluate(() => {
      const el = document.getElementById('sort') as unknown as HTMLElement & { value: string };
      el.value = 'mean';
      el.dispatchEvent(new Event('change'));
    });
    await p.page.click('#feature-grid canvas[data-channel="12"]');
    await p.page.waitForSelector('#channel-detail', { state: 'visible' });
    await p.page.waitForTimeout(100);
    const { violations } = await p.recorded();
    assert.deepEqual(violations, []);
    assert.deepEqual(p.errors, []);
    const file = await screenshot(p.page, 'inspector-panel-dark.png');
    console.log(`      screenshot: ${file}`);
    const t = await themeReport(p.page, ['channel-canvas']);
    assert.equal(t.body.background, t.body.editorBackground, 'the page background is --vscode-editor-background');
    assert.equal(t.body.color, t.body.foreground, 'the text colour is --vscode-foreground');
    assert.ok(t.bodyContrast >= 4.5, `body text contrast ${t.bodyContrast.toFixed(2)}:1`);
    assert.deepEqual(t.lightBackgrounds, [], 'no element paints a light background in the dark theme');
    assert.deepEqual(t.lowContrastText, [], 'all text reads against its background');
    assert.equal(t.canvases['channel-canvas'], 1, 'the enlarged channel is painted (opaque)');
    const painted = await p.page.$$eval('#feature-grid canvas[data-painted]', (els) => els.length);
    assert.ok(painted >= 16, `${painted} thumbnails painted`);
  });
});
