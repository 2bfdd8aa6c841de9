/**
 * The explain panel with the whole method family (#15 item 6), in headless Chromium against a fake host (see
 * harness.ts): the method kinds (class activation maps, pixel saliency), the Options area, several layers
 * averaged, pixel maps in their own colours, and the time of every map.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../../src/extension/engine/backend';
import { METHODS as REGISTRY, methodParams } from '../../src/extension/engine/cam/registry';
import { decodeImage } from '../../src/extension/engine/image';
import { loadModel, type LoadedModel } from '../../src/extension/engine/model';
import { describeModel, prepareInput } from '../../src/extension/engine/pipeline';
import { ImageSession } from '../../src/extension/engine/session';
import { divergingLut } from '../../src/shared/colormaps';
import type { ExplainHostMessage, ExplainViewState, MethodInfo, MethodParam, ModelInfo } from '../../src/shared/protocol';
import { didCompute, didInit, hostState, METHODS, PREDICTIONS, testImagePng } from './fixtures';
import { createPanelHost, ensureBundles, requireChromium, ROOT, screenshot, sharedBrowser, startServer, themeReport, type PanelHost, type PanelPage, type Server } from './harness';

type Rgba = [number, number, number, number];
type Sent = { type: string; [k: string]: unknown };

/** The common CAM options as the engine's registry declares them (engine/cam/base.ts CAM_OPTIONS). */
const CAM_OPTIONS: MethodParam[] = [
  { id: 'augSmooth', label: 'Augmentation smoothing', kind: 'boolean', default: false, common: true, description: 'flip and scales, averaged' },
  { id: 'eigenSmooth', label: 'Eigen smoothing', kind: 'boolean', default: false, common: true, description: 'first principal component' },
];

/** The fixture's CAM methods plus pixel saliency, as a host with the new engine sends them. */
const FAMILY: MethodInfo[] = [
  ...METHODS.map((m): MethodInfo => ({ ...m, group: 'cam', usesLayer: true, params: [...CAM_OPTIONS] })),
  {
    id: 'ablationcam', label: 'Ablation-CAM', needsGradients: false, classIndependent: false, available: true, group: 'cam', usesLayer: true,
    params: [{ id: 'channels', label: 'Channels scored', kind: 'number', default: 32, min: 0, max: 4096, step: 1, description: 'budget' }, ...CAM_OPTIONS],
  },
  { id: 'gradient', label: 'Vanilla gradient', needsGradients: true, classIndependent: false, available: true, group: 'pixel', usesLayer: false, params: [] },
  {
    id: 'smoothgrad', label: 'SmoothGrad', needsGradients: true, classIndependent: false, available: true, group: 'pixel', usesLayer: false,
    params: [
      { id: 'samples', label: 'Samples', kind: 'number', default: 25, min: 1, max: 200, step: 1, description: 'noisy copies averaged' },
      { id: 'noise', label: 'Noise', kind: 'number', default: 0.15, min: 0, max: 1, step: 0.01, description: 'noise level as a fraction of the input range' },
    ],
  },
  {
    id: 'integratedgradients', label: 'Integrated Gradients', needsGradients: true, classIndependent: false, available: true, group: 'pixel', usesLayer: false,
    params: [
      { id: 'steps', label: 'Steps', kind: 'number', default: 32, min: 2, max: 512, step: 1, description: 'path steps' },
      { id: 'baseline', label: 'Baseline', kind: 'choice', default: 'black', choices: [{ value: 'black', label: 'black' }, { value: 'blur', label: 'blurred' }], description: 'the image the path starts from' },
    ],
  },
  { id: 'guidedgradcam', label: 'Guided Grad-CAM', needsGradients: true, classIndependent: false, available: true, group: 'pixel', usesLayer: true, params: [] },
];

function familyInit(imageUri: string, state = hostState()): ExplainHostMessage {
  return { ...(didInit(imageUri, state) as Extract<ExplainHostMessage, { type: 'panel/didInit' }>), methods: FAMILY };
}

/** A 16x16 signed pixel map: -1 in the left half, +1 in the right half (rows alike). */
function signedMap(): Float32Array {
  const v = new Float32Array(16 * 16);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) v[y * 16 + x] = x < 8 ? -1 : 1;
  return v;
}

/** A pixel method's reply: a `size` x `size` map at input resolution, signed or RGB. */
function pixelReply(requestId: number, method: string, opts: { signed?: boolean; rgb?: Float32Array; values?: Float32Array; size?: number }): ExplainHostMessage {
  const base = didCompute(requestId, 1, opts.values ?? signedMap(), method) as Extract<ExplainHostMessage, { type: 'cam/didCompute' }>;
  const size = opts.size ?? 16;
  return {
    ...base,
    layer: '',
    heatmap: { width: size, height: size, values: opts.values ?? signedMap(), rawMin: -0.8, rawMax: 0.8, ...(opts.signed ? { signed: true } : {}), ...(opts.rgb ? { rgb: opts.rgb } : {}) },
    timingsMs: { forward: 6, gradients: 250, method: 40, total: 296 },
  };
}

async function pixel(p: PanelPage, fx: number, fy: number): Promise<Rgba> {
  return p.page.evaluate(([x, y]) => {
    const c = document.getElementById('canvas') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(Math.floor(x * c.width), Math.floor(y * c.height), 1, 1).data;
    return [d[0], d[1], d[2], d[3]] as [number, number, number, number];
  }, [fx, fy] as const);
}

function assertColor(actual: Rgba, rgb: readonly number[], alpha: number, what: string, tol = 3): void {
  const ok = [0, 1, 2].every((k) => Math.abs(actual[k] - rgb[k]) <= tol) && Math.abs(actual[3] - alpha) <= 1;
  assert.ok(ok, `${what}: got rgba(${actual.join(', ')}), expected about rgba(${rgb.join(', ')}, ${alpha})`);
}

/** The values and labels of a select's options, as the page has them. */
async function options(p: PanelPage, id: string): Promise<{ value: string | null; label: string | null; description: string | null }[]> {
  return p.page.$$eval(`#${id} vscode-option`, (os) => os.map((o) => ({ value: o.getAttribute('value'), label: o.textContent, description: o.getAttribute('description') })));
}

describe('explain panel: method kinds, options, several layers, pixel maps (headless Chromium, fake host)', function () {
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
    // A first load on a busy machine (browser start, bundle parse) can outlast waitForSent's 5 s: warm up here.
    const warm = await host.open('explain');
    await warm.page.waitForFunction(() => (window as unknown as { __fakeHost: { sent: unknown[] } }).__fakeHost.sent.length > 0, undefined, { timeout: 30000 });
  });

  after(async () => {
    await host?.close();
    await server?.close();
  });

  /** Opens the panel on the whole family, answers panel/ready, and returns the first cam/compute. */
  async function initialised(state = hostState(), saved?: unknown): Promise<{ p: PanelPage; first: Sent }> {
    const p = await host.open('explain', saved);
    await p.waitForSent('panel/ready');
    await p.send(familyInit(imageUri, state));
    await p.send(PREDICTIONS);
    const first = await p.waitForSent('cam/compute');
    return { p, first };
  }

  const computes = (p: PanelPage) => p.sentOfType('cam/compute');
  const state = async (p: PanelPage) => (await p.recorded()).state as ExplainViewState;

  it('groups the methods: class activation maps and pixel saliency, one kind listed at a time, switched with the keyboard', async () => {
    const { p, first } = await initialised();
    assert.equal(first.method, 'gradcam');
    assert.equal(await p.page.isVisible('#method-family'), true, 'both kinds offered: the kind radios show');
    const labels = await p.page.$$eval('#method-family label .long', (ls) => ls.map((l) => l.textContent?.trim()));
    assert.deepEqual(labels, ['Class activation maps', 'Pixel saliency']);
    assert.deepEqual(await p.page.$$eval('#method-family input', (is) => is.map((i) => i.getAttribute('aria-label'))), labels, 'the full names, whatever the width');
    assert.equal(await p.page.getAttribute('#method-family', 'role'), 'radiogroup');
    assert.deepEqual((await options(p, 'method')).map((o) => o.value), [...METHODS.map((m) => m.id), 'ablationcam'], 'CAM methods only, in the registry order');
    assert.equal(await p.page.getAttribute('#method', 'aria-label'), 'Method (class activation maps)');

    // Keyboard: Tab reaches the checked radio; the arrow key moves to "Pixel saliency", which switches the list.
    await p.page.focus('#method-family input[value="cam"]');
    await p.page.keyboard.press('ArrowRight');
    const pixelReq = await p.waitForSent('cam/compute', 2);
    assert.equal(pixelReq.method, 'gradient', 'the first available pixel method');
    assert.equal(pixelReq.layer, undefined, 'a pixel method that reads no layer gets none');
    assert.deepEqual((await options(p, 'method')).map((o) => o.value), ['gradient', 'smoothgrad', 'integratedgradients', 'guidedgradcam']);
    assert.equal(await p.page.$eval('#method-family input[value="pixel"]', (i) => (i as HTMLInputElement).checked), true);

    // Within the kind, through the real dropdown; the picker keeps showing it once its map (and time) arrive.
    await p.page.click('#method');
    await p.page.click('#method li.option:has-text("SmoothGrad")');
    const sg = await p.waitForSent('cam/compute', 3);
    assert.equal(sg.method, 'smoothgrad');
    await p.send(pixelReply(sg.requestId as number, 'smoothgrad', { values: new Float32Array(256).fill(0.5) }));
    await p.page.waitForFunction(() => document.getElementById('canvas')!.dataset.method === 'smoothgrad');
    await p.page.waitForTimeout(100);
    assert.equal(await p.page.$eval('#method', (e) => (e as unknown as { value: string }).value), 'smoothgrad');
    assert.match(await p.page.$eval('#method', (e) => e.shadowRoot?.querySelector('.select-face')?.textContent ?? ''), /SmoothGrad/);
    // Back to CAM: its last method (Grad-CAM), with the layer kept.
    await p.page.click('#method-family label:has-text("Class activation maps")');
    const back = await p.waitForSent('cam/compute', 4);
    assert.deepEqual([back.method, back.layer], ['gradcam', 'conv_pw_13_relu']);
    // And to pixel saliency again: SmoothGrad, the last one used there.
    await p.page.click('#method-family label:has-text("Pixel saliency")');
    assert.equal((await p.waitForSent('cam/compute', 5)).method, 'smoothgrad');
    assert.equal((await state(p)).method, 'smoothgrad');
  });

  it('hides the kind radios when the host offers one kind only', async () => {
    const p = await host.open('explain');
    await p.waitForSent('panel/ready');
    await p.send(didInit(imageUri));
    await p.waitForSent('cam/compute');
    assert.equal(await p.page.isVisible('#method-family'), false);
    assert.equal(await p.page.isVisible('#method-options'), false, 'methods without params: no Options area');
  });

  it('builds the Options area from the method\'s params; a change is sent with the next request and persisted', async () => {
    const { p } = await initialised(hostState({ method: 'smoothgrad' }));
    assert.equal((await computes(p))[0].options, undefined, 'defaults are not sent');
    assert.equal(await p.page.isVisible('#method-options'), true);
    assert.equal(await p.page.isVisible('#layer-field'), false, 'SmoothGrad reads no layer: no layer picker');
    assert.match(await p.page.textContent('#layer-note') ?? '', /SmoothGrad works on the input pixels/);
    assert.equal(await p.page.textContent('#options-summary'), '(defaults)');
    await p.page.click('#method-options > summary');
    const samples = p.page.locator('#option-samples');
    assert.deepEqual(await samples.evaluate((i) => [(i as HTMLInputElement).type, (i as HTMLInputElement).min, (i as HTMLInputElement).max, (i as HTMLInputElement).value]), ['number', '1', '200', '25']);
    assert.equal(await samples.getAttribute('title'), 'noisy copies averaged');
    assert.equal(await samples.getAttribute('aria-description'), 'noisy copies averaged');

    await samples.fill('50');
    await samples.press('Enter');
    let m = await p.waitForSent('cam/compute', 2);
    assert.deepEqual([m.method, m.options], ['smoothgrad', { samples: 50 }]);
    assert.equal(await p.page.textContent('#options-summary'), '(samples 50)');
    assert.deepEqual((await state(p)).methodOptions, { smoothgrad: { samples: 50 } });

    // Out of bounds: clamped to the maximum, shown as such.
    await samples.fill('5000');
    await samples.press('Enter');
    m = await p.waitForSent('cam/compute', 3);
    assert.deepEqual(m.options, { samples: 200 });
    assert.equal(await samples.inputValue(), '200');
    await p.page.fill('#option-noise', '0.3');
    await p.page.press('#option-noise', 'Enter');
    m = await p.waitForSent('cam/compute', 4);
    assert.deepEqual(m.options, { samples: 200, noise: 0.3 });
    // An unreadable value changes nothing and goes back to the value in force.
    const before = (await computes(p)).length;
    await p.page.fill('#option-noise', '');
    await p.page.press('#option-noise', 'Enter');
    await p.page.waitForTimeout(150);
    assert.equal((await computes(p)).length, before);
    assert.equal(await p.page.inputValue('#option-noise'), '0.3');

    // A choice (Integrated Gradients' baseline): its own options, SmoothGrad's kept for later.
    await p.page.click('#method');
    await p.page.click('#method li.option:has-text("Integrated Gradients")');
    m = await p.waitForSent('cam/compute', 5);
    assert.deepEqual([m.method, m.options], ['integratedgradients', undefined]);
    assert.deepEqual(await p.page.$$eval('#option-baseline vscode-option', (os) => os.map((o) => o.getAttribute('value'))), ['black', 'blur']);
    await p.page.evaluate(() => {
      const el = document.getElementById('option-baseline') as unknown as HTMLElement & { value: string };
      el.value = 'blur';
      el.dispatchEvent(new Event('change'));
    });
    m = await p.waitForSent('cam/compute', 6);
    assert.deepEqual(m.options, { baseline: 'blur' });
    assert.deepEqual((await state(p)).methodOptions, { smoothgrad: { samples: 200, noise: 0.3 }, integratedgradients: { baseline: 'blur' } });

    // Built while the Options area is closed, a choice still shows its value once it opens.
    await p.page.click('#method-options > summary');
    await p.page.click('#method');
    await p.page.click('#method li.option:has-text("SmoothGrad")');
    await p.waitForSent('cam/compute', 7);
    await p.page.click('#method');
    await p.page.click('#method li.option:has-text("Integrated Gradients")');
    await p.waitForSent('cam/compute', 8);
    assert.equal(await p.page.$eval('#method-options', (d) => (d as HTMLDetailsElement).open), false);
    await p.page.click('#method-options > summary');
    await p.page.waitForFunction(() => /blurred/.test(document.getElementById('option-baseline')?.shadowRoot?.querySelector('.select-face')?.textContent ?? ''), undefined, { timeout: 3000 });

    // Restored from the saved state: the values come back in the fields and in the first request.
    const saved = await state(p);
    // "Restore defaults": this method's values go (SmoothGrad's stay), the map is computed again with none.
    assert.equal(await p.page.$eval('#options-reset', (b) => (b as unknown as { disabled: boolean }).disabled), false);
    await p.page.click('#options-reset');
    const reset = await p.waitForSent('cam/compute', 9);
    assert.deepEqual([reset.method, reset.options], ['integratedgradients', undefined]);
    assert.deepEqual((await state(p)).methodOptions, { smoothgrad: { samples: 200, noise: 0.3 } });
    assert.equal(await p.page.textContent('#options-summary'), '(defaults)');
    assert.equal(await p.page.$eval('#options-reset', (b) => (b as unknown as { disabled: boolean }).disabled), true);
    const again = await initialised(hostState({ method: 'smoothgrad' }), { ...saved, method: 'smoothgrad' });
    assert.deepEqual(again.first.options, { samples: 200, noise: 0.3 });
    assert.equal(await again.p.page.inputValue('#option-samples'), '200');
  });

  it('gives every CAM method the common options (augSmooth, eigenSmooth), one value for all of them', async () => {
    const { p, first } = await initialised();
    assert.equal(first.options, undefined);
    await p.page.click('#method-options > summary');
    assert.match(await p.page.textContent('#options-fields') ?? '', /Every CAM method:/);
    await p.page.click('#option-augSmooth');
    let m = await p.waitForSent('cam/compute', 2);
    assert.deepEqual([m.method, m.options], ['gradcam', { augSmooth: true }]);
    assert.deepEqual((await state(p)).camOptions, { augSmooth: true });
    await p.page.click('#method');
    await p.page.click('#method li.option:has-text("Grad-CAM++")');
    m = await p.waitForSent('cam/compute', 3);
    assert.deepEqual([m.method, m.options], ['gradcam++', { augSmooth: true }], 'the common option follows to another CAM method');
    assert.equal(await p.page.$eval('#option-augSmooth', (b) => (b as unknown as { checked: boolean }).checked), true);
    // Not to a pixel method: it does not take them.
    await p.page.click('#method-family label:has-text("Pixel saliency")');
    m = await p.waitForSent('cam/compute', 4);
    assert.deepEqual([m.method, m.options], ['gradient', undefined]);
    assert.equal(await p.page.isVisible('#method-options'), false, 'the vanilla gradient has no options');
  });

  it('averages several layers for CAM methods: the multi-select sends them in model order, the caption names them', async () => {
    const { p } = await initialised();
    assert.equal(await p.page.isVisible('#layers'), false);
    await p.page.click('#multi-layer');
    await p.page.waitForSelector('#layers', { state: 'visible' });
    assert.equal(await p.page.isVisible('#layer'), false);
    assert.deepEqual(await p.page.$eval('#layers', (e) => (e as unknown as { value: string[] }).value), ['conv_pw_13_relu']);
    assert.match(await p.page.textContent('#layer-note') ?? '', /^Pick two or more layers/);
    await p.page.click('#layers');
    await p.page.click('#layers li.option:has-text("conv_pw_11_relu")');
    let m = await p.waitForSent('cam/compute', 2);
    assert.deepEqual([m.layer, m.layers], ['conv_pw_11_relu', ['conv_pw_11_relu', 'conv_pw_13_relu']]);
    assert.deepEqual((await state(p)).layers, ['conv_pw_11_relu', 'conv_pw_13_relu']);
    assert.equal(await p.page.textContent('#layer-note'), 'Averaged at the input size: conv_pw_11_relu + conv_pw_13_relu');
    const reply = didCompute(m.requestId as number) as Extract<ExplainHostMessage, { type: 'cam/didCompute' }>;
    await p.send({ ...reply, layer: 'conv_pw_11_relu', layers: ['conv_pw_11_relu', 'conv_pw_13_relu'] });
    await p.page.waitForSelector('#canvas[data-state="drawn"]');
    assert.match(await p.page.textContent('#status') ?? '', /at conv_pw_11_relu \+ conv_pw_13_relu \(averaged\)/);

    // A pixel method that reads no layer neither shows nor sends them; back to CAM, they are sent again.
    await p.page.click('#method-family label:has-text("Pixel saliency")');
    m = await p.waitForSent('cam/compute', 3);
    assert.deepEqual([m.method, m.layer, m.layers], ['gradient', undefined, undefined]);
    assert.equal(await p.page.isVisible('#layer-field'), false);
    await p.page.click('#method-family label:has-text("Class activation maps")');
    m = await p.waitForSent('cam/compute', 4);
    assert.deepEqual(m.layers, ['conv_pw_11_relu', 'conv_pw_13_relu']);

    // Restored, then "Several" off: one layer again, the first of them.
    const again = await initialised(hostState(), await state(p));
    assert.deepEqual(again.first.layers, ['conv_pw_11_relu', 'conv_pw_13_relu']);
    assert.equal(await again.p.page.isVisible('#layers'), true);
    await again.p.page.click('#multi-layer');
    m = await again.p.waitForSent('cam/compute', 2);
    assert.deepEqual([m.layer, m.layers], ['conv_pw_11_relu', undefined]);
    assert.equal((await state(again.p)).layers, undefined);
  });

  it('draws a signed pixel map with the diverging colours (blue negative, red positive) at input resolution', async () => {
    const { p, first } = await initialised(hostState({ method: 'gradient' }));
    await p.send(pixelReply(first.requestId as number, 'gradient', { signed: true }));
    await p.page.waitForSelector('#canvas[data-state="drawn"]');
    assert.equal(await p.page.getAttribute('#canvas', 'data-coloring'), 'signed');
    const lut = divergingLut();
    // Opacity 0.5: alpha 128; colours are the table's ends, whatever the colormap chosen (turbo).
    assertColor(await pixel(p, 0.15, 0.5), [lut[0], lut[1], lut[2]], 128, 'left (-1): the negative end');
    assertColor(await pixel(p, 0.85, 0.5), [lut[765], lut[766], lut[767]], 128, 'right (+1): the positive end');
    const left = await pixel(p, 0.15, 0.5);
    const right = await pixel(p, 0.85, 0.5);
    assert.ok(left[2] > left[0] + 100, `negative is blue: ${left}`);
    assert.ok(right[0] > right[2] + 100, `positive is red: ${right}`);
    const caption = await p.page.textContent('#status') ?? '';
    assert.match(caption, /^Vanilla gradient for boxer \(34\.6%\) at input resolution \(16×16\) · 296 ms · wasm$/);
    // The legend says what the colours mean, with the table's ends and middle as swatches.
    assert.equal(await p.page.isVisible('#map-legend'), true);
    assert.match(await p.page.textContent('#map-legend') ?? '', /^Attribution: {2}negative {2}none {2}positive/);
    const swatches = await p.page.$$eval('#map-legend .swatch', (ss) => ss.map((s) => getComputedStyle(s).backgroundColor));
    assert.deepEqual(swatches, [0, 127, 255].map((i) => `rgb(${lut[3 * i]}, ${lut[3 * i + 1]}, ${lut[3 * i + 2]})`));
    // The readout gives the attribution with its sign.
    const box = (await p.page.locator('#canvas').boundingBox())!;
    await p.page.mouse.move(box.x + box.width * 0.1, box.y + box.height * 0.5);
    assert.match(await p.page.textContent('#readout') ?? '', /attribution -1\.00/);
    // A magnitude map of the same method kind uses the colormap: gray at 1 is white.
    await p.page.evaluate(() => {
      const el = document.getElementById('colormap') as unknown as HTMLElement & { value: string };
      el.value = 'gray';
      el.dispatchEvent(new Event('change'));
    });
    await p.page.click('#method');
    await p.page.click('#method li.option:has-text("SmoothGrad")');
    const m = await p.waitForSent('cam/compute', 2);
    await p.send(pixelReply(m.requestId as number, 'smoothgrad', { values: new Float32Array(256).fill(1) }));
    await p.page.waitForFunction(() => document.getElementById('canvas')!.dataset.method === 'smoothgrad');
    assert.equal(await p.page.getAttribute('#canvas', 'data-coloring'), 'magnitude');
    assert.equal(await p.page.isVisible('#map-legend'), false, 'a magnitude map is in the colormap: no legend');
    assertColor(await pixel(p, 0.5, 0.5), [255, 255, 255], 128, 'magnitude 1 in gray');
    const t = await themeReport(p.page, ['canvas']);
    assert.deepEqual([t.lightBackgrounds, t.lowContrastText], [[], []]);
  });

  it('draws guided backpropagation\'s RGB image as its colours', async () => {
    const { p, first } = await initialised(hostState({ method: 'guidedgradcam' }));
    assert.equal(first.layer, 'conv_pw_13_relu', 'Guided Grad-CAM reads a layer');
    assert.equal(await p.page.isVisible('#layer-field'), true);
    assert.equal(await p.page.isVisible('#multi-layer'), false, 'but only one: several layers are for CAM methods');
    const rgb = new Float32Array(16 * 16 * 3);
    for (let i = 0; i < 256; i++) {
      const top = i < 128;
      rgb.set(top ? [1, 0.5, 0] : [0, 0.25, 1], 3 * i);
    }
    await p.send({ ...pixelReply(first.requestId as number, 'guidedgradcam', { values: new Float32Array(256).fill(0.5), rgb }), layer: 'conv_pw_13_relu' });
    await p.page.waitForSelector('#canvas[data-state="drawn"]');
    assert.equal(await p.page.getAttribute('#canvas', 'data-coloring'), 'rgb');
    assert.match(await p.page.textContent('#map-legend') ?? '', /grey where it is zero/);
    assertColor(await pixel(p, 0.5, 0.2), [255, 128, 0], 128, 'top half orange');
    assertColor(await pixel(p, 0.5, 0.8), [0, 64, 255], 128, 'bottom half blue');
    assert.match(await p.page.textContent('#status') ?? '', /at input resolution \(16×16\), Grad-CAM at conv_pw_13_relu/);
    await screenshot(p.page, 'explain-panel-guided-rgb.png');
  });

  it('still shows the image, the method picker and the first predictions without scrolling beside an editor (620x700, 470x700)', async () => {
    try {
      for (const width of [620, 470]) {
        await host.page.setViewportSize({ width, height: 700 });
        const { p, first } = await initialised();
        await p.send(didCompute(first.requestId as number));
        await p.page.waitForSelector('#canvas[data-state="drawn"]');
        const boxes = await p.page.evaluate(() => {
          const box = (el: Element) => {
            const r = el.getBoundingClientRect();
            return { top: r.top, bottom: r.bottom, left: r.left, right: r.right };
          };
          return {
            stage: box(document.getElementById('stage')!),
            family: box(document.getElementById('method-family')!),
            method: box(document.getElementById('method')!),
            predictions: Array.from(document.querySelectorAll('#predictions [data-class-index]')).slice(0, 3).map(box),
            viewport: { w: innerWidth, h: innerHeight },
          };
        });
        const inside = (b: { top: number; bottom: number; left: number; right: number }, what: string) =>
          assert.ok(b.top >= 0 && b.left >= 0 && b.bottom <= boxes.viewport.h && b.right <= boxes.viewport.w, `${what} inside ${width}x700: ${JSON.stringify(b)}`);
        inside(boxes.stage, 'the image');
        inside(boxes.family, 'the kind radios');
        inside(boxes.method, 'the method picker');
        // Narrow: the kinds' short names, not cut off.
        const cut = await p.page.$$eval('#method-family label', (ls) => ls.filter((l) => l.scrollWidth > l.clientWidth + 1).map((l) => l.textContent));
        assert.deepEqual(cut, [], `kind labels fit at ${width} px`);
        boxes.predictions.forEach((b, i) => inside(b, `prediction ${i + 1}`));
        if (width === 470) await screenshot(p.page, 'explain-panel-family-470.png');
      }
    } finally {
      await host.page.setViewportSize({ width: 1100, height: 760 });
    }
  });

  it('reaches the new controls with Tab: the kind, the layer toggle and layers, the Options summary and fields', async () => {
    const { p, first } = await initialised();
    await p.send(didCompute(first.requestId as number));
    await p.page.waitForSelector('#canvas[data-state="drawn"]');
    await p.page.click('#multi-layer');
    await p.page.click('#method-options > summary');
    await p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      await p.page.keyboard.press('Tab');
      const id = await p.page.evaluate(() => {
        const a = document.activeElement;
        return a instanceof HTMLInputElement && a.name === 'method-family' ? 'method-family' : a?.closest('[id]')?.id ?? '';
      });
      if (id) seen.add(id);
    }
    for (const id of ['method-family', 'method', 'multi-layer', 'layers', 'method-options', 'option-augSmooth', 'option-eigenSmooth']) {
      assert.ok(seen.has(id), `#${id} is reachable with Tab (reached: ${[...seen].join(', ')})`);
    }
    await screenshot(p.page, 'explain-panel-cam-options.png');
  });

  it('counts a long method\'s progress in its own unit with Cancel, and offers "Score all" for Ablation-CAM\'s budget', async () => {
    const { p, first } = await initialised(hostState({ method: 'smoothgrad' }));
    await p.send({ type: 'cam/didProgress', requestId: first.requestId, done: 5, total: 25 });
    await p.page.waitForSelector('#cancel-cam:not([hidden])');
    assert.match(await p.page.textContent('#progress .progress-text') ?? '', /^SmoothGrad: 5 \/ 25 noisy copies/);
    await p.page.click('#cancel-cam');
    assert.equal((await p.waitForSent('cam/cancel')).requestId, first.requestId);
    await p.page.click('#method-family label:has-text("Class activation maps")');
    await p.page.click('#method');
    await p.page.click('#method li.option:has-text("Ablation-CAM")');
    const m = await p.waitForSent('cam/compute', 3);
    const reply = didCompute(m.requestId as number, 1, undefined, 'ablationcam') as Extract<ExplainHostMessage, { type: 'cam/didCompute' }>;
    await p.send({ ...reply, details: { note: 'top 32 of 256 channels by mean activation', channels: { scored: 32, usable: 250, total: 256, by: 'mean', ms: 900, allMs: 7000 } } });
    await p.page.waitForSelector('#scorecam-full:not([hidden])');
    assert.match(await p.page.textContent('#score-all') ?? '', /^Score all 250 channels/);
    await p.page.click('#score-all');
    const all = await p.waitForSent('cam/compute', 4);
    assert.deepEqual([all.method, all.allChannels], ['ablationcam', true]);
  });

  it('shows every map\'s time: the caption, the phases, and each method\'s last time in the picker', async () => {
    const { p, first } = await initialised();
    await p.send(didCompute(first.requestId as number));
    await p.page.waitForSelector('#canvas[data-state="drawn"]');
    assert.match(await p.page.textContent('#status') ?? '', / · 12 ms · wasm$/);
    assert.equal(await p.page.isVisible('#timings'), true);
    assert.equal(await p.page.textContent('#timings'), 'Time: forward 5 ms · gradients 4 ms · method 3 ms · total 12 ms');
    await p.page.click('#method-family label:has-text("Pixel saliency")');
    const m = await p.waitForSent('cam/compute', 2);
    await p.send(pixelReply(m.requestId as number, 'gradient', { signed: true }));
    await p.page.waitForFunction(() => document.getElementById('canvas')!.dataset.method === 'gradient');
    assert.equal(await p.page.textContent('#timings'), 'Time: forward 6 ms · gradients 250 ms · method 40 ms · total 296 ms');
    assert.equal((await options(p, 'method')).find((o) => o.value === 'gradient')?.description, 'Last map: 296 ms', 'the entry shows it at once');
    await p.page.click('#method-family label:has-text("Class activation maps")');
    await p.waitForSent('cam/compute', 3);
    assert.equal((await options(p, 'method')).find((o) => o.value === 'gradcam')?.description, 'Last map: 12 ms');
    await p.page.click('#method-family label:has-text("Pixel saliency")');
    await p.waitForSent('cam/compute', 4);
    assert.equal((await options(p, 'method')).find((o) => o.value === 'gradient')?.description, 'Last map: 296 ms');
    // A failed map clears its time.
    const last = (await computes(p)).at(-1)!;
    await p.send({ type: 'request/didFail', requestId: last.requestId, error: { name: 'CamLensError', message: 'no gradients', code: 'METHOD_NOT_APPLICABLE' } });
    await p.page.waitForSelector('#error:not([hidden])');
    assert.equal(await p.page.isVisible('#timings'), false);
    assert.deepEqual(p.errors, []);
    assert.deepEqual((await p.recorded()).violations, []);
  });
});

/**
 * The same panel over the real engine in this process (as dicomPanel.test.ts): the method list the worker builds
 * from the registry (kinds, layer use, params with the common CAM options), and each `cam/compute` answered with
 * ImageSession.explain on the bundled demo model, with the request's method, layers and options.
 */
describe('explain panel with the real engine: pixel saliency, options and several layers (headless Chromium)', function () {
  this.timeout(90000);
  let server: Server;
  let host: PanelHost;
  let model: LoadedModel;
  let session: ImageSession;
  let info: ModelInfo;
  let methods: MethodInfo[];
  let imageSize: [number, number] = [1, 1];
  const imageFile = path.join(ROOT, 'samples', 'star', fs.readdirSync(path.join(ROOT, 'samples', 'star')).filter((f) => f.endsWith('.png')).sort()[0] ?? '');

  before(async function () {
    requireChromium(this);
    ensureBundles();
    await initBackend('cpu');
    model = await loadModel(path.join(ROOT, 'models', 'demo', 'model.json'));
    const img = await decodeImage(imageFile);
    imageSize = [img.width, img.height];
    session = new ImageSession(model, await prepareInput(model, img));
    const s = describeModel(model);
    info = {
      path: model.path, name: model.name, format: 'layers-model', backend: model.backend,
      inputSize: [model.inputHeight, model.inputWidth, model.inputChannels], preprocess: model.metadata.preprocess,
      preprocessAssumed: model.metadata.preprocessAssumed, labels: model.metadata.labels, recommendedLayer: s.recommendedLayer,
      spatialLayers: s.layers.filter((l) => l.spatial).map((l) => l.name),
    };
    // As the worker lists them (worker.ts methodInfos), availability aside.
    methods = REGISTRY.map((m) => ({
      id: m.id, label: m.label, needsGradients: m.needsGradients, classIndependent: m.classIndependent === true, available: m.id !== 'cam',
      group: m.group, usesLayer: m.usesLayer !== false, params: methodParams(m),
    }));
    server = await startServer();
    server.assets.set('/assets/star.png', fs.readFileSync(imageFile));
    host = await createPanelHost(await sharedBrowser(), server);
  });

  after(async () => {
    await host?.close();
    await server?.close();
    session?.dispose();
    model?.dispose();
  });

  /** Answers cam/compute number `n` with the engine's map for it, as the extension would; returns the request. */
  async function answer(p: PanelPage, n: number): Promise<Sent> {
    const req = await p.waitForSent('cam/compute', n);
    const r = await session.explain({
      method: req.method as string, layer: req.layer as string | undefined, layers: req.layers as string[] | undefined,
      classChoice: req.classIndex as number | undefined, options: req.options as Record<string, unknown> | undefined,
    });
    const { details, ...heatmap } = r.heatmap;
    await p.send({
      type: 'cam/didCompute', requestId: req.requestId, method: r.method, layer: r.layer, target: r.target, heatmap,
      timingsMs: r.timingsMs, backend: model.backend, cached: false, ...(details ? { details } : {}), ...(r.layers ? { layers: r.layers } : {}),
    });
    await p.page.waitForFunction((id) => document.getElementById('canvas')?.dataset.state === 'drawn' && document.getElementById('canvas')?.dataset.method === id, r.method);
    return req;
  }

  it('runs a CAM method, then the pixel methods from the registry with their options, drawn in their colours', async () => {
    const p = await host.open('explain');
    await p.waitForSent('panel/ready');
    await p.send({
      type: 'panel/didInit', imageUri: `${server.origin}/assets/star.png`, imageName: path.basename(imageFile), imageSize, model: info, methods,
      state: { version: 1, imagePath: imageFile, modelPath: model.path, method: 'gradcam', opacity: 0.5, colormap: 'turbo', overlay: true },
    });
    await p.send({ type: 'predictions/didCompute', predictions: await session.predictions(3) });
    await answer(p, 1);
    assert.equal(await p.page.isVisible('#method-family'), true);
    const pixelIds = REGISTRY.filter((m) => m.group === 'pixel').map((m) => m.id);
    assert.ok(pixelIds.includes('gradient') && pixelIds.includes('smoothgrad'), `pixel methods: ${pixelIds}`);

    // Several layers (the demo model has more than one spatial layer): the real average, named in the caption.
    assert.ok(info.spatialLayers.length >= 2);
    await p.page.click('#multi-layer');
    await p.page.click('#layers');
    await p.page.click(`#layers li.option:has-text("${info.spatialLayers[0]}")`);
    const multi = await answer(p, 2);
    assert.equal((multi.layers as string[]).length, 2);
    assert.match(await p.page.textContent('#status') ?? '', /\(averaged\)/);

    // Pixel saliency: the vanilla gradient is signed, drawn with both ends of the diverging colormap.
    await p.page.click('#method-family label:has-text("Pixel saliency")');
    await p.waitForSent('cam/compute', 3);
    await p.page.evaluate(() => {
      const el = document.getElementById('method') as unknown as HTMLElement & { value: string };
      el.value = 'gradient';
      el.dispatchEvent(new Event('change'));
    });
    const grad = await answer(p, 4);
    assert.deepEqual([grad.method, grad.layer, grad.layers], ['gradient', undefined, undefined]);
    assert.equal(await p.page.getAttribute('#canvas', 'data-coloring'), 'signed');
    const tones = await p.page.evaluate(() => {
      const c = document.getElementById('canvas') as HTMLCanvasElement;
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      let blue = 0;
      let red = 0;
      for (let i = 0; i < d.length; i += 4) {
        if (d[i + 2] > d[i] + 40) blue++;
        if (d[i] > d[i + 2] + 40) red++;
      }
      return { blue, red };
    });
    assert.ok(tones.blue > 0 && tones.red > 0, `negative and positive attribution both painted: ${JSON.stringify(tones)}`);
    assert.match(await p.page.textContent('#status') ?? '', new RegExp(`at input resolution \\(${model.inputWidth}×${model.inputHeight}\\)`));
    assert.match(await p.page.textContent('#timings') ?? '', /^Time: .*total \d/);

    // SmoothGrad with fewer samples, set in the Options area: the request carries it, the engine uses it.
    await p.page.evaluate(() => {
      const el = document.getElementById('method') as unknown as HTMLElement & { value: string };
      el.value = 'smoothgrad';
      el.dispatchEvent(new Event('change'));
    });
    // (Its default 25 samples are left unanswered: the next request supersedes it.)
    assert.equal((await p.waitForSent('cam/compute', 5)).method, 'smoothgrad');
    await p.page.click('#method-options > summary');
    await p.page.fill('#option-samples', '3');
    await p.page.press('#option-samples', 'Enter');
    const sg = await answer(p, 6);
    assert.deepEqual(sg.options, { samples: 3 });
    assert.deepEqual(p.errors, []);
    await screenshot(p.page, 'explain-panel-smoothgrad-real.png');
  });
});
