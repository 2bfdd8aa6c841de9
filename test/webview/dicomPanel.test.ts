/**
 * The explain panel's DICOM section in headless Chromium (harness.ts), against a host that runs the real engine
 * in this process: each `panel/didInit` carries the image as decodeImage windowed it (rendered to PNG as the
 * extension does) and its description, each `cam/compute` is answered with a real Grad-CAM of the bundled demo
 * model. So a window or frame chosen in the panel goes all the way: new pixels shown, a new map.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../../src/extension/engine/backend';
import { decodeImage, type DecodedImage } from '../../src/extension/engine/image';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { renderOverlayPng } from '../../src/extension/engine/overlay';
import { describeImage, describeModel, dicomOptionsFor, prepareInput } from '../../src/extension/engine/pipeline';
import { ImageSession } from '../../src/extension/engine/session';
import type { DicomSelection } from '../../src/shared/dicom';
import type { ExplainViewState, ModelInfo } from '../../src/shared/protocol';
import { tempDir } from '../helpers/modelFiles';
import { METHODS } from './fixtures';
import { createPanelHost, ensureBundles, requireChromium, screenshot, sharedBrowser, startServer, type PanelHost, type PanelPage, type Server } from './harness';

const ROOT = path.resolve(__dirname, '..', '..');
const FIX = path.join(ROOT, 'test', 'fixtures', 'dicom');

function modelInfo(model: LoadedModel): ModelInfo {
  const s = describeModel(model);
  return {
    path: model.path,
    name: model.name,
    format: 'layers-model',
    backend: model.backend,
    inputSize: [model.inputHeight, model.inputWidth, model.inputChannels],
    preprocess: model.metadata.preprocess,
    preprocessAssumed: model.metadata.preprocessAssumed,
    labels: model.metadata.labels,
    recommendedLayer: s.recommendedLayer,
    spatialLayers: s.layers.filter((l) => l.spatial).map((l) => l.name),
  };
}

/**
 * A host over the real engine for one image: answers the panel's `dicom/select` with a fresh decode and
 * `panel/didInit`, and its `cam/compute` with a real map.
 */
class EngineHost {
  image?: DecodedImage;
  session?: ImageSession;
  private n = 0;
  private answered = 0;
  selection?: DicomSelection;

  constructor(private readonly server: Server, readonly p: PanelPage, private readonly model: LoadedModel, readonly file: string) {}

  async init(selection?: DicomSelection): Promise<void> {
    this.selection = selection;
    const img = await decodeImage(this.file, { dicom: dicomOptionsFor(this.model, selection) });
    this.image = img;
    const png = await renderOverlayPng(img, { width: 1, height: 1, values: new Float32Array(1) }, { colormap: 'gray', opacity: 0 });
    const uri = `/assets/dicom-${++this.n}-${path.basename(this.file)}.png`;
    this.server.assets.set(uri, png);
    this.session?.dispose();
    this.session = new ImageSession(this.model, await prepareInput(this.model, img));
    const state: ExplainViewState = {
      version: 1, imagePath: this.file, modelPath: this.model.path, method: 'gradcam', opacity: 0.5, colormap: 'turbo', overlay: true,
      ...(selection ? { dicom: selection } : {}),
    };
    await this.p.send({
      type: 'panel/didInit',
      imageUri: `${this.server.origin}${uri}`,
      imageName: path.basename(this.file),
      imageSize: [img.width, img.height],
      model: modelInfo(this.model),
      methods: METHODS,
      state,
      image: describeImage(img),
    });
    await this.p.send({ type: 'predictions/didCompute', predictions: await this.session.predictions(3) });
  }

  /** Answers the next `cam/compute` with a real Grad-CAM; returns the map's values. */
  async answerCam(): Promise<Float32Array> {
    const req = await this.p.waitForSent('cam/compute', ++this.answered);
    const r = await this.session!.explain({ method: 'gradcam', layer: req.layer as string | undefined, classChoice: 0 });
    await this.p.send({
      type: 'cam/didCompute', requestId: req.requestId, method: r.method, layer: r.layer, target: r.target,
      heatmap: { width: r.heatmap.width, height: r.heatmap.height, values: r.heatmap.values, rawMin: r.heatmap.rawMin, rawMax: r.heatmap.rawMax },
      timingsMs: { total: 1 }, backend: this.model.backend, cached: false,
    });
    await this.p.page.waitForFunction(() => document.getElementById('canvas')?.dataset.state === 'drawn');
    return r.heatmap.values;
  }

  /** Waits for the panel's `dicom/select` number `count` and answers it like the extension: a new decode and init. */
  async answerSelect(count: number): Promise<DicomSelection> {
    const m = await this.p.waitForSent('dicom/select', count);
    const selection = m.selection as DicomSelection;
    await this.init(selection);
    return selection;
  }

  dispose(): void {
    this.session?.dispose();
  }
}

/** The displayed image's pixel values (R channel), read back through a canvas once it has loaded. */
async function shownPixels(p: PanelPage): Promise<number[]> {
  await p.page.waitForFunction(() => {
    const img = document.getElementById('image') as HTMLImageElement;
    return img.complete && img.naturalWidth > 0;
  });
  return p.page.evaluate(() => {
    const img = document.getElementById('image') as HTMLImageElement;
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const ctx = c.getContext('2d')!;
    ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    const out: number[] = [];
    for (let i = 0; i < d.length; i += 4) out.push(d[i]);
    return out;
  });
}

async function text(p: PanelPage, selector: string): Promise<string> {
  return (await p.page.locator(selector).first().textContent())?.trim() ?? '';
}

async function choose(p: PanelPage, id: string, value: string): Promise<void> {
  await p.page.evaluate(([sel, v]) => {
    const el = document.getElementById(sel) as HTMLElement & { value: string };
    el.value = v;
    el.dispatchEvent(new Event('change'));
  }, [id, value] as const);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

describe('explain panel: DICOM frames and windows (headless Chromium, real engine behind a fake host)', function () {
  this.timeout(60000);
  let server: Server;
  let host: PanelHost;
  let model: LoadedModel;
  let windowedModel: LoadedModel;
  let dir = '';

  before(async function () {
    requireChromium(this);
    ensureBundles();
    await initBackend('cpu');
    model = await loadModel(path.join(ROOT, 'models', 'demo', 'model.json'));
    // The same model, with the window it was "trained" with fixed in its cam-lens.json.
    dir = tempDir();
    for (const f of fs.readdirSync(path.join(ROOT, 'models', 'demo'))) fs.copyFileSync(path.join(ROOT, 'models', 'demo', f), path.join(dir, f));
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'cam-lens.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'cam-lens.json'), JSON.stringify({ ...meta, dicom: { window: [-600, 1500] } }));
    windowedModel = await loadModel(path.join(dir, 'model.json'));
    server = await startServer();
    host = await createPanelHost(await sharedBrowser(), server);
  });

  after(async () => {
    await host?.close();
    await server?.close();
    model?.dispose();
    windowedModel?.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function opened(file: string, m = model): Promise<EngineHost> {
    const p = await host.open('explain');
    await p.waitForSent('panel/ready');
    const e = new EngineHost(server, p, m, path.join(FIX, file));
    await e.init();
    return e;
  }

  it('shows the way from stored values to model pixels, and a window picked changes the image and the map', async () => {
    const e = await opened('ct16_windows.dcm');
    try {
      const map1 = await e.answerCam();
      assert.equal(await e.p.page.isVisible('#dicom'), true);
      assert.match(await text(e.p, '#dicom-fed'), /The model sees through file window 1 of 2 "SOFT TISSUE": centre 40, width 400 \(LINEAR\)/);
      const steps = await e.p.page.locator('#dicom-path li').allTextContents();
      assert.match(steps[0], /Stored values -1800 to 2323: 16 bits, signed, MONOCHROME2, CT, Explicit VR Little Endian/);
      assert.match(steps[1], /Modality LUT: value x 1 - 1024 \(HU\), giving -2824 to 1299/);
      assert.match(steps[2], /VOI window onto 0–255/);
      assert.ok(steps.some((s) => /Grayscale image: its value repeated into the model's 3 channels/.test(s)));
      assert.match(await text(e.p, '#channels-note'), /repeated into the model's 3 channels/);
      const options = await e.p.page.locator('#dicom-window vscode-option').allTextContents();
      assert.deepEqual(options.map((o) => o.trim()), [
        'Default: the file\'s first window', 'File window 1 "SOFT TISSUE": 40 / 400', 'File window 2 "LUNG": -600 / 1500', 'Min–max of the frame', 'Custom: centre and width below',
      ]);
      const before = await shownPixels(e.p);
      const expected1 = Array.from(e.image!.data.filter((_, i) => i % 3 === 0));
      assert.ok(maxDiff(before, expected1) <= 1, 'the panel shows the image as the model sees it');

      await choose(e.p, 'dicom-window', 'file:1');
      const sel = await e.answerSelect(1);
      assert.deepEqual(sel, { window: { kind: 'file', index: 1 } });
      const map2 = await e.answerCam();
      assert.match(await text(e.p, '#dicom-fed'), /file window 2 of 2 "LUNG": centre -600, width 1500 \(LINEAR, chosen here\)/);
      const after = await shownPixels(e.p);
      assert.ok(maxDiff(before, after) > 100, 'the lung window shows other pixels');
      assert.ok(maxDiff(map1, map2) > 1e-3, 'and the map is computed from them');
      await screenshot(e.p.page, 'explain-dicom-ct-lung.png');
    } finally {
      e.dispose();
    }
  });

  it('centre/width fields and a drag on the image set a custom window; a refused one restores the fields', async () => {
    const e = await opened('ct16_windows.dcm');
    try {
      await e.answerCam();
      await e.p.page.fill('#dicom-center', '100');
      await e.p.page.fill('#dicom-width', '800');
      await e.p.page.press('#dicom-width', 'Enter');
      assert.deepEqual(await e.answerSelect(1), { window: { kind: 'custom', center: 100, width: 800 } });
      await e.answerCam();
      assert.match(await text(e.p, '#dicom-fed'), /custom window: centre 100, width 800/);

      // A drag: right widens the window, down raises the centre; an in-page preview shows while dragging.
      const box = (await e.p.page.locator('#stage').boundingBox())!;
      await e.p.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await e.p.page.mouse.down();
      await e.p.page.mouse.move(box.x + box.width / 2 + 40, box.y + box.height / 2 + 20, { steps: 4 });
      assert.equal(await e.p.page.locator('canvas.window-preview').count(), 1, 'the preview is drawn while dragging');
      await e.p.page.mouse.up();
      const dragged = await e.answerSelect(2);
      assert.equal(dragged.window?.kind, 'custom');
      const w = dragged.window as { center: number; width: number };
      assert.ok(w.width > 800 && w.center > 100, `dragged to centre ${w.center}, width ${w.width}`);
      await e.answerCam();
      assert.equal(await e.p.page.locator('canvas.window-preview').count(), 0, 'the host\'s rendering replaces the preview');

      // The host refuses (say, the file changed meanwhile): the fields show the window the image still has.
      await e.p.page.fill('#dicom-width', '5');
      await e.p.page.press('#dicom-width', 'Enter');
      const refused = await e.p.waitForSent('dicom/select', 3);
      await e.p.send({ type: 'request/didFail', requestId: refused.requestId, error: { name: 'CamLensError', message: 'no such window', code: 'BAD_ARGUMENT' } });
      await e.p.page.waitForFunction(() => (document.getElementById('dicom-width') as HTMLInputElement).value !== '5');
      assert.equal(Number(await e.p.page.inputValue('#dicom-width')), Number(w.width.toPrecision(6)));
      assert.match(await text(e.p, '#error'), /no such window/);
    } finally {
      e.dispose();
    }
  });

  it('MONOCHROME1 is shown inverted, as the model gets it', async () => {
    const e = await opened('mono1.dcm');
    try {
      await e.answerCam();
      const steps = (await e.p.page.locator('#dicom-path li').allTextContents()).join('\n');
      assert.match(steps, /MONOCHROME1: inverted \(255 − value\)/);
      // The highest stored value is the darkest pixel shown.
      const shown = await shownPixels(e.p);
      const stored = await decodeImage(path.join(FIX, 'mono1.dcm'));
      const px = stored.pixels!.data;
      let darkest = 0;
      for (let i = 0; i < px.length; i++) if (px[i] < px[darkest]) darkest = i;
      assert.ok(shown[darkest] < 40, `darkest model pixel shown at ${shown[darkest]}`);
      assert.ok(maxDiff(shown, Array.from(px, Math.round)) <= 1);
    } finally {
      e.dispose();
    }
  });

  it('frames switch with the frame picker', async () => {
    const e = await opened('multiframe3_jpegls.dcm');
    try {
      await e.answerCam();
      assert.equal(await e.p.page.isVisible('#dicom-frame-field'), true);
      assert.equal(await e.p.page.locator('#dicom-frame vscode-option').count(), 3);
      const f0 = await shownPixels(e.p);
      await choose(e.p, 'dicom-frame', '2');
      assert.deepEqual(await e.answerSelect(1), { frame: 2 });
      await e.answerCam();
      const f2 = await shownPixels(e.p);
      assert.ok(maxDiff(f0, f2) > 10, 'frame 2 is another picture');
      assert.match(await text(e.p, '#dicom-fed'), /The model sees frame 2 through/);
      const frame2 = await decodeImage(path.join(FIX, 'multiframe3.dcm'), { dicom: { frame: 2 } });
      assert.ok(maxDiff(f2, Array.from(frame2.data.filter((_, i) => i % 3 === 0))) <= 1, 'the JPEG-LS frame 2 is the native frame 2');
    } finally {
      e.dispose();
    }
  });

  it('says which window the model expects, and when the one shown differs from it', async () => {
    const e = await opened('ct16_windows.dcm', windowedModel);
    try {
      await e.answerCam();
      assert.match(await text(e.p, '#dicom-fed'), /custom window: centre -600, width 1500 \(LINEAR, fixed by the model's cam-lens\.json\)/);
      assert.equal(await e.p.page.isVisible('#dicom-model-note'), false);
      const first = (await e.p.page.locator('#dicom-window vscode-option').allTextContents())[0].trim();
      assert.equal(first, 'Default: the model\'s window (cam-lens.json: centre -600, width 1500)');
      await choose(e.p, 'dicom-window', 'file:0');
      await e.answerSelect(1);
      await e.answerCam();
      assert.match(await text(e.p, '#dicom-model-note'), /trained with centre -600, width 1500 \(--window -600,1500\); this window differs/);
    } finally {
      e.dispose();
    }
  });

  it('a non-DICOM image hides the section but keeps the channels note', async () => {
    const p = await host.open('explain');
    await p.waitForSent('panel/ready');
    const e = new EngineHost(server, p, model, path.join(FIX, 'gray16.png'));
    try {
      await e.init();
      await e.answerCam();
      assert.equal(await p.page.isVisible('#dicom'), false);
      assert.match(await text(p, '#channels-note'), /Grayscale image: its value repeated into the model's 3 channels\. 16-bit image: read at full depth/);
    } finally {
      e.dispose();
    }
  });
});
