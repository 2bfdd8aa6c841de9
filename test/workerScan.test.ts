/**
 * Dataset scans through the real engine worker (dist/worker.js, built by `node esbuild.js` when older than its
 * sources): streamed rows and progress, the final report in rank order with its counts, cancellation that keeps
 * what was computed, heatmap pairs answered while a scan runs, "label is correct" marks hiding samples from the
 * next scan, specific errors for unusable datasets and models, and no tensor growth inside the worker.
 */
import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { ensureBuilt } from './helpers/build';
import sharp from 'sharp';
import { initBackend } from '../src/extension/engine/backend';
import { EngineClient, EngineError } from '../src/extension/engineClient';
import type { ModelRef, ScanEvent, ScanRunResult, ScanParams } from '../src/extension/workerProtocol';
import type { ScanRow } from '../src/shared/protocol';
import { tempDir, writeModel } from './helpers/modelFiles';
import { bnModel } from './helpers/models';

const ROOT = path.resolve(__dirname, '..');
const WORKER = path.join(ROOT, 'dist', 'worker.js');
const LABELS = ['apple', 'banana', 'cherry', 'date', 'elder'];

/** dist/worker.js as the extension ships it, rebuilt with `node esbuild.js` when a source is newer. */
function ensureWorker(): string {
  ensureBuilt(['worker.js'], ['src/extension', 'src/shared']);
  return WORKER;
}

/** A 16x16 PNG of deterministic pseudo-random pixels. */
async function writePng(file: string, seed: number): Promise<void> {
  const px = Buffer.alloc(16 * 16 * 3);
  let s = seed + 1;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    px[i] = s >> 23;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(file);
}

/** `<root>/<class>/<i>.png` for each class, `perClass` images each. */
async function writeDataset(root: string, classes: string[], perClass: number, seed = 0): Promise<void> {
  let k = seed;
  for (const c of classes) for (let i = 0; i < perClass; i++) await writePng(path.join(root, c, `${i}.png`), k++);
}

/** What a host sees of a scan: the events, the rows by seq with their flags kept current, and the reply. */
interface Collected {
  events: ScanEvent[];
  rows: Map<number, ScanRow>;
  result: ScanRunResult;
}

async function collect(client: EngineClient, params: ScanParams, onEvent?: (e: ScanEvent, rows: Map<number, ScanRow>) => void, signal?: AbortSignal): Promise<Collected> {
  const events: ScanEvent[] = [];
  const rows = new Map<number, ScanRow>();
  const result = await client.scan(params, {
    signal,
    onEvent: (e) => {
      events.push(e);
      if (e.kind === 'progress') {
        for (const r of e.rows) {
          assert.ok(!rows.has(r.seq), `row ${r.seq} sent twice`);
          rows.set(r.seq, { ...r });
        }
        for (const seq of e.flagsOn) (rows.get(seq) as ScanRow).flagged = true;
        for (const seq of e.flagsOff) (rows.get(seq) as ScanRow).flagged = false;
      }
      onEvent?.(e, rows);
    },
  });
  return { events, rows, result };
}

const progressEvents = (c: Collected) => c.events.filter((e): e is Extract<ScanEvent, { kind: 'progress' }> => e.kind === 'progress');

describe('engine worker: dataset scans', function () {
  this.timeout(60000);
  let client: EngineClient;
  let model: ModelRef;
  let dir: string;
  /** 3 classes x 12 images, a broken PNG, a text file, an unmatched class folder. */
  let small: string;
  /** 3 classes x 40 images: long enough at batch size 1 to cancel or interleave. */
  let big: string;

  before(async () => {
    await initBackend('cpu');
    const workerPath = ensureWorker();
    dir = tempDir('cam-lens-scan-');
    const m = bnModel();
    model = { path: (await writeModel(m, path.join(dir, 'model'), { labels: LABELS, inputSize: [16, 16], preprocess: '[0,1]' })).modelJson };
    m.dispose();
    small = path.join(dir, 'small');
    await writeDataset(small, ['apple', 'banana', 'cherry'], 12);
    await writeDataset(small, ['zucchini'], 2, 100);
    fs.writeFileSync(path.join(small, 'banana', 'broken.png'), Buffer.from('\x89PNG\r\n\x1a\n not really'));
    fs.writeFileSync(path.join(small, 'banana', 'notes.txt'), 'not an image');
    big = path.join(dir, 'big');
    await writeDataset(big, ['apple', 'banana', 'cherry'], 40, 200);
    client = new EngineClient({ workerPath, backend: 'cpu' });
  });

  after(async () => {
    await client?.dispose();
  });

  it('streams the dataset, rows and progress, then replies with the report in rank order and its counts', async () => {
    const c = await collect(client, { model, data: small, batchSize: 4, eventIntervalMs: 0 });
    const [first] = c.events;
    assert.strictEqual(first.kind, 'dataset');
    if (first.kind !== 'dataset') return;
    assert.deepStrictEqual(
      [first.dataset.kind, first.dataset.total, first.dataset.counts, first.dataset.unmatchedClasses, first.dataset.labels, first.dataset.scoredBy],
      ['folder', 37, { images: 39, nonImageFiles: 1, unmatchedImages: 2, missingFiles: 0 }, [{ name: 'zucchini', images: 2 }], LABELS, 'self_confidence'],
    );
    assert.strictEqual(c.events.filter((e) => e.kind === 'dataset').length, 1);

    const progress = progressEvents(c);
    assert.ok(progress.filter((e) => e.rows.length > 0).length >= 2, 'rows arrive in several events, not all at the end');
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i].done > progress[i - 1].done, 'done grows');
    const last = progress[progress.length - 1];
    assert.deepStrictEqual([last.done, last.total, last.scanned, last.failed, last.hidden], [37, 37, 36, 1, 0]);
    assert.ok(progress.every((e) => e.imagesPerSecond > 0 && e.secondsLeft >= 0 && e.thresholds.length === LABELS.length));
    assert.deepStrictEqual(progress.flatMap((e) => e.failures.map((f) => f.path)), ['banana/broken.png']);

    // Rows: one per scanned sample, seq in arrival order, only what the view needs.
    assert.deepStrictEqual([...c.rows.keys()], Array.from({ length: 36 }, (_, i) => i));
    for (const r of c.rows.values()) {
      assert.deepStrictEqual(Object.keys(r).sort(), ['entropy', 'flagged', 'givenIndex', 'givenLabel', 'normalizedMargin', 'path', 'predictedIndex', 'predictedLabel', 'score', 'selfConfidence', 'seq', 'top'].sort());
      assert.strictEqual(r.top.length, 5);
      assert.strictEqual(r.score, r.selfConfidence);
      assert.strictEqual(r.givenLabel, r.path.split('/')[0]);
    }

    const { result } = c;
    assert.strictEqual(result.cancelled, false);
    const rc = result.report.counts;
    assert.deepStrictEqual([rc.images, rc.scanned, rc.failed, rc.nonImageFiles, rc.unmatchedImages, rc.reviewedHidden], [39, 36, 1, 1, 2, 0]);
    const samples = result.report.samples;
    assert.strictEqual(samples.length, 36);
    for (let i = 1; i < samples.length; i++) assert.ok(samples[i - 1].score <= samples[i].score, 'most doubtful first');
    // The final order names the streamed rows, and the flags the host kept current equal the report's.
    assert.strictEqual(result.order.length, 36);
    samples.forEach((s, i) => {
      const row = c.rows.get(result.order[i]) as ScanRow;
      assert.strictEqual(row.path, s.relPath);
      assert.strictEqual(row.flagged, s.flagged, `flag of ${s.relPath}`);
    });
    assert.strictEqual(last.flagged, rc.flagged);
  });

  it('cancels a running scan, keeping and reporting what it computed', async () => {
    const ac = new AbortController();
    const c = await collect(client, { model, data: big, batchSize: 1, eventIntervalMs: 0 }, (e) => {
      if (e.kind === 'progress' && e.rows.length > 0) ac.abort();
    }, ac.signal);
    const { result } = c;
    assert.strictEqual(result.cancelled, true);
    assert.strictEqual(result.report.cancelled, true);
    const scanned = result.report.counts.scanned;
    assert.ok(scanned >= 1 && scanned < 120, `scanned ${scanned} of 120`);
    assert.strictEqual(result.report.samples.length, scanned);
    assert.strictEqual(c.rows.size, scanned, 'every computed row was streamed before the reply');
    assert.deepStrictEqual(new Set(result.report.samples.map((s) => s.relPath)), new Set([...c.rows.values()].map((r) => r.path)));
    // The worker goes on serving.
    const again = await client.scan({ model, data: small, batchSize: 16 });
    assert.strictEqual(again.report.counts.scanned, 36);
  });

  it('answers a heatmap pair while a scan runs, then from the cache', async () => {
    const finished: string[] = [];
    let pair: Promise<unknown> | undefined;
    const scan = collect(client, { model, data: big, batchSize: 1, eventIntervalMs: 0 }, (e, rows) => {
      if (pair || e.kind !== 'progress' || e.rows.length === 0) return;
      const r = e.rows[0];
      pair = client.camPair({ model, image: { path: path.join(big, r.path) }, method: 'gradcam', classes: [r.givenIndex, r.predictedIndex] })
        .then((p) => {
          finished.push('pair');
          return { p, r, rows };
        });
    }).then((c) => {
      finished.push('scan');
      return c;
    });
    const c = await scan;
    assert.ok(pair, 'a pair was requested');
    const { p, r } = (await pair) as { p: Awaited<ReturnType<EngineClient['camPair']>>; r: ScanRow };
    assert.deepStrictEqual(finished, ['pair', 'scan'], 'the pair did not wait for the scan');
    assert.strictEqual(c.result.report.counts.scanned, 120);
    assert.deepStrictEqual([p.maps[0].target.index, p.maps[1].target.index, p.layer, p.method], [r.givenIndex, r.predictedIndex, 'res', 'gradcam']);
    assert.strictEqual(p.methodLabel, 'Grad-CAM', 'the pair names its method as the registry does');
    for (const m of p.maps) {
      assert.deepStrictEqual([m.heatmap.width, m.heatmap.height], [8, 8]);
      assert.ok(m.heatmap.values instanceof Float32Array && m.heatmap.values.every((v) => v >= 0 && v <= 1));
    }
    assert.strictEqual(p.cached, false);
    // Another pair of classes of the same image reuses its forward pass.
    const other = (r.givenIndex + 1) % LABELS.length;
    const again = await client.camPair({ model, image: { path: path.join(big, r.path) }, method: 'gradcam', classes: [other, other] });
    assert.strictEqual(again.cached, true);
    assert.deepStrictEqual(again.maps.map((m) => m.target.index), [other, other]);
  });

  it('hides a sample marked "label is correct" from the next scan', async () => {
    const data = tempDir('cam-lens-reviewed-');
    fs.cpSync(small, data, { recursive: true });
    const first = await collect(client, { model, data, batchSize: 16 });
    const top = first.result.report.samples[0];
    const marked = await client.markReviewed({ root: first.result.dataset.root, relPath: top.relPath, givenLabel: top.givenLabel });
    assert.strictEqual(marked.file, path.join(data, '.cam-lens', 'reviewed.json'));
    assert.strictEqual(marked.reviewed, 1);
    const stored = JSON.parse(fs.readFileSync(marked.file, 'utf8')) as { reviewed: Record<string, { givenLabel: string }> };
    assert.strictEqual(stored.reviewed[top.relPath].givenLabel, top.givenLabel);

    const second = await collect(client, { model, data, batchSize: 16 });
    const info = second.events[0];
    assert.ok(info.kind === 'dataset' && info.dataset.reviewed === 1);
    assert.ok(![...second.rows.values()].some((r) => r.path === top.relPath), 'not streamed');
    assert.ok(!second.result.report.samples.some((s) => s.relPath === top.relPath), 'not reported');
    assert.strictEqual(second.result.report.counts.reviewedHidden, 1);
    assert.strictEqual(second.result.order.length, 35);
    const progress = progressEvents(second);
    assert.strictEqual(progress[progress.length - 1].hidden, 1);
    assert.strictEqual(second.rows.size, 35);
  });

  it('rejects a folder without images and a model without labels with specific errors, and malformed requests', async () => {
    const empty = tempDir('cam-lens-empty-');
    fs.mkdirSync(path.join(empty, 'apple'));
    fs.writeFileSync(path.join(empty, 'apple', 'readme.md'), '# no images here');
    await assert.rejects(client.scan({ model, data: empty }), (e: unknown) => e instanceof EngineError && e.code === 'BAD_ARGUMENT' && /no images found/.test(e.message));

    const m = bnModel();
    const unlabelled = (await writeModel(m, path.join(dir, 'unlabelled'), { inputSize: [16, 16], preprocess: '[0,1]' })).modelJson;
    m.dispose();
    await assert.rejects(client.scan({ model: { path: unlabelled }, data: small }),
      (e: unknown) => e instanceof EngineError && e.code === 'METADATA_INVALID' && /no class labels/.test(e.message));

    await assert.rejects(client.scan({ model, data: small, batchSize: 0 }), (e: unknown) => e instanceof EngineError && e.code === 'BAD_REQUEST');
    await assert.rejects(client.camPair({ model, image: { path: path.join(small, 'apple', '0.png') }, method: 'gradcam', classes: [1] as unknown as [number, number] }),
      (e: unknown) => e instanceof EngineError && e.code === 'BAD_REQUEST');
  });

  it('grows no tensors in the worker over repeated scans, finished or cancelled', async () => {
    await client.scan({ model, data: small, batchSize: 8 });
    const before = await client.memory();
    for (let i = 0; i < 2; i++) await client.scan({ model, data: small, batchSize: 5 });
    const ac = new AbortController();
    const cancelled = await client.scan({ model, data: big, batchSize: 2, eventIntervalMs: 0 }, {
      signal: ac.signal,
      onEvent: (e) => {
        if (e.kind === 'progress' && e.done >= 4) ac.abort();
      },
    });
    assert.strictEqual(cancelled.cancelled, true);
    const after = await client.memory();
    assert.deepStrictEqual([after.numTensors, after.models], [before.numTensors, before.models]);
  });
});
