/**
 * The webview's pure helpers, in plain Node: request bookkeeping, overlay colouring and geometry, channel sort
 * orders and painting, view-state reconciliation, host message validation, formatting, and the panel HTML.
 */
import * as assert from 'node:assert/strict';
import { buildPanelHtml, contentSecurityPolicy, createNonce } from '../../src/extension/panels/html';
import { colormapLut } from '../../src/shared/colormaps';
import { upsampleBilinear } from '../../src/shared/heatmap';
import type { ExplainViewState } from '../../src/shared/protocol';
import { formatCount, formatMs, formatPercent, formatShape, formatStat, totalMs } from '../../src/shared/format';
import { parseExplainHostMessage, parseInspectorHostMessage, toFloat32 } from '../../src/webview/common/hostMessages';
import { formatReadout, heatAtPixel, imagePixelAt, opacityToAlpha, overlayCanvasSize, paintOverlay } from '../../src/webview/common/overlay';
import { RequestTracker } from '../../src/webview/common/requests';
import { clampToModel, pickMethod, reconcileViewState } from '../../src/webview/explain/viewState';
import { channelOrder, gridMove, paintChannel } from '../../src/webview/inspector/channels';
import { didCompute, featureMaps, hostState, METHODS, MODEL } from './fixtures';

describe('RequestTracker', () => {
  it('issues increasing ids, unique across lanes', () => {
    const t = new RequestTracker<'cam' | 'export'>();
    const ids = [t.issue('cam'), t.issue('export'), t.issue('cam')];
    assert.deepEqual(ids, [1, 2, 3]);
  });

  it('ignores the reply to a request superseded in its lane, but not one in another lane', () => {
    const t = new RequestTracker<'cam' | 'export'>();
    const a = t.issue('cam');
    const e = t.issue('export');
    const b = t.issue('cam');
    assert.equal(t.isCurrent(a), false);
    assert.equal(t.settle(a), undefined, 'superseded reply is ignored');
    assert.equal(t.settle(e), 'export');
    assert.equal(t.isBusy('cam'), true);
    assert.equal(t.settle(b), 'cam');
    assert.equal(t.isBusy('cam'), false);
  });

  it('acts on a reply only once, and never on ids it did not issue', () => {
    const t = new RequestTracker<'cam'>();
    const a = t.issue('cam');
    assert.equal(t.settle(a), 'cam');
    assert.equal(t.settle(a), undefined);
    assert.equal(t.settle(99), undefined);
    assert.equal(t.isCurrent(a), false);
  });

  it('cancel and reset drop pending requests', () => {
    const t = new RequestTracker<'cam' | 'export'>();
    const a = t.issue('cam');
    const e = t.issue('export');
    t.cancel('cam');
    assert.equal(t.settle(a), undefined);
    assert.equal(t.isCurrent(e), true);
    t.reset();
    assert.equal(t.settle(e), undefined);
    assert.ok(t.issue('cam') > e, 'ids keep increasing after a reset');
  });
});

describe('overlay helpers', () => {
  it('paints the colormap colour with alpha = opacity, so canvas-over-image equals the export blend', () => {
    const lut = colormapLut('turbo');
    const out = paintOverlay([0, 1, 0.5], 'turbo', 0.5);
    assert.deepEqual(Array.from(out.slice(0, 4)), [lut[0], lut[1], lut[2], 128]);
    assert.deepEqual(Array.from(out.slice(4, 8)), [lut[765], lut[766], lut[767], 128]);
    const j = 3 * Math.round(0.5 * 255);
    assert.deepEqual(Array.from(out.slice(8, 12)), [lut[j], lut[j + 1], lut[j + 2], 128]);
    // Compositing over an image pixel with source-over reproduces (1 - a) * image + a * colour (within rounding).
    const image = [200, 100, 50];
    const a = out[7] / 255;
    const shown = image.map((c, k) => (1 - a) * c + a * out[4 + k]);
    const exported = image.map((c, k) => 0.5 * c + 0.5 * out[4 + k]);
    shown.forEach((v, k) => assert.ok(Math.abs(v - exported[k]) < 1.5));
  });

  it('clamps opacity, paints NaN cold, and refuses a short output buffer', () => {
    assert.deepEqual([opacityToAlpha(-1), opacityToAlpha(Number.NaN), opacityToAlpha(2), opacityToAlpha(0.2)], [0, 0, 255, 51]);
    const lut = colormapLut('gray');
    assert.deepEqual(Array.from(paintOverlay([Number.NaN], 'gray', 1)), [lut[0], lut[1], lut[2], 255]);
    assert.throws(() => paintOverlay([0, 1], 'gray', 1, new Uint8ClampedArray(4)), /8/);
  });

  it('sizes the canvas at device pixels and caps huge canvases, keeping the aspect ratio', () => {
    assert.deepEqual(overlayCanvasSize(480, 360, 2), { width: 960, height: 720 });
    assert.deepEqual(overlayCanvasSize(0, 0, 1), { width: 1, height: 1 });
    assert.deepEqual(overlayCanvasSize(100, 50, Number.NaN), { width: 100, height: 50 });
    const big = overlayCanvasSize(4000, 2000, 2, 1_000_000);
    assert.ok(big.width * big.height <= 1_000_000);
    assert.ok(Math.abs(big.width / big.height - 2) < 0.01);
  });

  it('maps a pointer to the image pixel under it, and nothing outside the image', () => {
    assert.deepEqual(imagePixelAt(0, 0, 480, 360, 320, 240), { x: 0, y: 0 });
    assert.deepEqual(imagePixelAt(479.9, 359.9, 480, 360, 320, 240), { x: 319, y: 239 });
    assert.deepEqual(imagePixelAt(240, 180, 480, 360, 320, 240), { x: 160, y: 120 });
    assert.equal(imagePixelAt(480, 10, 480, 360, 320, 240), undefined);
    assert.equal(imagePixelAt(-1, 10, 480, 360, 320, 240), undefined);
    assert.equal(imagePixelAt(1, 1, 0, 0, 320, 240), undefined);
  });

  it('reads the value painted at a pixel: heatAtPixel equals the map upsampled to the image size', () => {
    const values = new Float32Array([0, 0.25, 0.5, 1, 0.75, 0.1]);
    const map = { width: 3, height: 2, values, rawMin: -2, rawMax: 2 };
    const up = upsampleBilinear(values, 3, 2, 30, 20);
    for (const [x, y] of [[0, 0], [7, 3], [29, 19], [15, 10]]) {
      assert.ok(Math.abs(heatAtPixel(map, x, y, 30, 20) - up[y * 30 + x]) < 1e-6, `(${x}, ${y})`);
    }
    assert.equal(formatReadout(3, 4, map, 0.5), 'x 3, y 4 · heat 0.50 (raw 0.00)');
    assert.equal(formatReadout(3, 4, map, 1), 'x 3, y 4 · heat 1.00 (raw 2.00)');
    assert.equal(formatReadout(3, 4), 'x 3, y 4');
  });
});

describe('channel helpers', () => {
  it('orders channels by index, by descending mean, and by descending weight, ties and NaN stable', () => {
    const mean = [0.2, 0.9, 0.2, Number.NaN, 0.5];
    assert.deepEqual(channelOrder('index', 5, mean), [0, 1, 2, 3, 4]);
    assert.deepEqual(channelOrder('mean', 5, mean), [1, 4, 0, 2, 3]);
    assert.deepEqual(channelOrder('weight', 3, mean, [-1, 2, 0.5]), [1, 2, 0]);
    assert.deepEqual(channelOrder('weight', 3, mean, undefined), [0, 1, 2], 'no weights: index order');
  });

  it('paints a channel min-max normalised with its own range, a constant channel cold', () => {
    const values = new Float32Array([/* c0 */ 2, 4, 6, 10, /* c1 */ 3, 3, 3, 3]);
    const lut = colormapLut('gray');
    const c0 = paintChannel(values, 0, 2, 2, 2, 10, 'gray');
    // (v - 2) / (8 + eps): 0, 0.25, a hair under 0.5 (so LUT entry 127, as shared/heatmap's normalisation gives), ~1.
    assert.deepEqual([c0[0], c0[4], c0[8], c0[12]], [lut[0], lut[3 * 64], lut[3 * 127], lut[3 * 255]]);
    const c1 = paintChannel(values, 1, 2, 2, 3, 3, 'gray');
    assert.deepEqual([c1[0], c1[4], c1[8], c1[12], c1[3]], [0, 0, 0, 0, 255]);
  });

  it('moves through a grid with the arrow keys and stops at its edges', () => {
    assert.equal(gridMove('ArrowRight', 0, 10, 4), 1);
    assert.equal(gridMove('ArrowDown', 1, 10, 4), 5);
    assert.equal(gridMove('ArrowDown', 7, 10, 4), 7, 'no cell below');
    assert.equal(gridMove('ArrowLeft', 0, 10, 4), 0);
    assert.equal(gridMove('End', 3, 10, 4), 9);
    assert.equal(gridMove('x', 3, 10, 4), 3);
  });
});

describe('explain view state', () => {
  it('keeps the host state when nothing was saved, with the recommended layer filled in', () => {
    const s = reconcileViewState(hostState(), undefined, MODEL, METHODS);
    assert.equal(s.layer, 'conv_pw_13_relu');
    assert.equal(s.method, 'gradcam');
    assert.equal(s.classIndex, undefined);
  });

  it('prefers the saved choices for the same image and model, only display settings for another model', () => {
    const saved: ExplainViewState = hostState({ method: 'layercam', classIndex: 3, layer: 'conv_pw_11_relu', colormap: 'jet', opacity: 0.9, overlay: false, preprocess: 'caffe' });
    const same = reconcileViewState(hostState(), saved, MODEL, METHODS);
    assert.deepEqual([same.method, same.classIndex, same.layer, same.colormap, same.opacity, same.overlay, same.preprocess],
      ['layercam', 3, 'conv_pw_11_relu', 'jet', 0.9, false, 'caffe']);
    const other = reconcileViewState(hostState({ modelPath: '/other/model.json' }), saved, MODEL, METHODS);
    assert.deepEqual([other.method, other.classIndex, other.layer, other.colormap, other.preprocess, other.modelPath],
      ['layercam', undefined, 'conv_pw_13_relu', 'jet', undefined, '/other/model.json']);
    const otherImage = reconcileViewState(hostState(), { ...saved, imagePath: '/x.png' }, MODEL, METHODS);
    assert.equal(otherImage.colormap, 'turbo', 'a state saved for another image is ignored');
    assert.equal(reconcileViewState(hostState(), { version: 2, junk: true }, MODEL, METHODS).method, 'gradcam');
  });

  it('replaces what the model cannot do: an unavailable method, an unknown layer, an out-of-range class', () => {
    assert.equal(pickMethod('cam', METHODS), 'gradcam');
    assert.equal(pickMethod('cam', METHODS.map((m) => ({ ...m, available: m.id === 'eigencam' }))), 'eigencam');
    assert.equal(pickMethod('cam', METHODS.map((m) => ({ ...m, available: false }))), 'cam');
    const s = clampToModel(hostState({ method: 'cam', layer: 'nope', classIndex: 10 }), MODEL, METHODS);
    assert.deepEqual([s.method, s.layer, s.classIndex], ['gradcam', 'conv_pw_13_relu', undefined]);
    const noLayers = clampToModel(hostState(), { ...MODEL, spatialLayers: [], recommendedLayer: null }, METHODS);
    assert.equal(noLayers.layer, undefined);
  });
});

describe('host message validation', () => {
  it('accepts a cam/didCompute and normalises its map from a number array or an index-keyed object', () => {
    const good = didCompute(4);
    const r = parseExplainHostMessage(good);
    assert.ok(r.ok);
    const asArray = { ...good, heatmap: { ...(good as { heatmap: object }).heatmap, values: Array.from({ length: 49 }, () => 0.5) } };
    const parsed = parseExplainHostMessage(asArray);
    assert.ok(parsed.ok && parsed.message.type === 'cam/didCompute' && parsed.message.heatmap.values instanceof Float32Array);
    const keyed = toFloat32({ 0: 1, 1: 2 }, 2, 'v');
    assert.deepEqual(Array.from(keyed), [1, 2]);
  });

  it('accepts every class\'s probabilities with the predictions, as a typed array, a number array or an index-keyed object', () => {
    const top = [{ index: 1, label: 'boxer', probability: 0.6 }];
    for (const probabilities of [Float32Array.from([0.1, 0.6, 0.3]), [0.1, 0.6, 0.3], { 0: 0.1, 1: 0.6, 2: 0.3 }]) {
      const r = parseExplainHostMessage({ type: 'predictions/didCompute', predictions: top, probabilities });
      assert.ok(r.ok && r.message.type === 'predictions/didCompute' && r.message.probabilities instanceof Float32Array);
      assert.deepEqual(Array.from(r.message.probabilities, (v) => Number(v.toFixed(3))), [0.1, 0.6, 0.3]);
    }
    const old = parseExplainHostMessage({ type: 'predictions/didCompute', predictions: top });
    assert.ok(old.ok && old.message.type === 'predictions/didCompute' && old.message.probabilities === undefined, 'an older host sends none');
    assert.ok(!parseExplainHostMessage({ type: 'predictions/didCompute', predictions: top, probabilities: 'x' }).ok);
  });

  it('refuses malformed messages with a reason', () => {
    const bad = (x: unknown) => {
      const r = parseExplainHostMessage(x);
      assert.ok(!r.ok);
      return r.reason;
    };
    assert.match(bad({ ...didCompute(1), heatmap: { width: 7, height: 7, values: new Float32Array(48), rawMin: 0, rawMax: 1 } }), /48 values, expected 49/);
    assert.match(bad({ type: 'cam/didCompute' }), /requestId/);
    assert.match(bad({ type: 'nope' }), /unknown message type/);
    assert.match(bad(null), /not an object/);
    assert.match(bad({ type: 'request/didFail', requestId: -1, error: { message: 'x' } }), /requestId/);
    const r = parseInspectorHostMessage({ ...featureMaps(1, 4), min: new Float32Array(3) });
    assert.ok(!r.ok && /min holds 3 values, expected 4/.test(r.reason));
    assert.ok(parseInspectorHostMessage(featureMaps(1, 4)).ok);
  });
});

describe('formatting', () => {
  it('formats percentages, times, counts, shapes and statistics', () => {
    assert.deepEqual([formatPercent(0.346), formatPercent(0.0004), formatPercent(0), formatPercent(1)], ['34.6%', '<0.1%', '0.0%', '100.0%']);
    assert.deepEqual([formatMs(12.4), formatMs(1430), totalMs({ forward: 5, method: 3 }), totalMs({ forward: 5, total: 12 })], ['12 ms', '1.4 s', 8, 12]);
    assert.deepEqual([formatCount(3228864), formatCount(0)], ['3,228,864', '0']);
    assert.equal(formatShape([null, 7, 7, 1024]), '[?, 7, 7, 1024]');
    assert.deepEqual([formatStat(0), formatStat(3.14159), formatStat(-0.00001234), formatStat(123456)], ['0', '3.142', '-1.23e-5', '1.23e+5']);
  });
});

describe('panel HTML', () => {
  const base = { cspSource: 'https://*.vscode-cdn.net', nonce: 'abcdefghijklmnopqrstuvwxyz012345', scriptUri: 'https://x/dist/webview-explain.js', styleUris: ['https://x/media/common.css'], title: 'CAM <Lens>' };

  it('has a strict CSP: nothing by default, scripts by nonce only, no eval, nothing remote', () => {
    const csp = contentSecurityPolicy(base.cspSource, base.nonce);
    assert.equal(csp, "default-src 'none'; script-src 'nonce-abcdefghijklmnopqrstuvwxyz012345'; style-src https://*.vscode-cdn.net; " +
      'img-src https://*.vscode-cdn.net data: blob:; font-src https://*.vscode-cdn.net;');
    const html = buildPanelHtml({ ...base, kind: 'explain' });
    assert.ok(html.includes(`content="${csp.replace(/'/g, '&#39;')}"`));
    assert.doesNotMatch(html, /unsafe-/);
    assert.equal((html.match(/<script/g) ?? []).length, 1);
    assert.match(html, /<script nonce="abcdefghijklmnopqrstuvwxyz012345" src="https:\/\/x\/dist\/webview-explain.js"><\/script>/);
    assert.match(html, /<title>CAM &lt;Lens&gt;<\/title>/);
    assert.doesNotMatch(html, /\sstyle=|\son[a-z]+=/, 'no inline styles or handlers');
  });

  it('carries every id of the stable DOM contract', () => {
    const explain = buildPanelHtml({ ...base, kind: 'explain' });
    for (const id of ['title', 'predictions', 'class-search', 'class-list', 'method', 'layer', 'preprocess', 'colormap', 'opacity',
      'overlay-toggle', 'canvas', 'status', 'readout', 'error', 'model-name', 'backend', 'change-model', 'export-png', 'export-json', 'progress']) {
      assert.equal((explain.match(new RegExp(`id="${id}"`, 'g')) ?? []).length, 1, `explain #${id}`);
    }
    assert.match(explain, /<div id="error" class="error" role="alert" hidden>/);
    const inspector = buildPanelHtml({ ...base, kind: 'inspector', scriptUri: 'https://x/dist/webview-inspector.js' });
    for (const id of ['title', 'layers', 'choose-image', 'feature-grid', 'sort', 'class', 'channel-detail', 'use-model', 'error']) {
      assert.equal((inspector.match(new RegExp(`id="${id}"`, 'g')) ?? []).length, 1, `inspector #${id}`);
    }
  });

  it("accepts the 'self' keyword that browser-hosted VS Code (code-server) puts in cspSource", () => {
    const html = buildPanelHtml({ ...base, kind: 'explain', cspSource: "'self' https://*.vscode-cdn.net" });
    assert.match(html, /style-src &#39;self&#39; https:\/\/\*\.vscode-cdn\.net;/);
    assert.throws(() => buildPanelHtml({ ...base, kind: 'explain', cspSource: "'self' 'unsafe-inline'" }), /unusable CSP source/);
  });

  it('refuses a nonce or CSP source that could break out of the policy', () => {
    assert.throws(() => buildPanelHtml({ ...base, kind: 'explain', nonce: "abc'; script-src *" }), /nonce/);
    assert.throws(() => buildPanelHtml({ ...base, kind: 'explain', nonce: 'short' }), /nonce/);
    assert.throws(() => buildPanelHtml({ ...base, kind: 'explain', cspSource: "x; script-src 'unsafe-inline'" }), /CSP source/);
    assert.throws(() => buildPanelHtml({ ...base, kind: 'other' as 'explain' }), /kind/);
  });

  it('makes a fresh 32-character nonce each time', () => {
    const a = createNonce();
    const b = createNonce();
    assert.match(a, /^[A-Za-z0-9_-]{32}$/);
    assert.notEqual(a, b);
  });
});
