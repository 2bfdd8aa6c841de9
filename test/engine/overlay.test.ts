import * as assert from 'node:assert/strict';
import sharp from 'sharp';
import { colormapLut } from '../../src/shared/colormaps';
import { CamLensError } from '../../src/extension/engine/errors';
import { decodeImage, type DecodedImage } from '../../src/extension/engine/image';
import { renderHeatmapPng, renderOverlayPng } from '../../src/extension/engine/overlay';

function grayImage(w: number, h: number, v = 128): DecodedImage {
  return { width: w, height: h, channels: 3, data: new Uint8Array(w * h * 3).fill(v), originalChannels: 3, format: 'png', hadAlpha: false };
}

async function rawOf(png: Buffer): Promise<{ width: number; height: number; data: Buffer }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3);
  return { width: info.width, height: info.height, data };
}

/** Mean of (red - blue) over a rectangle: how "hot" a region looks. */
function redness(img: { width: number; data: Buffer }, x0: number, y0: number, x1: number, y1: number): number {
  let sum = 0;
  let n = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const o = 3 * (y * img.width + x);
      sum += img.data[o] - img.data[o + 2];
      n++;
    }
  }
  return sum / n;
}

const hotTopLeft = () => ({ width: 4, height: 4, values: new Float32Array([1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) });

function isBadArgument(re: RegExp) {
  return (e: unknown) => e instanceof CamLensError && e.code === 'BAD_ARGUMENT' && re.test(e.message);
}

describe('renderOverlayPng', () => {
  it('a map hot in the top-left quadrant makes the top-left redder, at the image size', async () => {
    const img = grayImage(64, 48);
    const png = await renderOverlayPng(img, hotTopLeft(), { colormap: 'turbo', opacity: 0.5 });
    assert.deepEqual([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
    const out = await rawOf(png);
    assert.deepEqual([out.width, out.height], [64, 48]);
    const tl = redness(out, 0, 0, 24, 18);
    const br = redness(out, 40, 30, 64, 48);
    assert.ok(tl > br + 40, `top-left redness ${tl} vs bottom-right ${br}`);
  });

  it('blends (1 - opacity) * image + opacity * colour, per pixel', async () => {
    const img = grayImage(10, 6, 100);
    const heat = { width: 2, height: 1, values: new Float32Array([0.5, 0.5]) };
    const lut = colormapLut('viridis');
    const out = await rawOf(await renderOverlayPng(img, heat, { colormap: 'viridis', opacity: 0.25 }));
    const expected = [0, 1, 2].map((c) => Math.round(0.75 * 100 + 0.25 * lut[3 * 128 + c]));
    for (let i = 0; i < 60; i++) assert.deepEqual(Array.from(out.data.subarray(3 * i, 3 * i + 3)), expected);
  });

  it('opacity 0 returns the image and opacity 1 the colormap alone', async () => {
    const img = grayImage(8, 8, 77);
    img.data[5] = 200;
    const same = await rawOf(await renderOverlayPng(img, hotTopLeft(), { opacity: 0 }));
    assert.deepEqual(new Uint8Array(same.data), img.data);
    const only = await rawOf(await renderOverlayPng(img, { width: 1, height: 1, values: new Float32Array([1]) }, { colormap: 'gray', opacity: 1 }));
    for (const v of only.data) assert.equal(v, 255);
  });

  it('shrinks to fit maxSize on the longer side (thumbnails), keeping the aspect ratio, and leaves smaller images alone', async () => {
    const img = grayImage(1024, 512, 90);
    const small = await rawOf(await renderOverlayPng(img, hotTopLeft(), { maxSize: 256 }));
    assert.deepEqual([small.width, small.height], [256, 128]);
    assert.ok(redness(small, 0, 0, 64, 32) > redness(small, 192, 96, 256, 128) + 20, 'the map is drawn before shrinking');
    const same = await rawOf(await renderOverlayPng(grayImage(40, 30), hotTopLeft(), { maxSize: 256 }));
    assert.deepEqual([same.width, same.height], [40, 30]);
  });

  it('defaults to turbo at opacity 0.5', async () => {
    const img = grayImage(4, 4, 0);
    const out = await rawOf(await renderOverlayPng(img, { width: 1, height: 1, values: new Float32Array([1]) }));
    const lut = colormapLut('turbo');
    assert.deepEqual(Array.from(out.data.subarray(0, 3)), [0, 1, 2].map((c) => Math.round(0.5 * lut[255 * 3 + c])));
  });

  it('overlays a decoded image at its own resolution', async () => {
    const png = await sharp({ create: { width: 33, height: 21, channels: 3, background: '#808080' } }).png().toBuffer();
    const img = await decodeImage(png);
    const out = await rawOf(await renderOverlayPng(img, hotTopLeft(), { colormap: 'jet' }));
    assert.deepEqual([out.width, out.height], [33, 21]);
    assert.ok(redness(out, 0, 0, 10, 6) > redness(out, 23, 15, 33, 21) + 40);
  });

  it('refuses bad opacity, colormap and map sizes', async () => {
    const img = grayImage(4, 4);
    await assert.rejects(renderOverlayPng(img, hotTopLeft(), { opacity: 1.5 }), isBadArgument(/opacity.*1\.5/));
    await assert.rejects(renderOverlayPng(img, hotTopLeft(), { opacity: NaN }), isBadArgument(/opacity.*NaN/));
    await assert.rejects(renderOverlayPng(img, hotTopLeft(), { colormap: 'hot' as 'jet' }), isBadArgument(/"hot".*turbo/));
    await assert.rejects(
      renderOverlayPng(img, { width: 3, height: 3, values: new Float32Array(4) }),
      isBadArgument(/4 values but is declared 3x3/),
    );
    await assert.rejects(
      renderOverlayPng({ ...img, data: new Uint8Array(5) }, hotTopLeft()),
      isBadArgument(/5 bytes, expected 4x4x3/),
    );
  });
});

describe('renderHeatmapPng', () => {
  it('paints one pixel per map cell by default', async () => {
    const heat = { width: 3, height: 2, values: new Float32Array([0, 0.5, 1, NaN, -1, 2]) };
    const out = await rawOf(await renderHeatmapPng(heat, 'inferno'));
    assert.deepEqual([out.width, out.height], [3, 2]);
    const lut = colormapLut('inferno');
    [0, 128, 255, 0, 0, 255].forEach((k, i) =>
      assert.deepEqual(Array.from(out.data.subarray(3 * i, 3 * i + 3)), Array.from(lut.subarray(3 * k, 3 * k + 3)), `cell ${i}`),
    );
  });

  it('upsamples to a requested size', async () => {
    const out = await rawOf(await renderHeatmapPng(hotTopLeft(), 'turbo', 40, 30));
    assert.deepEqual([out.width, out.height], [40, 30]);
    assert.ok(redness(out, 0, 0, 15, 10) > redness(out, 25, 20, 40, 30) + 40);
    await assert.rejects(renderHeatmapPng(hotTopLeft(), 'turbo', 0, 30), isBadArgument(/0x30/));
  });
});
