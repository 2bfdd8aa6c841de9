/**
 * No patient data out (#16 item 4). test/fixtures/dicom/patient.dcm fills the patient-identifying attributes of
 * DICOM's basic de-identification profile (name, IDs, birth date, address, accession number, institution,
 * physicians, operators, study and series descriptions, dates, comments, the study UID) with distinctive fake
 * values (expected.json `patientValues`, "ZZPATIENT^SECRET" …). Every output CAM Lens makes from it is searched
 * for each value and for each word of five letters or more in them:
 *   - the engine: the decoded image's description, and the errors of damaged copies and impossible choices
 *     (message, stack, every own property);
 *   - the CLI: predict and cam text, cam --json (file and stdout), the --png overlay (bytes, and no text chunk),
 *     scan --json and --csv over a folder holding it and a damaged copy, and stderr of a failure;
 *   - the engine worker: every reply (predict, cam, overlay PNG, describe) and every log event the output channel
 *     gets, failures included;
 *   - the explain panel (headless Chromium): its DOM after the worker's real replies were delivered, the state it
 *     persists and every message it sends.
 * Each check also asserts that the output is not empty of the image's own data, so a sweep over nothing fails.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { initBackend } from '../src/extension/engine/backend';
import { decodeImage } from '../src/extension/engine/image';
import { describeImage } from '../src/extension/engine/pipeline';
import { EngineClient, type EngineLogEvent } from '../src/extension/engineClient';
import type { ExplainViewState } from '../src/shared/protocol';
import { tempDir } from './helpers/modelFiles';
import { createPanelHost, ensureBundles, requireChromium, sharedBrowser, startServer } from './webview/harness';

const ROOT = path.resolve(__dirname, '..');
const FIX = path.join(ROOT, 'test', 'fixtures', 'dicom');
const PATIENT = path.join(FIX, 'patient.dcm');
const MODEL = path.join(ROOT, 'models', 'demo', 'model.json');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const VALUES = (JSON.parse(fs.readFileSync(path.join(FIX, 'expected.json'), 'utf8')) as { patientValues: string[] }).patientValues;

/**
 * The values, and their distinctive words ("ZZPATIENT", "SECRET"): a part of a value leaks too. Common words of
 * the values ("IMAGE", "STUDY") and short numbers (the study time 101112, which a heatmap value could contain by
 * chance) are left out of the search; the dates are 8 digits and stay.
 */
const NEEDLES = [...new Set([
  ...VALUES.filter((v) => !/^\d{1,7}$/.test(v)),
  ...VALUES.flatMap((v) => v.split(/[\s^,.-]+/)).filter((w) => /^ZZ\w{3,}$|^SECRETS?$/.test(w)),
])];

function assertClean(what: string, text: string): void {
  const upper = text.toUpperCase();
  for (const v of NEEDLES) assert.ok(!upper.includes(v.toUpperCase()), `${what} contains the patient value ${JSON.stringify(v)}`);
}

/** Every own property of an error (a library that attached its data set to a thrown object would show here). */
function errorText(e: unknown): string {
  const err = e as Error & Record<string, unknown>;
  const props = Object.getOwnPropertyNames(err).map((k) => {
    try {
      return `${k}=${typeof err[k] === 'string' ? err[k] : JSON.stringify(err[k])}`;
    } catch {
      return k;
    }
  });
  return `${String(e)}\n${err?.stack ?? ''}\n${props.join('\n')}`;
}

/** PNG chunk types in order: an overlay has IHDR, IDAT…, IEND and no text (tEXt, zTXt, iTXt) or EXIF chunk. */
function pngChunks(png: Buffer): string[] {
  const types: string[] = [];
  for (let o = 8; o + 8 <= png.length;) {
    const len = png.readUInt32BE(o);
    types.push(png.toString('latin1', o + 4, o + 8));
    o += 12 + len;
  }
  return types;
}

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args, '--backend', 'cpu'], { encoding: 'utf8', timeout: 120000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('no patient data in any output (DICOM privacy sweep)', function () {
  this.timeout(120000);
  let dir = '';
  let damaged = '';
  let unknownTs = '';

  before(() => {
    assert.ok(NEEDLES.length >= 20, 'the fixture names enough patient values to sweep for');
    // The file itself does hold them: the sweep looks for something that is there to leak.
    const raw = fs.readFileSync(PATIENT).toString('latin1');
    for (const v of VALUES) assert.ok(raw.includes(v), `patient.dcm holds ${v}`);
    dir = tempDir('cam-lens-privacy-');
    const bytes = fs.readFileSync(PATIENT);
    damaged = path.join(dir, 'patient_truncated.dcm');
    fs.writeFileSync(damaged, bytes.subarray(0, bytes.length - 700));
    unknownTs = path.join(dir, 'patient_unknown_ts.dcm');
    fs.writeFileSync(unknownTs, Buffer.from(bytes.toString('latin1').replace('1.2.840.10008.1.2.1\0', '1.2.840.99999.9.9.9\0'), 'latin1'));
    if (!fs.existsSync(CLI)) {
      const b = spawnSync(process.execPath, [path.join(ROOT, 'esbuild.js')], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(b.status, 0, b.stderr);
    }
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the engine: the image description, and errors of damaged copies and impossible choices', async () => {
    const img = await decodeImage(PATIENT);
    const described = JSON.stringify({ ...img, data: undefined, pixels: undefined, description: describeImage(img) });
    assert.match(described, /"photometric":"MONOCHROME2"/);
    assertClean('the decoded image', described);
    const failures: [string, () => Promise<unknown>][] = [
      ['truncated copy', () => decodeImage(damaged)],
      ['unknown transfer syntax copy', () => decodeImage(unknownTs)],
      ['a window the file lacks', () => decodeImage(PATIENT, { dicom: { window: { kind: 'file', index: 4 } } })],
      ['a frame the file lacks', () => decodeImage(PATIENT, { dicom: { frame: 3 } })],
      ['a buffer cut inside its header', () => decodeImage(fs.readFileSync(PATIENT).subarray(0, 400), { name: 'cut.dcm' })],
    ];
    for (const [what, f] of failures) {
      const e = await f().then(() => assert.fail(`${what} should fail`), (x: unknown) => x);
      const text = errorText(e);
      assert.match(text, /patient|cut\.dcm/, `${what}: the error names the file`);
      assertClean(`the error for ${what}`, text);
    }
  });

  it('the CLI: text, --json, the --png overlay, a scan report (JSON and CSV) and stderr', () => {
    const outputs: [string, string][] = [];
    const predict = run(['predict', '--model', MODEL, '--image', PATIENT]);
    assert.equal(predict.code, 0, predict.stderr);
    assert.match(predict.stdout, /DICOM MONOCHROME2 DX/);
    outputs.push(['predict stdout', predict.stdout + predict.stderr]);
    const png = path.join(dir, 'overlay.png');
    const json = path.join(dir, 'cam.json');
    const cam = run(['cam', '--model', MODEL, '--image', PATIENT, '--json', json, '--png', png]);
    assert.equal(cam.code, 0, cam.stderr);
    outputs.push(['cam stdout', cam.stdout + cam.stderr]);
    const camJson = fs.readFileSync(json, 'utf8');
    assert.match(camJson, /"window"/);
    outputs.push(['cam --json file', camJson]);
    const stdoutJson = run(['cam', '--model', MODEL, '--image', PATIENT, '--json', '-', '--method', 'scorecam', '--workers', '0']);
    assert.equal(stdoutJson.code, 0, stdoutJson.stderr);
    outputs.push(['cam --json -', stdoutJson.stdout + stdoutJson.stderr]);
    const pngBytes = fs.readFileSync(png);
    const chunks = pngChunks(pngBytes);
    assert.deepEqual(chunks.filter((c) => /^(tEXt|zTXt|iTXt|eXIf)$/.test(c)), [], `PNG chunks: ${chunks.join(', ')}`);
    assert.deepEqual([chunks[0], chunks[chunks.length - 1]], ['IHDR', 'IEND']);
    outputs.push(['--png bytes', pngBytes.toString('latin1')]);

    const data = path.join(dir, 'data');
    fs.mkdirSync(path.join(data, 'circle'), { recursive: true });
    fs.copyFileSync(PATIENT, path.join(data, 'circle', 'patient.dcm'));
    fs.copyFileSync(damaged, path.join(data, 'circle', 'patient_truncated.dcm'));
    fs.copyFileSync(unknownTs, path.join(data, 'circle', 'patient_unknown_ts.dcm'));
    const csv = path.join(dir, 'report.csv');
    const scan = run(['scan', '--model', MODEL, '--data', data, '--json', '-', '--csv', csv]);
    assert.equal(scan.code, 0, scan.stderr);
    const report = JSON.parse(scan.stdout) as { counts: { scanned: number; failed: number }; failures: { error: string }[] };
    assert.deepEqual([report.counts.scanned, report.counts.failed], [1, 2]);
    assert.ok(report.failures.every((f) => /patient_(truncated|unknown_ts)\.dcm/.test(f.error)), 'failures name their file');
    outputs.push(['scan --json', scan.stdout + scan.stderr], ['scan --csv', fs.readFileSync(csv, 'utf8')]);

    const fail = run(['predict', '--model', MODEL, '--image', damaged]);
    assert.equal(fail.code, 1);
    assert.match(fail.stderr, /patient_truncated\.dcm" is a damaged DICOM file/);
    outputs.push(['stderr of a failure', fail.stdout + fail.stderr]);
    for (const [what, text] of outputs) assertClean(what, text);
  });

  describe('the worker and the explain panel', () => {
    let client: EngineClient;
    const logs: EngineLogEvent[] = [];
    const replies: [string, unknown][] = [];

    before(async () => {
      await initBackend('cpu');
      const workerPath = path.join(ROOT, 'node_modules', '.cache', 'cam-lens-test', 'worker-privacy.js');
      await esbuild.build({
        entryPoints: [path.join(ROOT, 'src', 'extension', 'worker.ts')],
        bundle: true, platform: 'node', format: 'cjs', target: 'node18', outfile: workerPath,
        external: ['vscode', 'sharp', '@tensorflow/*', 'onnxruntime-node'], logLevel: 'warning',
      });
      client = new EngineClient({ workerPath, backend: 'cpu', log: (e) => logs.push(e) });
    });
    after(async () => {
      await client?.dispose();
    });

    it('the worker: replies and log events, failures included', async () => {
      const model = { path: MODEL };
      replies.push(['describe', await client.describeModel(model)]);
      const pred = await client.predict({ model, image: { path: PATIENT }, topK: 3 });
      assert.equal(pred.image?.dicom?.window?.center, 500);
      replies.push(['predict', pred]);
      const cam = await client.computeCam({ model, image: { path: PATIENT, dicom: { window: { kind: 'minmax' } } }, method: 'gradcam' });
      replies.push(['cam', cam]);
      const overlay = await client.renderOverlay({ image: { path: PATIENT }, colormap: 'turbo', opacity: 0.5 });
      replies.push(['overlay', { ...overlay, png: Buffer.from(overlay.png).toString('latin1') }]);
      for (const image of [damaged, unknownTs]) {
        const e = await client.predict({ model, image: { path: image } }).then(() => assert.fail('should fail'), (x: unknown) => x);
        replies.push([`failure on ${path.basename(image)}`, errorText(e)]);
      }
      assert.ok(logs.some((l) => l.kind === 'computation' && l.error), 'the failures were logged');
      const json = (x: unknown) => JSON.stringify(x, (_k, v: unknown) => (v instanceof Float32Array ? undefined : v));
      for (const [what, r] of replies) assertClean(`the worker's ${what} reply`, typeof r === 'string' ? r : json(r));
      assertClean('the log events', json(logs));
    });

    it('the explain panel: DOM, persisted state and sent messages, fed the worker\'s replies', async function () {
      requireChromium(this);
      ensureBundles();
      const server = await startServer();
      const host = await createPanelHost(await sharedBrowser(), server);
      try {
        const model = { path: MODEL };
        const described = await client.describeModel(model);
        const pred = await client.predict({ model, image: { path: PATIENT }, topK: 1_000_000 });
        const overlay = await client.renderOverlay({ image: { path: PATIENT }, heatmap: { width: 1, height: 1, values: new Float32Array(1) }, colormap: 'gray', opacity: 0 });
        server.assets.set('/assets/patient.png', Buffer.from(overlay.png));
        const p = await host.open('explain');
        await p.waitForSent('panel/ready');
        const state: ExplainViewState = { version: 1, imagePath: PATIENT, modelPath: MODEL, method: 'gradcam', opacity: 0.5, colormap: 'turbo', overlay: true };
        await p.send({ type: 'panel/didInit', imageUri: `${server.origin}/assets/patient.png`, imageName: 'patient.dcm', imageSize: pred.imageSize, model: described.info, methods: described.methods, state, image: pred.image });
        await p.send({ type: 'predictions/didCompute', predictions: pred.predictions.slice(0, 5) });
        const req = await p.waitForSent('cam/compute');
        const cam = await client.computeCam({ model, image: { path: PATIENT }, method: 'gradcam' });
        await p.send({ type: 'cam/didCompute', requestId: req.requestId, method: cam.method, layer: cam.layer, target: cam.target, heatmap: cam.heatmap, timingsMs: cam.timingsMs, backend: cam.backend, cached: cam.cached });
        await p.page.waitForFunction(() => document.getElementById('canvas')?.dataset.state === 'drawn');
        const dom = await p.page.evaluate(() => {
          // Light DOM and every shadow root (the web components render option labels there).
          const parts: string[] = [document.documentElement.outerHTML];
          const walk = (root: Document | ShadowRoot) => {
            for (const el of Array.from(root.querySelectorAll('*'))) {
              const sr = (el as HTMLElement).shadowRoot;
              if (sr) {
                parts.push(sr.innerHTML);
                walk(sr);
              }
            }
          };
          walk(document);
          return parts.join('\n');
        });
        assert.match(dom, /The model sees through file window 1 of 1: centre 500, width 1000/);
        assertClean('the panel DOM', dom);
        const rec = await p.recorded();
        assertClean('the panel state', JSON.stringify(rec.state));
        assertClean('the panel\'s messages', JSON.stringify(rec.sent));
      } finally {
        await host.close();
        await server.close();
      }
    });
  });
});
