/**
 * Score-CAM's channel budget in the panels (#13 item 3), in headless Chromium against a fake host (harness.ts):
 * the explain panel's caption names the channels scored, offers "Score all N channels (about X)" with the
 * host's estimate, runs it with progress and the time left, and cancels it keeping the map shown; the triage
 * pair caption names the channels too.
 */
import * as assert from 'node:assert/strict';
import sharp from 'sharp';
import { buildPanelHtml, createNonce } from '../../src/extension/panels/html';
import type { ExplainHostMessage, MapDetails, ScanDatasetInfo, TriageHostMessage, TriageRow } from '../../src/shared/protocol';
import { didCompute, didInit, hostState, leftHotMap, PREDICTIONS, testImagePng } from './fixtures';
import { createPanelHost, ensureBundles, requireChromium, screenshot, sharedBrowser, startServer, type PanelHost, type PanelPage, type Server } from './harness';

const BUDGETED: MapDetails = {
  note: 'top 32 of 256 channels by mean activation',
  channels: { scored: 32, usable: 250, total: 256, by: 'mean', ms: 410, allMs: 3203 },
};
const FULL: MapDetails = {
  note: 'all 250 channels (6 constant skipped)',
  channels: { scored: 250, usable: 250, total: 256, by: 'all', ms: 3150, allMs: 3150 },
};

function scoreCamMap(requestId: number, details?: MapDetails): ExplainHostMessage {
  const m = didCompute(requestId, 1, leftHotMap(), 'scorecam') as Extract<ExplainHostMessage, { type: 'cam/didCompute' }>;
  return details ? { ...m, details } : m;
}

async function text(p: PanelPage, selector: string): Promise<string> {
  return (await p.page.locator(selector).first().textContent())?.trim() ?? '';
}

describe('Score-CAM channel budget in the panels (headless Chromium, fake host)', function () {
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

  /** The explain panel with Score-CAM chosen, its first (budgeted) map drawn. */
  async function budgetedMap(): Promise<{ p: PanelPage; first: { [k: string]: unknown } }> {
    const p = await host.open('explain');
    await p.waitForSent('panel/ready');
    await p.send(didInit(imageUri, hostState({ method: 'scorecam' })));
    await p.send(PREDICTIONS);
    const first = await p.waitForSent('cam/compute');
    assert.equal(first.method, 'scorecam');
    assert.equal(first.allChannels, undefined, 'the first map uses the channel budget');
    await p.send(scoreCamMap(first.requestId as number, BUDGETED));
    await p.page.waitForSelector('#canvas[data-state="drawn"]');
    return { p, first };
  }

  it('captions a budgeted Score-CAM map with the channels it scored, and offers all of them with the estimate', async () => {
    const { p } = await budgetedMap();
    assert.match(await text(p, '#status'), /^Score-CAM for boxer \(34\.6%\) at conv_pw_13_relu · top 32 of 256 channels by mean activation · 12 ms · wasm$/);
    await p.page.waitForSelector('#scorecam-full:not([hidden])');
    assert.equal(await text(p, '#score-all'), 'Score all 250 channels (about 3.2 s)');
    assert.equal(await p.page.getAttribute('#score-all', 'data-estimate-ms'), '3203');
    assert.match((await p.page.getAttribute('#score-all', 'title')) ?? '', /scores 32 of the layer's 256 channels/);
    await screenshot(p.page, 'explain-panel-scorecam-budget.png');

    // A map without details (Grad-CAM): no note, no offer.
    await p.page.evaluate(() => {
      const el = document.getElementById('method') as unknown as HTMLElement & { value: string };
      el.value = 'gradcam';
      el.dispatchEvent(new Event('change'));
    });
    const g = await p.waitForSent('cam/compute', 2);
    await p.send(didCompute(g.requestId as number));
    await p.page.waitForFunction(() => /^Grad-CAM/.test(document.getElementById('status')?.textContent ?? ''));
    assert.doesNotMatch(await text(p, '#status'), /channels/);
    assert.equal(await p.page.isVisible('#scorecam-full'), false);
  });

  it('scores all channels on request, with progress, the time left and Cancel, then captions the full map', async () => {
    const { p } = await budgetedMap();
    await p.page.click('#score-all');
    const all = await p.waitForSent('cam/compute', 2);
    assert.equal(all.allChannels, true);
    // The same map as the one shown (its layer, the top class), over every channel.
    assert.deepEqual([all.method, all.layer, all.classIndex], ['scorecam', 'conv_pw_13_relu', undefined]);
    assert.match(await text(p, '#status'), /^Computing Score-CAM over all channels…/);
    assert.equal(await p.page.$eval('#score-all', (b) => (b as HTMLElement & { disabled: boolean }).disabled), true, 'no second run while one runs');

    await p.send({ type: 'cam/didProgress', requestId: all.requestId as number, done: 0, total: 250 });
    await p.page.waitForSelector('#cancel-cam:not([hidden])');
    await p.page.waitForTimeout(300);
    await p.send({ type: 'cam/didProgress', requestId: all.requestId as number, done: 50, total: 250 });
    await p.page.waitForSelector('#progress[data-done="50"]');
    // 50 channels in about 0.3 s: about 1.2 s for the 200 left.
    const progress = await text(p, '#progress .progress-text');
    const left = /^Score-CAM: 50 \/ 250 channels · about (\d+\.\d) s left$/.exec(progress);
    assert.ok(left, progress);
    assert.ok(Number(left[1]) >= 1.1 && Number(left[1]) <= 3, `time left ${left[1]} s`);
    await screenshot(p.page, 'explain-panel-scorecam-all.png');

    await p.send(scoreCamMap(all.requestId as number, FULL));
    await p.page.waitForSelector('#progress', { state: 'hidden' });
    assert.match(await text(p, '#status'), /· all 250 channels \(6 constant skipped\) ·/);
    assert.equal(await p.page.isVisible('#scorecam-full'), false, 'nothing left to offer');
    assert.equal(await p.page.isVisible('#cancel-cam'), false);

    // The next map (another class) goes back to the budget.
    await p.page.click('#predictions [data-class-index="0"]');
    const next = await p.waitForSent('cam/compute', 3);
    assert.equal(next.allChannels, undefined);
    assert.equal(next.classIndex, 0);
  });

  it('cancels scoring all channels: cam/cancel names the request, and the budgeted map stays with its caption', async () => {
    const { p } = await budgetedMap();
    const caption = await text(p, '#status');
    await p.page.click('#score-all');
    const all = await p.waitForSent('cam/compute', 2);
    await p.send({ type: 'cam/didProgress', requestId: all.requestId as number, done: 8, total: 250 });
    await p.page.waitForSelector('#cancel-cam:not([hidden])');
    await p.page.click('#cancel-cam');
    const cancel = await p.waitForSent('cam/cancel');
    assert.equal(cancel.requestId, all.requestId);
    // The host answers the cancelled request.
    await p.send({ type: 'request/didFail', requestId: all.requestId as number, error: { name: 'CancelledError', message: 'cam/compute was cancelled', code: 'CANCELLED' } });
    await p.page.waitForSelector('#progress', { state: 'hidden' });
    assert.equal(await p.page.getAttribute('#canvas', 'data-state'), 'drawn');
    assert.equal(await text(p, '#status'), caption, 'the caption of the map shown comes back');
    assert.equal(await text(p, '#notice'), 'Scoring all channels was cancelled; the map shown is unchanged.');
    assert.equal(await p.page.isVisible('#error'), false, 'a cancel is not an error');
    // The offer stays, and works again.
    assert.equal(await p.page.isVisible('#scorecam-full'), true);
    await p.page.click('#score-all');
    assert.equal((await p.waitForSent('cam/compute', 3)).allChannels, true);
  });

  it('names the channels in the triage pair caption', async () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48" fill="#557799"/></svg>';
    server.assets.set('/assets/pet.png', await sharp(Buffer.from(svg)).png().toBuffer());
    await host.page.route(/\/triage\.html(\?.*)?$/, (route) => route.fulfill({
      contentType: 'text/html; charset=utf-8',
      body: buildPanelHtml({
        cspSource: server.origin,
        nonce: createNonce(),
        scriptUri: `${server.origin}/dist/webview-triage.js`,
        styleUris: [`${server.origin}/media/common.css`, `${server.origin}/media/triage.css`],
        title: 'CAM Lens: triage',
        kind: 'triage',
      }),
    }));
    const labels = ['cat', 'dog'];
    const p = await host.open('triage');
    await p.waitForSent('panel/ready');
    await p.send({ type: 'panel/didInit', modelName: 'pets', modelPath: '/m/model.json', source: '/data/pets', sourceName: 'pets', method: 'scorecam', colormap: 'turbo', opacity: 0.5,
      state: { version: 1, source: '/data/pets', modelPath: '/m/model.json', flaggedOnly: false } } as TriageHostMessage);
    const dataset: ScanDatasetInfo = {
      kind: 'folder', source: '/data/pets', root: '/data/pets', total: 1, counts: { images: 1, nonImageFiles: 0, unmatchedImages: 0, missingFiles: 0 },
      unmatchedClasses: [], labels, scoredBy: 'self_confidence', reviewed: 0,
    };
    const counts = { images: 1, samples: 1, scanned: 1, failed: 0, flagged: 1, reviewedHidden: 0, nonImageFiles: 0, unmatchedImages: 0, missingFiles: 0 };
    await p.send({ type: 'scan/didStart', scanId: 1, dataset, counts: { ...counts, scanned: 0, flagged: 0 } });
    const row: TriageRow = {
      seq: 0, path: 'cat/a.png', imageUri: `${server.origin}/assets/pet.png`, givenIndex: 0, givenLabel: 'cat', predictedIndex: 1, predictedLabel: 'dog',
      top: [{ index: 1, label: 'dog', probability: 0.8 }, { index: 0, label: 'cat', probability: 0.2 }],
      selfConfidence: 0.2, normalizedMargin: -0.6, entropy: 0.5, score: 0.2, flagged: true,
    };
    await p.send({ type: 'scan/didProgress', scanId: 1, done: 1, total: 1, imagesPerSecond: 10, secondsLeft: 0, counts, rows: [row], failures: [], flagsOn: new Int32Array(0), flagsOff: new Int32Array(0) });
    const ask = await p.waitForSent('cam/pair');
    const heat = (index: number) => ({ target: { index, label: labels[index], probability: 0.5 }, heatmap: { width: 7, height: 7, values: leftHotMap(), rawMin: 0, rawMax: 1 } });
    await p.send({ type: 'cam/didComputePair', requestId: ask.requestId as number, path: 'cat/a.png', method: 'scorecam', methodLabel: 'Score-CAM', layer: 'conv5', given: heat(0), predicted: heat(1),
      note: 'top 32 of 512 channels by mean activation' });
    await p.page.waitForSelector('#heat-given[data-state="drawn"]');
    assert.equal(await text(p, '#pair-status'), 'Score-CAM (top 32 of 512 channels by mean activation) at conv5');
  });
});
