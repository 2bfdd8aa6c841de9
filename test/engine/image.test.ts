/**
 * Image decoding, model-input resizing and preprocessing. Every fixture is generated here, into a temp folder:
 * sharp writes the PNG/JPEG/WebP/GIF/TIFF files, a small writer below writes the BMPs byte by byte, and the
 * hostile files (text, truncated, lying header) are built by hand.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { CamLensError, type ErrorCode } from '../../src/extension/engine/errors';
import { decodeImage, resizeForModel, type DecodedImage } from '../../src/extension/engine/image';
import { applyPreprocess, PREPROCESS_PRESETS, type PreprocessPreset } from '../../src/extension/engine/preprocess';

type RGB = [number, number, number];

let dir = '';
const file = (name: string) => path.join(dir, name);

function pixel(img: DecodedImage, x: number, y: number): RGB {
  const o = 3 * (y * img.width + x);
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
}

function assertPixel(img: DecodedImage, x: number, y: number, expected: RGB, tol = 0): void {
  const got = pixel(img, x, y);
  for (let c = 0; c < 3; c++) {
    assert.ok(Math.abs(got[c] - expected[c]) <= tol, `pixel (${x},${y}): got [${got}], expected [${expected}] ±${tol}`);
  }
}

async function rejectsWith(p: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<CamLensError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CamLensError, `expected CamLensError ${code}, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    assert.ok(!e.message.includes('\n'), `one-line message: ${JSON.stringify(e.message)}`);
    return e;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

/**
 * A 16x12 RGB test card: four quadrants red / green / blue / white (top-left, top-right, bottom-left,
 * bottom-right), so orientation and channel order errors show.
 */
const CARD_W = 16;
const CARD_H = 12;
const QUADRANTS: RGB[] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]];
function cardPixels(): Buffer {
  const buf = Buffer.alloc(CARD_W * CARD_H * 3);
  for (let y = 0; y < CARD_H; y++) {
    for (let x = 0; x < CARD_W; x++) {
      const q = (y < CARD_H / 2 ? 0 : 2) + (x < CARD_W / 2 ? 0 : 1);
      buf.set(QUADRANTS[q], 3 * (y * CARD_W + x));
    }
  }
  return buf;
}
const card = () => sharp(cardPixels(), { raw: { width: CARD_W, height: CARD_H, channels: 3 } });

function assertCard(img: DecodedImage, tol: number): void {
  assert.equal(img.width, CARD_W);
  assert.equal(img.height, CARD_H);
  assert.equal(img.channels, 3);
  assert.equal(img.data.length, CARD_W * CARD_H * 3);
  // Sample away from the quadrant edges (lossy codecs blur them).
  assertPixel(img, 2, 2, QUADRANTS[0], tol);
  assertPixel(img, 13, 2, QUADRANTS[1], tol);
  assertPixel(img, 2, 9, QUADRANTS[2], tol);
  assertPixel(img, 13, 9, QUADRANTS[3], tol);
}

// ---- PNG chunks by hand (for the lying header) ----

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

// ---- BMP writer ----

interface BmpSpec {
  width: number;
  /** Negative: top-down. */
  height: number;
  bpp: number;
  compression?: number;
  headerSize?: number;
  /** R, G, B[, A] masks for BI_BITFIELDS / BI_ALPHABITFIELDS. */
  masks?: number[];
  /** RGB palette entries. */
  palette?: RGB[];
  /** Unpadded bytes of each stored row (stored order: bottom row first unless top-down). */
  rows?: Buffer[];
  /** Raw pixel data (for RLE). */
  data?: Buffer;
}

function writeBmp(s: BmpSpec): Buffer {
  const headerSize = s.headerSize ?? 40;
  const compression = s.compression ?? 0;
  const masksAfter = headerSize === 40 && s.masks ? Buffer.alloc(4 * s.masks.length) : Buffer.alloc(0);
  if (masksAfter.length) s.masks!.forEach((m, i) => masksAfter.writeUInt32LE(m >>> 0, 4 * i));
  const palette = Buffer.alloc(4 * (s.palette?.length ?? 0));
  s.palette?.forEach(([r, g, b], i) => palette.set([b, g, r, 0], 4 * i));
  let pixels: Buffer;
  if (s.data) pixels = s.data;
  else {
    const stride = Math.ceil((s.bpp * s.width) / 32) * 4;
    pixels = Buffer.alloc(stride * s.rows!.length);
    s.rows!.forEach((row, i) => row.copy(pixels, i * stride));
  }
  const dib = Buffer.alloc(headerSize);
  dib.writeUInt32LE(headerSize, 0);
  dib.writeInt32LE(s.width, 4);
  dib.writeInt32LE(s.height, 8);
  dib.writeUInt16LE(1, 12);
  dib.writeUInt16LE(s.bpp, 14);
  dib.writeUInt32LE(compression, 16);
  dib.writeUInt32LE(pixels.length, 20);
  dib.writeInt32LE(2835, 24);
  dib.writeInt32LE(2835, 28);
  dib.writeUInt32LE(s.palette?.length ?? 0, 32);
  if (headerSize >= 52 && s.masks) s.masks.forEach((m, i) => dib.writeUInt32LE(m >>> 0, 40 + 4 * i));
  if (headerSize >= 108) dib.write('BGRs', 56, 'latin1'); // LCS_sRGB, stored little-endian
  const offset = 14 + headerSize + masksAfter.length + palette.length;
  const fh = Buffer.alloc(14);
  fh.write('BM', 0, 'latin1');
  fh.writeUInt32LE(offset + pixels.length, 2);
  fh.writeUInt32LE(offset, 10);
  return Buffer.concat([fh, dib, masksAfter, palette, pixels]);
}

/** Stored rows for a direct-colour BMP from top-first RGBA pixels (`pack` turns one pixel into bytes). */
function storedRows(w: number, h: number, px: (x: number, y: number) => number[], topDown: boolean): Buffer[] {
  const rows: Buffer[] = [];
  for (let r = 0; r < h; r++) {
    const y = topDown ? r : h - 1 - r;
    const bytes: number[] = [];
    for (let x = 0; x < w; x++) bytes.push(...px(x, y));
    rows.push(Buffer.from(bytes));
  }
  return rows;
}

/** Packs palette indices of `bpp` bits, most significant first. */
function packIndices(indices: number[], bpp: number): Buffer {
  const out = Buffer.alloc(Math.ceil((indices.length * bpp) / 8));
  indices.forEach((v, x) => {
    const bit = x * bpp;
    out[bit >> 3] |= v << (8 - bpp - (bit & 7));
  });
  return out;
}

// A 3x2 image (odd width, so 24-bit rows need padding), top row first.
const SMALL: RGB[][] = [
  [[255, 0, 0], [0, 255, 0], [0, 0, 255]],
  [[10, 20, 30], [200, 100, 50], [255, 255, 255]],
];

function assertSmall(img: DecodedImage): void {
  assert.equal(img.width, 3);
  assert.equal(img.height, 2);
  for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) assertPixel(img, x, y, SMALL[y][x]);
}

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camlens-image-'));
});

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('decodeImage: formats', () => {
  it('decodes PNG exactly', async () => {
    await card().png().toFile(file('card.png'));
    const img = await decodeImage(file('card.png'));
    assertCard(img, 0);
    assert.equal(img.format, 'png');
    assert.equal(img.originalChannels, 3);
    assert.equal(img.hadAlpha, false);
  });

  it('decodes JPEG', async () => {
    await card().jpeg({ quality: 95 }).toFile(file('card.jpg'));
    const img = await decodeImage(file('card.jpg'));
    assertCard(img, 12);
    assert.equal(img.format, 'jpeg');
  });

  it('decodes lossless WebP exactly', async () => {
    await card().webp({ lossless: true }).toFile(file('card.webp'));
    const img = await decodeImage(file('card.webp'));
    assertCard(img, 0);
    assert.equal(img.format, 'webp');
  });

  it('decodes TIFF exactly', async () => {
    await card().tiff({ compression: 'lzw' }).toFile(file('card.tiff')); // sharp's default TIFF compression is lossy JPEG
    const img = await decodeImage(file('card.tiff'));
    assertCard(img, 0);
    assert.equal(img.format, 'tiff');
  });

  it('decodes the first frame of an animated GIF', async () => {
    const frame = (r: number, g: number, b: number) =>
      sharp({ create: { width: 8, height: 6, channels: 3, background: { r, g, b } } }).png().toBuffer();
    const gif = await sharp([await frame(255, 0, 0), await frame(0, 0, 255)], { join: { animated: true } })
      .gif()
      .toBuffer();
    assert.equal((await sharp(gif).metadata()).pages, 2, 'fixture has two frames');
    fs.writeFileSync(file('anim.gif'), gif);
    const img = await decodeImage(file('anim.gif'));
    assert.equal(img.format, 'gif');
    assert.equal(img.width, 8);
    assert.equal(img.height, 6, 'one frame high, not two');
    for (const [x, y] of [[0, 0], [7, 5], [4, 3]]) assertPixel(img, x, y, [255, 0, 0]);
  });

  it('expands grayscale to RGB and reports one original channel', async () => {
    const gray = Buffer.alloc(6 * 4);
    for (let i = 0; i < gray.length; i++) gray[i] = i * 10;
    await sharp(gray, { raw: { width: 6, height: 4, channels: 1 } }).toColourspace('b-w').png().toFile(file('gray.png'));
    assert.equal((await sharp(file('gray.png')).metadata()).channels, 1, 'fixture is a 1-channel PNG');
    const img = await decodeImage(file('gray.png'));
    assert.equal(img.originalChannels, 1);
    assert.equal(img.channels, 3);
    for (let i = 0; i < gray.length; i++) assertPixel(img, i % 6, Math.floor(i / 6), [gray[i], gray[i], gray[i]]);
  });

  it('flattens alpha onto white', async () => {
    // 3x1: fully transparent black, half-transparent red, opaque green.
    const rgba = Buffer.from([0, 0, 0, 0, 255, 0, 0, 128, 0, 255, 0, 255]);
    await sharp(rgba, { raw: { width: 3, height: 1, channels: 4 } }).png().toFile(file('alpha.png'));
    const img = await decodeImage(file('alpha.png'));
    assert.equal(img.hadAlpha, true);
    assert.equal(img.originalChannels, 4);
    assertPixel(img, 0, 0, [255, 255, 255]);
    assertPixel(img, 1, 0, [255, 127, 127], 1); // 128/255 red over white
    assertPixel(img, 2, 0, [0, 255, 0]);
  });

  it('applies EXIF orientation 6: width and height swap and the top-left corner turns to the top-right', async () => {
    // Stored 40x20, black with a red 8x8 block at the stored top-left. Orientation 6 means "rotate 90° clockwise
    // to display", so the display is 20x40 and the stored top-left lands at the display's top-right.
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let y = 0; y < 8; y++) for (let x = 0; x < 8; x++) raw.set([255, 0, 0], 3 * (y * 40 + x));
    await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toFile(file('exif6.jpg'));
    const meta = await sharp(file('exif6.jpg')).metadata();
    assert.equal(meta.orientation, 6, 'fixture carries orientation 6');
    assert.deepEqual([meta.width, meta.height], [40, 20], 'fixture is stored landscape');
    const img = await decodeImage(file('exif6.jpg'));
    assert.deepEqual([img.width, img.height], [20, 40]);
    assertPixel(img, 16, 3, [255, 0, 0], 40); // top-right: red
    assertPixel(img, 3, 3, [0, 0, 0], 40); // top-left: black
    assertPixel(img, 3, 36, [0, 0, 0], 40); // bottom-left: black
    assertPixel(img, 16, 36, [0, 0, 0], 40); // bottom-right: black
  });

  it('accepts a Buffer and names it in errors', async () => {
    const png = await card().png().toBuffer();
    assertCard(await decodeImage(png), 0);
    await rejectsWith(decodeImage(Buffer.from('nope'), { name: 'upload.png' }), 'NOT_AN_IMAGE', /"upload\.png"/);
  });
});

describe('decodeImage: BMP', () => {
  it('24-bit bottom-up with row padding', async () => {
    const rows = storedRows(3, 2, (x, y) => [SMALL[y][x][2], SMALL[y][x][1], SMALL[y][x][0]], false);
    fs.writeFileSync(file('b24.bmp'), writeBmp({ width: 3, height: 2, bpp: 24, rows }));
    const img = await decodeImage(file('b24.bmp'));
    assertSmall(img);
    assert.equal(img.format, 'bmp');
    assert.equal(img.originalChannels, 3);
    assert.equal(img.hadAlpha, false);
  });

  it('24-bit top-down (negative height)', async () => {
    const rows = storedRows(3, 2, (x, y) => [SMALL[y][x][2], SMALL[y][x][1], SMALL[y][x][0]], true);
    fs.writeFileSync(file('b24td.bmp'), writeBmp({ width: 3, height: -2, bpp: 24, rows }));
    assertSmall(await decodeImage(file('b24td.bmp')));
  });

  it('32-bit BI_RGB with an unused fourth byte is opaque', async () => {
    const rows = storedRows(3, 2, (x, y) => [SMALL[y][x][2], SMALL[y][x][1], SMALL[y][x][0], 0], false);
    fs.writeFileSync(file('b32.bmp'), writeBmp({ width: 3, height: 2, bpp: 32, rows }));
    const img = await decodeImage(file('b32.bmp'));
    assertSmall(img);
    assert.equal(img.hadAlpha, false);
  });

  it('32-bit V5 BI_BITFIELDS with alpha: transparent pixels become white', async () => {
    // Masks in a non-default order (RGBA byte order, as some writers use): R 0xff, G 0xff00, B 0xff0000, A top byte.
    const alphaOf = (x: number, y: number) => (x === 0 && y === 0 ? 0 : 255);
    const rows = storedRows(3, 2, (x, y) => [...SMALL[y][x], alphaOf(x, y)], false);
    const masks = [0x000000ff, 0x0000ff00, 0x00ff0000, 0xff000000];
    fs.writeFileSync(file('b32a.bmp'), writeBmp({ width: 3, height: 2, bpp: 32, compression: 3, headerSize: 124, masks, rows }));
    const img = await decodeImage(file('b32a.bmp'));
    assert.equal(img.hadAlpha, true);
    assert.equal(img.originalChannels, 4);
    assertPixel(img, 0, 0, [255, 255, 255]);
    for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) if (x || y) assertPixel(img, x, y, SMALL[y][x]);
  });

  it('16-bit BI_BITFIELDS 5-6-5', async () => {
    const pack = ([r, g, b]: RGB) => {
      const v = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3);
      return [v & 0xff, v >> 8];
    };
    const rows = storedRows(3, 2, (x, y) => pack(SMALL[y][x]), false);
    fs.writeFileSync(file('b16.bmp'), writeBmp({ width: 3, height: 2, bpp: 16, compression: 3, masks: [0xf800, 0x07e0, 0x001f], rows }));
    const img = await decodeImage(file('b16.bmp'));
    for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) assertPixel(img, x, y, SMALL[y][x], 8);
    assertPixel(img, 0, 0, [255, 0, 0]); // full-scale fields map to 255 exactly
  });

  it('8-bit palette, and a gray palette counts as one channel', async () => {
    const palette: RGB[] = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30], [200, 100, 50], [255, 255, 255]];
    const idx = [[1, 2, 3], [4, 5, 6]];
    const rows = storedRows(3, 2, (x, y) => [idx[y][x]], false);
    fs.writeFileSync(file('b8.bmp'), writeBmp({ width: 3, height: 2, bpp: 8, palette, rows }));
    const img = await decodeImage(file('b8.bmp'));
    assertSmall(img);
    assert.equal(img.originalChannels, 3);

    const grays: RGB[] = Array.from({ length: 256 }, (_, i) => [i, i, i] as RGB);
    const grows = storedRows(3, 2, (x, y) => [40 * (y * 3 + x)], false);
    fs.writeFileSync(file('b8gray.bmp'), writeBmp({ width: 3, height: 2, bpp: 8, palette: grays, rows: grows }));
    const gimg = await decodeImage(file('b8gray.bmp'));
    assert.equal(gimg.originalChannels, 1);
    assertPixel(gimg, 2, 1, [200, 200, 200]);
  });

  it('1-bit and 4-bit palettes with widths that are not a whole number of bytes', async () => {
    const w = 11;
    const bits = (x: number, y: number) => (x + y) % 2;
    const rows1 = storedRows(w, 2, () => [], false).map((_, r) => packIndices(Array.from({ length: w }, (_, x) => bits(x, 1 - r)), 1));
    fs.writeFileSync(file('b1.bmp'), writeBmp({ width: w, height: 2, bpp: 1, palette: [[0, 0, 0], [255, 255, 0]], rows: rows1 }));
    const img1 = await decodeImage(file('b1.bmp'));
    for (let y = 0; y < 2; y++) for (let x = 0; x < w; x++) assertPixel(img1, x, y, bits(x, y) ? [255, 255, 0] : [0, 0, 0]);

    const pal16: RGB[] = Array.from({ length: 16 }, (_, i) => [i * 16, 255 - i * 16, i * 8] as RGB);
    const nib = (x: number, y: number) => (x * 3 + y * 5) % 16;
    const rows4 = [1, 0].map((y) => packIndices(Array.from({ length: w }, (_, x) => nib(x, y)), 4));
    fs.writeFileSync(file('b4.bmp'), writeBmp({ width: w, height: 2, bpp: 4, palette: pal16, rows: rows4 }));
    const img4 = await decodeImage(file('b4.bmp'));
    for (let y = 0; y < 2; y++) for (let x = 0; x < w; x++) assertPixel(img4, x, y, pal16[nib(x, y)]);
  });

  it('RLE8 and RLE4, including absolute runs, end-of-line and delta escapes', async () => {
    const palette: RGB[] = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]];
    // 5x3, stored bottom-up. Commands:
    //   run 3 x index 1          bottom row x=0..2
    //   delta (+1, +1)           to x=4 of the middle row; the pixels skipped keep index 0
    //   run 1 x index 3          middle row x=4
    //   end of line              to x=0 of the top row
    //   absolute [2, 3, 2]       top row x=0..2 (padded to an even byte count in RLE8)
    //   run 2 x index 1          top row x=3..4
    //   end of bitmap
    const rle8 = Buffer.from([3, 1, 0, 2, 1, 1, 1, 3, 0, 0, 0, 3, 2, 3, 2, 0, 2, 1, 0, 1]);
    fs.writeFileSync(file('rle8.bmp'), writeBmp({ width: 5, height: 3, bpp: 8, compression: 1, palette, data: rle8 }));
    const expected: number[][] = [[2, 3, 2, 1, 1], [0, 0, 0, 0, 3], [1, 1, 1, 0, 0]]; // top row first
    const check = (img: DecodedImage) => {
      for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) assertPixel(img, x, y, palette[expected[y][x]]);
    };
    check(await decodeImage(file('rle8.bmp')));

    // Same picture in RLE4: a run repeats the two nibbles of its byte alternately; literals are packed nibbles.
    const rle4 = Buffer.from([3, 0x11, 0, 2, 1, 1, 1, 0x30, 0, 0, 0, 3, 0x23, 0x20, 2, 0x11, 0, 1]);
    fs.writeFileSync(file('rle4.bmp'), writeBmp({ width: 5, height: 3, bpp: 4, compression: 2, palette, data: rle4 }));
    check(await decodeImage(file('rle4.bmp')));
  });

  it('refuses truncated and oversized BMPs', async () => {
    const rows = storedRows(3, 2, (x, y) => [...SMALL[y][x]], false);
    const full = writeBmp({ width: 3, height: 2, bpp: 24, rows });
    fs.writeFileSync(file('trunc.bmp'), full.subarray(0, full.length - 8));
    await rejectsWith(decodeImage(file('trunc.bmp')), 'NOT_AN_IMAGE', /trunc\.bmp.*truncated/);

    const rle = writeBmp({ width: 5, height: 3, bpp: 8, compression: 1, palette: [[0, 0, 0]], data: Buffer.from([5, 0, 0]) });
    fs.writeFileSync(file('truncrle.bmp'), rle);
    await rejectsWith(decodeImage(file('truncrle.bmp')), 'NOT_AN_IMAGE', /RLE data ends/);

    // Header claims 20000x20000 but holds 8 bytes of pixels: refused on the header alone.
    const huge = writeBmp({ width: 3, height: 2, bpp: 24, rows });
    huge.writeInt32LE(20000, 18);
    huge.writeInt32LE(20000, 22);
    fs.writeFileSync(file('huge.bmp'), huge);
    await rejectsWith(decodeImage(file('huge.bmp')), 'IMAGE_TOO_LARGE', /20000x20000.*100000000/);
    await rejectsWith(decodeImage(file('b24.bmp'), { maxPixels: 5 }), 'IMAGE_TOO_LARGE', /3x2/);

    fs.writeFileSync(file('jpeg-in-bmp.bmp'), writeBmp({ width: 3, height: 2, bpp: 0, compression: 4, data: Buffer.alloc(20) }));
    await rejectsWith(decodeImage(file('jpeg-in-bmp.bmp')), 'NOT_AN_IMAGE', /JPEG/);
  });
});

describe('decodeImage: bad input', () => {
  it('a missing path is FILE_NOT_FOUND', async () => {
    await rejectsWith(decodeImage(file('does-not-exist.png')), 'FILE_NOT_FOUND', /does-not-exist\.png/);
  });

  it('a folder is NOT_AN_IMAGE', async () => {
    await rejectsWith(decodeImage(dir), 'NOT_AN_IMAGE', /folder/);
  });

  it('a text file is NOT_AN_IMAGE, naming the file and the decoder reason', async () => {
    fs.writeFileSync(file('notes.png'), 'These are my notes, not a picture.\n');
    await rejectsWith(decodeImage(file('notes.png')), 'NOT_AN_IMAGE', /notes\.png.*unsupported image format/);
  });

  it('an empty file is NOT_AN_IMAGE', async () => {
    fs.writeFileSync(file('empty.jpg'), '');
    await rejectsWith(decodeImage(file('empty.jpg')), 'NOT_AN_IMAGE', /empty\.jpg.*empty/);
  });

  it('a truncated PNG or JPEG is NOT_AN_IMAGE', async () => {
    const noisy = () =>
      sharp({ create: { width: 64, height: 64, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } } });
    const png = await noisy().png().toBuffer();
    fs.writeFileSync(file('cut.png'), png.subarray(0, png.length >> 1));
    await rejectsWith(decodeImage(file('cut.png')), 'NOT_AN_IMAGE', /cut\.png/);
    const jpg = await noisy().jpeg().toBuffer();
    fs.writeFileSync(file('cut.jpg'), jpg.subarray(0, jpg.length >> 1));
    await rejectsWith(decodeImage(file('cut.jpg')), 'NOT_AN_IMAGE', /cut\.jpg.*premature end/);
  });

  it('an SVG is refused: it is a document, not a raster image', async () => {
    fs.writeFileSync(file('icon.svg'), '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
    await rejectsWith(decodeImage(file('icon.svg')), 'NOT_AN_IMAGE', /icon\.svg.*SVG/);
  });

  it('a PNG header claiming 30000x30000 is IMAGE_TOO_LARGE, fast, without decoding', async () => {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(30000, 0);
    ihdr.writeUInt32BE(30000, 4);
    ihdr[8] = 8; // bit depth
    ihdr[9] = 2; // RGB
    const bomb = Buffer.concat([
      Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
      pngChunk('IHDR', ihdr),
      pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(30001 * 3 * 4))), // a few rows only
      pngChunk('IEND', Buffer.alloc(0)),
    ]);
    fs.writeFileSync(file('bomb.png'), bomb);
    const t0 = Date.now();
    await rejectsWith(decodeImage(file('bomb.png')), 'IMAGE_TOO_LARGE', /bomb\.png.*30000x30000 = 900000000 pixels.*limit of 100000000/);
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`);
  });

  it('honours a lower maxPixels', async () => {
    await rejectsWith(decodeImage(file('card.png'), { maxPixels: 100 }), 'IMAGE_TOO_LARGE', /16x12 = 192 pixels.*limit of 100/);
    await rejectsWith(decodeImage(file('card.png'), { maxPixels: 0 }), 'BAD_ARGUMENT', /maxPixels/);
  });
});

describe('resizeForModel', () => {
  const solid = (w: number, h: number, rgb: RGB): DecodedImage => {
    const data = new Uint8Array(w * h * 3);
    for (let i = 0; i < data.length; i += 3) data.set(rgb, i);
    return { width: w, height: h, channels: 3, data, originalChannels: 3, format: 'png', hadAlpha: false };
  };

  it('returns width x height x channels bytes and keeps a solid colour', async () => {
    const img = solid(37, 23, [200, 100, 50]);
    for (const [w, h] of [[224, 224], [8, 8], [37, 23], [5, 40]]) {
      const out = await resizeForModel(img, w, h, 3);
      assert.equal(out.length, w * h * 3);
      for (let i = 0; i < out.length; i += 3) assert.deepEqual(Array.from(out.subarray(i, i + 3)), [200, 100, 50]);
    }
  });

  it('stretches instead of keeping the aspect ratio', async () => {
    // 40x10: left half red, right half blue. Squeezed to 8x8, columns 0-2 are red and 5-7 blue on every row.
    const img = solid(40, 10, [255, 0, 0]);
    for (let y = 0; y < 10; y++) for (let x = 20; x < 40; x++) img.data.set([0, 0, 255], 3 * (y * 40 + x));
    const out = await resizeForModel(img, 8, 8, 3);
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const px = Array.from(out.subarray(3 * (y * 8 + x), 3 * (y * 8 + x) + 3));
        if (x <= 2) assert.deepEqual(px, [255, 0, 0], `(${x},${y})`);
        if (x >= 5) assert.deepEqual(px, [0, 0, 255], `(${x},${y})`);
      }
    }
  });

  it('channels 1 gives BT.601 luma', async () => {
    const out = await resizeForModel(solid(10, 10, [200, 100, 50]), 4, 4, 1);
    assert.equal(out.length, 16);
    const y = Math.round(0.299 * 200 + 0.587 * 100 + 0.114 * 50);
    for (const v of out) assert.equal(v, y);
  });

  it('does not modify or alias the decoded image', async () => {
    const img = solid(4, 4, [1, 2, 3]);
    const out = await resizeForModel(img, 4, 4, 3);
    out[0] = 99;
    assert.equal(img.data[0], 1);
  });

  it('refuses bad sizes and channel counts', async () => {
    const img = solid(4, 4, [1, 2, 3]);
    await rejectsWith(resizeForModel(img, 0, 4, 3), 'BAD_ARGUMENT', /0x4/);
    await rejectsWith(resizeForModel(img, 4.5, 4, 3), 'BAD_ARGUMENT', /4\.5x4/);
    await rejectsWith(resizeForModel(img, 4, 4, 2 as 1), 'BAD_ARGUMENT', /1 or 3, got 2/);
  });
});

describe('applyPreprocess', () => {
  const px = new Uint8Array([0, 128, 255, 10, 20, 30]); // two RGB pixels

  const close = (actual: Float32Array, expected: number[], what: string) => {
    assert.equal(actual.length, expected.length);
    expected.forEach((e, i) => assert.ok(Math.abs(actual[i] - e) < 1e-4, `${what}[${i}]: got ${actual[i]}, expected ${e}`));
  };

  it('[0,1], [-1,1] and [0,255]', () => {
    close(applyPreprocess(px, 3, '[0,1]'), [0, 128 / 255, 1, 10 / 255, 20 / 255, 30 / 255], '[0,1]');
    close(applyPreprocess(px, 3, '[-1,1]'), [-1, 128 / 127.5 - 1, 1, 10 / 127.5 - 1, 20 / 127.5 - 1, 30 / 127.5 - 1], '[-1,1]');
    close(applyPreprocess(px, 3, '[0,255]'), [0, 128, 255, 10, 20, 30], '[0,255]');
  });

  it('caffe: BGR order minus the ImageNet BGR mean, unscaled', () => {
    // pixel 1 RGB (0,128,255) -> BGR (255,128,0) - (103.939,116.779,123.68)
    close(applyPreprocess(px, 3, 'caffe'), [151.061, 11.221, -123.68, 30 - 103.939, 20 - 116.779, 10 - 123.68], 'caffe');
  });

  it('imagenet: x/255 then per-channel mean/std in RGB order', () => {
    close(
      applyPreprocess(px, 3, 'imagenet'),
      [
        (0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (1 - 0.406) / 0.225,
        (10 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (30 / 255 - 0.406) / 0.225,
      ],
      'imagenet',
    );
  });

  it('one channel: caffe and imagenet use the mean of the three constants', () => {
    const g = new Uint8Array([0, 255, 100]);
    close(applyPreprocess(g, 1, 'caffe'), [-114.79933, 140.20067, -14.79933], 'caffe gray');
    const m = (0.485 + 0.456 + 0.406) / 3;
    const s = (0.229 + 0.224 + 0.225) / 3;
    close(applyPreprocess(g, 1, 'imagenet'), [(0 - m) / s, (1 - m) / s, (100 / 255 - m) / s], 'imagenet gray');
    close(applyPreprocess(g, 1, '[-1,1]'), [-1, 1, 100 / 127.5 - 1], '[-1,1] gray');
  });

  it('returns a new array and leaves the pixels alone', () => {
    const copy = px.slice();
    for (const preset of PREPROCESS_PRESETS) applyPreprocess(px, 3, preset);
    assert.deepEqual(px, copy);
  });

  it('refuses an unknown preset, listing the valid ones', () => {
    assert.throws(
      () => applyPreprocess(px, 3, 'tf' as PreprocessPreset),
      (e: unknown) =>
        e instanceof CamLensError && e.code === 'BAD_ARGUMENT' && /"tf".*\[0,1\], \[-1,1\], \[0,255\], caffe, imagenet/.test(e.message),
    );
    assert.throws(() => applyPreprocess(px, 2, '[0,1]'), /1 or 3 channels, got 2/);
    assert.throws(() => applyPreprocess(new Uint8Array(4), 3, '[0,1]'), /4 values/);
  });
});
