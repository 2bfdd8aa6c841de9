/**
 * The explain panel's UI in headless Chromium against a fake host (see harness.ts): the real page from
 * panels/html.ts with its CSP, the real bundle, the real stylesheets.
 */
import * as assert from 'node:assert/strict';
import { colormapLut } from '../../src/shared/colormaps';
import type { ExplainHostMessage, ExplainViewState } from '../../src/shared/protocol';
import { didCompute, didInit, hostState, IMAGE_SIZE, LABELS, leftHotMap, PREDICTIONS, testImagePng } from './fixtures';
import { createPanelHost, ensureBundles, sharedBrowser, requireChromium, screenshot, startServer, themeReport, type PanelHost, type PanelPage, type Server } from './harness';

type Rgba = [number, number, number, number];

/** Canvas pixel at a fraction of its width and height. */
async function pixel(p: PanelPage, fx: number, fy: number): Promise<Rgba> {
  return p.page.evaluate(([x, y]) => {
    const c = document.getElementById('canvas') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(Math.floor(x * c.width), Math.floor(y * c.height), 1, 1).data;
    return [d[0], d[1], d[2], d[3]] as [number, number, number, number];
  }, [fx, fy] as const);
}

function lutColor(name: 'turbo' | 'gray' | 'viridis', v: number): [number, number, number] {
  const lut = colormapLut(name);
  const i = 3 * Math.round(v * 255);
  return [lut[i], lut[i + 1], lut[i + 2]];
}

/** Colour channels within `tol` of `rgb` (read-back of a half-transparent canvas loses a level or two). */
function assertColor(actual: Rgba, rgb: [number, number, number], alpha: number, what: string, tol = 3): void {
  const ok = [0, 1, 2].every((k) => Math.abs(actual[k] - rgb[k]) <= tol) && Math.abs(actual[3] - alpha) <= 1;
  assert.ok(ok, `${what}: got rgba(${actual.join(', ')}), expected about rgba(${rgb.join(', ')}, ${alpha})`);
}

/** The readout's text and data attributes (x, y, heat). */
async function readout(p: PanelPage): Promise<{ x?: string; y?: string; heat?: string; text: string }> {
  return p.page.$eval('#readout', (e) => ({ ...(e as HTMLElement).dataset, text: e.textContent ?? '' }));
}

async function text(p: PanelPage, selector: string): Promise<string> {
  return (await p.page.locator(selector).first().textContent())?.trim() ?? '';
}

describe('explain panel (headless Chromium, fake host)', function () {
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

  function panel(saved?: unknown): Promise<PanelPage> {
    return host.open('explain', saved);
  }

  /** Opens the panel, answers panel/ready with didInit and the predictions, and returns the first cam/compute. */
  async function initialised(saved?: unknown, state = hostState()) {
    const p = await panel(saved);
    await p.waitForSent('panel/ready');
    await p.send(didInit(imageUri, state));
    await p.send(PREDICTIONS);
    const first = await p.waitForSent('cam/compute');
    return { p, first };
  }

  /** Initialised, with the first map drawn. */
  async function drawn() {
    const r = await initialised();
    await r.p.send(didCompute(r.first.requestId as number));
    await r.p.page.waitForSelector('#canvas[data-state="drawn"]');
    return r;
  }

  it('says beside the preset picker and the predictions when the preset or the class names are assumed', async () => {
    const p = await panel();
    await p.waitForSent('panel/ready');
    // An ONNX export without metadata: imagenet assumed for a channels-first model, ImageNet's names for 1000 outputs.
    const init = didInit(imageUri) as Extract<ExplainHostMessage, { type: 'panel/didInit' }>;
    await p.send({ ...init, model: { ...init.model, format: 'onnx', preprocess: 'imagenet', preprocessAssumed: true, preprocessNote: 'channels-first export', labelsAssumed: true } });
    await p.page.waitForSelector('#preprocess-note:not([hidden])');
    assert.equal(await text(p, '#preprocess-note'), 'imagenet is assumed (channels-first export): no metadata names the preprocessing.');
    assert.match(await text(p, '#labels-note'), /^Class names assumed: ImageNet's/);
    const label = await p.page.$eval('#preprocess vscode-option[value="imagenet"]', (o) => o.textContent);
    assert.equal(label, 'imagenet (assumed: channels-first export)');
    // From the model's metadata: no notes.
    const q = await panel();
    await q.waitForSent('panel/ready');
    await q.send({ ...init, model: { ...init.model, preprocessAssumed: false } });
    await q.page.waitForSelector('#preprocess vscode-option', { state: 'attached' });
    assert.equal(await q.page.$eval('#preprocess-note', (e) => (e as HTMLElement).hidden), true);
    assert.equal(await q.page.$eval('#labels-note', (e) => (e as HTMLElement).hidden), true);
  });

  it('posts panel/ready first and nothing else before the host answers', async () => {
    const p = await panel();
    await p.waitForSent('panel/ready');
    await p.page.waitForTimeout(100);
    const { sent } = await p.recorded();
    assert.deepEqual(sent.map((m) => m.type), ['panel/ready']);
    assert.equal(await p.page.getAttribute('#canvas', 'data-state'), 'empty');
  });

  it('fills the controls from panel/didInit and asks for the first map', async () => {
    const { p, first } = await initialised();
    assert.equal(await text(p, '#title'), 'Class Activation Map for cat_dog.png');
    assert.equal(await text(p, '#model-name'), 'mobilenet_v1_0.25_224');
    assert.equal(await text(p, '#backend'), 'wasm');
    assert.deepEqual(
      { method: first.method, layer: first.layer, classIndex: first.classIndex },
      { method: 'gradcam', layer: 'conv_pw_13_relu', classIndex: undefined },
    );
    assert.ok(Number.isInteger(first.requestId) && (first.requestId as number) > 0);
    const options = await p.page.evaluate(() => {
      const opts = (id: string) => Array.from(document.querySelectorAll(`#${id} vscode-option`)).map((o) => ({
        value: o.getAttribute('value'), label: o.textContent, disabled: o.hasAttribute('disabled'),
      }));
      const v = (id: string) => (document.getElementById(id) as unknown as { value: string }).value;
      return { method: opts('method'), layer: opts('layer'), preprocess: opts('preprocess'), colormap: opts('colormap'),
        values: { method: v('method'), layer: v('layer'), preprocess: v('preprocess'), colormap: v('colormap') } };
    });
    assert.equal(options.method.length, 8);
    const cam = options.method.find((o) => o.value === 'cam');
    assert.ok(cam?.disabled && /needs global average pooling/.test(cam.label ?? ''), `CAM option: ${JSON.stringify(cam)}`);
    assert.ok(options.layer.some((o) => o.value === 'conv_pw_13_relu' && o.label === 'conv_pw_13_relu (recommended)'));
    assert.ok(options.preprocess.some((o) => o.value === '[-1,1]' && /\(assumed\)/.test(o.label ?? '')));
    assert.deepEqual(options.colormap.map((o) => o.value), ['turbo', 'jet', 'viridis', 'inferno', 'gray']);
    assert.deepEqual(options.values, { method: 'gradcam', layer: 'conv_pw_13_relu', preprocess: '[-1,1]', colormap: 'turbo' });
    // Predictions: label and percentage per entry, in the host's order.
    await p.page.waitForSelector('#predictions [data-class-index="1"]');
    const preds = await p.page.$$eval('#predictions [data-class-index]', (els) => els.map((e) => [(e as HTMLElement).dataset.classIndex, e.textContent]));
    assert.equal(preds.length, 5);
    assert.equal(preds[0][0], '1');
    assert.match(preds[0][1] ?? '', /boxer.*34\.6%/);
    assert.match(preds[4][1] ?? '', /pug.*<0\.1%/);
    assert.equal(await p.page.locator('#class-list [data-class-index]').count(), 10);
    // The host hears about the (reconciled) state for its serializer.
    const states = await p.sentOfType('state/didChange');
    assert.equal((states[0].state as ExplainViewState).imagePath, '/work/images/cat_dog.png');
    assert.equal(await p.page.getAttribute('#canvas', 'data-state'), 'computing');
    assert.equal(await p.page.isVisible('#progress'), true);
  });

  it('draws a received map: hot where the map is hot, in the colormap\'s colours, and reports it in #status', async () => {
    const { p } = await drawn();
    assert.equal(await p.page.getAttribute('#canvas', 'data-class-index'), '1');
    assert.equal(await text(p, '#status'), 'Grad-CAM for boxer (34.6%) at conv_pw_13_relu · 12 ms · wasm');
    assert.equal(await p.page.isVisible('#progress'), false);
    const left = await pixel(p, 0.1, 0.5);
    const right = await pixel(p, 0.9, 0.5);
    assertColor(left, lutColor('turbo', 1), 128, 'left (hot) pixel');
    assertColor(right, lutColor('turbo', 0), 128, 'right (cold) pixel');
    // Canvas pixels follow the displayed size (bilinear upsampling, not 7x7 blocks).
    const size = await p.page.evaluate(() => {
      const c = document.getElementById('canvas') as HTMLCanvasElement;
      return { w: c.width, h: c.height, cssW: c.getBoundingClientRect().width };
    });
    assert.ok(size.w >= 300 && Math.abs(size.w - size.cssW) <= 1, `canvas ${size.w}x${size.h} for ${size.cssW} CSS px`);
    assert.ok(Math.abs(size.w / size.h - IMAGE_SIZE[0] / IMAGE_SIZE[1]) < 0.02);
    assert.equal(await p.page.isEnabled('#export-png'), true);
  });

  it('posts cam/compute for a clicked prediction, a prediction chosen with Enter, and a filtered class', async () => {
    const { p } = await drawn();
    await p.page.click('#predictions [data-class-index="0"]');
    let m = await p.waitForSent('cam/compute', 2);
    assert.equal(m.classIndex, 0);
    assert.equal(await p.page.getAttribute('#predictions [data-class-index="0"]', 'aria-selected'), 'true');

    await p.page.focus('#predictions [data-class-index="0"]');
    await p.page.keyboard.press('ArrowDown');
    await p.page.keyboard.press('Enter');
    m = await p.waitForSent('cam/compute', 3);
    assert.equal(m.classIndex, 2, 'ArrowDown then Enter explains the next prediction (tiger cat)');

    await p.page.fill('#class-search', 'volc');
    assert.equal(await p.page.locator('#class-list [data-class-index]').count(), 1);
    await p.page.keyboard.press('ArrowDown');
    await p.page.keyboard.press('Enter');
    m = await p.waitForSent('cam/compute', 4);
    assert.equal(m.classIndex, 9);
    const ids = (await p.sentOfType('cam/compute')).map((c) => c.requestId as number);
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), `request ids increase: ${ids}`);
  });

  it('posts the chosen method, layer and preprocessing', async () => {
    const { p } = await drawn();
    // Through the real dropdown: open it, pick the option.
    await p.page.click('#method');
    await p.page.click('#method li.option:has-text("Grad-CAM++")');
    let m = await p.waitForSent('cam/compute', 2);
    assert.equal(m.method, 'gradcam++');
    assert.equal(m.layer, 'conv_pw_13_relu');
    // Programmatically, as the end-to-end tests drive it.
    const choose = (id: string, value: string) => p.page.evaluate(([i, v]) => {
      const el = document.getElementById(i) as unknown as HTMLElement & { value: string };
      el.value = v;
      el.dispatchEvent(new Event('change'));
    }, [id, value] as const);
    await choose('layer', 'conv_pw_11_relu');
    m = await p.waitForSent('cam/compute', 3);
    assert.deepEqual([m.method, m.layer], ['gradcam++', 'conv_pw_11_relu']);
    await choose('preprocess', 'imagenet');
    m = await p.waitForSent('cam/compute', 4);
    assert.equal(m.preprocess, 'imagenet');
    const state = (await p.recorded()).state as ExplainViewState;
    assert.deepEqual([state.method, state.layer, state.preprocess], ['gradcam++', 'conv_pw_11_relu', 'imagenet']);
  });

  it('offers an output picker only for a model with several outputs, and asks the host for the output chosen', async () => {
    // One output: no picker.
    const single = await initialised();
    assert.equal(await single.p.page.$eval('#output-field', (e) => (e as HTMLElement).hidden), true);
    // Three heads, the race head explained.
    const init = didInit(imageUri) as Extract<ExplainHostMessage, { type: 'panel/didInit' }>;
    const outputs = [{ name: 'age', units: 1, activation: 'none' }, { name: 'race', units: 5, activation: 'softmax' }, { name: 'gender', units: 1, activation: 'sigmoid' }];
    const p = await panel();
    await p.waitForSent('panel/ready');
    await p.send({ ...init, model: { ...init.model, outputs, output: 'race' } });
    await p.page.waitForSelector('#output-field:not([hidden])');
    assert.deepEqual(await p.page.$$eval('#output vscode-option', (os) => os.map((o) => o.textContent)), ['age (1 unit)', 'race (5 units, softmax)', 'gender (1 unit, sigmoid)']);
    assert.equal(await p.page.$eval('#output', (e) => (e as unknown as { value: string }).value), 'race');
    await p.waitForSent('cam/compute');
    await p.page.click('#output');
    await p.page.click('#output li.option:has-text("gender")');
    const chosen = await p.waitForSent('output/select');
    assert.equal(chosen.output, 'gender');
    // The output does not load: the error is shown and the picker goes back to the output on screen.
    await p.send({ type: 'request/didFail', requestId: chosen.requestId, error: { name: 'CamLensError', message: 'no output named "gender"', code: 'UNKNOWN_OUTPUT' } });
    await p.page.waitForSelector('#error:not([hidden])');
    assert.equal(await p.page.$eval('#output', (e) => (e as unknown as { value: string }).value), 'race');
    // The host reloads with the gender output: two classes, the picker on gender.
    await p.send({ ...init, model: { ...init.model, outputs, output: 'gender', binary: true, labels: ['female', 'male'] }, state: hostState({ output: 'gender' }) });
    await p.page.waitForFunction(() => (document.getElementById('output') as unknown as { value: string }).value === 'gender');
    assert.equal(await p.page.$$eval('#class-list [data-class-index]', (li) => li.length), 2);
  });

  it('ignores the reply to a superseded request', async () => {
    const { p, first } = await initialised();
    await p.page.click('#predictions [data-class-index="2"]');
    const second = await p.waitForSent('cam/compute', 2);
    await p.send(didCompute(first.requestId as number, 1));
    await p.page.waitForTimeout(50);
    assert.equal(await p.page.getAttribute('#canvas', 'data-state'), 'computing', 'the stale map is not drawn');
    await p.send(didCompute(second.requestId as number, 2));
    await p.page.waitForSelector('#canvas[data-state="drawn"]');
    assert.equal(await p.page.getAttribute('#canvas', 'data-class-index'), '2');
  });

  it('redraws on opacity, colormap and overlay changes without a new request', async () => {
    const { p } = await drawn();
    const before = (await p.sentOfType('cam/compute')).length;
    await p.page.evaluate(() => {
      const r = document.getElementById('opacity') as HTMLInputElement;
      r.value = '1';
      r.dispatchEvent(new Event('input'));
      r.dispatchEvent(new Event('change'));
    });
    await p.page.waitForFunction(() => {
      const c = document.getElementById('canvas') as HTMLCanvasElement;
      return c.getContext('2d')!.getImageData(2, 2, 1, 1).data[3] === 255;
    });
    assertColor(await pixel(p, 0.1, 0.5), lutColor('turbo', 1), 255, 'opaque hot pixel', 0);
    assert.equal(await text(p, '#opacity-value'), '100%');

    await p.page.evaluate(() => {
      const el = document.getElementById('colormap') as unknown as HTMLElement & { value: string };
      el.value = 'gray';
      el.dispatchEvent(new Event('change'));
    });
    assertColor(await pixel(p, 0.1, 0.5), [255, 255, 255], 255, 'gray hot pixel', 0);
    assertColor(await pixel(p, 0.9, 0.5), [0, 0, 0], 255, 'gray cold pixel', 0);

    await p.page.click('#overlay-toggle');
    await p.page.waitForFunction(() => getComputedStyle(document.getElementById('canvas')!).visibility === 'hidden');
    const after = await p.sentOfType('cam/compute');
    assert.equal(after.length, before, 'no new cam/compute');
    const last = (await p.sentOfType('state/didChange')).pop()?.state as ExplainViewState;
    assert.deepEqual([last.opacity, last.colormap, last.overlay], [1, 'gray', false]);
    assert.deepEqual((await p.recorded()).state, last, 'setState and state/didChange agree');
  });

  it('shows the pixel position and heat value under the pointer', async () => {
    const { p } = await drawn();
    assert.match(await text(p, '#readout'), /^Point at the image/, 'the hint shows once there is an image');
    const box = (await p.page.locator('#canvas').boundingBox())!;
    await p.page.mouse.move(box.x + box.width * 0.05, box.y + box.height * 0.5);
    await p.page.waitForFunction(() => document.getElementById('readout')!.dataset.heat !== undefined);
    let r = await readout(p);
    assert.equal(Number(r.heat), 1);
    assert.equal(Number(r.x), Math.floor(0.05 * IMAGE_SIZE[0]));
    assert.equal(Number(r.y), IMAGE_SIZE[1] / 2);
    assert.match(r.text ?? '', /^x 16, y 120 · heat 1\.00 \(raw 0\.0312\)$/);
    await p.page.mouse.move(box.x + box.width * 0.95, box.y + box.height * 0.25);
    await p.page.waitForFunction(() => Number(document.getElementById('readout')!.dataset.heat) === 0);
    r = await readout(p);
    assert.equal(Number(r.x), Math.floor(0.95 * IMAGE_SIZE[0]));
    // Keyboard probe: focus the image and move with the arrow keys.
    await p.page.focus('#stage');
    await p.page.keyboard.press('Home');
    r = await readout(p);
    assert.deepEqual([r.x, r.y, Number(r.heat)], ['0', '0', 1]);
  });

  it('shows a failed request in #error with the next step, and clears it on the next request', async () => {
    const { p, first } = await initialised();
    await p.send({
      type: 'request/didFail',
      requestId: first.requestId,
      error: { name: 'CamLensError', code: 'NOT_SPATIAL', message: 'Layer dense has no spatial dimensions', hint: 'pick another layer' },
    });
    await p.page.waitForSelector('#error', { state: 'visible' });
    assert.equal(await p.page.getAttribute('#error', 'role'), 'alert');
    assert.equal(await text(p, '#error .error-message'), 'Layer dense has no spatial dimensions');
    assert.equal(await text(p, '#error .error-hint'), 'Next step: pick another layer');
    assert.equal(await p.page.getAttribute('#canvas', 'data-state'), 'error');
    assert.equal(await p.page.isVisible('#progress'), false);
    await p.page.click('#predictions [data-class-index="0"]');
    await p.waitForSent('cam/compute', 2);
    assert.equal(await p.page.isVisible('#error'), false);
  });

  it('shows a panel-level failure before any init, and still lets the user change the model', async () => {
    const p = await panel();
    await p.waitForSent('panel/ready');
    await p.send({ type: 'panel/didFail', error: { name: 'CamLensError', message: 'model.json is not a TensorFlow.js model', hint: 'choose another model' } });
    await p.page.waitForSelector('#error', { state: 'visible' });
    assert.match(await text(p, '#error'), /not a TensorFlow\.js model.*Next step: choose another model/s);
    assert.equal(await p.page.isVisible('#readout'), false, 'no image, so no "point at the image" hint');
    await p.page.click('#change-model');
    const m = await p.waitForSent('model/select');
    assert.ok(Number.isInteger(m.requestId));
  });

  it('shows an unreadable image as the error alone, its long path wrapped inside a panel beside an editor', async () => {
    await host.page.setViewportSize({ width: 620, height: 700 });
    try {
      const p = await panel();
      await p.waitForSent('panel/ready');
      const file = '/home/someone/projects/very-long-project-name/datasets/shapes_with_a_long_folder_name/validation_images/corrupt_sample_0001.png';
      await p.send({ type: 'panel/didFail', imageName: 'corrupt_sample_0001.png',
        error: { name: 'CamLensError', code: 'IMAGE_UNREADABLE', message: `${file} is not a readable image (Input buffer contains unsupported image format)`, hint: 'open it in an image viewer; re-export it as PNG' } });
      await p.page.waitForSelector('#error', { state: 'visible' });
      const geo = await p.page.evaluate(() => {
        const err = document.getElementById('error')!;
        const msg = err.querySelector('.error-message') as HTMLElement;
        const r = err.getBoundingClientRect();
        return { right: r.right, width: innerWidth, msgScroll: msg.scrollWidth, msgClient: msg.clientWidth, docScroll: document.documentElement.scrollWidth, lines: Math.round(msg.getBoundingClientRect().height / parseFloat(getComputedStyle(msg).lineHeight)) };
      });
      assert.ok(geo.right <= geo.width, `the error box ends at ${geo.right} px, inside the ${geo.width} px panel`);
      assert.ok(geo.msgScroll <= geo.msgClient, `the message wraps (scrollWidth ${geo.msgScroll} > clientWidth ${geo.msgClient})`);
      assert.ok(geo.docScroll <= geo.width, `no horizontal scrolling (${geo.docScroll} px wide)`);
      assert.ok(geo.lines >= 2, 'the long message takes several lines');
      assert.equal(await text(p, '#error .error-message'), `${file} is not a readable image (Input buffer contains unsupported image format)`);
      // No empty dropdowns, no "Model … Backend …" placeholders; the title names the image; changing the model is still offered.
      for (const sel of ['#method', '#predictions-heading', '#stage', '#model-name', '#backend']) {
        assert.equal(await p.page.isVisible(sel), false, `${sel} is hidden in the error view`);
      }
      assert.equal(await text(p, '#title'), 'Class Activation Map for corrupt_sample_0001.png');
      assert.equal(await p.page.isVisible('#change-model'), true);
      await screenshot(p.page, 'explain-error-narrow.png');
      // A later successful init (another model chosen) shows the panel again; a model that then fails to load
      // leaves no stale controls behind.
      await p.send(didInit(imageUri));
      await p.page.waitForSelector('#method', { state: 'visible' });
      assert.equal(await p.page.isVisible('#model-name'), true);
      assert.equal(await p.page.isVisible('#error'), false);
      await p.send({ type: 'panel/didFail', error: { name: 'CamLensError', code: 'MODEL_INVALID', message: 'model.json is not a TensorFlow.js model' } });
      await p.page.waitForSelector('#method', { state: 'hidden' });
      assert.equal(await p.page.isVisible('#error'), true);
    } finally {
      await host.page.setViewportSize({ width: 1100, height: 760 });
    }
  });

  it('lays out beside an open editor (620x700; 470x700 with the Explorer open): the image, the method picker and the first predictions without scrolling', async () => {
    try {
      const cases: [number, [number, number]][] = [[620, IMAGE_SIZE], [620, [96, 96]], [470, [96, 96]]];
      for (const [width, size] of cases) {
        await host.page.setViewportSize({ width, height: 700 });
        const p = await panel();
        await p.waitForSent('panel/ready');
        await p.send({ ...didInit(imageUri), imageSize: size });
        await p.send(PREDICTIONS);
        const first = await p.waitForSent('cam/compute');
        await p.send(didCompute(first.requestId as number));
        await p.page.waitForSelector('#canvas[data-state="drawn"]');
        const boxes = await p.page.evaluate(() => {
          const box = (el: Element) => {
            const r = el.getBoundingClientRect();
            return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width };
          };
          return {
            stage: box(document.getElementById('stage')!),
            method: box(document.getElementById('method')!),
            predictions: Array.from(document.querySelectorAll('#predictions [data-class-index]')).slice(0, 3).map(box),
            scroll: { x: window.scrollX, y: window.scrollY, docW: document.documentElement.scrollWidth },
            viewport: { w: innerWidth, h: innerHeight },
          };
        });
        const inside = (b: { top: number; bottom: number; left: number; right: number }, what: string) => {
          assert.ok(b.top >= 0 && b.left >= 0 && b.bottom <= boxes.viewport.h && b.right <= boxes.viewport.w,
            `${what} (${size.join('x')} image) is inside the ${width}x700 viewport: ${JSON.stringify(b)}`);
        };
        assert.deepEqual([boxes.scroll.x, boxes.scroll.y], [0, 0]);
        assert.ok(boxes.scroll.docW <= boxes.viewport.w, `no horizontal scrolling (${boxes.scroll.docW} px)`);
        inside(boxes.stage, 'the image');
        inside(boxes.method, 'the method picker');
        assert.equal(boxes.predictions.length, 3);
        boxes.predictions.forEach((b, i) => inside(b, `prediction ${i + 1}`));
        assert.ok(boxes.stage.width >= width * 0.5, `the image stays the biggest thing: ${boxes.stage.width} px wide`);
        if (size === IMAGE_SIZE) await screenshot(p.page, 'explain-panel-beside-editor.png');
      }
    } finally {
      await host.page.setViewportSize({ width: 1100, height: 760 });
    }
  });

  it('shows a probability for every class in "Why not another class?", not only for the top k', async () => {
    const { p } = await initialised();
    const all = new Float32Array(LABELS.length);
    for (const pr of (PREDICTIONS as Extract<ExplainHostMessage, { type: 'predictions/didCompute' }>).predictions) all[pr.index] = pr.probability;
    all[9] = 0.0002;
    all[8] = 0.031;
    await p.send({ ...PREDICTIONS, probabilities: all });
    await p.page.waitForSelector('#class-list [data-class-index="9"] .pct', { timeout: 3000 });
    const items = await p.page.$$eval('#class-list [data-class-index]', (els) => els.map((e) => ({ i: (e as HTMLElement).dataset.classIndex, pct: e.querySelector('.pct')?.textContent ?? null })));
    assert.equal(items.length, LABELS.length);
    for (const it of items) assert.notEqual(it.pct, null, `class ${it.i} shows a probability`);
    assert.equal(items.find((x) => x.i === '8')?.pct, '3.1%');
    assert.equal(items.find((x) => x.i === '9')?.pct, '<0.1%');
    assert.equal(items.find((x) => x.i === '3')?.pct, '0.0%', 'a class with probability 0 says 0.0%');
    assert.equal(items.find((x) => x.i === '1')?.pct, '34.6%');
  });

  it('captions Eigen-CAM as class-independent and says in the class lists that the class does not change its map', async () => {
    const { p } = await drawn();
    assert.equal(await p.page.isVisible('#class-note'), false, 'no note for a class-specific method');
    await p.page.evaluate(() => {
      const el = document.getElementById('method') as unknown as HTMLElement & { value: string };
      el.value = 'eigencam';
      el.dispatchEvent(new Event('change'));
    });
    const req = await p.waitForSent('cam/compute', 2);
    assert.equal(req.method, 'eigencam');
    await p.send({ ...didCompute(req.requestId as number, 4, leftHotMap(), 'eigencam') });
    await p.page.waitForFunction(() => document.getElementById('canvas')!.dataset.method === 'eigencam');
    const caption = await text(p, '#status');
    assert.match(caption, /^Eigen-CAM \(class-independent\) at conv_pw_13_relu/);
    assert.doesNotMatch(caption, /Egyptian cat|for /, `no class in "${caption}"`);
    assert.equal(await p.page.isVisible('#class-note'), true);
    assert.match(await text(p, '#class-note'), /Eigen-CAM gives the same map for every class/);
    assert.equal(await p.page.getAttribute('#class-list', 'data-class-independent'), 'true');
    assert.equal(await p.page.getAttribute('#predictions', 'data-class-independent'), 'true');
    // Picking a class asks for nothing (the map would be the same) and says why; the choice is kept.
    await p.page.click('#predictions [data-class-index="0"]');
    await p.page.waitForFunction(() => /does not depend on the class/.test(document.getElementById('notice')!.textContent ?? ''));
    assert.equal((await p.sentOfType('cam/compute')).length, 2);
    assert.equal(((await p.recorded()).state as ExplainViewState).classIndex, 0);
    // Back to a class-specific method: the note goes, and the kept class is explained.
    await p.page.evaluate(() => {
      const el = document.getElementById('method') as unknown as HTMLElement & { value: string };
      el.value = 'gradcam';
      el.dispatchEvent(new Event('change'));
    });
    const back = await p.waitForSent('cam/compute', 3);
    assert.deepEqual([back.method, back.classIndex], ['gradcam', 0]);
    assert.equal(await p.page.isVisible('#class-note'), false);
    assert.equal(await p.page.getAttribute('#class-list', 'data-class-independent'), null);
  });

  it('shows Score-CAM progress for the current request only, over the previous map (dimmed), captioned with the pending method', async () => {
    const { p } = await drawn();
    await p.page.evaluate(() => {
      const el = document.getElementById('method') as unknown as HTMLElement & { value: string };
      el.value = 'scorecam';
      el.dispatchEvent(new Event('change'));
    });
    const req = await p.waitForSent('cam/compute', 2);
    // While it computes: the Grad-CAM map is still on the canvas, shown dimmed, and the caption names Score-CAM.
    assert.equal(await p.page.getAttribute('#canvas', 'data-state'), 'computing');
    assertColor(await pixel(p, 0.1, 0.5), lutColor('turbo', 1), 128, 'the previous map\'s hot pixel while Score-CAM computes');
    // (The dimming fades in over 120 ms.)
    await p.page.waitForFunction(() => Number(getComputedStyle(document.getElementById('canvas')!).opacity) < 0.75, undefined, { timeout: 2000 });
    const look = await p.page.$eval('#canvas', (c) => ({ opacity: Number(getComputedStyle(c).opacity), visibility: getComputedStyle(c).visibility }));
    assert.equal(look.visibility, 'visible');
    assert.ok(look.opacity > 0.3 && look.opacity < 0.9, `the previous map is dimmed, not hidden (opacity ${look.opacity})`);
    const caption = await text(p, '#status');
    assert.match(caption, /^Computing Score-CAM\b/, `#status names the pending method: "${caption}"`);
    assert.match(caption, /Grad-CAM map stays, dimmed/);
    // The progress bar lies over the image's bottom edge: nothing below the image moves when it comes and goes.
    const statusTop = () => p.page.$eval('#status', (e) => e.getBoundingClientRect().top);
    const computingTop = await statusTop();
    const [stage, bar] = await Promise.all(['#stage', '#progress'].map(async (sel) => (await p.page.locator(sel).boundingBox())!));
    assert.ok(bar.y >= stage.y && bar.y + bar.height <= stage.y + stage.height + 1 && bar.width <= stage.width + 1, `#progress ${JSON.stringify(bar)} lies inside the image ${JSON.stringify(stage)}`);
    await p.send({ type: 'cam/didProgress', requestId: 1, done: 9, total: 10 }); // superseded: ignored
    await p.send({ type: 'cam/didProgress', requestId: req.requestId, done: 3, total: 16 });
    await p.page.waitForSelector('#progress[data-done="3"]');
    await screenshot(p.page, 'explain-panel-scorecam-computing.png');
    assert.equal(await p.page.getAttribute('#progress', 'data-total'), '16');
    assert.match(await text(p, '#progress'), /Score-CAM: 3 \/ 16/);
    await p.send(didCompute(req.requestId as number, 1, leftHotMap(), 'scorecam'));
    await p.page.waitForSelector('#progress', { state: 'hidden' });
    assert.equal(await statusTop(), computingTop, 'the caption under the image stays where it was');
    assert.match(await text(p, '#status'), /^Score-CAM for boxer/);
  });

  it('exports and changes the model through the host', async () => {
    const { p } = await drawn();
    await p.page.evaluate(() => {
      const r = document.getElementById('opacity') as HTMLInputElement;
      r.value = '0.7';
      r.dispatchEvent(new Event('input'));
    });
    await p.page.click('#export-png');
    const png = await p.waitForSent('export/png');
    assert.deepEqual([png.colormap, png.opacity], ['turbo', 0.7]);
    await p.send({ type: 'export/didSave', requestId: png.requestId, path: '/work/images/cat_dog.cam.png' });
    await p.page.waitForFunction(() => document.getElementById('notice')!.textContent === 'Saved /work/images/cat_dog.cam.png');
    await p.page.click('#export-json');
    const json = await p.waitForSent('export/json');
    // The user dismissed the save dialog: the host answers CANCELLED, which is no error.
    await p.send({ type: 'request/didFail', requestId: json.requestId, error: { name: 'Cancelled', message: 'the export was cancelled', code: 'CANCELLED' } });
    await p.page.waitForFunction(() => document.getElementById('notice')!.textContent === 'Export cancelled.');
    assert.equal(await p.page.isVisible('#error'), false);
    await p.page.click('#change-model');
    const select = await p.waitForSent('model/select');
    await p.send({ type: 'request/didFail', requestId: select.requestId, error: { name: 'Cancelled', message: 'no model was chosen', code: 'CANCELLED' } });
    await p.page.waitForTimeout(50);
    assert.equal(await p.page.isVisible('#error'), false);
    assert.equal(await p.page.getAttribute('#canvas', 'data-state'), 'drawn');
  });

  it('restores the saved UI state (getState) over the host\'s for the same image and model', async () => {
    const saved: ExplainViewState = hostState({ method: 'gradcam++', classIndex: 4, layer: 'conv_pw_12_relu', opacity: 0.8, colormap: 'viridis', overlay: true });
    const { p, first } = await initialised(saved);
    assert.deepEqual([first.method, first.classIndex, first.layer], ['gradcam++', 4, 'conv_pw_12_relu']);
    assert.equal(await p.page.$eval('#colormap', (e) => (e as unknown as { value: string }).value), 'viridis');
    assert.equal(await p.page.$eval('#opacity', (e) => (e as HTMLInputElement).value), '0.8');
    await p.send(didCompute(first.requestId as number, 4));
    await p.page.waitForSelector('#canvas[data-state="drawn"]');
    assertColor(await pixel(p, 0.1, 0.5), lutColor('viridis', 1), 204, 'viridis hot pixel at 80%');
    // A state saved for another model keeps only the display settings.
    const other = await initialised({ ...saved, modelPath: '/models/other/model.json' });
    assert.deepEqual([other.first.method, other.first.classIndex, other.first.layer], ['gradcam++', undefined, 'conv_pw_13_relu']);
  });

  it('reaches every control with Tab', async () => {
    const { p } = await drawn();
    await p.page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      await p.page.keyboard.press('Tab');
      const id = await p.page.evaluate(() => document.activeElement?.closest('[id]')?.id ?? '');
      if (id) seen.add(id);
    }
    for (const id of ['change-model', 'stage', 'method', 'layer', 'preprocess', 'colormap', 'opacity', 'overlay-toggle', 'export-png',
      'export-json', 'predictions', 'class-search', 'class-list']) {
      assert.ok(seen.has(id), `#${id} is reachable with Tab (reached: ${[...seen].join(', ')})`);
    }
  });

  it('runs under its CSP without violations, and the CSP blocks a script without the nonce', async () => {
    const { p } = await drawn();
    await p.page.hover('#canvas');
    const clean = await p.recorded();
    assert.deepEqual(clean.violations, [], 'no CSP violations from our own code');
    assert.deepEqual(p.errors, [], 'no console errors');
    const csp = await p.page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content');
    assert.match(csp ?? '', /default-src 'none'; script-src 'nonce-[A-Za-z0-9_-]{32}';/);
    assert.doesNotMatch(csp ?? '', /unsafe-(eval|inline)/);
    const ran = await p.page.evaluate(async () => {
      const s = document.createElement('script');
      s.textContent = 'window.__injected = true;';
      document.body.append(s);
      await new Promise((r) => setTimeout(r, 50));
      return (window as unknown as { __injected?: boolean }).__injected === true;
    });
    assert.equal(ran, false, 'an inline script without the nonce must not run');
    const { violations } = await p.recorded();
    assert.ok(violations.some((v) => v.directive.startsWith('script-src')), `a script-src violation is reported: ${JSON.stringify(violations)}`);
  });

  it('looks right in the dark theme: colours from the theme variables, readable text, the map drawn (screenshot)', async () => {
    const { p } = await drawn();
    await p.page.focus('#predictions [data-class-index="1"]');
    const box = (await p.page.locator('#canvas').boundingBox())!;
    await p.page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.55);
    const file = await screenshot(p.page, 'explain-panel-dark.png');
    console.log(`      screenshot: ${file}`);
    const t = await themeReport(p.page, ['canvas']);
    assert.equal(t.body.background, t.body.editorBackground, 'the page background is --vscode-editor-background');
    assert.equal(t.body.color, t.body.foreground, 'the text colour is --vscode-foreground');
    assert.ok(t.bodyContrast >= 4.5, `body text contrast ${t.bodyContrast.toFixed(2)}:1`);
    assert.deepEqual(t.lightBackgrounds, [], 'no element paints a light background in the dark theme');
    assert.deepEqual(t.lowContrastText, [], 'all text reads against its background');
    assert.ok(t.canvases.canvas > 0.95, `the overlay canvas is drawn (${(t.canvases.canvas * 100).toFixed(0)}% of its pixels)`);
  });
});
