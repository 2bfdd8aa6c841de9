/**
 * The strategies view over the real engine: the engine worker (dist/worker.js, through EngineClient as the
 * extension uses it) analyses samples/ with the demo model (`strategies/run`: streamed progress, a report, the
 * same request with another k answered from the cached maps, Cancel keeping what was computed); the host's
 * conversion (panels/strategiesView.ts) turns the report into the view, and the real webview bundle draws it in
 * headless Chromium (skipped where Chromium is absent).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient } from '../../src/extension/engineClient';
import type { StrategiesReport } from '../../src/extension/engine/analysis/types';
import { toStrategiesView } from '../../src/extension/panels/strategiesView';
import { suspiciousHints } from '../../src/shared/strategies';
import { buildPanelHtml, createNonce } from '../../src/extension/panels/html';
import type { StrategiesEvent } from '../../src/extension/workerProtocol';
import { ensureBuilt } from '../helpers/build';
import { createPanelHost, requireChromium, ROOT, screenshot, sharedBrowser, startServer, type PanelHost, type Server } from './harness';

const MODEL = path.join(ROOT, 'models', 'demo', 'model.json');
const SAMPLES = path.join(ROOT, 'samples');
const SHORTCUT_MODEL = path.join(ROOT, 'models', 'demo-shortcut', 'model.json');
const SHORTCUT_SAMPLES = path.join(ROOT, 'samples-shortcut');

describe('strategies view over the real engine (demo model on samples/)', function () {
  this.timeout(240000);
  this.slow(60000);
  let engine: EngineClient | undefined;
  let server: Server | undefined;
  let host: PanelHost | undefined;
  let report: StrategiesReport;
  const events: StrategiesEvent[] = [];

  before(async () => {
    assert.ok(fs.existsSync(MODEL) && fs.existsSync(path.join(SAMPLES, 'star')), `the repository's demo model and samples/ are here (${MODEL})`);
    ensureBuilt(['worker.js', 'webview-strategies.js'], ['src/extension', 'src/webview', 'src/shared']);
    engine = new EngineClient({ workerPath: path.join(ROOT, 'dist', 'worker.js'), backend: 'wasm', threads: 1 });
    report = await engine.strategies({ model: { path: MODEL }, data: SAMPLES, method: 'gradcam', clusters: 'auto' }, { onEvent: (e) => events.push(e) });
  });

  after(async () => {
    await host?.close();
    await server?.close();
    await engine?.dispose();
  });

  it('streams progress by phase and replies with a report of every class folder', () => {
    const classes = fs.readdirSync(SAMPLES).filter((d) => fs.statSync(path.join(SAMPLES, d)).isDirectory());
    const images = classes.reduce((n, c) => n + fs.readdirSync(path.join(SAMPLES, c)).filter((f) => f.endsWith('.png')).length, 0);
    assert.equal(report.cancelled, false);
    assert.deepEqual([report.counts.images, report.counts.analysed, report.counts.failed], [images, images, 0]);
    assert.deepEqual(report.classes.map((c) => c.label).sort(), [...classes].sort());
    const phases = [...new Set(events.map((e) => e.phase))];
    assert.deepEqual(phases, ['maps', 'clusters', 'interventions']);
    const maps = events.filter((e) => e.phase === 'maps');
    assert.equal(maps.at(-1)?.done, images, 'the last maps event says all are done');
    assert.ok(maps.every((e, i) => i === 0 || e.done >= maps[i - 1].done), 'progress only grows');
  });

  it('answers the same request with another k from the cached maps', async () => {
    const again = await engine!.strategies({ model: { path: MODEL }, data: SAMPLES, method: 'gradcam', clusters: 2 });
    assert.equal(again.counts.fromCache, again.counts.analysed, 'no map computed again');
    for (const c of again.classes) assert.equal(c.clusters.length, Math.min(2, c.count), `${c.label}: k = 2`);
    assert.ok(again.classes.every((c) => c.clusterChoice.by === 'given' || c.clusterChoice.by === 'too few images'));
  });

  it('marks the shortcut model\'s badge clusters of star as possible shortcuts, and no cluster of the clean model', async () => {
    const flagged = (r: StrategiesReport) => toStrategiesView(r, () => '').classes.flatMap((c) => c.clusters
      .filter((k) => suspiciousHints(k.hints).length > 0).map((k) => ({ label: c.label, size: k.size, hints: suspiciousHints(k.hints) })));
    assert.deepEqual(flagged(report), [], 'the clean demo model on samples/');
    const shortcut = await engine!.strategies({ model: { path: SHORTCUT_MODEL }, data: SHORTCUT_SAMPLES, method: 'gradcam', classes: ['star'], intervention: true });
    const marks = flagged(shortcut);
    const star = shortcut.classes[0];
    assert.equal(star.label, 'star');
    // Every marked cluster holds badged stars in the badge's corner, and the blur of that corner confirms it.
    assert.ok(marks.length >= 1 && marks.length < star.clusters.length, `marked ${JSON.stringify(marks)} of ${star.clusters.length} clusters`);
    for (const m of marks) assert.ok(m.hints.includes('corner') && m.hints.includes('intervention'), JSON.stringify(m));
    const clean = star.clusters.filter((k) => suspiciousHints(toStrategiesView(shortcut, () => '').classes[0].clusters[k.id].hints).length === 0);
    assert.ok(clean.every((k) => k.hints.corner.share < 0.1), 'the unmarked cluster looks at the star');
  });

  it('keeps what was computed when cancelled', async () => {
    const abort = new AbortController();
    const partial = await engine!.strategies({ model: { path: MODEL }, data: SAMPLES, method: 'layercam', clusters: 'auto' }, {
      signal: abort.signal,
      onEvent: (e) => {
        if (e.phase === 'maps' && e.done > 0) abort.abort();
      },
    });
    assert.equal(partial.cancelled, true);
    assert.ok(partial.counts.analysed > 0 && partial.counts.analysed < partial.counts.images, `analysed ${partial.counts.analysed} of ${partial.counts.images}`);
  });

  it('draws the real report: a section per class, cards with hints and drawn maps, members that open', async function () {
    requireChromium(this);
    server = await startServer();
    const s = server;
    host = await createPanelHost(await sharedBrowser(), s);
    await host.page.route(/\/strategies\.html(\?.*)?$/, (route) => route.fulfill({
      contentType: 'text/html; charset=utf-8',
      body: buildPanelHtml({
        cspSource: s.origin, nonce: createNonce(), scriptUri: `${s.origin}/dist/webview-strategies.js`,
        styleUris: [`${s.origin}/media/common.css`, `${s.origin}/media/strategies.css`, `${s.origin}/theme/theme-dark.css`],
        title: 'CAM Lens: strategies', kind: 'strategies',
      }),
    }));
    // Member images served as the webview would load them.
    const view = toStrategiesView(report, (file) => {
      const rel = path.relative(SAMPLES, file).split(path.sep).join('/');
      s.assets.set(`/samples/${rel}`, fs.readFileSync(file));
      return `${s.origin}/samples/${rel}`;
    });
    const p = await host.open('strategies');
    await p.waitForSent('panel/ready');
    const state = { version: 1 as const, source: SAMPLES, modelPath: MODEL, method: 'gradcam', clusters: 'auto' as const };
    await p.send({
      type: 'panel/didInit', modelName: 'demo', modelPath: MODEL, source: SAMPLES, sourceName: 'samples', methods: [{ id: 'gradcam', label: 'Grad-CAM', available: true }],
      layers: [report.layer], recommendedLayer: report.layer, labels: report.classes.map((c) => c.label), colormap: 'turbo', opacity: 0.5, state,
    });
    await p.send({ type: 'strategies/didStart', runId: 1, options: { method: 'gradcam', clusters: 'auto' } });
    for (const e of events.slice(0, 3)) await p.send({ type: 'strategies/didProgress', runId: 1, ...e });
    await p.send({ type: 'strategies/didFinish', runId: 1, view });
    await p.page.waitForSelector('.class-section');
    await p.page.waitForFunction(() => Array.from(document.querySelectorAll('canvas.map-canvas')).every((c) => (c as HTMLElement).dataset.state === 'drawn'));
    const cards = report.classes.reduce((n, c) => n + c.clusters.length, 0);
    assert.equal(await p.page.locator('.class-section').count(), report.classes.length);
    assert.equal(await p.page.locator('.cluster-card').count(), cards);
    assert.equal(await p.page.locator('.cluster-card .hint[data-hint="corner"]').count(), cards);
    assert.equal(await p.page.locator('canvas.map-canvas').count(), report.classes.length + cards);
    // Thumbnails load lazily: those of the last card, scrolled into view, load.
    const lastCard = p.page.locator('.cluster-card').last();
    await lastCard.scrollIntoViewIfNeeded();
    await p.page.waitForFunction(() => {
      const cards = document.querySelectorAll('.cluster-card');
      const imgs = Array.from(cards[cards.length - 1].querySelectorAll<HTMLImageElement>('.member img'));
      return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    });
    const member = lastCard.locator('.member').first();
    const rel = await member.getAttribute('data-path');
    const cls = Number(await member.getAttribute('data-class'));
    await member.click();
    const open = await p.waitForSent('sample/open');
    assert.deepEqual([open.path, open.classIndex], [rel, cls]);
    const c = report.classes.find((x) => x.classIndex === cls);
    assert.ok(c?.members.some((m) => m.relPath === rel), 'the member opened is one the report lists for its class');
    await screenshot(p.page, 'strategies-engine.png');
    assert.deepEqual(p.errors, []);
    assert.deepEqual((await p.recorded()).violations, []);
  });
});
