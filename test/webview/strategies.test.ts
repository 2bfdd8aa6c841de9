/**
 * The strategies panel's UI ("Show Model Strategies", issue #14 item 3) in headless Chromium against a fake host
 * (see harness.ts): the real page from panels/html.ts with its CSP (served for kind 'strategies' by a route on the
 * suite's page, since the shared server knows the first panels only), the real bundle dist/webview-strategies.js,
 * the real stylesheets. The host's report is a made-up one of the engine's shape: a "star" class whose maps split
 * into a shape cluster (hot in the centre) and a watermark cluster (hot in the top-right corner), and a "circle"
 * class with one cluster.
 */
import * as assert from 'node:assert/strict';
import sharp from 'sharp';
import { colormapLut } from '../../src/shared/colormaps';
import { buildPanelHtml, createNonce } from '../../src/extension/panels/html';
import type { StrategiesHostMessage, StrategiesViewState } from '../../src/shared/protocol';
import type { StrategiesView, StrategyClassView, StrategyClusterView, StrategyHints, StrategyMapGrid } from '../../src/shared/strategies';
import { ensureBuilt } from '../helpers/build';
import { createPanelHost, requireChromium, screenshot, sharedBrowser, startServer, themeReport, type PanelHost, type PanelPage, type Server } from './harness';

const LABELS = ['circle', 'star', 'square'];
const SOURCE = '/data/shapes';
const G = 8;

function viewState(over: Partial<StrategiesViewState> = {}): StrategiesViewState {
  return { version: 1, source: SOURCE, modelPath: '/models/shapes/model.json', method: 'gradcam', clusters: 'auto', ...over };
}

function didInit(state = viewState()): StrategiesHostMessage {
  return {
    type: 'panel/didInit', modelName: 'shapes_v1', modelPath: '/models/shapes/model.json', source: SOURCE, sourceName: 'shapes',
    methods: [{ id: 'gradcam', label: 'Grad-CAM', available: true }, { id: 'scorecam', label: 'Score-CAM', available: true }, { id: 'cam', label: 'CAM', available: false }],
    layers: ['conv1', 'conv2'], recommendedLayer: 'conv2', labels: LABELS, colormap: 'turbo', opacity: 0.5, state,
  };
}

/** An 8x8 map hot (1) in the given cells, 0 elsewhere. */
function grid(hot: (x: number, y: number) => boolean): StrategyMapGrid {
  const values = new Float32Array(G * G);
  for (let y = 0; y < G; y++) for (let x = 0; x < G; x++) values[y * G + x] = hot(x, y) ? 1 : 0;
  return { width: G, height: G, values };
}
const CENTRE = grid((x, y) => x >= 3 && x <= 4 && y >= 3 && y <= 4);
const TOP_RIGHT = grid((x, y) => x >= 6 && y <= 1);

function hints(corner: number, border: number, intervention?: [number, number]): StrategyHints {
  return {
    border: { share: border, uniform: 0.19, rule: 'share of the heat within the outer 10% of the image' },
    corner: { share: corner, uniform: 0.0625, corner: 'top-right', rule: 'share of the heat in the hottest corner quarter of each side' },
    outsideBox: { share: 0.3, uniform: 0.5, images: 4, rule: 'mean share of the heat outside the object box' },
    ...(intervention ? { intervention: { hotDrop: intervention[0], controlDrop: intervention[1], ratio: intervention[0] / Math.max(intervention[1], 0.01), baseline: 0.97, images: 8, rule: 'mean probability drop when the hot region is blurred, against blurring a region of the same size elsewhere' } } : {}),
  };
}

let imageUri = '';

function members(cls: string, n: number, offset = 0) {
  return Array.from({ length: n }, (_, i) => ({
    relPath: `${cls}/${cls}_${String(i + offset).padStart(2, '0')}.png`, imageUri, distance: 0.1 * (i + 1),
    givenLabel: cls, predictedLabel: cls, probability: 0.95,
  }));
}

function cluster(id: number, size: number, fraction: number, map: StrategyMapGrid, h: StrategyHints, cls: string, others: number[], offset = 0): StrategyClusterView {
  return {
    id, size, fraction, averageMap: map, nearest: members(cls, Math.min(size, 4), offset),
    distances: others.map((o) => ({ cluster: o, distance: 1.1 + 0.1 * o })), ...(others.length ? { nearestOther: others[0] } : {}), hints: h,
  };
}

/** A 16x16 average image: mid grey. */
function averageImage() {
  return { width: 16, height: 16, data: new Uint8Array(16 * 16 * 3).fill(128) };
}

function starClass(k: 2 | 3): StrategyClassView {
  const clusters = k === 2
    ? [cluster(0, 12, 0.6, CENTRE, hints(0.05, 0.1, [0.1, 0.08]), 'star', [1]),
      cluster(1, 8, 0.4, TOP_RIGHT, hints(0.71, 0.64, [0.62, 0.05]), 'star', [0], 20)]
    : [cluster(0, 8, 0.4, CENTRE, hints(0.05, 0.1), 'star', [1, 2]),
      cluster(1, 8, 0.4, TOP_RIGHT, hints(0.71, 0.64), 'star', [0, 2], 20),
      cluster(2, 4, 0.2, CENTRE, hints(0.06, 0.12), 'star', [0, 1], 40)];
  return {
    classIndex: 1, label: 'star', count: 20, averageMap: grid((x, y) => (x >= 3 && x <= 4 && y >= 3 && y <= 4) || (x >= 6 && y <= 1)), averageImage: averageImage(),
    clusterChoice: { by: k === 2 ? 'components' : 'given', k, neighbours: 4 },
    clusters, hints: hints(0.3, 0.3),
  };
}

function circleClass(): StrategyClassView {
  return {
    classIndex: 0, label: 'circle', count: 8, averageMap: CENTRE, averageImage: averageImage(),
    clusterChoice: { by: 'eigengap', k: 1, neighbours: 3 }, clusters: [cluster(0, 8, 1, CENTRE, hints(0.04, 0.08, [0.2, 0.15]), 'circle', [])], hints: hints(0.04, 0.08),
  };
}

function view(k: 2 | 3 = 2, over: Partial<StrategiesView> = {}): StrategiesView {
  return {
    modelName: 'shapes_v1', method: 'gradcam', layer: 'conv2', counts: { images: 28, analysed: 28, failed: 0, fromCache: 0 }, cancelled: false, seconds: 4.2,
    boxes: { source: '/data/shapes/boxes.json', format: 'boxes.json', images: 20 },
    rules: { border: 'border rule', corner: 'corner rule', outsideBox: 'box rule', intervention: 'blur rule', clustering: 'spectral clustering' },
    classes: [circleClass(), starClass(k)], failures: [], ...over,
  };
}

type Rgba = [number, number, number, number];

/** A pixel of a canvas at fractions (fx, fy) of its size. */
async function pixel(p: PanelPage, selector: string, fx: number, fy: number): Promise<Rgba> {
  return p.page.$eval(selector, (c, [x, y]) => {
    const canvas = c as HTMLCanvasElement;
    const d = canvas.getContext('2d')!.getImageData(Math.floor(x * canvas.width), Math.floor(y * canvas.height), 1, 1).data;
    return [d[0], d[1], d[2], d[3]] as [number, number, number, number];
  }, [fx, fy] as const);
}

/** The blend of the mid-grey image with turbo(v) at opacity 0.5. */
function blend(v: number): [number, number, number] {
  const lut = colormapLut('turbo');
  const i = 3 * Math.round(v * 255);
  return [0, 1, 2].map((c) => 0.5 * 128 + 0.5 * lut[i + c]) as [number, number, number];
}

function near(actual: Rgba, expected: [number, number, number], what: string): void {
  assert.ok([0, 1, 2].every((c) => Math.abs(actual[c] - expected[c]) <= 4) && actual[3] === 255,
    `${what}: got rgba(${actual.join(', ')}), expected about rgb(${expected.map(Math.round).join(', ')})`);
}

async function text(p: PanelPage, selector: string): Promise<string> {
  return (await p.page.locator(selector).first().innerText()).trim().replace(/\s+/g, ' ');
}

describe('strategies panel (headless Chromium, fake host)', function () {
  this.timeout(30000);
  this.slow(5000);
  let server: Server;
  let host: PanelHost;

  before(async function () {
    requireChromium(this);
    ensureBuilt(['webview-strategies.js'], ['src/webview', 'src/shared']);
    server = await startServer();
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48"><rect width="48" height="48" fill="#335577"/><circle cx="24" cy="24" r="12" fill="#ddaa44"/></svg>';
    server.assets.set('/assets/shape.png', await sharp(Buffer.from(svg)).png().toBuffer());
    imageUri = `${server.origin}/assets/shape.png`;
    host = await createPanelHost(await sharedBrowser(), server);
    await host.page.route(/\/strategies\.html(\?.*)?$/, (route) => route.fulfill({
      contentType: 'text/html; charset=utf-8',
      body: buildPanelHtml({
        cspSource: server.origin,
        nonce: createNonce(),
        scriptUri: `${server.origin}/dist/webview-strategies.js`,
        styleUris: [`${server.origin}/media/common.css`, `${server.origin}/media/strategies.css`, `${server.origin}/theme/theme-dark.css`],
        title: 'CAM Lens: strategies',
        kind: 'strategies',
      }),
    }));
  });

  after(async () => {
    await host?.close();
    await server?.close();
  });

  /** Opens the panel, answers panel/ready with didInit and run 1's didStart; with `finish`, its didFinish too. */
  async function opened(opts: { state?: StrategiesViewState; finish?: StrategiesView } = {}): Promise<PanelPage> {
    const p = await host.open('strategies');
    await p.waitForSent('panel/ready');
    await p.send(didInit(opts.state));
    await p.send({ type: 'strategies/didStart', runId: 1, options: { method: 'gradcam', clusters: opts.state?.clusters ?? 'auto' } });
    await p.page.waitForSelector('#progress:not([hidden])');
    if (opts.finish) {
      await p.send({ type: 'strategies/didFinish', runId: 1, view: opts.finish });
      await p.page.waitForSelector('.class-section');
    }
    return p;
  }

  it('speaks first, fills the pickers, and shows progress with a Cancel that asks the host to stop', async () => {
    const p = await host.open('strategies');
    await p.waitForSent('panel/ready');
    await p.page.waitForTimeout(100);
    assert.deepEqual((await p.recorded()).sent.map((m) => m.type), ['panel/ready']);
    await p.send(didInit());
    await p.page.waitForFunction(() => document.getElementById('model-name')?.textContent === 'shapes_v1');
    assert.equal(await text(p, '#title'), 'Model strategies in shapes');
    assert.equal(await text(p, '#data-name'), 'shapes');
    const options = (id: string) => p.page.$$eval(`#${id} vscode-option`, (els) => els.map((e) => [e.getAttribute('value'), e.textContent, e.hasAttribute('disabled')]));
    assert.deepEqual(await options('method'), [['gradcam', 'Grad-CAM', false], ['scorecam', 'Score-CAM', false], ['cam', 'CAM', true]]);
    assert.deepEqual((await options('layer')).map((o) => o[1]), ['Recommended (conv2)', 'conv1']);
    assert.deepEqual((await options('clusters')).map((o) => o[0]), ['auto', '1', '2', '3', '4', '5', '6', '7', '8']);
    assert.deepEqual((await options('class-filter')).map((o) => o[1]), ['All classes', 'circle', 'star', 'square']);

    await p.send({ type: 'strategies/didStart', runId: 1, options: { method: 'gradcam', clusters: 'auto' } });
    await p.page.waitForSelector('#progress:not([hidden])');
    await p.send({ type: 'strategies/didProgress', runId: 1, phase: 'maps', done: 7, total: 28, mapsPerSecond: 3.5, secondsLeft: 6, failed: 1 });
    await p.page.waitForFunction(() => /7 \/ 28/.test(document.querySelector('#progress .progress-text')?.textContent ?? ''));
    assert.equal(await text(p, '#progress .progress-text'), 'Computing maps 7 / 28 · 3.5 maps/s · 6.0 s left · 1 unreadable');
    assert.equal(await p.page.getAttribute('#run', 'disabled'), '', 'no second run while one computes');
    // A late message of an older run changes nothing.
    await p.send({ type: 'strategies/didProgress', runId: 0, phase: 'clusters', done: 1, total: 2, mapsPerSecond: 0, secondsLeft: 0, failed: 0 });
    await p.page.waitForTimeout(50);
    assert.match(await text(p, '#progress .progress-text'), /^Computing maps 7/);
    await p.page.click('#cancel-run');
    await p.waitForSent('strategies/cancel');
    // The host stops and sends what was computed.
    await p.send({ type: 'strategies/didFinish', runId: 1, view: view(2, { cancelled: true, counts: { images: 28, analysed: 20, failed: 1, fromCache: 0 }, classes: [starClass(2)], failures: [{ relPath: 'star/broken.png', error: 'not a readable image' }] }) });
    await p.page.waitForSelector('.class-section');
    assert.equal(await p.page.isVisible('#progress'), false);
    assert.match(await text(p, '#run-status'), /^Cancelled: 20 of 28 images analysed with Grad-CAM at conv2/);
    assert.match(await text(p, '#failures'), /1 image could not be analysed: star\/broken\.png \(not a readable image\)/);
    assert.deepEqual(p.errors, []);
    assert.deepEqual((await p.recorded()).violations, []);
  });

  it('shows per class its average map and its clusters as cards with size, hints (rules as tooltips) and members', async () => {
    const p = await opened({ finish: view() });
    const sections = await p.page.$$eval('.class-section', (els) => els.map((e) => ({
      cls: (e as HTMLElement).dataset.class, heading: e.querySelector('h2')?.textContent?.replace(/\s+/g, ' ').trim(),
      cards: Array.from(e.querySelectorAll('.cluster-card')).map((c) => (c as HTMLElement).dataset.cluster),
    })));
    assert.deepEqual(sections, [
      { cls: '0', heading: 'circle 8 images · 1 cluster (chosen by the eigengap)', cards: ['0'] },
      { cls: '1', heading: 'star 20 images · 2 clusters (the maps\' neighbour graph falls into 2 parts)', cards: ['0', '1'] },
    ]);
    assert.equal(await p.page.getAttribute('.class-section[data-class="1"] .class-meta', 'title'), 'Spectral clustering. 4 neighbours per map.');
    assert.match(await text(p, '#run-status'), /in 4\.2 s\. Object boxes: boxes\.json \(20 images\)\.$/);
    const card = '.class-section[data-class="1"] .cluster-card[data-cluster="1"]';
    assert.equal(await text(p, `${card} h3`), 'Cluster 2 possible shortcut');
    assert.equal(await text(p, `${card} .cluster-size`), '8 images · 40.0%');
    assert.equal(await p.page.getAttribute(card, 'data-suspicious'), 'true');
    assert.equal(await p.page.getAttribute('.class-section[data-class="1"] .cluster-card[data-cluster="0"]', 'data-suspicious'), 'false');
    const hintsOf = (sel: string) => p.page.$$eval(`${sel} .hint`, (els) => els.map((e) => ({
      id: (e as HTMLElement).dataset.hint, value: e.querySelector('.hint-value')?.textContent, warn: (e as HTMLElement).dataset.suspicious === 'true', rule: e.getAttribute('title'),
    })));
    assert.deepEqual(await hintsOf(card), [
      { id: 'border', value: '64.0%', warn: true, rule: 'Share of the heat within the outer 10% of the image. A map spread evenly over the image gives 19.0%.' },
      { id: 'corner', value: '71.0% top-right', warn: true, rule: 'Share of the heat in the hottest corner quarter of each side. A map spread evenly over the image gives 6.3%.' },
      { id: 'outsideBox', value: '30.0%', warn: false, rule: 'Mean share of the heat outside the object box (4 images with a box). A map spread evenly over the image gives 50.0%.' },
      { id: 'intervention', value: '0.62 vs 0.05 (12.4×)', warn: true, rule: 'Mean probability drop when the hot region is blurred, against blurring a region of the same size elsewhere. Mean probability before blurring: 0.97.' },
    ]);
    // The members nearest the centre, nearest first, labelled for screen readers.
    const members = await p.page.$$eval(`${card} .member`, (els) => els.map((e) => [(e as HTMLElement).dataset.path, e.getAttribute('aria-label'), e.getAttribute('tabindex')]));
    assert.deepEqual(members.map((m) => m[0]), ['star/star_20.png', 'star/star_21.png', 'star/star_22.png', 'star/star_23.png']);
    assert.equal(members[0][1], 'Open star/star_20.png in the explain panel for star (cluster 2, distance 0.10)');
    assert.ok(members.every((m) => m[2] === '0'));
    await p.page.waitForFunction((sel) => Array.from(document.querySelectorAll<HTMLImageElement>(`${sel} .member img`)).every((i) => i.complete && i.naturalWidth === 48), card);

    // The maps are drawn over the average image: the watermark cluster hot in its top-right corner, cold in the centre.
    await p.page.waitForFunction(() => Array.from(document.querySelectorAll('canvas.map-canvas')).every((c) => (c as HTMLElement).dataset.state === 'drawn'));
    assert.equal(await p.page.locator('canvas.map-canvas').count(), 2 + 3, 'two class averages and three cluster maps');
    near(await pixel(p, `${card} canvas.cluster-map`, 0.97, 0.03), blend(1), 'watermark cluster, top-right corner');
    near(await pixel(p, `${card} canvas.cluster-map`, 0.5, 0.5), blend(0), 'watermark cluster, centre');
    near(await pixel(p, '.class-section[data-class="1"] .cluster-card[data-cluster="0"] canvas.cluster-map', 0.5, 0.5), blend(1), 'shape cluster, centre');
    near(await pixel(p, '.class-section[data-class="1"] canvas.class-average', 0.97, 0.03), blend(1), 'class average, corner');
    assert.match(await p.page.getAttribute(`${card} canvas.cluster-map`, 'aria-label') ?? '', /Average map of cluster 2 of star/);
    await screenshot(p.page, 'strategies-panel.png');
    assert.deepEqual(p.errors, []);
    assert.deepEqual((await p.recorded()).violations, []);
  });

  it('opens a member in the explain panel for its class on click, and says so when the host has', async () => {
    const p = await opened({ finish: view() });
    await p.page.click('.class-section[data-class="1"] .cluster-card[data-cluster="1"] .member[data-path="star/star_21.png"]');
    const open = await p.waitForSent('sample/open');
    assert.deepEqual({ ...open, requestId: undefined }, { type: 'sample/open', requestId: undefined, path: 'star/star_21.png', classIndex: 1 });
    await p.send({ type: 'sample/didOpen', requestId: open.requestId, path: 'star/star_21.png' });
    await p.page.waitForFunction(() => /Opened star\/star_21\.png/.test(document.getElementById('notice')?.textContent ?? ''));
    // A failure is shown with its next step.
    await p.page.click('.class-section[data-class="0"] .member');
    const second = await p.waitForSent('sample/open', 2);
    assert.equal(second.classIndex, 0);
    await p.send({ type: 'request/didFail', requestId: second.requestId, error: { name: 'Error', message: 'circle/circle_00.png is not a member of the current analysis', hint: 'analyse again' } });
    await p.page.waitForSelector('#error:not([hidden])');
    assert.match(await text(p, '#error'), /not a member of the current analysis.*Next step: analyse again/);
  });

  it('re-clusters with another k at once (the maps are cached) and re-runs only for another method, layer or class', async () => {
    const p = await opened({ finish: view(2) });
    assert.equal(await text(p, '#run'), 'Analyse again');
    const setSelect = (id: string, value: string) => p.page.evaluate(([i, v]) => {
      const s = document.getElementById(i) as HTMLElement & { value: string };
      s.value = v;
      s.dispatchEvent(new Event('change'));
    }, [id, value] as const);
    await setSelect('clusters', '3');
    const re = await p.waitForSent('strategies/recluster');
    assert.equal(re.clusters, 3);
    assert.equal((await p.sentOfType('strategies/run')).length, 0, 'no new maps for another k');
    assert.deepEqual(((await p.sentOfType('state/didChange')).at(-1)?.state as StrategiesViewState).clusters, 3);
    // A bar while the host clusters again (no maps, only the blur interventions: no Cancel).
    assert.equal(await p.page.isVisible('#progress'), true);
    assert.equal(await text(p, '#progress .progress-text'), 'Clustering again with k = 3…');
    assert.equal(await p.page.isVisible('#cancel-run'), false);
    await p.send({ type: 'strategies/didRecluster', requestId: re.requestId, clusters: 3, view: view(3) });
    await p.page.waitForFunction(() => document.querySelectorAll('.class-section[data-class="1"] .cluster-card').length === 3);
    assert.equal(await p.page.isVisible('#progress'), false);
    assert.equal(await text(p, '.class-section[data-class="1"] h2'), 'star 20 images · 3 clusters (as asked)');
    assert.match(await text(p, '#run-status'), /^Clustered again: k = 3/);
    // A reply to a superseded re-clustering is ignored.
    await setSelect('clusters', '2');
    const re2 = await p.waitForSent('strategies/recluster', 2);
    await setSelect('clusters', 'auto');
    const re3 = await p.waitForSent('strategies/recluster', 3);
    assert.equal(re3.clusters, 'auto');
    await p.send({ type: 'strategies/didRecluster', requestId: re2.requestId, clusters: 2, view: view(3, { classes: [] }) });
    await p.page.waitForTimeout(50);
    assert.equal(await p.page.locator('.class-section').count(), 2);

    // Another method needs new maps: nothing is sent until Analyse.
    await setSelect('method', 'scorecam');
    await setSelect('class-filter', '1');
    assert.equal(await text(p, '#run'), 'Analyse');
    assert.equal((await p.sentOfType('strategies/recluster')).length, 3);
    await p.page.click('#run');
    const run = await p.waitForSent('strategies/run');
    assert.deepEqual(run.options, { method: 'scorecam', clusters: 'auto', classIndex: 1 });
  });

  it('is usable from the keyboard: Tab reaches card heads and members, Enter or Space toggles a card and opens a member', async () => {
    const p = await opened({ finish: view() });
    await p.page.focus('#run');
    // Tab order after the options: the first card's head, then its members, then the next card.
    const order: string[] = [];
    for (let i = 0; i < 8; i++) {
      await p.page.keyboard.press('Tab');
      order.push(await p.page.evaluate(() => {
        const el = document.activeElement as HTMLElement;
        const card = el.closest<HTMLElement>('.cluster-card');
        return el.classList.contains('card-head') ? `head ${card?.dataset.class}:${card?.dataset.cluster}` : el.classList.contains('member') ? `member ${el.dataset.path}` : el.id || el.tagName;
      }));
    }
    const firstHead = order.indexOf('head 0:0');
    assert.ok(firstHead >= 0, `Tab reaches the first card's head: ${order.join(', ')}`);
    assert.deepEqual(order.slice(firstHead, firstHead + 6), ['head 0:0', 'member circle/circle_00.png', 'member circle/circle_01.png', 'member circle/circle_02.png', 'member circle/circle_03.png', 'head 1:0']);

    const head = '.class-section[data-class="1"] .cluster-card[data-cluster="1"] .card-head';
    await p.page.focus(head);
    assert.equal(await p.page.getAttribute(head, 'aria-expanded'), 'false');
    assert.equal(await p.page.isVisible('#details-1-1'), false);
    await p.page.keyboard.press('Enter');
    assert.equal(await p.page.getAttribute(head, 'aria-expanded'), 'true');
    assert.equal(await p.page.isVisible('#details-1-1'), true);
    assert.match(await text(p, '#details-1-1'), /Corner heat share of the heat in the hottest corner.*Distance to the other clusters Cluster 1: 1\.10/);
    assert.deepEqual(((await p.sentOfType('state/didChange')).at(-1)?.state as StrategiesViewState).expanded, ['1:1']);
    await p.page.keyboard.press(' ');
    assert.equal(await p.page.getAttribute(head, 'aria-expanded'), 'false');
    assert.equal(await p.page.isVisible('#details-1-1'), false);

    await p.page.focus('.class-section[data-class="1"] .cluster-card[data-cluster="1"] .member[data-path="star/star_22.png"]');
    await p.page.keyboard.press('Enter');
    assert.equal((await p.waitForSent('sample/open')).path, 'star/star_22.png');
    await p.page.keyboard.press(' ');
    const second = await p.waitForSent('sample/open', 2);
    assert.deepEqual([second.path, second.classIndex], ['star/star_22.png', 1]);
    // Focus survives a re-clustering: the same member of the same class keeps it.
    await p.page.evaluate(() => {
      const s = document.getElementById('clusters') as HTMLElement & { value: string };
      s.value = '3';
      s.dispatchEvent(new Event('change'));
    });
    const re = await p.waitForSent('strategies/recluster');
    await p.send({ type: 'strategies/didRecluster', requestId: re.requestId, clusters: 3, view: view(3) });
    await p.page.waitForFunction(() => document.querySelectorAll('.class-section[data-class="1"] .cluster-card').length === 3);
    assert.equal(await p.page.evaluate(() => (document.activeElement as HTMLElement).dataset.path), 'star/star_22.png');
    // A card that is gone is forgotten in the saved state; one that is still there stays open.
    await p.page.focus('.class-section[data-class="1"] .cluster-card[data-cluster="2"] .card-head');
    await p.page.keyboard.press('Enter');
    const state = async () => ((await p.sentOfType('state/didChange')).at(-1)?.state as StrategiesViewState).expanded;
    assert.deepEqual(await state(), ['1:2']);
    await p.page.evaluate(() => {
      const s = document.getElementById('clusters') as HTMLElement & { value: string };
      s.value = '2';
      s.dispatchEvent(new Event('change'));
    });
    await p.send({ type: 'strategies/didRecluster', requestId: (await p.waitForSent('strategies/recluster', 2)).requestId, clusters: 2, view: view(2) });
    await p.page.waitForFunction(() => document.querySelectorAll('.class-section[data-class="1"] .cluster-card').length === 2);
    assert.deepEqual(await state(), []);
  });

  it('fits a narrow panel: the options, sections and cards stack without a horizontal scrollbar', async () => {
    const p = await opened({ finish: view() });
    await p.page.setViewportSize({ width: 480, height: 760 });
    try {
      await p.page.waitForTimeout(100);
      const { scroll, client } = await p.page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
      assert.ok(scroll <= client, `the page is ${scroll} px wide in a ${client} px panel`);
      const boxes = await p.page.$$eval('.class-section[data-class="1"] .cluster-card', (els) => els.map((e) => e.getBoundingClientRect()).map((r) => [Math.round(r.left), Math.round(r.right)]));
      assert.equal(boxes.length, 2);
      assert.ok(boxes[1][0] >= 0 && boxes.every(([, right]) => right <= 480), `cards at ${JSON.stringify(boxes)}`);
      await screenshot(p.page, 'strategies-panel-narrow.png');
    } finally {
      await p.page.setViewportSize({ width: 1100, height: 760 });
    }
  });

  it('reads well in a dark theme: colours from the theme, no light boxes, readable text, maps drawn', async () => {
    const p = await opened({ finish: view() });
    await p.page.click('.class-section[data-class="1"] .cluster-card[data-cluster="1"] .card-head');
    await p.page.waitForFunction(() => Array.from(document.querySelectorAll('canvas.map-canvas')).every((c) => (c as HTMLElement).dataset.state === 'drawn'));
    await p.page.evaluate(() => {
      document.querySelectorAll('canvas.map-canvas').forEach((c, i) => {
        c.id = `map-${i}`;
      });
    });
    const t = await themeReport(p.page, ['map-0', 'map-1', 'map-2', 'map-3', 'map-4']);
    assert.equal(t.body.background, t.body.editorBackground);
    assert.equal(t.body.color, t.body.foreground);
    assert.ok(t.bodyContrast >= 4.5, `body contrast ${t.bodyContrast}`);
    assert.deepEqual(t.lightBackgrounds, []);
    assert.deepEqual(t.lowContrastText, []);
    for (const [id, share] of Object.entries(t.canvases)) assert.equal(share, 1, `${id} is fully painted`);
    await screenshot(p.page, 'strategies-panel-dark.png');
  });
});
