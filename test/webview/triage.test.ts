/**
 * The triage panel's UI in headless Chromium against a fake host (see harness.ts): the real page from
 * panels/html.ts with its CSP (served for kind 'triage' by a route on the suite's page, since the shared server
 * knows the other panels only), the real bundle dist/webview-triage.js, the real stylesheets.
 */
import * as assert from 'node:assert/strict';
import sharp from 'sharp';
import { colormapLut } from '../../src/shared/colormaps';
import { buildPanelHtml, createNonce } from '../../src/extension/panels/html';
import type { ScanDatasetInfo, TriageCounts, TriageHostMessage, TriageRow, TriageViewState } from '../../src/shared/protocol';
import { createPanelHost, ensureBundles, requireChromium, screenshot, sharedBrowser, startServer, type PanelHost, type PanelPage, type Server } from './harness';

const LABELS = ['cat', 'dog', 'fox', 'owl'];
const SOURCE = '/data/pets';

function viewState(over: Partial<TriageViewState> = {}): TriageViewState {
  return { version: 1, source: SOURCE, modelPath: '/models/pets/model.json', flaggedOnly: false, ...over };
}

function didInit(state = viewState()): TriageHostMessage {
  return { type: 'panel/didInit', modelName: 'pets_v2', modelPath: '/models/pets/model.json', source: SOURCE, sourceName: 'pets', method: 'gradcam', colormap: 'turbo', opacity: 0.5, state };
}

const DATASET: ScanDatasetInfo = {
  kind: 'folder',
  source: SOURCE,
  root: SOURCE,
  total: 40,
  counts: { images: 43, nonImageFiles: 2, unmatchedImages: 3, missingFiles: 0 },
  unmatchedClasses: [{ name: 'zebra', images: 3 }],
  labels: LABELS,
  scoredBy: 'self_confidence',
  reviewed: 0,
};

function counts(over: Partial<TriageCounts> = {}): TriageCounts {
  return { images: 43, samples: 40, scanned: 0, failed: 0, flagged: 0, reviewedHidden: 0, nonImageFiles: 2, unmatchedImages: 3, missingFiles: 0, ...over };
}

let imageUri = '';

/** A row: given class seq % 4, predicted (seq + 1) % 4 when `doubt`, else the given class. */
function row(seq: number, score: number, opts: { flagged?: boolean; doubt?: boolean } = {}): TriageRow {
  const g = seq % 4;
  const p = opts.doubt === false ? g : (seq + 1) % 4;
  const top = [p, ...[0, 1, 2, 3].filter((i) => i !== p)].map((i, k) => ({ index: i, label: LABELS[i], probability: [0.7, 0.2, 0.06, 0.04][k] }));
  return {
    seq,
    path: `${LABELS[g]}/img_${String(seq).padStart(4, '0')}.png`,
    imageUri,
    givenIndex: g,
    givenLabel: LABELS[g],
    predictedIndex: p,
    predictedLabel: LABELS[p],
    top,
    selfConfidence: score,
    normalizedMargin: score - 0.7,
    entropy: 0.9,
    score,
    flagged: opts.flagged ?? false,
  };
}

function progress(scanId: number, rows: TriageRow[], done: number, over: Partial<Extract<TriageHostMessage, { type: 'scan/didProgress' }>> = {}): TriageHostMessage {
  return {
    type: 'scan/didProgress',
    scanId,
    done,
    total: 40,
    imagesPerSecond: 12.5,
    secondsLeft: (40 - done) / 12.5,
    counts: counts({ scanned: done, flagged: rows.filter((r) => r.flagged).length }),
    rows,
    failures: [],
    flagsOn: new Int32Array(0),
    flagsOff: new Int32Array(0),
    ...over,
  } as TriageHostMessage;
}

/** A 7x7 map hot in its left three columns (`left`) or its right three. */
function sideMap(left: boolean): Float32Array {
  const v = new Float32Array(49);
  for (let y = 0; y < 7; y++) for (let x = 0; x < 7; x++) v[y * 7 + x] = (left ? x < 3 : x > 3) ? 1 : 0;
  return v;
}

type Rgba = [number, number, number, number];

async function pixel(p: PanelPage, id: string, fx: number, fy: number): Promise<Rgba> {
  return p.page.evaluate(([cid, x, y]) => {
    const c = document.getElementById(cid as string) as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(Math.floor((x as number) * c.width), Math.floor((y as number) * c.height), 1, 1).data;
    return [d[0], d[1], d[2], d[3]] as [number, number, number, number];
  }, [id, fx, fy] as const);
}

function near(actual: Rgba, v: number, what: string): void {
  const lut = colormapLut('turbo');
  const i = 3 * Math.round(v * 255);
  const ok = [0, 1, 2].every((k) => Math.abs(actual[k] - lut[i + k]) <= 3) && Math.abs(actual[3] - 128) <= 1;
  assert.ok(ok, `${what}: got rgba(${actual.join(', ')}), expected about rgba(${lut[i]}, ${lut[i + 1]}, ${lut[i + 2]}, 128)`);
}

/** The rendered rows, top to bottom: path, rank, selected, flagged. */
async function shownRows(p: PanelPage): Promise<{ path: string; rank: number; selected: boolean; flagged: boolean; given: number }[]> {
  return p.page.$$eval('#rows [data-path]', (els) => els
    .map((e) => e as HTMLElement)
    .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
    .map((e) => ({ path: e.dataset.path as string, rank: Number(e.dataset.rank), selected: e.getAttribute('aria-selected') === 'true', flagged: e.dataset.flagged === 'true', given: Number(e.dataset.given) })));
}

async function text(p: PanelPage, selector: string): Promise<string> {
  return (await p.page.locator(selector).first().textContent())?.trim() ?? '';
}

describe('triage panel (headless Chromium, fake host)', function () {
  this.timeout(30000);
  this.slow(5000);
  let server: Server;
  let host: PanelHost;

  before(async function () {
    requireChromium(this);
    ensureBundles();
    server = await startServer();
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48" fill="#557799"/><circle cx="20" cy="24" r="14" fill="#dd9944"/></svg>';
    server.assets.set('/assets/pet.png', await sharp(Buffer.from(svg)).png().toBuffer());
    imageUri = `${server.origin}/assets/pet.png`;
    host = await createPanelHost(await sharedBrowser(), server);
    await host.page.route(/\/triage\.html(\?.*)?$/, (route) => route.fulfill({
      contentType: 'text/html; charset=utf-8',
      body: buildPanelHtml({
        cspSource: server.origin,
        nonce: createNonce(),
        scriptUri: `${server.origin}/dist/webview-triage.js`,
        styleUris: [`${server.origin}/media/common.css`, `${server.origin}/media/triage.css`, `${server.origin}/theme/theme-dark.css`],
        title: 'CAM Lens: triage',
        kind: 'triage',
      }),
    }));
  });

  after(async () => {
    await host?.close();
    await server?.close();
  });

  /** Opens the panel and answers panel/ready with didInit and didStart (scan 1). */
  async function started(saved?: unknown): Promise<PanelPage> {
    const p = await host.open('triage', saved);
    await p.waitForSent('panel/ready');
    await p.send(didInit());
    await p.send({ type: 'scan/didStart', scanId: 1, dataset: DATASET, counts: counts() });
    await p.page.waitForSelector('body[data-phase="scanning"]');
    return p;
  }

  it('speaks first, then shows the counts, the unmatched classes and the progress with Cancel while the scan runs', async () => {
    const p = await host.open('triage');
    await p.waitForSent('panel/ready');
    await p.page.waitForTimeout(100);
    assert.deepEqual((await p.recorded()).sent.map((m) => m.type), ['panel/ready']);
    await p.send(didInit());
    await p.send({ type: 'scan/didStart', scanId: 1, dataset: DATASET, counts: counts() });
    await p.page.waitForSelector('body[data-phase="scanning"]');
    assert.equal(await text(p, '#title'), 'Likely mislabeled samples in pets');
    assert.equal(await text(p, '#model-name'), 'pets_v2');
    assert.equal(await text(p, '#scored-by'), 'self-confidence');
    assert.equal(await text(p, '#count-images'), '43');
    assert.equal(await text(p, '#count-non-image'), '2');
    assert.equal(await text(p, '#count-unmatched'), '3');
    assert.match(await text(p, '#unmatched-classes'), /zebra \(3\)/);
    assert.equal(await p.page.isVisible('#progress'), true);
    assert.equal(await p.page.isVisible('#cancel-scan'), true);
    assert.equal(await p.page.getAttribute('#save-csv', 'disabled'), '');
    await p.send(progress(1, [row(0, 0.5), row(1, 0.2)], 8, { failures: [{ path: 'dog/broken.png', error: 'not a readable image' }], counts: counts({ scanned: 7, failed: 1 }) }));
    await p.page.waitForSelector('#rows [data-path]');
    assert.equal(await text(p, '#count-failed'), '1');
    assert.match(await text(p, '#failures'), /dog\/broken\.png \(not a readable image\)/);
    assert.match(await text(p, '#progress .progress-text'), /Scanning 8 \/ 40 · 12\.5 images\/s · 3 s left/);
    await p.page.click('#cancel-scan');
    await p.waitForSent('scan/cancel');
    assert.deepEqual(p.errors, []);
    assert.deepEqual((await p.recorded()).violations, []);
  });

  it('renders streamed rows in rank order, keeps them ranked as more arrive, and follows flag changes and the final ranking', async () => {
    const p = await started();
    await p.send(progress(1, [row(0, 0.9, { doubt: false }), row(1, 0.3), row(2, 0.6), row(3, 0.1, { flagged: true })], 4));
    await p.page.waitForFunction(() => document.querySelectorAll('#rows [data-path]').length === 4);
    let rows = await shownRows(p);
    assert.deepEqual(rows.map((r) => r.path), ['owl/img_0003.png', 'dog/img_0001.png', 'fox/img_0002.png', 'cat/img_0000.png']);
    assert.deepEqual(rows.map((r) => r.rank), [1, 2, 3, 4]);
    assert.deepEqual(rows.map((r) => r.flagged), [true, false, false, false]);
    // More rows, one more doubtful than all so far, and a flag that turns on for an earlier row.
    await p.send(progress(1, [row(4, 0.05, { flagged: true }), row(5, 0.7)], 6, { flagsOn: new Int32Array([1]) }));
    await p.page.waitForFunction(() => document.querySelectorAll('#rows [data-path]').length === 6);
    rows = await shownRows(p);
    assert.deepEqual(rows.map((r) => r.path), ['cat/img_0004.png', 'owl/img_0003.png', 'dog/img_0001.png', 'fox/img_0002.png', 'dog/img_0005.png', 'cat/img_0000.png']);
    assert.deepEqual(rows.map((r) => r.flagged), [true, true, true, false, false, false]);
    assert.equal(await text(p, '#row-count'), 'Showing 6 of 6 samples');
    // The first row was selected when rows arrived: its row holds the selection and its pair was asked for.
    assert.equal(rows.filter((r) => r.selected).length, 1);
    // The report's ranking and flags are the final word.
    await p.send({ type: 'scan/didFinish', scanId: 1, cancelled: false, seconds: 2.5, counts: counts({ scanned: 6, flagged: 1 }), order: new Int32Array([3, 4, 1, 2, 5, 0]), flagged: new Int32Array([4]) } as TriageHostMessage);
    await p.page.waitForSelector('body[data-phase="finished"]');
    rows = await shownRows(p);
    assert.deepEqual(rows.map((r) => r.path.slice(-8)), ['0003.png', '0004.png', '0001.png', '0002.png', '0005.png', '0000.png']);
    assert.deepEqual(rows.map((r) => r.flagged), [false, true, false, false, false, false]);
    assert.equal(await p.page.isVisible('#progress'), false);
    assert.equal(await text(p, '#scan-status'), 'Scanned 6 images in 2.5 s: 1 flagged.');
    assert.equal(await text(p, '#count-flagged'), '1');
    assert.equal(await p.page.getAttribute('#save-csv', 'disabled'), null);
    await p.page.click('#save-json');
    assert.equal((await p.waitForSent('report/save')).format, 'json');
    await p.page.click('#save-csv');
    assert.equal((await p.waitForSent('report/save', 2)).format, 'csv');
    // Messages of an older scan are ignored.
    await p.send(progress(0, [row(30, 0.0)], 1));
    await p.page.waitForTimeout(50);
    assert.equal((await shownRows(p)).length, 6);
  });

  it('keeps thousands of rows smooth: only the visible ones exist, and scrolling brings in the rest', async () => {
    const p = await started();
    // Built in the page and posted there, as the host's messages arrive: carrying 3000 rows through the test
    // driver would cost seconds that say nothing about the panel.
    const template = progress(1, [row(0, 0)], 0);
    await p.page.evaluate(([base, n]) => {
      const msg = base as unknown as { rows: Record<string, unknown>[]; done: number; flagsOn: unknown; flagsOff: unknown };
      const r0 = msg.rows[0];
      for (let start = 0; start < (n as number); start += 1000) {
        const rows = [];
        for (let i = start; i < start + 1000; i++) rows.push({ ...r0, seq: i, path: `cat/img_${String(i).padStart(4, '0')}.png`, score: ((i * 7919) % 3000) / 3000, selfConfidence: ((i * 7919) % 3000) / 3000 });
        window.postMessage({ ...msg, rows, done: start + 1000, flagsOn: new Int32Array(0), flagsOff: new Int32Array(0) }, '*');
      }
    }, [template, 3000] as const);
    await p.page.waitForFunction(() => document.getElementById('rows')?.dataset.rows === '3000');
    const inDom = await p.page.locator('#rows [data-path]').count();
    assert.ok(inDom > 5 && inDom < 80, `${inDom} rows in the DOM`);
    assert.equal((await shownRows(p))[0].rank, 1);
    await p.page.$eval('#rows', (e) => { e.scrollTop = e.scrollHeight; });
    await p.page.waitForSelector('#rows [data-rank="3000"]');
    assert.ok((await p.page.locator('#rows [data-path]').count()) < 80);
  });

  it('shows the thumbnails while the scan streams rows: slow ones, ones whose first load fails, never detached by a refill', async () => {
    const p = await started();
    // Thumbnails that take 400 ms to arrive (a webview resource on a loaded machine), the first request of each
    // failing, while rows stream in every 50 ms.
    const slowUri = `${server.origin}/assets/slow-pet.png`;
    const png = server.assets.get('/assets/pet.png') as Buffer;
    let requests = 0;
    await p.page.route(slowUri, async (route) => {
      requests++;
      await new Promise((r) => setTimeout(r, 400));
      if (requests === 1) await route.fulfill({ status: 503, body: 'busy' });
      else await route.fulfill({ contentType: 'image/png', body: png });
    });
    // Count thumbnails taken out of the list (a refill must update a row's text around its image, not re-insert it).
    await p.page.evaluate(() => {
      const w = window as unknown as { __thumbRemovals: number };
      w.__thumbRemovals = 0;
      new MutationObserver((records) => {
        for (const r of records) for (const n of Array.from(r.removedNodes)) if (n instanceof HTMLImageElement && n.isConnected) w.__thumbRemovals++;
      }).observe(document.getElementById('rows')!, { childList: true, subtree: true });
    });
    try {
      await p.page.evaluate(([base, uri]) => {
        const msg = base as unknown as { rows: Record<string, unknown>[] };
        const r0 = msg.rows[0];
        let n = 0;
        const timer = setInterval(() => {
          const rows = [0, 1].map((k) => ({ ...r0, seq: n * 2 + k, path: `cat/slow_${n * 2 + k}.png`, imageUri: uri, score: 0.5 + (n * 2 + k) / 1000, selfConfidence: 0.5 }));
          window.postMessage({ ...msg, rows, done: n * 2 + 2, flagsOn: new Int32Array(0), flagsOff: new Int32Array(0) }, '*');
          if (++n >= 60) clearInterval(timer);
        }, 50);
      }, [progress(1, [row(0, 0)], 0), slowUri] as const);
      // Still scanning (60 messages over 3 s): the first rows' thumbnails have arrived and show.
      await p.page.waitForFunction(() => {
        const imgs = Array.from(document.querySelectorAll<HTMLImageElement>('#rows [data-path="cat/slow_0.png"] img.thumb, #rows [data-path="cat/slow_1.png"] img.thumb'));
        return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
      }, undefined, { timeout: 2600 });
      assert.equal(await p.page.getAttribute('body', 'data-phase'), 'scanning');
      assert.ok(requests >= 2, 'the failed first load was retried');
      assert.equal(await p.page.evaluate(() => (window as unknown as { __thumbRemovals: number }).__thumbRemovals), 0, 'no thumbnail was detached and re-inserted');
      assert.equal(await p.page.locator('#rows img.thumb[loading="lazy"]').count(), 0);
    } finally {
      await p.page.unroute(slowUri);
    }
  });

  it('shows samples the webview cannot decode (DICOM, TIFF) as PNGs the host renders, asking once per sample', async () => {
    const p = await started();
    const dcm = (seq: number): TriageRow => ({ ...row(seq, 0.2 + seq / 100), path: `cat/scan_${seq}.dcm`, imageUri: '', rendered: true });
    await p.send(progress(1, [dcm(0), dcm(1), row(2, 0.9, { doubt: false })], 3));
    await p.waitForSent('sample/render', 2);
    const asks = (await p.recorded()).sent.filter((m) => m.type === 'sample/render');
    assert.deepEqual(asks.map((a) => a.path).sort(), ['cat/scan_0.dcm', 'cat/scan_1.dcm']);
    assert.ok(asks.every((a) => a.maxSize === 512));
    const png = server.assets.get('/assets/pet.png') as Buffer;
    for (const a of asks) await p.send({ type: 'sample/didRender', requestId: a.requestId as number, path: a.path as string, png: new Uint8Array(png) });
    await p.page.waitForFunction(() => {
      const imgs = Array.from(document.querySelectorAll<HTMLImageElement>('#rows [data-path$=".dcm"] img.thumb'));
      return imgs.length === 2 && imgs.every((i) => i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0);
    });
    // The browser-decodable row keeps its own URI; selecting a DICOM row shows the rendered image under its maps.
    assert.equal(await p.page.getAttribute('#rows [data-path="fox/img_0002.png"] img.thumb', 'src'), imageUri);
    await p.page.click('#rows [data-path="cat/scan_0.dcm"]');
    await p.page.waitForFunction(() => (document.getElementById('img-given') as HTMLImageElement).src.startsWith('blob:'));

    // More progress (the rows refill): nothing is asked for again.
    await p.send(progress(1, [dcm(3)], 4));
    assert.equal((await p.waitForSent('sample/render', 3)).path, 'cat/scan_3.dcm');
    await p.page.waitForTimeout(200);
    assert.equal((await p.recorded()).sent.filter((m) => m.type === 'sample/render').length, 3);
    assert.deepEqual(p.errors, []);
  });

  it('keeps the list in place when the scan ends and its progress row goes', async () => {
    const p = await started();
    await p.send(progress(1, [row(0, 0.1), row(1, 0.2)], 2));
    await p.page.waitForSelector('#rows [data-path]');
    assert.equal(await p.page.isVisible('#progress'), true);
    const before = await p.page.$eval('#rows', (e) => e.getBoundingClientRect().top);
    await p.send({ type: 'scan/didFinish', scanId: 1, cancelled: false, seconds: 1.5, counts: counts({ scanned: 2 }), order: new Int32Array([0, 1]), flagged: new Int32Array(0) } as TriageHostMessage);
    await p.page.waitForSelector('body[data-phase="finished"]');
    assert.equal(await p.page.isVisible('#progress'), false);
    assert.match(await text(p, '#scan-status'), /Scanned 2 images/);
    const after = await p.page.$eval('#rows', (e) => e.getBoundingClientRect().top);
    assert.ok(Math.abs(after - before) < 1, `the list stays at ${before} px (now ${after} px)`);
  });

  it('keeps the detail buttons in place while the heatmaps of a row are computed and shown', async () => {
    const p = await started();
    await p.send(progress(1, [row(0, 0.1), row(1, 0.2)], 2));
    const buttonsTop = () => p.page.$eval('#open-sample', (e) => e.getBoundingClientRect().top);
    await p.page.waitForSelector('#heat-given[data-state="computing"]');
    const idle = await buttonsTop();
    const ask = await p.waitForSent('cam/pair');
    await p.page.waitForSelector('#pair-progress', { state: 'visible' });
    const computing = await buttonsTop();
    const map = (index: number, left: boolean) => ({ target: { index, label: LABELS[index], probability: 0.5 }, heatmap: { width: 7, height: 7, values: sideMap(left), rawMin: 0, rawMax: 1 } });
    await p.send({ type: 'cam/didComputePair', requestId: ask.requestId, path: 'cat/img_0000.png', method: 'gradcam', methodLabel: 'Grad-CAM', layer: 'conv', given: map(0, true), predicted: map(1, false) });
    await p.page.waitForSelector('#heat-given[data-state="drawn"]');
    assert.equal(await p.page.isVisible('#pair-progress'), false);
    const drawn = await buttonsTop();
    assert.ok(Math.abs(computing - idle) < 1 && Math.abs(drawn - idle) < 1, `the buttons stay put: ${idle}, ${computing}, ${drawn} px`);
  });

  it('filters by given class, predicted class and "flagged only"', async () => {
    const p = await started();
    const wait = (n: string) => p.page.waitForFunction((v) => document.getElementById('rows')?.dataset.rows === v, n, { timeout: 5000 });
    await p.send(progress(1, Array.from({ length: 12 }, (_, i) => row(i, i / 12, { flagged: i % 3 === 0 })), 12));
    await wait('12');
    const options = await p.page.$$eval('#given-filter vscode-option', (els) => els.map((e) => [e.getAttribute('value'), e.textContent]));
    assert.deepEqual(options, [['', 'All classes'], ['0', 'cat'], ['1', 'dog'], ['2', 'fox'], ['3', 'owl']]);
    const setSelect = (id: string, value: string) => p.page.evaluate(([i, v]) => {
      const s = document.getElementById(i) as HTMLElement & { value: string };
      s.value = v;
      s.dispatchEvent(new Event('change'));
    }, [id, value] as const);
    await setSelect('given-filter', '1');
    await wait('3');
    assert.ok((await shownRows(p)).every((r) => r.given === 1));
    await setSelect('predicted-filter', '2');
    await wait('3');
    await setSelect('given-filter', '');
    await wait('3');
    assert.deepEqual((await shownRows(p)).map((r) => r.path), ['dog/img_0001.png', 'dog/img_0005.png', 'dog/img_0009.png']);
    await setSelect('predicted-filter', '');
    await p.page.click('#flagged-only');
    await wait('4');
    assert.ok((await shownRows(p)).every((r) => r.flagged));
    assert.equal(await text(p, '#row-count'), 'Showing 4 of 12 samples');
    const state = (await p.sentOfType('state/didChange')).pop()?.state as TriageViewState;
    assert.deepEqual([state.flaggedOnly, state.givenFilter, state.predictedFilter], [true, undefined, undefined]);
    await setSelect('given-filter', '2');
    await wait('1');
    assert.deepEqual((await shownRows(p)).map((r) => r.path), ['fox/img_0006.png']);
    await setSelect('predicted-filter', '1');
    await wait('0');
    assert.equal(await text(p, '#empty-note'), 'No sample matches the filters.');
  });

  it('moves the selection with the keyboard; Enter, C, M and U post the right requests; a moved row is marked, a confirmed one disappears', async () => {
    const p = await started();
    await p.send(progress(1, Array.from({ length: 8 }, (_, i) => row(i, i / 8)), 8));
    await p.page.waitForFunction(() => document.getElementById('rows')?.dataset.rows === '8');
    await p.page.focus('#rows');
    const selected = async () => (await shownRows(p)).find((r) => r.selected)?.path;
    assert.equal(await selected(), 'cat/img_0000.png');
    await p.page.keyboard.press('ArrowDown');
    await p.page.keyboard.press('ArrowDown');
    assert.equal(await selected(), 'fox/img_0002.png');
    await p.page.keyboard.press('ArrowUp');
    assert.equal(await selected(), 'dog/img_0001.png');
    assert.equal(await p.page.getAttribute('#rows', 'aria-activedescendant'), 'row-1');
    await p.page.keyboard.press('End');
    assert.equal(await selected(), 'owl/img_0007.png');
    await p.page.keyboard.press('Home');
    await p.page.keyboard.press('ArrowDown');
    assert.equal(await text(p, '#detail-title'), 'dog/img_0001.png');

    await p.page.keyboard.press('Enter');
    assert.equal((await p.waitForSent('sample/open')).path, 'dog/img_0001.png');
    await p.page.keyboard.press('m');
    const move = await p.waitForSent('sample/move');
    assert.equal(move.path, 'dog/img_0001.png');
    // The host moved it: same row, new path and given label, marked "moved".
    await p.send({ type: 'sample/didMove', requestId: move.requestId, path: 'dog/img_0001.png', row: { ...row(1, 1 / 8), path: 'fox/img_0001.png', givenIndex: 2, givenLabel: 'fox', movedFrom: 'dog' }, counts: counts({ scanned: 8 }) });
    await p.page.waitForSelector('#rows [data-path="fox/img_0001.png"][data-moved="true"]');
    assert.match(await text(p, '#notice'), /Moved dog\/img_0001\.png to fox\/img_0001\.png/);
    assert.equal(await selected(), 'fox/img_0001.png');
    assert.equal(await p.page.getAttribute('#undo-move', 'disabled'), null);
    // U undoes it: the host answers with the row as it was.
    await p.page.keyboard.press('u');
    const undo = await p.waitForSent('sample/undoMove');
    assert.equal(undo.path, 'fox/img_0001.png');
    await p.send({ type: 'sample/didMove', requestId: undo.requestId, path: 'fox/img_0001.png', row: row(1, 1 / 8), counts: counts({ scanned: 8 }) });
    await p.page.waitForSelector('#rows [data-path="dog/img_0001.png"]:not([data-moved])');
    assert.match(await text(p, '#notice'), /fox\/img_0001\.png is back at dog\/img_0001\.png/);
    assert.equal(await p.page.getAttribute('#undo-move', 'disabled'), '');
    // Moved again, then undone from the host's notification (no request of ours).
    await p.page.keyboard.press('m');
    const again = await p.waitForSent('sample/move', 2);
    await p.send({ type: 'sample/didMove', requestId: again.requestId, path: 'dog/img_0001.png', row: { ...row(1, 1 / 8), path: 'fox/img_0001.png', givenIndex: 2, givenLabel: 'fox', movedFrom: 'dog' }, counts: counts({ scanned: 8 }) });
    await p.page.waitForSelector('#rows [data-path="fox/img_0001.png"][data-moved="true"]');
    await p.send({ type: 'sample/didChange', path: 'fox/img_0001.png', row: row(1, 1 / 8), counts: counts({ scanned: 8 }) });
    await p.page.waitForSelector('#rows [data-path="dog/img_0001.png"]:not([data-moved])');
    await p.page.keyboard.press('m');
    const third = await p.waitForSent('sample/move', 3);
    await p.send({ type: 'sample/didMove', requestId: third.requestId, path: 'dog/img_0001.png', row: { ...row(1, 1 / 8), path: 'fox/img_0001.png', givenIndex: 2, givenLabel: 'fox', movedFrom: 'dog' }, counts: counts({ scanned: 8 }) });
    await p.page.waitForSelector('#rows [data-path="fox/img_0001.png"][data-moved="true"]');

    await p.page.keyboard.press('c');
    const mark = await p.waitForSent('sample/markCorrect');
    assert.equal(mark.path, 'fox/img_0001.png');
    // The row goes at once and the next one takes the selection.
    await p.page.waitForFunction(() => !document.querySelector('#rows [data-path="fox/img_0001.png"]'));
    assert.equal(await selected(), 'fox/img_0002.png');
    await p.send({ type: 'sample/didMarkCorrect', requestId: mark.requestId, path: 'fox/img_0001.png', counts: counts({ scanned: 8, reviewedHidden: 1 }) });
    await p.page.waitForFunction(() => document.getElementById('count-reviewed')?.textContent === '1');
    assert.equal((await shownRows(p)).length, 7);
    // A mark the host could not store brings its row back, with the reason.
    await p.page.keyboard.press('c');
    const failed = await p.waitForSent('sample/markCorrect', 2);
    await p.page.waitForFunction(() => document.getElementById('rows')?.dataset.rows === '6');
    await p.send({ type: 'request/didFail', requestId: failed.requestId, error: { name: 'Error', message: 'EACCES: permission denied, open reviewed.json', code: 'EACCES' } });
    await p.page.waitForFunction(() => document.getElementById('rows')?.dataset.rows === '7');
    assert.match(await text(p, '#error .error-message'), /permission denied/);
  });

  it('after a move shows the row with its new label\'s probability, score and flag, and the counts; after the undo the old ones', async () => {
    const p = await started();
    // dog/img_0001.png: given dog at 20%, predicted fox at 70%, flagged (2 of 4 rows flagged).
    const doubtful = { ...row(1, 0.2, { flagged: true }), selfConfidence: 0.2 };
    await p.send(progress(1, [row(0, 0.1, { flagged: true }), doubtful, row(2, 0.6), row(3, 0.9, { doubt: false })], 4, { counts: counts({ scanned: 4, flagged: 2 }) }));
    await p.page.waitForFunction(() => document.getElementById('rows')?.dataset.rows === '4');
    await p.page.click('#rows [data-path="dog/img_0001.png"]');
    const rowText = (sel: string) => p.page.$eval(`#rows [data-seq="1"] ${sel}`, (e) => e.textContent?.trim() ?? '');
    assert.equal(await rowText('.given'), 'dog 20.0%');
    assert.equal(await rowText('.score'), '0.200');
    assert.equal(await text(p, '#count-flagged'), '2');
    await p.page.keyboard.press('m');
    const move = await p.waitForSent('sample/move');
    // The host moved it to fox and scored it for fox: 70%, margin 0.5, not flagged; one flagged row left.
    const moved: TriageRow = { ...doubtful, path: 'fox/img_0001.png', givenIndex: 2, givenLabel: 'fox', movedFrom: 'dog', selfConfidence: 0.7, normalizedMargin: 0.5, score: 0.7, flagged: false };
    await p.send({ type: 'sample/didMove', requestId: move.requestId, path: 'dog/img_0001.png', row: moved, counts: counts({ scanned: 4, flagged: 1 }) });
    await p.page.waitForSelector('#rows [data-path="fox/img_0001.png"][data-moved="true"]');
    assert.equal(await rowText('.given'), 'fox 70.0%');
    assert.equal(await rowText('.predicted'), 'same');
    assert.equal(await rowText('.score'), '0.700');
    assert.equal(await p.page.getAttribute('#rows [data-seq="1"]', 'data-flagged'), 'false');
    assert.equal(await text(p, '#count-flagged'), '1');
    assert.match(await text(p, '#detail-meta'), /^Given fox \(70\.0%\), moved from dog · predicted fox · score 0\.700 · top 5/);
    assert.doesNotMatch(await text(p, '#detail-meta'), /flagged/);
    // Undone: the old label's numbers and flag, and the count, come back.
    await p.page.keyboard.press('u');
    const undo = await p.waitForSent('sample/undoMove');
    await p.send({ type: 'sample/didMove', requestId: undo.requestId, path: 'fox/img_0001.png', row: doubtful, counts: counts({ scanned: 4, flagged: 2 }) });
    await p.page.waitForSelector('#rows [data-path="dog/img_0001.png"]:not([data-moved])');
    assert.equal(await rowText('.given'), 'dog 20.0%');
    assert.equal(await rowText('.score'), '0.200');
    assert.equal(await p.page.getAttribute('#rows [data-seq="1"]', 'data-flagged'), 'true');
    assert.equal(await text(p, '#count-flagged'), '2');
    assert.match(await text(p, '#detail-meta'), /· flagged ·/);
  });

  it('draws the given-label and the predicted-label heatmaps of the selected row, and reuses them when it comes back', async () => {
    const p = await started();
    await p.send(progress(1, [row(0, 0.1), row(1, 0.2)], 2));
    const ask = await p.waitForSent('cam/pair');
    assert.equal(ask.path, 'cat/img_0000.png');
    assert.equal(await p.page.getAttribute('#heat-given', 'data-state'), 'computing');
    await p.send({
      type: 'cam/didComputePair', requestId: ask.requestId, path: 'cat/img_0000.png', method: 'gradcam', methodLabel: 'Grad-CAM', layer: 'block5_conv3',
      given: { target: { index: 0, label: 'cat', probability: 0.1 }, heatmap: { width: 7, height: 7, values: sideMap(true), rawMin: 0, rawMax: 1 } },
      predicted: { target: { index: 1, label: 'dog', probability: 0.7 }, heatmap: { width: 7, height: 7, values: sideMap(false), rawMin: 0, rawMax: 1 } },
    });
    await p.page.waitForSelector('#heat-given[data-state="drawn"]');
    await p.page.waitForSelector('#heat-predicted[data-state="drawn"]');
    assert.deepEqual([await p.page.getAttribute('#heat-given', 'data-class-index'), await p.page.getAttribute('#heat-predicted', 'data-class-index')], ['0', '1']);
    near(await pixel(p, 'heat-given', 0.1, 0.5), 1, 'given map, left');
    near(await pixel(p, 'heat-given', 0.9, 0.5), 0, 'given map, right');
    near(await pixel(p, 'heat-predicted', 0.1, 0.5), 0, 'predicted map, left');
    near(await pixel(p, 'heat-predicted', 0.9, 0.5), 1, 'predicted map, right');
    assert.match(await text(p, '#heat-given-label'), /cat \(10\.0%\)/);
    assert.match(await text(p, '#heat-predicted-label'), /dog \(70\.0%\)/);
    assert.equal(await text(p, '#pair-status'), 'Grad-CAM at block5_conv3');
    assert.equal(await p.page.getAttribute('#img-given', 'src'), imageUri);
    await p.page.waitForFunction(() => (document.getElementById('img-given') as HTMLImageElement).complete);
    await screenshot(p.page, 'triage-panel.png');

    // Away and back: the second row asks for its own pair; the first comes from the cache.
    await p.page.focus('#rows');
    await p.page.keyboard.press('ArrowDown');
    await p.waitForSent('cam/pair', 2);
    await p.page.keyboard.press('ArrowUp');
    await p.page.waitForSelector('#heat-given[data-state="drawn"]');
    near(await pixel(p, 'heat-given', 0.1, 0.5), 1, 'given map from the cache');
    await p.page.waitForTimeout(300);
    assert.equal((await p.sentOfType('cam/pair')).length, 2);
  });

  it('shows a scan that cannot run as a specific error, and an unmatched dataset as a note', async () => {
    const p = await host.open('triage');
    await p.waitForSent('panel/ready');
    await p.send(didInit());
    await p.send({ type: 'scan/didFail', scanId: 1, error: { name: 'CamLensError', code: 'METADATA_INVALID', message: 'the model has no class labels, so dataset labels cannot be matched to it', hint: 'add labels to cam-lens.json' } });
    await p.page.waitForSelector('#error:not([hidden])');
    assert.match(await text(p, '#error .error-message'), /no class labels/);
    assert.match(await text(p, '#error .error-hint'), /Next step: add labels to cam-lens\.json/);
    assert.equal(await p.page.getAttribute('#error', 'data-code'), 'METADATA_INVALID');
    assert.equal(await p.page.getAttribute('#rescan', 'disabled'), null);
    await p.page.click('#rescan');
    await p.waitForSent('scan/rescan');

    // A rescan where no folder matches a model label: counts and the reason, no error.
    await p.send({ type: 'scan/didStart', scanId: 2, dataset: { ...DATASET, total: 0, unmatchedClasses: [{ name: 'zebra', images: 3 }, { name: 'yak', images: 2 }] }, counts: counts({ samples: 0 }) });
    await p.send({ type: 'scan/didFinish', scanId: 2, cancelled: false, seconds: 0.1, counts: counts({ samples: 0 }), order: new Int32Array(0), flagged: new Int32Array(0) } as TriageHostMessage);
    await p.page.waitForSelector('body[data-phase="finished"]');
    assert.equal(await p.page.isVisible('#error'), false);
    assert.match(await text(p, '#empty-note'), /the class names zebra, yak match none of its labels/);
    assert.match(await text(p, '#unmatched-classes'), /zebra \(3\), yak \(2\)/);
    assert.deepEqual(p.errors, []);
  });

  it('offers an output picker when the model has several outputs, and asks for a scan of the output chosen', async () => {
    // One output: no picker.
    const single = await started();
    assert.equal(await single.page.$eval('#output-field', (e) => (e as HTMLElement).hidden), true);
    const p = await host.open('triage');
    await p.waitForSent('panel/ready');
    await p.send(didInit());
    const outputs = [{ name: 'kind', units: 3, activation: 'softmax' }, { name: 'sick', units: 1, activation: 'sigmoid' }];
    await p.send({ type: 'scan/didStart', scanId: 1, dataset: { ...DATASET, outputs, output: 'kind' }, counts: counts() });
    await p.page.waitForSelector('#output-field:not([hidden])');
    assert.deepEqual(await p.page.$$eval('#output vscode-option', (os) => os.map((o) => o.textContent)), ['kind (3 units, softmax)', 'sick (1 unit, sigmoid)']);
    await p.page.evaluate(() => {
      const el = document.getElementById('output') as unknown as HTMLElement & { value: string };
      el.value = 'sick';
      el.dispatchEvent(new Event('change'));
    });
    const m = await p.waitForSent('output/select');
    assert.equal(m.output, 'sick');
    assert.equal(((await p.recorded()).state as TriageViewState).output, 'sick');
    // The host's new scan runs the binary output: two classes, the picker on it.
    await p.send({ type: 'scan/didStart', scanId: 2, dataset: { ...DATASET, outputs, output: 'sick', labels: ['healthy', 'sick'] }, counts: counts() });
    await p.page.waitForFunction(() => (document.getElementById('output') as unknown as { value: string }).value === 'sick');
    assert.deepEqual(p.errors, []);
  });

  it('restores the filters and the selection from its saved state', async () => {
    const p = await started(viewState({ flaggedOnly: true, selected: 'owl/img_0003.png' }));
    await p.send(progress(1, [row(0, 0.1, { flagged: true }), row(1, 0.2), row(3, 0.3, { flagged: true })], 3));
    await p.page.waitForFunction(() => document.getElementById('rows')?.dataset.rows === '2');
    assert.equal((await shownRows(p)).find((r) => r.selected)?.path, 'owl/img_0003.png');
    assert.equal(await p.page.$eval('#flagged-only', (e) => (e as HTMLElement & { checked: boolean }).checked), true);
  });
});
